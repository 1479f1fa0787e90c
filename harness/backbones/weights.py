"""Pretrained weights for a backbone: ``weights: {path: ..., sha256: ...}`` in a backbone entry.

Nothing is downloaded: ``path`` is a local checkpoint, loaded with ``torch.load(weights_only=True)``
(a checkpoint can never run code), after its SHA-256 is checked against ``sha256``. The hash, not
the path, is what a stage key holds (``weights_deps``): moving the file changes nothing, changing
its content changes every stage trained or extracted with it.

Key mapping (``map_state_dict``), in this order, for each checkpoint key:

1. Containers are unwrapped: a dict under ``state_dict`` (Lightning, MMAction2), ``model_state``
   (PySlowFast), ``model`` or ``module`` is the state dict.
2. Wrapper prefixes are stripped, repeatedly: ``module.`` (DataParallel / DDP), ``model.``,
   ``backbone.`` (MMAction2 recognisers), ``encoder.``.
3. The key is kept if the model has it; else tried under ``body.`` (``external:<lib>:<model>``
   backbones wrap the library's module as ``body``); else renamed from the torchvision / timm ResNet
   layout to the built-in one: ``conv1.`` -> ``stem.0.``, ``bn1.`` -> ``stem.1.``, ``layerN.`` ->
   ``stages.<N-1>.blocks.`` (2-D ResNets; torchvision's video ResNets already use ``stem.``), and
   classifier names ``fc.``, ``head.fc.``, ``classifier.``, ``last_linear.``, ``blocks.5.proj.``
   (PyTorchVideo) -> the model's ``head``.
4. The head is dropped, and left as the model initialised it, when its class count differs from the
   model's (fine-tuning Kinetics-400 weights on another dataset); every other shape mismatch, a
   parameter the checkpoint lacks, or a checkpoint key that maps to nothing is an error.

Errors are ``WeightsError``: one line naming the file and the first offending key.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from harness.backbones import build_backbone

CONTAINERS = ("state_dict", "model_state", "model", "module")
PREFIXES = ("module.", "model.", "backbone.", "encoder.")
HEAD_NAMES = ("fc.", "head.fc.", "classifier.", "last_linear.", "blocks.5.proj.", "head.")
RESNET_RENAMES = (
    (re.compile(r"^conv1\."), "stem.0."),
    (re.compile(r"^bn1\."), "stem.1."),
    (re.compile(r"^layer(\d+)\."), lambda m: f"stages.{int(m[1]) - 1}.blocks."),
)


class WeightsError(ValueError):
    """A checkpoint that cannot be used; the message is one line naming the file."""


@dataclass
class LoadReport:
    loaded: int
    dropped_head: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)


def sha256_file(path: str | Path) -> str:
    """The file's SHA-256, computed once per (path, size, modification time) in a process: every stage
    key of a trial holds it, and a checkpoint can be hundreds of MB."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the cache key only
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_weights(weights: Mapping[str, Any]) -> Path:
    """The checkpoint path of a ``{path, sha256}`` entry, after checking that it exists and its hash matches."""
    if not isinstance(weights, Mapping) or "path" not in weights:
        raise WeightsError(f"weights must be {{path: ..., sha256: ...}}, got {weights!r}")
    path = Path(str(weights["path"])).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found (nothing is downloaded: give a local checkpoint)")
    actual = sha256_file(path)
    expected = str(weights.get("sha256") or "").lower()
    if not expected:
        raise WeightsError(f"{path}: weights need 'sha256' (this file's is {actual})")
    if actual != expected:
        raise WeightsError(f"{path}: sha256 mismatch: expected {expected}, file has {actual}")
    return path


def weights_deps(weights: Mapping[str, Any] | None) -> str | None:
    """What a stage key holds for a backbone's weights: the checked SHA-256 (None for random initialisation)."""
    return None if not weights else sha256_file(check_weights(weights))


def _unwrap(state: Any) -> dict[str, torch.Tensor]:
    while isinstance(state, dict):
        inner = next((state[k] for k in CONTAINERS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError("not a state dict of tensors")
    return state


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _head_target(key: str, head_keys: list[str]) -> str | None:
    """The model's head parameter a classifier key of the checkpoint stands for (by its last name)."""
    for name in HEAD_NAMES:
        if key.startswith(name):
            suffix = key[len(name) :]
            matches = [k for k in head_keys if k.rsplit(".", 1)[-1] == suffix]
            return matches[-1] if matches else None
    return None


def _target(key: str, target: Mapping[str, torch.Tensor], head_keys: list[str]) -> str | None:
    if key in target and not key.startswith("head."):
        return key
    if "body." + key in target:
        return "body." + key
    renamed = key
    for pattern, replacement in RESNET_RENAMES:
        renamed = pattern.sub(replacement, renamed)
    if renamed in target and not renamed.startswith("head."):
        return renamed
    return _head_target(key, head_keys)


def map_state_dict(
    state: Any, model: nn.Module, path: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The checkpoint's tensors under the model's names (see the module docstring), and what was done."""
    try:
        state = _unwrap(state)
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    target = model.state_dict()
    head_keys = [k for k in target if k.startswith("head.")]
    mapped: dict[str, torch.Tensor] = {}
    report = LoadReport(loaded=0)
    for key, value in state.items():
        name = _target(_strip(key), target, head_keys)
        if name is None:
            raise WeightsError(f"{path}: checkpoint key '{key}' matches no parameter of the model")
        if tuple(value.shape) != tuple(target[name].shape):
            head_mismatch = name in head_keys and value.dim() >= 1 and value.shape[1:] == target[name].shape[1:]
            if head_mismatch:
                report.dropped_head.append(key)  # another class count: keep the model's fresh head
                continue
            raise WeightsError(
                f"{path}: shape mismatch at '{key}' -> '{name}': checkpoint {tuple(value.shape)}, "
                f"model {tuple(target[name].shape)}"
            )
        if name != key:
            report.renamed[key] = name
        mapped[name] = value
    missing = [k for k in target if k not in mapped and not k.startswith("head.")]
    if missing:
        raise WeightsError(f"{path}: checkpoint lacks {len(missing)} parameter(s) of the model, first '{missing[0]}'")
    report.loaded = len(mapped)
    return mapped, report


def load_weights(model: nn.Module, weights: Mapping[str, Any]) -> LoadReport:
    """Check the hash, load ``weights['path']`` (``weights_only=True``), map its keys and load them into ``model``."""
    path = check_weights(weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpicklable objects, truncated files: one line, never a traceback
        raise WeightsError(f"{path}: cannot be read as a weights-only checkpoint ({type(exc).__name__})") from None
    mapped, report = map_state_dict(state, model, str(path))
    model.load_state_dict(mapped, strict=False)  # only the dropped head may be absent (checked above)
    return report


def build_with_weights(cfg: Mapping[str, Any], num_classes: int) -> nn.Module:
    """``build_backbone`` of a backbone entry ``{name, params, weights?}``, then its weights loaded."""
    model = build_backbone(cfg["name"], dict(cfg.get("params", {})), num_classes)
    if cfg.get("weights"):
        load_weights(model, cfg["weights"])
    return model
