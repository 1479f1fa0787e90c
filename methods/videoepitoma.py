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

Departures, all small: a LayerNorm on the cached LightNet features before the concept kernels
(cached features of different backbones have very different scales); a video whose gates are all
closed keeps its highest-alpha timestep (a classifier over zero timesteps is undefined); the
budget knob is the L0 weight ``sparsity`` as in the paper (see ``params``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.method import Component, Method, Prediction, Usage
from harness.params import Param
from harness.registry import register_method

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
    """Features of the selected timesteps (scaled by their gate values) -> attention -> mean -> MLP."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 128):
        super().__init__()
        self.attention = MaskedSelfAttention(in_dim, hidden)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, features: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        selected = gates > 0
        x = self.attention(features * gates.unsqueeze(-1), selected)
        weights = selected.to(x.dtype).unsqueeze(-1)
        return self.mlp((x * weights).sum(1) / weights.sum(1).clamp(min=1))


class VideoEpitomaNet(nn.Module):
    """Selector on LightNet features + classifier on the features of the chosen timesteps."""

    def __init__(self, light_dim: int, classifier_dim: int, num_classes: int, concepts: int = 32,
                 hidden: int = 128, context: bool = True):
        super().__init__()
        self.selector = TimestepSelector(light_dim, concepts, hidden, context)
        self.classifier = VideoClassifier(classifier_dim, num_classes, hidden)

    def forward(self, light: torch.Tensor, features: torch.Tensor, mask: torch.Tensor,
                top_t: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (class logits, gate values [B, L] (0 = discarded), alpha [B, L])."""
        alpha = self.selector(light, mask)
        if top_t:
            gates = top_t_mask(alpha, mask, top_t).to(alpha.dtype)
        else:
            gates = keep_one_open(gate_values(alpha, self.training) * mask, alpha, mask, self.training)
        return self.classifier(features, gates), gates, alpha
