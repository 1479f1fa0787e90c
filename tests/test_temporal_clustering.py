"""Full-video temporal clustering (seed 004): the clustering rules and the layer, then the method."""

from __future__ import annotations

import pytest
import torch

from methods.temporal_clustering_layers import (
    TemporalClustering,
    average_clusters,
    cluster_ids,
    cluster_starts,
    hamming_neighbours,
    starts_to_ids,
)

# Neighbour Hamming distances of 10 frames f1..f10 drawn so that, as in seed 004's Figure 3 (g = 3),
# cumulative clustering gives (f1-f4)(f5-f7)(f8-f10) and slope clustering (f1-f6)(f7)(f8-f10).
FIGURE3 = [2, 2, 2, 3, 2, 4, 4, 2, 2]


def test_figure3_cumulative():
    assert cluster_ids(FIGURE3, 3) == [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert cluster_starts(FIGURE3, 3, "cumulative") == [0, 4, 7]


def test_figure3_slope():
    assert cluster_starts(FIGURE3, 3, "slope") == [0, 6, 7]


def test_uniform_ignores_content():
    assert cluster_starts(FIGURE3, 3, "uniform") == [0, 3, 6]


def test_first_frame_is_clamped_to_cluster_one():
    assert cluster_ids([5, 0, 0], 2)[0] == 1  # ceil(0) = 0 would name a cluster that does not exist


@pytest.mark.parametrize("rule", ["cumulative", "slope", "uniform"])
def test_identical_frames_give_uniform_segments(rule):
    frames = torch.rand(1, 4, 5, 5).repeat(10, 1, 1, 1)
    distances = hamming_neighbours(frames)
    assert distances.tolist() == [0] * 9  # C_N = 0
    assert cluster_starts(distances, 3, rule) == [0, 3, 6]


def test_empty_clusters_are_refilled():
    # one jump of 100 crosses both thresholds: the paper's ids are 1,1,1,3,3,3,3 and cluster 2 is empty
    assert cluster_ids([0, 0, 100, 0, 0, 0], 3) == [1, 1, 1, 3, 3, 3, 3]
    assert cluster_starts([0, 0, 100, 0, 0, 0], 3, "cumulative") == [0, 3, 5]


def test_slope_with_few_positive_jumps_is_refilled():
    # one positive jump gives [0, 2]; the longest cluster is then halved until there are g = 4
    assert cluster_starts([0, 5, 0, 0, 0], 4, "slope") == [0, 1, 2, 4]


@pytest.mark.parametrize("rule", ["cumulative", "slope", "uniform"])
def test_short_video_repeats_its_last_frame(rule):
    x = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 2, 2, 2)
    out, starts = TemporalClustering(5, rule)(x)
    assert starts == [0, 1, 2, 2, 2]
    assert out[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0, 2.0, 2.0]


def test_hamming_distance_of_binarised_frames():
    x = torch.tensor([[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.1]])
    assert hamming_neighbours(x).tolist() == [1, 2]  # bits 1010 -> 1000 -> 1101


@pytest.mark.parametrize("rule", ["cumulative", "slope", "uniform"])
def test_clusters_partition_every_frame_and_average_them(rule):
    torch.manual_seed(0)
    x = torch.relu(torch.randn(23, 3, 4, 4)).requires_grad_()
    layer = TemporalClustering(5, rule)
    out, starts = layer(x)
    assert out.shape == (5, 3, 4, 4) and starts[0] == 0 and starts == sorted(set(starts))
    ids = starts_to_ids(starts, 23)
    for j in range(5):
        assert torch.allclose(out[j], x[ids == j].mean(dim=0))
    out.sum().backward()
    assert (x.grad.flatten(1).abs().sum(dim=1) > 0).all()  # no frame left behind: each gets a gradient


def test_cumulative_cuts_at_content_changes():
    """Three scenes of 6, 10 and 4 frames: cumulative and slope find the scene cuts, uniform does not."""
    torch.manual_seed(1)
    scenes = [torch.relu(torch.randn(1, 8, 4, 4)).expand(n, -1, -1, -1) for n in (6, 10, 4)]
    x = torch.cat(scenes)
    assert cluster_starts(hamming_neighbours(x), 3, "cumulative") == [0, 6, 16]
    assert cluster_starts(hamming_neighbours(x), 3, "slope") == [0, 6, 16]
    assert cluster_starts(hamming_neighbours(x), 3, "uniform") != [0, 6, 16]


def test_average_clusters_repeated_start():
    x = torch.arange(4.0).view(4, 1)
    assert average_clusters(x, [0, 2, 3, 3]).flatten().tolist() == [0.5, 2.0, 3.0, 3.0]


def test_videos_of_different_lengths_never_meet_padding():
    """ClusterNet batches equal lengths only: each video's logits equal those it gets alone."""
    from harness.registry import BACKBONES
    from methods.temporal_clustering import ClusterNet

    torch.manual_seed(2)
    net = ClusterNet(BACKBONES.get("tsm_resnet18")(num_classes=3, width=4), 1, 4, "cumulative").eval()
    videos = [torch.randn(3, t, 32, 32) for t in (9, 17, 9, 3)]
    with torch.no_grad():
        batched, starts = net(videos)
        alone = torch.cat([net([v])[0] for v in videos])
    assert torch.allclose(batched, alone, atol=1e-5)
    assert [len(s) for s in starts] == [4, 4, 4, 4] and starts[3] == [0, 1, 2, 2]


# -- the method on the real built-in benchmark (size tiny) ----------------------------------------
from tests.test_sgs import build_trial  # noqa: E402


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("clustering")


@pytest.mark.parametrize("rule", ["cumulative", "slope"])
def test_clustering_method_logs_boundaries_and_accounts_exactly(store_dir, tiny_root, rule):
    from harness.compute import verify_accounting

    ctx, method = build_trial(
        store_dir,
        tiny_root,
        "temporal_clustering",
        {"g": 4, "rule": rule, "epochs": 1, "frame_stride": 2},
        backbone="tsm_resnet18",
    )
    method.fit(ctx.dataset.split("train"))
    method.eval_mode()
    test = ctx.dataset.split("test")
    with torch.inference_mode():
        predictions = method.predict_batch(test)
    for p, record in zip(predictions, test):
        b = p.extras["cluster_boundaries"]
        assert len(b) == 4 and b[0] == 0 and b == sorted(b) and b[-1] < record.num_frames
        assert all(x % 2 == 0 for x in b)  # frame indices of the strided frames actually used
        assert p.extras["train_memory_mb"] > 0
        assert sorted(n for n, _, _ in p.usage.items()) == ["post", "pre"]
    pairs = verify_accounting(method, test[:10])
    assert len(pairs) == 10
    for accounted, brute in pairs:
        assert accounted == pytest.approx(brute, rel=0.01)


def test_training_memory_grows_with_the_video_only_before_the_clusters(store_dir, tiny_root):
    """Table 1's memory column, as behaviour: with clustering, every frame's activations before the
    clusters are kept for backward (memory grows with the video's length, no frame left behind),
    but the stages after them run on g maps whatever the length (they grow less than on all frames),
    and the clusters are smaller than the video (less than all frames at the same length)."""
    memory = {}
    for mode in ("cluster", "all_frames"):
        _, method = build_trial(
            store_dir, tiny_root, "temporal_clustering", {"g": 4, "mode": mode}, backbone="tsm_resnet18"
        )
        method._hw, method.net = (32, 32), method._new_net().eval()
        memory[mode] = {t: method.train_memory_mb(t) for t in (8, 16, 32)}
    cluster, full = memory["cluster"], memory["all_frames"]
    grow_cluster = [cluster[16] - cluster[8], cluster[32] - cluster[16]]
    grow_full = [full[16] - full[8], full[32] - full[16]]
    assert all(g > 0 for g in grow_cluster), memory  # the early layers train on every frame
    assert all(c < 0.9 * f for c, f in zip(grow_cluster, grow_full)), memory  # the rest on g maps
    assert grow_cluster[1] == pytest.approx(2 * grow_cluster[0], rel=0.05), memory  # linear in T
    assert all(cluster[t] < full[t] for t in (8, 16, 32)), memory
