"""SGS / ATFR (seed 002): the layer's mechanism on random tensors, then the method end to end."""
from __future__ import annotations

import pytest
import torch

from harness.backbones.base import run_grouped
from methods.sgs_layers import (ATFRNet, SimilarityGuidedSampling, kernel_weights, bin_positions,
                                sample_bins)


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
    assert torch.autograd.gradcheck(lambda f, d: sample_bins(f, d, 4, "linear", delta_max=delta_max)[0],
                                    (features, delta), eps=1e-6, atol=1e-6)


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
        (other,) = torch.autograd.grad(sample_bins(feature, delta, bins, delta_max=delta_max)[0][0, 0, 2].sum(), delta,
                                       allow_unused=True)
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


@pytest.mark.parametrize("magnitude", ["mean_distance", "norm"])
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


@pytest.mark.parametrize("magnitude", ["mean_distance", "norm"])
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


def test_similarity_network_is_trained_through_the_bins():
    torch.manual_seed(3)
    layer = SimilarityGuidedSampling(6)
    x = torch.randn(2, 6, 8, 3, 3)
    out = layer(x)
    sum((m ** 2).sum() for m in out.maps).backward()
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


def test_no_padding_reaches_the_classifier():
    """In a batch whose videos keep different B', each video's logits equal those it gets alone."""
    from harness.registry import BACKBONES

    torch.manual_seed(4)
    backbone = BACKBONES.get("r3d_18")(num_classes=3, width=4)
    x = torch.cat([piecewise_video(k, frames=8, channels=3, size=16, seed=k) for k in (1, 8, 2, 8)])
    net = ATFRNet(backbone, 1, x[:1]).eval()
    with torch.no_grad():
        batched, result = net(x)
        kept = result.bins_kept
        alone = torch.cat([net(x[i:i + 1])[0] for i in range(len(x))])
    assert len(set(kept)) > 1, kept
    assert torch.allclose(batched, alone, atol=1e-5)


# -- the method on the real built-in benchmark (size tiny) ----------------------------------------
def build_trial(tmp_path, tiny_root, method: str, params: dict, backbone: str = "r3d_18", width: int = 4):
    from conftest import tiny_trial

    return tiny_trial(tiny_root, method, params, store=tmp_path / "stages", workdir=tmp_path, backbone=backbone,
                      backbone_params={"width": width})


@pytest.fixture(scope="module")
def trained_sgs(tmp_path_factory, tiny_root):
    tmp = tmp_path_factory.mktemp("sgs")
    ctx, method = build_trial(tmp, tiny_root, "sgs", {"frames": 8, "epochs": 1, "batch_size": 8})
    train, test = ctx.dataset.split("train"), ctx.dataset.split("test")
    method.fit(train)
    return tmp, ctx, method, train, test


def test_sgs_predicts_with_per_video_bins_and_exact_accounting(trained_sgs):
    from harness.compute import account, verify_accounting

    _, ctx, method, _, test = trained_sgs
    method.eval_mode()
    with torch.no_grad():
        predictions = method.predict_batch(test)
    bins = [p.extras["bins"] for p in predictions]
    assert all(1 <= b <= 8 for b in bins)
    for p in predictions:
        post = [shape for name, shape, _ in p.usage.items() if name == "post"]
        assert p.usage.total("post") == 1 and post == [{"bins": p.extras["bins"]}]
        assert len(p.extras["bin_of_frame"]) == 8 and max(p.extras["bin_of_frame"]) < p.extras["bins"]
        assert abs(p.scores.sum() - 1) < 1e-5
    per_video = account(method.components(), [p.usage for p in predictions]).per_video
    assert len(set(bins)) == 1 or len(set(per_video.round(9))) > 1  # cost follows B'
    pairs = verify_accounting(method, test[:10])
    assert len(pairs) == 10
    for accounted, brute in pairs:
        assert accounted == pytest.approx(brute, rel=0.01)


def test_sgs_model_is_trained_once_for_all_inference_budgets(trained_sgs, tiny_root):
    tmp, _, first, train, test = trained_sgs
    ctx, other = build_trial(tmp, tiny_root, "sgs", {"frames": 8, "epochs": 1, "batch_size": 8, "bins_test": 2})
    other.fit(train)
    assert ctx.stages_used["sgs_model"] == first.ctx.stages_used["sgs_model"]
    other.eval_mode()
    with torch.no_grad():
        few = [p.extras["bins"] for p in other.predict_batch(test)]
    assert max(few) <= 2


def test_base_mode_runs_the_plain_backbone(trained_sgs, tiny_root):
    from harness.compute import verify_accounting

    ctx, method = build_trial(trained_sgs[0], tiny_root, "sgs", {"mode": "base", "frames": 8, "epochs": 1, "batch_size": 8})
    method.fit(ctx.dataset.split("train"))
    method.eval_mode()
    prediction = method.predict(ctx.dataset.split("test")[0])
    assert prediction.usage.items() == [("backbone", {"frames": 8}, 1)]
    (accounted, brute), = verify_accounting(method, ctx.dataset.split("test")[:1])
    assert accounted == pytest.approx(brute, rel=0.01)
