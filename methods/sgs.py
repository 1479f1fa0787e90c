"""SGS / ATFR (seed 002): a 3D CNN whose temporal resolution after stage k adapts to each video.

The network sees T frames sampled over the whole video (one per equal segment; a random offset in
training, the centre at test -- the paper's clips are strided too, Table 4). After ``after_stage``
backbone stages a Similarity Guided Sampling layer (``harness.layers.sgs``) turns the T temporal
maps into B' <= B occupied bins, and the rest of the network runs on B' maps, so a video with
redundant frames costs less. ``mode: base`` trains and tests the same backbone with the same recipe
on all T frames, the comparison of the paper's Tables 7-8.

Budget: ``bins_test`` (B at inference, Table A.4). The model is trained once per training
configuration (``bins_train``, kernel, L, placement, ...) as a stage and serves every ``bins_test``.

Variable B' within a batch: the layers after SGS run once per distinct B' in the batch
(``harness.layers.sgs.run_grouped``) instead of on a zero-padded tensor, because the temporal
convolutions and batch-norm after SGS would carry padding into real bins. Cost: one extra forward
call per distinct B' (a few per batch on this benchmark); FLOPs are unchanged, padding costs none.

Accounting per video: ``pre`` once at T frames (stem + stages before SGS), ``sgs`` once (similarity
network and the B x T sampling product, before empty bins are dropped), ``post`` once at B' maps.
``Prediction.extras``: ``bins`` (B'), ``frames`` (the sampled frame indices), ``bin_of_frame`` (for
each sampled frame, the kept bin it fell in, -1 if its kernel weight was zero).

Measured (``skimbench run experiments/sgs_claims.yaml --local``: skim-digits move4 small, r3d_18
width 8 at 32x32, T = 16, 6 epochs from scratch, seed 0, one run on a heavily shared 2-core machine):

======================  =========  =====================  ============================
row                     top-1 (%)  GFLOPs / video (base)  B' (min-max, mean)
======================  =========  =====================  ============================
base 3D CNN, T = 16     73.3       0.0646 (100%)          --
ATFR, B = 16            37.5       0.0550 (85%)           4-11, mean 7.5 (8 values)
ATFR, B = 8 at test     35.8       0.0520 (81%)           3-7, mean 5.4
ATFR, B = 4 at test     27.5       0.0491 (76%)           3-4, mean 3.7
ATFR, magnitude norm    26.7       0.0544                 4-11, mean 7.1
ATFR, linear_normalized 35.0       0.0558                 5-12, mean 8.0
ATFR, SGS after res3    25.8       0.0617                 3-6 of 8, mean 4.6
======================  =========  =====================  ============================

Verdicts: half the GFLOPs within one point (Tables 7-8) does NOT hold: here the stem and res2 at
full T are 66% of r3d_18's FLOPs at 32x32, width 8 (so even B' = 1 saves at most a third), and ATFR
loses 36 points. The cause is not established. Candidates: the bins are ordered by magnitude, not
by time, so after SGS the network sees the direction of motion -- the class of every move4 video --
only through what the layers before it captured (placing SGS later did not help, though); the
layers after SGS train on per-B' groups, so their batch-norm statistics come from small groups;
and 6 epochs from scratch may favour the simpler network. B' varies per video
(Fig. 3: holds); fewer bins at inference from one trained model trade accuracy for GFLOPs (Table
A.4: holds, 37.5 / 35.8 / 27.5% at 0.055 / 0.052 / 0.049 GFLOPs); more bins for more motion
(Table 5): weak -- correlation of B' with the mean absolute frame difference of the sampled frames
is 0.05 (distance-to-mean magnitude) and 0.33 (norm). The official code's distance to the temporal
mean beat the paper's ||Z_t|| (37.5 vs 26.7), so it is the default. One seed, 6 epochs from
scratch; training took 1285 s (ATFR) and 259 s (base) of wall time on a 2-core machine shared by
~8 jobs -- on an idle machine the ATFR recipe above is still well over the quickstart's 40 s.
A quickstart-size recipe (``frames: 8, epochs: 3``, r3d_18 width 8) fits in 85 CPU-seconds on the
small benchmark (195 s wall on the shared machine; about 43 s on 2 idle cores).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from harness.data.sampling import tsn_segments
from harness.layers.sgs import ATFRNet, ATFRTrace, SGSAllBins, bin_positions
from harness.method import Component, Method, Prediction, Usage
from harness.params import Param
from harness.registry import register_method
from harness.toolkit.clips import to_input
from harness.toolkit.selection import class_probabilities, multi_hot
from harness.toolkit.stages import dataset_deps
from harness.toolkit.training import train_network

RECIPE = 1  # bump when training changes: part of the stage key
TRAIN_PARAMS = ("mode", "after_stage", "bins_train", "embed_dim", "kernel", "magnitude", "frames", "epochs",
                "batch_size", "lr")


@register_method("sgs")
class SGS(Method):
    summary = "3D CNN + Similarity Guided Sampling (ATFR): per-video temporal resolution B' after stage k"
    params = {
        "mode": Param("atfr", "atfr: SGS inside the backbone; base: the plain backbone on the same T frames",
                      choices=("atfr", "base")),
        "after_stage": Param(1, "backbone stages before SGS: 0 = after the stem, 1 = after res2 (the paper's "
                             "default, 'second stage'), 2 = after res3", low=0, high=3),
        "bins_train": Param(None, "B in training (null: B = T, the paper's default)", type=int, low=1, nullable=True),
        "bins_test": Param(None, "B at inference (null: bins_train); Table A.4 varies it", type=int, low=1, nullable=True),
        "embed_dim": Param(8, "L, the similarity space's dimension (Table 3: 8)", low=1),
        "kernel": Param("linear", "sampling kernel: linear (eq. 6), kronecker (eq. 5), or linear_normalized (the official "
                        "code's option: each bin a weighted average)", choices=("linear", "kronecker", "linear_normalized")),
        "magnitude": Param("mean_distance", "Delta_t: norm = ||Z_t|| (eq. 1), mean_distance = ||Z_t - mean Z|| "
                           "(official code)", choices=("mean_distance", "norm")),
        "frames": Param(16, "T, frames sampled over the whole video (one per equal segment)", low=1),
        "epochs": Param(6, "training epochs", low=1),
        "batch_size": Param(16, "training batch size", low=1),
        "lr": Param(3e-3, "peak learning rate (AdamW, one-cycle)", low=0.0),
    }
    budget_param = "bins_test"
    dynamic = True
    baseline_modes = {"base": "the plain backbone (mode=base)"}
    video_facts = {"bins": "active bins B' per video"}
    selection_unit = "frame"

    # -- training ----------------------------------------------------------------------------
    def _new_net(self) -> nn.Module:
        from harness.backbones import build_backbone

        cfg = self.ctx.backbone
        backbone = build_backbone(cfg["name"], dict(cfg.get("params", {})), self.ctx.dataset.num_classes)
        if self.p["mode"] == "base":
            return backbone
        return ATFRNet(backbone, int(self.p["after_stage"]), self._zeros(self.p["frames"]), int(self.p["embed_dim"]),
                       self.p["kernel"], self.p["magnitude"])

    def _zeros(self, frames: int) -> torch.Tensor:
        h, w = self._hw
        return torch.zeros(1, 3, int(frames), h, w)

    def _forward(self, x: torch.Tensor, bins: int | None) -> tuple[torch.Tensor, Any]:
        if self.p["mode"] == "base":
            return self.net(x), None
        return self.net(x, bins)

    def _clips(self, bank: Any, video_ids: Sequence[str], rng: np.random.Generator | None) -> tuple[torch.Tensor, list]:
        frames, picks = [], []
        for video_id in video_ids:
            video = bank.get(video_id)
            idx = tsn_segments(len(video), int(self.p["frames"]), rng is not None, rng)
            frames.append(video[idx])
            picks.append(idx.tolist())
        return to_input(np.stack(frames), self.ctx.device), picks

    def fit(self, train: Sequence[Any]) -> None:
        ctx = self.ctx
        bank = ctx.frames("train")
        first = bank.get(train[0].video_id)
        self._hw = (int(first.shape[1]), int(first.shape[2]))
        deps = {"recipe": RECIPE, "dataset": dataset_deps(ctx), "backbone": dict(ctx.backbone), "seed": int(ctx.seed),
                "train": {k: self.p[k] for k in TRAIN_PARAMS}, "videos": [r.video_id for r in train]}

        def compute(folder: Path) -> None:
            self.net = self._new_net().to(ctx.device)
            ids = [r.video_id for r in train]
            labels = torch.from_numpy(np.stack([multi_hot(r.labels, ctx.dataset.num_classes) for r in train]))

            def step(rows: Sequence[int], rng: np.random.Generator) -> torch.Tensor:
                x, _ = self._clips(bank, [ids[i] for i in rows], rng)
                return self._forward(x, self.p["bins_train"])[0]

            train_network(self.net, step, labels, epochs=int(self.p["epochs"]), batch_size=int(self.p["batch_size"]),
                          lr=float(self.p["lr"]), seed=ctx.seed, multilabel=ctx.dataset.multilabel, log=ctx.log,
                          what=f"sgs/{self.p['mode']}")
            torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, folder / "model.pt")

        folder = ctx.stage("sgs_model", deps, compute)
        self.net = self._new_net()
        self.net.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        self.net.to(ctx.device).eval()

    def eval_mode(self) -> None:
        self.net.eval()

    # -- inference ---------------------------------------------------------------------------
    @property
    def bins_test(self) -> int | None:
        return self.p["bins_test"] if self.p["bins_test"] is not None else self.p["bins_train"]

    def _bins(self) -> int:
        """B at inference; B = T counts the temporal maps entering SGS (T unless the stem strides time)."""
        return int(self.bins_test or self._pre_shape(int(self.p["frames"]))[2])

    def predict(self, video: Any) -> Prediction:
        return self.predict_batch([video])[0]

    def predict_batch(self, videos: Sequence[Any]) -> list[Prediction]:
        bank, out = self.ctx.frames("test"), []
        for start in range(0, len(videos), 16):
            chunk = videos[start: start + 16]
            x, picks = self._clips(bank, [v.video_id for v in chunk], None)
            with torch.no_grad():
                logits, details = self._forward(x, self.bins_test)
            scores = class_probabilities(logits, self.ctx.dataset.multilabel).cpu().numpy()
            for i in range(len(chunk)):
                out.append(self._prediction(scores[i], picks[i], details, i))
        return out

    def _prediction(self, scores: np.ndarray, picks: list[int], details: Any, i: int) -> Prediction:
        t = int(self.p["frames"])
        if details is None:  # base mode
            return Prediction(scores=scores, usage=Usage().add("backbone", 1, frames=t), extras={"frames": picks})
        kept = int(details.bins_kept[i])
        occupied = details.occupied[i].cpu()
        rank = torch.cumsum(occupied.long(), 0) - 1  # position of each bin among the kept ones
        p = bin_positions(details.delta[i: i + 1].cpu(), self._bins())[0]
        frame_bin = p.floor().clamp(0, self._bins() - 1).long()
        weight_ok = (p - frame_bin - 0.5).abs() < 0.5  # zero weight exactly on a bin edge
        bin_of_frame = torch.where(occupied[frame_bin] & weight_ok, rank[frame_bin], torch.full_like(frame_bin, -1))
        usage = Usage().add("pre", 1, frames=t).add("sgs", 1, frames=t, bins=self._bins()).add("post", 1, bins=kept)
        return Prediction(scores=scores, usage=usage,
                          extras={"bins": kept, "frames": picks, "bin_of_frame": bin_of_frame.tolist()})

    # -- accounting --------------------------------------------------------------------------
    def _pre_shape(self, frames: int) -> tuple[int, ...]:
        if not hasattr(self, "_shapes"):
            self._shapes: dict[int, tuple[int, ...]] = {}
        if frames not in self._shapes:
            pre, was = self.net.split.pre, self.net.split.pre.training
            with torch.no_grad():
                self._shapes[frames] = tuple(pre.eval()(self._zeros(frames).to(self.ctx.device)).shape)
            pre.train(was)
        return self._shapes[frames]

    def components(self) -> dict[str, Component]:
        device = self.ctx.device
        if self.p["mode"] == "base":
            return {"backbone": Component(self.net, lambda frames: (self._zeros(frames).to(device),))}
        split = self.net.split

        def post_inputs(bins: int) -> tuple:
            _, c, _, h, w = self._pre_shape(int(self.p["frames"]))
            return (torch.zeros(1, c, int(bins), h, w, device=device),)

        return {
            "pre": Component(split.pre, lambda frames: (self._zeros(frames).to(device),)),
            "sgs": Component(SGSAllBins(self.net.sgs, self._bins()),
                             lambda frames, bins: (torch.zeros(self._pre_shape(frames), device=device),), role="selection"),
            "post": Component(split.post, post_inputs),
        }

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        x, _ = self._clips(self.ctx.frames("test"), [video.video_id], None)
        if self.p["mode"] == "base":
            return self.net, (x,)
        return ATFRTrace(self.net, self._bins()), (x,)
