"""The one supervised training loop of the toolkit's networks, and a training-memory measure.

``train_network`` serves the shared clip classifiers (``harness.toolkit.stages``: items are clips,
grouped by video, a few random clips of every video per epoch) and the in-network methods (SGS,
temporal clustering: items are videos, each batch decoded by the method). The recipe: AdamW
(weight decay 1e-4), one-cycle learning rate (20% warm-up), cross-entropy on single-label data or
BCE on multi-label data, numpy permutations from ``seed``.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def epoch_order(groups: np.ndarray, per_group: int | None, rng: np.random.Generator) -> np.ndarray:
    """Shuffled item indices of one epoch: ``per_group`` random items of every group (None: all items)."""
    if per_group is None:
        return rng.permutation(len(groups))
    keys = rng.random(len(groups))
    order = np.lexsort((keys, groups))  # grouped, shuffled within each group
    sorted_groups = groups[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_groups, sorted_groups)
    return rng.permutation(order[rank < per_group])


def train_network(net: nn.Module, step_logits: Callable[[np.ndarray, np.random.Generator], torch.Tensor],
                  labels: torch.Tensor, *, epochs: int, batch_size: int, lr: float, seed: int, multilabel: bool,
                  groups: Sequence[int] | None = None, per_group: int | None = None,
                  log: Callable[[str], None] = print, what: str = "network") -> nn.Module:
    """Train ``net`` on N items with multi-hot ``labels`` [N, C]; returns it in eval mode.

    ``step_logits(item indices, rng)`` builds the batch itself (from clips, or by decoding and
    sampling videos) and returns the logits [len(indices), C] of a training-mode forward.
    With ``groups`` (the group of each item, e.g. its video) and ``per_group``, each epoch trains on
    ``per_group`` random items of every group; otherwise on every item.
    """
    rng = np.random.default_rng(int(seed))
    torch.manual_seed(int(seed))
    net.train()
    groups_ = np.arange(len(labels)) if groups is None else np.asarray(groups, dtype=np.int64)
    per_epoch = len(groups_) if per_group is None else int(np.minimum(np.bincount(groups_), per_group).sum())
    steps = max(1, epochs * ((per_epoch + batch_size - 1) // batch_size))
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.2)
    for epoch in range(epochs):
        order, total, correct = epoch_order(groups_, per_group, rng), 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            logits = step_logits(idx, rng)
            y = labels[torch.from_numpy(idx)].to(logits.device)
            if multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, y)
            else:
                loss = F.cross_entropy(logits, y.argmax(1))
                correct += int((logits.argmax(1) == y.argmax(1)).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        log(f"[{what}] epoch {epoch + 1}/{epochs} loss {total / len(order):.3f}"
            + ("" if multilabel else f" train acc {100 * correct / len(order):.1f}%"))
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
