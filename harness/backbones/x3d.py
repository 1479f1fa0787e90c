"""X3D-S (Feichtenhofer 2020), PyTorchVideo's layout: a 1x3x3 + depthwise 5x1x1 stem, four stages
of inverted bottlenecks with depthwise 3x3x3 convs, squeeze-excitation on every other block,
swish, and a head of 1x1x1 conv, pooling and a 2048-wide linear layer. Depthwise 3D convolutions
make its FLOPs a poor predictor of its speed: measure latency next to them."""

from __future__ import annotations

import math

import torch
from torch import nn

from harness.backbones.base import Backbone, Stage, common_params, init_weights, make_head
from harness.params import Param
from harness.registry import register_backbone


def round_width(width: float, multiplier: float, divisor: int = 8) -> int:
    width *= multiplier
    out = max(divisor, int(width + divisor / 2) // divisor * divisor)
    return int(out + divisor if out < 0.9 * width else out)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(1)  # a module, so that a method can mask padded time steps
        self.fc1 = nn.Conv3d(channels, reduced, 1)
        self.fc2 = nn.Conv3d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.pool(x)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(scale))))


class X3DBlock(nn.Module):
    def __init__(self, inp: int, inner: int, out: int, stride: int, use_se: bool):
        super().__init__()
        self.conv_a = nn.Sequential(nn.Conv3d(inp, inner, 1, bias=False), nn.BatchNorm3d(inner), nn.ReLU(inplace=True))
        self.conv_b = nn.Sequential(
            nn.Conv3d(inner, inner, 3, (1, stride, stride), 1, groups=inner, bias=False), nn.BatchNorm3d(inner)
        )
        self.se = SqueezeExcitation(inner, round_width(inner, 0.0625)) if use_se else None
        self.act = nn.SiLU()
        self.conv_c = nn.Sequential(nn.Conv3d(inner, out, 1, bias=False), nn.BatchNorm3d(out))
        self.downsample = None
        if stride != 1 or inp != out:
            self.downsample = nn.Sequential(
                nn.Conv3d(inp, out, 1, (1, stride, stride), bias=False), nn.BatchNorm3d(out)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv_b(self.conv_a(x))
        if self.se is not None:
            out = self.se(out)
        out = self.conv_c(self.act(out))
        return self.relu(out + identity)


@register_backbone("x3d_s")
class X3DS(Backbone):
    params = {
        "width_factor": Param(2.0, "X3D's gamma_w (2.0 for X3D-S; 0.5 for CPU tests)", low=0.1),
        "depth_factor": Param(2.2, "X3D's gamma_d (2.2 for X3D-S; 0.5 for CPU tests)", low=0.1),
        **common_params(13, 160),
    }
    published_gflops, published_source = 1.96, "X3D paper Table 3, X3D-S 13x160x160"

    def __init__(
        self,
        num_classes: int,
        width_factor: float = 2.0,
        depth_factor: float = 2.2,
        in_channels: int = 3,
        frames: int = 13,
        input_size: int = 160,
    ):
        super().__init__()
        self.in_channels, self.frames, self.input_size = in_channels, frames, input_size
        stem_out = round_width(12, width_factor)
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_out, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False),
            nn.Conv3d(stem_out, stem_out, (5, 1, 1), 1, (2, 0, 0), groups=stem_out, bias=False),
            nn.BatchNorm3d(stem_out),
            nn.ReLU(inplace=True),
        )
        stages, inp = [], stem_out
        for index, base_depth in enumerate([1, 2, 5, 3]):
            out = round_width(12 * 2**index, width_factor)
            inner = int(2.25 * out)
            depth = int(math.ceil(depth_factor * base_depth))
            blocks = []
            for b in range(depth):
                blocks.append(X3DBlock(inp, inner, out, 2 if b == 0 else 1, use_se=(b % 2 == 0)))
                inp = out
            stages.append(Stage(blocks))
        self.stages = nn.ModuleList(stages)
        self.feature_dim = 2048
        # X3D's head: 1x1x1 conv to the inner width, global pooling, then a 2048-wide projection
        self.pool = nn.Sequential(
            nn.Conv3d(inp, inner, 1, bias=False),
            nn.BatchNorm3d(inner),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d(1),
            nn.Conv3d(inner, 2048, 1, bias=False),
            nn.ReLU(inplace=True),
        )
        self.head = make_head(2048, num_classes, dropout=0.5)
        init_weights(self)
