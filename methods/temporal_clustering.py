"""Full-video temporal clustering (seed 004, "No frame left behind"): train on every frame at the cost of g.

A TSM backbone runs its stem and first residual stage ("the first block": Table 1's FLOPs are
32 x (stem + block1) + g x rest) on every frame of the video; the activations are binarised,
neighbouring frames compared by Hamming distance, the frames cut into g contiguous clusters
(``rule``: cumulative, slope, or the paper's uniform-grouping baseline; ``methods/temporal_clustering_layers.py``
documents the edge cases) and each cluster's activations averaged, so the remaining stages run on
g maps per video. Training is end-to-end through the averages.

Test-time reading: every frame is clustered at test time too (not TSM's one clip of g sampled
frames). The paper says both: its Table 1 counts 32 x (stem + block1) + g x (rest) FLOPs per video,
i.e. clustering at inference, while its protocol text says "during testing, we follow the setting
of TSM and sample one clip per video". We follow Table 1 because (a) it is what the paper's cost
claims measure, so GFLOPs and accuracy describe the same network; (b) a network trained on cluster
averages of all frames would otherwise be tested on single raw frames, a different input
distribution; (c) TSM's one-clip reading is the ``sampled`` row already.

``mode`` gives the other rows of Table 1 with the same recipe: ``all_frames`` (TSM on every frame)
and ``sampled`` (TSM on g frames, one per equal segment: random offset in training, centre at test).

Budget: ``g``. The paper trains one model per g; ``g_train`` lets one model serve several test-time
g (a harness extension, null = train with g).

Accounting per video: ``pre`` once at the frames it ran on (T, or g when sampled), ``post`` once at
g (T for all_frames). Binarising, Hamming distances and averaging are comparisons and additions,
zero fvcore FLOPs, as the paper's Table 1 ignores them. ``Prediction.extras``:
``cluster_boundaries`` (first frame of each cluster, in video frame indices), ``frames_used``, and
``train_memory_mb`` -- the activation memory a training step keeps for backward on this video
(``harness.toolkit.training.training_memory_mb``), Table 1's memory column.

Measured results: ``skimbench run experiments/clustering_claims.yaml --local`` then ``skimbench
report clustering-claims`` (top-1, GFLOPs and training memory per video of every row).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from harness.backbones.base import SplitVideoNet, run_grouped
from harness.data.sampling import tsn_segments
from harness.method import Component, Method, Prediction, Usage
from harness.params import Param
from harness.registry import register_method
from harness.toolkit.clips import frame_shape, to_input
from harness.toolkit.selection import class_probabilities
from harness.toolkit.stages import backbone_deps, dataset_deps
from harness.toolkit.trained import network_stage, train_on_videos, trained_network
from harness.toolkit.training import training_memory_mb
from methods.temporal_clustering_layers import RULES, TemporalClustering

RECIPE = 2  # bump when training changes: part of the stage key
MODES = ("cluster", "all_frames", "sampled")
TRAIN_PARAMS = ("mode", "rule", "after_stage", "frame_stride", "epochs", "batch_size", "lr")


class ClusterNet(nn.Module):
    """A video backbone split after ``after_stage`` stages with temporal clustering in between."""

    def __init__(self, backbone: nn.Module, after_stage: int, g: int, rule: str):
        super().__init__()
        self.split = SplitVideoNet(backbone, after_stage)
        self.cluster = TemporalClustering(g, rule)
        self.full = nn.Sequential(self.split.pre, self.split.post)  # the backbone without clustering

    def forward(self, videos: Sequence[Tensor], g: int | None = None) -> tuple[Tensor, list[list[int]]]:
        """videos: [C, T_i, H, W] each (any T_i) -> (logits [N, classes], cluster starts per video)."""
        maps, starts = [], []
        for early in pre_per_length(self.split.pre, videos):  # [C', T_i, H', W']
            out, s = self.cluster(early.transpose(0, 1), g)
            maps.append(out.transpose(0, 1))
            starts.append(s)
        return self.split.post(torch.stack(maps)), starts


def pre_per_length(pre: nn.Module, videos: Sequence[Tensor]) -> list[Tensor]:
    """Run ``pre`` on videos of possibly different lengths, batching equal lengths (no padding)."""
    groups: dict[int, list[int]] = {}
    for i, v in enumerate(videos):
        groups.setdefault(int(v.shape[1]), []).append(i)
    out: list[Tensor | None] = [None] * len(videos)
    for _, idx in sorted(groups.items()):
        y = pre(torch.stack([videos[i] for i in idx]))
        for j, i in enumerate(idx):
            out[i] = y[j]
    return out  # type: ignore[return-value]


class ClusterTrace(nn.Module):
    """One video's computation as a traceable module (the brute-force FLOP proof)."""

    def __init__(self, net: ClusterNet, g: int):
        super().__init__()
        self.net, self.g = net, g

    def forward(self, x: Tensor) -> Tensor:
        return self.net([x[0]], self.g)[0]


@register_method("temporal_clustering")
class TemporalClusteringMethod(Method):
    summary = "TSM on all frames clustered into g groups by Hamming distance after the first block (seed 004)"
    cost = 8.0  # rough seconds of a trial (Method.cost): the scheduler starts costly trials first
    params = {
        "g": Param(8, "clusters per video (sampled mode: frames per video)", low=1),
        "g_train": Param(
            None, "g during training (null: g, one model per g as in the paper)", type=int, low=1, nullable=True
        ),
        "rule": Param(
            "cumulative",
            "clustering rule: cumulative, slope, or uniform grouping (the paper's baseline)",
            choices=RULES,
        ),
        "mode": Param(
            "cluster",
            "cluster: all frames in g clusters; all_frames: TSM on every frame; sampled: TSM "
            "on g sampled frames (Table 1's rows)",
            choices=MODES,
        ),
        "after_stage": Param(
            1, "backbone stages before clustering: 1 = stem + first stage (the paper's 'first block')", low=0, high=3
        ),
        "frame_stride": Param(1, "use every n-th frame (1 = every frame, as the paper)", low=1),
        "epochs": Param(5, "training epochs", low=1),
        "batch_size": Param(8, "training batch size (videos)", low=1),
        "lr": Param(3e-3, "peak learning rate (AdamW, one-cycle)", low=0.0),
    }
    budget_param = "g"
    dynamic = True  # cost follows each video's length
    baseline_modes = {"all_frames": "TSM on all frames (mode=all_frames)", "sampled": "TSM on g frames (mode=sampled)"}
    video_facts = {"cluster_boundaries": "non-empty clusters per video (distinct cluster starts)"}
    test_backbone = {"name": "tsm_resnet18", "params": {"width": 8, "input_size": 32}}
    selection_unit = "frame"

    @property
    def g_train(self) -> int:
        return int(self.p["g_train"] or self.p["g"])

    # -- data ----------------------------------------------------------------------------------
    def _frame_indices(self, length: int, rng: np.random.Generator | None, g: int) -> np.ndarray:
        if self.p["mode"] == "sampled":
            return tsn_segments(length, g, rng is not None, rng)
        return np.arange(0, length, int(self.p["frame_stride"]))

    def _inputs(
        self, bank: Any, video_ids: Sequence[str], rng: np.random.Generator | None, g: int
    ) -> tuple[list[Tensor], list[np.ndarray]]:
        xs, picks = [], []
        for video_id in video_ids:
            row = bank.index(video_id)
            idx = self._frame_indices(int(bank.lengths[row]), rng, g)
            xs.append(to_input(bank.frames(row, idx), self.ctx.device))  # only these frames are decoded
            picks.append(idx)
        return xs, picks

    def _forward(self, xs: list[Tensor], g: int) -> tuple[Tensor, list[list[int]] | None]:
        if self.p["mode"] == "cluster":
            return self.net(xs, g)
        return run_grouped(self.net.full, xs), None

    # -- training ------------------------------------------------------------------------------
    def _new_net(self) -> ClusterNet:
        from harness.backbones.weights import build_with_weights

        backbone = build_with_weights(self.ctx.backbone, self.ctx.dataset.num_classes)  # pretrained if given
        return ClusterNet(backbone, int(self.p["after_stage"]), self.g_train, self.p["rule"])

    def _model_deps(self) -> dict[str, Any]:
        """The trained network's stage key inputs; the training videos are those the training frames (their
        key is in ``dataset_deps``) decode."""
        train_params = {k: self.p[k] for k in TRAIN_PARAMS}
        train_params["g"] = self.g_train
        return {
            "recipe": RECIPE,
            "dataset": dataset_deps(self.ctx),
            "backbone": backbone_deps(self.ctx.backbone),
            "seed": int(self.ctx.seed),
            "train": train_params,
        }

    def _train(self, net: nn.Module) -> None:
        self.net = net  # self._forward runs self.net

        def forward(x: Tensor, mask: Tensor) -> Tensor:  # padded batch -> each video at its own length
            return self._forward([x[i, :, : int(mask[i].sum())] for i in range(len(x))], self.g_train)[0]

        pick = lambda n, rng: self._frame_indices(n, rng, self.g_train)  # noqa: E731
        train_on_videos(self.ctx, net, pick, forward, self.p, f"clustering/{self.p['mode']}")

    def stages(self) -> list:
        return [
            network_stage(
                self.ctx, "temporal_clustering_model", self._model_deps(), self._new_net, self._train, cost=15.0
            )
        ]

    def fit(self, train: Sequence[Any]) -> None:
        self.net, _ = trained_network(
            self.ctx, "temporal_clustering_model", self._model_deps(), self._new_net, self._train
        )

    def eval_mode(self) -> None:
        self.net.eval()

    # -- inference -----------------------------------------------------------------------------
    def predict(self, video: Any) -> Prediction:
        return self.predict_batch([video])[0]

    def predict_batch(self, videos: Sequence[Any]) -> list[Prediction]:
        bank, g, out = self.ctx.frames("test"), int(self.p["g"]), []
        for start in range(0, len(videos), 8):
            chunk = videos[start : start + 8]
            xs, picks = self._inputs(bank, [v.video_id for v in chunk], None, g)
            with torch.no_grad():
                logits, starts = self._forward(xs, g)
            scores = class_probabilities(logits, self.ctx.dataset.multilabel).cpu().numpy()
            for i in range(len(chunk)):
                t = int(xs[i].shape[1])
                post = t if self.p["mode"] == "all_frames" else g
                extras: dict[str, Any] = {"frames_used": t, "train_memory_mb": self.train_memory_mb(t)}
                if starts is not None:
                    extras["cluster_boundaries"] = [int(picks[i][s]) for s in starts[i]]
                usage = Usage().add("pre", 1, frames=t).add("post", 1, frames=post)
                out.append(Prediction(scores=scores[i], usage=usage, extras=extras, decoded=picks[i]))
        return out

    def train_memory_mb(self, frames: int) -> float:
        """Activation memory kept for backward by one training step on one video of ``frames`` frames."""
        if not hasattr(self, "_memory"):
            self._memory: dict[int, float] = {}
        if frames not in self._memory:
            with torch.inference_mode(False):  # predictions run under inference mode; this needs autograd
                x = [self._zeros(frames)[0]]
                mb = training_memory_mb(self.net, lambda: self._forward(x, int(self.p["g"]))[0])
            self._memory[frames] = round(mb, 4)
        return self._memory[frames]

    # -- accounting ----------------------------------------------------------------------------
    @functools.cached_property
    def _hw(self) -> tuple[int, int]:
        return frame_shape(self.ctx)  # one decoded video, once

    def _zeros(self, frames: int) -> Tensor:
        h, w = self._hw
        return torch.zeros(1, 3, int(frames), h, w, device=self.ctx.device)

    def components(self) -> dict[str, Component]:
        split = self.net.split
        shape: dict[str, tuple[int, ...]] = {}

        def post_inputs(frames: int) -> tuple:
            if "pre" not in shape:
                with torch.no_grad():
                    shape["pre"] = tuple(split.pre.eval()(self._zeros(1)).shape)
            _, c, _, h, w = shape["pre"]
            return (torch.zeros(1, c, int(frames), h, w, device=self.ctx.device),)

        return {
            "pre": Component(split.pre, lambda frames: (self._zeros(frames),)),
            "post": Component(split.post, post_inputs),
        }

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        xs, _ = self._inputs(self.ctx.frames("test"), [video.video_id], None, int(self.p["g"]))
        x = xs[0].unsqueeze(0)
        if self.p["mode"] == "cluster":
            return ClusterTrace(self.net, int(self.p["g"])), (x,)
        return self.net.full, (x,)
