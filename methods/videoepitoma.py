"""VideoEpitoma (seed 000, section 3): a LightNet timestep selector gates which timesteps a HeavyNet sees.

Selector: LightNet feature per timestep -> similarity to N learned concept kernels -> (context) one
self-attention layer over the video's timesteps -> two-layer MLP -> one gate logit alpha per
timestep. Training: logistic (= difference of two Gumbels) noise on alpha, then the gated (clipped)
sigmoid: sigma kept where it is >= 0.5, zero below, so the classifier still sees how strongly a
timestep was chosen. Test: no noise, the step function (open iff alpha > 0). Sparsity: the L0
penalty of Louizos et al. -- the expected number of open gates, sum_t P(gate_t != 0) = sigma(alpha_t)
for this noise -- as a fraction of the video's true length, weighted by ``sparsity``.
Video classifier: HeavyNet features of the selected timesteps only, one self-attention layer, mean
pool, two-layer MLP.

Modes: ``end2end`` trains selector and classifier together on the shared heavy features;
``standalone`` trains the selector with a classifier on its own LightNet features (the paper's
MobileNet/MobileNet selector, section 4.2), then feeds the chosen timesteps to the off-the-shelf
shared heavy classifier (mean of softmax over them); ``top_t`` takes the T highest-alpha timesteps
instead of the open gates (the paper's Table 2 protocol at T = 1..N). ``context: false`` is the
frame-only gating ablation (section 4.4).

Departures, all small: the LightNet feature of a timestep is the shared, pooled vector (not a
C x H x W map), behind a LayerNorm (cached features of different backbones have very different
scales); the classifier pools by the gate-weighted mean (the plain mean at test); the L0 weight is
ramped up linearly over the first half of training (at full strength from the first step it closes
every gate before the classifier can tell which timesteps help: on a toy with 2 informative
timesteps of 12, without the ramp sparsity 1.0 closed every gate and 0.3 chose at chance precision,
18%; with it, 80% and 95%); a video whose gates are all closed keeps its highest-alpha timestep.

Budget knob: the paper's L0 weight ``sparsity`` (not a target count), swept on a log scale. It keeps
what L0 is for in the paper -- each video gets its own number of timesteps -- and a fixed count is
what ``top_t`` already gives.

Protocol (``candidates``, seed 000 Table 1): the LightNet sees only T candidate timesteps of a
video -- uniformly spaced at test, drawn at random per video in training, as the paper samples
T = 32 -- and the selector chooses among them; null (the default) shows it every timestep.
The learned aggregator alone (this classifier on uniform timesteps, no selector) is the baseline
``videoepitoma_uniform`` (methods/videoepitoma_uniform.py).

Results: ``skimbench run experiments/videoepitoma_claims.yaml`` then ``skimbench report
videoepitoma-claims`` (tables and the claims check in ``results/videoepitoma-claims/``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.decode_cost import clip_frames
from harness.method import Component, Method, Prediction, Usage
from harness.params import Param
from harness.registry import register_method
from harness.toolkit.clips import video_clips
from harness.toolkit.heavy_on_timesteps import features_only
from harness.toolkit.selection import aggregate, class_probabilities, uniform_timesteps
from harness.toolkit.stages import (
    LIGHT_PARAMS,
    heavy_classifier,
    light_network,
    shared_components,
    timestep_stages,
    timestep_table,
)
from harness.toolkit.training import classification_loss

_NEG = -1e9  # finite "minus infinity": a fully masked attention row stays finite


class MaskedSelfAttention(nn.Module):
    """One residual self-attention (non-local) layer over timesteps; keys limited to ``mask``."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(dim, inner), nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.out = nn.Linear(inner, dim)
        self.scale = 1.0 / math.sqrt(inner)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        attention = torch.matmul(self.query(x), self.key(x).transpose(1, 2)) * self.scale  # [B, L, L]
        if mask is not None:
            attention = attention.masked_fill(~mask[:, None, :], _NEG)
        return x + self.out(torch.matmul(attention.softmax(dim=-1), self.value(x)))


class TimestepSelector(nn.Module):
    """LightNet features [B, L, D] -> gate logits alpha [B, L]."""

    def __init__(self, light_dim: int, concepts: int = 32, hidden: int = 64, context: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(light_dim)
        self.concept_kernels = nn.Parameter(torch.randn(concepts, light_dim) / math.sqrt(light_dim))
        self.context = MaskedSelfAttention(concepts, concepts) if context else None
        self.mlp = nn.Sequential(nn.Linear(concepts, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, light: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        similarity = torch.matmul(self.norm(light), self.concept_kernels.t())  # s_i = K . x_i
        if self.context is not None:
            similarity = self.context(similarity, mask)
        return self.mlp(similarity).squeeze(-1)


def gate_values(alpha: torch.Tensor, training: bool) -> torch.Tensor:
    """Training: gated sigmoid of alpha + logistic noise (differentiable where open). Test: step."""
    if not training:
        return (alpha > 0).to(alpha.dtype)
    u = torch.rand_like(alpha).clamp(1e-6, 1 - 1e-6)
    soft = torch.sigmoid(alpha + torch.log(u) - torch.log1p(-u))
    return torch.where(soft >= 0.5, soft, torch.zeros_like(soft))


def keep_one_open(gates: torch.Tensor, alpha: torch.Tensor, mask: torch.Tensor, training: bool) -> torch.Tensor:
    """A video with every gate closed keeps its highest-alpha timestep (sigma(alpha) there in training)."""
    closed = ~((gates > 0) & mask).any(dim=1)
    if not closed.any():
        return gates
    best = alpha.masked_fill(~mask, -math.inf).argmax(dim=1)
    forced = F.one_hot(best, alpha.shape[1]).bool() & closed[:, None]
    return torch.where(forced, torch.sigmoid(alpha) if training else torch.ones_like(gates), gates)


def l0_penalty(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Expected fraction of open gates per video (Louizos et al.'s L0 term), averaged over videos."""
    maskf = mask.to(alpha.dtype)
    return ((torch.sigmoid(alpha) * maskf).sum(1) / maskf.sum(1).clamp(min=1)).mean()


def top_t_mask(alpha: torch.Tensor, mask: torch.Tensor, t: int) -> torch.Tensor:
    """The T highest-alpha valid timesteps of each video (all of them when T >= its length)."""
    ranked = alpha.masked_fill(~mask, -math.inf).argsort(dim=1, descending=True)
    keep = torch.zeros_like(mask)
    counts = mask.sum(1).clamp(max=t)
    for row in range(alpha.shape[0]):
        keep[row, ranked[row, : int(counts[row])]] = True
    return keep


class VideoClassifier(nn.Module):
    """Features of the selected timesteps (scaled by their gate values) -> attention -> pool -> MLP.

    The pool is the gate-weighted mean: at test (binary gates) the plain mean over the selected
    timesteps; in training a timestep's gate value sets its share, so the classification loss
    tells each open gate whether its timestep helps (raise it) or dilutes the evidence (lower it).
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 128):
        super().__init__()
        self.attention = MaskedSelfAttention(in_dim, hidden)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, features: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        selected = gates > 0
        x = self.attention(features * gates.unsqueeze(-1), selected)
        weights = gates.unsqueeze(-1)
        return self.mlp((x * weights).sum(1) / weights.sum(1).clamp(min=1e-6))


class VideoEpitomaNet(nn.Module):
    """Selector on LightNet features + classifier on the features of the chosen timesteps."""

    def __init__(
        self,
        light_dim: int,
        classifier_dim: int,
        num_classes: int,
        concepts: int = 32,
        hidden: int = 128,
        context: bool = True,
    ):
        super().__init__()
        self.selector = TimestepSelector(light_dim, concepts, hidden, context)
        self.classifier = VideoClassifier(classifier_dim, num_classes, hidden)

    def forward(
        self, light: torch.Tensor, features: torch.Tensor, mask: torch.Tensor, top_t: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (class logits, gate values [B, L] (0 = discarded), alpha [B, L])."""
        alpha = self.selector(light, mask)
        if top_t:
            gates = top_t_mask(alpha, mask, top_t).to(alpha.dtype)
        else:
            gates = keep_one_open(gate_values(alpha, self.training) * mask, alpha, mask, self.training)
        return self.classifier(features, gates), gates, alpha


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def sparsity_weight(sparsity: float, step: int, total_steps: int, warmup: float = 0.5) -> float:
    """The L0 weight, ramped up linearly over the first half of training (global step): a penalty at
    full strength from the first step closes every gate before the classifier can say which help."""
    return sparsity * min(1.0, step / max(1.0, warmup * total_steps))


def random_candidates(mask: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
    """T distinct true timesteps of each video drawn at random (all of them when shorter): bool [B, L]."""
    draw = torch.rand(mask.shape, generator=generator).to(mask.device)
    return top_t_mask(draw, mask, t)


def train_videoepitoma(
    net: VideoEpitomaNet,
    light: torch.Tensor,
    features: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor,
    *,
    sparsity: float,
    multilabel: bool,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    candidates: int | None = None,
    log=print,
) -> VideoEpitomaNet:
    """Adam (lr, eps 1e-4, the paper's optimiser) on CE + sparsity * L0, minibatches of whole videos.

    ``candidates`` = T: every step the selector sees only T random timesteps of each video (the paper
    samples T = 32 per training video) and chooses among them; the rest count as padding."""
    generator = torch.Generator().manual_seed(int(seed))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, eps=1e-4)
    total_steps, step = epochs * ((len(mask) + batch_size - 1) // batch_size), 0
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(mask), generator=generator).to(mask.device)
        totals = np.zeros(3)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            seen = random_candidates(mask[idx], candidates, generator) if candidates else mask[idx]
            logits, gates, alpha = net(light[idx], features[idx], seen)
            ce, l0 = classification_loss(logits, targets[idx], multilabel), l0_penalty(alpha, seen)
            loss = ce + sparsity_weight(sparsity, step, total_steps) * l0
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            opened = float(((gates > 0).sum(1).float() / seen.sum(1)).mean())
            totals += np.array([ce.item(), l0.item(), opened]) * len(idx)
        if epoch == epochs - 1 or (epoch + 1) % 10 == 0:
            ce, l0, opened = totals / len(order)
            log(f"[videoepitoma] epoch {epoch + 1}/{epochs} ce {ce:.3f} l0 {l0:.3f} open {100 * opened:.0f}%")
    return net.eval()


# ----------------------------------------------------------------------------------------------
# The method
# ----------------------------------------------------------------------------------------------


class EpitomaTrace(nn.Module):
    """Everything VideoEpitoma runs on one test video, from its candidate clips: the brute-force FLOP proof."""

    def __init__(
        self,
        light: nn.Module,
        selector: TimestepSelector,
        heavy: nn.Module,
        classifier: VideoClassifier | None,
        top_t: int | None,
    ):
        super().__init__()
        self.light, self.selector, self.heavy, self.classifier, self.top_t = light, selector, heavy, classifier, top_t

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        alpha = self.selector(self.light.features(clips)[None])[0]
        if self.top_t:
            chosen = alpha.topk(min(self.top_t, len(alpha))).indices.sort().values
        else:
            chosen = (alpha > 0).nonzero()[:, 0] if bool((alpha > 0).any()) else alpha.argmax()[None]
        if self.classifier is None:  # standalone: the off-the-shelf heavy classifier on each chosen clip
            return self.heavy(clips[chosen])
        features = self.heavy.features(clips[chosen])[None]
        return self.classifier(features, torch.ones_like(features[..., 0]))


@register_method("videoepitoma")
class VideoEpitoma(Method):
    summary = (
        "LightNet timestep selector (concept kernels, context attention, gated sigmoid, L0) + HeavyNet on the chosen "
        "timesteps"
    )
    cost = 12.0  # rough seconds of a trial (Method.cost): the scheduler starts costly trials first
    params = {
        "mode": Param(
            "end2end",
            "end2end: selector and attention+MLP classifier trained together on HeavyNet "
            "features; standalone: selector trained on LightNet features, feeding the shared heavy classifier",
            choices=("end2end", "standalone"),
        ),
        "sparsity": Param(
            0.5, "weight of the L0 sparsity penalty (expected fraction of open gates): higher, fewer timesteps", low=0.0
        ),
        "top_t": Param(
            None,
            "test: take the T highest-gated timesteps instead of the open gates (Table 2 protocol)",
            type=int,
            low=1,
            nullable=True,
        ),
        "context": Param(
            True, "self-attention context layer before the gate (false: the frame-only ablation, section 4.4)"
        ),
        "concepts": Param(32, "number of learned concept kernels N", low=1),
        "hidden": Param(128, "hidden width of the gate MLP, the attention layers and the classifier MLP", low=4),
        "epochs": Param(30, "training epochs over the training videos", low=1),
        "batch_size": Param(32, "videos per training batch", low=1),
        "lr": Param(1e-3, "Adam learning rate (epsilon 1e-4, as in the paper)", low=0.0),
        "aggregate": Param(
            "auto",
            "standalone: rule combining the chosen timesteps' heavy scores (auto: mean softmax / max sigmoid)",
            choices=("auto", "mean_softmax", "max_sigmoid", "mean_logits"),
        ),
        **LIGHT_PARAMS,  # the LightNet's width and input size, shared with every method that uses it
        "candidates": Param(
            None,
            "T candidate timesteps the LightNet sees and the selector chooses among (Table 1): "
            "uniformly spaced at test, random per video in training; null = every timestep",
            type=int,
            low=1,
            nullable=True,
        ),
    }
    budget_param = "sparsity"
    dynamic = True
    selection_unit = "frame"

    def __init__(self, ctx: Any, **params: Any):
        super().__init__(ctx, **params)
        self.end2end = self.p["mode"] == "end2end"

    def stages(self) -> list:
        return timestep_stages(self.ctx, ["train", "test"], light=self.p)

    def fit(self, train: Sequence[Any]) -> None:
        device = self.ctx.device
        table = timestep_table(self.ctx, "train", light=self.p)
        rows = [table.row(r.video_id) for r in train]
        light = torch.as_tensor(np.asarray(table.light_features)[rows], device=device)
        source = table.heavy_features if self.end2end else table.light_features
        features = torch.as_tensor(np.asarray(source)[rows], device=device)
        mask = torch.as_tensor(table.mask[rows], device=device)
        targets = torch.as_tensor(table.labels[rows], dtype=torch.float32, device=device)
        torch.manual_seed(self.ctx.seed)
        self.net = VideoEpitomaNet(
            light.shape[-1],
            features.shape[-1],
            targets.shape[1],
            self.p["concepts"],
            self.p["hidden"],
            self.p["context"],
        ).to(device)
        train_videoepitoma(
            self.net,
            light,
            features,
            mask,
            targets,
            sparsity=self.p["sparsity"],
            multilabel=table.multilabel,
            epochs=self.p["epochs"],
            batch_size=self.p["batch_size"],
            lr=self.p["lr"],
            seed=self.ctx.seed,
            candidates=self.p["candidates"],
            log=self.ctx.log,
        )
        self.table = timestep_table(self.ctx, "test", light=self.p)

    def components(self) -> dict[str, Component]:
        shared = shared_components(self.ctx, self.p)
        light_dim = self.net.selector.norm.normalized_shape[0]
        config = {"method": "videoepitoma", **{k: self.p[k] for k in ("mode", "concepts", "hidden", "context")}}
        # both networks counted up to their pooled features: the light head never runs, nor does
        # the heavy head end-to-end (standalone uses the whole heavy classifier)
        parts = {
            "light": features_only(shared["light"]),
            "selector": Component(
                self.net.selector,
                lambda steps: (torch.zeros(1, steps, light_dim),),
                role="selection",
                config={**config, "part": "selector", "dim": light_dim},
            ),
        }
        if not self.end2end:
            parts["heavy"] = shared["heavy"]
            return parts
        heavy_dim = self.net.classifier.mlp[0].in_features
        parts["heavy"] = features_only(shared["heavy"])
        parts["classifier"] = Component(
            self.net.classifier,
            lambda steps: (torch.zeros(1, steps, heavy_dim), torch.ones(1, steps)),
            role="recognition",
            config={
                **config,
                "part": "classifier",
                "dim": heavy_dim,
                "classes": self.net.classifier.mlp[2].out_features,
            },
        )
        return parts

    def eval_mode(self) -> None:
        self.net.eval()

    def _candidates(self, row: int) -> np.ndarray:
        """The timesteps the LightNet sees: T uniformly spaced ones, or every timestep."""
        length = int(self.table.lengths[row])
        if self.p["candidates"]:
            return uniform_timesteps(length, self.p["candidates"])
        return np.arange(length, dtype=np.int64)

    def _choose(self, row: int) -> tuple[np.ndarray, torch.Tensor]:
        """The chosen timesteps of a test video (among its candidates) and the candidates' gate logits."""
        candidates = self._candidates(row)
        light = torch.as_tensor(np.array(self.table.light_features[row, candidates]), device=self.ctx.device)[None]
        alpha = self.net.selector(light)
        mask = torch.ones_like(alpha, dtype=torch.bool)
        if self.p["top_t"]:
            chosen = top_t_mask(alpha, mask, self.p["top_t"])
        else:
            chosen = keep_one_open(gate_values(alpha, training=False), alpha, mask, training=False) > 0
        return candidates[chosen[0].nonzero()[:, 0].cpu().numpy()], alpha[0]

    @torch.no_grad()
    def predict(self, video: Any) -> Prediction:
        row = self.table.row(video.video_id)
        length, seen = int(self.table.lengths[row]), len(self._candidates(row))
        chosen, alpha = self._choose(row)
        usage = Usage({"light": seen}).add("selector", 1, steps=seen).add("heavy", len(chosen))
        if self.end2end:
            features = torch.as_tensor(np.array(self.table.heavy_features[row, chosen]), device=self.ctx.device)[None]
            logits = self.net.classifier(features, torch.ones_like(features[..., 0]))[0]
            scores = class_probabilities(logits, self.table.multilabel).cpu().numpy()
            usage.add("classifier", 1, steps=len(chosen))
        else:
            scores = aggregate(
                np.asarray(self.table.heavy_logits[row, chosen]), self.p["aggregate"], self.table.multilabel
            )
        heavy_frames = self.table.heavy_frames(row, chosen)
        # the LightNet saw the middle frame of every candidate, the HeavyNet the chosen clips
        light_frames = clip_frames(self._candidates(row), self.table.clip_len, middle_only=True)
        decoded = sorted(set(light_frames) | set(heavy_frames))
        return Prediction(
            scores=np.asarray(scores, dtype=np.float64),
            usage=usage,
            selected=heavy_frames,
            extras={
                "timesteps": [int(t) for t in chosen],
                "num_timesteps": length,
                "candidates": [int(t) for t in self._candidates(row)],
                "gate_logits": [round(float(a), 4) for a in alpha.detach().cpu()],
            },
            decoded=decoded,
        )

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        row = self.table.row(video.video_id)
        candidates = torch.as_tensor(self._candidates(row))
        clips = video_clips(self.ctx, "test", video.video_id)[candidates].to(self.ctx.device)
        module = EpitomaTrace(
            light_network(self.ctx, self.p),
            self.net.selector,
            heavy_classifier(self.ctx),
            self.net.classifier if self.end2end else None,
            self.p["top_t"],
        )
        return module.eval(), (clips,)
