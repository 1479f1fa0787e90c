"""Plain-PyTorch backbones, one module per family, registered in ``harness.registry.BACKBONES``.

``build_backbone(name, params, num_classes)`` is the one way the harness builds them: names are
checked against the registry, parameters against the declared ``Param``s, defaults filled in.
Defaults are the published architectures (so the reference GFLOPs hold); small widths are what
CPU tests and the built-in benchmark use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from harness.backbones import mobilenet, resnet, shufflenet3d, tsm, video_resnet, x3d  # noqa: F401  (registers)
from harness.backbones.base import Backbone, Stage
from harness.params import resolve_params, validate
from harness.registry import BACKBONES

__all__ = ["Backbone", "Stage", "build_backbone", "load_checkpoint"]


def build_backbone(name: str, params: Mapping[str, Any] | None = None, num_classes: int = 400) -> nn.Module:
    """Build a registered backbone, or ``external:<lib>:<model>`` (torchvision, timm, pytorchvideo)."""
    params = dict(params or {})
    if name.startswith("external:"):
        from harness.backbones.external import ExternalBackbone

        parts = name.split(":")
        if len(parts) != 3:
            raise ValueError(f"external backbone name must be 'external:<lib>:<model>', got '{name}'")
        return ExternalBackbone(parts[1], parts[2], num_classes, **params)
    cls = BACKBONES.get(name)
    params = validate(f"backbone '{name}'", cls.params, params)  # ParamError, a ValueError
    return cls(num_classes=num_classes, **resolve_params(cls.params, params))


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load a local state dict (plain, or under a 'state_dict' / 'model' key, DDP 'module.' prefix
    stripped) with ``weights_only=True``: a checkpoint can never run code on load."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model.load_state_dict(state, strict=strict)
    return model
