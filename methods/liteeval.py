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

Choices the paper leaves open or that differ from it: lambda is constant (the paper's 2; no lambda
schedule, so nothing to reset); Adam at lr 1e-3 (the paper's 1e-4 is for 10^4-10^5 videos);
default state sizes 64 (coarse) and 256 (fine; the paper's ActivityNet setting is 64 / 512); the
gate reads the fine hidden and cell state (the official code) -- eq. 2 writes h only. That the gate
learns to read the informative timesteps of a toy is checked by
``tests/test_liteeval.py::test_gate_learns_to_read_the_informative_timesteps``.

Baselines (Table 1, Fig. 2): methods/liteeval_baselines.py; ``liteeval_online`` is this method with
``online_k`` as its budget knob, so that the online setting draws its own curve.

Results: ``skimbench run experiments/liteeval_claims.yaml`` then ``skimbench report liteeval-claims``
(tables and the claims check in ``results/liteeval-claims/``).
"""

from __future__ import annotations

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
from harness.toolkit.selection import class_probabilities
from harness.toolkit.stages import (
    LIGHT_PARAMS,
    heavy_classifier,
    light_network,
    shared_components,
    timestep_stages,
    timestep_table,
)


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
    return torch.cat([coarse, fine[:, coarse.shape[1] :]], dim=1)


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
    def __init__(
        self,
        coarse_dim: int,
        fine_dim: int,
        num_classes: int,
        coarse_hidden: int = 64,
        fine_hidden: int = 256,
        coarse_embed: int = 64,
        fine_embed: int = 256,
        rnn: str = "lstm",
    ):
        super().__init__()
        if coarse_hidden >= fine_hidden:
            raise ValueError(f"the coarse state ({coarse_hidden}) must be smaller than the fine state ({fine_hidden})")
        self.coarse = CoarseStep(coarse_dim, coarse_embed, coarse_hidden, rnn)
        self.fine = FineStep(fine_dim, coarse_embed, fine_embed, fine_hidden, rnn)
        cell_dim = fine_hidden if rnn == "lstm" else 0
        self.gate = Gate(coarse_embed + fine_hidden + cell_dim)
        self.head = nn.Linear(fine_hidden, num_classes)

    def forward(
        self, coarse: torch.Tensor, fine: torch.Tensor, mask: torch.Tensor, tau: float = 1.0, online_k: int = 0
    ) -> dict[str, torch.Tensor]:
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
        return {
            "logits": self.head(h_f),
            "reads": torch.stack(reads, 1),
            "processed": torch.stack(processed, 1),
            "coarse_hidden": h_c,
            "coarse_cell": c_c,
            "fine_hidden": h_f,
            "fine_cell": c_f,
        }


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


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def temperature(step: int, total_steps: int, start: float, end: float) -> float:
    """Gumbel-softmax temperature, decayed exponentially from ``start`` to ``end`` over the *global* step."""
    return start * (end / start) ** min(1.0, step / max(1, total_steps - 1))


def budget_loss(reads: torch.Tensor, lengths: torch.Tensor, gamma: float) -> torch.Tensor:
    """(fraction of a video's true steps that read fine features - gamma)^2, averaged over videos."""
    return ((reads.sum(1) / lengths.clamp(min=1) - gamma) ** 2).mean()


def train_liteeval(
    net: LiteEvalNet,
    coarse: torch.Tensor,
    fine: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma: float,
    lambda_: float,
    multilabel: bool,
    epochs: int,
    batch_size: int,
    lr: float,
    tau_start: float,
    tau_end: float,
    seed: int,
    log=print,
) -> LiteEvalNet:
    """Adam on CE + lambda * budget (eq. 7); the temperature follows the global step across epochs."""
    generator = torch.Generator().manual_seed(int(seed))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    batches = (len(mask) + batch_size - 1) // batch_size
    total_steps, step = epochs * batches, 0
    lengths = mask.sum(1).float()
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(mask), generator=generator).to(mask.device)
        totals = np.zeros(3)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out = net(coarse[idx], fine[idx], mask[idx], tau=temperature(step, total_steps, tau_start, tau_end))
            if multilabel:
                ce = F.binary_cross_entropy_with_logits(out["logits"], targets[idx])
            else:
                ce = F.cross_entropy(out["logits"], targets[idx].argmax(1))
            budget = budget_loss(out["reads"], lengths[idx], gamma)
            loss = ce + lambda_ * budget
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            ratio = (out["reads"].sum(1) / lengths[idx]).mean().item()
            totals += np.array([ce.item(), budget.item(), ratio]) * len(idx)
        if epoch == epochs - 1 or (epoch + 1) % 10 == 0:
            ce, budget, ratio = totals / len(order)
            log(
                f"[liteeval] epoch {epoch + 1}/{epochs} ce {ce:.3f} budget {budget:.4f} fine {100 * ratio:.0f}% "
                f"tau {temperature(step - 1, total_steps, tau_start, tau_end):.2f}"
            )
    return net.eval()


# ----------------------------------------------------------------------------------------------
# The method
# ----------------------------------------------------------------------------------------------
class LiteEvalTrace(nn.Module):
    """Everything LiteEval runs on one test video, from its clips, with real skipping (the FLOP proof):
    the cheap network on every processed step (``clips`` holds exactly those, in one batch as when the
    features were cached), the heavy network only on the steps the gate reads."""

    def __init__(self, light: nn.Module, heavy: nn.Module, net: LiteEvalNet, online_k: int):
        super().__init__()
        self.light, self.heavy, self.net, self.online_k = light, heavy, net, online_k

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, ...]:
        net = self.net
        h_c, c_c = net.coarse.cell.zero_state(1, clips)
        h_f, c_f = net.fine.cell.zero_state(1, clips)
        reads, cheap, gates = 0, self.light.features(clips), []
        for t in range(len(clips)):
            v_c, h_c, c_c = net.coarse(cheap[t : t + 1], h_c, c_c)
            gates.append(net.gate(v_c, h_f, c_f))  # returned: a gate read only by control flow is pruned
            if bool(gates[-1].argmax(1) == 1):
                h_f, c_f = net.fine(v_c, self.heavy.features(clips[t : t + 1]), h_f, c_f)
                reads += 1
                if self.online_k and reads >= self.online_k:
                    break
            else:
                h_f, c_f = synchronise(h_c, h_f), synchronise(c_c, c_f)
        # the coarse states are returned too: when every step is read they feed no output, and the trace would
        # prune the coarse RNN that really ran
        return (net.head(h_f), *gates, h_c, c_c)


@register_method("liteeval")
class LiteEval(Method):
    summary = "coarse LSTM on cheap features every step; a Gumbel-softmax gate reads heavy features into a fine LSTM"
    cost = 70.0  # rough seconds of a trial (Method.cost): the scheduler starts costly trials first
    params = {
        "gamma": Param(
            0.5, "target fraction of timesteps that read heavy features (the budget of eq. 7)", low=0.0, high=1.0
        ),
        "lambda_": Param(2.0, "weight of the budget term (the paper's lambda = 2)", low=0.0),
        "coarse_hidden": Param(64, "coarse RNN state size D_c (< fine_hidden)", low=1),
        "fine_hidden": Param(256, "fine RNN state size D_f", low=2),
        "coarse_embed": Param(64, "BN-Linear-BN-ReLU embedding width of the cheap features", low=1),
        "fine_embed": Param(256, "BN-Linear-BN-ReLU embedding width of the heavy features", low=1),
        "rnn": Param("lstm", "recurrent cell of both RNNs (Table 6)", choices=("lstm", "gru")),
        "online_k": Param(0, "online setting: emit after the K-th heavy read (0: offline, the whole video)", low=0),
        "epochs": Param(20, "training epochs over the training videos", low=1),
        "batch_size": Param(32, "videos per training batch", low=1),
        "lr": Param(1e-3, "Adam learning rate", low=0.0),
        "tau_start": Param(5.0, "initial Gumbel-softmax temperature", low=1e-3),
        "tau_end": Param(0.5, "final temperature (exponential decay over the global step)", low=1e-3),
        **LIGHT_PARAMS,  # the LightNet's width and input size, shared with every method that uses it
    }
    budget_param = "gamma"
    dynamic = True
    selection_unit = "frame"

    def stages(self) -> list:
        return timestep_stages(self.ctx, ["train", "test"], light=self.p)

    def fit(self, train: Sequence[Any]) -> None:
        device = self.ctx.device
        table = timestep_table(self.ctx, "train", light=self.p)
        rows = [table.row(r.video_id) for r in train]
        coarse = torch.as_tensor(np.asarray(table.light_features)[rows], device=device)
        fine = torch.as_tensor(np.asarray(table.heavy_features)[rows], device=device)
        mask = torch.as_tensor(table.mask[rows], device=device)
        targets = torch.as_tensor(table.labels[rows], dtype=torch.float32, device=device)
        torch.manual_seed(self.ctx.seed)
        self.net = LiteEvalNet(
            coarse.shape[-1],
            fine.shape[-1],
            targets.shape[1],
            self.p["coarse_hidden"],
            self.p["fine_hidden"],
            self.p["coarse_embed"],
            self.p["fine_embed"],
            self.p["rnn"],
        ).to(device)
        train_liteeval(
            self.net,
            coarse,
            fine,
            mask,
            targets,
            gamma=self.p["gamma"],
            lambda_=self.p["lambda_"],
            multilabel=table.multilabel,
            epochs=self.p["epochs"],
            batch_size=self.p["batch_size"],
            lr=self.p["lr"],
            tau_start=self.p["tau_start"],
            tau_end=self.p["tau_end"],
            seed=self.ctx.seed,
            log=self.ctx.log,
        )
        self.table = timestep_table(self.ctx, "test", light=self.p)

    def components(self) -> dict[str, Component]:
        shared, net = shared_components(self.ctx, self.p), self.net
        d_cin, d_fin = net.coarse.embed[0].num_features, net.fine.embed[0].num_features
        d_c, d_f, e_c = net.coarse.cell.hidden, net.fine.cell.hidden, net.coarse.embed[1].out_features
        cell = lambda d: d if self.p["rnn"] == "lstm" else 0  # noqa: E731
        config = {
            "method": "liteeval",
            **{k: self.p[k] for k in ("coarse_hidden", "fine_hidden", "coarse_embed", "fine_embed", "rnn")},
            "dims": [d_cin, d_fin, net.head.out_features],
        }
        return {
            # both shared networks counted up to their pooled features: their heads never run here
            "light": features_only(shared["light"]),
            "heavy": features_only(shared["heavy"]),
            "coarse_rnn": Component(
                net.coarse,
                lambda: (torch.zeros(1, d_cin), torch.zeros(1, d_c), torch.zeros(1, cell(d_c))),
                role="selection",
                config={**config, "part": "coarse_rnn"},
            ),
            "gate": Component(
                net.gate,
                lambda: (torch.zeros(1, e_c), torch.zeros(1, d_f), torch.zeros(1, cell(d_f))),
                role="selection",
                config={**config, "part": "gate"},
            ),
            "fine_rnn": Component(
                net.fine,
                lambda: (torch.zeros(1, e_c), torch.zeros(1, d_fin), torch.zeros(1, d_f), torch.zeros(1, cell(d_f))),
                role="recognition",
                config={**config, "part": "fine_rnn"},
            ),
            "head": Component(
                net.head, lambda: (torch.zeros(1, d_f),), role="recognition", config={**config, "part": "head"}
            ),
        }

    def eval_mode(self) -> None:
        self.net.eval()

    def _run(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        """The network on these test videos at once, padded to the longest: padding changes nothing."""
        rows = list(rows)
        lengths = self.table.lengths[rows]
        longest, device = int(lengths.max()), self.ctx.device
        as_input = lambda a: torch.as_tensor(np.array(a[rows, :longest]), device=device)  # noqa: E731
        mask = torch.arange(longest, device=device)[None] < torch.as_tensor(lengths, device=device)[:, None]
        return self.net(
            as_input(self.table.light_features), as_input(self.table.heavy_features), mask, online_k=self.p["online_k"]
        )

    @torch.no_grad()
    def predict_batch(self, videos: Sequence[Any]) -> list[Prediction]:
        rows = [self.table.row(v.video_id) for v in videos]
        out = self._run(rows)
        scores = class_probabilities(out["logits"], self.table.multilabel).cpu().numpy().astype(np.float64)
        predictions = []
        for i, row in enumerate(rows):
            steps = int(out["processed"][i].sum())
            read = out["reads"][i].nonzero()[:, 0].cpu().numpy()
            usage = Usage(
                {
                    "light": steps,
                    "coarse_rnn": steps,
                    "gate": steps,
                    "heavy": len(read),
                    "fine_rnn": len(read),
                    "head": 1,
                }
            )
            heavy_frames = self.table.heavy_frames(row, read)
            # the coarse network saw the middle frame of every processed step, the fine one the read clips
            decoded = sorted(set(clip_frames(range(steps), self.table.clip_len, middle_only=True)) | set(heavy_frames))
            predictions.append(
                Prediction(
                    scores=scores[i],
                    usage=usage,
                    selected=heavy_frames,
                    extras={
                        "timesteps": [int(t) for t in read],
                        "steps_processed": steps,
                        "num_timesteps": int(self.table.lengths[row]),
                    },
                    decoded=decoded,
                )
            )
        return predictions

    def predict(self, video: Any) -> Prediction:
        return self.predict_batch([video])[0]

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        steps = int(self._run([self.table.row(video.video_id)])["processed"].sum())
        clips = video_clips(self.ctx, "test", video.video_id)[:steps].to(self.ctx.device)
        light = light_network(self.ctx, self.p)
        module = LiteEvalTrace(light, heavy_classifier(self.ctx), self.net, self.p["online_k"])
        return module.eval(), (clips,)


@register_method("liteeval_online")
class LiteEvalOnline(LiteEval):
    """LiteEval in the online setting (Fig. 2) as its own curve: the same training, swept over K."""

    summary = "LiteEval online (Fig. 2): emits after its K-th heavy read; the budget knob is K"
    params = {**LiteEval.params, "online_k": Param(4, "K: emit after the K-th heavy read", low=1)}
    budget_param = "online_k"
