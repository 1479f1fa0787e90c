"""3D ShuffleNet (v1) as in Kopuklu et al. 2019 "Resource efficient 3D CNNs", the SNet3D
HeavyNet of VideoEpitoma: grouped 1x1x1 convs, channel shuffle, depthwise 3x3x3 convs, and
stride-2 units that concatenate an average-pooled shortcut (downsampling time as well)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from harness.backbones.base import Backbone, Stage, common_params, init_weights, make_head
from harness.params import Param
from harness.registry import register_backbone

STAGE_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536)}
STEM_CHANNELS = 24


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c = x.shape[:2]
    return x.view(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


class PaddedAvgPool3d(nn.Module):
    """AvgPool3d(3, stride 2, padding 1) with zero padding made explicit: torch's CPU kernel
    rejects inputs smaller than the kernel before padding (T = 2 at the last stage of 16 frames)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.pad(x, (1, 1, 1, 1, 1, 1)), 3, 2)


class ShuffleUnit3D(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, groups: int):
        super().__init__()
        self.stride, self.groups = stride, groups
        mid = out // 4
        branch_out = out - inp if stride == 2 else out
        first_groups = 1 if inp == STEM_CHANNELS else groups
        self.conv1 = nn.Sequential(
            nn.Conv3d(inp, mid, 1, groups=first_groups, bias=False), nn.BatchNorm3d(mid), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(nn.Conv3d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm3d(mid))
        self.conv3 = nn.Sequential(nn.Conv3d(mid, branch_out, 1, groups=groups, bias=False), nn.BatchNorm3d(branch_out))
        self.shortcut = PaddedAvgPool3d() if stride == 2 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.conv2(channel_shuffle(self.conv1(x), self.groups)))
        if self.shortcut is not None:
            return self.relu(torch.cat([out, self.shortcut(x)], dim=1))
        return self.relu(out + x)


@register_backbone("shufflenet3d")
class ShuffleNet3D(Backbone):
    params = {
        "width_mult": Param(1.0, "stage width multiplier (1.0 = Kopuklu et al.'s 1.0x; 0.25 for CPU tests)", low=0.05),
        "groups": Param(3, "groups of the 1x1x1 convolutions", choices=[1, 2, 3, 4, 8]),
        **common_params(16, 112),
    }

    def __init__(
        self,
        num_classes: int,
        width_mult: float = 1.0,
        groups: int = 3,
        in_channels: int = 3,
        frames: int = 16,
        input_size: int = 112,
    ):
        super().__init__()
        self.in_channels, self.frames, self.input_size = in_channels, frames, input_size
        unit = 4 * groups  # widths must split into 4 and into the groups
        widths = [max(unit, round(w * width_mult / unit) * unit) for w in STAGE_WIDTHS[groups]]
        widths[0] = max(widths[0], STEM_CHANNELS + unit)  # the first unit concatenates the stem's channels
        for i in (1, 2):  # each stride-2 unit must add channels
            widths[i] = max(widths[i], widths[i - 1] + unit)
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, STEM_CHANNELS, 3, (1, 2, 2), 1, bias=False),
            nn.BatchNorm3d(STEM_CHANNELS),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, 2, 1),
        )
        stages, inp = [], STEM_CHANNELS
        for width, depth in zip(widths, [4, 8, 4]):
            blocks = []
            for b in range(depth):
                blocks.append(ShuffleUnit3D(inp, width, 2 if b == 0 else 1, groups))
                inp = width
            stages.append(Stage(blocks))
        self.stages = nn.ModuleList(stages)
        self.feature_dim = inp
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = make_head(inp, num_classes, dropout=0.2)
        init_weights(self)
