"""Every invalid spec is rejected before anything runs, with ONE line that names the file, the line
of the offending YAML node and the field path. Each case asserts the line and the path exactly."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.registry import load_plugin_file
from harness.spec import SpecError, load_spec

load_plugin_file(Path(__file__).parent / "specs" / "specfix_plugins.py")

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
    ("yaml-syntax-unclosed", "experiment: x\nseeds: [0, 1\nmethods: []\n", 3, "(syntax)",
     "expected ',' or ']', but got ':' (while parsing a flow sequence started at line 2)"),
    ("yaml-two-documents", HEAD + "---\nexperiment: y\n", 6, "(syntax)",
     "expected a single document in the stream, but found another document"),
    ("yaml-python-tag", HEAD + "output: !!python/name:os.system x\n", 6, "output",
     "could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
    ("yaml-python-tag-on-list", HEAD + "output: !!python/object/apply:os.system ['true']\n", 6, "output",
     "unsupported YAML tag tag:yaml.org,2002:python/object/apply:os.system"),
    ("recursive-alias", HEAD.replace("dataset: {name: specfix_digits, params: {size: tiny}}",
                                     "dataset: &d {name: specfix_digits, params: {size: *d}}"), 2, "dataset.params.size",
     "recursive YAML alias"),
    ("not-a-finite-number", HEAD + "timeout_s: .nan\n", 6, "timeout_s", "expected a finite number, got .nan"),
    ("non-string-key", HEAD + "evaluation: {1: 2}\n", 6, "evaluation", "mapping keys must be strings, got 1"),
    ("date-value", HEAD + "description: 2024-01-01\n", 6, "description", "unsupported value '2024-01-01' (date)"),
    ("duplicate-top-key", HEAD + "seeds: [1]\n", 6, "seeds", "duplicate key 'seeds' (first at line 4)"),
    ("duplicate-nested-key", head_without("methods") + "methods:\n  - name: specfix_uniform\n    params:\n      k: 2\n      aggregate: max\n      k: 3\n",
     10, "methods[0].params.k", "duplicate key 'k' (first at line 8)"),
    ("unknown-top-key", HEAD + "methds: []\n", 6, "methds", "unknown key 'methds' (allowed: experiment, description, dataset, datasets, backbones, seeds, methods, evaluation, resources, tracking, ray, output, max_failures, timeout_s); did you mean 'methods'?"),
    ("missing-experiment", "# a comment\n" + head_without("experiment"), 2, "experiment", "missing required key 'experiment'"),
    ("bad-experiment-name", HEAD.replace("experiment: bad", "experiment: my experiment!"), 1, "experiment",
     "expected a name of letters, digits, '_', '.' and '-', got 'my experiment!'"),
    ("experiment-number", HEAD.replace("experiment: bad", "experiment: 12"), 1, "experiment", "(quote it), got 12"),
    ("missing-dataset", head_without("dataset"), 1, "dataset", "missing required key 'dataset' (or 'datasets', a list)"),
    ("dataset-and-datasets", HEAD + "datasets: [specfix_csv]\n", 6, "datasets", "give either 'dataset' or 'datasets', not both"),
    ("unknown-dataset", HEAD.replace("name: specfix_digits", "name: specfix_digit"), 2, "dataset.name",
     "unknown dataset 'specfix_digit' (registered: "),
    ("unknown-dataset-param", HEAD.replace("{size: tiny}", "{size: tiny, varient: move4}"), 2, "dataset.params.varient",
     "unknown parameter 'varient' of dataset 'specfix_digits' (declared: num_frames, size, variant); did you mean 'variant'?"),
    ("dataset-param-choice", HEAD.replace("{size: tiny}", "{size: huge}"), 2, "dataset.params.size",
     "expected one of 'tiny', 'small', 'full', got 'huge'"),
    ("dataset-not-mapping", HEAD.replace("dataset: {name: specfix_digits, params: {size: tiny}}", "dataset: 3"), 2, "dataset",
     "expected a mapping, got 3"),
    ("datasets-second-unknown", head_without("dataset") + "datasets:\n  - specfix_digits\n  - specfix_cvs\n", 7, "datasets[1]",
     "unknown dataset 'specfix_cvs'"),
    ("unknown-backbone", HEAD.replace("[specfix_r3d]", "[specfix_r3d, specfix_mobilnet]"), 3, "backbones[1]",
     "unknown backbone 'specfix_mobilnet' (registered: "),
    ("backbone-param-zero", HEAD.replace("[specfix_r3d]", "[{name: specfix_r3d, params: {width: 0}}]"), 3,
     "backbones[0].params.width", "expected a positive integer, got 0"),
    ("duplicate-backbone", HEAD.replace("[specfix_r3d]", "[specfix_r3d, {name: specfix_r3d, params: {width: 64}}]"), 3,
     "backbones[1]", "duplicate backbone: same as backbones[0] once defaults are filled in"),
    ("duplicate-seed", HEAD.replace("seeds: [0]", "seeds:\n  - 0\n  - 1\n  - 0"), 7, "seeds[2]", "duplicate seed 0 (also at seeds[0])"),
    ("seed-word", HEAD.replace("seeds: [0]", "seeds: [0, one]"), 4, "seeds[1]", "expected a seed, an integer in [0, 2**32), got 'one'"),
    ("seed-negative", HEAD.replace("seeds: [0]", "seeds: -3"), 4, "seeds", "got -3"),
    ("missing-methods", head_without("methods"), 1, "methods", "missing required key 'methods'"),
    ("methods-empty", HEAD.replace("methods: [specfix_uniform]", "methods: []"), 5, "methods", "expected at least one method, got an empty list"),
    ("methods-mapping", HEAD.replace("methods: [specfix_uniform]", "methods: {name: specfix_uniform}"), 5, "methods",
     "expected a list of methods, got {'name': 'specfix_uniform'}"),
    ("unknown-method-short-form", HEAD.replace("methods: [specfix_uniform]", "methods: [specfix_unifrom]"), 5, "methods[0]",
     "did you mean 'specfix_uniform'?"),
    ("unknown-method", head_without("methods") + "methods:\n  - name: specfix_uniform\n  - name: specfix_smapler\n", 7,
     "methods[1].name", "unknown method 'specfix_smapler' (registered: "),
    ("method-missing-name", head_without("methods") + "methods:\n  - params: {k: 2}\n", 6, "methods[0].name",
     "missing required key 'name'"),
    ("method-unknown-key", head_without("methods") + "methods:\n  - name: specfix_uniform\n    grids: {k: [1]}\n", 7,
     "methods[0].grids", "unknown key 'grids' (allowed: name, params, grid, zip, backbones, label); did you mean 'grid'?"),
    # the example of the issue: experiments/x.yaml:14: methods[2].grid.k[1]: expected a positive integer, got 'ten'
    ("grid-value-word", head_without("methods") + textwrap.dedent("""\
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
        """), 14, "methods[2].grid.k[1]", "expected a positive integer, got 'ten'"),
    ("grid-empty", head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid:\n      k: []\n", 8,
     "methods[0].grid.k", "empty grid: give at least one value"),
    ("grid-no-axes", head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid: {}\n", 7,
     "methods[0].grid", "empty grid: give at least one parameter to sweep"),
    ("grid-scalar", head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid: {k: 3}\n", 7,
     "methods[0].grid.k", "expected a list of values to sweep, got 3"),
    ("grid-unknown-param", head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid: {kk: [1, 2]}\n", 7,
     "methods[0].grid.kk", "unknown parameter 'kk' of method 'specfix_uniform' (declared: aggregate, k); did you mean 'k'?"),
    ("grid-duplicate-value", head_without("methods") + "methods:\n  - name: specfix_uniform\n    grid:\n      k: [2, 4,\n          2]\n", 9,
     "methods[0].grid.k[2]", "duplicate value 2 (also at index 0)"),
    ("param-in-params-and-grid", head_without("methods") + "methods:\n  - name: specfix_uniform\n    params: {k: 2}\n    grid: {k: [1, 2]}\n",
     8, "methods[0].grid.k", "parameter 'k' is already set at methods[0].params.k"),
    ("param-out-of-range", head_without("methods") + "methods:\n  - name: specfix_sampler\n    params: {gamma: 1.5}\n", 7,
     "methods[0].params.gamma", "expected a number in [0.0, 1.0], got 1.5"),
    ("param-wrong-type", head_without("methods") + "methods:\n  - name: specfix_uniform\n    params: {aggregate: 3}\n", 7,
     "methods[0].params.aggregate", "expected one of 'mean', 'max', got 3"),
    ("zip-unequal", head_without("methods") + "methods:\n  - name: specfix_sampler\n    zip:\n      - gamma: [0.1, 0.3]\n        lambda_: [1.0, 2.0, 3.0]\n",
     9, "methods[0].zip[0].lambda_", "zip group lengths differ: 'lambda_' has 3 values, 'gamma' has 2"),
    ("zip-not-list", head_without("methods") + "methods:\n  - name: specfix_sampler\n    zip: {gamma: [0.1], lambda_: [1.0]}\n",
     7, "methods[0].zip", "expected a list of zip groups"),
    ("zip-and-grid", head_without("methods") + "methods:\n  - name: specfix_sampler\n    grid: {gamma: [0.1, 0.2]}\n    zip: [{gamma: [0.3], k: [2]}]\n",
     8, "methods[0].zip[0].gamma", "parameter 'gamma' is already set at methods[0].grid.gamma"),
    ("method-without-backbone", head_without("backbones"), 4, "methods[0]",
     "no backbone for method 'specfix_uniform': set top-level 'backbones' or this method's 'backbones'"),
    ("method-backbone-param", head_without("methods") + "methods:\n  - name: specfix_uniform\n    backbones:\n      - {name: specfix_r3d, params: {depth: 50}}\n",
     8, "methods[0].backbones[0].params.depth", "expected one of 10, 18, got 50"),
    ("duplicate-method-entries", head_without("methods") + "methods:\n  - name: specfix_uniform\n    params: {k: 8}\n  - name: specfix_uniform\n    label: again\n",
     8, "methods[1]", "gives the same trials as methods[0]"),
    ("evaluation-unknown", HEAD + "evaluation:\n  batchsize: 4\n", 7, "evaluation.batchsize",
     "unknown parameter 'batchsize' of evaluation (declared: "),
    ("evaluation-bad-value", HEAD + "evaluation: {batch_size: 0}\n", 6, "evaluation.batch_size", "expected a positive integer, got 0"),
    ("evaluation-device", HEAD + "evaluation: {device: gpu}\n", 6, "evaluation.device", "expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("evaluation-light-backbone", HEAD + "evaluation: {light_backbone: specfix_mobilenett}\n", 6, "evaluation.light_backbone",
     "did you mean 'specfix_mobilenet'?"),
    ("resources-zero-cpus", HEAD + "resources:\n  cpus: 0\n", 7, "resources.cpus", "expected a positive number, got 0"),
    ("resources-negative-gpus", HEAD + "resources: {cpus: 1, gpus: -0.5}\n", 6, "resources.gpus", "expected a non-negative number, got -0.5"),
    ("resources-gpus-fraction-above-one", HEAD + "resources: {gpus: 1.5}\n", 6, "resources.gpus",
     "expected a fraction of one GPU or a whole number of GPUs, got 1.5"),
    ("resources-unknown", HEAD + "resources: {cpu: 2}\n", 6, "resources.cpu", "did you mean 'cpus'?"),
    ("tracking-no-scheme", HEAD + "tracking:\n  uri: results/mlflow.db\n", 7, "tracking.uri", "unsupported tracking URI 'results/mlflow.db'"),
    ("tracking-sqlite-two-slashes", HEAD + "tracking: {uri: 'sqlite://mlflow.db'}\n", 6, "tracking.uri", "expected sqlite:///RELATIVE/PATH.db"),
    ("ray-num-cpus", HEAD + "ray: {num_cpus: four}\n", 6, "ray.num_cpus", "expected a positive integer or null, got 'four'"),
    ("ray-too-few-cpus", HEAD + "resources: {cpus: 4}\nray: {num_cpus: 2}\n", 6, "resources.cpus",
     "a trial asks for 4 CPUs but ray.num_cpus is 2: it would never start"),
    ("max-failures-negative", HEAD + "max_failures: -1\n", 6, "max_failures", "expected a non-negative integer, got -1"),
    ("timeout-zero", HEAD + "timeout_s: 0\n", 6, "timeout_s", "expected a positive number or null, got 0"),
    ("output-empty", HEAD + "output: ''\n", 6, "output", "expected a folder path, got ''"),
]


@pytest.mark.parametrize("text, line, field, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_spec_names_line_and_field(tmp_path, text, line, field, fragment):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
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
    assert str(info.value) == f"{path}: ray.num_cpus: expected a positive integer or null, got 0 (from override ray.num_cpus=0)"
