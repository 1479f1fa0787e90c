"""Grid expansion: a ``Spec`` -> the list of trial configurations, and the trial's identity hash.

The grid is the product dataset x backbone x method entry x (its grid product x its zip groups)
x seed. Every trial configuration is a plain JSON-able dict with all declared parameters resolved
(defaults filled in), so that ``trial_hash`` is the same whether a default was written out or left
implicit, and whatever the key order. Resume, MLflow tags and the report all key on that hash.
"""
from __future__ import annotations

import copy
import json
import itertools
from typing import Any, Iterator

from harness.params import resolve_params
from harness.registry import BACKBONES, DATASETS, METHODS
from harness.spec import MethodEntry, PluginRef, Spec, format_path
from harness.stages import canonical_json, content_hash

# What a trial's result depends on. Resources, tracking, Ray settings and the output folder change
# where and how fast it runs, not what it computes.
HASHED_FIELDS = ("dataset", "backbone", "method", "seed", "evaluation")


def trial_hash(cfg: dict[str, Any]) -> str:
    """16 hex digits identifying a trial: sha256 of the canonical JSON of its resolved
    dataset, backbone, method (name + params), seed and evaluation settings."""
    identity = {key: cfg[key] for key in HASHED_FIELDS}
    identity["method"] = {"name": cfg["method"]["name"], "params": cfg["method"]["params"]}
    return content_hash(identity)


def spec_hash(spec: Spec) -> str:
    """16 hex digits of what the spec runs (its trials' hashes and labels, in order) and how
    (resources, tracking, Ray, output, retries, timeout): unchanged by comments, formatting, key
    order, and defaults written out or left implicit. ``spec.source_hash`` hashes the file's bytes."""
    return _spec_digest(spec, [cfg for cfg, _ in expand_with_origins(spec)])


def expand(spec: Spec) -> list[dict[str, Any]]:
    """All trial configurations of the spec, in a stable order (see the module docstring); each
    also carries the ``spec_hash`` of the grid it belongs to (not part of its own hash)."""
    cfgs = [cfg for cfg, _ in expand_with_origins(spec)]
    digest = _spec_digest(spec, cfgs)
    for cfg in cfgs:
        cfg["spec_hash"] = digest
    return cfgs


def _spec_digest(spec: Spec, cfgs: list[dict[str, Any]]) -> str:
    unhashed = ("datasets", "backbones", "methods", "seeds", "description")  # the trials cover the first four
    settings = {key: value for key, value in spec.to_dict().items() if key not in unhashed}
    return content_hash({"trials": [(cfg["hash"], cfg["label"]) for cfg in cfgs], "settings": settings})


def expand_with_origins(spec: Spec) -> Iterator[tuple[dict[str, Any], dict[str, tuple]]]:
    """Like ``expand``, each trial paired with the spec field paths of its dataset, backbone and method."""
    # per method entry: its backbones by resolved identity, and its parameter sets
    entries = [({_key(_resolved(BACKBONES, b)): b for b in (entry.backbones or spec.backbones)}, method_param_sets(entry))
               for entry in spec.methods]
    for dataset in spec.datasets:
        dataset_cfg = _resolved(DATASETS, dataset)
        for backbone_key, backbone_cfg in _backbone_axis(spec):
            for entry, (backbones, param_sets) in zip(spec.methods, entries):
                if backbone_key not in backbones:
                    continue
                for params in param_sets:
                    for seed in spec.seeds:
                        cfg = {
                            "experiment": spec.experiment,
                            "label": entry.label,
                            "dataset": copy.deepcopy(dataset_cfg),
                            "backbone": copy.deepcopy(backbone_cfg),
                            "method": {"name": entry.name, "params": copy.deepcopy(params)},
                            "seed": seed,
                            "evaluation": copy.deepcopy(spec.evaluation),
                            "resources": dict(spec.resources),
                            "max_failures": spec.max_failures,
                            "timeout_s": spec.timeout_s,
                        }
                        cfg["hash"] = trial_hash(cfg)
                        origin = {"dataset": dataset.where, "backbone": backbones[backbone_key].where, "method": entry.where}
                        yield cfg, origin


def method_param_sets(entry: MethodEntry) -> list[dict[str, Any]]:
    """The resolved parameter sets of one method entry: fixed params, then the product of each grid
    axis (in the order written) and each zip group (its rows move together)."""
    declared = getattr(METHODS.get(entry.name), "params", {})
    axes = [[{key: value} for value in values] for key, values in entry.grid.items()]
    axes += [[dict(zip(group, row)) for row in zip(*group.values())] for group in entry.zip]
    sets = []
    for combination in itertools.product(*axes):
        given = dict(entry.params)
        for part in combination:
            given.update(part)
        sets.append(resolve_params(declared, copy.deepcopy(given)))
    return sets


def _resolved(registry, ref: PluginRef) -> dict[str, Any]:
    cfg = {"name": ref.name, "params": resolve_params(getattr(registry.get(ref.name), "params", {}), copy.deepcopy(ref.params))}
    if ref.weights:  # a backbone's pretrained checkpoint {path, sha256}, carried into the trial
        cfg["weights"] = dict(ref.weights)
    return cfg


def _key(cfg: dict[str, Any]) -> str:
    return canonical_json(cfg)


def _backbone_axis(spec: Spec) -> list[tuple[str, dict[str, Any]]]:
    """Every distinct resolved backbone, top-level ones first, then per-method ones, in spec order."""
    axis: dict[str, dict[str, Any]] = {}
    for ref in spec.backbones + [b for entry in spec.methods for b in (entry.backbones or [])]:
        cfg = _resolved(BACKBONES, ref)
        axis.setdefault(_key(cfg), cfg)
    return list(axis.items())


def swept_params(trials: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per method label: the parameters whose values differ between its trials (its budget curve)."""
    values: dict[str, dict[str, set[str]]] = {}
    for cfg in trials:
        label = cfg.get("label") or cfg["method"]["name"]
        for key, value in cfg["method"]["params"].items():
            values.setdefault(label, {}).setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
    return {label: [k for k, seen in params.items() if len(seen) > 1] for label, params in values.items()}


def check_distinct_trials(spec: Spec) -> None:
    """Two spec entries that give the same trial would run it twice and clash on resume: refuse them
    with a ``SpecError`` pointing at the second entry (called where the grid is expanded for a run)."""
    seen: dict[str, dict[str, tuple]] = {}
    for cfg, origin in expand_with_origins(spec):
        if cfg["hash"] not in seen:
            seen[cfg["hash"]] = origin
            continue
        first = seen[cfg["hash"]]
        part = next((p for p in ("dataset", "backbone", "method") if origin[p] != first[p]), "method")
        raise spec.error(origin[part], f"gives the same trials as {format_path(first[part])} "
                                       f"(e.g. method '{cfg['method']['name']}', seed {cfg['seed']}): remove one")
