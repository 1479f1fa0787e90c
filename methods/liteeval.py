"""LiteEval (seed 001, section 3): a coarse RNN on cheap features decides, step by step, when to read
expensive features into a fine RNN.

Every timestep t: the coarse feature v_c (the shared cheap network at low resolution) updates the
coarse RNN; a gate (one linear layer over [v_c, previous fine hidden and cell state], two logits)
decides B_t. If B_t = 1 the fine feature v_f (the shared heavy network) is computed and
[v_c, v_f] updates the fine RNN; if B_t = 0 the fine state is synchronised by copying the coarse
state into its first D_c dims (eq. 5; for an LSTM both hidden and cell state). The class scores
come from the fine hidden state after the last true step. Training: Gumbel-softmax with a
temperature annealed on the global step and straight-through hard samples; test: argmax. Loss:
CE + lambda * (fraction of fine steps of the video - gamma)^2, averaged over videos (eq. 7).
Inputs pass BN-Linear-BN-ReLU first, as in the official code.

Fixes over the official code (shared/notes/reference.md): padded steps are masked (they neither
gate, nor read fine features, nor change any state); the temperature and lambda schedules follow
the global step across epochs; compute is accounted per video over its true length only.
Online setting (``online_k``): at test the model emits after its K-th fine read and stops reading.
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


class RecurrentCell(nn.Module):
    """An LSTM or GRU cell written with two Linear layers, so that fvcore counts its multiply-adds
    (it has no handle for aten::lstm_cell). State is (h, c); a GRU carries an empty c."""

    def __init__(self, in_dim: int, hidden: int, kind: str = "lstm"):
        super().__init__()
        self.kind, self.hidden = kind, hidden
        width = {"lstm": 4, "gru": 3}[kind] * hidden
        self.input_map, self.state_map = nn.Linear(in_dim, width), nn.Linear(hidden, width)

    def zero_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cell = self.hidden if self.kind == "lstm" else 0
        return like.new_zeros(batch, self.hidden), like.new_zeros(batch, cell)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gx, gh = self.input_map(x), self.state_map(h)
        if self.kind == "lstm":
            i, f, g, o = (gx + gh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        rx, zx, nx = gx.chunk(3, dim=-1)
        rh, zh, nh = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(rx + rh), torch.sigmoid(zx + zh)
        n = torch.tanh(nx + r * nh)
        return (1 - z) * n + z * h, c


def projection(in_dim: int, out_dim: int) -> nn.Sequential:
    """BN-Linear-BN-ReLU, the official code's input embedding of cached CNN features."""
    return nn.Sequential(nn.BatchNorm1d(in_dim), nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU())


def synchronise(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """Eq. 5: the coarse state replaces the first D_c dims of the fine state; the rest is kept."""
    return torch.cat([coarse, fine[:, coarse.shape[1]:]], dim=1)


class CoarseStep(nn.Module):
    """Embed one coarse feature and advance the coarse RNN: (raw v_c, h_c, c_c) -> (v_c, h_c, c_c)."""

    def __init__(self, in_dim: int, embed: int, hidden: int, kind: str):
        super().__init__()
        self.embed, self.cell = projection(in_dim, embed), RecurrentCell(embed, hidden, kind)

    def forward(self, raw: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        v = self.embed(raw)
        return (v, *self.cell(v, h, c))


class FineStep(nn.Module):
    """Embed one fine feature and advance the fine RNN on [v_c, v_f]: (v_c, raw v_f, h_f, c_f) -> (h_f, c_f)."""

    def __init__(self, in_dim: int, coarse_embed: int, embed: int, hidden: int, kind: str):
        super().__init__()
        self.embed, self.cell = projection(in_dim, embed), RecurrentCell(coarse_embed + embed, hidden, kind)

    def forward(self, coarse: torch.Tensor, raw: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        return self.cell(torch.cat([coarse, self.embed(raw)], dim=1), h, c)


class Gate(nn.Module):
    """Eq. 2: two logits (skip, read) from [v_c, h_f, c_f]."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, 2)

    def forward(self, coarse: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([coarse, h, c], dim=1))


def decide(logits: torch.Tensor, training: bool, tau: float) -> torch.Tensor:
    """B_t in {0, 1} per video: straight-through Gumbel-softmax in training, argmax at test."""
    if training:
        return F.gumbel_softmax(logits, tau=tau, hard=True)[:, 1]
    return logits.argmax(dim=1).to(logits.dtype)


class LiteEvalNet(nn.Module):
    def __init__(self, coarse_dim: int, fine_dim: int, num_classes: int, coarse_hidden: int = 64,
                 fine_hidden: int = 256, coarse_embed: int = 64, fine_embed: int = 256, rnn: str = "lstm"):
        super().__init__()
        if coarse_hidden >= fine_hidden:
            raise ValueError(f"the coarse state ({coarse_hidden}) must be smaller than the fine state ({fine_hidden})")
        self.coarse = CoarseStep(coarse_dim, coarse_embed, coarse_hidden, rnn)
        self.fine = FineStep(fine_dim, coarse_embed, fine_embed, fine_hidden, rnn)
        cell_dim = fine_hidden if rnn == "lstm" else 0
        self.gate = Gate(coarse_embed + fine_hidden + cell_dim)
        self.head = nn.Linear(fine_hidden, num_classes)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor, mask: torch.Tensor, tau: float = 1.0,
                online_k: int = 0) -> dict[str, torch.Tensor]:
        """coarse [B, L, Dc_in], fine [B, L, Df_in], mask [B, L] (True = a true step).

        Returns logits [B, C], reads [B, L] (B_t, 0 on padded or unprocessed steps), processed
        [B, L] (steps the model ran: the true steps, or up to the K-th read online) and the final
        coarse and fine states. Padded steps change nothing, so scores do not depend on padding.
        """
        batch, length = mask.shape
        # Embed every true step at once (BatchNorm then never sees padding, nor a batch of one).
        v_coarse, v_fine = _embed(self.coarse.embed, coarse, mask), _embed(self.fine.embed, fine, mask)
        h_c, c_c = self.coarse.cell.zero_state(batch, v_coarse)
        h_f, c_f = self.fine.cell.zero_state(batch, v_coarse)
        n_reads = v_coarse.new_zeros(batch)
        reads, processed = [], []
        for t in range(length):
            active = mask[:, t] & (n_reads < online_k) if online_k else mask[:, t]
            b_full = v_coarse.new_zeros(batch)
            if bool(active.any()):
                v_c = v_coarse[active, t]
                new_h_c, new_c_c = self.coarse.cell(v_c, h_c[active], c_c[active])
                b = decide(self.gate(v_c, h_f[active], c_f[active]), self.training, tau)[:, None]
                read_h, read_c = self.fine.cell(torch.cat([v_c, v_fine[active, t]], 1), h_f[active], c_f[active])
                sync_h, sync_c = synchronise(new_h_c, h_f[active]), synchronise(new_c_c, c_f[active])
                if self.training:  # straight-through: b is exactly 0 or 1 forward, soft backward
                    new_h_f, new_c_f = b * read_h + (1 - b) * sync_h, b * read_c + (1 - b) * sync_c
                else:
                    new_h_f, new_c_f = torch.where(b > 0, read_h, sync_h), torch.where(b > 0, read_c, sync_c)
                h_c, c_c = _scatter(h_c, active, new_h_c), _scatter(c_c, active, new_c_c)
                h_f, c_f = _scatter(h_f, active, new_h_f), _scatter(c_f, active, new_c_f)
                b_full = _scatter(b_full[:, None], active, b)[:, 0]
            n_reads = n_reads + b_full.detach()
            reads.append(b_full)
            processed.append(active)
        return {"logits": self.head(h_f), "reads": torch.stack(reads, 1), "processed": torch.stack(processed, 1),
                "coarse_hidden": h_c, "coarse_cell": c_c, "fine_hidden": h_f, "fine_cell": c_f}


def _embed(embed: nn.Module, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Apply ``embed`` to the true steps only; padded steps get zeros (never read)."""
    out = features.new_zeros(*mask.shape, embed[1].out_features)
    out[mask] = embed(features[mask])
    return out


def _scatter(full: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``full`` with ``rows`` replaced by ``values`` (out of place, so autograd follows)."""
    if bool(rows.all()):
        return values
    index = rows.nonzero()[:, 0]
    return full.index_copy(0, index, values)
