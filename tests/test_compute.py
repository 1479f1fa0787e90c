"""Static counts (reference figures, cache, eval mode, recurrent layers), per-video accounting,
and runtime measurement."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from harness.backbones import build_backbone
from harness.compute import FLOP_CONVENTION, account, brute_force_gflops, clear_cache, count_flops
from harness.method import Component, Usage
from harness.runtime import (
    autocast,
    channels_last,
    measure_latency,
    pick_device,
    saved_activation_mb,
    track_peak_memory,
)

# published GFLOPs (multiply-adds, one view) from docs/shared notes: torchvision's model tables
PUBLISHED = {
    "resnet18": (1000, (1, 3, 224, 224), 1.81),
    "resnet50": (1000, (1, 3, 224, 224), 4.09),
    "resnet101": (1000, (1, 3, 224, 224), 7.8),
    "mobilenet_v2": (1000, (1, 3, 224, 224), 0.30),
    "r3d_18": (400, (1, 3, 16, 112, 112), 40.70),
    "mc3_18": (400, (1, 3, 16, 112, 112), 43.34),
    "r2plus1d_18": (400, (1, 3, 16, 112, 112), 40.52),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_reference_gflops_within_two_percent(name):
    classes, shape, published = PUBLISHED[name]
    model = build_backbone(name, {}, classes)
    assert model.reference_input_shape() == shape
    count = count_flops(model, torch.randn(shape))
    assert abs(count.gflops / published - 1) < 0.02, f"{name}: {count.gflops:.3f} vs published {published}"
    assert "aten::_convolution" not in count.unsupported_ops and count.uncalled_modules == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tsm_resnet50", "x3d_s"])  # all of them: benchmarks/flops_reference.py
def test_other_published_figures(name):
    model = build_backbone(name, {}, 400)
    count = count_flops(model, torch.randn(model.reference_input_shape()))
    assert abs(count.gflops / model.published_gflops - 1) < 0.02


def test_convention_is_stated():
    assert "multiply-add = one FLOP" in FLOP_CONVENTION and "per view" in FLOP_CONVENTION


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Sigmoid(),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def expected_small_cnn_flops(h: int, w: int) -> int:
    return 3 * 8 * 9 * h * w + 8 * h * w + 8 * 4  # conv + adaptive pool + linear; bias and BN not counted


def test_count_flops_by_hand_and_in_eval_mode():
    module = small_cnn().train()
    count = count_flops(module, torch.randn(1, 3, 10, 12))
    assert count.gflops * 1e9 == expected_small_cnn_flops(10, 12)
    assert count.params == 3 * 8 * 9 + 8 + 8 * 2 + 8 * 4 + 4
    assert module.training and all(m.training for m in module.modules())  # mode restored
    assert count.unsupported_ops == {"aten::sigmoid": 1}  # counted zero by convention, and recorded


def test_cache_per_module_and_shape():
    clear_cache()
    module = small_cnn()
    first = count_flops(module, torch.randn(1, 3, 16, 16))
    started = time.perf_counter()
    again = count_flops(module, (torch.randn(1, 3, 16, 16),))
    assert again is first and time.perf_counter() - started < 0.01
    other_shape = count_flops(module, torch.randn(1, 3, 8, 8))
    assert other_shape is not first and other_shape.gflops * 1e9 == expected_small_cnn_flops(8, 8)
    assert count_flops(small_cnn(), torch.randn(1, 3, 16, 16)) is not first  # another module object


def test_cache_per_config_is_shared_between_equal_configs():
    clear_cache()
    config = {"backbone": "small_cnn", "width": 8}
    first = count_flops(small_cnn(), torch.randn(1, 3, 16, 16), config)
    assert count_flops(small_cnn(), torch.randn(1, 3, 16, 16), dict(config)) is first
    assert count_flops(small_cnn(), torch.randn(1, 3, 16, 16), {**config, "width": 9}) is not first


def test_recurrent_layers_are_counted():
    """fvcore alone counts nn.LSTM as zero; the harness's handle must equal the unrolled cells."""
    steps, batch, inp, hidden = 5, 2, 8, 16
    lstm = nn.LSTM(inp, hidden, num_layers=2, batch_first=True)
    count = count_flops(lstm, torch.randn(batch, steps, inp))
    per_step = 4 * hidden * (inp + hidden) + 4 * hidden * (hidden + hidden)
    assert count.gflops * 1e9 == steps * batch * per_step

    class Unrolled(nn.Module):
        def __init__(self):
            super().__init__()
            self.cells = nn.ModuleList([nn.LSTMCell(inp, hidden), nn.LSTMCell(hidden, hidden)])

        def forward(self, x):
            states = [None, None]
            for t in range(x.shape[1]):
                h = x[:, t]
                for i, cell in enumerate(self.cells):
                    states[i] = cell(h, states[i])
                    h = states[i][0]
            return h

    unrolled = FlopCountAnalysis(Unrolled(), (torch.randn(batch, steps, inp),))
    unrolled.unsupported_ops_warnings(False)
    assert unrolled.total() == steps * batch * per_step
    gru = count_flops(nn.GRU(inp, hidden), torch.randn(steps, batch, inp))
    assert gru.gflops * 1e9 == steps * batch * 3 * hidden * (inp + hidden)


def components() -> dict[str, Component]:
    light = nn.Linear(10, 10, bias=False)  # 100 FLOPs per row
    heavy = nn.Sequential(nn.Linear(10, 50, bias=False), nn.ReLU(), nn.Linear(50, 10, bias=False))  # 1000 per row
    return {
        "light": Component(light, lambda: (torch.zeros(1, 10),), role="selection"),
        "heavy": Component(heavy, lambda rows=1: (torch.zeros(rows, 10),)),
        "shared": Component(light, lambda: (torch.zeros(2, 10),), role="selection"),  # same module again
    }


def test_account_per_video_with_realised_shapes():
    usages = [
        Usage().add("light", 16).add("heavy", 2),
        Usage().add("light", 16).add("heavy", 1, rows=5),
        Usage().add("light", 8).add("shared", 1),
    ]
    result = account(components(), usages)
    np.testing.assert_allclose(result.per_video * 1e9, [1600 + 2000, 1600 + 5000, 800 + 200])
    np.testing.assert_allclose(result.per_video_selection * 1e9, [1600, 1600, 1000])
    np.testing.assert_allclose(result.per_video_recognition * 1e9, [2000, 5000, 0])
    assert result.params == 100 + 500 + 500  # the shared module counted once
    rows = {(r["component"], str(r["shape"])): r for r in result.table}
    assert rows[("heavy", "{'rows': 5}")]["gflops_per_call"] * 1e9 == 5000
    assert rows[("heavy", "{}")]["calls"] == 2 and rows[("light", "{}")]["calls"] == 40
    assert rows[("heavy", "{'rows': 5}")]["input_shapes"] == [[5, 10]]
    summary = result.summary
    assert summary["gflops_per_video_mean"] == pytest.approx(np.mean(result.per_video))
    assert summary["gflops_per_video_std"] == pytest.approx(np.std(result.per_video))
    assert summary["gflops_per_video_min"] * 1e9 == pytest.approx(1000)
    assert summary["gflops_per_video_max"] * 1e9 == pytest.approx(6600)
    assert summary["gflops_selection_mean"] * 1e9 == pytest.approx(4200 / 3)
    assert summary["gflops_recognition_mean"] * 1e9 == pytest.approx(7000 / 3)


def test_account_rejects_undeclared_components():
    with pytest.raises(KeyError, match="'sampler'"):
        account(components(), [Usage().add("sampler", 1)])


def test_brute_force_counts_what_runs():
    heavy = components()["heavy"].module
    assert brute_force_gflops(heavy, (torch.zeros(3, 10),)) * 1e9 == 3000


# -- runtime ------------------------------------------------------------------------------------
def test_measure_latency_takes_the_median():
    result = measure_latency(lambda: time.sleep(0.02), warmup=1, repeats=3, device="cpu", batch_size=4)
    assert 18 < result["latency_ms"] < 200
    assert result["throughput"] == pytest.approx(4 * 1000 / result["latency_ms"])
    assert result["repeats"] == 3 and result["threads"] == torch.get_num_threads() and result["device"] == "cpu"


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            pick_device("cuda:0")


PEAK_SCRIPT = """
import json, torch
from harness.runtime import peak_memory_mb, track_peak_memory
with track_peak_memory("cpu") as small:
    torch.ones(2 * 2**20 // 4)
with track_peak_memory("cpu") as big:
    block = torch.ones(60 * 2**20 // 4)  # 60 MiB, touched
    del block
print(json.dumps({"small": small.increase_mb, "big": big.increase_mb, "source": big.source,
                  "peak": big.peak_mb, "process": peak_memory_mb("cpu")}))
"""


def test_peak_memory_of_a_block_on_cpu():
    """In a fresh process (RSS is process-wide: allocator caches of other tests would blur it)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    assert mem["source"] == "rss_hwm"  # the high-water mark was reset at the block's start
    assert 50 < mem["big"] < 120 and mem["small"] < 20
    assert mem["process"] >= mem["peak"] - 1


def test_channels_last_and_autocast_keep_results_on_cpu():
    torch.manual_seed(0)
    model = build_backbone("r3d_18", {"width": 8}, 3).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    expected = model(x)
    with autocast("cpu", enabled=True):  # autocast is a CUDA option: a no-op here
        got = channels_last(model)(channels_last(x))
    assert channels_last(x).is_contiguous(memory_format=torch.channels_last_3d)
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert got.dtype == torch.float32 and torch.allclose(got, expected, atol=1e-4)


def test_saved_activations_grow_with_frames():
    model = build_backbone("tsm_resnet18", {"width": 8}, 2)
    four = saved_activation_mb(model, torch.randn(1, 3, 4, 32, 32))
    eight = saved_activation_mb(model, torch.randn(1, 3, 8, 32, 32))
    assert eight / four == pytest.approx(2.0, rel=0.1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_count_and_latency():
    device = pick_device("auto")
    model = build_backbone("r3d_18", {"width": 16}, 5).to(device).eval()
    x = torch.randn(2, 3, 8, 56, 56, device=device)
    cpu_count = count_flops(build_backbone("r3d_18", {"width": 16}, 5), torch.randn(1, 3, 8, 56, 56))
    assert count_flops(model, x[:1]).gflops == pytest.approx(cpu_count.gflops)
    with track_peak_memory(device) as mem:
        timing = measure_latency(model, (x,), warmup=2, repeats=5, device=device, batch_size=2)
    assert timing["device"].startswith("cuda") and timing["latency_ms"] > 0
    assert mem.source == "cuda_max_allocated" and mem.peak_mb > 0
    with autocast(device):
        fast = channels_last(model)(channels_last(x))
    assert fast.dtype == torch.bfloat16 and torch.allclose(fast.float(), model(x), atol=0.1, rtol=0.05)
    print(f"cuda r3d_18 w16 2x3x8x56x56: {timing['latency_ms']:.2f} ms, peak {mem.peak_mb:.0f} MB")
