"""Grid expansion (cartesian products, zip groups, per-method backbones, several datasets) and the
trial hash: stable, insensitive to key order and to defaults written out or left implicit,
unchanged by resources/tracking/Ray/output, changed by anything that changes what a trial computes."""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path

from harness.grid import expand, spec_hash, trial_hash
from harness.registry import load_plugin_file
from harness.spec import load_spec
from harness.trial import Trial

load_plugin_file(Path(__file__).parent / "specs" / "specfix_plugins.py")

BASE = textwrap.dedent("""\
    experiment: grid
    dataset: {name: specfix_digits, params: {size: tiny}}
    backbones: [specfix_r3d]
    seeds: [0]
    methods: [specfix_uniform]
    """)


def load(tmp_path: Path, text: str, name: str = "spec.yaml", **overrides):
    path = tmp_path / name
    path.write_text(text)
    return load_spec(path, overrides=overrides or None)


def replace_block(text: str, key: str, block: str) -> str:
    """Replace the top-level ``key:`` line of BASE-like text with ``block``."""
    return re.sub(rf"^{key}:.*\n", block if block.endswith("\n") else block + "\n", text, flags=re.M)


def hashes(tmp_path: Path, text: str, name: str = "spec.yaml", **overrides) -> list[str]:
    return [trial.hash for trial in expand(load(tmp_path, text, name, **overrides))]


def test_trial_config_shape(tmp_path):
    (trial,) = expand(load(tmp_path, BASE))
    cfg = trial.to_dict()
    assert set(cfg) == {
        "experiment",
        "label",
        "dataset",
        "backbone",
        "method",
        "seed",
        "evaluation",
        "resources",
        "max_failures",
        "timeout_s",
        "code",
        "hash",
        "spec_hash",
        "name",
    }
    assert set(cfg["code"]) == {"dataset", "backbone", "method"}
    assert cfg["dataset"] == {
        "name": "specfix_digits",
        "params": {"num_frames": 64, "size": "tiny", "variant": "longrange"},
    }
    assert cfg["backbone"] == {"name": "specfix_r3d", "params": {"depth": 18, "width": 64}}
    assert cfg["method"] == {"name": "specfix_uniform", "params": {"aggregate": "mean", "k": 8}}
    assert (cfg["experiment"], cfg["label"], cfg["seed"], cfg["resources"]) == (
        "grid",
        "specfix_uniform",
        0,
        {"cpus": 1, "gpus": 0},
    )
    assert re.fullmatch(r"[0-9a-f]{16}", cfg["hash"]) and cfg["hash"] == trial_hash(trial)
    assert cfg["spec_hash"] == spec_hash(load(tmp_path, BASE)) != cfg["hash"]
    assert json.loads(json.dumps(cfg)) == cfg and Trial.from_dict(json.loads(json.dumps(cfg))) == trial


def test_cartesian_product_counts_and_order(tmp_path):
    text = replace_block(
        BASE, "methods", "methods:\n  - name: specfix_uniform\n    grid: {k: [1, 2, 4], aggregate: [mean, max]}\n"
    )
    text = replace_block(text, "seeds", "seeds: [0, 1]")
    text = replace_block(text, "backbones", "backbones: [specfix_r3d, specfix_mobilenet]")
    cfgs = expand(load(tmp_path, text))
    assert len(cfgs) == 2 * 3 * 2 * 2  # backbones x k x aggregate x seeds
    assert len({c.hash for c in cfgs}) == len(cfgs)
    # backbone outermost, then the grid in the order written (k before aggregate), seeds innermost
    order = [(c.backbone.name, c.method.params["k"], c.method.params["aggregate"], c.seed) for c in cfgs]
    assert order[:5] == [
        ("specfix_r3d", 1, "mean", 0),
        ("specfix_r3d", 1, "mean", 1),
        ("specfix_r3d", 1, "max", 0),
        ("specfix_r3d", 1, "max", 1),
        ("specfix_r3d", 2, "mean", 0),
    ]
    assert order[12][0] == "specfix_mobilenet"
    assert expand(load(tmp_path, text)) == cfgs  # stable


def test_zip_groups_move_together(tmp_path):
    text = replace_block(
        BASE,
        "methods",
        textwrap.dedent("""\
        methods:
          - name: specfix_sampler
            grid: {k: [2, 4]}
            zip:
              - {gamma: [0.1, 0.3], lambda_: [1.0, 2.0]}
              - {objective: [ac, sal-cl, sal-rank], margin: [null, 0.5, 1.0]}
        """),
    )
    cfgs = expand(load(tmp_path, text))
    assert len(cfgs) == 2 * 2 * 3
    pairs = Counter((c.method.params["gamma"], c.method.params["lambda_"]) for c in cfgs)
    assert pairs == {(0.1, 1.0): 6, (0.3, 2.0): 6}  # never (0.1, 2.0)
    rows = {(c.method.params["objective"], c.method.params["margin"]) for c in cfgs}
    assert rows == {("ac", None), ("sal-cl", 0.5), ("sal-rank", 1.0)}


def test_per_method_backbones_and_several_datasets(tmp_path):
    text = replace_block(
        BASE, "dataset", "datasets: [specfix_digits, {name: specfix_digits, params: {variant: move4}}, specfix_csv]"
    )
    text = replace_block(
        text,
        "methods",
        textwrap.dedent("""\
        methods:
          - name: specfix_uniform
            grid: {k: [1, 2]}
          - name: specfix_sampler
            backbones: [specfix_mobilenet, {name: specfix_r3d, params: {depth: 10}}, specfix_r3d]
        """),
    )
    cfgs = expand(load(tmp_path, text))
    assert len(cfgs) == 3 * (1 * 2 + 3 * 1)
    triples = Counter((c.method.name, c.backbone.name, c.backbone.params.get("depth")) for c in cfgs)
    assert triples == {
        ("specfix_uniform", "specfix_r3d", 18): 6,
        ("specfix_sampler", "specfix_mobilenet", None): 3,
        ("specfix_sampler", "specfix_r3d", 10): 3,
        ("specfix_sampler", "specfix_r3d", 18): 3,
    }
    assert [c.dataset.params.get("variant") for c in cfgs[::5]] == ["longrange", "move4", None]
    # trials on the same backbone are adjacent whichever method entry asked for it
    names = [
        (c.dataset.name, c.dataset.params.get("variant"), c.backbone.name, c.backbone.params.get("depth")) for c in cfgs
    ]
    assert names[:3] == [("specfix_digits", "longrange", "specfix_r3d", 18)] * 3


def test_configs_are_independent_copies(tmp_path):
    text = replace_block(BASE, "seeds", "seeds: [0, 1]")
    first, second = expand(load(tmp_path, text))
    first.dataset.params["size"] = "full"
    first.evaluation["batch_size"] = 99
    assert second.dataset.params["size"] == "tiny" and second.evaluation["batch_size"] == 8


def test_hash_insensitive_to_key_order_and_implicit_defaults(tmp_path):
    written = textwrap.dedent("""\
        experiment: grid
        dataset: {name: specfix_digits, params: {size: tiny}}
        backbones: [specfix_r3d]
        methods:
          - name: specfix_sampler
            params: {objective: ac}
            grid: {k: [2, 3]}
        """)
    reordered = textwrap.dedent("""\
        methods:
          - grid: {k: [2, 3]}
            params: {objective: ac}
            name: specfix_sampler
        backbones: [{params: {}, name: specfix_r3d}]
        dataset: {params: {size: tiny}, name: specfix_digits}
        experiment: grid
        """)
    explicit = textwrap.dedent("""\
        experiment: grid
        dataset: {name: specfix_digits, params: {size: tiny, variant: longrange, num_frames: 64}}
        backbones: [{name: specfix_r3d, params: {width: 64, depth: 18}}]
        seeds: [0]
        methods:
          - name: specfix_sampler
            params: {objective: ac, gamma: 0.5, lambda_: 1, margin: null}
            grid: {k: [2, 3]}
        evaluation: {batch_size: 8, device: auto, clip_len: 4}
        """)
    reference = hashes(tmp_path, written, "a.yaml")
    assert hashes(tmp_path, reordered, "b.yaml") == reference
    assert hashes(tmp_path, explicit, "c.yaml") == reference


def test_hash_ignores_where_and_how_a_trial_runs(tmp_path):
    reference = hashes(tmp_path, BASE, "a.yaml")
    elsewhere = BASE + textwrap.dedent("""\
        resources: {cpus: 2, gpus: 0.25}
        tracking: {uri: "http://127.0.0.1:5001", experiment: other}
        ray: {address: auto, max_concurrent: 2}
        output: /tmp/somewhere
        max_failures: 3
        timeout_s: 10
        description: a different description
        """)
    assert hashes(tmp_path, elsewhere, "b.yaml") == reference
    assert hashes(tmp_path, replace_block(BASE, "experiment", "experiment: renamed"), "c.yaml") == reference
    labelled = replace_block(BASE, "methods", "methods: [{name: specfix_uniform, label: my-label}]")
    assert hashes(tmp_path, labelled, "d.yaml") == reference


def test_any_real_change_changes_the_hash(tmp_path):
    reference = hashes(tmp_path, BASE, "a.yaml")[0]
    changes = {
        "method param": replace_block(BASE, "methods", "methods: [{name: specfix_uniform, params: {k: 9}}]"),
        "method name": replace_block(BASE, "methods", "methods: [specfix_sampler]"),
        "seed": replace_block(BASE, "seeds", "seeds: [1]"),
        "dataset param": replace_block(BASE, "dataset", "dataset: {name: specfix_digits, params: {size: small}}"),
        "dataset": replace_block(BASE, "dataset", "dataset: specfix_csv"),
        "backbone param": replace_block(BASE, "backbones", "backbones: [{name: specfix_r3d, params: {width: 32}}]"),
        "backbone": replace_block(BASE, "backbones", "backbones: [specfix_mobilenet]"),
        "evaluation": BASE + "evaluation: {clip_len: 8}\n",
        "device": BASE + "evaluation: {device: cpu}\n",
    }
    seen = {reference: "reference"}
    for i, (what, text) in enumerate(changes.items()):
        (changed,) = hashes(tmp_path, text, f"c{i}.yaml")
        assert changed not in seen, f"{what} gave the same hash as {seen.get(changed)}"
        seen[changed] = what


def test_hash_of_a_fixed_config_never_drifts():
    """Resume keys on this value: changing the hashing scheme must be a deliberate, visible change."""
    cfg = {
        "dataset": {"name": "d", "params": {"a": 1}},
        "backbone": {"name": "b", "params": {}},
        "method": {"name": "m", "params": {"k": 2, "g": 0.5}},
        "seed": 0,
        "evaluation": {"batch_size": 8},
        "resources": {"cpus": 1},
        "label": "x",
        "code": {"dataset": "version:1", "backbone": "version:1", "method": "source:0123456789abcdef"},
    }
    trial = Trial.from_dict(cfg)
    assert trial_hash(trial) == "150152b7dcdf1ed9"  # sha256 of the canonical JSON, first 16 hex
    other = Trial.from_dict({**cfg, "resources": {"cpus": 8}, "label": "y", "hash": "whatever", "name": "z"})
    assert trial_hash(other) == trial_hash(trial)
    edited = Trial.from_dict({**cfg, "code": {**cfg["code"], "method": "source:fedcba9876543210"}})
    assert trial_hash(edited) != trial_hash(trial)


def test_spec_hash_follows_content_not_formatting(tmp_path):
    reference = spec_hash(load(tmp_path, BASE, "a.yaml"))
    reformatted = (
        "# a comment\n" + BASE.replace("[specfix_r3d]", "\n  - specfix_r3d\n") + "evaluation: {batch_size: 8}\n"
    )
    assert spec_hash(load(tmp_path, reformatted, "b.yaml")) == reference
    assert spec_hash(load(tmp_path, BASE + "resources: {cpus: 2}\n", "c.yaml")) != reference
    assert spec_hash(load(tmp_path, replace_block(BASE, "seeds", "seeds: [0, 1]"), "d.yaml")) != reference


def test_trial_names_show_what_varies_and_omit_none(tmp_path):
    sampler = "{name: specfix_sampler, grid: {k: [4, 16]}, zip: [{objective: [ac, sal-cl], margin: [null, 0.5]}]}"
    text = replace_block(BASE, "methods", f"methods: [{sampler}, specfix_uniform]")
    text = replace_block(text, "seeds", "seeds: [0, 1]")
    names = [trial.name for trial in expand(load(tmp_path, text))]
    assert names[:4] == [
        "specfix_sampler[k=4,objective=ac,seed=0]",
        "specfix_sampler[k=4,objective=ac,seed=1]",
        "specfix_sampler[k=4,margin=0.5,objective=sal-cl,seed=0]",
        "specfix_sampler[k=4,margin=0.5,objective=sal-cl,seed=1]",
    ]
    assert "specfix_sampler[k=16,objective=ac,seed=0]" in names
    assert names[-2:] == ["specfix_uniform[seed=0]", "specfix_uniform[seed=1]"]
    assert len(set(names)) == len(names)
