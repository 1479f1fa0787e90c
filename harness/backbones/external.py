"""Models of torchvision, timm or PyTorchVideo by name (``external:<lib>:<model>``), when those
packages are installed (GPU clusters), wrapped to the built-in interface so that the harness counts
and times them the same way. Nothing here is imported at run time unless such a name is used."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

LIBRARIES = ("torchvision", "timm", "pytorchvideo")


class ExternalBackbone(nn.Module):
    """``forward_features`` -> pooled penultimate features; ``head`` a fresh linear classifier."""

    def __init__(
        self, lib: str, model: str, num_classes: int, input_shape: tuple[int, ...] | None = None, **kwargs: Any
    ):
        super().__init__()
        self.lib, self.model_name = lib, model
        self.body, self.feature_dim, self.input_kind = _build_body(lib, model, kwargs)
        default = (
            (1, 3, 224, 224)
            if self.input_kind == "2d"
            else (1, 3, 16, 112, 112)
            if lib == "torchvision"
            else (1, 3, 8, 224, 224)
        )
        self._reference_shape = tuple(input_shape) if input_shape else default
        self.head = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def reference_input_shape(self) -> tuple[int, ...]:
        return self._reference_shape


def _build_body(lib: str, model: str, kwargs: dict[str, Any]) -> tuple[nn.Module, int, str]:
    if lib not in LIBRARIES:
        raise ValueError(f"external backbone library must be one of {', '.join(LIBRARIES)}, got '{lib}'")
    try:
        importlib.import_module(lib)
    except ImportError as exc:
        raise ValueError(
            f"backbone 'external:{lib}:{model}' needs the package '{lib}', which is not installed"
        ) from exc
    if lib == "timm":
        import timm

        net = timm.create_model(model, pretrained=False, num_classes=0, **kwargs)  # num_classes=0: pooled features
        return net, int(net.num_features), "2d"
    if lib == "torchvision":
        import torchvision.models as tvm

        video = model in tvm.list_models(module=tvm.video)
        net = tvm.get_model(model, weights=None, **kwargs)
        feature_dim = _last_linear(net).in_features
        return _strip_classifier(net), feature_dim, "video" if video else "2d"
    import pytorchvideo.models.hub as hub

    net = getattr(hub, model)(pretrained=False, **kwargs)
    proj = net.blocks[-1].proj
    net.blocks[-1].proj = nn.Identity()
    net.blocks[-1].activation = None  # ResNetBasicHead skips a None activation
    return net, proj.in_features, "video"


def _last_linear(net: nn.Module) -> nn.Linear:
    return [m for m in net.modules() if isinstance(m, nn.Linear)][-1]


def _strip_classifier(net: nn.Module) -> nn.Module:
    """Replace the final linear layer by identity so the module returns pooled features."""
    last = _last_linear(net)
    for name, module in net.named_modules():
        for child_name, child in module.named_children():
            if child is last:
                setattr(module, child_name, nn.Identity())
                return net
    raise ValueError("no final linear layer found")
