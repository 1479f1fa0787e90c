"""SGS / ATFR (seed 002): the layer's mechanism on random tensors, then the method end to end."""

from __future__ import annotations

import pytest
import torch

from harness.backbones.base import run_grouped
from methods.sgs_layers import ATFRNet, SimilarityGuidedSampling, bin_positions, kernel_weights, sample_bins


def piecewise_video(segments: int, frames: int = 16, channels: int = 6, size: int = 3, seed: int = 0) -> torch.Tensor:
    """[1, C, T, H, W] activations made of ``segments`` constant runs of random maps."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(segments, channels, size, size, generator=g)
    owner = torch.arange(frames) * segments // frames
    return maps[owner].permute(1, 0, 2, 3).unsqueeze(0)


# -- the sampling function: eq. 4-8 ---------------------------------------------------------------
def test_gradcheck_linear_sampling_in_double():
    features = torch.randn(1, 2, 5, 2, 2, dtype=torch.double, requires_grad=True)
    # bin coordinates p = 4 * delta: 0.52, 2.84, 1.68, 3.6, 1.08 -- away from centres and edges
    delta = torch.tensor([[0.13, 0.71, 0.42, 0.90, 0.27]], dtype=torch.double, requires_grad=True)
    delta_max = torch.ones(1, 1, dtype=torch.double)
    assert torch.autograd.gradcheck(
        lambda f, d: sample_bins(f, d, 4, "linear", delta_max=delta_max)[0], (features, delta), eps=1e-6, atol=1e-6
    )


def test_linear_kernel_gradient_is_eq8():
    """dO_b/dDelta_t = I_t / gamma just below the centre, -I_t / gamma just above, 0 outside."""
    bins, delta_max = 4, torch.ones(1, 1, dtype=torch.double)
    gamma = 1.0 / (2 * bins)
    feature = torch.full((1, 1, 1, 1, 1), 3.0, dtype=torch.double)
    for offset, slope in ((-0.3, 1.0), (0.0, 1.0), (0.3, -1.0)):
        centre = 3 * gamma  # beta_2 = (2*2 - 1) gamma
        delta = torch.tensor([[centre + offset * gamma]], dtype=torch.double, requires_grad=True)
        out, occupied = sample_bins(feature, delta, bins, "linear", delta_max=delta_max)
        assert occupied.tolist() == [[False, True, False, False]]
        assert out[0, 0, 1, 0, 0].item() == pytest.approx(3.0 * (1 - abs(offset)))
        (grad,) = torch.autograd.grad(out[0, 0, 1].sum(), delta)
        assert grad.item() == pytest.approx(3.0 * slope / gamma)
        (other,) = torch.autograd.grad(
            sample_bins(feature, delta, bins, delta_max=delta_max)[0][0, 0, 2].sum(), delta, allow_unused=True
        )
        assert other is None or other.item() == 0.0


def test_bins_follow_the_paper_centres_and_widths():
    delta = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])  # Delta_max = 8, B = 4: gamma = 1
    p = bin_positions(delta, 4)
    # centres (2b - 1) gamma = 1, 3, 5, 7 -> p = 0.5, 1.5, 2.5, 3.5; the extremes sit on the flat ends
    assert p.tolist() == [[0.5, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.5]]
    w = kernel_weights(p, 4, "linear")[0]
    assert w[:, 3].tolist() == [0.0, 1.0, 0.0, 0.0]  # Delta = 3 = beta_2: full weight in bin 2 only
    assert w[:, 2].tolist() == [0.0, 0.0, 0.0, 0.0]  # Delta = 2: on the edge between bins 1 and 2
    assert w[:, 8].tolist() == [0.0, 0.0, 0.0, 1.0]  # the Delta_max frame is kept, not dropped
    hard = kernel_weights(p, 4, "kronecker")[0]
    assert torch.equal(hard.sum(dim=1), torch.ones(4))  # Kronecker: every bin is an average
    normalized = kernel_weights(p, 4, "linear_normalized")[0]
    assert torch.allclose(normalized.sum(dim=1), torch.ones(4))  # official option: weighted averages


@pytest.mark.parametrize("magnitude", ["mean_distance", "norm", "cumulative"])
@pytest.mark.parametrize("kernel", ["linear", "kronecker"])
@pytest.mark.parametrize("train", [True, False])
def test_identical_maps_collapse_to_one_bin(magnitude, kernel, train):
    torch.manual_seed(0)
    layer = SimilarityGuidedSampling(6, kernel=kernel, magnitude=magnitude).train(train)
    x = piecewise_video(1)
    out = layer(x)
    assert out.bins_kept == [1]
    expected = x[0, :, :1] * (x.shape[2] if kernel == "linear" else 1)  # linear: sum; Kronecker: average
    assert torch.allclose(out.maps[0], expected, atol=1e-5)


@pytest.mark.parametrize("magnitude", ["mean_distance", "norm", "cumulative"])
def test_all_zero_input_is_guarded(magnitude):
    layer = SimilarityGuidedSampling(4, magnitude=magnitude)
    x = torch.zeros(2, 4, 8, 2, 2, requires_grad=True)
    out = layer(x)
    assert out.bins_kept == [1, 1]
    loss = sum(m.sum() for m in out.maps) + out.delta.sum()
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)


def test_bins_rise_with_temporal_variety():
    torch.manual_seed(1)
    layer = SimilarityGuidedSampling(6).eval()
    kept = {}
    for segments in (1, 2, 4, 16):
        kept[segments] = [layer(piecewise_video(segments, seed=s)).bins_kept[0] for s in range(6)]
        assert max(kept[segments]) <= segments  # a constant run can never occupy two bins
    means = [sum(kept[k]) / len(kept[k]) for k in (1, 2, 4, 16)]
    assert means[0] == 1 and means == sorted(means) and means[3] > means[2] > means[0], kept


def test_fewer_inference_bins_give_fewer_maps():
    torch.manual_seed(2)
    layer = SimilarityGuidedSampling(6).eval()
    x = piecewise_video(16)
    kept = [layer(x, bins=b).bins_kept[0] for b in (16, 8, 4, 2)]
    assert kept == sorted(kept, reverse=True) and kept[-1] <= 2 and kept[0] > kept[-1]


def test_time_order_feeds_the_kept_bins_in_temporal_order():
    """``order: time`` (ablation): the maps after SGS follow the mean frame index of their bins; the
    paper's magnitude order, with the same weights, generally does not."""
    torch.manual_seed(6)
    x = torch.cat([piecewise_video(8, frames=16, seed=s) for s in range(4)])
    layer = SimilarityGuidedSampling(6, order="time").eval()
    centres = {}
    for order in ("time", "magnitude"):
        layer.order = order
        out = layer(x)
        weights = kernel_weights(bin_positions(out.delta, 16), 16)  # [N, B, T]
        centre = (weights * torch.arange(16.0)).sum(dim=2) / weights.sum(dim=2).clamp_min(1e-6)
        centres[order] = [centre[i, out.order[i, :k]].tolist() for i, k in enumerate(out.bins_kept)]
    assert all(c == sorted(c) for c in centres["time"])
    assert any(c != sorted(c) for c in centres["magnitude"])


def test_cumulative_magnitude_bins_runs_of_consecutive_frames_in_time_order():
    """``magnitude: cumulative``: each kept bin holds consecutive frames and the bins reach the layers
    after SGS in temporal order; the official code's magnitude, on the same maps, mixes frames far apart."""
    torch.manual_seed(7)
    x = torch.cat([piecewise_video(16, frames=16, seed=s) for s in range(6)])
    runs = {}
    for magnitude in ("cumulative", "mean_distance"):
        layer = SimilarityGuidedSampling(6, magnitude=magnitude).eval()
        out = layer(x)
        p = bin_positions(out.delta, 16)
        rank = torch.argsort(out.order, dim=1)  # position of each bin after SGS
        runs[magnitude] = [rank[i, p[i].floor().long().clamp(0, 15)].tolist() for i in range(len(x))]
    # frame t's position after SGS never decreases with t: bins are runs, in time order
    assert all(r == sorted(r) for r in runs["cumulative"]) and all(len(set(r)) > 4 for r in runs["cumulative"])
    assert any(r != sorted(r) for r in runs["mean_distance"])


def test_similarity_network_is_trained_through_the_bins():
    torch.manual_seed(3)
    layer = SimilarityGuidedSampling(6)
    x = torch.randn(2, 6, 8, 3, 3)
    out = layer(x)
    sum((m**2).sum() for m in out.maps).backward()
    first = layer.similarity[0].weight.grad
    assert first is not None and first.abs().sum() > 0


def test_run_grouped_keeps_order_and_never_pads():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x.sum(dim=(1, 2, 3, 4)).unsqueeze(1)

    maps = [torch.full((2, t, 1, 1), float(i)) for i, t in enumerate([3, 1, 3, 2])]
    out = run_grouped(Probe(), maps)
    assert out.flatten().tolist() == [0.0, 2.0, 12.0, 12.0]
    assert sorted(seen) == [(1, 2, 1, 1, 1), (1, 2, 2, 1, 1), (2, 2, 3, 1, 1)]


HOSTS = {
    "r3d_18": {"width": 4},
    "modified_r3d_18": {"width": 8, "stem_width": 2},
    "x3d_s": {"width_factor": 0.5, "depth_factor": 0.5},
}


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_no_padding_reaches_the_classifier(host):
    """In a batch whose videos keep different B', one padded forward gives each video the logits it
    gets alone (batch norm, temporal convolutions, squeeze-excitation and pooling all masked)."""
    from harness.registry import BACKBONES

    torch.manual_seed(4)
    backbone = BACKBONES.get(host)(num_classes=3, **HOSTS[host])
    x = torch.cat([piecewise_video(k, frames=8, channels=3, size=32, seed=k) for k in (1, 8, 2, 8)])
    net = ATFRNet(backbone, 1, x[:1])
    net.train()
    for _ in range(3):  # running statistics that are not the initial ones
        net(x + torch.randn_like(x))
    net.eval()
    with torch.no_grad():
        batched, result = net(x)
        alone = torch.cat([net(x[i : i + 1])[0] for i in range(len(x))])
    assert len(set(result.bins_kept)) > 1, result.bins_kept
    assert torch.allclose(batched, alone, atol=1e-5)


def test_training_forward_is_one_call_whose_statistics_ignore_padding():
    """Training runs the layers after SGS once per batch (not once per B' group: the batch-norm
    collapse of issue 13), and extra zero padding changes neither the logits nor the running
    statistics: batch norm and pooling see the real bins only."""
    from harness.registry import BACKBONES

    torch.manual_seed(5)
    x = torch.cat([piecewise_video(k, frames=8, channels=3, size=16, seed=k) for k in (1, 8, 2, 8)])
    net = ATFRNet(BACKBONES.get("r3d_18")(num_classes=3, width=4), 1, x[:1]).train()
    calls = []
    net.split.post.register_forward_hook(lambda *_: calls.append(1))
    result = net.sgs(net.split.pre(x))
    assert len(set(result.bins_kept)) > 1
    start = {k: v.clone() for k, v in net.state_dict().items()}
    tight = net.post_padded(result.padded, result.bins_kept)
    tight_stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net.load_state_dict(start)
    wide = net.post_padded(torch.nn.functional.pad(result.padded, (0, 0, 0, 0, 0, 5)), result.bins_kept)
    assert calls == [1, 1]
    assert torch.allclose(tight, wide, atol=1e-5)
    for key, value in tight_stats.items():
        assert torch.allclose(net.state_dict()[key], value, atol=1e-5), key


# -- the method on the real built-in benchmark (size tiny) ----------------------------------------
def build_trial(tmp_path, tiny_root, method: str, params: dict, backbone: str = "r3d_18", width: int = 4):
    from conftest import tiny_trial

    return tiny_trial(
        tiny_root,
        method,
        params,
        store=tmp_path / "stages",
        workdir=tmp_path,
        backbone=backbone,
        backbone_params={"width": width},
    )


@pytest.fixture(scope="module")
def trained_sgs(tmp_path_factory, tiny_root):
    tmp = tmp_path_factory.mktemp("sgs")
    ctx, method = build_trial(tmp, tiny_root, "sgs", {"frames": 8, "epochs": 1, "batch_size": 8})
    train, test = ctx.dataset.split("train"), ctx.dataset.split("test")
    method.fit(train)
    return tmp, ctx, method, train, test


def test_sgs_predicts_with_per_video_bins(trained_sgs):
    _, ctx, method, _, test = trained_sgs
    method.eval_mode()
    with torch.no_grad():
        predictions = method.predict_batch(test)
    bins = [p.extras["bins"] for p in predictions]
    assert all(1 <= b <= 8 for b in bins) and len(set(bins)) > 1
    for p in predictions:
        assert p.usage.items() == [
            ("post", {"bins": p.extras["bins"]}, 1),
            ("pre", {"frames": 8}, 1),
            ("sgs", {"bins": 8, "frames": 8}, 1),
        ]
        assert len(p.extras["bin_of_frame"]) == 8 and max(p.extras["bin_of_frame"]) < p.extras["bins"]
        assert abs(p.scores.sum() - 1) < 1e-5


def test_batched_predictions_are_the_traced_paths(trained_sgs):
    """The forward a trial runs (``predict_batch``: one padded batch) gives every video the scores of
    the path the FLOP proof traces for it (its B' bins alone), so the accounting is of what ran."""
    from harness.toolkit.selection import class_probabilities as class_scores

    _, ctx, method, _, test = trained_sgs
    method.eval_mode()
    with torch.no_grad():
        predictions = method.predict_batch(test[:12])
        for record, prediction in zip(test[:12], predictions):
            module, inputs = method.trace_video(record)
            traced = class_scores(module(*inputs), ctx.dataset.multilabel)[0].numpy()
            assert traced == pytest.approx(prediction.scores, abs=1e-5), record.video_id


def test_sgs_model_is_trained_once_for_all_inference_budgets(trained_sgs, tiny_root):
    """A second budget reuses the trained model (same stage, same weights) and fewer bins at test
    time cost fewer GFLOPs on the same videos (Table A.4)."""
    from harness.compute import account

    tmp, _, first, train, test = trained_sgs
    ctx, other = build_trial(tmp, tiny_root, "sgs", {"frames": 8, "epochs": 1, "batch_size": 8, "bins_test": 2})
    other.fit(train)
    assert ctx.stages_used["sgs_model"] == first.ctx.stages_used["sgs_model"]
    assert all(torch.equal(a, b) for a, b in zip(first.net.state_dict().values(), other.net.state_dict().values()))
    first.eval_mode()
    other.eval_mode()
    with torch.no_grad():
        many, few = first.predict_batch(test), other.predict_batch(test)
    cost = [account(m.components(), [p.usage for p in ps]).per_video for m, ps in ((first, many), (other, few))]
    kept = [(a.extras["bins"], b.extras["bins"]) for a, b in zip(many, few)]
    assert any(b < a for a, b in kept)
    assert (cost[1] < cost[0]).all()  # fewer bins to sample into, and never more maps after SGS


def test_base_mode_is_the_registered_backbone_on_all_frames(trained_sgs, tiny_root):
    """``mode: base`` scores and costs what a freshly built backbone of the same configuration does
    on the same T frames (an independent module, not the one the accounting counts)."""
    from harness.backbones import build_backbone
    from harness.compute import account, brute_force_gflops
    from harness.toolkit.selection import class_probabilities as class_scores

    params = {"mode": "base", "frames": 8, "epochs": 1, "batch_size": 8}
    ctx, method = build_trial(trained_sgs[0], tiny_root, "sgs", params)
    method.fit(ctx.dataset.split("train"))
    method.eval_mode()
    fresh = build_backbone(ctx.backbone["name"], ctx.backbone["params"], ctx.dataset.num_classes)
    fresh.load_state_dict(method.net.state_dict())
    fresh.eval()
    for record in ctx.dataset.split("test")[:3]:
        prediction = method.predict(record)
        x, _ = method._clips(ctx.frames("test"), [record.video_id], None)
        assert x.shape[2] == 8 and prediction.usage.items() == [("backbone", {"frames": 8}, 1)]
        with torch.no_grad():
            assert class_scores(fresh(x), False)[0].numpy() == pytest.approx(prediction.scores, abs=1e-5)
        accounted = float(account(method.components(), [prediction.usage]).per_video[0])
        assert accounted == pytest.approx(brute_force_gflops(fresh, (x,)), rel=1e-6)


def test_init_base_starts_atfr_from_the_trained_base_network(tmp_path, tiny_root, monkeypatch):
    """``init: base``: the ATFR trial's stage builds on the ``mode: base`` network's stage (the one a base row
    trains, not trained again), and fine-tuning starts with every layer before and after SGS equal to that
    network's (parameters and batch-norm buffers); the similarity network is ATFR's own."""
    import methods.sgs as sgs_module
    from harness.backbones.base import SplitVideoNet

    common = {"frames": 8, "epochs": 1, "batch_size": 8, "base_epochs": 1}
    base_ctx, base = build_trial(tmp_path, tiny_root, "sgs", {**common, "mode": "base"})
    base.fit(base_ctx.dataset.split("train"))

    start: dict[str, torch.Tensor] = {}
    real = sgs_module.train_on_videos

    def spy(ctx, net, *args):  # the base network is in the store already: only the fine-tuning trains here
        start.update({k: v.detach().clone() for k, v in net.state_dict().items()})
        real(ctx, net, *args)

    monkeypatch.setattr(sgs_module, "train_on_videos", spy)
    ctx, atfr = build_trial(tmp_path, tiny_root, "sgs", {**common, "init": "base", "lr": 1e-3})
    first, own = atfr.stages()
    assert first.key == base.stages()[0].key and first.key in own.after
    assert own.key != build_trial(tmp_path, tiny_root, "sgs", common)[1].stages()[0].key
    atfr.fit(ctx.dataset.split("train"))
    assert ctx.stages_used["sgs_base"] == base_ctx.stages_used["sgs_model"]  # the base row's network, reused

    expected = SplitVideoNet(base.net, atfr.net.split.after_stage).state_dict()
    split = {k.removeprefix("split."): v for k, v in start.items() if k.startswith("split.")}
    assert split.keys() == expected.keys() and len(start) > len(split)  # + the similarity network
    for key, value in expected.items():
        assert torch.equal(split[key], value.cpu()), key
    tuned = atfr.net.state_dict()
    assert any(
        not torch.equal(tuned[f"split.{k}"].cpu(), v.cpu()) for k, v in expected.items() if v.is_floating_point()
    )

    start.clear()  # the control, mode=base with init=base: the whole base network, trained on
    control_ctx, control = build_trial(tmp_path, tiny_root, "sgs", {**common, "mode": "base", "init": "base"})
    control.fit(control_ctx.dataset.split("train"))
    assert control_ctx.stages_used["sgs_base"] == base_ctx.stages_used["sgs_model"]
    assert start.keys() == base.net.state_dict().keys()
    assert all(torch.equal(start[k], v.cpu()) for k, v in base.net.state_dict().items())
