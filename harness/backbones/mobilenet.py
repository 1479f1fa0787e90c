"""MobileNetV2 (Sandler et al. 2018): the cheap per-frame network (LiteEval's coarse CNN,
VideoEpitoma's LightNet, SCSampler's sampler input). Layout and rounding as in torchvision."""

from __future__ import annotations

from torch import nn

from harness.backbones.base import Backbone, Stage, common_params, init_weights, make_head
from harness.params import Param
from harness.registry import register_backbone

# expansion t, output channels c, repeats n, first stride s (the paper's Table 2)
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_residual = stride == 1 and inp == out
        layers = [conv_bn_relu6(inp, hidden, 1)] if expand_ratio != 1 else []
        layers += [
            conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


@register_backbone("mobilenet_v2")
class MobileNetV2(Backbone):
    """Input ``[B, C, H, W]``. Stages: the seven inverted-residual groups, then the 1x1 conv to 1280."""

    input_kind = "2d"
    params = {
        "width_mult": Param(1.0, "channel multiplier (1.0 = published; 0.25 for CPU tests)", low=0.05),
        **common_params(None, 224),
    }
    published_gflops, published_source = 0.30, "torchvision model table, 224x224 (about 0.08 at 112)"

    def __init__(self, num_classes: int, width_mult: float = 1.0, in_channels: int = 3, input_size: int = 224):
        super().__init__()
        self.in_channels, self.input_size = in_channels, input_size
        inp = make_divisible(32 * width_mult)
        self.feature_dim = make_divisible(1280 * max(1.0, width_mult))
        self.stem = conv_bn_relu6(in_channels, inp, stride=2)
        stages = []
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out = make_divisible(c * width_mult)
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(inp, out, s if i == 0 else 1, t))
                inp = out
            stages.append(Stage(blocks))
        stages.append(Stage([conv_bn_relu6(inp, self.feature_dim, 1)]))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = make_head(self.feature_dim, num_classes, dropout=0.2)
        init_weights(self)
