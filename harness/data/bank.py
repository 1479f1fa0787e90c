"""The frame bank: a split decoded once into the stage store, then memory-mapped by every trial.

Methods on the built-in benchmark read the same frames many times (training epochs, every method
of a grid, re-runs). Decoding once into one zero-padded uint8 array ``[N, Tmax, H, W, 3]`` and
mapping it read-only makes those reads free and identical across methods, and lets concurrent
trials share one copy (the OS page cache).

Bad-data policy (also in docs/data.md). A video is skipped, with its reason, when it is missing,
zero bytes, truncated (its container ends early, or a frame it indexes cannot be decoded),
undecodable (not a video, no video stream), or has fewer than ``min_frames`` frames ("too short";
default 1). Skipped videos are listed in ``FrameBank.skipped`` -- the trial logs them as
``skipped_videos.csv`` and counts them next to the metrics -- and never raise. Videos shorter than
a clip are kept: samplers pad them by repeating the last frame (harness.data.sampling), and the
mask says which frames are real. Videos longer than ``max_frames`` are uniformly subsampled to it.

Limitation: the bank holds every frame of a split. On the built-in benchmark that is tens of MB;
on Kinetics-scale datasets it is far too large: pass ``size`` and ``max_frames`` (e.g. 112 and 64),
or read frames on the fly with ``harness.data.decoding.read_frames``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from harness.data.decoding import VideoDecodeError, VideoInfo, open_video
from harness.data.transforms import resize_crop_uint8

BANK_VERSION = 1  # part of the stage key: bump when the decoding rules change
CHUNK = 256  # frames decoded per get_batch call, to bound memory on long videos


@dataclass
class FrameBank:
    """Decoded frames of one split. Rows follow ``video_ids``; frames beyond ``lengths[i]`` are zero padding."""

    key: str
    video_ids: list[str]
    frames: np.ndarray  # uint8 [N, Tmax, H, W, 3], memory-mapped read-only
    lengths: np.ndarray  # int64 [N]
    labels: list[tuple[int, ...]]
    relevance: np.ndarray | None  # uint8 [N, Tmax] (1 = relevant frame) or None
    skipped: list[tuple[str, str]]  # (video_id, reason)
    fps: np.ndarray | None = None  # float [N], after any subsampling to max_frames
    path: Path | None = None
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.video_ids)

    def mask(self) -> np.ndarray:
        """bool ``[N, Tmax]``: True where a frame is real, False on padding."""
        return np.arange(self.frames.shape[1])[None, :] < self.lengths[:, None]

    def index(self, video_id: str) -> int:
        if not self._rows:
            self._rows.update({v: i for i, v in enumerate(self.video_ids)})
        try:
            return self._rows[video_id]
        except KeyError:
            why = dict(self.skipped).get(video_id)
            raise KeyError(f"video '{video_id}' is not in the frame bank" + (f" (skipped: {why})" if why else "")) from None

    def get(self, video_id: str) -> np.ndarray:
        """uint8 ``[T, H, W, 3]`` of the video's true length: a read-only view of the memory map."""
        i = self.index(video_id)
        return self.frames[i, : int(self.lengths[i])]

    def video(self, video_id: str) -> torch.Tensor:
        """uint8 tensor ``[T, H, W, 3]`` of the video's true length (a copy: writable, no padding)."""
        return torch.from_numpy(np.array(self.get(video_id)))

    def video_relevance(self, video_id: str) -> np.ndarray | None:
        if self.relevance is None:
            return None
        i = self.index(video_id)
        return self.relevance[i, : int(self.lengths[i])]


def collate_videos(videos: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack videos ``[T_i, ...]`` of different lengths into ``[B, Tmax, ...]`` (zero padded) and a
    bool mask ``[B, Tmax]`` that is True on real frames: padding must never be read as content."""
    if not videos:
        raise ValueError("collate_videos needs at least one video")
    tmax = max(v.shape[0] for v in videos)
    first = videos[0]
    padded = first.new_zeros((len(videos), tmax, *first.shape[1:]))
    mask = torch.zeros((len(videos), tmax), dtype=torch.bool, device=first.device)
    for i, v in enumerate(videos):
        padded[i, : v.shape[0]] = v
        mask[i, : v.shape[0]] = True
    return padded, mask


def subsample_indices(num_frames: int, max_frames: int | None) -> np.ndarray:
    """All frames, or ``max_frames`` frames spread uniformly (centres of equal bins) when longer."""
    if not max_frames or num_frames <= max_frames:
        return np.arange(num_frames)
    return np.floor((np.arange(max_frames) + 0.5) * num_frames / max_frames).astype(np.int64)


def _jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    # the root folder is left out: the manifest identifies the data, wherever the copy lies
    return {k: v for k, v in sorted(params.items()) if k != "root"}


def bank_deps(dataset: Any, split: str, size: int | None, max_frames: int | None, backend: str, min_frames: int) -> dict[str, Any]:
    return {"dataset": dataset.name, "params": _jsonable_params(dict(dataset.p)), "manifest": dataset.manifest_hash(),
            "split": split, "size": size, "max_frames": max_frames, "backend": backend, "min_frames": min_frames,
            "version": BANK_VERSION}


def _probe(record: Any, backend: str, num_threads: int, min_frames: int, need_shape: bool) -> tuple[Any, str | None]:
    """(VideoInfo, None) for a usable video, (None, reason) otherwise. Opening decodes nothing."""
    try:
        reader = open_video(record.path, backend, num_threads)
        if len(reader) < min_frames:
            raise VideoDecodeError(record.path, "too short", f"{len(reader)} frames < {min_frames}")
        h, w = reader.get_batch([0]).shape[1:3] if need_shape else (0, 0)
        return VideoInfo(record.path, len(reader), reader.fps, h, w, reader.backend), None
    except VideoDecodeError as exc:
        return None, exc.reason
    except Exception:  # decord failing on a frame (no fallback with backend="decord")
        return None, "undecodable"


def _decode_split(records: list, folder: Path, size: int | None, max_frames: int | None, backend: str, num_threads: int,
                  min_frames: int, progress: Callable[[int, int], None] | None, workers: int) -> None:
    from concurrent.futures import ThreadPoolExecutor  # decoders release the GIL

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    # pass 1: open every video to learn lengths and skip missing or broken files
    skipped: list[tuple[str, str]] = []
    usable = []
    shape: tuple[int, int] | None = (size, size) if size else None
    for record, (info, reason) in zip(records, pool.map(lambda r: _probe(r, backend, num_threads, min_frames, not size), records)):
        if reason:
            skipped.append((record.video_id, reason))
            continue
        usable.append((record, info))
        shape = shape or (info.height, info.width)
    tmax = max((len(subsample_indices(info.num_frames, max_frames)) for _, info in usable), default=0)
    h, w = shape or (0, 0)
    frames = np.lib.format.open_memmap(folder / "frames.npy", mode="w+", dtype=np.uint8, shape=(len(usable), tmax, h, w, 3))

    # pass 2: decode video i into row i, in parallel; a video failing now is skipped like the others
    def decode(row: int) -> str | None:
        record, info = usable[row]
        indices = subsample_indices(info.num_frames, max_frames)
        try:
            reader = open_video(record.path, backend, num_threads)
            for start in range(0, len(indices), CHUNK):
                batch = reader.get_batch(indices[start:start + CHUNK])
                if batch.shape[1:3] != (h, w):
                    batch = resize_crop_uint8(torch.from_numpy(batch), (h, w)).numpy()
                frames[row, start:start + len(batch)] = batch
            return None
        except Exception as exc:  # decoder errors must never kill the trial
            return exc.reason if isinstance(exc, VideoDecodeError) else "undecodable"

    kept: list = []  # (record, info, row)
    for done, (row, reason) in enumerate(zip(range(len(usable)), pool.map(decode, range(len(usable)))), 1):
        record, info = usable[row]
        if reason:
            skipped.append((record.video_id, reason))
        else:
            if row != len(kept):  # close the gap left by a failed video
                frames[len(kept)] = frames[row]
            kept.append((record, info))
        if progress:
            progress(done, len(usable))
    pool.shutdown()
    frames.flush()
    del frames

    n = len(kept)
    tmax = max((len(subsample_indices(info.num_frames, max_frames)) for _, info in kept), default=0)  # without the failed
    lengths = np.zeros(n, dtype=np.int64)
    fps = np.zeros(n, dtype=np.float64)
    relevance = np.zeros((n, tmax), dtype=np.uint8)
    for row, (record, info) in enumerate(kept):
        indices = subsample_indices(info.num_frames, max_frames)
        lengths[row] = len(indices)
        fps[row] = info.fps * len(indices) / info.num_frames
        if record.relevance is not None:
            rel = np.zeros(info.num_frames, dtype=np.uint8)
            given = np.asarray(record.relevance, dtype=np.uint8)[: info.num_frames]
            rel[: len(given)] = given
            relevance[row, : len(indices)] = rel[indices]
    np.save(folder / "lengths.npy", lengths)
    np.save(folder / "fps.npy", fps)
    if any(record.relevance is not None for record, _ in kept):
        np.save(folder / "relevance.npy", relevance)
    meta = {"video_ids": [r.video_id for r, _ in kept], "labels": [list(r.labels) for r, _ in kept],
            "skipped": [list(x) for x in skipped], "rows": n, "tmax": tmax, "height": h, "width": w}
    (folder / "bank.json").write_text(json.dumps(meta))


def read_frame_bank(folder: Path) -> FrameBank:
    meta = json.loads((folder / "bank.json").read_text())
    n = meta["rows"]
    frames = np.load(folder / "frames.npy", mmap_mode="r")[:n, : meta["tmax"]]  # rows/frames of failed videos cut off
    relevance = np.load(folder / "relevance.npy", mmap_mode="r") if (folder / "relevance.npy").exists() else None
    return FrameBank(key=folder.name, video_ids=meta["video_ids"], frames=frames, lengths=np.load(folder / "lengths.npy"),
                     labels=[tuple(x) for x in meta["labels"]], relevance=relevance,
                     skipped=[tuple(x) for x in meta["skipped"]], fps=np.load(folder / "fps.npy"), path=folder)


def load_frame_bank(dataset: Any, split: str, store: Any, *, size: int | None = None, max_frames: int | None = None,
                    backend: str = "auto", num_threads: int = 1, min_frames: int = 1, workers: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> FrameBank:
    """The decoded frames of ``split``: decoded once into a stage of ``store`` (key = dataset manifest +
    params + split + decode settings), memory-mapped on every later call, in any process.

    ``size``: frames resized (short side) and centre-cropped to size x size; None keeps the native
    resolution of the first readable video (others are resized to it). ``max_frames``: longer videos
    are uniformly subsampled. Bad videos are skipped and listed (see the module docstring).
    ``workers``: videos decoded in parallel (threads; default min(4, CPUs)); the result does not depend on it.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    deps = bank_deps(dataset, split, size, max_frames, backend, min_frames)

    def compute(tmp: Path) -> None:
        _decode_split(dataset.split(split), tmp, size, max_frames, backend, num_threads, min_frames, progress, workers)

    folder = store.get_or_compute("frames", deps, compute)
    return read_frame_bank(folder)
