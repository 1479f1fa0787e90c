"""Valid specs load into a ``Spec`` with every default filled in; short forms, YAML anchors and
command-line overrides work; the documented example stays valid."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from pathlib import Path

import pytest

from harness.grid import expand
from harness.registry import BACKBONES, DATASETS, METHODS, load_plugin_file
from harness.settings import EVALUATION_PARAMS
from harness.spec import SpecError, load_spec

load_plugin_file(Path(__file__).parent / "specs" / "specfix_plugins.py")

FULL = textwrap.dedent("""\
    experiment: round-trip.1
    description: "every field written out"
    datasets:
      - {name: specfix_digits, params: {variant: move4, size: small}}
      - name: specfix_csv
        params: {root: /data/videos}
    backbones: [{name: specfix_r3d, params: {width: 8}}, specfix_mobilenet]
    seeds: [0, 1, 2]
    methods:
      - name: specfix_uniform
        params: {aggregate: max}
        grid: {k: [1, 2, 4]}
        label: uniform-max
      - name: specfix_sampler
        params: {objective: sal-rank, margin: 0.5}
        grid: {k: [2, 4]}
        zip: [{gamma: [0.1, 0.3], lambda_: [1, 2.5]}]
        backbones: [{name: specfix_r3d, params: {depth: 10}}]
    evaluation: {batch_size: 4, clip_len: 8, device: cuda:1, heavy_epochs: 3}
    resources: {cpus: 2, gpus: 0.5}
    tracking: {uri: "http://127.0.0.1:5000", experiment: rt}
    ray: {address: auto, num_cpus: 4, num_gpus: 1, max_concurrent: 3}
    output: out/dir
    max_failures: 2
    timeout_s: 90.5
    """)


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_full_spec_round_trip(tmp_path):
    path = write(tmp_path, FULL)
    spec = load_spec(path)
    assert spec.path == path and spec.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (spec.experiment, spec.description) == ("round-trip.1", "every field written out")
    assert [(d.name, d.params) for d in spec.datasets] == [
        ("specfix_digits", {"variant": "move4", "size": "small"}),
        ("specfix_csv", {"root": "/data/videos"}),
    ]
    assert [(b.name, b.params) for b in spec.backbones] == [("specfix_r3d", {"width": 8}), ("specfix_mobilenet", {})]
    assert spec.seeds == [0, 1, 2]
    uniform, sampler = spec.methods
    assert (uniform.name, uniform.label, uniform.params, uniform.grid, uniform.zip, uniform.backbones) == (
        "specfix_uniform",
        "uniform-max",
        {"aggregate": "max"},
        {"k": [1, 2, 4]},
        [],
        None,
    )
    assert sampler.label == "specfix_sampler"  # defaults to the method name
    assert sampler.zip == [{"gamma": [0.1, 0.3], "lambda_": [1.0, 2.5]}]  # ints widened to declared floats
    assert isinstance(sampler.zip[0]["lambda_"][0], float)
    assert [(b.name, b.params) for b in sampler.backbones] == [("specfix_r3d", {"depth": 10})]
    assert spec.evaluation == {
        **{k: p.default for k, p in EVALUATION_PARAMS.items()},
        "batch_size": 4,
        "clip_len": 8,
        "device": "cuda:1",
        "heavy_epochs": 3,
    }
    assert spec.resources == {"cpus": 2, "gpus": 0.5}
    assert spec.tracking == {"uri": "http://127.0.0.1:5000", "experiment": "rt"}
    assert spec.ray == {"address": "auto", "num_cpus": 4, "num_gpus": 1, "max_concurrent": 3}
    assert (spec.output, spec.max_failures, spec.timeout_s) == ("out/dir", 2, 90.5)
    assert json.loads(json.dumps(spec.to_dict())) == spec.to_dict()  # JSON-able, for config artifacts


def test_minimal_spec_gets_defaults_and_short_forms(tmp_path):
    spec = load_spec(
        write(
            tmp_path,
            "experiment: mini\ndataset: specfix_digits\nbackbones: specfix_r3d\nseeds: 7\nmethods: [specfix_uniform]\n",
        )
    )
    assert [(d.name, d.params) for d in spec.datasets] == [("specfix_digits", {})]
    assert [(b.name, b.params) for b in spec.backbones] == [("specfix_r3d", {})]
    assert spec.seeds == [7]
    assert spec.methods[0].name == spec.methods[0].label == "specfix_uniform"
    assert spec.evaluation == {k: p.default for k, p in EVALUATION_PARAMS.items()}
    assert spec.resources == {"cpus": 1, "gpus": 0}
    assert spec.tracking == {"uri": "sqlite:///results/mlflow.db", "experiment": "mini"}
    assert spec.ray == {"address": None, "num_cpus": None, "num_gpus": None, "max_concurrent": None}
    assert (spec.output, spec.max_failures, spec.timeout_s, spec.description) == ("results", 0, None, "")


def test_seeds_default_to_zero_and_tracking_follows_output(tmp_path):
    spec = load_spec(
        write(
            tmp_path,
            "experiment: e\ndataset: specfix_digits\nbackbones: [specfix_r3d]\n"
            "methods: [specfix_uniform]\noutput: /scratch/runs\n",
        )
    )
    assert spec.seeds == [0]
    assert spec.tracking["uri"] == "sqlite:////scratch/runs/mlflow.db"


def test_anchors_and_merge_keys(tmp_path):
    spec = load_spec(
        write(
            tmp_path,
            textwrap.dedent("""\
        experiment: anchors
        dataset: specfix_digits
        backbones: [specfix_r3d]
        methods:
          - name: specfix_sampler
            params: &shared {objective: sal-cl, gamma: 0.2}
          - name: specfix_sampler
            params: &merged
              <<: *shared
              gamma: 0.7
          - name: specfix_sampler
            params: *merged
            grid: {k: [1, 2]}
        """),
        )
    )
    assert spec.methods[0].params == {"objective": "sal-cl", "gamma": 0.2}
    assert spec.methods[1].params == {"objective": "sal-cl", "gamma": 0.7}  # explicit key beats the merged one
    assert spec.methods[2].params == {"objective": "sal-cl", "gamma": 0.7}  # a merged mapping reused by alias


def test_overrides_replace_fields_before_validation(tmp_path):
    path = write(tmp_path, FULL)
    spec = load_spec(
        path,
        overrides={
            "ray.address": "10.0.0.1:6379",
            "output": "/tmp/elsewhere",
            "seeds": [5],
            "resources.cpus": 1,
            "tracking.uri": "sqlite:///x.db",
        },
    )
    assert spec.ray["address"] == "10.0.0.1:6379" and spec.ray["num_cpus"] == 4
    assert (spec.output, spec.seeds, spec.resources["cpus"]) == ("/tmp/elsewhere", [5], 1)
    assert spec.tracking["uri"] == "sqlite:///x.db"
    assert spec.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()  # the file, not the overrides
    mini = write(
        tmp_path,
        "experiment: e\ndataset: specfix_digits\nbackbones: [specfix_r3d]\nmethods: [specfix_uniform]\n",
        "mini.yaml",
    )
    assert load_spec(mini, overrides={"ray.num_cpus": 2}).ray["num_cpus"] == 2  # creates the missing 'ray' block


def test_spec_error_helper_points_at_fields(tmp_path):
    spec = load_spec(write(tmp_path, FULL))
    err = spec.error(("methods", 1, "zip", 0, "gamma"), "a later problem")
    assert isinstance(err, SpecError)
    assert str(err) == f"{spec.path}:17: methods[1].zip[0].gamma: a later problem"
    assert spec.error(("methods", 0, "params", "k"), "x").line == 11  # missing key: the line of its mapping


def test_yaml_booleans_and_nulls_are_plain_values(tmp_path):
    spec = load_spec(
        write(
            tmp_path,
            "experiment: b\ndataset: specfix_digits\nbackbones: [specfix_r3d]\n"
            "methods: [{name: specfix_sampler, params: {margin: null}}]\n"
            "evaluation: {autocast: true, channels_last: no}\ntimeout_s: ~\n",
        )
    )
    assert spec.methods[0].params == {"margin": None}
    assert (spec.evaluation["autocast"], spec.evaluation["channels_last"], spec.timeout_s) == (True, False, None)


def _doc_example() -> str:
    text = (Path(__file__).parents[1] / "docs" / "spec.md").read_text()
    return re.search(r"```yaml\n(.*?)```", text, re.S).group(1)


def test_documented_full_example_is_valid(tmp_path):
    example = _doc_example()
    names = re.findall(r"name: ([\w-]+)", example)
    registered = set(METHODS.names()) | set(DATASETS.names()) | set(BACKBONES.names())
    missing = sorted(set(names) - registered)
    if missing:  # the example uses built-in plugins that other parts of the project provide
        pytest.skip(f"built-in plugins not available: {missing}")
    spec = load_spec(write(tmp_path, example))
    assert len(expand(spec)) == 26  # the count the document states
