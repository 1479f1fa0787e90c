"""The proof that per-video accounting is true, as contract tests over the method registry (as
timm's tests/test_models.py is over ``list_models()``): every registered dynamic method, built as a
trial builds it on the built-in benchmark, is held to the same proof, a third-party one included.

On 10 test videos, through ``predict_batch`` (the forward a trial runs): each prediction's usage
names exactly the components whose modules ran in the brute-force trace of the video's realised
path (``trace_video``), and the accounted GFLOPs equal that trace's fvcore count within a tolerance
smaller than half the cheapest component the video used, so no component can go missing unseen.
The toy gated model first shows why one fvcore trace is not enough. ``PROOF_CASES`` holds hand-made
cases (``(tmp_path) -> (method, records)``) that ``benchmarks/flops_reference.py`` reuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from harness.compute import account, brute_force_gflops, verify_accounting
from harness.method import Component, Method, Prediction, Usage
from harness.params import resolve_params
from harness.registry import BACKBONES, DATASETS, METHODS
from harness.settings import EVALUATION_PARAMS
from harness.stages import StageStore
from harness.trial import build_context

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
        self.heavy = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, CLASSES),
        )
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
        return {
            "light": Component(self.parts.light, frame, role="selection"),
            "scorer": Component(self.parts.scorer, vector, role="selection"),
            "gate": Component(self.parts.gate, vector, role="selection"),
            "heavy": Component(self.parts.heavy, frame),
            "light_head": Component(self.parts.light_head, vector),
        }

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
        return Prediction(
            scores=torch.softmax(scores, 0).detach().numpy(), usage=usage, selected=selected, extras={"gate": open_gate}
        )

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


# Hand-made cases: name -> (tmp_path) -> (method, >= 10 records).
PROOF_CASES: dict[str, Callable[[Path], tuple[Method, list]]] = {"toy_gated": toy_case}


def registered_dynamic_methods() -> list[str]:
    return [name for name in METHODS.names() if METHODS.get(name).dynamic]


def build_small_method(name: str, root: Path, store: Any, workdir: Path) -> tuple[Any, Method]:
    """A registered method built the way a trial builds it, on skim-digits tiny (generated at
    ``root``), on the small backbone the method declares (``Method.test_backbone``), 1 training epoch."""
    cls = METHODS.get(name)
    backbone = cls.test_backbone
    dataset_params = {"size": "tiny", "variant": "longrange", "root": str(root)}
    dataset = resolve_params(DATASETS.get("skim-digits").params, dataset_params)
    cfg = {
        "dataset": {"name": "skim-digits", "params": dataset},
        "backbone": {
            "name": backbone["name"],
            "params": resolve_params(BACKBONES.get(backbone["name"]).params, backbone["params"]),
        },
        "method": {"name": name, "params": resolve_params(cls.params, {"epochs": 1} if "epochs" in cls.params else {})},
        "seed": 0,
        "evaluation": resolve_params(EVALUATION_PARAMS, {"device": "cpu", "heavy_epochs": 1}),
    }
    ctx, method = build_context(cfg, store, workdir, log=lambda _: None)
    method.fit(ctx.dataset.split("train"))
    return ctx, method


def modules_that_ran(module: nn.Module, inputs: tuple) -> set[int]:
    """Identities of the leaf modules with non-zero FLOPs in one fvcore trace of ``module(*inputs)``."""
    analysis = FlopCountAnalysis(module, inputs).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    flops = analysis.tracer_warnings("none").by_module()
    return {id(m) for name, m in module.named_modules() if not list(m.children()) and flops.get(name, 0) > 0}


def check_proof(method: Method, records: list, predictions: list[Prediction]) -> None:
    """The contract on each video: usage names exactly the components that ran, and the accounted
    GFLOPs equal the brute-force count within half the cheapest used component."""
    components = method.components()
    leaves = {name: {id(m) for m in c.module.modules()} for name, c in components.items()}
    for record, prediction in zip(records, predictions):
        video = getattr(record, "video_id", record)
        module, inputs = method.trace_video(record)
        brute = brute_force_gflops(module, inputs)
        ran = modules_that_ran(module, inputs)
        used = {name for name, _, calls in prediction.usage.items() if calls > 0}
        traced = {name for name, ids in leaves.items() if ids & ran}
        assert used == traced, f"{video}: usage names {sorted(used)}, the trace ran {sorted(traced)}"
        costs = [
            float(account(components, [Usage().add(name, calls, **shape)]).per_video[0])
            for name, shape, calls in prediction.usage.items()
        ]
        tolerance = min(0.01 * brute, 0.5 * min(c for c in costs if c > 0))
        accounted = float(account(components, [prediction.usage]).per_video[0])
        assert brute > 0 and abs(accounted - brute) <= tolerance, f"{video}: accounted {accounted}, brute force {brute}"


# -- the toy: why per-video accounting is needed, and that the contract catches a lie ---------------
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
def test_hand_made_cases_hold_the_contract(case, tmp_path):
    method, records = PROOF_CASES[case](tmp_path)
    assert len(records) >= 10
    check_proof(method, records, [method.predict(r) for r in records])


@pytest.mark.parametrize("forget", ["light", "scorer", "gate", "light_head"])
def test_a_forgotten_component_is_caught_however_cheap(forget):
    """Negative control: leaving any one component out of the usage fails the contract, even the
    scorer and gate, each far below 1% of the video's GFLOPs."""
    method, videos = GatedToyMethod(forget=forget), toy_videos()
    with pytest.raises(AssertionError, match="usage names"):
        check_proof(method, videos, [method.predict(v) for v in videos])
    honest = GatedToyMethod()
    share = [
        float(account(honest.components(), [Usage().add(forget, 1)]).per_video[0]) / b
        for _, b in verify_accounting(honest, videos)
    ]
    assert forget in ("light", "light_head") or max(share) < 0.01  # a 1% tolerance would miss it


def test_per_video_accounting_of_the_toy():
    method, videos = toy_case(Path("."))
    result = account(method.components(), [method.predict(v).usage for v in videos])
    assert result.per_video.shape == (len(videos),) and result.per_video.std() > 0
    assert (result.per_video_selection > 0).all()  # the light net runs on every video
    assert (result.per_video == result.per_video_selection + result.per_video_recognition).all()


# -- the contract, for every registered dynamic method ----------------------------------------------
@pytest.fixture(scope="module")
def stage_store(tmp_path_factory) -> StageStore:
    return StageStore(tmp_path_factory.mktemp("proof") / "stages")


@pytest.mark.parametrize("name", registered_dynamic_methods())
def test_dynamic_method_holds_the_flop_contract(name, tiny_root, stage_store, tmp_path):
    assert METHODS.get(name).trace_video is not Method.trace_video, f"dynamic method '{name}' lacks trace_video"
    ctx, method = build_small_method(name, tiny_root, stage_store, tmp_path)
    getattr(method, "eval_mode", lambda: None)()  # until Method declares eval_mode for every method
    records = ctx.dataset.split("test")[:10]
    assert len(records) == 10, f"{name}: the proof needs 10 test videos"
    with torch.no_grad():
        predictions = method.predict_batch(records)  # what a trial runs
    check_proof(method, records, predictions)
