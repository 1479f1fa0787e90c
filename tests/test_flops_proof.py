"""The proof that per-video accounting is true: for every dynamic method, on >= 10 videos, the
GFLOPs accounted from ``predict``'s usage equal an independent brute-force fvcore count of the
path that really ran (``trace_video``), within 1%.

A dynamic method is proven by its own test file (tests/test_<name>.py, or any test file that calls
``verify_accounting`` and names it), by a ``PROOF_CASES`` entry here (``(tmp_path) -> (method,
records)``), or else by the generic proof at the end of this file, which builds it as a trial
does on the built-in benchmark. ``benchmarks/flops_reference.py`` reuses these cases.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from harness.compute import account, verify_accounting
from harness.method import Component, Method, Prediction, Usage
from harness.registry import METHODS

SIZE, CLASSES = 16, 4


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# -- the toy gated model of the notes: a gate that skips the heavy branch for some videos ------
class GatedParts(nn.Module):
    """A per-frame light net and scorer; a video-level gate; a heavy net on the frames scored above
    a threshold (their number k varies per video), or a light head when the gate is closed."""

    def __init__(self):
        super().__init__()
        self.light = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.scorer = nn.Linear(8, 1)
        self.gate = nn.Linear(8, 1)
        self.heavy = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, CLASSES))
        self.light_head = nn.Linear(8, CLASSES)
        with torch.no_grad():  # decisions follow the video's brightness: both branches occur
            self.light[0].weight.fill_(1 / 27)
            self.light[0].bias.zero_()
            self.scorer.weight.fill_(1 / 8)
            self.scorer.bias.fill_(-0.2)
            self.gate.weight.fill_(1 / 8)
            self.gate.bias.zero_()

    def decide(self, frames: torch.Tensor) -> tuple[torch.Tensor, bool, list[int]]:
        features = self.light(frames)
        open_gate = bool(self.gate(features.mean(0)) > 0)
        selected = torch.nonzero(self.scorer(features)[:, 0] > 0)[:, 0].tolist() if open_gate else []
        return features, open_gate, selected

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """The dynamic model as users write it: what a single fvcore trace gets wrong."""
        features, _, selected = self.decide(frames)
        if selected:
            return self.heavy(frames[selected]).mean(0)
        return self.light_head(features.mean(0))


class RealisedPath(nn.Module):
    """Replays one video's decisions as constants: its forward is exactly what ran for the video.
    Every intermediate result is returned so that the trace cannot prune an op that ran."""

    def __init__(self, parts: GatedParts, scorer_ran: bool, selected: list[int]):
        super().__init__()
        self.parts, self.scorer_ran, self.selected = parts, scorer_ran, selected

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.parts.light(frames)
        ran = [features, self.parts.gate(features.mean(0))]
        if self.scorer_ran:
            ran.append(self.parts.scorer(features))
        if self.selected:
            ran.append(self.parts.heavy(frames[self.selected]).mean(0))
        else:
            ran.append(self.parts.light_head(features.mean(0)))
        return tuple(ran)


@dataclass
class ToyVideo:
    video_id: str
    frames: torch.Tensor


class GatedToyMethod(Method):
    """A dynamic method whose bookkeeping counts every component at its realised shape."""

    dynamic = True

    def __init__(self, forget: str | None = None):
        super().__init__(ctx=None)
        torch.manual_seed(0)
        self.parts = GatedParts().eval()
        self.forget = forget  # for the negative control: a component left out of the usage

    def components(self) -> dict[str, Component]:
        frame = lambda n=1: (torch.zeros(n, 3, SIZE, SIZE),)
        vector = lambda: (torch.zeros(1, 8),)
        return {"light": Component(self.parts.light, frame, role="selection"),
                "scorer": Component(self.parts.scorer, vector, role="selection"),
                "gate": Component(self.parts.gate, vector, role="selection"),
                "heavy": Component(self.parts.heavy, frame),
                "light_head": Component(self.parts.light_head, vector)}

    def predict(self, video: ToyVideo) -> Prediction:
        frames = video.frames
        features, open_gate, selected = self.parts.decide(frames)
        usage = Usage().add("light", len(frames)).add("gate", 1)
        if open_gate:
            usage.add("scorer", len(frames))
        if selected:
            scores = self.parts.heavy(frames[selected]).mean(0)
            usage.add("heavy", 1, n=len(selected))  # one call on k frames: counted at shape k
        else:
            scores = self.parts.light_head(features.mean(0))
            usage.add("light_head", 1)
        if self.forget:
            kept = Usage()
            for name, shape, n in usage.items():
                if name != self.forget:
                    kept.add(name, n, **shape)
            usage = kept
        return Prediction(scores=torch.softmax(scores, 0).detach().numpy(), usage=usage, selected=selected,
                          extras={"gate": open_gate})

    def trace_video(self, video: ToyVideo) -> tuple[nn.Module, tuple]:
        _, open_gate, selected = self.parts.decide(video.frames)
        return RealisedPath(self.parts, open_gate, selected), (video.frames,)


def toy_videos(count: int = 12) -> list[ToyVideo]:
    generator = torch.Generator().manual_seed(1)
    videos = []
    for i in range(count):
        t = 6 + i % 5
        offset = -1.0 + 2.0 * i / (count - 1)
        frames = 0.3 * torch.randn(t, 3, SIZE, SIZE, generator=generator) + offset
        frames += 0.5 * torch.randn(t, 1, 1, 1, generator=generator)
        videos.append(ToyVideo(f"toy{i}", frames))
    return videos


def toy_case(tmp_path: Path) -> tuple[Method, list]:
    return GatedToyMethod(), toy_videos()


# Dynamic methods add their case here: method name -> (tmp_path) -> (method, >= 10 records).
PROOF_CASES: dict[str, Callable[[Path], tuple[Method, list]]] = {"toy_gated": toy_case}


def registered_dynamic_methods() -> list[str]:
    return [name for name in METHODS.names() if getattr(METHODS.get(name), "dynamic", False)]


# -- tests --------------------------------------------------------------------------------------
def test_toy_videos_take_both_branches_with_varying_k():
    method = GatedToyMethod()
    decisions = [method.parts.decide(v.frames) for v in toy_videos()]
    assert {gate for _, gate, _ in decisions} == {True, False}
    assert len({len(sel) for _, gate, sel in decisions if gate}) >= 3


def test_a_single_fvcore_trace_gets_the_gated_model_wrong():
    """The failure the harness exists to avoid: one trace counts one path for every video."""
    method, videos = toy_case(Path("."))
    truth = [brute for _, brute in verify_accounting(method, videos)]
    traced_once = FlopCountAnalysis(method.parts, (videos[0].frames,))  # a closed-gate video
    traced_once.unsupported_ops_warnings(False).tracer_warnings("none")
    single = traced_once.total() / 1e9
    assert max(truth) > 5 * single  # the heavy branch silently counted as zero


@pytest.mark.parametrize("case", sorted(PROOF_CASES))
def test_accounted_equals_brute_force_per_video(case, tmp_path):
    method, records = PROOF_CASES[case](tmp_path)
    assert len(records) >= 10
    pairs = verify_accounting(method, records)
    for (accounted, brute), record in zip(pairs, records):
        assert brute > 0
        assert abs(accounted - brute) <= 0.01 * brute, f"{case} {getattr(record, 'video_id', record)}: {accounted} vs {brute}"
    assert len({round(b, 9) for _, b in pairs}) > 1 or not method.dynamic  # cost really varies


def test_forgotten_component_is_caught():
    """Negative control: a method that leaves its light net out of the usage fails the proof."""
    method, videos = GatedToyMethod(forget="light"), toy_videos()
    pairs = verify_accounting(method, videos)
    assert all(accounted < 0.99 * brute for accounted, brute in pairs)


def test_per_video_accounting_of_the_toy():
    method, videos = toy_case(Path("."))
    result = account(method.components(), [method.predict(v).usage for v in videos])
    assert result.per_video.shape == (len(videos),) and result.per_video.std() > 0
    assert (result.per_video_selection > 0).all()  # the light net runs on every video
    assert (result.per_video == result.per_video_selection + result.per_video_recognition).all()


def test_every_dynamic_method_implements_trace_video():
    for name in registered_dynamic_methods():
        assert METHODS.get(name).trace_video is not Method.trace_video, f"dynamic method '{name}' lacks trace_video"


def proof_tests_of(name: str) -> list[str]:
    """Test files holding a method's proof outside ``PROOF_CASES``: they call ``verify_accounting``
    and are the method's own file (tests/test_<name>.py), import its module, or name it in quotes
    (a parametrised proof over several methods)."""
    module = METHODS.get(name).__module__
    tests = Path(__file__).resolve().parent
    return [f.name for f in sorted(tests.glob("test_*.py"))
            if "verify_accounting(" in (text := f.read_text())
            and (f.stem == f"test_{name}" or f"{module} import" in text or f'"{name}"' in text or f"'{name}'" in text)]


# video backbone each method is built on for the generic proof (small: the point is the accounting)
SMALL_3D = {"name": "r3d_18", "params": {"width": 8, "input_size": 32}}
SMALL_BACKBONE = {"temporal_clustering": {"name": "tsm_resnet18", "params": {"width": 8, "input_size": 32}}}


def build_small_method(name: str, root: Path, store: Any, workdir: Path) -> tuple[Any, Method]:
    """A registered method built the way a trial builds it, on skim-digits tiny (generated at
    ``root``), a small backbone, 1 training epoch: enough to exercise every component."""
    from harness.params import resolve_params
    from harness.registry import BACKBONES, DATASETS
    from harness.settings import EVALUATION_PARAMS
    from harness.trial import build_context

    cls = METHODS.get(name)
    backbone = SMALL_BACKBONE.get(name, SMALL_3D)
    cfg = {"dataset": {"name": "skim-digits", "params": resolve_params(DATASETS.get("skim-digits").params,
                                                                      {"size": "tiny", "variant": "longrange", "root": str(root)})},
           "backbone": {"name": backbone["name"], "params": resolve_params(BACKBONES.get(backbone["name"]).params, backbone["params"])},
           "method": {"name": name, "params": resolve_params(cls.params, {"epochs": 1} if "epochs" in cls.params else {})},
           "seed": 0, "evaluation": resolve_params(EVALUATION_PARAMS, {"device": "cpu", "heavy_epochs": 1})}
    ctx, method = build_context(cfg, store, workdir, log=lambda _: None)
    method.fit(ctx.dataset.split("train"))
    return ctx, method


def test_every_dynamic_method_has_a_per_video_proof(tiny_root, tmp_path):
    """Methods without a proof of their own (own test file, or PROOF_CASES) get the generic one here."""
    from harness.stages import StageStore

    store = StageStore(tmp_path / "stages")
    for name in registered_dynamic_methods():
        if name in PROOF_CASES or proof_tests_of(name):
            continue
        ctx, method = build_small_method(name, tiny_root, store, tmp_path / "work")
        pairs = verify_accounting(method, ctx.dataset.split("test")[:10])
        assert len(pairs) == 10, f"{name}: the generic proof needs 10 test videos"
        for accounted, brute in pairs:
            assert brute > 0 and abs(accounted - brute) <= 0.01 * brute, (name, accounted, brute)
