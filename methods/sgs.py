"""SGS / ATFR (seed 002): a 3D CNN whose temporal resolution after stage k adapts to each video.

The network sees T frames sampled over the whole video (one per equal segment; a random offset in
training, the centre at test -- the paper's clips are strided too, Table 4). After ``after_stage``
backbone stages a Similarity Guided Sampling layer (``methods.sgs_layers``) turns the T temporal
maps into B' <= B occupied bins, and the rest of the network runs on B' maps, so a video with
redundant frames costs less. ``mode: base`` trains and tests the same backbone with the same recipe
on all T frames, the comparison of the paper's Tables 7-8.

Budget: ``bins_test`` (B at inference, Table A.4). The model is trained once per training
configuration (``bins_train``, kernel, L, placement, ...) as a stage and serves every ``bins_test``.

Variable B' within a batch: the layers after SGS run once per batch on the kept bins padded to the
batch's largest B', with batch norm masked to the real bins and the padding re-zeroed
(``methods.sgs_layers.mask_padding``), so batch-norm statistics come from the whole batch, as in the
base network, and each video's logits equal those of a forward on its own B' maps. ``delta_grad``
(default ``similarity``) stops the gradient through Delta at the similarity network's input.
``bin_order: time`` is an ablation (not the paper): the kept bins reach the layers after SGS in
temporal order (mean frame index of each bin) instead of magnitude order.

``init: base`` (the paper inserts SGS into a pretrained 3D CNN and fine-tunes): ATFR's backbone layers
start from the trained ``mode: base`` network of the same backbone, data, seed, frames and batch size
(trained with ``base_epochs`` and ``base_lr``), a stage of its own that the ATFR network's stage builds on,
so it is trained once and shared with the base row; the similarity network starts fresh. ``epochs`` and
``lr`` are then the fine-tuning's. ``mode: base`` with ``init: base`` is the control with the same total
training: the base network trained on with the fine-tuning's recipe. ``init: scratch`` (the default)
keeps the stage keys of the earlier runs.

Accounting per video: ``pre`` once at T frames (stem + stages before SGS), ``sgs`` once (similarity
network and the B x T sampling product, before empty bins are dropped), ``post`` once at B' maps.
``Prediction.extras``: ``bins`` (B'), ``frames`` (the sampled frame indices), ``bin_of_frame`` (for
each sampled frame, the kept bin it fell in, -1 if its kernel weight was zero).

Measured results: ``skimbench run experiments/sgs_claims.yaml --local`` then ``skimbench report
sgs-claims`` (top-1, GFLOPs per video and B' of every row; the paper's claims checked).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from harness.data.sampling import tsn_segments
from harness.method import Component, Method, Prediction, Usage
from harness.params import Param
from harness.registry import register_method
from harness.stages import stage_key
from harness.toolkit.clips import frame_shape, to_input
from harness.toolkit.selection import class_probabilities
from harness.toolkit.stages import backbone_deps, dataset_deps
from harness.toolkit.trained import network_stage, train_on_videos, trained_network
from methods.sgs_layers import (
    BIN_ORDERS,
    DELTA_GRADS,
    MAGNITUDES,
    ATFRNet,
    ATFRTrace,
    SGSAllBins,
    bin_positions,
    load_base_network,
)

RECIPE = 3  # bump when training changes: part of the stage key
TRAIN_PARAMS = (
    "mode",
    "after_stage",
    "bins_train",
    "embed_dim",
    "kernel",
    "magnitude",
    "delta_grad",
    "bin_order",
    "frames",
    "epochs",
    "batch_size",
    "lr",
)


@register_method("sgs")
class SGS(Method):
    summary = "3D CNN + Similarity Guided Sampling (ATFR): per-video temporal resolution B' after stage k"
    cost = 6.0  # rough seconds of a trial (Method.cost): the scheduler starts costly trials first
    params = {
        "mode": Param(
            "atfr",
            "atfr: SGS inside the backbone; base: the plain backbone on the same T frames",
            choices=("atfr", "base"),
        ),
        "after_stage": Param(
            1,
            "backbone stages before SGS: 0 = after the stem, 1 = after res2 (the paper's "
            "default, 'second stage'), 2 = after res3",
            low=0,
            high=3,
        ),
        "bins_train": Param(None, "B in training (null: B = T, the paper's default)", type=int, low=1, nullable=True),
        "bins_test": Param(
            None, "B at inference (null: bins_train); Table A.4 varies it", type=int, low=1, nullable=True
        ),
        "embed_dim": Param(8, "L, the similarity space's dimension (Table 3: 8)", low=1),
        "kernel": Param(
            "linear",
            "sampling kernel: linear (eq. 6), kronecker (eq. 5), or linear_normalized (the "
            "official code's option: each bin a weighted average)",
            choices=("linear", "kronecker", "linear_normalized"),
        ),
        "magnitude": Param(
            "mean_distance",
            "Delta_t: norm = ||Z_t|| (eq. 1), mean_distance = ||Z_t - mean Z|| (official code), "
            "cumulative = sum of ||Z_s - Z_s-1|| up to t (not the paper: bins are runs of consecutive frames)",
            choices=MAGNITUDES,
        ),
        "delta_grad": Param(
            "similarity",
            "how far the gradient through Delta (eq. 8) reaches: similarity = the "
            "similarity network only (its input detached), backbone = on into the layers before SGS",
            choices=DELTA_GRADS,
        ),
        "bin_order": Param(
            "magnitude",
            "order of the kept bins after SGS: magnitude (the paper, the official code) or "
            "time (an ablation: by the mean frame index of each bin's maps)",
            choices=BIN_ORDERS,
        ),
        "frames": Param(16, "T, frames sampled over the whole video (one per equal segment)", low=1),
        "epochs": Param(6, "training epochs", low=1),
        "batch_size": Param(16, "training batch size", low=1),
        "lr": Param(3e-3, "peak learning rate (AdamW, one-cycle)", low=0.0),
        "init": Param(
            "scratch",
            "ATFR's starting weights: scratch (random), or base = the trained mode=base network of the same "
            "backbone, data, seed, frames and batch size (the paper fine-tunes a pretrained 3D CNN)",
            choices=("scratch", "base"),
        ),
        "base_epochs": Param(6, "with init=base: the base network's training epochs", low=1),
        "base_lr": Param(3e-3, "with init=base: the base network's peak learning rate", low=0.0),
    }
    budget_param = "bins_test"
    dynamic = True
    baseline_modes = {"base": "the plain backbone (mode=base)"}
    video_facts = {"bins": "active bins B' per video"}
    selection_unit = "frame"
    test_backbone = {"name": "modified_r3d_18", "params": {"width": 8, "stem_width": 2, "input_size": 32}}

    # -- training ----------------------------------------------------------------------------
    def _new_net(self) -> nn.Module:
        from harness.backbones.weights import build_with_weights

        backbone = build_with_weights(self.ctx.backbone, self.ctx.dataset.num_classes)  # pretrained if given
        if self.p["mode"] == "base":
            return backbone
        return ATFRNet(
            backbone,
            int(self.p["after_stage"]),
            self._zeros(self.p["frames"]),
            int(self.p["embed_dim"]),
            self.p["kernel"],
            self.p["magnitude"],
            self.p["delta_grad"],
            self.p["bin_order"],
        )

    @functools.cached_property
    def _hw(self) -> tuple[int, int]:
        return frame_shape(self.ctx)  # one decoded video, once

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
            row = bank.index(video_id)
            idx = tsn_segments(int(bank.lengths[row]), int(self.p["frames"]), rng is not None, rng)
            frames.append(bank.frames(row, idx))  # decodes only these frames when the split streams
            picks.append(idx.tolist())
        return to_input(np.stack(frames), self.ctx.device), picks

    def _model_deps(self) -> dict[str, Any]:
        """The trained network's stage key inputs; the training videos are those the training frames (their
        key is in ``dataset_deps``) decode. ``init: base`` adds the base network's stage key (``init: scratch``
        adds nothing, so earlier stage keys stay valid)."""
        deps = {
            "recipe": RECIPE,
            "dataset": dataset_deps(self.ctx),
            "backbone": backbone_deps(self.ctx.backbone),
            "seed": int(self.ctx.seed),
            "train": {k: self.p[k] for k in TRAIN_PARAMS},
        }
        if self._starts_from_base:
            deps["train"]["init"] = "base"
            deps["init_from"] = stage_key("sgs_model", self._base()._model_deps())
        return deps

    @property
    def _starts_from_base(self) -> bool:
        return self.p["init"] == "base"

    def _base(self) -> "SGS":
        """The base network ``init: base`` starts from: ``mode: base`` with this trial's frames and batch
        size, ``base_epochs`` and ``base_lr``, every other parameter at its default (the base network does
        not read them), so its stage is the one a ``mode: base`` row with that recipe trains."""
        p = {k: param.default for k, param in self.params.items()}
        p.update(mode="base", frames=self.p["frames"], batch_size=self.p["batch_size"])
        p.update(epochs=self.p["base_epochs"], lr=self.p["base_lr"])
        return SGS(self.ctx, **p)

    def _base_stage(self) -> Any:
        base = self._base()
        return network_stage(
            self.ctx, "sgs_model", base._model_deps(), base._new_net, base._train, cost=30.0, record_as="sgs_base"
        )

    def _train(self, net: nn.Module) -> None:
        t = int(self.p["frames"])
        if self._starts_from_base:
            base = self._base()
            base_net, _ = trained_network(
                self.ctx, "sgs_model", base._model_deps(), base._new_net, base._train, record_as="sgs_base"
            )
            if self.p["mode"] == "base":  # the control: the base network trained on with the fine-tuning recipe
                net.load_state_dict(base_net.state_dict(), strict=True)
            else:
                load_base_network(net, base_net)
        self.net = net  # self._forward runs self.net
        train_on_videos(
            self.ctx,
            net,
            lambda n, rng: tsn_segments(n, t, True, rng),
            lambda x, _mask: self._forward(x, self.p["bins_train"])[0],
            self.p,
            f"sgs/{self.p['mode']}",
        )

    def stages(self) -> list:
        before = [self._base_stage()] if self._starts_from_base else []
        after = tuple(request.key for request in before)
        own = network_stage(self.ctx, "sgs_model", self._model_deps(), self._new_net, self._train, 30.0, after)
        return [*before, own]

    def fit(self, train: Sequence[Any]) -> None:
        self.net, _ = trained_network(self.ctx, "sgs_model", self._model_deps(), self._new_net, self._train)

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
            chunk = videos[start : start + 16]
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
            return Prediction(
                scores=scores, usage=Usage().add("backbone", 1, frames=t), extras={"frames": picks}, decoded=picks
            )
        kept = int(details.bins_kept[i])
        occupied = details.occupied[i].cpu()
        rank = torch.empty_like(details.order[i]).cpu()
        rank[details.order[i].cpu()] = torch.arange(len(rank))  # position of each bin among the kept ones
        p = bin_positions(details.delta[i : i + 1].cpu(), self._bins())[0]
        frame_bin = p.floor().clamp(0, self._bins() - 1).long()
        weight_ok = (p - frame_bin - 0.5).abs() < 0.5  # zero weight exactly on a bin edge
        bin_of_frame = torch.where(occupied[frame_bin] & weight_ok, rank[frame_bin], torch.full_like(frame_bin, -1))
        usage = Usage().add("pre", 1, frames=t).add("sgs", 1, frames=t, bins=self._bins()).add("post", 1, bins=kept)
        return Prediction(
            scores=scores,
            usage=usage,
            extras={"bins": kept, "frames": picks, "bin_of_frame": bin_of_frame.tolist()},
            decoded=picks,
        )

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
            "sgs": Component(
                SGSAllBins(self.net.sgs, self._bins()),
                lambda frames, bins: (torch.zeros(self._pre_shape(frames), device=device),),
                role="selection",
            ),
            "post": Component(split.post, post_inputs),
        }

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        x, _ = self._clips(self.ctx.frames("test"), [video.video_id], None)
        if self.p["mode"] == "base":
            return self.net, (x,)
        return ATFRTrace(self.net, self._bins()), (x,)
