"""Every invalid spec is rejected before anything runs, with ONE line that names the file, the line
of the offending YAML node and the field path. Each case asserts the line and the path exactly.
Hostile input (alias bombs, deep nesting, NUL bytes, FIFOs, lone surrogates, names that would
become paths outside the output folder) ends the same way: one line, exit 2, nothing written."""

from __future__ import annotations

import os
import textwrap
import threading
from pathlib import Path

import pytest

from harness import cli
from harness.grid import check_distinct_trials
from harness.paths import safe_join
from harness.registry import load_plugin_file
from harness.spec import SpecError, load_spec

PLUGINS = Path(__file__).parent / "specs" / "specfix_plugins.py"

load_plugin_file(PLUGINS)

# The head of a valid spec (lines 1-5); cases append to it so that line numbers are easy to read.
HEAD = """\
experiment: bad
dataset: {name: specfix_digits, params: {size: tiny}}
backbones: [specfix_r3d]
seeds: [0]
methods: [specfix_uniform]
"""


def head_without(*keys: str) -> str:
    return "".join(line + "\n" for line in HEAD.splitlines() if line.split(":")[0] not in keys)


# (id, spec text, line, field path, a fragment of the message)
CASES = [
    ("empty-file", "", 1, "(top level)", "the spec is empty"),
    ("only-comments", "# nothing here\n# at all\n", 1, "(top level)", "the spec is empty"),
    ("top-level-list", "- experiment: x\n- methods: []\n", 1, "(top level)", "expected a mapping of spec fields"),
    ("yaml-syntax-indent", "experiment: x\n  dataset: y\n", 2, "(syntax)", "mapping values are not allowed here"),
    (
        "yaml-syntax-unclosed",
        "experiment: x\nseeds: [0, 1\nmethods: []\n",
        3,
        "(syntax)",
        "expected ',' or ']', but got ':' (while parsing a flow sequence started at line 2)",
    ),
    (
        "yaml-two-documents",
        HEAD + "---\nexperiment: y\n",
        6,
        "(syntax)",
        "expected a single document in the stream, but found another document",
    ),
    (
        "yaml-python-tag",
        HEAD + "output: !!python/name:os.system x\n",
        6,
        "output",
        "could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'",
    ),
    (
        "yaml-python-tag-on-list",
        HEAD + "output: !!python/object/apply:os.system ['true']\n",
        6,
        "output",
        "unsupported YAML tag tag:yaml.org,2002:python/object/apply:os.system",
    ),
    (
        "recursive-alias",
        HEAD.replace(
            "dataset: {name: specfix_digits, params: {size: tiny}}",
            "dataset: &d {name: specfix_digits, params: {size: *d}}",
        ),
        2,
        "dataset.params.size",
        "recursive YAML alias",
    ),
    ("not-a-finite-number", HEAD + "timeout_s: .nan\n", 6, "timeout_s", "expected a finite number, got .nan"),
    ("non-string-key", HEAD + "evaluation: {1: 2}\n", 6, "evaluation", "mapping keys must be strings, got 1"),
    ("date-value", HEAD + "description: 2024-01-01\n", 6, "description", "unsupported value '2024-01-01' (date)"),
    ("duplicate-top-key", HEAD + "seeds: [1]\n", 6, "seeds", "duplicate key 'seeds' (first at line 4)"),
    (
        "duplicate-nested-key",
        head_without("methods")
        + "methods:\n  - name: specfix_uniform\n    params:\n      k: 2\n      aggregate: max\n      k: 3\n",
        10,
        "methods[0].params.k",
        "duplicate key 'k' (first at line 8)",
    ),
    (
        "unknown-top-key",
        HEAD + "methds: []\n",
        6,
        "methds",
        "unknown key 'methds' (allowed: experiment, description, dataset, datasets, backbones, seeds, methods, evaluation, resources, tracking, ray, output, max_failures, timeout_s); did you mean 'methods'?",  # noqa: E501
    ),
    (
        "missing-experiment",
        "# a comment\n" + head_without("experiment"),
        2,
        "experiment",
        "missing required key 'experiment'",
    ),
    (
        "bad-experiment-name",
        HEAD.replace("experiment: bad", "experiment: my experiment!"),
        1,
        "experiment",
        "expected a name of letters, digits, '_', '.' and '-', got 'my experiment!'",
    ),
    ("experiment-number", HEAD.replace("experiment: bad", "experiment: 12"), 1, "experiment", "(quote it), got 12"),
    (
        "missing-dataset",
        head_without("dataset"),
        1,
        "dataset",
        "missing required key 'dataset' (or 'datasets', a list)",
    ),
    (
        "dataset-and-datasets",
        HEAD + "datasets: [specfix_csv]\n",
        6,
        "datasets",
        "give either 'dataset' or 'datasets', not both",
    ),
    (
        "unknown-dataset",
        HEAD.replace("name: specfix_digits", "name: specfix_digit"),
        2,
        "dataset.name",
        "unknown dataset 'specfix_digit' (registered: ",
    ),
    (
        "unknown-dataset-param",
        HEAD.replace("{size: tiny}", "{size: tiny, varient: move4}"),
        2,
        "dataset.params.varient",
        "unknown parameter 'varient' of dataset 'specfix_digits' (declared: num_frames, size, variant); did you mean 'variant'?",  # noqa: E501
    ),
    (
        "dataset-param-choice",
        HEAD.replace("{size: tiny}", "{size: huge}"),
        2,
        "dataset.params.size",
        "expected one of 'tiny', 'small', 'full', got 'huge'",
    ),
    (
        "dataset-not-mapping",
        HEAD.replace("dataset: {name: specfix_digits, params: {size: tiny}}", "dataset: 3"),
        2,
        "dataset",
        "expected a mapping, got 3",
    ),
    (
        "datasets-second-unknown",
        head_without("dataset") + "datasets:\n  - specfix_digits\n  - specfix_cvs\n",
        7,
        "datasets[1]",
        "unknown dataset 'specfix_cvs'",
    ),
    (
        "unknown-backbone",
        HEAD.replace("[specfix_r3d]", "[specfix_r3d, specfix_mobilnet]"),
        3,
        "backbones[1]",
        "unknown backbone 'specfix_mobilnet' (registered: ",
    ),
    (
        "backbone-param-zero",
        HEAD.replace("[specfix_r3d]", "[{name: specfix_r3d, params: {width: 0}}]"),
        3,
        "backbones[0].params.width",
        "expected a positive integer, got 0",
    ),
    (
        "duplicate-backbone",
        HEAD.replace("[specfix_r3d]", "[specfix_r3d, {name: specfix_r3d, params: {width: 64}}]"),
        3,
        "backbones[1]",
        "duplicate backbone: same as backbones[0] once defaults are filled in",
    ),
    (
        "duplicate-seed",
        HEAD.replace("seeds: [0]", "seeds:\n  - 0\n  - 1\n  - 0"),
        7,
        "seeds[2]",
        "duplicate seed 0 (also at seeds[0])",
    ),
    (
        "seed-word",
        HEAD.replace("seeds: [0]", "seeds: [0, one]"),
        4,
        "seeds[1]",
        "expected a seed, an integer in [0, 2**32), got 'one'",
    ),
    ("seed-negative", HEAD.replace("seeds: [0]", "seeds: -3"), 4, "seeds", "got -3"),
    ("missing-methods", head_without("methods"), 1, "methods", "missing required key 'methods'"),
    (
        "methods-empty",
        HEAD.replace("methods: [specfix_uniform]", "methods: []"),
        5,
        "methods",
        "expected at least one method, got an empty list",
    ),
    (
        "methods-mapping",
        HEAD.replace("methods: [specfix_uniform]", "methods: {name: specfix_uniform}"),
        5,
        "methods",
        "expected a list of methods, got {'name': 'specfix_uniform'}",
    ),
    (
        "unknown-method-short-form",
        HEAD.replace("methods: [specfix_uniform]", "methods: [specfix_unifrom]"),
        5,
        "methods[0]",
        "did you mean 'specfix_uniform'?",
    ),
    (
        "unknown-method",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n  - name: specfix_smapler\n",
        7,
        "methods[1].name",
        "unknown method 'specfix_smapler' (registered: ",
    ),
    (
        "method-missing-name",
        head_without("methods") + "methods:\n  - params: {k: 2}\n",
        6,
        "methods[0].name",
        "missing required key 'name'",
    ),
    (
        "method-unknown-key",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n    grids: {k: [1]}\n",
        7,
        "methods[0].grids",
        "unknown key 'grids' (allowed: name, params, grid, zip, backbones, label); did you mean 'grid'?",
    ),
    # the example of the issue: experiments/x.yaml:14: methods[2].grid.k[1]: expected a positive integer, got 'ten'
    (
        "grid-value-word",
        head_without("methods")
        + textwrap.dedent("""\
        methods:
          - name: specfix_uniform
            grid: {k: [1, 2]}
          - name: specfix_sampler
            zip:
              - gamma: [0.1, 0.2]
                lambda_: [1, 2]
          - name: specfix_uniform
            params: {aggregate: max}
            grid: {k: [1, ten, 4]}
        """),
        14,
        "methods[2].grid.k[1]",
        "expected a positive integer, got 'ten'",
    ),
    (
        "grid-empty",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid:\n      k: []\n",
        8,
        "methods[0].grid.k",
        "empty grid: give at least one value",
    ),
    (
        "grid-no-axes",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid: {}\n",
        7,
        "methods[0].grid",
        "empty grid: give at least one parameter to sweep",
    ),
    (
        "grid-scalar",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid: {k: 3}\n",
        7,
        "methods[0].grid.k",
        "expected a list of values to sweep, got 3",
    ),
    (
        "grid-unknown-param",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid: {kk: [1, 2]}\n",
        7,
        "methods[0].grid.kk",
        "unknown parameter 'kk' of method 'specfix_uniform' (declared: aggregate, k); did you mean 'k'?",
    ),
    (
        "grid-duplicate-value",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid:\n      k: [2, 4,\n          2]\n",
        9,
        "methods[0].grid.k[2]",
        "duplicate value 2 (also at index 0)",
    ),
    (
        "param-in-params-and-grid",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n    params: {k: 2}\n    grid: {k: [1, 2]}\n",
        8,
        "methods[0].grid.k",
        "parameter 'k' is already set at methods[0].params.k",
    ),
    (
        "param-out-of-range",
        head_without("methods") + "methods:\n  - name: specfix_sampler\n    params: {gamma: 1.5}\n",
        7,
        "methods[0].params.gamma",
        "expected a number in [0.0, 1.0], got 1.5",
    ),
    (
        "param-wrong-type",
        head_without("methods") + "methods:\n  - name: specfix_uniform\n    params: {aggregate: 3}\n",
        7,
        "methods[0].params.aggregate",
        "expected one of 'mean', 'max', got 3",
    ),
    (
        "zip-unequal",
        head_without("methods")
        + "methods:\n  - name: specfix_sampler\n    zip:\n      - gamma: [0.1, 0.3]\n        lambda_: [1.0, 2.0, 3.0]\n",  # noqa: E501
        9,
        "methods[0].zip[0].lambda_",
        "zip group lengths differ: 'lambda_' has 3 values, 'gamma' has 2",
    ),
    (
        "zip-not-list",
        head_without("methods") + "methods:\n  - name: specfix_sampler\n    zip: {gamma: [0.1], lambda_: [1.0]}\n",
        7,
        "methods[0].zip",
        "expected a list of zip groups",
    ),
    (
        "zip-and-grid",
        head_without("methods")
        + "methods:\n  - name: specfix_sampler\n    grid: {gamma: [0.1, 0.2]}\n    zip: [{gamma: [0.3], k: [2]}]\n",
        8,
        "methods[0].zip[0].gamma",
        "parameter 'gamma' is already set at methods[0].grid.gamma",
    ),
    (
        "method-without-backbone",
        head_without("backbones"),
        4,
        "methods[0]",
        "no backbone for method 'specfix_uniform': set top-level 'backbones' or this method's 'backbones'",
    ),
    (
        "method-backbone-param",
        head_without("methods")
        + "methods:\n  - name: specfix_uniform\n    backbones:\n      - {name: specfix_r3d, params: {depth: 50}}\n",
        8,
        "methods[0].backbones[0].params.depth",
        "expected one of 10, 18, got 50",
    ),
    (
        "duplicate-method-entries",
        head_without("methods")
        + "methods:\n  - name: specfix_uniform\n    params: {k: 8}\n  - name: specfix_uniform\n    label: again\n",
        8,
        "methods[1]",
        "gives the same trials as methods[0]",
    ),
    (
        "evaluation-unknown",
        HEAD + "evaluation:\n  batchsize: 4\n",
        7,
        "evaluation.batchsize",
        "unknown parameter 'batchsize' of evaluation (declared: ",
    ),
    (
        "evaluation-bad-value",
        HEAD + "evaluation: {batch_size: 0}\n",
        6,
        "evaluation.batch_size",
        "expected a positive integer, got 0",
    ),
    (
        "evaluation-device",
        HEAD + "evaluation: {device: gpu}\n",
        6,
        "evaluation.device",
        "expected auto, cpu, cuda, cuda:N or mps, got 'gpu'",
    ),
    (
        "evaluation-light-backbone",
        HEAD + "evaluation: {light_backbone: specfix_mobilenett}\n",
        6,
        "evaluation.light_backbone",
        "did you mean 'specfix_mobilenet'?",
    ),
    ("resources-zero-cpus", HEAD + "resources:\n  cpus: 0\n", 7, "resources.cpus", "expected a positive number, got 0"),
    (
        "resources-negative-gpus",
        HEAD + "resources: {cpus: 1, gpus: -0.5}\n",
        6,
        "resources.gpus",
        "expected a non-negative number, got -0.5",
    ),
    (
        "resources-gpus-fraction-above-one",
        HEAD + "resources: {gpus: 1.5}\n",
        6,
        "resources.gpus",
        "expected a fraction of one GPU or a whole number of GPUs, got 1.5",
    ),
    ("resources-unknown", HEAD + "resources: {cpu: 2}\n", 6, "resources.cpu", "did you mean 'cpus'?"),
    (
        "tracking-no-scheme",
        HEAD + "tracking:\n  uri: results/mlflow.db\n",
        7,
        "tracking.uri",
        "unsupported tracking URI 'results/mlflow.db'",
    ),
    (
        "tracking-sqlite-two-slashes",
        HEAD + "tracking: {uri: 'sqlite://mlflow.db'}\n",
        6,
        "tracking.uri",
        "expected sqlite:///RELATIVE/PATH.db",
    ),
    (
        "ray-num-cpus",
        HEAD + "ray: {num_cpus: four}\n",
        6,
        "ray.num_cpus",
        "expected a positive integer or null, got 'four'",
    ),
    (
        "ray-too-few-cpus",
        HEAD + "resources: {cpus: 4}\nray: {num_cpus: 2}\n",
        6,
        "resources.cpus",
        "a trial asks for 4 CPUs but ray.num_cpus is 2: it would never start",
    ),
    (
        "max-failures-negative",
        HEAD + "max_failures: -1\n",
        6,
        "max_failures",
        "expected a non-negative integer, got -1",
    ),
    ("timeout-zero", HEAD + "timeout_s: 0\n", 6, "timeout_s", "expected a positive number or null, got 0"),
    ("output-empty", HEAD + "output: ''\n", 6, "output", "expected a folder path, got ''"),
    # hostile input: each of these printed a traceback (or hung) before
    ("nul-byte-in-file", HEAD + "description: a\0b\n", 6, "(file)", "the spec contains a NUL byte"),
    ("deep-nesting", HEAD + "description: " + "[" * 3000 + "]" * 3000 + "\n", 6, "(syntax)", "nested too deeply"),
    (
        "lone-surrogate-label",
        head_without("methods") + 'methods:\n  - {name: specfix_uniform, label: "a\\ud800"}\n',
        6,
        "methods[0].label",
        "contains an unpaired surrogate '\\ud800'",
    ),
    ("output-nul", HEAD + 'output: "out\\0put"\n', 6, "output", "contains a NUL character"),
    ("output-dev-null", HEAD + "output: /dev/null\n", 6, "output", "'/dev/null' exists and is not a folder"),
    (
        "output-under-a-file",
        HEAD + "output: /dev/null/results\n",
        6,
        "output",
        "'/dev/null' exists and is not a folder",
    ),
    ("description-list", HEAD + "description: []\n", 6, "description", "expected a string, got []"),
    # path traversal: names never become path components unsanitised
    ("experiment-dotdot", HEAD.replace("experiment: bad", "experiment: '..'"), 1, "experiment", "not '.' or '..'"),
    (
        "tracking-experiment-traversal",
        HEAD + "tracking: {experiment: ../../../x}\n",
        6,
        "tracking.experiment",
        "expected a name of letters, digits",
    ),
    # accepted by plan, broken at run: validated statically now
    (
        "tracking-sqlite-no-path",
        HEAD + "tracking: {uri: 'sqlite:///'}\n",
        6,
        "tracking.uri",
        "expected sqlite:///RELATIVE/PATH.db",
    ),
    (
        "tracking-http-bad-port",
        HEAD + "tracking: {uri: 'http://127.0.0.1:99999'}\n",
        6,
        "tracking.uri",
        "malformed tracking URI",
    ),
    ("tracking-http-no-host", HEAD + "tracking: {uri: 'http://:5000'}\n", 6, "tracking.uri", "expected http://HOST"),
    (
        "ray-address-malformed",
        HEAD + "ray:\n  address: 'head node:6379'\n",
        7,
        "ray.address",
        "expected a Ray address: auto, HOST:PORT or ray://HOST:PORT",
    ),
    ("ray-address-bad-port", HEAD + "ray: {address: 'head:port'}\n", 6, "ray.address", "expected a Ray address"),
]


@pytest.mark.parametrize("text, line, field, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_spec_names_line_and_field(tmp_path, text, line, field, fragment):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        check_distinct_trials(load_spec(path))  # as `plan` and `run` do
    err = info.value
    message = str(err)
    assert "\n" not in message
    assert (err.line, err.field) == (line, field), message
    assert message == f"{path}:{line}: {field}: {err.message}"
    assert fragment in err.message, message


def test_at_least_25_cases():
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


def test_issue_example_verbatim(tmp_path, monkeypatch):
    """The exact line of the issue, with the file named as the user typed it."""
    monkeypatch.chdir(tmp_path)
    case = next(c for c in CASES if c[0] == "grid-value-word")
    Path("experiments").mkdir()
    Path("experiments/x.yaml").write_text(case[1])
    with pytest.raises(SpecError) as info:
        load_spec("experiments/x.yaml")
    assert str(info.value) == "experiments/x.yaml:14: methods[2].grid.k[1]: expected a positive integer, got 'ten'"


def test_unknown_method_lists_registered_names(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(HEAD.replace("methods: [specfix_uniform]", "methods: [specfix_unifrom]"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    registered = info.value.message.split("(registered: ")[1].split(")")[0].split(", ")
    assert {"specfix_uniform", "specfix_sampler"} <= set(registered)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(SpecError, match=r"nope\.yaml: \(file\): spec file not found$"):
        load_spec(tmp_path / "nope.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(HEAD.encode() + b"description: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert (info.value.line, info.value.field) == (6, "(file)")


def test_override_errors_name_the_override(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(HEAD + "ray: {num_cpus: 2}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides={"ray.num_cpus": 0})
    assert (
        str(info.value)
        == f"{path}: ray.num_cpus: expected a positive integer or null, got 0 (from override ray.num_cpus=0)"
    )


def test_alias_bomb_is_refused_quickly(tmp_path):
    """Nine levels of ten aliases each expand to 10**9 values: the reader stops at its bound."""
    levels = ["  - &l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"  - &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text(HEAD + "description:\n" + "\n".join(levels) + "\n")
    with pytest.raises(SpecError, match="expands to more than 100000 values") as info:
        load_spec(path)
    assert info.value.field.startswith("description[")


def test_merge_bomb_is_refused(tmp_path):
    levels = ["  l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    levels += [f"  l{i}: &l{i} {{<<: [{', '.join([f'*l{i - 1}'] * 10)}]}}" for i in range(1, 9)]
    path = tmp_path / "merge.yaml"
    path.write_text(HEAD + "evaluation:\n" + "\n".join(levels) + "\n")
    with pytest.raises(SpecError, match="more than 100000"):  # merges are counted before they are made
        load_spec(path)


def test_fifo_spec_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            load_spec(fifo)
        except SpecError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=load, daemon=True)  # before the fix, open() blocked forever
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "reading a FIFO spec blocked"
    assert outcome == [f"{fifo}: (file): not a regular file (a folder, FIFO or device): give a YAML file"]


def test_duplicate_entries_are_found_where_the_grid_is_expanded(tmp_path):
    """spec.py no longer imports grid.py: load_spec accepts the spec, the grid check refuses it."""
    path = tmp_path / "x.yaml"
    path.write_text(head_without("methods") + "methods: [specfix_uniform, {name: specfix_uniform, label: b}]\n")
    spec = load_spec(path)
    with pytest.raises(SpecError, match="gives the same trials as methods"):
        check_distinct_trials(spec)


def test_safe_join_refuses_names_that_leave_the_folder(tmp_path):
    assert safe_join(tmp_path, "quickstart") == tmp_path / "quickstart"
    for name in ("..", ".", "", "../../x", "a/b", "a\0b"):
        with pytest.raises(ValueError, match="cannot be used as a folder name"):
            safe_join(tmp_path, name)


# -- the command line: one line on stderr, exit 2, no traceback, nothing written ------------------
def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_cli(tmp_path, monkeypatch, capsys, *argv: str) -> str:
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert files_under(tmp_path) == before, "a refused command wrote files"
    return err.strip()


SPEC_OUT = HEAD + "output: out\n"


@pytest.mark.parametrize(
    "spec_text, argv, fragment",
    [
        (
            SPEC_OUT + "tracking: {uri: 'http://127.0.0.1:9'}\n",
            ["run", "x.yaml", "--local"],
            "cannot reach the tracking server of http://127.0.0.1:9",
        ),
        (SPEC_OUT, ["run", "x.yaml", "--address", "127.0.0.1:9"], "cannot reach the Ray cluster at 127.0.0.1:9"),
        (SPEC_OUT, ["run", "x.yaml", "--address", "not an address"], "expected a Ray address"),
        (
            SPEC_OUT + "tracking: {uri: 'sqlite:///'}\n",
            ["run", "x.yaml", "--local"],
            "tracking.uri: expected sqlite:///",
        ),
        (
            head_without("methods") + 'methods: [{name: specfix_uniform, label: "\\ud800"}]\noutput: out\n',
            ["run", "x.yaml", "--local"],
            "unpaired surrogate",
        ),
        (
            SPEC_OUT,
            ["run", "x.yaml", "--local", "--set", "evaluation.batch_size=0"],
            "(from override evaluation.batch_size=0)",
        ),
        (SPEC_OUT, ["plan", "x.yaml", "--set", "nokey"], "expected KEY=VALUE"),
        (SPEC_OUT, ["plan", "x.yaml", "--only", "specfix_unifrom"], "did you mean 'specfix_uniform'?"),
        (SPEC_OUT, ["plan", "x.yaml", "--seeds", "0,zero"], "seeds[1]: expected a seed"),
    ],
    ids=[
        "tracking-unreachable",
        "ray-unreachable",
        "ray-address-malformed",
        "sqlite-no-path",
        "surrogate-run",
        "set-invalid",
        "set-malformed",
        "only-unknown",
        "seeds-invalid",
    ],
)
def test_cli_refuses_bad_input_in_one_line(tmp_path, monkeypatch, capsys, spec_text, argv, fragment):
    (tmp_path / "x.yaml").write_text(spec_text)
    err = run_cli(tmp_path, monkeypatch, capsys, *argv, "--plugin", str(PLUGINS))
    assert fragment in err


@pytest.mark.parametrize(
    "source, fragment",
    [
        ("def broken(:\n    pass\n", "bad_plugin.py:1: syntax error in plugin file"),
        (
            "import os\nimport no_such_module_for_skimbench\n",
            "bad_plugin.py:2: plugin file failed to import: ModuleNotFoundError",
        ),
    ],
)
def test_broken_plugin_file_is_one_line(tmp_path, monkeypatch, capsys, source, fragment):
    (tmp_path / "x.yaml").write_text(SPEC_OUT)
    (tmp_path / "bad_plugin.py").write_text(source)
    err = run_cli(tmp_path, monkeypatch, capsys, "plan", "x.yaml", "--plugin", "bad_plugin.py")
    assert fragment in err


def test_data_check_validates_params_and_loads_plugins(tmp_path, monkeypatch, capsys):
    err = run_cli(
        tmp_path,
        monkeypatch,
        capsys,
        "data",
        "check",
        "specfix_digits",
        "--param",
        "size=maybe",
        "--plugin",
        str(PLUGINS),
    )
    assert (
        err == "skimbench: error: dataset 'specfix_digits': parameter 'size': expected one of 'tiny', 'small', "
        "'full', got 'maybe'"
    )
