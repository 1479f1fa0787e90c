"""One display name per trial, benchopt style: ``scsampler[k=4,objective=ac]``.

The name is the spec entry's label, then in brackets the parameters whose values differ between
the trials of that label (sorted by name; a parameter that is None in a trial is left out of its
name), then the dataset, backbone and seed where they differ between those trials. The same name
is shown by ``skimbench plan``, the live view, ``skimbench results``, the MLflow run names (and the
``skimbench.name`` tag) and the report's legends.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence


def format_value(value: Any) -> str:
    """``4``, ``0.1``, ``ac``, ``true``: short, and the same for a value written as 4 or 4.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def trial_name(
    label: str, params: Mapping[str, Any], shown: Sequence[str] = (), extra: Mapping[str, Any] | None = None
) -> str:
    """``label[p=v,...]`` for the ``shown`` parameters (None values omitted), then ``extra``
    (dataset, backbone, seed: only those that vary) in the order given."""
    parts = [f"{key}={format_value(params[key])}" for key in sorted(shown) if params.get(key) is not None]
    parts += [f"{key}={format_value(value)}" for key, value in (extra or {}).items()]
    return f"{label}[{','.join(parts)}]" if parts else label


def name_trials(trials: Sequence[Any]) -> list[str]:
    """The display name of each ``harness.trial.Trial`` of a grid, given all of them."""
    groups: dict[str, list[Any]] = {}
    for trial in trials:
        groups.setdefault(trial.label, []).append(trial)
    names = []
    for trial in trials:
        group = groups[trial.label]
        keys = sorted({key for t in group for key in t.method.params})
        shown = [key for key in keys if _varies(t.method.params.get(key) for t in group)]
        extra = {}
        if _varies(t.dataset.name for t in group):
            extra["dataset"] = trial.dataset.name
        if _varies(t.backbone.name for t in group):
            extra["backbone"] = trial.backbone.name
        if _varies(t.seed for t in group):
            extra["seed"] = trial.seed
        names.append(trial_name(trial.label, trial.method.params, shown, extra))
    return names


def _varies(values) -> bool:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1
