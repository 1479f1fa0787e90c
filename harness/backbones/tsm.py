"""TSM-ResNet-18/50 (Lin et al. 2019): a 2D ResNet whose residual branches shift 1/8 of the
channels one frame back and 1/8 one frame forward ("residual shift"), zero FLOPs added.

Input is a clip ``[B, C, T, H, W]``; each stage folds time into the batch, reading T from the
tensor it receives, so a layer inserted between stages may change T (temporal clustering).
Pooling averages over frames and space, which equals TSM's average consensus of frame logits.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.backbones.base import Backbone, Stage, common_params, init_weights, make_head
from harness.backbones.resnet import BasicBlock, Bottleneck, resnet_stages, resnet_stem
from harness.params import Param
from harness.registry import register_backbone


def fold_time(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``[B, C, T, H, W]`` -> ``[B*T, C, H, W]`` and T."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w), t


def unfold_time(x: torch.Tensor, t: int) -> torch.Tensor:
    """``[B*T, C, H, W]`` -> ``[B, C, T, H, W]``."""
    return x.view(x.shape[0] // t, t, *x.shape[1:]).transpose(1, 2)


class FrameStem(nn.Module):
    def __init__(self, stem: nn.Module):
        super().__init__()
        self.frames = stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, t = fold_time(x)
        return unfold_time(self.frames(y), t)


class ShiftStage(Stage):
    """Blocks run on frames folded into the batch; the shift gets T from the input tensor."""

    def forward(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        y, t = fold_time(x)
        for block in self.blocks[start:stop]:
            y = block(y, t)
        return unfold_time(y, t)


class TSMResNet(Backbone):
    input_kind = "video"
    block: type = BasicBlock
    layers: list[int] = [2, 2, 2, 2]

    def __init__(
        self,
        num_classes: int,
        width: int = 64,
        shift_div: int = 8,
        in_channels: int = 3,
        frames: int | None = None,
        input_size: int = 224,
    ):
        super().__init__()
        self.in_channels, self.input_size = in_channels, input_size
        self.frames = self.params["frames"].default if frames is None else frames
        self.stem = FrameStem(resnet_stem(in_channels, width))
        self.stages, self.feature_dim = resnet_stages(self.block, self.layers, width, shift_div, ShiftStage)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = make_head(self.feature_dim, num_classes)
        init_weights(self)


def _tsm_params(frames: int) -> dict[str, Param]:
    return {
        "width": Param(64, "base channels (64 = published; 8-16 for CPU tests)", low=1),
        "shift_div": Param(8, "1/shift_div of the channels shift each way (TSM: 8)", low=2),
        **common_params(frames, 224),
    }


@register_backbone("tsm_resnet18")
class TSMResNet18(TSMResNet):
    block, layers = BasicBlock, [2, 2, 2, 2]
    params = _tsm_params(32)
    published_gflops, published_source = 58.24, "seed 004 Table 1, TSM on all 32 frames of 224x224"


@register_backbone("tsm_resnet50")
class TSMResNet50(TSMResNet):
    block, layers = Bottleneck, [3, 4, 6, 3]
    params = _tsm_params(8)
    published_gflops, published_source = 33.0, "TSM paper, 8 frames of 224x224 (about 33)"
