"""Small, fast, real method plugins for testing the harness itself (loaded with --plugin).

``quick_centroid`` classifies a video by the nearest class centroid of its mean frame colour over
``k`` uniformly spaced frames: real decoded frames, real fit/predict, real usage and FLOPs, in
milliseconds. Switches make it fail, sleep, burn CPU or count a shared stage, for harness tests.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.method import Component, Method, Prediction, Usage
from harness.params import Param
from harness.registry import register_method
from harness.stages import StageRequest


class _Probe(nn.Module):
    """The per-frame 'network': a linear map of a frame's mean colour to 8 features."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 8)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:  # [1, 3, H, W]
        return self.proj(frame.mean(dim=(2, 3)))


def _wait_at_barrier(folder: Path, limit_s: float = 900.0) -> None:
    """Say "here" in ``folder``, then wait for the test to create ``folder/release`` (at most ``limit_s``)."""
    (folder / f"here-{os.getpid()}").touch()
    deadline = time.monotonic() + limit_s
    while not (folder / "release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody created {folder / 'release'} within {limit_s:g} s")
        time.sleep(0.2)


@register_method("quick_centroid")
class QuickCentroid(Method):
    summary = "test plugin: nearest class centroid of mean frame colour over k frames"
    budget_param = "k"
    dynamic = True
    params = {
        "k": Param(4, "frames looked at per video", low=1),
        "fail": Param(False, "raise in fit (tests the FAILED path)"),
        "fail_once_file": Param("", "raise in fit unless this file exists, then create it (tests retries)"),
        "sleep_s": Param(0.0, "sleep this long in fit (tests timeouts)", low=0),
        "burn_s": Param(0.0, "burn this much CPU time in fit (benchmarks)", low=0),
        "stage_counter": Param("", "append a line to this file when the shared stage is computed"),
        "declare_stage": Param(True, "declare the shared stage (Method.stages), so the plan computes it first"),
        "stage_fail": Param(False, "the shared stage raises (after counting itself)"),
        "stage_direct": Param(False, "write the shared stage's folder directly, not through the store's lock"),
        "die": Param(False, "SIGKILL the worker process in fit unless fail_once_file exists"),
        "barrier_dir": Param(
            "", "in fit, create a file named after this process here, then wait until the file `release` is here"
        ),
        "expected_cost": Param(2.0, "the trial's declared cost (Method.cost), for scheduling tests", low=0),
    }

    @property
    def cost(self) -> float:  # type: ignore[override]
        return float(self.p["expected_cost"])

    def _shared_deps(self) -> dict:
        return {"dataset": self.ctx.dataset.manifest_hash(), **({"fail": True} if self.p["stage_fail"] else {})}

    def _shared(self) -> Path:
        def compute(out: Path) -> None:
            with open(self.p["stage_counter"], "a") as f:
                f.write("computed\n")
            time.sleep(1.0)
            if self.p["stage_fail"]:
                raise RuntimeError("quick_shared was asked to fail")
            (out / "value.txt").write_text("shared")

        if self.p["stage_direct"]:  # as a sharded extraction does: its own folder and marker
            folder = self.ctx.store.path("quick_shared", self._shared_deps())
            if not (folder / "meta.json").exists():
                folder.mkdir(parents=True, exist_ok=True)
                compute(folder)
                (folder / "meta.json").write_text("{}")
            return folder
        return self.ctx.stage("quick_shared", self._shared_deps(), compute)

    def stages(self):
        if not (self.p["stage_counter"] and self.p["declare_stage"]):
            return []
        return [StageRequest("quick_shared", self._shared_deps(), self._shared)]

    def fit(self, train):
        p = self.p
        if p["fail"]:
            raise ValueError("quick_centroid was asked to fail")
        if p["fail_once_file"] and not os.path.exists(p["fail_once_file"]):
            Path(p["fail_once_file"]).write_text("failed once\n")
            if p["die"]:
                os.kill(os.getpid(), 9)
            raise RuntimeError("quick_centroid fails on its first attempt")
        if p["barrier_dir"]:  # concurrency tests: every trial that got here is running at once
            _wait_at_barrier(Path(p["barrier_dir"]))
        time.sleep(p["sleep_s"])
        end = time.process_time() + p["burn_s"]
        while time.process_time() < end:
            sum(i * i for i in range(10_000))
        if p["stage_counter"]:
            self._shared()
        torch.manual_seed(self.ctx.seed)
        self.probe = _Probe().eval()
        self.bank = self.ctx.frames("train")
        feats = np.stack([self._features(self.bank, r.video_id) for r in train])
        labels = np.array([r.labels[0] for r in train])
        self.centroids = np.stack(
            [
                feats[labels == c].mean(0) if (labels == c).any() else np.full(feats.shape[1], np.inf)
                for c in range(self.ctx.dataset.num_classes)
            ]
        )
        self.test_bank = self.ctx.frames("test")

    def _frames(self, bank, video_id):
        video = bank.video(video_id)
        idx = np.linspace(0, len(video) - 1, min(self.p["k"], len(video))).round().astype(int)
        return idx, video[idx]

    def _features(self, bank, video_id) -> np.ndarray:
        _, frames = self._frames(bank, video_id)
        x = frames.permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            return torch.cat([self.probe(f[None]) for f in x]).mean(0).numpy()

    def components(self):
        return {"probe": Component(self.probe, lambda: (torch.zeros(1, 3, 32, 32),), role="recognition")}

    def predict(self, video):
        idx, _ = self._frames(self.test_bank, video.video_id)
        dist = ((self.centroids - self._features(self.test_bank, video.video_id)) ** 2).sum(1)
        scores = np.exp(-(dist - dist.min()))
        return Prediction(scores / scores.sum(), Usage({"probe": len(idx)}), selected=idx.tolist())
