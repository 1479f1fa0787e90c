"""What every built-in backbone shares: the stem / stages / pool / head structure.

Methods that work inside the network insert a layer between stages, so every video backbone
exposes its residual stages as an ``nn.ModuleList`` whose members take and return
``[B, C, T, H, W]`` for any T >= 1; ``SplitVideoNet`` cuts a backbone into the part before such a
layer and the part after it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from harness.params import Param


class Stage(nn.Module):
    """A run of blocks; ``start``/``stop`` let a method run part of a stage (e.g. after block 0)."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        for block in self.blocks[start:stop]:
            x = block(x)
        return x


class Backbone(nn.Module):
    """Base of the built-in backbones: ``forward = head(forward_features)``.

    Subclasses set ``stem``, ``stages``, ``pool``, ``head``, ``feature_dim`` and the reference
    input (``frames``, ``input_size``, ``in_channels``). ``published_gflops`` is the figure the
    published architecture has at ``reference_input_shape()`` with default parameters.
    """

    input_kind: ClassVar[str] = "video"  # "2d": [B,C,H,W]; "video": [B,C,T,H,W] (TSM included)
    params: ClassVar[dict[str, Param]] = {}
    published_gflops: ClassVar[float | None] = None
    published_source: ClassVar[str] = ""

    stem: nn.Module
    stages: nn.ModuleList
    pool: nn.Module
    head: nn.Module
    feature_dim: int
    in_channels: int = 3
    frames: int = 1
    input_size: int = 224

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, pooled: ``[B, feature_dim]``."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.pool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def reference_input_shape(self) -> tuple[int, ...]:
        """Batch-1 input shape at which ``published_gflops`` holds (with default parameters)."""
        if self.input_kind == "2d":
            return (1, self.in_channels, self.input_size, self.input_size)
        return (1, self.in_channels, self.frames, self.input_size, self.input_size)


def run_grouped(module: nn.Module, maps: list[torch.Tensor]) -> torch.Tensor:
    """Run ``module`` on per-video maps [C, T_i, H, W] of different lengths, batching equal lengths.

    Exact (temporal convolutions and batch norm never see another video's padding) at one forward
    call per distinct length; in training mode batch-norm statistics are then per group, which is
    only sound when the groups are large (whole videos of equal length), not a few videos each.
    """
    order: dict[int, list[int]] = {}
    for i, m in enumerate(maps):
        order.setdefault(int(m.shape[1]), []).append(i)
    results: list[torch.Tensor | None] = [None] * len(maps)
    for _, idx in sorted(order.items()):
        out = module(torch.stack([maps[i] for i in idx]))
        for j, i in enumerate(idx):
            results[i] = out[j]
    return torch.stack(results)  # type: ignore[arg-type]


class SplitVideoNet(nn.Module):
    """A registered video backbone cut after ``after_stage`` stages: ``pre`` (stem + stages[:k]) and
    ``post`` (stages[k:] + pool + head). ``after_stage=0`` cuts right after the stem."""

    def __init__(self, backbone: nn.Module, after_stage: int):
        super().__init__()
        stages = list(backbone.stages)
        if not 0 <= after_stage < len(stages):
            raise ValueError(f"after_stage must be in [0, {len(stages) - 1}], got {after_stage}")
        self.after_stage = after_stage
        self.pre = nn.Sequential(backbone.stem, *stages[:after_stage])
        self.post = _Post(stages[after_stage:], backbone.pool, backbone.head)

    @torch.no_grad()
    def pre_channels(self, reference: torch.Tensor) -> int:
        was = self.pre.training
        self.pre.eval()
        channels = int(self.pre(reference).shape[1])
        self.pre.train(was)
        return channels


class _Post(nn.Module):
    def __init__(self, stages: list[nn.Module], pool: nn.Module, head: nn.Module):
        super().__init__()
        self.stages = nn.Sequential(*stages)
        self.pool, self.head = pool, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(x)).flatten(1))


def make_head(feature_dim: int, num_classes: int, dropout: float = 0.0) -> nn.Module:
    linear = nn.Linear(feature_dim, num_classes)
    return nn.Sequential(nn.Dropout(dropout), linear) if dropout > 0 else linear


def init_weights(model: nn.Module) -> None:
    """He initialisation for convolutions, unit batch norms (torchvision's recipe)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def common_params(frames: int | None, input_size: int) -> dict[str, Param]:
    """``in_channels`` and the reference input size; ``frames`` for video backbones."""
    declared = {
        "in_channels": Param(3, "input channels (3 for RGB; 2 for flow, 6 for RGB+difference)", low=1),
        "input_size": Param(input_size, "reference input side in pixels (the published figure's)", low=8),
    }
    if frames is not None:
        declared["frames"] = Param(frames, "reference clip length T (any T >= 1 runs)", low=1)
    return declared
