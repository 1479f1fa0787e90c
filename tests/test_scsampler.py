"""SCSampler: the ranking loss, the SAL-CL pseudo labels, each objective learning saliency on a toy
where it is obvious, the sampler's cost against the heavy classifier's, and the method end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.decode_cost import clip_frames
from harness.toolkit.selection import random_timesteps, top_k, video_rng
from methods.scsampler import CheapClipInputs, SaliencySampler, sal_rank_loss, salcl_targets, score_all, train_sampler


def test_sal_rank_loss_is_zero_iff_the_ordering_holds_with_margin():
    targets = torch.tensor([[0.9, 0.5, 0.1, 0.0]])
    mask = torch.tensor([[True, True, True, False]])  # the last clip is padding
    good = torch.tensor([[3.0, 1.5, 0.0, 99.0]])  # respects f's order, gaps >= 1, padding ignored
    assert float(sal_rank_loss(good, targets, mask, eta=1.0)) == 0.0
    tight = torch.tensor([[3.0, 2.5, 0.0, 0.0]])  # right order, one gap below the margin
    assert float(sal_rank_loss(tight, targets, mask, eta=1.0)) > 0.0
    wrong = torch.tensor([[0.0, 1.5, 3.0, 0.0]])  # reversed
    assert float(sal_rank_loss(wrong, targets, mask, eta=1.0)) > float(sal_rank_loss(tight, targets, mask, eta=1.0))
    # pairs: (0,1): 0.5 short, (0,2) and (1,2) fine -> mean 0.5 / 3
    assert np.isclose(float(sal_rank_loss(tight, targets, mask, eta=1.0)), 0.5 / 3)
    # ties in f carry no pair; no pair at all gives zero (and a gradient-carrying tensor)
    flat = torch.zeros(1, 3, requires_grad=True)
    loss = sal_rank_loss(flat, torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool), eta=1.0)
    assert float(loss.detach()) == 0.0 and loss.requires_grad


def test_salcl_targets_mark_the_oracle_top_half():
    scores = np.array([[0.1, 0.9, 0.8, 0.2, 0.0, 0.0], [0.3, 0.1, 0.0, 0.0, 0.0, 0.0]])
    targets = salcl_targets(scores, np.array([4, 2]), 0.5)
    assert targets[0].tolist() == [0, 1, 1, 0, 0, 0]
    assert targets[1].tolist() == [1, 0, 0, 0, 0, 0]


def _toy(num_videos: int = 48, length: int = 8, salient: int = 2, clip_len: int = 4, side: int = 16, seed: int = 0):
    """Videos of noisy static clips; in `salient` clips per video a square of the class's colour moves.

    Returns clips [N, L, 3, F, H, W], one-hot labels [N, 2], relevance [N, L] (1 on salient clips) and an
    f-like true-class score (high on salient clips) for the SAL objectives.
    """
    rng = np.random.default_rng(seed)
    clips = rng.normal(0, 0.3, size=(num_videos, length, 3, clip_len, side, side)).astype(np.float32)
    labels = np.zeros((num_videos, 2), dtype=np.float32)
    relevance = np.zeros((num_videos, length), dtype=np.float32)
    for n in range(num_videos):
        label = n % 2
        labels[n, label] = 1
        for t in rng.choice(length, size=salient, replace=False):
            relevance[n, t] = 1
            y = rng.integers(0, side - 5)
            for f in range(clip_len):
                x = 2 + 2 * f
                clips[n, t, :, f, y : y + 5, x : x + 5] = -1.5
                clips[n, t, label, f, y : y + 5, x : x + 5] = 2.0
        for t in np.flatnonzero(relevance[n] == 0):  # distractor: a static grey square
            y, x = rng.integers(0, side - 5, size=2)
            clips[n, t, :, :, y : y + 5, x : x + 5] = 1.0
    true_scores = 0.2 + 0.7 * relevance + rng.uniform(0, 0.05, size=relevance.shape)
    return torch.from_numpy(clips), labels, relevance, true_scores


@pytest.mark.parametrize("objective", ["ac", "sal_cl", "sal_rank"])
def test_each_objective_learns_saliency_better_than_random(objective):
    clips, labels, relevance, true_scores = _toy(num_videos=80, length=6)
    n, length = relevance.shape
    sampler = SaliencySampler(clip_len=4, num_classes=2, objective=objective, multilabel=False, input_size=8, width=8)
    inputs = torch.stack([sampler.inputs(clips[i]) for i in range(n)])
    lengths = np.full(n, length)
    train, test = slice(0, 64), slice(64, n)
    train_sampler(
        sampler,
        inputs[train],
        lengths[train],
        labels=labels[train],
        true_scores=true_scores[train],
        epochs=8,
        lr=1e-2,
        eta=1.0,
        salcl_fraction=2 / 6,
        seed=0,
        device=torch.device("cpu"),
        batch_videos=8,
        log=lambda _: None,
    )
    saliency = score_all(sampler, inputs[test], lengths[test], torch.device("cpu"))
    rel = relevance[test]
    k = 2
    picked = np.mean([rel[i, top_k(saliency[i], k)].mean() for i in range(len(rel))])
    chance = np.mean([rel[i, random_timesteps(length, k, video_rng(0, str(i)))].mean() for i in range(len(rel))])
    assert picked > 0.8 and picked > chance + 0.4, (objective, picked, chance)


def test_cheap_inputs_are_low_resolution_frame_and_differences():
    clips = torch.zeros(2, 3, 4, 32, 32)
    clips[:, :, 2:] = 1.0  # a change between frames 1 and 2
    x = CheapClipInputs(8)(clips)
    assert x.shape == (2, 3 + 3, 8, 8)
    assert torch.allclose(x[:, :3], torch.ones(2, 3, 8, 8))  # middle frame (index 2)
    assert torch.allclose(x[:, 4], torch.ones(2, 8, 8)) and float(x[:, [3, 5]].abs().sum()) == 0.0


# ---------------------------------------------------------------------------------------------
# On the real tiny benchmark, through the trial's own construction path
# ---------------------------------------------------------------------------------------------
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from harness.compute import count_flops, verify_accounting  # noqa: E402
from harness.params import resolve_params  # noqa: E402
from harness.registry import BACKBONES, DATASETS, METHODS  # noqa: E402
from harness.settings import EVALUATION_PARAMS  # noqa: E402
from harness.stages import StageStore  # noqa: E402
from harness.trial import build_context  # noqa: E402

R3D = {"name": "r3d_18", "params": {"width": 8, "input_size": 32}}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> StageStore:
    return StageStore(tmp_path_factory.mktemp("stages"))


def make_method(root: Path, store: StageStore, params: dict, backbone: dict = R3D):
    cfg = {
        "dataset": {
            "name": "skim-digits",
            "params": resolve_params(
                DATASETS.get("skim-digits").params, {"size": "tiny", "variant": "longrange", "root": str(root)}
            ),
        },
        "backbone": {
            "name": backbone["name"],
            "params": resolve_params(BACKBONES.get(backbone["name"]).params, backbone["params"]),
        },
        "method": {
            "name": "scsampler",
            "params": resolve_params(METHODS.get("scsampler").params, {"epochs": 2, **params}),
        },
        "seed": 0,
        "evaluation": resolve_params(EVALUATION_PARAMS, {"device": "cpu", "heavy_epochs": 2}),
    }
    ctx, method = build_context(cfg, store, root.parent / "work", log=lambda _: None)
    method.fit(ctx.dataset.split("train"))
    return ctx, method


def test_sampler_is_at_least_ten_times_cheaper_than_the_heavy_classifier(tiny_root, store):
    ctx, method = make_method(tiny_root, store, {"objective": "ac", "k": 2})
    components = method.components()
    costs = {name: count_flops(c.module, c.make_inputs(), dict(c.config)).gflops for name, c in components.items()}
    assert costs["sampler"] > 0 and costs["heavy"] >= 10 * costs["sampler"], costs
    assert components["sampler"].role == "selection" and components["heavy"].role == "recognition"


@pytest.mark.parametrize("objective", ["ac", "sal_cl", "sal_rank"])
def test_scsampler_end_to_end_and_accounting_matches_brute_force(tiny_root, store, objective):
    ctx, method = make_method(tiny_root, store, {"objective": objective, "k": 2})
    records = ctx.dataset.split("test")
    prediction = method.predict(records[0])
    length = prediction.extras["num_timesteps"]
    saliency = method.saliency[method.table.row(records[0].video_id), :length]  # extras hold it rounded: ties
    assert np.allclose(prediction.extras["saliency"], saliency, atol=1e-4)
    assert prediction.usage.total("sampler") == length and prediction.usage.total("heavy") == 2
    assert sorted(prediction.extras["timesteps"]) == sorted(top_k(saliency, 2).tolist())
    # the sampler reads every frame of every clip it scores: a full decode, however few clips f sees
    assert prediction.decoded == clip_frames(range(length), method.table.clip_len)
    assert np.isclose(prediction.scores.sum(), 1.0)
    pairs = verify_accounting(method, records[:10])
    assert len(pairs) == 10
    for accounted, brute in pairs:
        assert brute > 0 and abs(accounted - brute) <= 0.01 * brute, (objective, accounted, brute)


def test_sweeping_k_reuses_one_trained_sampler_and_cross_classifier_labels(tiny_root, store):
    ctx2, method2 = make_method(tiny_root, store, {"objective": "sal_rank", "k": 2})
    ctx4, _ = make_method(tiny_root, store, {"objective": "sal_rank", "k": 4})
    assert ctx2.stages_used["scsampler_sampler"] == ctx4.stages_used["scsampler_sampler"]
    # Table 3: pseudo labels from another classifier (a 2-D ResNet) train another sampler
    cross, method = make_method(
        tiny_root,
        store,
        {"objective": "sal_rank", "k": 2, "labels_from_backbone": "resnet18", "labels_from_params": {"width": 8}},
    )
    assert cross.stages_used["scsampler_sampler"] != ctx2.stages_used["scsampler_sampler"]
    assert cross.stages_used["heavy_classifier"] == ctx2.stages_used["heavy_classifier"]  # f is unchanged
    assert cross.stages_used["heavy_classifier[resnet18]"] != ctx2.stages_used["heavy_classifier"]
    assert np.array_equal(method.table.heavy_logits, method2.table.heavy_logits)
    assert (
        len([p for p in (store.root / "heavy_classifier").iterdir() if p.is_dir() and not p.name.startswith(".")]) == 2
    )


def test_trained_sampler_depends_on_its_stage_key_only(tiny_root, store):
    """The sampler stage's content is a function of its key: not of how much of the global random stream
    ran before it in the process (the sampler-inputs extraction, a DataLoader, another trial)."""
    ctx, method = make_method(tiny_root, store, {"objective": "ac", "k": 2})
    first = {k: v.clone() for k, v in method.sampler.state_dict().items()}
    shutil.rmtree(store.root / "scsampler_sampler" / ctx.stages_used["scsampler_sampler"])
    torch.rand(1000)  # whatever ran before in this process
    _, again = make_method(tiny_root, store, {"objective": "ac", "k": 2})
    assert all(torch.equal(first[k], v) for k, v in again.sampler.state_dict().items())


def test_sampler_inputs_are_declared_sharded_stages(tiny_root, store):
    """The plan computes the sampler inputs once, before the trials: declared in ``stages()`` under the very
    keys ``fit`` reads, extracted shard by shard (an index, shard folders) and read memory-mapped."""
    ctx, method = make_method(tiny_root, store, {"objective": "sal_cl", "k": 2})
    declared = {r.name: r for r in method.stages()}
    for name in ("scsampler_inputs_test", "scsampler_sampler"):  # what fit read
        assert declared[name].key == ctx.stages_used[name], name
    for name in ("scsampler_inputs_train", "heavy_timesteps_train"):  # what the sampler was trained on
        assert (store.root / name / declared[name].key / "meta.json").exists(), name
    assert set(declared["scsampler_sampler"].after) == {
        declared["scsampler_inputs_train"].key,
        declared["heavy_timesteps_train"].key,
    }
    folder = store.root / "scsampler_inputs_test" / ctx.stages_used["scsampler_inputs_test"]
    assert (folder / "index.json").exists() and (folder / "shard_00000" / "inputs.npy").exists()
    assert isinstance(method._inputs("test").row("inputs", 0), np.memmap)
