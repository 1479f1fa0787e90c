"""Cached per-frame / per-clip feature arrays as stages of the store.

Backbone features of a split are computed once per (dataset manifest, backbone config, weights,
sampling, preprocessing), written atomically through ``StageStore`` and memory-mapped when read,
so every trial and re-run that needs them reads them in milliseconds instead of recomputing.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

ARRAY_FILE = "array.npy"


def weights_hash(module: Any) -> str:
    """16-hex hash of a module's parameters and buffers (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        array = t.float().numpy() if str(t.dtype) == "torch.bfloat16" else t.numpy()  # numpy has no bfloat16
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def feature_deps(dataset: Any, split: str, backbone: Mapping[str, Any], weights: str, sampling: Mapping[str, Any],
                 preprocessing: Mapping[str, Any]) -> dict[str, Any]:
    """The stage key of a feature array: what the features depend on, nothing else."""
    return {"dataset": dataset.name, "manifest": dataset.manifest_hash(), "split": split, "backbone": dict(backbone),
            "weights": weights, "sampling": dict(sampling), "preprocessing": dict(preprocessing)}


def cached_array_stage(store: Any, name: str, deps: Mapping[str, Any], compute_fn: Callable[[], np.ndarray]) -> np.memmap:
    """``compute_fn()`` once for these deps (across processes and re-runs), then a read-only memory map of it."""

    def compute(tmp: Path) -> None:
        array = np.asarray(compute_fn())
        np.save(tmp / ARRAY_FILE, array)

    folder = store.get_or_compute(name, dict(deps), compute)
    return np.load(folder / ARRAY_FILE, mmap_mode="r")
