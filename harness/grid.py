"""Grid expansion: a ``Spec`` -> the list of ``Trial``s, and the trial's identity hash.

The grid is the product dataset x backbone x method entry x (its grid product x its zip groups)
x seed. Every trial has all declared parameters resolved (defaults filled in), so that
``trial_hash`` is the same whether a default was written out or left implicit, and whatever the
key order. The hash also covers the code version of the trial's method, backbone and dataset
plugins (``harness.hashing.code_version``): editing a plugin's code reruns its trials. Resume,
MLflow tags and the report all key on that hash.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from typing import Any, Iterator

from harness.hashing import canonical_json, code_version, content_hash
from harness.naming import name_trials
from harness.params import resolve_params
from harness.registry import BACKBONES, DATASETS, METHODS
from harness.spec import MethodEntry, PluginRef, Spec, format_path
from harness.trial import Plugin, Trial

# What a trial's result depends on. Resources, tracking, Ray settings and the output folder change
# where and how fast it runs, not what it computes.
HASHED_FIELDS = ("dataset", "backbone", "method", "seed", "evaluation", "code")


def trial_hash(trial: Trial) -> str:
    """16 hex digits identifying a trial: sha256 of the canonical JSON of its resolved dataset,
    backbone, method (name + params), seed, evaluation settings and plugin code versions."""
    identity = trial.to_dict()
    return content_hash({key: identity[key] for key in HASHED_FIELDS})


def spec_hash(spec: Spec) -> str:
    """16 hex digits of what the spec runs (its trials' hashes and labels, in order) and how
    (resources, tracking, Ray, output, retries, timeout): unchanged by comments, formatting, key
    order, and defaults written out or left implicit. ``spec.source_hash`` hashes the file's bytes."""
    return _spec_digest(spec, [trial for trial, _ in expand_with_origins(spec)])


def expand(spec: Spec) -> list[Trial]:
    """All trials of the spec, in a stable order (see the module docstring); each also carries the
    ``spec_hash`` of the grid it belongs to (not part of its own hash) and its display name."""
    trials = [trial for trial, _ in expand_with_origins(spec)]
    digest = _spec_digest(spec, trials)
    return [dataclasses.replace(trial, spec_hash=digest, name=name) for trial, name in zip(trials, name_trials(trials))]


def _spec_digest(spec: Spec, trials: list[Trial]) -> str:
    unhashed = ("datasets", "backbones", "methods", "seeds", "description")  # the trials cover the first four
    settings = {key: value for key, value in spec.to_dict().items() if key not in unhashed}
    return content_hash({"trials": [(trial.hash, trial.label) for trial in trials], "settings": settings})


def expand_with_origins(spec: Spec) -> Iterator[tuple[Trial, dict[str, tuple]]]:
    """Like ``expand`` (without spec hash and name), each trial paired with the spec field paths of
    its dataset, backbone and method."""
    # per method entry: its backbones by resolved identity, and its parameter sets
    entries = [
        ({_key(_resolved(BACKBONES, b)): b for b in (entry.backbones or spec.backbones)}, method_param_sets(entry))
        for entry in spec.methods
    ]
    for dataset in spec.datasets:
        dataset_cfg = _resolved(DATASETS, dataset)
        for backbone_key, backbone_cfg in _backbone_axis(spec):
            for entry, (backbones, param_sets) in zip(spec.methods, entries):
                if backbone_key not in backbones:
                    continue
                code = {
                    "dataset": code_version(DATASETS.get(dataset_cfg.name)),
                    "backbone": code_version(BACKBONES.get(backbone_cfg.name)),
                    "method": code_version(METHODS.get(entry.name)),
                }
                for params in param_sets:
                    for seed in spec.seeds:
                        trial = Trial(
                            experiment=spec.experiment,
                            label=entry.label,
                            dataset=copy.deepcopy(dataset_cfg),
                            backbone=copy.deepcopy(backbone_cfg),
                            method=Plugin(entry.name, copy.deepcopy(params)),
                            seed=seed,
                            evaluation=copy.deepcopy(spec.evaluation),
                            resources=dict(spec.resources),
                            max_failures=spec.max_failures,
                            timeout_s=spec.timeout_s,
                            code=dict(code),
                        )
                        trial = dataclasses.replace(trial, hash=trial_hash(trial))
                        origin = {
                            "dataset": dataset.where,
                            "backbone": backbones[backbone_key].where,
                            "method": entry.where,
                        }
                        yield trial, origin


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


def _resolved(registry, ref: PluginRef) -> Plugin:
    params = resolve_params(getattr(registry.get(ref.name), "params", {}), copy.deepcopy(ref.params))
    return Plugin(ref.name, params, dict(ref.weights) if ref.weights else None)  # weights: a backbone's checkpoint


def _key(plugin: Plugin) -> str:
    return canonical_json(plugin.to_dict())


def _backbone_axis(spec: Spec) -> list[tuple[str, Plugin]]:
    """Every distinct resolved backbone, top-level ones first, then per-method ones, in spec order."""
    axis: dict[str, Plugin] = {}
    for ref in spec.backbones + [b for entry in spec.methods for b in (entry.backbones or [])]:
        cfg = _resolved(BACKBONES, ref)
        axis.setdefault(_key(cfg), cfg)
    return list(axis.items())


def check_distinct_trials(spec: Spec) -> None:
    """Two spec entries that give the same trial would run it twice and clash on resume: refuse them
    with a ``SpecError`` pointing at the second entry (called where the grid is expanded for a run)."""
    seen: dict[str, dict[str, tuple]] = {}
    for trial, origin in expand_with_origins(spec):
        if trial.hash not in seen:
            seen[trial.hash] = origin
            continue
        first = seen[trial.hash]
        part = next((p for p in ("dataset", "backbone", "method") if origin[p] != first[p]), "method")
        raise spec.error(
            origin[part],
            f"gives the same trials as {format_path(first[part])} "
            f"(e.g. method '{trial.method.name}', seed {trial.seed}): remove one",
        )
