"""LiteEval's baselines (Table 1, Fig. 2) and VideoEpitoma's classifier on uniform timesteps: mechanisms on
random tensors and hand-made tables (fast), then each method on the built-in benchmark with its FLOP proof."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.toolkit.selection import uniform_timesteps
from harness.toolkit.stages import TimestepTable
from methods.liteeval_baselines import LSTMClassifier, SeqK
from methods.videoepitoma import VideoEpitomaNet, random_candidates, train_videoepitoma

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_lstm_baseline_ignores_padding():
    torch.manual_seed(0)
    net = LSTMClassifier(6, 3, embed=8, hidden=8).eval()
    features = torch.randn(3, 5, 6)
    mask = torch.arange(5)[None] < torch.tensor([[5], [3], [2]])
    padded = torch.cat([features, 50 * torch.randn(3, 4, 6)], 1)
    with torch.no_grad():
        ref = net(features, mask)
        assert torch.equal(ref, net(padded, torch.cat([mask, torch.zeros(3, 4, dtype=torch.bool)], 1)))
        assert torch.allclose(net(features[1:2, :3], mask[1:2, :3]), ref[1:2], atol=1e-6)  # as alone at its length


def test_seq_k_reads_the_first_k_timesteps():
    rng = np.random.default_rng(0)
    table = TimestepTable(
        video_ids=["v0", "v1"],
        lengths=np.array([10, 2]),
        labels=np.eye(3, dtype=np.float32)[[0, 1]],
        heavy_logits=rng.normal(size=(2, 10, 3)),
        heavy_features=rng.normal(size=(2, 10, 4)),
        clip_len=4,
    )
    method = SeqK(type("Ctx", (), {"seed": 0})(), k=3, aggregate="auto")
    method.table = table
    full = method.predict(type("Rec", (), {"video_id": "v0"})())
    assert full.extras["timesteps"] == [0, 1, 2] and full.usage.total("heavy") == 3
    assert full.decoded == list(range(12))  # the first three clips of 4 frames, nothing else
    assert method.predict(type("Rec", (), {"video_id": "v1"})()).extras["timesteps"] == [0, 1]


class _RecordsMask(VideoEpitomaNet):
    """The real network; it also notes which timesteps each training step showed it."""

    def forward(self, light, features, mask, top_t=None):
        self.seen.append(mask.clone())
        return super().forward(light, features, mask, top_t)


def test_with_candidates_the_selector_trains_on_t_random_timesteps_of_each_video():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([9, 4, 7, 9])
    mask = torch.arange(9)[None] < lengths[:, None]
    picked = random_candidates(mask, 5, g)
    assert (picked & ~mask).sum() == 0 and picked.sum(1).tolist() == [5, 4, 5, 5]
    torch.manual_seed(0)
    net = _RecordsMask(6, 8, 3, concepts=4, hidden=8)
    net.seen = []
    targets = torch.nn.functional.one_hot(torch.arange(4) % 3, 3).float()
    train_videoepitoma(
        net,
        torch.randn(4, 9, 6),
        torch.randn(4, 9, 8),
        mask,
        targets,
        sparsity=0.1,
        multilabel=False,
        epochs=3,
        batch_size=4,
        lr=1e-3,
        seed=0,
        candidates=5,
        log=lambda _: None,
    )
    assert len(net.seen) == 3
    for seen in net.seen:  # rows are shuffled: compare counts, and never a padded step
        assert sorted(seen.sum(1).tolist()) == [4, 5, 5, 5] and seen.sum() < mask.sum()
    assert not all(torch.equal(net.seen[0].sum(0), s.sum(0)) for s in net.seen[1:])  # a fresh draw every step


# -- on the built-in benchmark (tiny): real decoded frames, real shared stages, real fvcore -------
def _tiny_method(tiny_root, name, **params):
    from conftest import tiny_trial

    # one store beside the session's benchmark: the selection test modules share its stages
    ctx, method = tiny_trial(
        tiny_root,
        name,
        params,
        store=Path(tiny_root).parent / "selection-stages",
        workdir=Path(tiny_root).parent,
        evaluation={"heavy_epochs": 1},
    )
    method.fit(ctx.dataset.split("train"))
    if hasattr(method, "eval_mode"):
        method.eval_mode()
    return ctx, method


SMALL_LITEEVAL = {"epochs": 2, "coarse_hidden": 16, "fine_hidden": 32, "coarse_embed": 16, "fine_embed": 32}


@pytest.mark.parametrize(
    "name, params",
    [
        ("liteeval_lstm", {"epochs": 2, "hidden": 16, "embed": 16}),
        ("liteeval_lstm", {"epochs": 2, "hidden": 16, "embed": 16, "inputs": "coarse_fine"}),
        ("uniform_cf", {"k": 3}),
        ("uniform_k", {**SMALL_LITEEVAL, "online_k": 2}),
        ("seq_k", {"k": 2}),
        ("liteeval_online", {**SMALL_LITEEVAL, "online_k": 2}),
        ("videoepitoma_uniform", {"k": 3, "epochs": 2}),
    ],
)
def test_accounting_matches_a_brute_force_count_per_video(tiny_root, name, params):
    from harness.compute import verify_accounting

    ctx, method = _tiny_method(tiny_root, name, **params)
    test = ctx.dataset.split("test")[:10]
    pairs = verify_accounting(method, test)
    assert len(pairs) == 10
    for accounted, brute in pairs:
        assert brute > 0 and abs(accounted - brute) <= 0.01 * brute, (name, accounted, brute)
    prediction = method.predict(test[0])
    length = prediction.extras["num_timesteps"]
    assert np.isclose(prediction.scores.sum(), 1.0)
    if name == "liteeval_lstm":  # every timestep, through the heavy (and the cheap) network
        assert prediction.usage.total("heavy") == prediction.usage.total("lstm") == length
        assert prediction.usage.total("light") == (length if params.get("inputs") == "coarse_fine" else 0)
    if name in ("uniform_cf", "videoepitoma_uniform"):
        assert prediction.extras["timesteps"] == uniform_timesteps(length, 3).tolist()


def test_uniform_k_spreads_k_timesteps_over_the_span_liteeval_watched(tiny_root):
    _, online = _tiny_method(tiny_root, "liteeval_online", **SMALL_LITEEVAL, online_k=2)
    ctx, method = _tiny_method(tiny_root, "uniform_k", **SMALL_LITEEVAL, online_k=2)
    test = ctx.dataset.split("test")[:6]
    for watched, baseline in zip(online.predict_batch(test), method.predict_batch(test)):
        span = watched.extras["steps_processed"]
        assert baseline.extras["span"] == span
        assert baseline.extras["timesteps"] == uniform_timesteps(span, 2).tolist()
        assert baseline.usage.total("heavy") == min(2, span)
    assert method.deployable is False
