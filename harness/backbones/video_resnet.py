"""3D ResNets: R3D-18, MC3-18, R(2+1)D-18 (Tran et al. 2018, torchvision's layout) and a 3D
ResNet-50 with slow-only inflation (Feichtenhofer et al. 2019, PySlowFast / PyTorchVideo layout).

All take ``[B, C, T, H, W]``; every stage takes and returns 5-D tensors and accepts any T >= 1.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from harness.backbones.base import Backbone, Stage, common_params, init_weights, make_head
from harness.params import Param
from harness.registry import register_backbone


# -- the three convolution types of Tran et al.: (in, out, mid, stride) -> module ------------------
def conv3d_full(inp: int, out: int, mid: int, stride: int = 1) -> nn.Module:
    return nn.Conv3d(inp, out, 3, stride, 1, bias=False)


def conv3d_spatial(inp: int, out: int, mid: int, stride: int = 1) -> nn.Module:
    return nn.Conv3d(inp, out, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)


def conv2plus1d(inp: int, out: int, mid: int, stride: int = 1) -> nn.Module:
    """(2+1)D: a spatial 1x3x3 conv to ``mid`` channels, then a temporal 3x1x1 conv."""
    return nn.Sequential(
        nn.Conv3d(inp, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, out, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
    )


class BasicBlock3D(nn.Module):
    def __init__(self, inp: int, planes: int, conv: Callable[..., nn.Module], stride: int = 1):
        super().__init__()
        # mid channels keep a (2+1)D block's parameter count equal to the full 3D block's
        mid = (inp * planes * 27) // (inp * 9 + 3 * planes)
        self.conv1 = nn.Sequential(conv(inp, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(planes, planes, mid), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inp != planes:
            t_stride = 1 if conv is conv3d_spatial else stride
            self.downsample = nn.Sequential(
                nn.Conv3d(inp, planes, 1, (t_stride, stride, stride), bias=False), nn.BatchNorm3d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class VideoResNet18(Backbone):
    """Four stages of two basic blocks; ``convs`` picks the convolution type per stage."""

    convs: tuple = (conv3d_full,) * 4
    params = {"width": Param(64, "base channels (64 = published; 8-16 for CPU tests)", low=1), **common_params(16, 112)}

    def __init__(
        self, num_classes: int, width: int = 64, in_channels: int = 3, frames: int = 16, input_size: int = 112
    ):
        super().__init__()
        self.in_channels, self.frames, self.input_size = in_channels, frames, input_size
        self.stem = self.make_stem(in_channels, width)
        stages, inp = [], width
        for index, conv in enumerate(self.convs):
            planes, stride = width * 2**index, 1 if index == 0 else 2
            stages.append(Stage([BasicBlock3D(inp, planes, conv, stride), BasicBlock3D(planes, planes, conv)]))
            inp = planes
        self.stages = nn.ModuleList(stages)
        self.feature_dim = inp
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = make_head(inp, num_classes)
        init_weights(self)

    @staticmethod
    def make_stem(in_channels: int, width: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv3d(in_channels, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )


@register_backbone("r3d_18")
class R3D18(VideoResNet18):
    convs = (conv3d_full,) * 4
    published_gflops, published_source = 40.70, "torchvision model table, 16x112x112"


@register_backbone("mc3_18")
class MC318(VideoResNet18):
    """Mixed convolutions: full 3D in the first stage, spatial-only after."""

    convs = (conv3d_full,) + (conv3d_spatial,) * 3
    published_gflops, published_source = 43.34, "torchvision model table, 16x112x112"


@register_backbone("r2plus1d_18")
class R2Plus1D18(VideoResNet18):
    convs = (conv2plus1d,) * 4
    published_gflops, published_source = 40.52, "torchvision model table, 16x112x112"

    @staticmethod
    def make_stem(in_channels: int, width: int) -> nn.Module:
        mid = max(1, round(45 * width / 64))  # torchvision's 45 channels at width 64
        return nn.Sequential(
            nn.Conv3d(in_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )


# -- 3D ResNet-50, slow-only ---------------------------------------------------------------------
class Bottleneck3D(nn.Module):
    """1x1x1 (or kt x1x1 when inflated) -> 1x3x3 (spatial stride) -> 1x1x1, expansion 4."""

    def __init__(self, inp: int, planes: int, stride: int, temporal_kernel: int):
        super().__init__()
        out = planes * 4
        self.conv_a = nn.Conv3d(inp, planes, (temporal_kernel, 1, 1), 1, (temporal_kernel // 2, 0, 0), bias=False)
        self.bn_a = nn.BatchNorm3d(planes)
        self.conv_b = nn.Conv3d(planes, planes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
        self.bn_b = nn.BatchNorm3d(planes)
        self.conv_c = nn.Conv3d(planes, out, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inp != out:
            self.downsample = nn.Sequential(
                nn.Conv3d(inp, out, 1, (1, stride, stride), bias=False), nn.BatchNorm3d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn_a(self.conv_a(x)))
        out = self.relu(self.bn_b(self.conv_b(out)))
        return self.relu(self.bn_c(self.conv_c(out)) + identity)


@register_backbone("slow_r50")
class SlowR50(Backbone):
    """ResNet-50 inflated to 3D as the SlowFast paper's slow-only pathway: 1x7x7 stem, no temporal
    downsampling, temporal kernel 3 in the first conv of every res4/res5 block (I3D-style inflation
    of a 2D ResNet's 1x1 convs; ``inflate`` chooses the stages)."""

    params = {
        "width": Param(64, "base channels (64 = published; 8 for CPU tests)", low=1),
        "inflate": Param([False, False, True, True], "per stage: temporal kernel 3 in conv_a", type=list),
        **common_params(8, 256),
    }
    published_gflops, published_source = 54.52, "PyTorchVideo model zoo, SLOW 8x8 R50, one 8x256x256 view (41.9 at 224)"

    def __init__(
        self,
        num_classes: int,
        width: int = 64,
        inflate: list | None = None,
        in_channels: int = 3,
        frames: int = 8,
        input_size: int = 256,
    ):
        super().__init__()
        inflate = [False, False, True, True] if inflate is None else list(inflate)
        if len(inflate) != 4:
            raise ValueError(f"slow_r50: inflate needs 4 booleans (one per stage), got {inflate!r}")
        self.in_channels, self.frames, self.input_size = in_channels, frames, input_size
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, width, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        stages, inp = [], width
        for index, depth in enumerate([3, 4, 6, 3]):
            planes, kt = width * 2**index, 3 if inflate[index] else 1
            blocks = []
            for b in range(depth):
                blocks.append(Bottleneck3D(inp, planes, 2 if (b == 0 and index > 0) else 1, kt))
                inp = planes * 4
            stages.append(Stage(blocks))
        self.stages = nn.ModuleList(stages)
        self.feature_dim = inp
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = make_head(inp, num_classes, dropout=0.5)
        init_weights(self)


@register_backbone("modified_r3d_18")
class ModifiedR3D18(Backbone):
    """The modified 3D ResNet-18 of seed 002, Table A.1: a narrow 5x7x7 stem with a 1x3x3
    max-pool, a narrow res2, then bottleneck stages as in a ResNet-50, two blocks each, temporal
    kernel 3 in the first conv of res2 and res5, and no temporal stride anywhere (T kept in every
    stage). Stem and res2 are a small share of the cost, so a layer after res2 that shrinks T acts
    on most of the network. The paper gives no figure for the network alone; with its layer after
    res2 it averages 14.0 GFLOPs per 32x224x224 clip (its Tables 4 and A.3)."""

    params = {
        "width": Param(64, "res3's bottleneck channels (64 = Table A.1; res4, res5 double it)", low=1),
        "stem_width": Param(8, "channels of the stem and res2's bottleneck (8 = Table A.1)", low=1),
        **common_params(32, 224),
    }

    def __init__(
        self,
        num_classes: int,
        width: int = 64,
        stem_width: int = 8,
        in_channels: int = 3,
        frames: int = 32,
        input_size: int = 224,
    ):
        super().__init__()
        self.in_channels, self.frames, self.input_size = in_channels, frames, input_size
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_width, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        stages, inp = [], stem_width
        plan = [(stem_width, 1, 3), (width, 2, 1), (2 * width, 2, 1), (4 * width, 2, 3)]  # planes, stride, kt
        for planes, stride, kt in plan:
            blocks = [Bottleneck3D(inp, planes, stride, kt), Bottleneck3D(planes * 4, planes, 1, kt)]
            stages.append(Stage(blocks))
            inp = planes * 4
        self.stages = nn.ModuleList(stages)
        self.feature_dim = inp
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = make_head(inp, num_classes)
        init_weights(self)
