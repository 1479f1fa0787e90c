"""What the in-network methods (SGS, temporal clustering) share: frames from the bank, TSN-style
frame sampling, one end-to-end training loop, and a training-memory measure.

These methods train a whole video network on decoded frames (no shared clip classifier can stand in
for them: the layer sits inside the network), so each trains its own model as a stage.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN, STD = 0.45, 0.225  # the harness's input normalisation (harness.shared), no pretrained weights here


def video_frames(bank: Any, video_id: str) -> np.ndarray:
    """uint8 frames [T, H, W, 3] of one video of a FrameBank (its true length, no padding)."""
    for name in ("video", "get"):
        if hasattr(bank, name):
            return np.asarray(getattr(bank, name)(video_id))
    row = bank.index(video_id)
    return np.asarray(bank.frames[row, : int(bank.lengths[row])])


def segment_indices(length: int, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """K frame indices, one per equal segment of the video (TSN): a random offset in each segment
    when ``rng`` is given (training), the segment centre otherwise (test). Repeats frames when the
    video is shorter than K."""
    edges = np.linspace(0, length, k + 1)
    offsets = rng.random(k) if rng is not None else np.full(k, 0.5)
    idx = np.floor(edges[:-1] + offsets * (edges[1:] - edges[:-1])).astype(np.int64)
    return np.clip(idx, 0, length - 1)


def to_input(frames: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [T, H, W, 3] (or [N, T, H, W, 3]) -> normalised float [C, T, H, W] (or [N, C, T, H, W])."""
    x = torch.as_tensor(np.asarray(frames)).to(device)
    x = x.movedim(-1, -4).float().div_(255.0)
    return x.sub_(MEAN).div_(STD)


def class_scores(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=-1)


def train_network(net: nn.Module, step_logits: Callable[[Sequence[int], np.random.Generator], torch.Tensor],
                  labels: torch.Tensor, *, epochs: int, batch_size: int, lr: float, seed: int, multilabel: bool,
                  log: Callable[[str], None] = print, what: str = "network") -> nn.Module:
    """AdamW + one-cycle, cross-entropy (single-label) or BCE (multi-label, ``labels`` multi-hot [N, C]).

    ``step_logits(video rows, rng)`` builds the batch itself (frame sampling differs per method) and
    returns the logits [len(rows), C] of a training-mode forward.
    """
    rng = np.random.default_rng(int(seed))
    torch.manual_seed(int(seed))
    net.train()
    n = len(labels)
    steps = max(1, epochs * ((n + batch_size - 1) // batch_size))
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.2)
    for epoch in range(epochs):
        order, total, correct = rng.permutation(n), 0.0, 0
        for start in range(0, n, batch_size):
            rows = order[start: start + batch_size].tolist()
            logits = step_logits(rows, rng)
            y = labels[rows].to(logits.device)
            if multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, y)
            else:
                loss = F.cross_entropy(logits, y.argmax(1))
                correct += int((logits.argmax(1) == y.argmax(1)).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(rows)
        log(f"[{what}] epoch {epoch + 1}/{epochs} loss {total / n:.3f}" + ("" if multilabel else f" acc {100 * correct / n:.1f}%"))
    return net.eval()


def multi_hot_labels(records: Sequence[Any], num_classes: int) -> torch.Tensor:
    y = torch.zeros(len(records), num_classes)
    for i, r in enumerate(records):
        y[i, list(r.labels)] = 1.0
    return y


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
