"""Backbones: every registered one builds small, runs forward/backward on its input kind, lets a
layer change T between stages; defaults are the published architectures; checkpoints load."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from harness.backbones import build_backbone, load_checkpoint
from harness.backbones.resnet import temporal_shift
from harness.registry import BACKBONES, UnknownNameError

# small widths for CPU; every built-in backbone must have an entry here
SMALL = {
    "mobilenet_v2": {"width_mult": 0.25},
    "resnet18": {"width": 8},
    "resnet50": {"width": 8},
    "resnet101": {"width": 8},
    "tsm_resnet18": {"width": 8},
    "tsm_resnet50": {"width": 8},
    "r3d_18": {"width": 8},
    "mc3_18": {"width": 8},
    "r2plus1d_18": {"width": 8},
    "slow_r50": {"width": 8},
    "modified_r3d_18": {"width": 8, "stem_width": 2},
    "x3d_s": {"width_factor": 0.5, "depth_factor": 0.5},
    "shufflenet3d": {"width_mult": 0.25},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


BUILTIN = [n for n in BACKBONES.names() if BACKBONES.origin(n).startswith("harness.backbones")]


def test_every_builtin_backbone_is_covered():
    assert set(BUILTIN) == set(SMALL), "add the new backbone's small configuration to SMALL"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_builds_small_and_trains_one_step(name):
    torch.manual_seed(0)
    model = build_backbone(name, SMALL[name], num_classes=5)
    assert model.input_kind in ("2d", "video")
    shape = (2, 3, 32, 32) if model.input_kind == "2d" else (2, 3, 4, 32, 32)
    x = torch.randn(shape)
    model.eval()
    features = model.forward_features(x)
    assert features.shape == (2, model.feature_dim)
    assert torch.allclose(model(x), model.head(features), atol=1e-5)
    model.train()
    loss = nn.functional.cross_entropy(model(x), torch.tensor([1, 3]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert len(model.reference_input_shape()) == len(shape)


VIDEO = [n for n in sorted(SMALL) if build_backbone(n, SMALL[n], 2).input_kind == "video"]


@pytest.mark.parametrize("name", VIDEO)
def test_video_stages_accept_a_changed_t(name, after_stage=0):
    """What SGS and temporal clustering do: a layer between stages changes T (here 6 -> 3 -> 1)."""
    torch.manual_seed(0)
    model = build_backbone(name, SMALL[name], num_classes=3).eval()
    assert isinstance(model.stages, nn.ModuleList) and len(model.stages) >= 3
    x = model.stem(torch.randn(2, 3, 6, 32, 32))
    for index, stage in enumerate(model.stages):
        x = stage(x)
        assert x.dim() == 5
        if index == after_stage:
            x = x[:, :, ::2]  # fewer time steps than the stage produced
        if index == after_stage + 1:
            x = x[:, :, :1]  # T = 1 from here on
    out = model.head(model.pool(x).flatten(1))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_stage_runs_part_of_its_blocks():
    model = build_backbone("tsm_resnet18", SMALL["tsm_resnet18"], 2).eval()
    x = model.stem(torch.randn(1, 3, 4, 32, 32))
    stage = model.stages[0]
    whole = stage(x)
    split = stage(stage(x, 0, 1), 1)
    assert torch.allclose(whole, split, atol=1e-6)


def test_temporal_shift_moves_one_eighth_each_way():
    x = torch.arange(1, 4, dtype=torch.float).view(1, 3, 1, 1, 1).expand(1, 3, 16, 2, 2).reshape(3, 16, 2, 2)
    out = temporal_shift(x, segments=3, shift_div=8).view(1, 3, 16, 2, 2)  # frame t holds value t+1
    assert out[0, :, :2, 0, 0].tolist() == [[2, 2], [3, 3], [0, 0]]  # channels 0-1: from the next frame
    assert out[0, :, 2:4, 0, 0].tolist() == [[0, 0], [1, 1], [2, 2]]  # channels 2-3: from the previous frame
    assert out[0, :, 4:, 0, 0].eq(torch.tensor([1.0, 2.0, 3.0]).view(3, 1)).all()
    single = temporal_shift(x[:1], segments=1, shift_div=8)  # T = 1: shifted channels become zeros
    assert single[:, :4].abs().sum() == 0 and single[:, 4:].eq(1).all()


def test_tsm_shift_mixes_frames_only_when_enabled():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 32, 32)
    y = x.clone()
    y[:, :, 1] += 1.0  # change frame 1 only
    for shift_div, mixes in [(8, True), (1_000, False)]:  # shift_div > channels: nothing shifts
        model = build_backbone("tsm_resnet18", {"width": 8, "shift_div": shift_div}, 2).eval()
        frame0 = lambda inp: model.stages[0](model.stem(inp))[:, :, 0]
        assert (not torch.allclose(frame0(x), frame0(y))) is mixes


def test_published_architectures_have_the_published_parameter_counts():
    """Parameter counts of torchvision / PyTorchVideo models (reference classifier widths)."""
    expected = {
        ("resnet18", 1000): 11_689_512,
        ("resnet50", 1000): 25_557_032,
        ("mobilenet_v2", 1000): 3_504_872,
        ("r3d_18", 400): 33_371_472,
        ("mc3_18", 400): 11_695_440,
        ("r2plus1d_18", 400): 31_505_325,
        ("slow_r50", 400): 32_454_096,
    }
    for (name, classes), count in expected.items():
        model = build_backbone(name, {}, classes)
        assert sum(p.numel() for p in model.parameters()) == count, name


def test_modified_r3d_18_is_table_a1():
    """Seed 002's Table A.1 at 32x224x224: T = 32 kept in every stage, 112 after conv1, 56 after the
    max-pool and res2, then 28, 14, 7; the stem and res2 a small share of the cost (so SGS after
    res2 can save most of it), and the whole network above ATFR's published 14.0 GFLOPs average."""
    from harness.backbones.base import SplitVideoNet
    from harness.compute import brute_force_gflops

    model = build_backbone("modified_r3d_18", {}, 200).eval()
    x = torch.zeros(model.reference_input_shape())
    assert x.shape == (1, 3, 32, 224, 224)
    with torch.no_grad():
        y = model.stem[0](x)
        assert y.shape[2:] == (32, 112, 112)
        y = model.stem(x)
        sizes = []
        for stage in model.stages:
            y = stage(y)
            sizes.append(tuple(y.shape[1:]))
    assert sizes == [(32, 32, 56, 56), (256, 32, 28, 28), (512, 32, 14, 14), (1024, 32, 7, 7)]
    total = brute_force_gflops(model, (x,))
    early = brute_force_gflops(SplitVideoNet(model, 1).pre, (x,))
    assert 14.0 < total < 2 * 14.0 and early < 0.2 * total, (total, early)


def test_build_backbone_validates_names_and_params():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet18'"):
        build_backbone("resnet19", {}, 2)
    with pytest.raises(ValueError, match="unknown parameter 'depth'"):
        build_backbone("resnet18", {"depth": 3}, 2)
    with pytest.raises(ValueError, match="'width'.*expected a positive integer"):
        build_backbone("resnet18", {"width": 0}, 2)
    model = build_backbone("r3d_18", {"width": 8, "in_channels": 2, "frames": 4}, 7).eval()
    assert model.reference_input_shape() == (1, 2, 4, 112, 112)
    assert model(torch.randn(1, 2, 2, 16, 16)).shape == (1, 7)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_backbone("r2plus1d_18", SMALL["r2plus1d_18"], 4).eval()
    path = tmp_path / "ckpt.pt"
    # a DDP-style checkpoint: nested under "state_dict", keys prefixed with "module."
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    fresh = build_backbone("r2plus1d_18", SMALL["r2plus1d_18"], 4).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    assert not torch.allclose(fresh(x), model(x))
    load_checkpoint(fresh, path)
    assert torch.allclose(fresh(x), model(x), atol=1e-6)


class NotATensor:
    pass


def test_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": NotATensor()}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(build_backbone("resnet18", SMALL["resnet18"], 2), path)


def test_external_backbone_names_its_missing_package():
    for lib in ("torchvision", "timm", "pytorchvideo"):
        if importlib.util.find_spec(lib) is None:
            with pytest.raises(ValueError, match=f"needs the package '{lib}'"):
                build_backbone(f"external:{lib}:anything", {}, 2)
    with pytest.raises(ValueError, match="one of torchvision, timm, pytorchvideo"):
        build_backbone("external:keras:x", {}, 2)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision not installed")
def test_external_torchvision_model_is_wrapped():
    model = build_backbone("external:torchvision:r3d_18", {}, 5).eval()
    assert model.input_kind == "video" and model.feature_dim == 512
    assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 5)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm not installed")
def test_external_timm_model_is_wrapped():
    model = build_backbone("external:timm:resnet18", {}, 5).eval()
    assert model.input_kind == "2d" and model(torch.randn(1, 3, 32, 32)).shape == (1, 5)
