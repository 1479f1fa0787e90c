"""Content-addressed store for shared stage outputs (trained heavy classifiers, cached features...).

A stage's key is a hash of its name and of everything it depends on, so a stage runs once per grid
and once across re-runs. Concurrent trials (Ray workers, or processes on several nodes sharing the
folder) take a file lock on the key: the first computes into a private temporary folder that is
renamed into place when complete, the others wait and then read it. A reader can never see a
half-written output, and a crash mid-compute leaves only a temporary folder that is ignored.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from filelock import FileLock


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no whitespace variation; tuples as lists; paths as strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


class StageStore:
    """``results/stages/<name>/<key>/`` holds one computed stage; ``meta.json`` records its deps."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, name: str, deps: Mapping[str, Any]) -> str:
        return content_hash({"stage": name, "deps": deps})

    def path(self, name: str, deps: Mapping[str, Any]) -> Path:
        return self.root / name / self.key(name, deps)

    def exists(self, name: str, deps: Mapping[str, Any]) -> bool:
        return (self.path(name, deps) / "meta.json").exists()

    def get_or_compute(self, name: str, deps: Mapping[str, Any], compute: Callable[[Path], None]) -> Path:
        """Return the stage folder, running ``compute(tmpdir)`` first if no complete output exists."""

        final = self.path(name, deps)

        def build(tmp: Path) -> None:
            started = time.time()
            compute(tmp)
            meta = {"stage": name, "key": final.name, "deps": deps, "seconds": round(time.time() - started, 3),
                    "pid": os.getpid(), "host": os.uname().nodename}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))

        return build_once(final, "meta.json", build)
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if (final / "meta.json").exists():  # another process finished it while we waited
                return final
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
            try:
                started = time.time()
                compute(tmp)
                meta = {"stage": name, "key": final.name, "deps": deps, "seconds": round(time.time() - started, 3),
                        "pid": os.getpid(), "host": os.uname().nodename}
                (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
                if final.exists():  # leftover without meta.json: an interrupted earlier attempt
                    shutil.rmtree(final)
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return final


def build_once(final: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Build folder ``final`` exactly once across processes; ``final/marker`` says it is complete.

    Under a file lock, ``build(tmpdir)`` writes into a private temporary folder (it must create
    ``marker`` last), which is renamed into place: readers never see a half-built folder, and a
    crash leaves only a temporary folder behind.
    """
    final = Path(final)
    if (final / marker).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if (final / marker).exists():  # another process finished it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            build(tmp)
            if final.exists():  # leftover without its marker: an interrupted earlier attempt
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
