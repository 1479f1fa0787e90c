"""SCSampler (Korbar, Tran, Torresani, ICCV 2019; seed 003): a cheap sampler picks the K clips the heavy
classifier sees.

Faithful to sections 3.1-3.3 of the paper:

- f is the shared heavy clip classifier (``harness.toolkit.stages.heavy_classifier``), trained once and left
  unmodified; the video is split into L non-overlapping clips (timesteps of ``clip_len`` frames).
- the sampler s scores every clip from features that are cheap to compute: by default the clip's
  middle frame at low resolution (``input_size``) plus the frame-to-frame (grayscale) differences of
  the clip at the same resolution -- our stand-in for the paper's compressed-domain I-frame and
  RGB-residual / motion-displacement inputs -- through a small CNN (``width``, ``depth``). Its cost
  per clip, preprocessing included, is counted by fvcore (component "sampler") and is more than 10x
  below f's on the quickstart backbones (asserted in tests/test_scsampler.py).
- three objectives (section 3.2): ``ac`` -- s trained as a clip action classifier with the video
  label, saliency = max class score; ``sal_cl`` -- binary saliency classifier on pseudo labels from
  the oracle's top-K of each training video under f (K = floor(L * ``salcl_fraction``), 1/2 in the
  paper); ``sal_rank`` -- pairwise hinge ranking loss over pairs of clips of one training video,
  ordered by f's true-class score, with margin ``eta``. (The paper prints the loss as
  max(0, -z[s_i - s_j + eta]); its text calls eta a margin, so we use the margin form
  max(0, eta - z(s_i - s_j)), on the pre-sigmoid score, which is what makes eta a margin.)
- at test time s scores all L clips, f runs on the top-K only, f's scores are averaged (the
  ``aggregate`` rule: mean softmax single-label, max sigmoid multi-label).
- cross-classifier use (paper Table 3): ``labels_from_backbone`` (+ ``labels_from_params``) names
  another backbone whose heavy classifier provides the SAL-CL / SAL-RANK pseudo labels; the sampler
  trained for it then selects clips for the trial's f. AC needs no pseudo labels (classifier-free).
- not implemented: the audio sampler and audio-visual combinations (the benchmark has no audio),
  and the H.264 motion-vector input.

Usage per video: {"sampler": L, "heavy": min(K, L)}. The sampler's inputs of every clip of a split
(``scsampler_inputs_<split>``: ``CheapInputsOnClips`` through ``harness.toolkit.stages.split_outputs``, a
sharded extraction streamed from the split and read memory-mapped, so memory grows with the number of
videos, not their decoded size) and the trained sampler (``scsampler_sampler``) are stages declared in
``stages()``: the plan computes them once before the trials, and a sweep over K trains each objective's
sampler once.

Decoding: the sampler reads every frame of every clip it scores (the frame differences need them),
so each prediction declares a full decode (``Prediction.decoded``); the paper's compressed-domain
inputs would avoid most of it. The report shows decoded frames and decode time beside GFLOPs.

Results: ``skimbench run experiments/scsampler_claims.yaml`` then ``skimbench report scsampler-claims``
(tables and the claims check in ``results/scsampler-claims/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.decode_cost import clip_frames
from harness.features.shards import RowsRead, ShardedArrays
from harness.method import Component, Usage
from harness.params import Param, resolve_params
from harness.registry import BACKBONES, register_method
from harness.stages import StageRequest
from harness.toolkit.clips import ClipNet, clip_input_maker, frame_shape, frames_to_clips, video_clips
from harness.toolkit.heavy_on_timesteps import HeavyOnTimesteps
from harness.toolkit.selection import AGGREGATE_PARAM, multi_hot, top_k, true_class_scores
from harness.toolkit.stages import (
    RECIPE,
    backbone_config,
    frames_stage,
    heavy_classifier,
    heavy_component,
    heavy_deps,
    split_outputs,
    timestep_stages,
    timestep_table,
)

OBJECTIVES = ("ac", "sal_cl", "sal_rank")


# ----------------------------------------------------------------------------------------------
# The sampler network
# ----------------------------------------------------------------------------------------------
class CheapClipInputs(nn.Module):
    """Clip [B,3,F,H,W] -> [B, 3 + F-1, s, s]: low-resolution middle frame (RGB) and frame differences.

    Parameter-free; part of the sampler's counted cost. The differences stand in for the paper's
    compressed-domain motion/residual features: they are large where something moves.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def channels(self, clip_len: int) -> int:
        return 3 + max(clip_len - 1, 0)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        s = (self.size, self.size)
        middle = F.interpolate(clips[:, :, clips.shape[2] // 2], size=s, mode="area")
        if clips.shape[2] < 2:
            return middle
        gray = clips.mean(dim=1)  # [B, F, H, W]
        diffs = F.interpolate(gray[:, 1:] - gray[:, :-1], size=s, mode="area")
        return torch.cat([middle, diffs], dim=1)


@dataclass(frozen=True)
class CheapInputsOnClips:
    """Factory of the sampler-inputs stage (``harness.features.shards``): a video's frames -> ``inputs``
    ``[L, Cin, s, s]`` (float16), ``CheapClipInputs`` on each of its L non-overlapping clips."""

    clip_len: int
    size: int

    def __call__(self, device: torch.device):
        del device  # parameter-free and cheap: computed on the CPU, where the decoded frames are
        make = CheapClipInputs(self.size)

        @torch.no_grad()
        def video_fn(frames: np.ndarray) -> dict[str, np.ndarray]:
            return {"inputs": make(frames_to_clips(frames, self.clip_len)).half().numpy()}

        return video_fn


class SamplerCNN(nn.Module):
    """A small CNN: ``depth`` 3x3 conv-BN-ReLU layers (stride 2 after the first), global pool, linear."""

    def __init__(self, in_channels: int, out_dim: int, width: int = 8, depth: int = 3):
        super().__init__()
        layers, channels = [], in_channels
        for i in range(depth):
            out = width * (2 if i > 0 else 1)
            layers += [
                nn.Conv2d(channels, out, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(channels, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def saliency_from_outputs(outputs: torch.Tensor, objective: str, multilabel: bool) -> torch.Tensor:
    """Sampler outputs [B, out] -> saliency [B] in [0, 1]: AC takes the max class score (section 3.2.1)."""
    if objective == "ac":
        probs = torch.sigmoid(outputs) if multilabel else torch.softmax(outputs, dim=-1)
        return probs.max(dim=-1).values
    return torch.sigmoid(outputs[:, 0])


class SaliencySampler(nn.Module):
    """s: raw clip [B,3,F,H,W] -> saliency [B]; the whole per-clip selection cost in one module."""

    def __init__(
        self,
        clip_len: int,
        num_classes: int,
        objective: str,
        multilabel: bool,
        input_size: int = 16,
        width: int = 8,
        depth: int = 3,
    ):
        super().__init__()
        self.inputs = CheapClipInputs(input_size)
        self.cnn = SamplerCNN(self.inputs.channels(clip_len), num_classes if objective == "ac" else 1, width, depth)
        self.objective, self.multilabel = objective, multilabel

    def score_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return saliency_from_outputs(self.cnn(x), self.objective, self.multilabel)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.score_inputs(self.inputs(clips))


# ----------------------------------------------------------------------------------------------
# Objectives (pure torch, on padded per-video tensors)
# ----------------------------------------------------------------------------------------------
def sal_rank_loss(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, eta: float) -> torch.Tensor:
    """Pairwise hinge ranking loss of section 3.2.3 over clips of the same video.

    ``scores``, ``targets`` (f's true-class scores), ``mask`` are [B, L]. For every pair (i, j) of valid
    clips with different targets, z = +1 if target_i > target_j else -1, loss = max(0, eta - z(s_i - s_j)):
    zero exactly when the sampler orders the pair like f with a margin of at least eta. Mean over pairs.
    """
    diff_s = scores[:, :, None] - scores[:, None, :]
    diff_t = targets[:, :, None] - targets[:, None, :]
    pair = mask[:, :, None] & mask[:, None, :] & (diff_t != 0)
    pair &= torch.ones_like(pair[0]).triu(diagonal=1)[None]  # each unordered pair once
    if not pair.any():
        return scores.sum() * 0.0
    z = torch.sign(diff_t)
    return torch.relu(eta - z * diff_s)[pair].mean()


def salcl_targets(true_scores: np.ndarray, lengths: np.ndarray, fraction: float) -> np.ndarray:
    """Binary saliency pseudo labels [N, Lmax]: 1 on the oracle's top floor(L*fraction) (>= 1) clips per video."""
    targets = np.zeros(true_scores.shape, dtype=np.float32)
    for n, length in enumerate(lengths):
        k = max(1, int(np.floor(int(length) * fraction)))
        targets[n, top_k(true_scores[n, :length], k)] = 1.0
    return targets


def train_sampler(
    sampler: SaliencySampler,
    inputs: Sequence,
    lengths: np.ndarray,
    *,
    labels: np.ndarray,
    true_scores: np.ndarray | None,
    epochs: int,
    lr: float,
    eta: float,
    salcl_fraction: float,
    seed: int,
    device: torch.device,
    batch_videos: int = 16,
    log=print,
) -> SaliencySampler:
    """Train ``sampler.cnn`` on precomputed cheap inputs with its objective.

    ``inputs[n]``: video n's inputs ``[>= lengths[n], Cin, s, s]`` (its first ``lengths[n]`` rows are read:
    a row of a padded tensor, or of a memory-mapped stage, loaded one batch of videos at a time).
    ``labels`` [N, C] multi-hot video labels (AC); ``true_scores`` [N, Lmax] f's true-class score of each
    clip (SAL-CL, SAL-RANK). Batches are whole videos, so SAL-RANK sees every pair of a video.
    """
    objective, multilabel = sampler.objective, sampler.multilabel
    torch.manual_seed(int(seed))
    generator = torch.Generator().manual_seed(int(seed))
    lengths_t = torch.as_tensor(np.asarray(lengths), dtype=torch.long)
    lmax = int(np.max(lengths, initial=0))
    mask_all = torch.arange(lmax)[None, :] < lengths_t[:, None]
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    if objective == "sal_cl":
        targets_all = torch.as_tensor(salcl_targets(np.asarray(true_scores), np.asarray(lengths), salcl_fraction))
    elif objective == "sal_rank":
        targets_all = torch.as_tensor(np.asarray(true_scores), dtype=torch.float32)
    net = sampler.cnn.to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    for epoch in range(epochs):
        order, total = torch.randperm(len(inputs), generator=generator), 0.0
        for start in range(0, len(order), batch_videos):
            idx = order[start : start + batch_videos]
            mask = mask_all[idx]
            x = _valid_rows(inputs, idx.tolist(), lengths).to(device).float()  # valid clips only: [M, Cin, s, s]
            out = net(x)
            if objective == "ac":
                y = labels_t[idx][:, None, :].expand(-1, lmax, -1)[mask].to(device)
                loss = F.binary_cross_entropy_with_logits(out, y) if multilabel else F.cross_entropy(out, y.argmax(1))
            elif objective == "sal_cl":
                loss = F.binary_cross_entropy_with_logits(out[:, 0], targets_all[idx][mask].to(device))
            else:
                scores = torch.zeros(mask.shape, device=device, dtype=out.dtype)
                scores[mask.to(device)] = out[:, 0]
                loss = sal_rank_loss(scores, targets_all[idx].to(device), mask.to(device), eta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        log(f"[scsampler {objective}] epoch {epoch + 1}/{epochs} loss {total / len(inputs):.4f}")
    net.eval()
    return sampler


def _valid_rows(inputs: Sequence, videos: Sequence[int], lengths: np.ndarray) -> torch.Tensor:
    """The valid clips of these videos, one after another: ``[sum of lengths, Cin, s, s]``."""
    return torch.cat([torch.from_numpy(np.array(inputs[n][: int(lengths[n])])) for n in videos if lengths[n] > 0])


@torch.no_grad()
def score_all(sampler: SaliencySampler, inputs: Sequence, lengths: np.ndarray, device: torch.device) -> np.ndarray:
    """Saliency [N, Lmax] of every clip (-inf on padding); ``inputs[n]`` as in ``train_sampler``."""
    sampler.eval().to(device)
    out = np.full((len(lengths), int(np.max(lengths, initial=0))), -np.inf, dtype=np.float64)
    for n, length in enumerate(lengths):
        if length > 0:
            out[n, :length] = (
                sampler.score_inputs(_valid_rows(inputs, [n], lengths).to(device).float()).double().cpu().numpy()
            )
    return out


# ----------------------------------------------------------------------------------------------
# The method
# ----------------------------------------------------------------------------------------------
@register_method("scsampler")
class SCSampler(HeavyOnTimesteps):
    summary = "lightweight clip sampler (AC / SAL-CL / SAL-RANK) picks the top-K clips for the heavy classifier"
    cost = 8.0  # rough seconds of a trial (Method.cost): the scheduler starts costly trials first
    params = {
        "k": Param(4, "clips classified by the heavy network per video (K)", low=1),
        "objective": Param("ac", "sampler training objective (paper section 3.2)", choices=OBJECTIVES),
        "input_size": Param(16, "side of the sampler's low-resolution inputs (pixels)", low=2),
        "width": Param(8, "channels of the sampler CNN's first layer", low=1),
        "depth": Param(3, "conv layers of the sampler CNN", low=1),
        "epochs": Param(10, "sampler training epochs", low=1),
        "lr": Param(3e-3, "sampler learning rate (AdamW)", low=0.0),
        "eta": Param(1.0, "SAL-RANK margin (on the pre-sigmoid score)", low=0.0),
        "salcl_fraction": Param(
            0.5, "SAL-CL: fraction of each training video's clips labelled salient", low=0.0, high=1.0
        ),
        "labels_from_backbone": Param(
            None,
            "cross-classifier (Table 3): backbone whose heavy classifier gives the "
            "SAL pseudo labels; null = the trial's backbone",
            type=str,
            nullable=True,
        ),
        "labels_from_params": Param({}, "params of labels_from_backbone (defaults filled in)", type=dict),
        "aggregate": AGGREGATE_PARAM,
    }
    budget_param = "k"
    dynamic = True

    # -- stages ------------------------------------------------------------------------------
    def _inputs_request(self, split: str) -> StageRequest:
        """The cheap sampler inputs of every clip of ``split`` (``CheapInputsOnClips``), a sharded stage."""
        ctx, clip_len, size = self.ctx, int(self.ctx.evaluation["clip_len"]), self.p["input_size"]
        frames = frames_stage(ctx, split)
        name = f"scsampler_inputs_{split}"
        deps = {"recipe": RECIPE, "frames": frames.key, "clip_len": clip_len, "input_size": size, "layout": "shards"}
        return StageRequest(
            name,
            deps,
            lambda: split_outputs(ctx, split, name, dict(deps), CheapInputsOnClips(clip_len, size)),
            after=(frames.key,),
            cost=0.02 * len(ctx.dataset.split(split)),  # rough seconds (StageRequest.cost): the scheduler's guess
        )

    def _inputs(self, split: str) -> ShardedArrays:
        """``inputs`` ``[L, Cin, s, s]`` (float16) per video of ``split``, memory-mapped, computed once."""
        return self._inputs_request(split).build()

    def stages(self) -> list[StageRequest]:
        """The test split's heavy table, the sampler inputs of both splits, the pseudo labels' table, the sampler."""
        out = super().stages() + [self._inputs_request("train"), self._inputs_request("test")]
        if self.p["objective"] != "ac":
            out += timestep_stages(self.ctx, ["train"], backbone_config(self.ctx, self._labels_backbone()))
        return out + [self._sampler_request()]

    def _labels_backbone(self) -> dict[str, Any] | None:
        name = self.p["labels_from_backbone"]
        if name is None:
            return None
        return {"name": name, "params": resolve_params(BACKBONES.get(name).params, self.p["labels_from_params"])}

    def _new_sampler(self) -> SaliencySampler:
        return SaliencySampler(
            int(self.ctx.evaluation["clip_len"]),
            self.ctx.dataset.num_classes,
            self.p["objective"],
            bool(self.ctx.dataset.multilabel),
            self.p["input_size"],
            self.p["width"],
            self.p["depth"],
        )

    def _sampler_request(self) -> StageRequest:
        """The trained sampler (``sampler.pt``): one per objective and architecture, shared by every K."""
        ctx, p = self.ctx, self.p
        arch = {k: p[k] for k in ("objective", "input_size", "width", "depth", "epochs", "lr")}
        if p["objective"] == "sal_rank":
            arch["eta"] = p["eta"]
        if p["objective"] == "sal_cl":
            arch["salcl_fraction"] = p["salcl_fraction"]
        labels_cfg = backbone_config(ctx, self._labels_backbone())
        deps = {
            "recipe": RECIPE,
            "sampler": arch,
            "seed": int(ctx.seed),
            "clip_len": int(ctx.evaluation["clip_len"]),
            "train_frames": frames_stage(ctx, "train").key,
            # AC needs no pseudo labels: the same AC sampler serves every classifier (paper 4.1.4)
            "pseudo_labels_from": None if p["objective"] == "ac" else heavy_deps(ctx, labels_cfg),
        }

        def compute(folder: Path) -> None:
            arrays = self._inputs("train")
            rows = [n for n in range(len(arrays)) if arrays.lengths[n] > 0]  # skipped videos have no clips
            ids, lengths = [arrays.video_ids[n] for n in rows], arrays.lengths[rows]
            inputs = RowsRead(arrays, "inputs", rows)  # read batch by batch, never mapped whole
            labels_of = {r.video_id: r.labels for r in ctx.dataset.split("train")}
            labels = np.stack([multi_hot(labels_of[v], ctx.dataset.num_classes) for v in ids])
            true_scores = None
            if p["objective"] != "ac":  # pseudo ground truth from f's true-class scores (AC needs none)
                table = timestep_table(ctx, "train", labels_cfg)
                if arrays.video_ids != table.video_ids:
                    raise RuntimeError("sampler inputs and timestep table list different training videos")
                true_scores = np.zeros((len(rows), int(lengths.max(initial=0))), dtype=np.float64)
                for i, (n, length) in enumerate(zip(rows, lengths)):
                    true_scores[i, :length] = true_class_scores(
                        np.asarray(table.heavy_logits[n, :length]), table.labels[n], table.multilabel
                    )
            torch.manual_seed(int(ctx.seed))  # the initial weights depend on the seed only, not on what ran before
            sampler = train_sampler(
                self._new_sampler(),
                inputs,
                lengths,
                labels=labels,
                true_scores=true_scores,
                epochs=p["epochs"],
                lr=p["lr"],
                eta=p["eta"],
                salcl_fraction=p["salcl_fraction"],
                seed=ctx.seed,
                device=ctx.device,
                log=ctx.log,
            )
            torch.save({k: v.cpu() for k, v in sampler.state_dict().items()}, folder / "sampler.pt")

        after = [self._inputs_request("train").key]
        if p["objective"] != "ac":  # the pseudo labels' table
            after += [r.key for r in timestep_stages(ctx, ["train"], labels_cfg) if r.name == "heavy_timesteps_train"]
        return StageRequest(
            "scsampler_sampler", deps, lambda: ctx.stage("scsampler_sampler", deps, compute), tuple(after), cost=15.0
        )

    def _trained_sampler(self) -> SaliencySampler:
        folder = self._sampler_request().build()
        sampler = self._new_sampler()
        sampler.load_state_dict(torch.load(folder / "sampler.pt", map_location="cpu", weights_only=True))
        return sampler.to(self.ctx.device).eval()

    # -- method contract ---------------------------------------------------------------------
    def fit(self, train: Sequence[Any]) -> None:
        self.table = timestep_table(self.ctx, "test")
        self.sampler = self._trained_sampler()
        arrays = self._inputs("test")
        if arrays.video_ids != self.table.video_ids:
            raise RuntimeError("sampler inputs and timestep table list different test videos")
        inputs = RowsRead(arrays, "inputs", range(len(arrays)))
        self.saliency = score_all(self.sampler, inputs, arrays.lengths, self.ctx.device)

    def components(self) -> dict[str, Component]:
        clip_len = int(self.ctx.evaluation["clip_len"])
        h, w = frame_shape(self.ctx)
        sampler = Component(
            self.sampler,
            clip_input_maker(clip_len, h, w),
            role="selection",
            config={
                "net": "scsampler",
                "clip_len": clip_len,
                "hw": [h, w],
                **{k: self.p[k] for k in ("objective", "input_size", "width", "depth")},
                "classes": self.ctx.dataset.num_classes,
            },
        )
        return {"sampler": sampler, "heavy": heavy_component(self.ctx)}

    def choose(self, row: int, length: int) -> np.ndarray:
        return top_k(self.saliency[row, :length], self.p["k"])

    def usage(self, length: int, chosen: np.ndarray) -> Usage:
        return Usage({"sampler": length, "heavy": len(chosen)})

    def predict(self, video: Any):
        prediction = super().predict(video)
        row = self.table.row(video.video_id)
        length = int(self.table.lengths[row])
        prediction.extras["saliency"] = np.round(self.saliency[row, :length], 4).tolist()
        # the sampler reads every frame of every clip it scores (middle frame + frame differences):
        # this stand-in for the paper's compressed-domain inputs needs a full decode
        prediction.decoded = clip_frames(range(length), self.table.clip_len)
        return prediction

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        row = self.table.row(video.video_id)
        chosen = self.choose(row, int(self.table.lengths[row]))
        clips = video_clips(self.ctx, "test", video.video_id).to(self.ctx.device)
        return SampleThenClassify(self.sampler, heavy_classifier(self.ctx), chosen), (clips,)


class SampleThenClassify(nn.Module):
    """The realised per-video path: the sampler on all L clips, the heavy classifier on the chosen ones."""

    def __init__(self, sampler: nn.Module, heavy: ClipNet, chosen: Sequence[int]):
        super().__init__()
        self.sampler, self.heavy = sampler, heavy
        self.register_buffer("chosen", torch.as_tensor(np.sort(np.asarray(chosen)), dtype=torch.long))

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sampler(clips), self.heavy(clips.index_select(0, self.chosen))
