"""LiteEval's baselines (seed 001): Table 1's LSTM, LSTM+CF and UNIFORM+CF (offline), Fig. 2's SEQ-K
and UNIFORM-K (online).

One module for the family, separate methods rather than modes of ``liteeval``: none of them has a
gate, a budget target or a coarse-to-fine schedule, their budget knobs differ (none, K), and the
report draws one curve per budget knob.

- ``liteeval_lstm``: an LSTM (LiteEval's own cell and BN-Linear-BN-ReLU embedding) over the heavy
  features of every timestep; scores from the hidden state after the last true step. ``inputs:
  coarse_fine`` feeds it the concatenated coarse and fine features (LSTM+CF).
- ``uniform_cf``: per timestep, the coarse network's and the heavy classifier's class scores
  averaged, then averaged over K uniformly spaced timesteps (all of them by default; the paper's
  25 frames).
- ``seq_k``: online, the heavy classifier on the first K timesteps, scores averaged (frame by frame
  until the budget is spent).
- ``uniform_k``: online, K timesteps uniformly spaced over the first K' of the video, where K' is
  the step at which ``liteeval`` (trained with the same parameters, ``online_k`` = K) emits after its
  K-th fine read. It needs to know K' in advance -- not feasible online, as the paper says -- so it
  is marked not deployable; its cost is its K heavy runs.

Results: ``skimbench run experiments/liteeval_claims.yaml`` then ``skimbench report liteeval-claims``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from harness.decode_cost import clip_frames
from harness.method import Component, Method, Prediction, Usage
from harness.params import Param
from harness.registry import register_method
from harness.toolkit.clips import video_clips
from harness.toolkit.heavy_on_timesteps import ClipsThrough, HeavyOnTimesteps, features_only
from harness.toolkit.selection import AGGREGATE_PARAM, aggregate, class_probabilities, uniform_timesteps
from harness.toolkit.stages import (
    LIGHT_PARAMS,
    heavy_classifier,
    heavy_component,
    light_component,
    light_network,
    timestep_table,
)
from harness.toolkit.training import train_video_classifier
from methods.liteeval import LiteEval, RecurrentCell, projection


class LSTMClassifier(nn.Module):
    """Embedded per-timestep features [B, L, D] -> an LSTM over the true steps -> class logits of the
    last true step. ``step`` runs one timestep (the unit the accounting counts)."""

    def __init__(self, in_dim: int, num_classes: int, embed: int = 256, hidden: int = 256):
        super().__init__()
        self.embed, self.cell = projection(in_dim, embed), RecurrentCell(embed, hidden, "lstm")
        self.head = nn.Linear(hidden, num_classes)

    def step(self, v: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cell(v, h, c)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask > 0  # bool, or 0/1 floats
        v = features.new_zeros(*mask.shape, self.embed[1].out_features)
        v[mask] = self.embed(features[mask])  # BatchNorm never sees padding
        h, c = self.cell.zero_state(mask.shape[0], v)
        for t in range(mask.shape[1]):
            new_h, new_c = self.cell(v[:, t], h, c)
            keep = mask[:, t : t + 1]  # padded steps change nothing
            h, c = torch.where(keep, new_h, h), torch.where(keep, new_c, c)
        return self.head(h)


class LSTMStep(nn.Module):
    """One accounted timestep of ``LSTMClassifier``: embed one feature vector, advance the LSTM."""

    def __init__(self, net: LSTMClassifier):
        super().__init__()
        self.net = net

    def forward(self, raw: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        return self.net.step(self.net.embed(raw), h, c)


class LSTMTrace(nn.Module):
    """The realised per-video path from its clips: the feature networks on every timestep, the LSTM, the head."""

    def __init__(self, networks: Sequence[nn.Module], net: LSTMClassifier):
        super().__init__()
        self.networks, self.net = nn.ModuleList(networks), net

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        features = torch.cat([n.features(clips) for n in self.networks], dim=1)
        return self.net(features[None], torch.ones(1, len(clips), dtype=torch.bool, device=clips.device))


@register_method("liteeval_lstm")
class LiteEvalLSTM(Method):
    summary = "LiteEval's LSTM baseline: an LSTM over the heavy features (or coarse + heavy: LSTM+CF) of every timestep"
    params = {
        "inputs": Param(
            "fine",
            "fine: heavy features (LSTM); coarse_fine: concatenated cheap and heavy features (LSTM+CF)",
            choices=("fine", "coarse_fine"),
        ),
        "hidden": Param(256, "LSTM state size (LiteEval's fine_hidden)", low=1),
        "embed": Param(256, "BN-Linear-BN-ReLU embedding width of the input features", low=1),
        "epochs": Param(20, "training epochs over the training videos", low=1),
        "batch_size": Param(32, "videos per training batch", low=1),
        "lr": Param(1e-3, "Adam learning rate", low=0.0),
        **LIGHT_PARAMS,  # the LightNet's width and input size (inputs: coarse_fine)
    }
    budget_param = None  # every timestep: the cost is the video's length
    dynamic = True  # cost follows the video's length
    selection_unit = "frame"

    @property
    def coarse(self) -> bool:
        return self.p["inputs"] == "coarse_fine"

    def _features(self, table: Any, rows: Sequence[int]) -> torch.Tensor:
        parts = [np.asarray(table.heavy_features)[rows]]
        if self.coarse:
            parts.insert(0, np.asarray(table.light_features)[rows])
        return torch.as_tensor(np.concatenate(parts, axis=-1), device=self.ctx.device)

    def fit(self, train: Sequence[Any]) -> None:
        table = timestep_table(self.ctx, "train", light=self.p)
        rows = [table.row(r.video_id) for r in train]
        features = self._features(table, rows)
        mask = torch.as_tensor(table.mask[rows], device=self.ctx.device)
        targets = torch.as_tensor(table.labels[rows], dtype=torch.float32, device=self.ctx.device)
        torch.manual_seed(self.ctx.seed)
        self.net = LSTMClassifier(features.shape[-1], targets.shape[1], self.p["embed"], self.p["hidden"])
        self.net.to(self.ctx.device)
        train_video_classifier(
            self.net,
            features,
            mask,
            targets,
            multilabel=table.multilabel,
            epochs=self.p["epochs"],
            batch_size=self.p["batch_size"],
            lr=self.p["lr"],
            seed=self.ctx.seed,
            eps=1e-8,
            what="liteeval_lstm",
            log=self.ctx.log,
        )
        self.table = timestep_table(self.ctx, "test", light=self.p)

    def components(self) -> dict[str, Component]:
        net, d_in, hidden = self.net, self.net.embed[0].num_features, self.net.cell.hidden
        config = {
            "method": "liteeval_lstm",
            **{k: self.p[k] for k in ("inputs", "hidden", "embed")},
            "dims": [d_in, net.head.out_features],
        }
        parts = {
            "heavy": features_only(heavy_component(self.ctx)),
            "lstm": Component(
                LSTMStep(net),
                lambda: (torch.zeros(1, d_in), torch.zeros(1, hidden), torch.zeros(1, hidden)),
                role="recognition",
                config={**config, "part": "lstm"},
            ),
            "head": Component(
                net.head, lambda: (torch.zeros(1, hidden),), role="recognition", config={**config, "part": "head"}
            ),
        }
        if self.coarse:
            parts["light"] = features_only(light_component(self.ctx, self.p))
        return parts

    def eval_mode(self) -> None:
        self.net.eval()

    @torch.no_grad()
    def predict_batch(self, videos: Sequence[Any]) -> list[Prediction]:
        rows = [self.table.row(v.video_id) for v in videos]
        lengths = self.table.lengths[rows]
        longest = int(lengths.max())
        features = self._features(self.table, rows)[:, :longest]
        device = self.ctx.device
        mask = torch.arange(longest, device=device)[None] < torch.as_tensor(lengths, device=device)[:, None]
        scores = class_probabilities(self.net(features, mask), self.table.multilabel).cpu().numpy().astype(np.float64)
        out = []
        for i, row in enumerate(rows):
            length = int(lengths[i])
            usage = Usage({"heavy": length, "lstm": length, "head": 1})
            if self.coarse:
                usage.add("light", length)
            frames = self.table.heavy_frames(row, range(length))
            out.append(
                Prediction(
                    scores=scores[i], usage=usage, selected=frames, decoded=frames, extras={"num_timesteps": length}
                )
            )
        return out

    def predict(self, video: Any) -> Prediction:
        return self.predict_batch([video])[0]

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        networks = ([light_network(self.ctx, self.p)] if self.coarse else []) + [heavy_classifier(self.ctx)]
        clips = video_clips(self.ctx, "test", video.video_id).to(self.ctx.device)
        return LSTMTrace(networks, self.net).eval(), (clips,)


class CoarseAndFine(nn.Module):
    """Per clip: the coarse network's and the heavy classifier's class scores, averaged (UNIFORM+CF)."""

    def __init__(self, light: nn.Module, heavy: nn.Module, multilabel: bool):
        super().__init__()
        self.light, self.heavy, self.multilabel = light, heavy, multilabel

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return (
            class_probabilities(self.light(clips), self.multilabel)
            + class_probabilities(self.heavy(clips), self.multilabel)
        ) / 2


@register_method("uniform_cf")
class UniformCF(Method):
    summary = "LiteEval's UNIFORM+CF: coarse and heavy class scores averaged per timestep, then over K timesteps"
    params = {
        "k": Param(None, "uniformly spaced timesteps per video (null: every timestep)", type=int, low=1, nullable=True),
        **LIGHT_PARAMS,
    }  # the LightNet's width and input size
    budget_param = "k"
    dynamic = True  # a video with fewer than K timesteps costs less
    selection_unit = "frame"

    def fit(self, train: Sequence[Any]) -> None:
        self.table = timestep_table(self.ctx, "test", light=self.p)

    def components(self) -> dict[str, Component]:
        # both networks whole: the coarse network's head gives its scores (features_only would miss it)
        return {"heavy": heavy_component(self.ctx), "light": light_component(self.ctx, self.p)}

    def _chosen(self, row: int) -> np.ndarray:
        length = int(self.table.lengths[row])
        return uniform_timesteps(length, self.p["k"]) if self.p["k"] else np.arange(length, dtype=np.int64)

    @torch.no_grad()
    def predict(self, video: Any) -> Prediction:
        row = self.table.row(video.video_id)
        chosen = self._chosen(row)
        light = light_network(self.ctx, self.p)
        coarse = light.head(torch.as_tensor(np.array(self.table.light_features[row, chosen]), device=self.ctx.device))
        per_step = (
            class_probabilities(coarse.float().cpu().numpy(), self.table.multilabel)
            + class_probabilities(np.asarray(self.table.heavy_logits[row, chosen]), self.table.multilabel)
        ) / 2
        frames = self.table.heavy_frames(row, chosen)
        decoded = sorted(set(frames) | set(clip_frames(chosen, self.table.clip_len, middle_only=True)))
        return Prediction(
            scores=per_step.mean(0),
            usage=Usage({"heavy": len(chosen), "light": len(chosen)}),
            selected=frames,
            decoded=decoded,
            extras={"timesteps": [int(t) for t in chosen], "num_timesteps": int(self.table.lengths[row])},
        )

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        chosen = self._chosen(self.table.row(video.video_id))
        clips = video_clips(self.ctx, "test", video.video_id)[torch.as_tensor(chosen)].to(self.ctx.device)
        module = CoarseAndFine(light_network(self.ctx, self.p), heavy_classifier(self.ctx), self.table.multilabel)
        return module.eval(), (clips,)


@register_method("seq_k")
class SeqK(HeavyOnTimesteps):
    summary = "LiteEval's online SEQ-K: the heavy classifier on the first K timesteps, scores averaged"
    params = {"k": Param(4, "timesteps classified, from the start of the video", low=1), "aggregate": AGGREGATE_PARAM}
    budget_param = "k"

    def choose(self, row: int, length: int) -> np.ndarray:
        return np.arange(min(self.p["k"], length), dtype=np.int64)


@register_method("uniform_k")
class UniformK(LiteEval):
    summary = "LiteEval's online UNIFORM-K: K uniform timesteps over the span LiteEval watched; not deployable"
    params = {
        **LiteEval.params,
        "online_k": Param(4, "K: heavy timesteps, spread over the steps liteeval ran up to its K-th fine read", low=1),
        "aggregate": AGGREGATE_PARAM,
    }
    budget_param = "online_k"
    deployable = False  # it needs the span LiteEval watched before the video is seen
    dynamic = True

    def components(self) -> dict[str, Component]:
        return {"heavy": heavy_component(self.ctx)}

    def _chosen(self, rows: Sequence[int]) -> list[tuple[np.ndarray, int]]:
        """Per video: its K uniform timesteps and the span K' they are spread over."""
        spans = self._run(rows)["processed"].sum(1).cpu().numpy()  # K': the steps LiteEval ran online
        return [(uniform_timesteps(int(span), self.p["online_k"]), int(span)) for span in spans]

    @torch.no_grad()
    def predict_batch(self, videos: Sequence[Any]) -> list[Prediction]:
        rows = [self.table.row(v.video_id) for v in videos]
        out = []
        for row, (chosen, span) in zip(rows, self._chosen(rows)):
            frames = self.table.heavy_frames(row, chosen)
            logits = np.asarray(self.table.heavy_logits[row, chosen])
            scores = aggregate(logits, self.p["aggregate"], self.table.multilabel)
            out.append(
                Prediction(
                    scores=np.asarray(scores, dtype=np.float64),
                    usage=Usage({"heavy": len(chosen)}),
                    selected=frames,
                    decoded=frames,
                    extras={
                        "timesteps": [int(t) for t in chosen],
                        "span": span,
                        "num_timesteps": int(self.table.lengths[row]),
                    },
                )
            )
        return out

    def trace_video(self, video: Any) -> tuple[nn.Module, tuple]:
        chosen, _ = self._chosen([self.table.row(video.video_id)])[0]
        clips = video_clips(self.ctx, "test", video.video_id)[torch.as_tensor(chosen)].to(self.ctx.device)
        return ClipsThrough(heavy_classifier(self.ctx)), (clips,)
