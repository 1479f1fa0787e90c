"""Decoding cost beside GFLOPs: how many frames a method decoded per video, and how long that took.

GFLOPs count the networks only. A method that scores every clip with a cheap sampler still has to
decode every frame that sampler looks at (even at low resolution: a decoder produces full frames),
so a selection method can be cheap in GFLOPs and as expensive as dense in decoding. Each method
declares, per test video, the frame indices it decoded (``Prediction.decoded``; None = every frame,
so a method that does not declare is never flattered). The harness then

- counts them for every test video (``decoded_frames``: distinct indices), and
- measures the time to decode exactly those frames of the real video file (open the file, seek,
  decode; decord through ``harness.data.decoding.open_video``, one decoder thread), on the same
  few videos the latency is measured on: warm-up runs untimed, then the median of the timed ones.

Frame indices are those of the trial's frame bank, which ``TrialContext.frames`` decodes without
subsampling (``max_frames`` unset), so bank frame i is frame i of the file.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from harness.data.decoding import open_video


def clip_frames(timesteps: Sequence[int], clip_len: int, middle_only: bool = False) -> list[int]:
    """The frame indices of these timesteps (clip i = frames [i*F, (i+1)*F)); only each clip's
    middle frame when the network reading it sees one frame (a 2D network)."""
    frames: set[int] = set()
    for t in timesteps:
        start = int(t) * int(clip_len)
        frames.update([start + clip_len // 2] if middle_only else range(start, start + clip_len))
    return sorted(frames)


def decoded_indices(decoded: Sequence[int] | None, num_frames: int) -> np.ndarray:
    """The distinct frames decoded for one video, in order: every frame when ``decoded`` is None.

    Indices past the end (the repeated last frame that pads a video shorter than one clip) are the
    last frame."""
    if decoded is None:
        return np.arange(int(num_frames), dtype=np.int64)
    indices = np.asarray(list(decoded), dtype=np.int64)
    if len(indices) and indices.min() < 0:
        raise ValueError(f"negative decoded frame index: {indices.tolist()}")
    return np.unique(np.minimum(indices, int(num_frames) - 1))


def decode_ms(path: str, indices: np.ndarray, *, warmup: int, repeats: int) -> float:
    """Median milliseconds to open ``path`` and decode the frames at ``indices`` (decord first)."""
    times = []
    for run in range(int(warmup) + max(1, int(repeats))):
        started = time.perf_counter()
        reader = open_video(path, backend="auto", num_threads=1)
        if len(indices):
            reader.get_batch(indices.tolist())
        if run >= warmup:
            times.append(1000.0 * (time.perf_counter() - started))
    return float(np.median(times))


def decode_metrics(
    records: Sequence[Any],
    decoded: Sequence[np.ndarray],
    lengths: Sequence[int],
    timed: int,
    evaluation: dict[str, Any],
) -> dict[str, float]:
    """``decoded_frames_per_video`` (mean over every video), ``decoded_frames_fraction`` (decoded
    frames over the videos' frames) and ``decode_ms_per_video`` (median over the first ``timed``)."""
    counts = np.array([len(d) for d in decoded], dtype=np.float64)
    times = [
        decode_ms(r.path, d, warmup=int(evaluation["latency_warmup"]), repeats=int(evaluation["latency_repeats"]))
        for r, d in zip(records[:timed], decoded[:timed])
    ]
    return {
        "decoded_frames_per_video": float(counts.mean()),
        "decoded_frames_fraction": float(counts.sum() / max(1, int(np.sum(lengths)))),
        "decode_ms_per_video": float(np.median(times)) if times else float("nan"),
    }
