"""Content hashes: stable JSON, short sha256 digests, and the code version of a plugin class.

Used by the spec (distinct values), the grid (trial identity), the stage store (stage keys) and
compute accounting (the FLOP cache). A plugin's code version is its declared ``version`` class
attribute when it has one, else a hash of the source file of the module that defines it, so that
editing a method, backbone or dataset plugin changes the identity of the trials that use it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no whitespace variation; tuples as lists; paths as strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def source_file(cls: type) -> Path | None:
    """The file of the module that defines ``cls`` (None for classes without one, e.g. in a REPL)."""
    module = sys.modules.get(cls.__module__)
    try:
        path = inspect.getsourcefile(module) if module is not None else inspect.getsourcefile(cls)
    except TypeError:  # built-in module
        return None
    return Path(path).resolve() if path and Path(path).is_file() else None


def code_version(cls: type) -> str:
    """``version`` declared on the class (``"version:1.2"``), else ``"source:<16 hex>"`` of its module file."""
    declared = getattr(cls, "version", None)
    if declared is not None:
        return f"version:{declared}"
    path = source_file(cls)
    if path is None:
        return f"class:{cls.__module__}.{cls.__qualname__}"
    return "source:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
