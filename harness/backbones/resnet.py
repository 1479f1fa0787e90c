"""2D ResNet-18/50/101 (He et al. 2016, torchvision's v1.5 layout: stride on the 3x3 conv).

The blocks accept an optional temporal shift so that TSM (``harness.backbones.tsm``) reuses them.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.backbones.base import Backbone, Stage, common_params, init_weights, make_head
from harness.params import Param
from harness.registry import register_backbone


def temporal_shift(x: torch.Tensor, segments: int, shift_div: int) -> torch.Tensor:
    """TSM's shift on frames folded into the batch (``[B*T, C, H, W]``): 1/shift_div of the
    channels move one step back in time, 1/shift_div one step forward, zeros at the ends.

    ``segments`` (T) comes from the caller's tensor, so T may differ between stages; T = 1 works.
    """
    bt, c, h, w = x.shape
    x = x.view(bt // segments, segments, c, h, w)
    fold = c // shift_div
    pad = x.new_zeros(x.shape[0], 1, fold, h, w)
    from_next = torch.cat([x[:, 1:, :fold], pad], dim=1)  # frame t sees t+1
    from_prev = torch.cat([pad, x[:, :-1, fold : 2 * fold]], dim=1)  # frame t sees t-1
    return torch.cat([from_next, from_prev, x[:, :, 2 * fold :]], dim=2).view(bt, c, h, w)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, shift_div: int = 0):
        super().__init__()
        self.shift_div = shift_div
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor, segments: int = 1) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = temporal_shift(x, segments, self.shift_div) if self.shift_div else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, shift_div: int = 0):
        super().__init__()
        self.shift_div = shift_div
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes * 4, stride)

    def forward(self, x: torch.Tensor, segments: int = 1) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = temporal_shift(x, segments, self.shift_div) if self.shift_div else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes))


def resnet_stages(
    block: type, layers: list[int], width: int, shift_div: int = 0, stage_cls: type = Stage
) -> tuple[nn.ModuleList, int]:
    """The four residual stages (widths w, 2w, 4w, 8w) and the output channel count."""
    stages, inplanes = [], width
    for index, depth in enumerate(layers):
        planes, stride = width * 2**index, 1 if index == 0 else 2
        blocks = []
        for b in range(depth):
            blocks.append(block(inplanes, planes, stride if b == 0 else 1, shift_div))
            inplanes = planes * block.expansion
        stages.append(stage_cls(blocks))
    return nn.ModuleList(stages), inplanes


def resnet_stem(in_channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    )


class ResNet2D(Backbone):
    """Frame-level ResNet: input ``[B, C, H, W]``."""

    input_kind = "2d"
    block: type = BasicBlock
    layers: list[int] = [2, 2, 2, 2]
    params = {
        "width": Param(64, "base channels (64 = published; 8-16 for CPU tests)", low=1),
        **common_params(None, 224),
    }

    def __init__(self, num_classes: int, width: int = 64, in_channels: int = 3, input_size: int = 224):
        super().__init__()
        self.in_channels, self.input_size = in_channels, input_size
        self.stem = resnet_stem(in_channels, width)
        self.stages, self.feature_dim = resnet_stages(self.block, self.layers, width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = make_head(self.feature_dim, num_classes)
        init_weights(self)


@register_backbone("resnet18")
class ResNet18(ResNet2D):
    block, layers = BasicBlock, [2, 2, 2, 2]
    published_gflops, published_source = 1.81, "torchvision model table, 224x224"


@register_backbone("resnet50")
class ResNet50(ResNet2D):
    block, layers = Bottleneck, [3, 4, 6, 3]
    published_gflops, published_source = 4.09, "torchvision model table, 224x224"


@register_backbone("resnet101")
class ResNet101(ResNet2D):
    block, layers = Bottleneck, [3, 4, 23, 3]
    published_gflops, published_source = 7.8, "torchvision model table, 224x224 (LiteEval: 7.82)"
