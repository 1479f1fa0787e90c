"""The one supervised training loop of the toolkit's networks, and a training-memory measure.

``train_network`` serves the shared clip classifiers (``harness.toolkit.stages``: items are clips,
grouped by video, a few random clips of every video per epoch) and the in-network methods (SGS,
temporal clustering: items are videos, each batch decoded by the method); ``train_streamed`` feeds
the same loop from the streaming loader (``harness.data.streaming``: DataLoader workers decode only
the frames each batch needs), so no split is ever held in memory. The recipe: AdamW (weight decay
1e-4), one-cycle learning rate (20% warm-up), cross-entropy on single-label data or BCE on
multi-label data, numpy permutations from ``seed``; on CUDA, bfloat16 autocast and channels-last.

``train_video_classifier`` trains a small classifier over tensors already in memory (per-timestep
features of whole videos, with their mask) with Adam at a fixed learning rate, the recipe of the
papers' video-level classifiers; ``classification_loss`` is its loss (CE, or BCE multi-label).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data.streaming import FrameRequests, drain_skipped, frame_loader
from harness.toolkit.clips import to_input
from harness.toolkit.selection import multi_hot


def epoch_order(groups: np.ndarray, per_group: int | None, rng: np.random.Generator) -> np.ndarray:
    """Shuffled item indices of one epoch: ``per_group`` random items of every group (None: all items)."""
    if per_group is None:
        return rng.permutation(len(groups))
    keys = rng.random(len(groups))
    order = np.lexsort((keys, groups))  # grouped, shuffled within each group
    sorted_groups = groups[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_groups, sorted_groups)
    return rng.permutation(order[rank < per_group])


Forward = Callable[[], torch.Tensor]  # a training-mode forward returning the logits [B, C] of one batch
EpochBatches = Callable[[np.random.Generator], Iterable[tuple[Forward, torch.Tensor]]]


def cuda_layout(x: torch.Tensor) -> torch.Tensor:
    """Channels-last (``channels_last_3d`` for clips [B, 3, F, H, W]) on CUDA; unchanged on CPU."""
    if x.device.type != "cuda" or x.dim() not in (4, 5):
        return x
    return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)


def channels_last(net: nn.Module) -> nn.Module:
    """Put ``net``'s 4-D and 5-D weights in channels-last layout when it lives on CUDA (a no-op on CPU)."""
    for p in net.parameters():
        if p.device.type == "cuda" and p.dim() in (4, 5):
            p.data = cuda_layout(p.data)
    return net


def train_loop(
    net: nn.Module,
    epoch_batches: EpochBatches,
    *,
    steps_per_epoch: int,
    epochs: int,
    lr: float,
    seed: int,
    multilabel: bool,
    log: Callable[[str], None] = print,
    what: str = "network",
) -> nn.Module:
    """The loop itself: ``epoch_batches(rng)`` yields (forward, multi-hot labels [B, C]) for one epoch.

    On CUDA the forward runs under ``torch.autocast`` (bfloat16: no loss scaling needed) with the
    network's weights in channels-last layout; on CPU in float32, as before.
    """
    rng = np.random.default_rng(int(seed))
    torch.manual_seed(int(seed))
    net.train()
    device = next(net.parameters()).device
    channels_last(net)
    steps = max(1, epochs * max(1, steps_per_epoch))
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.2)
    done = 0
    for epoch in range(epochs):
        total, correct, seen = 0.0, 0, 0
        for forward, y in epoch_batches(rng):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = forward()
            logits, y = logits.float(), y.to(logits.device)
            if multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, y)
            else:
                loss = F.cross_entropy(logits, y.argmax(1))
                correct += int((logits.argmax(1) == y.argmax(1)).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if done < steps:  # a skipped video can shorten an epoch, never lengthen it past the schedule
                schedule.step()
                done += 1
            total, seen = total + float(loss.detach()) * len(y), seen + len(y)
        seen = max(seen, 1)
        log(
            f"[{what}] epoch {epoch + 1}/{epochs} loss {total / seen:.3f}"
            + ("" if multilabel else f" train acc {100 * correct / seen:.1f}%")
        )
    return net.eval()


def train_network(
    net: nn.Module,
    step_logits: Callable[[np.ndarray, np.random.Generator], torch.Tensor],
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    multilabel: bool,
    groups: Sequence[int] | None = None,
    per_group: int | None = None,
    log: Callable[[str], None] = print,
    what: str = "network",
) -> nn.Module:
    """Train ``net`` on N items with multi-hot ``labels`` [N, C]; returns it in eval mode.

    ``step_logits(item indices, rng)`` builds the batch itself (from clips, or by decoding and
    sampling videos) and returns the logits [len(indices), C] of a training-mode forward.
    With ``groups`` (the group of each item, e.g. its video) and ``per_group``, each epoch trains on
    ``per_group`` random items of every group; otherwise on every item.
    """
    groups_ = np.arange(len(labels)) if groups is None else np.asarray(groups, dtype=np.int64)
    per_epoch = len(groups_) if per_group is None else int(np.minimum(np.bincount(groups_), per_group).sum())

    def epoch_batches(rng: np.random.Generator) -> Iterator[tuple[Forward, torch.Tensor]]:
        order = epoch_order(groups_, per_group, rng)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield (lambda idx=idx: step_logits(idx, rng)), labels[torch.from_numpy(idx)]

    return train_loop(
        net,
        epoch_batches,
        steps_per_epoch=(per_epoch + batch_size - 1) // batch_size,
        epochs=epochs,
        lr=lr,
        seed=seed,
        multilabel=multilabel,
        log=log,
        what=what,
    )


def loader_workers(frames: Any) -> int:
    """DataLoader decoding processes for ``frames``: none for the frame bank (a memory-mapped read is
    faster than starting processes); for streamed video files one per CPU the trial holds (its torch
    threads: ``resources.cpus``), at most 8, so that parallel trials do not oversubscribe a node."""
    return 0 if getattr(frames, "path", None) is not None else max(1, min(8, torch.get_num_threads()))


def video_requests(
    frames: Any, rows: Sequence[int], pick: Callable[[int, np.random.Generator], np.ndarray]
) -> Callable[[np.random.Generator], FrameRequests]:
    """Per-epoch requests for methods trained on whole videos: ``rows`` shuffled, and for each the frame
    indices ``pick(video length, rng)`` (e.g. TSN segments), decoded by the loader's workers."""

    def requests(rng: np.random.Generator) -> FrameRequests:
        order = [int(rows[i]) for i in rng.permutation(len(rows))]
        return FrameRequests(frames, order, [pick(int(frames.lengths[row]), rng) for row in order])

    return requests


def train_streamed(
    net: nn.Module,
    frames: Any,
    requests: Callable[[np.random.Generator], FrameRequests],
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    multilabel: bool,
    num_classes: int,
    log: Callable[[str], None] = print,
    what: str = "network",
    skipped: list[tuple[str, str]] | None = None,
) -> nn.Module:
    """``train_loop`` fed by the streaming loader: each epoch, ``requests(rng)`` lists the frames to decode
    (``harness.data.streaming.clip_requests`` or per-video samples), DataLoader workers decode them
    (``frame_loader``: bounded prefetch, pinned memory on CUDA) and ``forward(x, mask)`` gets the
    normalised batch ``[B, 3, T, H, W]`` on the network's device (channels-last on CUDA), zero padded
    to its longest request, and ``mask`` [B, T] (True on real frames). Labels are the videos'
    (``frames.labels[row]``); a video failing to decode is left out and listed in ``skipped``.
    """
    device = next(net.parameters()).device
    labels = torch.from_numpy(np.stack([multi_hot(label, num_classes) for label in frames.labels]))
    per_epoch = len(requests(np.random.default_rng(int(seed))))  # the count is the same every epoch
    skipped = [] if skipped is None else skipped

    def epoch_batches(rng: np.random.Generator) -> Iterator[tuple[Forward, torch.Tensor]]:
        loader = frame_loader(requests(rng), batch_size=batch_size, workers=loader_workers(frames), device=device)
        for batch in drain_skipped(iter(loader), skipped):
            x, mask = cuda_layout(to_input(batch["frames"], device)), batch["mask"].to(device)
            yield (lambda x=x, mask=mask: forward(x, mask)), labels[batch["rows"]]

    return train_loop(
        net,
        epoch_batches,
        steps_per_epoch=(per_epoch + batch_size - 1) // batch_size,
        epochs=epochs,
        lr=lr,
        seed=seed,
        multilabel=multilabel,
        log=log,
        what=what,
    )


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """CE on the single label, BCE on a multi-hot target."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, targets)
    return F.cross_entropy(logits, targets.argmax(1))


def train_video_classifier(
    net: nn.Module,
    features: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor,
    *,
    multilabel: bool,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    eps: float = 1e-4,
    what: str = "video classifier",
    log=print,
) -> nn.Module:
    """Adam on CE (BCE multi-label) over minibatches of whole videos, for a classifier of per-timestep
    features called as ``net(features [B, L, D], mask [B, L] as 0/1 floats)``, e.g. cached heavy
    features of every timestep; ``eps`` 1e-4 by default (1e-8 is Adam's own)."""
    generator = torch.Generator().manual_seed(int(seed))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, eps=eps)
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(mask), generator=generator).to(mask.device)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            loss = classification_loss(net(features[idx], mask[idx].to(features.dtype)), targets[idx], multilabel)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        if epoch == epochs - 1 or (epoch + 1) % 10 == 0:
            log(f"[{what}] epoch {epoch + 1}/{epochs} ce {total / len(order):.3f}")
    return net.eval()


def training_memory_mb(module: nn.Module, run: Callable[[], Any]) -> float:
    """Memory a training step keeps for its backward pass: the bytes of the distinct non-parameter
    tensors autograd saves during ``run()`` (a training-mode forward of ``module``).

    Device-independent and deterministic, unlike a process's peak RSS on a shared CPU; it is the
    quantity seed 004 shrinks (its Table 1 "runtime memory per video" also holds the weights and the
    framework's workspace, the same for every row of a comparison).
    """
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    was, buffers = module.training, {k: b.clone() for k, b in module.named_buffers()}
    module.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.enable_grad():
            run()
    finally:  # a training-mode forward moved the batch-norm statistics: put them back
        module.train(was)
        for k, b in module.named_buffers():
            b.copy_(buffers[k])
    return sum(seen.values()) / 2**20
