"""Streaming video data: frames decoded on the fly by DataLoader workers, the frame bank only when it fits.

The frame bank (``harness.data.bank``) decodes a whole split into one array: right for the built-in
benchmark, impossible for Kinetics (hundreds of GB). This module gives the same frames without
holding a split in memory:

- ``video_index``: one pass over a split's headers (a stage of the store: lengths, fps, shapes,
  bad videos), nothing decoded but one frame per video when the native size is needed.
- ``StreamedFrames``: the frame bank's reading interface (``video_ids``, ``lengths``, ``labels``,
  ``skipped``, ``get(video_id)``, ``frames(row, indices)``...) backed by the video files: decord
  (PyAV as fallback, ``harness.data.decoding``) decodes only the frames asked for, and the frame
  bank's rules are applied (``max_frames`` uniform subsampling, short-side resize + centre crop).
  For the same indices it returns exactly the frame bank's tensors (tests/test_streaming.py).
- ``open_frames``: the one function choosing the path: the frame bank when the split's decoded size
  fits under ``budget_bytes`` (default ``DEFAULT_BANK_BUDGET``, about 2 GB), streaming otherwise.
- ``FrameRequests`` + ``frame_loader``: a torch ``Dataset`` of (row, indices) requests and its
  ``DataLoader``: worker processes, bounded prefetch (``prefetch_factor`` batches per worker),
  pinned memory on CUDA.

Bad-video policy (unchanged from the frame bank): a video that cannot be opened, or is shorter than
``min_frames``, is skipped with its reason when the index is built; one that fails later, while a
worker decodes it, is skipped too: the batch carries it in ``skipped`` (video_id, reason) and
``drain_skipped`` collects them, so that the trial can count and report it. Nothing raises.

Bounded memory (``bound_heap``, called when a split is streamed): glibc's malloc raises its mmap
threshold each time a large block is freed (up to 32 MiB), and from then on serves tensors and decoded
frames from its heap, whose freed holes stay resident: a process's memory then grows with the number
of training steps, i.e. with the number of videos. A fixed threshold keeps large blocks mmapped, given
back to the OS when freed (the cost: page faults on fresh memory, some system CPU time on CPU training).
"""

from __future__ import annotations

import ctypes
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from harness.data.bank import FrameBank, _probe, bank_deps, collate_videos, load_frame_bank, subsample_indices
from harness.data.decoding import VideoDecodeError, open_video
from harness.data.transforms import resize_crop_uint8

DEFAULT_BANK_BUDGET = 2 * 1024**3  # bytes of decoded uint8 frames under which a split goes to the frame bank
INDEX_VERSION = 1  # part of the index stage key: bump when the probing rules change
MMAP_THRESHOLD = 128 * 1024  # bytes: larger allocations are mmapped (glibc's initial threshold, kept fixed)
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def bound_heap() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD`` in this process (and the DataLoader workers it forks
    later): every block above it is mmapped and returned to the OS when freed, so that resident memory
    follows what is live instead of growing with the run (see the module's docstring). Idempotent; False
    where the C library is not glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded (not find_library: it forks a process)
        libc.gnu_get_libc_version  # glibc only (musl's mallopt does nothing; macOS has none)
    except (OSError, AttributeError):
        return False
    return libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


# ------------------------------------------------------------------------------------------------
# The index of a split: what the frame bank learns in its first pass, without decoding
# ------------------------------------------------------------------------------------------------
def _build_index(records: list, folder: Path, size: int | None, backend: str, min_frames: int, workers: int) -> None:
    skipped: list[list[str]] = []
    usable: list[dict[str, Any]] = []
    shape: tuple[int, int] | None = (size, size) if size else None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # decoders release the GIL
        probes = pool.map(lambda r: _probe(r, backend, 1, min_frames, not size), records)
        for record, (info, reason) in zip(records, probes):
            if reason:
                skipped.append([record.video_id, reason])
                continue
            shape = shape or (info.height, info.width)
            usable.append(
                {
                    "video_id": record.video_id,
                    "path": record.path,
                    "labels": list(record.labels),
                    "num_frames": info.num_frames,
                    "fps": info.fps,
                    "relevance": list(record.relevance) if record.relevance is not None else None,
                }
            )
    h, w = shape or (0, 0)
    (folder / "index.json").write_text(json.dumps({"videos": usable, "skipped": skipped, "height": h, "width": w}))


def video_index(
    dataset: Any,
    split: str,
    store: Any,
    *,
    size: int | None = None,
    backend: str = "auto",
    min_frames: int = 1,
    workers: int | None = None,
) -> dict[str, Any]:
    """Lengths, fps, labels and bad videos of ``split``, probed once per dataset manifest (a stage of ``store``).

    ``height``/``width``: ``size`` x ``size``, or the native size of the first readable video (the bank's rule).
    """
    workers = workers or min(8, os.cpu_count() or 1)
    deps = {**bank_deps(dataset, split, size, None, backend, min_frames), "version": INDEX_VERSION}

    def compute(tmp: Path) -> None:
        _build_index(dataset.split(split), tmp, size, backend, min_frames, workers)

    folder = store.get_or_compute("video_index", deps, compute)
    index = json.loads((folder / "index.json").read_text())
    index["key"] = folder.name
    return index


def decoded_bytes(index: dict[str, Any], max_frames: int | None) -> int:
    """Bytes of uint8 frames the frame bank would hold for this index (after ``max_frames`` subsampling)."""
    frames = sum(len(subsample_indices(v["num_frames"], max_frames)) for v in index["videos"])
    return frames * int(index["height"]) * int(index["width"]) * 3


# ------------------------------------------------------------------------------------------------
# Frames read from the files, with the frame bank's interface
# ------------------------------------------------------------------------------------------------
@dataclass
class StreamedFrames:
    """A split read from its video files; rows follow ``video_ids`` like the frame bank's.

    ``frames(row, indices)`` decodes only those frames (indices on the subsampled timeline
    ``[0, lengths[row])``, as in the bank) and returns uint8 ``[len(indices), H, W, 3]``. Picklable:
    DataLoader workers and Ray actors each open their own decoders.
    """

    key: str
    video_ids: list[str]
    paths: list[str]
    num_frames: np.ndarray  # int64 [N]: frames in the file
    lengths: np.ndarray  # int64 [N]: frames after max_frames subsampling (the bank's lengths)
    labels: list[tuple[int, ...]]
    skipped: list[tuple[str, str]]
    fps: np.ndarray  # float [N], after subsampling
    height: int
    width: int
    max_frames: int | None = None
    backend: str = "auto"
    relevance_lists: list[tuple[int, ...] | None] = field(default_factory=list, repr=False)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    path = None  # no folder of decoded frames: ``open_frames`` callers can tell the two paths apart

    @classmethod
    def from_index(
        cls, index: dict[str, Any], max_frames: int | None, backend: str = "auto", key: str | None = None
    ) -> "StreamedFrames":
        """``key``: what stage keys record for these frames (``open_frames`` gives the frame bank's key)."""
        videos = index["videos"]
        num_frames = np.array([v["num_frames"] for v in videos], dtype=np.int64)
        lengths = np.array([len(subsample_indices(int(n), max_frames)) for n in num_frames], dtype=np.int64)
        fps = np.array([v["fps"] * length / n for v, length, n in zip(videos, lengths, num_frames)], dtype=np.float64)
        return cls(
            key=key or f"{index['key']}-stream{max_frames or ''}",
            video_ids=[v["video_id"] for v in videos],
            paths=[v["path"] for v in videos],
            num_frames=num_frames,
            lengths=lengths,
            labels=[tuple(v["labels"]) for v in videos],
            skipped=[tuple(x) for x in index["skipped"]],
            fps=fps,
            height=int(index["height"]),
            width=int(index["width"]),
            max_frames=max_frames,
            backend=backend,
            relevance_lists=[tuple(v["relevance"]) if v["relevance"] is not None else None for v in videos],
        )

    def __len__(self) -> int:
        return len(self.video_ids)

    index = FrameBank.index  # row of a video id; KeyError naming the skip reason

    def file_indices(self, row: int, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frame numbers in the file of positions ``indices`` of the subsampled timeline."""
        timeline = subsample_indices(int(self.num_frames[row]), self.max_frames)
        return timeline[np.asarray(indices, dtype=np.int64)]

    def frames(self, row: int, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """uint8 ``[len(indices), H, W, 3]`` (all frames when None); raises ``VideoDecodeError`` on a bad file."""
        indices = np.arange(int(self.lengths[row])) if indices is None else np.asarray(indices, dtype=np.int64)
        wanted = self.file_indices(row, indices)
        unique, inverse = np.unique(wanted, return_inverse=True)  # decord wants each frame once, in order
        try:
            batch = open_video(self.paths[row], self.backend).get_batch(unique.tolist())
        except VideoDecodeError:
            raise
        except Exception as exc:  # decord failing on a frame (no fallback with backend="decord")
            raise VideoDecodeError(self.paths[row], "undecodable", f"{type(exc).__name__}: {exc}") from exc
        if batch.shape[1:3] != (self.height, self.width):
            batch = resize_crop_uint8(torch.from_numpy(batch), (self.height, self.width)).numpy()
        return batch[inverse.reshape(-1)]

    def get(self, video_id: str) -> np.ndarray:
        """uint8 ``[T, H, W, 3]`` of the whole (subsampled) video, decoded now (FrameBank.get's contract)."""
        return self.frames(self.index(video_id))

    def video(self, video_id: str) -> torch.Tensor:
        return torch.from_numpy(self.get(video_id))

    def video_relevance(self, video_id: str) -> np.ndarray | None:
        row = self.index(video_id)
        given = self.relevance_lists[row] if self.relevance_lists else None
        if given is None:
            return None
        rel = np.zeros(int(self.num_frames[row]), dtype=np.uint8)
        values = np.asarray(given, dtype=np.uint8)[: len(rel)]
        rel[: len(values)] = values
        return rel[subsample_indices(int(self.num_frames[row]), self.max_frames)]


class BankFrames:
    """The frame bank behind ``StreamedFrames``'s ``frames(row, indices)`` (every other attribute is the bank's)."""

    def __init__(self, bank: FrameBank):
        self.bank = bank

    def __getattr__(self, name: str) -> Any:
        if name == "bank":  # not set yet (while unpickling)
            raise AttributeError(name)
        return getattr(self.bank, name)

    def __len__(self) -> int:
        return len(self.bank)

    def frames(self, row: int, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        video = self.bank.frames[row, : int(self.bank.lengths[row])]
        return np.array(video if indices is None else video[np.asarray(indices, dtype=np.int64)])

    def __getstate__(self) -> dict[str, Any]:  # workers re-open the memory map instead of pickling it
        return {"folder": str(self.bank.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from harness.data.bank import read_frame_bank

        self.bank = read_frame_bank(Path(state["folder"]))


def open_frames(
    dataset: Any,
    split: str,
    store: Any,
    *,
    size: int | None = None,
    max_frames: int | None = None,
    backend: str = "auto",
    min_frames: int = 1,
    budget_bytes: int | None = DEFAULT_BANK_BUDGET,
    log: Callable[[str], None] | None = None,
) -> BankFrames | StreamedFrames:
    """The frames of ``split``: the frame bank when its decoded size fits under ``budget_bytes``, else streamed.

    ``budget_bytes=None`` always streams. Both give the same ``frames(row, indices)`` for the same
    rows and indices; rows differ only when a video fails mid-decode (the bank drops its row, the
    stream skips it when read). Both carry the same ``key`` (the frame bank's stage key), so stages
    that depend on the frames do not change when a split moves from one path to the other.
    """
    index = video_index(dataset, split, store, size=size, backend=backend, min_frames=min_frames)
    need = decoded_bytes(index, max_frames)
    if budget_bytes is not None and need <= budget_bytes:
        if log:
            log(f"[data] {split}: {need / 1e9:.2f} GB decoded <= budget {budget_bytes / 1e9:.2f} GB: frame bank")
        bank = load_frame_bank(
            dataset, split, store, size=size, max_frames=max_frames, backend=backend, min_frames=min_frames
        )
        return BankFrames(bank)
    if log:
        log(f"[data] {split}: {need / 1e9:.2f} GB decoded > budget: streaming from the video files")
    bound_heap()  # memory must not grow with the number of videos streamed
    key = store.key("frames", bank_deps(dataset, split, size, max_frames, backend, min_frames))  # = the bank's
    return StreamedFrames.from_index(index, max_frames, backend, key=key)


# ------------------------------------------------------------------------------------------------
# Dataset + DataLoader
# ------------------------------------------------------------------------------------------------
class FrameRequests(Dataset):
    """Item i = the frames ``indices[i]`` of video ``rows[i]`` of ``source`` (None: the whole video).

    An item is ``{"row", "video_id", "frames" (uint8 [T,H,W,3] tensor), "indices"}``, or, for a video
    that fails to decode, ``{"row", "video_id", "error": reason}`` (kept out of the batch by ``collate``).
    """

    def __init__(
        self,
        source: BankFrames | StreamedFrames,
        rows: Sequence[int] | None = None,
        indices: Sequence[Sequence[int] | None] | None = None,
    ):
        self.source = source
        self.rows = list(range(len(source))) if rows is None else [int(r) for r in rows]
        self.indices = [None] * len(self.rows) if indices is None else list(indices)
        if len(self.indices) != len(self.rows):
            raise ValueError(f"{len(self.rows)} rows but {len(self.indices)} index lists")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row, wanted = self.rows[i], self.indices[i]
        video_id = self.source.video_ids[row]
        try:
            frames = self.source.frames(row, wanted)
        except VideoDecodeError as exc:
            return {"row": row, "video_id": video_id, "error": exc.reason}
        indices = np.arange(len(frames)) if wanted is None else np.asarray(wanted, dtype=np.int64)
        return {"row": row, "video_id": video_id, "frames": torch.from_numpy(frames), "indices": indices}


def clip_requests(
    source: BankFrames | StreamedFrames,
    clip_len: int,
    per_video: int | None = None,
    rng: np.random.Generator | None = None,
) -> FrameRequests:
    """One request per training clip, shuffled: the non-overlapping clips of ``clip_len`` frames of every
    video (``per_video`` random ones of each, None: all), what the shared networks train on.

    Streaming replacement of building every clip of a split in memory: an epoch is a new call (a new
    draw from ``rng``). A video shorter than a clip gives one clip padded with its last frame.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    rows, indices = [], []
    for row, length in enumerate(np.asarray(source.lengths, dtype=np.int64)):
        count = max(1, int(length) // clip_len)
        chosen = (
            np.arange(count)
            if per_video is None or per_video >= count
            else np.sort(rng.choice(count, per_video, replace=False))
        )
        for t in chosen:
            rows.append(row)
            indices.append(np.minimum(t * clip_len + np.arange(clip_len), int(length) - 1))
    order = rng.permutation(len(rows))
    return FrameRequests(source, [rows[i] for i in order], [indices[i] for i in order])


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good items (zero-padded to the longest, with a mask) and list the failed ones in ``skipped``."""
    good = [it for it in items if "error" not in it]
    batch: dict[str, Any] = {
        "skipped": [(it["video_id"], it["error"]) for it in items if "error" in it],
        "rows": torch.as_tensor([it["row"] for it in good], dtype=torch.long),
        "video_ids": [it["video_id"] for it in good],
    }
    if good and len({len(it["frames"]) for it in good}) == 1:  # clips of one length: a plain stack
        # in a worker, default_collate stacks straight into shared memory: no second copy to send the batch
        batch["frames"] = default_collate([it["frames"] for it in good])
        batch["mask"] = torch.ones(batch["frames"].shape[:2], dtype=torch.bool)
    elif good:
        batch["frames"], batch["mask"] = collate_videos([it["frames"] for it in good])
        batch["indices"] = [it["indices"] for it in good]
    return batch


def frame_loader(
    requests: FrameRequests,
    *,
    batch_size: int = 8,
    workers: int = 2,
    prefetch: int = 2,
    device: torch.device | str = "cpu",
) -> DataLoader:
    """A DataLoader over ``requests``: ``workers`` processes decode, at most ``prefetch`` batches each ahead
    (bounded memory), pinned host memory when ``device`` is CUDA (``non_blocking`` copies)."""
    pin = torch.device(device).type == "cuda"
    return DataLoader(
        requests,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin,
        prefetch_factor=prefetch if workers > 0 else None,
        persistent_workers=False,
    )


def drain_skipped(batches: Iterator[dict[str, Any]], skipped: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    """Yield the batches that hold frames; append every failed video to ``skipped`` (the trial reports them)."""
    for batch in batches:
        skipped.extend(batch["skipped"])
        if batch["video_ids"]:
            yield batch
