"""Shared stages of the selection family: the heavy clip classifier, the cheap network, per-timestep tables.

Every selection method and baseline of a grid must look through the *same* heavy classifier, or
their accuracy differences would measure training noise instead of selection. So the heavy
classifier, the cheap network and their per-timestep outputs are stages (``ctx.stage``): trained or
computed once per (decoded frames, backbone config, clip_len, epochs, seed) and reused by every
method, trial and re-run. Methods then train and predict from memory-mapped tables in milliseconds.

Vocabulary. A *timestep* is a non-overlapping clip of ``clip_len`` (F) consecutive frames; a video
of T frames has L = T // F timesteps (its true length: trailing frames that do not fill a clip are
dropped; a video shorter than one clip gets one clip padded by repeating its last frame). Timestep
i covers frames [i*F, (i+1)*F).

Public API (stable; VideoEpitoma, LiteEval and the baselines build on it)::

    heavy_classifier(ctx, backbone=None) -> ClipNet        # trained, eval mode, on ctx.device
    light_network(ctx) -> ClipNet                          # the cheap frame network (LightNet)
    timestep_table(ctx, split, backbone=None) -> TimestepTable
    shared_components(ctx, backbone=None) -> {"heavy": Component, "light": Component}
    heavy_component(ctx, backbone=None) / light_component(ctx) -> Component   # one of them alone
    HeavyOnTimesteps                                    # base class of the baselines and SCSampler
    video_clips(ctx, split, video_id) -> FloatTensor [L, 3, F, H, W] (normalised, on CPU)
    num_timesteps(num_frames, clip_len) -> int
    uniform_timesteps(length, k) / random_timesteps(length, k, rng) / top_k(scores, k) -> int64 array
    true_class_scores(logits [.., C], labels, multilabel) -> [..]   # f_y of the oracle / SAL objectives
    aggregate(logits [K, C], rule, multilabel) -> [C]               # "auto" = mean softmax / max sigmoid
    video_rng(seed, video_id) -> np.random.Generator                # per-video deterministic randomness
    class_probabilities(logits, multilabel)                         # softmax / sigmoid, numpy or torch
    frames_to_clips(uint8 frames [T, H, W, 3], clip_len) -> [L, 3, F, H, W];  frame_shape(ctx) -> (H, W)
    dataset_deps(ctx) / heavy_deps(ctx, cfg) / light_deps(ctx)     # stage-key pieces for other stages

Stages (names in ``ctx.stages_used``): ``heavy_classifier``, ``light_network``,
``heavy_timesteps_<split>``, ``light_timesteps_<split>``; a classifier other than the trial's own
(SCSampler's cross-classifier labels) is recorded as ``heavy_classifier[<backbone>]``. Training
recipe (all shared networks): AdamW, one-cycle LR, batch 64, ``heavy_epochs`` epochs of
``CLIPS_PER_VIDEO_PER_EPOCH`` random clips per training video, every clip labelled with its video's
label (CE, or BCE for multi-label), seeded by the trial seed.

``ClipNet`` wraps any backbone behind one input: float clips ``[B, 3, F, H, W]``. A "2d" backbone
sees the middle frame of each clip; a video backbone ("video"/"3d", TSM included) the whole clip. ``clipnet.features(x) -> [B, D]``, ``clipnet.head(f) -> [B, C]``,
``clipnet(x) = head(features(x))``, ``clipnet.feature_dim``, ``clipnet.frames_seen(i)`` (the frame
indices timestep i shows the network, for ``Prediction.selected``).

``TimestepTable`` (all arrays indexed [video row, timestep], padded to Lmax; use ``mask``/``lengths``,
never read padding as content): ``video_ids``, ``row(video_id)``, ``lengths [N]``, ``mask [N, Lmax]``,
``labels [N, C]`` (multi-hot), ``heavy_logits [N, Lmax, C]``, ``heavy_features [N, Lmax, Dh]``,
``light_features [N, Lmax, Dl]``, ``frame_start``/``frame_end [N, Lmax]`` (timestep frame range),
``heavy_frames(row, timesteps)`` (frames the heavy network saw, for ``Prediction.selected``),
``clip_len``, ``multilabel``.

Usage convention for the components returned by ``shared_components``: "heavy" counts one run of
the heavy classifier on one timestep (batch 1, [1,3,F,H,W]); "light" one run of the cheap network on
one timestep (its middle frame resized to ``light_size`` inside the module, so the resize is counted).
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.method import Component, Method, Prediction, TrialContext, Usage
from harness.metrics import AGGREGATION_RULES, aggregate_scores, default_rule
from harness.params import Param

RECIPE = 2  # bump when the training recipe below changes: it is part of every stage key
MEAN, STD = 0.45, 0.225  # input normalisation of every shared network (no pretrained weights here)
TRAIN_BATCH = 64
TRAIN_LR = 2e-3
# Each epoch trains on this many random clips of every training video (all of them when shorter):
# a fixed cost per video and epoch, so the shared classifier trains in about a minute on 2 cores on
# the small benchmark while still seeing every clip over the epochs in expectation.
CLIPS_PER_VIDEO_PER_EPOCH = 4


# ----------------------------------------------------------------------------------------------
# Small pure helpers
# ----------------------------------------------------------------------------------------------
def num_timesteps(num_frames: int, clip_len: int) -> int:
    """L = T // F, at least 1 (a video shorter than a clip gets one padded clip)."""
    return max(1, int(num_frames) // int(clip_len))


def top_k(scores: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores (all of them when k >= len), highest first; ties by index."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    return order[: max(0, min(int(k), len(scores)))].astype(np.int64)


def uniform_timesteps(length: int, k: int) -> np.ndarray:
    """K evenly spaced timesteps: the centres of K equal segments (TSN's test sampling; k=1 is the
    centre). The same rule as ``harness.data.sampling.uniform_frames``, so "uniform" means one thing."""
    if k >= length:
        return np.arange(length, dtype=np.int64)
    from harness.data.sampling import uniform_frames

    return uniform_frames(length, k)


def random_timesteps(length: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """K distinct timesteps drawn uniformly without replacement, returned in temporal order."""
    if k >= length:
        return np.arange(length, dtype=np.int64)
    return np.sort(rng.choice(length, size=k, replace=False)).astype(np.int64)


def video_rng(seed: int, video_id: str) -> np.random.Generator:
    """A generator that depends only on (seed, video): the same draw in every trial and process."""
    return np.random.default_rng([int(seed), zlib.crc32(str(video_id).encode())])


def resolve_rule(rule: str, multilabel: bool) -> str:
    return default_rule(multilabel) if rule == "auto" else rule


def aggregate(logits: np.ndarray, rule: str, multilabel: bool) -> np.ndarray:
    """Video scores [C] from the logits [K, C] of the chosen timesteps by a named rule ("auto" allowed)."""
    return aggregate_scores(np.asarray(logits), resolve_rule(rule, multilabel))


def class_probabilities(logits: np.ndarray | torch.Tensor, multilabel: bool):
    """Softmax over classes (single-label) or per-class sigmoid (multi-label), numpy or torch."""
    if isinstance(logits, torch.Tensor):
        return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)
    logits = np.asarray(logits, dtype=np.float64)
    if multilabel:
        return 1.0 / (1.0 + np.exp(-logits))
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def true_class_scores(logits: np.ndarray, labels: np.ndarray, multilabel: bool) -> np.ndarray:
    """f_y of every timestep: the probability of the true class (multi-label: the max over true classes).

    ``logits`` [..., C]; ``labels`` a multi-hot vector [C] broadcast over the leading dims. This is the
    oracle's score and the SAL-CL / SAL-RANK pseudo ground truth; it reads the label and nothing else.
    """
    probs = class_probabilities(np.asarray(logits), multilabel)
    positive = np.asarray(labels).astype(bool)
    if not positive.any():
        raise ValueError("true_class_scores needs at least one true class")
    return np.where(positive, probs, -np.inf).max(axis=-1)


def multi_hot(labels: Sequence[int], num_classes: int) -> np.ndarray:
    out = np.zeros(num_classes, dtype=np.float32)
    out[list(labels)] = 1.0
    return out


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------
class ClipNet(nn.Module):
    """A backbone behind one input convention: normalised float clips ``[B, 3, F, H, W]``.

    ``input_kind`` "2d": the middle frame of each clip (optionally resized to ``size``); "tsm": the F
    frames as segments ``[B*F, 3, H, W]``; anything else ("3d", "video"): the clip as is.
    """

    def __init__(self, backbone: nn.Module, clip_len: int, size: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.clip_len = int(clip_len)
        self.size = size
        self.input_kind = getattr(backbone, "input_kind", "3d")
        self.feature_dim = int(backbone.feature_dim)

    def frames_seen(self, timestep: int) -> list[int]:
        start = int(timestep) * self.clip_len
        if self.input_kind == "2d":
            return [start + self.clip_len // 2]
        return list(range(start, start + self.clip_len))

    def _prepare(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5:
            raise ValueError(f"ClipNet expects clips [B, 3, F, H, W], got {tuple(clips.shape)}")
        if self.input_kind == "2d":
            x = clips[:, :, clips.shape[2] // 2]
            if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
                x = F.interpolate(x, size=(self.size, self.size), mode="area")
            return x
        if self.input_kind == "tsm":
            b, c, t, h, w = clips.shape
            return clips.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        return clips

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_features(self._prepare(clips))
        if self.input_kind == "tsm" and feats.shape[0] != clips.shape[0]:  # backbone left segments apart
            feats = feats.reshape(clips.shape[0], -1, feats.shape[-1]).mean(1)
        return feats

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone.head(features)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(clips))


def _build(backbone_cfg: Mapping[str, Any], num_classes: int) -> nn.Module:
    from harness.backbones import build_backbone

    return build_backbone(backbone_cfg["name"], dict(backbone_cfg.get("params", {})), num_classes)


def _default_backbone_cfg(name: str) -> dict[str, Any]:
    from harness.params import resolve_params
    from harness.registry import BACKBONES

    return {"name": name, "params": resolve_params(BACKBONES.get(name).params, {})}


def backbone_config(ctx: TrialContext, backbone: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """The trial's backbone config, or another one ({"name", "params"} or a bare name = its defaults)."""
    if backbone is None:
        return {"name": ctx.backbone["name"], "params": dict(ctx.backbone.get("params", {}))}
    if isinstance(backbone, str):
        return _default_backbone_cfg(backbone)
    return {"name": backbone["name"], "params": dict(backbone.get("params", {}))}


# ----------------------------------------------------------------------------------------------
# Frames -> clips
# ----------------------------------------------------------------------------------------------
def _bank_frames(bank: Any, video_id: str) -> np.ndarray:
    """uint8 frames [T, H, W, 3] of one video's true length (harness.data.bank.FrameBank.get)."""
    return bank.get(video_id)


def _bank_ids(bank: Any) -> list[str]:
    return list(bank.video_ids)


def frames_to_clips(frames: np.ndarray | torch.Tensor, clip_len: int) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> normalised float [L, 3, F, H, W] of the non-overlapping clips."""
    x = torch.from_numpy(np.array(frames))  # a writable copy of the memory-mapped frames
    if x.shape[0] < clip_len:  # shorter than one clip: repeat the last frame (documented policy)
        x = torch.cat([x, x[-1:].expand(clip_len - x.shape[0], *x.shape[1:])])
    length = x.shape[0] // clip_len
    x = x[: length * clip_len].reshape(length, clip_len, *x.shape[1:])  # [L, F, H, W, 3]
    x = x.permute(0, 4, 1, 2, 3).float().div_(255.0)
    return x.sub_(MEAN).div_(STD)


def video_clips(ctx: TrialContext, split: str, video_id: str) -> torch.Tensor:
    """The normalised clips [L, 3, F, H, W] (CPU) of one video of ``split``, from the frame bank."""
    return frames_to_clips(_bank_frames(ctx.frames(split), video_id), int(ctx.evaluation["clip_len"]))


def frame_shape(ctx: TrialContext, split: str = "train") -> tuple[int, int]:
    bank = ctx.frames(split)
    frames = _bank_frames(bank, _bank_ids(bank)[0])
    return int(frames.shape[1]), int(frames.shape[2])


# ----------------------------------------------------------------------------------------------
# Training (one recipe for every shared network)
# ----------------------------------------------------------------------------------------------
def _split_clips(ctx: TrialContext, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All clips of a split as uint8 [N, F, H, W, 3], their video's multi-hot labels and video rows."""
    bank, clip_len = ctx.frames(split), int(ctx.evaluation["clip_len"])
    labels_of = {r.video_id: r.labels for r in ctx.dataset.split(split)}
    clips, labels, rows = [], [], []
    for row, video_id in enumerate(_bank_ids(bank)):
        x = torch.from_numpy(np.array(_bank_frames(bank, video_id)))
        if x.shape[0] < clip_len:
            x = torch.cat([x, x[-1:].expand(clip_len - x.shape[0], *x.shape[1:])])
        length = x.shape[0] // clip_len
        clips.append(x[: length * clip_len].reshape(length, clip_len, *x.shape[1:]))
        labels.append(torch.as_tensor(multi_hot(labels_of[video_id], ctx.dataset.num_classes)).expand(length, -1))
        rows.append(torch.full((length,), row, dtype=torch.long))
    return torch.cat(clips), torch.cat(labels), torch.cat(rows)


def _uint8_to_input(clips: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = clips.to(device).permute(0, 4, 1, 2, 3).float().div_(255.0)
    return x.sub_(MEAN).div_(STD)


def epoch_sample(rows: torch.Tensor, per_video: int | None, generator: torch.Generator) -> torch.Tensor:
    """Shuffled clip indices of one epoch: ``per_video`` random clips of every video (None: all clips)."""
    if per_video is None:
        return torch.randperm(len(rows), generator=generator)
    keys = torch.rand(len(rows), generator=generator)
    order = torch.argsort(rows.double() + keys.double())  # grouped by video, shuffled within each video
    rank = torch.arange(len(rows)) - torch.searchsorted(rows[order].contiguous(), rows[order].contiguous())
    picked = order[rank < per_video]
    return picked[torch.randperm(len(picked), generator=generator)]


def train_clip_classifier(net: ClipNet, clips: torch.Tensor, labels: torch.Tensor, *, epochs: int, seed: int,
                          multilabel: bool, device: torch.device, rows: torch.Tensor | None = None,
                          per_video: int | None = None, log=print, what: str = "classifier") -> ClipNet:
    """Train ``net`` on uint8 clips [N, F, H, W, 3] with their video's labels: CE (single) or BCE (multi).

    Every clip inherits its video's label (the clip-classifier recipe of SCSampler's f): uninformative
    clips are label noise, which is exactly why choosing clips matters afterwards. With ``rows`` (the
    video of each clip, sorted) and ``per_video``, each epoch uses ``per_video`` random clips per video.
    """
    generator = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    net.to(device).train()
    rows = torch.zeros(len(clips), dtype=torch.long) if rows is None else rows
    per_epoch = len(epoch_sample(rows, per_video, torch.Generator().manual_seed(0)))
    steps = epochs * max(1, (per_epoch + TRAIN_BATCH - 1) // TRAIN_BATCH)
    optimizer = torch.optim.AdamW(net.parameters(), lr=TRAIN_LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=TRAIN_LR, total_steps=steps, pct_start=0.15)
    for epoch in range(epochs):
        order, total, correct = epoch_sample(rows, per_video, generator), 0.0, 0
        for start in range(0, len(order), TRAIN_BATCH):
            idx = order[start: start + TRAIN_BATCH]
            x, y = _uint8_to_input(clips[idx], device), labels[idx].to(device)
            logits = net(x)
            if multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, y)
            else:
                loss = F.cross_entropy(logits, y.argmax(1))
                correct += int((logits.argmax(1) == y.argmax(1)).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        log(f"[{what}] epoch {epoch + 1}/{epochs} loss {total / len(order):.3f}"
            + ("" if multilabel else f" train clip acc {100 * correct / len(order):.1f}%"))
    return net.eval()


# ----------------------------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------------------------
def _trial_cache(ctx: TrialContext) -> dict[str, ClipNet]:
    """Networks loaded in this trial. Per trial, not per process: a worker process runs many trials
    (Ray reuses it), and no trial may see a network object another trial has used or changed."""
    return ctx.__dict__.setdefault("_loaded_networks", {})


def dataset_deps(ctx: TrialContext) -> dict[str, Any]:
    """The data a shared stage was trained on: dataset name, params (not where the copy lies: the
    frame bank's key already holds the manifest hash) and the decoded training frames."""
    params = {k: v for k, v in sorted(dict(ctx.dataset.p).items()) if k != "root"}
    return {"name": getattr(ctx.dataset, "name", type(ctx.dataset).__name__), "params": params,
            "train_frames": ctx.frames("train").key}


def heavy_deps(ctx: TrialContext, cfg: Mapping[str, Any]) -> dict[str, Any]:
    ev = ctx.evaluation
    return {"recipe": RECIPE, "clips_per_video": CLIPS_PER_VIDEO_PER_EPOCH, "dataset": dataset_deps(ctx), "backbone": cfg,
            "clip_len": int(ev["clip_len"]), "epochs": int(ev["heavy_epochs"]), "seed": int(ctx.seed)}


def _light_cfg(ctx: TrialContext) -> dict[str, Any]:
    return _default_backbone_cfg(str(ctx.evaluation["light_backbone"]))


def light_deps(ctx: TrialContext) -> dict[str, Any]:
    ev = ctx.evaluation
    return {"recipe": RECIPE, "clips_per_video": CLIPS_PER_VIDEO_PER_EPOCH, "dataset": dataset_deps(ctx),
            "backbone": _light_cfg(ctx), "size": int(ev["light_size"]),
            "clip_len": int(ev["clip_len"]), "epochs": int(ev["heavy_epochs"]), "seed": int(ctx.seed)}


def _new_heavy(ctx: TrialContext, cfg: Mapping[str, Any]) -> ClipNet:
    return ClipNet(_build(cfg, ctx.dataset.num_classes), int(ctx.evaluation["clip_len"]))


def _new_light(ctx: TrialContext) -> ClipNet:
    net = ClipNet(_build(_light_cfg(ctx), ctx.dataset.num_classes), int(ctx.evaluation["clip_len"]),
                  size=int(ctx.evaluation["light_size"]))
    net.input_kind = "2d"  # the cheap network always sees one frame per timestep
    return net


def _trained(ctx: TrialContext, name: str, deps: dict[str, Any], new_net, record_as: str | None = None) -> ClipNet:
    def compute(folder: Path) -> None:
        clips, labels, rows = _split_clips(ctx, "train")
        net = new_net()
        train_clip_classifier(net, clips, labels, epochs=int(ctx.evaluation["heavy_epochs"]), seed=ctx.seed,
                              multilabel=ctx.dataset.multilabel, device=ctx.device, rows=rows,
                              per_video=CLIPS_PER_VIDEO_PER_EPOCH, log=ctx.log, what=name)
        torch.save({k: v.cpu() for k, v in net.state_dict().items()}, folder / "model.pt")

    if record_as is None:
        folder = ctx.stage(name, deps, compute)
    else:  # same store folder, recorded under its own name so that it does not hide the trial's own
        folder = ctx.store.get_or_compute(name, deps, compute)
        ctx.stages_used[record_as] = folder.name
    loaded = _trial_cache(ctx)
    if str(folder) not in loaded:
        net = new_net()
        net.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        loaded[str(folder)] = net.to(ctx.device).eval()
    return loaded[str(folder)]


def heavy_classifier(ctx: TrialContext, backbone: Mapping[str, Any] | str | None = None) -> ClipNet:
    """The heavy clip classifier f (the trial's backbone unless ``backbone`` names another), trained once."""
    cfg = backbone_config(ctx, backbone)
    other = cfg != backbone_config(ctx, None)
    return _trained(ctx, "heavy_classifier", heavy_deps(ctx, cfg), lambda: _new_heavy(ctx, cfg),
                    record_as=f"heavy_classifier[{cfg['name']}]" if other else None)


def light_network(ctx: TrialContext) -> ClipNet:
    """The cheap network (``light_backbone`` at ``light_size`` on each timestep's middle frame), trained once
    as a frame classifier with the video label (no pretrained weights exist here)."""
    return _trained(ctx, "light_network", light_deps(ctx), lambda: _new_light(ctx))


@torch.no_grad()
def _per_timestep(net: ClipNet, ctx: TrialContext, split: str, folder: Path, prefix: str, with_logits: bool) -> None:
    bank, clip_len = ctx.frames(split), int(ctx.evaluation["clip_len"])
    ids = _bank_ids(bank)
    lengths = np.array([num_timesteps(len(_bank_frames(bank, v)), clip_len) for v in ids], dtype=np.int64)
    lmax = int(lengths.max()) if len(ids) else 0
    feats = np.zeros((len(ids), lmax, net.feature_dim), dtype=np.float32)
    logits = np.zeros((len(ids), lmax, ctx.dataset.num_classes), dtype=np.float32)
    for row, video_id in enumerate(ids):
        clips = frames_to_clips(_bank_frames(bank, video_id), clip_len)
        for start in range(0, len(clips), 256):
            f = net.features(clips[start: start + 256].to(ctx.device))
            feats[row, start: start + len(f)] = f.float().cpu().numpy()
            if with_logits:
                logits[row, start: start + len(f)] = net.head(f).float().cpu().numpy()
    np.save(folder / f"{prefix}_features.npy", feats)
    if with_logits:
        np.save(folder / f"{prefix}_logits.npy", logits)
    np.save(folder / "lengths.npy", lengths)
    (folder / "video_ids.json").write_text(json.dumps(ids))


class TimestepTable:
    """Per-video, per-timestep outputs of the shared networks on one split (see the module docstring).

    ``light_features`` is loaded on first access (training the cheap network then, if no stage has it):
    methods that never read it -- the baselines, SCSampler -- never pay for the cheap network.
    """

    def __init__(self, video_ids: list[str], lengths: np.ndarray, labels: np.ndarray, heavy_logits: np.ndarray,
                 heavy_features: np.ndarray, light_features: np.ndarray | Callable[[], np.ndarray] | None = None,
                 clip_len: int = 4, multilabel: bool = False, heavy_kind: str = "3d"):
        self.video_ids, self.lengths, self.labels = list(video_ids), np.asarray(lengths), np.asarray(labels)
        self.heavy_logits, self.heavy_features = heavy_logits, heavy_features
        self._light = light_features
        self.clip_len, self.multilabel, self.heavy_kind = int(clip_len), bool(multilabel), heavy_kind
        self._rows = {video_id: i for i, video_id in enumerate(self.video_ids)}

    @property
    def light_features(self) -> np.ndarray:
        if callable(self._light):
            self._light = self._light()
        if self._light is None:
            raise RuntimeError("this TimestepTable was built without light features")
        return self._light

    @property
    def mask(self) -> np.ndarray:
        return np.arange(self.heavy_logits.shape[1])[None, :] < self.lengths[:, None]

    @property
    def frame_start(self) -> np.ndarray:
        return np.where(self.mask, np.arange(self.heavy_logits.shape[1])[None, :] * self.clip_len, -1)

    @property
    def frame_end(self) -> np.ndarray:
        return np.where(self.mask, self.frame_start + self.clip_len, -1)

    def row(self, video_id: str) -> int:
        return self._rows[video_id]

    def __len__(self) -> int:
        return len(self.video_ids)

    def heavy_frames(self, row: int, timesteps: Sequence[int]) -> list[int]:
        """The frame indices the heavy network saw for these timesteps (for ``Prediction.selected``)."""
        del row  # every timestep of every video has the same layout; kept for a future variable layout
        frames: list[int] = []
        for t in sorted(int(t) for t in timesteps):
            start = t * self.clip_len
            frames += [start + self.clip_len // 2] if self.heavy_kind == "2d" else list(range(start, start + self.clip_len))
        return frames


def timestep_table(ctx: TrialContext, split: str, backbone: Mapping[str, Any] | str | None = None) -> TimestepTable:
    """Heavy logits/features and light features of every timestep of ``split``: two stages, memory-mapped."""
    cfg = backbone_config(ctx, backbone)
    heavy = heavy_classifier(ctx, cfg)
    split_frames = ctx.frames(split).key
    heavy_name = f"heavy_timesteps_{split}"
    heavy_deps_ = {"classifier": heavy_deps(ctx, cfg), "split": split, "frames": split_frames}
    compute = lambda folder: _per_timestep(heavy, ctx, split, folder, "heavy", True)  # noqa: E731
    if cfg == backbone_config(ctx, None):
        heavy_dir = ctx.stage(heavy_name, heavy_deps_, compute)
    else:  # another classifier's table (SCSampler's cross-classifier labels): recorded under its own name
        heavy_dir = ctx.store.get_or_compute(heavy_name, heavy_deps_, compute)
        ctx.stages_used[f"{heavy_name}[{cfg['name']}]"] = heavy_dir.name
    ids = json.loads((heavy_dir / "video_ids.json").read_text())

    def light_features() -> np.ndarray:
        light = light_network(ctx)
        light_dir = ctx.stage(f"light_timesteps_{split}", {"network": light_deps(ctx), "split": split, "frames": split_frames},
                              lambda folder: _per_timestep(light, ctx, split, folder, "light", False))
        if ids != json.loads((light_dir / "video_ids.json").read_text()):
            raise RuntimeError(f"heavy and light timestep tables of split '{split}' list different videos")
        return np.load(light_dir / "light_features.npy", mmap_mode="r")
    labels_of = {r.video_id: r.labels for r in ctx.dataset.split(split)}
    labels = np.stack([multi_hot(labels_of[v], ctx.dataset.num_classes) for v in ids]) if ids else np.zeros((0, 0))
    load = lambda path: np.load(path, mmap_mode="r")  # noqa: E731
    return TimestepTable(video_ids=ids, lengths=np.load(heavy_dir / "lengths.npy"), labels=labels,
                         heavy_logits=load(heavy_dir / "heavy_logits.npy"), heavy_features=load(heavy_dir / "heavy_features.npy"),
                         light_features=light_features, clip_len=int(ctx.evaluation["clip_len"]),
                         multilabel=bool(ctx.dataset.multilabel), heavy_kind=heavy.input_kind)


def clip_input_maker(clip_len: int, height: int, width: int):
    """make_inputs for a component fed one clip: ``() -> (zeros [1, 3, F, H, W],)``."""
    return lambda **_: (torch.zeros(1, 3, clip_len, height, width),)


def heavy_component(ctx: TrialContext, backbone: Mapping[str, Any] | str | None = None) -> Component:
    """The heavy classifier as an accounting component: one timestep ([1, 3, F, H, W]) at batch 1."""
    cfg = backbone_config(ctx, backbone)
    clip_len, (h, w) = int(ctx.evaluation["clip_len"]), frame_shape(ctx)
    return Component(heavy_classifier(ctx, cfg), clip_input_maker(clip_len, h, w), role="recognition",
                     config={"net": "heavy_classifier", "backbone": cfg, "clip_len": clip_len, "hw": [h, w]})


def light_component(ctx: TrialContext) -> Component:
    """The cheap network as an accounting component: one timestep ([1, 3, F, H, W], the middle frame
    resized to ``light_size`` inside the module) at batch 1."""
    clip_len, (h, w) = int(ctx.evaluation["clip_len"]), frame_shape(ctx)
    return Component(light_network(ctx), clip_input_maker(clip_len, h, w), role="selection",
                     config={"net": "light_network", "backbone": _light_cfg(ctx), "size": int(ctx.evaluation["light_size"]),
                             "clip_len": clip_len, "hw": [h, w]})


def shared_components(ctx: TrialContext, backbone: Mapping[str, Any] | str | None = None) -> dict[str, Component]:
    """{"heavy": heavy_component, "light": light_component} (building "light" trains the cheap network)."""
    return {"heavy": heavy_component(ctx, backbone), "light": light_component(ctx)}


class ClipsThrough(nn.Module):
    """``forward(clips [K,3,F,H,W]) -> logits``: a network run on a batch of chosen clips (brute-force traces)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(clips)


# ----------------------------------------------------------------------------------------------
# Base of methods that run the heavy classifier on chosen timesteps (baselines, SCSampler)
# ----------------------------------------------------------------------------------------------
AGGREGATE_PARAM = Param("auto", "rule combining the chosen timesteps' heavy scores: auto = mean_softmax "
                        "(single-label) or max_sigmoid (multi-label)", choices=("auto",) + tuple(AGGREGATION_RULES))


class HeavyOnTimesteps(Method):
    """A method that picks timesteps of a test video and averages the heavy classifier's scores on them.

    Subclasses implement ``choose(row, length) -> timesteps`` (on ``self.table``, the test split's
    ``TimestepTable``) and may override ``heavy_runs`` (timesteps the heavy network classified: the
    chosen ones unless the method needs all of them to choose). Predictions read the cached heavy
    logits of the chosen timesteps, which are exactly what the heavy classifier outputs on those clips
    (eval mode); ``trace_video`` re-runs that computation from decoded frames for the FLOP proof.
    ``selected`` lists the frames the heavy network saw; ``extras["timesteps"]`` the timestep indices.
    """

    dynamic = True  # a video with fewer than k timesteps costs less
    selection_unit = "frame"

    def fit(self, train: Sequence[Any]) -> None:
        self.table = timestep_table(self.ctx, "test")

    def components(self) -> dict[str, Component]:
        return {"heavy": heavy_component(self.ctx)}

    def choose(self, row: int, length: int) -> np.ndarray:
        raise NotImplementedError

    def heavy_runs(self, length: int, chosen: np.ndarray) -> np.ndarray:
        return chosen

    def usage(self, length: int, chosen: np.ndarray) -> Usage:
        return Usage({"heavy": len(self.heavy_runs(length, chosen))})

    def predict(self, video: Any) -> Prediction:
        row = self.table.row(video.video_id)
        length = int(self.table.lengths[row])
        chosen = np.asarray(self.choose(row, length), dtype=np.int64)
        logits = np.asarray(self.table.heavy_logits[row, chosen])
        return Prediction(scores=aggregate(logits, self.p["aggregate"], self.table.multilabel),
                          usage=self.usage(length, chosen), selected=self.table.heavy_frames(row, chosen),
                          extras={"timesteps": [int(t) for t in sorted(chosen)], "num_timesteps": length},
                          decoded=self.table.heavy_frames(row, self.heavy_runs(length, chosen)))

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        row = self.table.row(video.video_id)
        length = int(self.table.lengths[row])
        ran = self.heavy_runs(length, np.asarray(self.choose(row, length), dtype=np.int64))
        clips = video_clips(self.ctx, "test", video.video_id)[torch.as_tensor(np.sort(ran))]
        return ClipsThrough(heavy_classifier(self.ctx)), (clips.to(self.ctx.device),)


class FeaturesOf(nn.Module):
    """A shared network up to its pooled features (its head never runs): what LiteEval and
    VideoEpitoma consume, so only this part is counted for them."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net.features(clips)


def features_only(component: Component) -> Component:
    """The same component counted up to its pooled features."""
    return Component(FeaturesOf(component.module), component.make_inputs, role=component.role,
                     config={**component.config, "part": "features"})
