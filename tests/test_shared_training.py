"""The one training loop (``harness.toolkit.training.train_network``) behind the shared clip
classifiers (items = clips grouped by video, a few per video per epoch) and the in-network methods
(items = videos): each epoch's batches, the labels they are scored against, and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.data.bank import load_frame_bank
from harness.data.streaming import BankFrames, clip_requests
from harness.registry import DATASETS
from harness.stages import StageStore
from harness.toolkit.training import train_network, train_streamed


def _problem(n: int = 48, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen)
    cls = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()  # four quadrants
    return x, torch.eye(4)[cls]


def test_the_loop_learns_the_items_own_labels():
    x, labels = _problem()
    net = nn.Linear(2, 4)
    train_network(
        net,
        lambda idx, _rng: net(x[torch.from_numpy(idx)]),
        labels,
        epochs=40,
        batch_size=8,
        lr=0.1,
        seed=0,
        multilabel=False,
        log=lambda _: None,
    )
    assert not net.training
    with torch.no_grad():
        accuracy = float((net(x).argmax(1) == labels.argmax(1)).float().mean())
    assert accuracy >= 0.95, accuracy


def test_each_epoch_takes_per_group_items_of_every_group_and_is_seeded():
    x, labels = _problem(30)
    groups = np.repeat(np.arange(6), 5)  # 6 videos of 5 clips
    seen: list[np.ndarray] = []

    def run(seed: int) -> list[torch.Tensor]:
        net = nn.Linear(2, 4)

        def step(idx: np.ndarray, _rng: np.random.Generator) -> torch.Tensor:
            seen.append(idx.copy())
            return net(x[torch.from_numpy(idx)])

        torch.manual_seed(123)  # the same initial weights; the loop reseeds before training
        train_network(
            net,
            step,
            labels,
            epochs=3,
            batch_size=4,
            lr=0.05,
            seed=seed,
            multilabel=False,
            groups=groups,
            per_group=2,
            log=lambda _: None,
        )
        return [p.detach().clone() for p in net.parameters()]

    first = run(0)
    epochs = [np.concatenate(seen[i : i + 3]) for i in range(0, 9, 3)]  # 12 items per epoch: 3 batches of 4
    assert len(seen) == 9
    for items in epochs:
        assert np.bincount(groups[items], minlength=6).tolist() == [2] * 6 and len(set(items.tolist())) == 12
    assert len({tuple(sorted(e.tolist())) for e in epochs}) > 1  # a new draw every epoch
    seen.clear()
    assert all(torch.equal(a, b) for a, b in zip(first, run(0)))  # the seed decides everything


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_streamed_training_runs_under_autocast_with_channels_last_on_cuda(tiny_root):
    """On CUDA the loop trains in bfloat16 autocast on channels-last clips and weights (not in float32)."""
    ds = DATASETS.get("skim-digits")(size="tiny", variant="longrange", root=str(tiny_root))
    frames = BankFrames(load_frame_bank(ds, "train", StageStore(tiny_root.parent / "gpu-stages")))
    net = nn.Sequential(nn.Conv3d(3, 4, 3), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, ds.num_classes)).cuda()
    seen = []

    def forward(x, _mask):
        seen.append((torch.is_autocast_enabled(), x.is_contiguous(memory_format=torch.channels_last_3d)))
        return net(x)

    train_streamed(
        net,
        frames,
        lambda rng: clip_requests(frames, 4, 1, rng),
        forward,
        epochs=1,
        batch_size=8,
        lr=1e-3,
        seed=0,
        multilabel=False,
        num_classes=ds.num_classes,
        log=lambda _: None,
    )
    assert seen and all(autocast and layout for autocast, layout in seen)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
