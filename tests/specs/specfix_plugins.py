"""Test-only plugins for the spec, grid and registry tests (unique names, so the tests never
depend on the built-in methods, datasets and backbones). Loaded with ``load_plugin_file``."""

from __future__ import annotations

import torch
from torch import nn

from harness.data.dataset import VideoDataset
from harness.method import Method
from harness.params import Param
from harness.registry import register_backbone, register_dataset, register_method


@register_dataset("specfix_digits")
class SpecfixDigits(VideoDataset):
    summary = "declared params only"
    params = {
        "variant": Param("longrange", "which benchmark", choices=("move4", "longrange", "multilabel")),
        "size": Param("tiny", "how many videos", choices=("tiny", "small", "full")),
        "num_frames": Param(64, "frames per video", low=8),
    }


@register_dataset("specfix_csv")
class SpecfixCsv(VideoDataset):
    params = {"root": Param("data", "folder of the videos", type=str)}


@register_backbone("specfix_r3d")
class SpecfixR3d(nn.Module):
    params = {
        "width": Param(64, "channels of the first stage", low=1),
        "depth": Param(18, "number of layers", choices=(10, 18)),
    }

    def __init__(self, num_classes: int, width: int = 64, depth: int = 18):
        super().__init__()
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3, 4)))


@register_backbone("specfix_mobilenet")
class SpecfixMobilenet(nn.Module):
    params = {"width_mult": Param(1.0, "channel multiplier", low=0.1)}


@register_method("specfix_uniform")
class SpecfixUniform(Method):
    summary = "a baseline with a budget knob"
    params = {
        "k": Param(8, "frames per video", low=1),
        "aggregate": Param("mean", "score aggregation", choices=("mean", "max")),
    }
    budget_param = "k"


@register_method("specfix_sampler")
class SpecfixSampler(Method):
    summary = "a method with float params that move together"
    params = {
        "k": Param(4, "clips per video", low=1),
        "gamma": Param(0.5, "mixing weight", low=0.0, high=1.0),
        "lambda_": Param(1.0, "loss weight", low=0.0),
        "objective": Param("ac", "sampler objective", choices=("ac", "sal-cl", "sal-rank")),
        "margin": Param(None, "ranking margin (None: the paper's)", type=float, nullable=True),
    }
    budget_param = "k"
