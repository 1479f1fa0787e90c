"""Temporal samplers: which frame indices of a video a method or baseline reads.

Each sampler is a pure function of the video length, its own parameters, ``train`` (randomised
training behaviour vs deterministic test behaviour) and a numpy ``rng``, and returns int64 frame
indices in [0, num_frames). Videos shorter than the request are handled, never an error: indices
repeat (the last frame pads a clip, a frame is reused by several segments), which is the usual
convention (TSN, MMAction2) and keeps every batch the same shape. Use ``valid_mask`` to know which
positions are real frames when a method must not count repeats as evidence.

``SAMPLERS`` maps the names used in specs to the functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(0)


def _check(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")


def tsn_segments(num_frames: int, num_segments: int, train: bool = False,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """TSN: split the video into ``num_segments`` equal segments and take one frame from each -- a random
    frame of the segment in training, its centre at test (``uniform_frames``). With fewer frames than
    segments, both take the centres (frames repeat)."""
    _check(num_frames)
    if not train or num_frames < num_segments:
        return uniform_frames(num_frames, num_segments)
    edges = np.arange(num_segments + 1) * num_frames / num_segments
    starts, ends = np.floor(edges[:-1]).astype(np.int64), np.floor(edges[1:]).astype(np.int64)
    return starts + (_rng(rng).random(num_segments) * (ends - starts)).astype(np.int64)


PLACEMENTS = ("centres", "endpoints")


def uniform_frames(num_frames: int, k: int, train: bool = False, rng: np.random.Generator | None = None,
                   placement: str = "centres") -> np.ndarray:
    """K frames evenly spaced, the same in training and at test. ``placement`` "centres": the centres
    of K equal bins (TSN's test rule); "endpoints": K points evenly spaced from the first frame to the
    last, both included (SCSampler section 4.1.2; k = 1 takes the centre)."""
    _check(num_frames)
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    if placement == "endpoints" and k > 1:
        return np.floor(np.linspace(0, num_frames - 1, k) + 0.5).astype(np.int64)
    return np.minimum(np.floor((np.arange(k) + 0.5) * num_frames / k).astype(np.int64), num_frames - 1)


def random_frames(num_frames: int, k: int, train: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
    """K distinct frames drawn uniformly at random, sorted (with replacement only when K > num_frames).
    ``train`` does not change it: a Random-K baseline is random at test too (seed the rng per video)."""
    _check(num_frames)
    r = _rng(rng)
    if k <= num_frames:
        return np.sort(r.choice(num_frames, size=k, replace=False)).astype(np.int64)
    extra = r.choice(num_frames, size=k - num_frames, replace=True)
    return np.sort(np.concatenate([np.arange(num_frames), extra])).astype(np.int64)


def dense_clips(num_frames: int, clip_len: int, frame_stride: int = 1, train: bool = False,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """All non-overlapping clips of ``clip_len`` frames taken every ``frame_stride`` frames (SCSampler's
    clips): ``[num_clips, clip_len]``. Clip i covers frames [i*span, (i+1)*span) with span =
    clip_len * frame_stride; trailing frames that do not fill a clip are dropped, except that a video
    shorter than one clip gives one clip padded with its last frame. In training the grid starts at
    a random offset within the dropped remainder."""
    _check(num_frames)
    span = clip_len * frame_stride
    num_clips = max(1, num_frames // span)
    offset = 0
    if train and num_frames > span:
        offset = int(_rng(rng).integers(0, num_frames - num_clips * span + 1))
    starts = offset + np.arange(num_clips) * span
    clips = starts[:, None] + np.arange(clip_len)[None, :] * frame_stride
    return np.minimum(clips, num_frames - 1).astype(np.int64)


def fixed_rate(num_frames: int, fps: float, rate: float = 1.0, train: bool = False,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Timesteps at ``rate`` per second (LiteEval reads 1 frame per second): frame round(offset + i*fps/rate)
    for every i that stays inside the video, offset 0 at test and uniform in [0, fps/rate) in
    training. At least one frame."""
    _check(num_frames)
    if fps <= 0 or rate <= 0:
        raise ValueError(f"fps and rate must be positive, got fps={fps}, rate={rate}")
    step = fps / rate
    offset = float(_rng(rng).uniform(0, step)) if train else 0.0
    count = max(1, int(np.floor((num_frames - 1 - offset) / step)) + 1)
    return np.minimum(np.floor(offset + np.arange(count) * step + 1e-9).astype(np.int64), num_frames - 1)


def all_frames(num_frames: int, train: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """Every frame (temporal clustering reads the whole video)."""
    _check(num_frames)
    return np.arange(num_frames, dtype=np.int64)


@dataclass(frozen=True)
class View:
    """One test view: the frame indices of a clip and which spatial crop (0..num_crops-1) to take."""

    indices: np.ndarray
    crop: int


def multi_view(num_frames: int, clip_len: int, num_clips: int = 10, num_crops: int = 3, frame_stride: int = 1,
               train: bool = False, rng: np.random.Generator | None = None) -> list[View]:
    """Multi-view testing (e.g. 10 clips x 3 crops): ``num_clips`` clips of ``clip_len`` frames with
    their starts spread evenly over the video, each paired with every crop. Clips of a short video
    overlap or repeat; frames past the end repeat the last frame. Use
    ``harness.data.transforms.three_crops`` for the crops. Per-view and per-video GFLOPs are kept
    apart by the harness (views = num_clips * num_crops)."""
    _check(num_frames)
    span = (clip_len - 1) * frame_stride + 1
    last_start = max(0, num_frames - span)
    starts = np.floor(np.linspace(0, last_start, num_clips) + 0.5).astype(np.int64) if num_clips > 1 else np.array([last_start // 2])
    views = []
    for start in starts:
        indices = np.minimum(start + np.arange(clip_len) * frame_stride, num_frames - 1).astype(np.int64)
        views.extend(View(indices, crop) for crop in range(num_crops))
    return views


def valid_mask(indices: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each frame index, False on repeats (padding by repetition)."""
    flat = np.asarray(indices).reshape(-1)
    _, first = np.unique(flat, return_index=True)
    mask = np.zeros(flat.shape, dtype=bool)
    mask[first] = True
    return mask.reshape(np.shape(indices))


SAMPLERS: dict[str, Callable[..., object]] = {
    "tsn": tsn_segments,
    "uniform": uniform_frames,
    "random": random_frames,
    "dense_clips": dense_clips,
    "fixed_rate": fixed_rate,
    "all": all_frames,
    "multi_view": multi_view,
}
