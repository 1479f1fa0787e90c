"""Trials whose MLflow run could not be created or closed: a JSON record in ``OUTPUT/unrecorded/``.

``harness.launchers.execute`` writes ``HASH.json`` (the trial, the error, the traceback, the
time) when the tracking store refuses the trial's run, so the failure is not lost. The next launch
of the grid reports these trials and skips them; ``--rerun-failed`` (or ``--force``) runs them
again, and a trial that then finishes in MLflow has its record removed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def write(folder: Path, trial: dict[str, Any], error: str, details: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{trial['hash']}.json"
    record = {
        "trial": trial,
        "error": error,
        "traceback": details,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str))  # ASCII: lone surrogates are escaped
    tmp.replace(path)
    return path


def read(folder: Path) -> dict[str, str]:
    """trial hash -> the error of its record."""
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found[path.stem] = str(json.loads(path.read_text()).get("error", ""))
        except (OSError, ValueError):
            found[path.stem] = "unreadable record"
    return found


def remove(folder: Path, trial_hash: str) -> None:
    (folder / f"{trial_hash}.json").unlink(missing_ok=True)
