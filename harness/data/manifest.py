"""Dataset manifest: what exactly a trial read, as one hash recorded with every trial.

Two copies of "the same" dataset differ more often than users think (re-encoded videos, a few
missing YouTube videos, an edited annotation file); results computed on them must never be mixed
silently. The manifest hashes the annotation files' contents and the sorted list of the video
files the splits refer to, with their sizes (-1 for a missing file). Paths are taken relative to
the dataset root, so the same copy in another folder hashes the same.

Hashing the annotations of a large dataset takes a while, so the result is cached in memory and
on disk (``$SKIMBENCH_CACHE``, default ``~/.cache/skimbench``), keyed by every file's path, size and
modification time: any change to a file invalidates it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.stages import content_hash

_MEMO: dict[str, str] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("SKIMBENCH_CACHE", Path.home() / ".cache" / "skimbench")) / "manifests"


def _stat(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
        return path, st.st_size, st.st_mtime_ns
    except OSError:
        return path, -1, 0


def _relative(path: str, root: str | None) -> str:
    if root:
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest(dataset: Any) -> dict[str, Any]:
    """The manifest itself: annotation files with content hashes, video files with sizes."""
    root = dataset.root_dir
    root = str(root) if root else None
    annotations = [[_relative(p, root), _file_sha256(p) if os.path.isfile(p) else "missing"]
                   for p in sorted(dataset.annotation_files())]
    videos = [[_relative(p, root), size] for p, size, _ in (_stat(p) for p in dataset.video_paths())]
    return {"annotations": annotations, "videos": sorted(videos)}


def manifest_hash(dataset: Any) -> str:
    """16-hex hash of ``manifest(dataset)``, computed once per state of the files."""
    files = sorted(set(dataset.annotation_files()) | set(dataset.video_paths()))
    key = content_hash({"files": [_stat(p) for p in files]}, 32)
    if key in _MEMO:
        return _MEMO[key]
    cached = cache_dir() / f"{key}.json"
    try:
        value = json.loads(cached.read_text())["manifest_hash"]
    except (OSError, ValueError, KeyError):
        value = content_hash(manifest(dataset))
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump({"manifest_hash": value, "num_files": len(files)}, fh)
            os.replace(tmp, cached)
        except OSError:  # a read-only home must not fail a trial
            pass
    _MEMO[key] = value
    return value
