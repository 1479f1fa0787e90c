"""Sharded, resumable feature extraction: a split streamed in shards into on-disk arrays, read memory-mapped.

A split's per-timestep outputs (heavy-classifier features and logits, LightNet features, sampler
inputs) are computed by streaming its videos (``harness.data.streaming``) shard by shard:

    <folder>/shard_00000/{<name>.npy, lengths.npy, meta.json}   one folder per shard, renamed into place
    <folder>/index.json                                          written last: the extraction is complete

Each ``<name>.npy`` holds the shard's videos one after another (``[sum of lengths, ...]``), so
memory scales with one shard, never with the split. A shard is written into a temporary folder and
renamed, so a killed extraction leaves only complete shards; the next call computes the missing
ones only (``extract`` reports which). ``ShardedArrays`` reads the result memory-mapped: ``get(name,
video_id)`` -> ``[L, ...]``, ``padded(name)`` -> ``[N, Lmax, ...]`` (the layout of today's tables, for
splits that fit in memory).

``extract(..., ray_actors=n)`` runs the shards as a Ray Data job instead of in this process:
``map_batches`` over the missing shard numbers with an actor pool of ``n`` actors
(``ray.data.ActorPoolStrategy``), each actor building its model once, with ``num_gpus`` per actor on
GPU clusters (one model per GPU); actors write their shards into the shared folder themselves.

What computes a video's outputs is a *factory*: a picklable callable ``factory(device) -> video_fn``,
``video_fn(frames uint8 [T, H, W, 3]) -> {name: array [L, ...]}`` (``NetworkOnClips`` is the one the
shared stages use). ``sharded_stage`` puts an extraction in the stage store.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from filelock import FileLock

from harness.data.streaming import FrameRequests, bound_heap, drain_skipped, frame_loader
from harness.toolkit.clips import ClipNet, frames_to_clips

INDEX = "index.json"


def shard_name(shard: int) -> str:
    return f"shard_{shard:05d}"


def shard_rows(num_videos: int, shard_size: int) -> list[range]:
    """The rows of each shard: consecutive blocks of ``shard_size`` videos."""
    return [range(start, min(start + shard_size, num_videos)) for start in range(0, num_videos, shard_size)]


def missing_shards(folder: Path, num_shards: int) -> list[int]:
    return [s for s in range(num_shards) if not (Path(folder) / shard_name(s) / "meta.json").exists()]


def _device(gpus: float) -> torch.device:
    return torch.device("cuda") if gpus and torch.cuda.is_available() else torch.device("cpu")


def write_shard(
    folder: Path,
    shard: int,
    source: Any,
    rows: Sequence[int],
    video_fn: Callable,
    *,
    workers: int = 0,
    batch_size: int = 4,
) -> None:
    """Compute and write one shard (atomically: a temporary folder renamed into place). Each video's
    outputs are appended to the files as they come (the loader keeps row order), so memory holds one
    video's outputs, not the shard's."""
    folder = Path(folder)
    lengths = np.zeros(len(rows), dtype=np.int64)
    skipped: list[tuple[str, str]] = []
    position = {row: i for i, row in enumerate(rows)}
    loader = frame_loader(FrameRequests(source, rows), batch_size=batch_size, workers=workers)
    tmp = Path(tempfile.mkdtemp(prefix=f".{shard_name(shard)}.", dir=folder))
    raw: dict[str, tuple[Any, np.dtype, tuple[int, ...]]] = {}  # name -> (open file, dtype, row shape)
    try:
        for batch in drain_skipped(iter(loader), skipped):
            for row, frames, mask in zip(batch["rows"].tolist(), batch["frames"], batch["mask"]):
                out = {name: np.ascontiguousarray(v) for name, v in video_fn(frames[: int(mask.sum())].numpy()).items()}
                lengths[position[row]] = len(next(iter(out.values())))  # a skipped video keeps length 0
                for name, value in out.items():
                    if name not in raw:
                        raw[name] = (open(tmp / f"{name}.raw", "wb"), value.dtype, value.shape[1:])
                    raw[name][0].write(value.tobytes())
        for name, (f, dtype, shape) in raw.items():  # the .npy header, then the rows as written
            f.close()
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
            with open(tmp / f"{name}.npy", "wb") as npy, open(tmp / f"{name}.raw", "rb") as src:
                np.lib.format.write_array_header_1_0(npy, {**header, "shape": (int(lengths.sum()), *shape)})
                shutil.copyfileobj(src, npy, 1 << 20)
            os.remove(tmp / f"{name}.raw")
        np.save(tmp / "lengths.npy", lengths)
        meta = {
            "shard": shard,
            "rows": [rows[0], rows[-1] + 1] if len(rows) else [0, 0],
            "names": sorted(raw),
            "skipped": [list(x) for x in skipped],
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        final = folder / shard_name(shard)
        if final.exists():  # leftover of an interrupted rename
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        for f, _, _ in raw.values():
            f.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class _ShardActor:
    """One Ray Data actor: builds the model once, then writes whole shards (one per batch row)."""

    def __init__(self, folder: str, source: Any, factory: Callable, shard_size: int, gpus: float, workers: int):
        self.folder, self.source, self.shard_size, self.workers = Path(folder), source, shard_size, workers
        bound_heap()  # a fresh process: memory must not grow with the shards it writes (harness.data.streaming)
        self.video_fn = factory(_device(gpus))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shards = [int(s) for s in batch["shard"]]
        for shard in shards:
            rows = shard_rows(len(self.source), self.shard_size)[shard]
            write_shard(self.folder, shard, self.source, rows, self.video_fn, workers=self.workers)
        return {"shard": np.asarray(shards, dtype=np.int64), "pid": np.full(len(shards), os.getpid())}


def _extract_with_ray(
    folder: Path,
    source: Any,
    factory: Callable,
    shard_size: int,
    todo: list[int],
    actors: int,
    gpus_per_actor: float,
    workers: int,
    on_shard: Callable[[int], None] | None,
) -> None:
    import ray  # imported here: the in-process path must not start or need Ray

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    items = ray.data.from_items([{"shard": s} for s in todo])
    written = items.map_batches(
        _ShardActor,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, min(actors, len(todo)))),
        fn_constructor_kwargs={
            "folder": str(folder),
            "source": source,
            "factory": factory,
            "shard_size": shard_size,
            "gpus": gpus_per_actor,
            "workers": workers,
        },
        num_cpus=1,
        num_gpus=gpus_per_actor or None,
    )
    for row in written.iter_rows():
        if on_shard:
            on_shard(int(row["shard"]))


def extract(
    folder: str | Path,
    source: Any,
    factory: Callable,
    *,
    shard_size: int = 256,
    workers: int = 0,
    device: torch.device | str = "cpu",
    ray_actors: int = 0,
    gpus_per_actor: float = 0,
    on_shard: Callable[[int], None] | None = None,
) -> "ShardedArrays":
    """Extract every missing shard of ``source`` into ``folder`` and write the index; return the arrays.

    ``workers``: DataLoader decoding processes per extractor. ``ray_actors`` > 0: a Ray Data job with
    that many actors (``gpus_per_actor`` GPUs each, e.g. 1 = one model per GPU) instead of this
    process. ``on_shard(shard)`` is called for each shard computed now (not for those already on disk).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / INDEX).exists():
        shards = shard_rows(len(source), shard_size)
        todo = missing_shards(folder, len(shards))
        if todo and ray_actors > 0:
            _extract_with_ray(folder, source, factory, shard_size, todo, ray_actors, gpus_per_actor, workers, on_shard)
        elif todo:
            video_fn = factory(torch.device(device))
            for shard in todo:
                write_shard(folder, shard, source, shards[shard], video_fn, workers=workers)
                if on_shard:
                    on_shard(shard)
        metas = [json.loads((folder / shard_name(s) / "meta.json").read_text()) for s in range(len(shards))]
        index = {
            "video_ids": list(source.video_ids),
            "shard_size": shard_size,
            "num_shards": len(shards),
            "names": sorted({n for m in metas for n in m["names"]}),
            "skipped": [list(x) for x in getattr(source, "skipped", [])] + [x for m in metas for x in m["skipped"]],
        }
        (folder / INDEX).write_text(json.dumps(index))
    return ShardedArrays(folder)


def sharded_stage(
    store: Any, name: str, deps: Mapping[str, Any], source: Any, factory: Callable, **options: Any
) -> "ShardedArrays":
    """``extract`` as a stage of ``store``: one folder per key, resumable, one extractor at a time (file lock)."""
    folder = store.path(name, deps)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        arrays = extract(folder, source, factory, **options)
        if not (folder / "meta.json").exists():  # the store's "complete" marker
            (folder / "meta.json").write_text(
                json.dumps({"stage": name, "key": folder.name, "deps": deps}, sort_keys=True, default=str)
            )
    return arrays


class ShardedArrays:
    """A completed extraction, memory-mapped. Rows follow ``video_ids`` (skipped videos have length 0)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.key = self.folder.name
        index = json.loads((self.folder / INDEX).read_text())
        self.video_ids: list[str] = index["video_ids"]
        self.names: list[str] = index["names"]
        self.skipped = [tuple(x) for x in index["skipped"]]
        self.shard_size = int(index["shard_size"])
        self.num_shards = int(index["num_shards"])
        per_shard = [np.load(self.folder / shard_name(s) / "lengths.npy") for s in range(self.num_shards)]
        self.lengths = np.concatenate(per_shard) if per_shard else np.zeros(0, np.int64)
        self._offsets = [np.concatenate([[0], np.cumsum(x)]) for x in per_shard]
        self._maps: dict[tuple[str, int], np.ndarray] = {}
        self._rows = {v: i for i, v in enumerate(self.video_ids)}

    def __len__(self) -> int:
        return len(self.video_ids)

    def _array(self, name: str, shard: int) -> np.ndarray:
        if (name, shard) not in self._maps:
            path = self.folder / shard_name(shard) / f"{name}.npy"
            if not path.exists():  # a shard whose videos were all skipped has no arrays
                raise KeyError(f"{path} missing")
            self._maps[name, shard] = np.load(path, mmap_mode="r")
        return self._maps[name, shard]

    def row(self, name: str, row: int) -> np.ndarray:
        """``[L, ...]`` outputs of video ``row`` (a read-only memory-mapped view)."""
        if name not in self.names:
            raise KeyError(f"no array '{name}' (have: {', '.join(self.names)})")
        shard, i = divmod(int(row), self.shard_size)
        start, stop = self._offsets[shard][i], self._offsets[shard][i + 1]
        if start == stop:
            return np.zeros((0,), np.float32)
        return self._array(name, shard)[start:stop]

    def get(self, name: str, video_id: str) -> np.ndarray:
        return self.row(name, self._rows[video_id])

    def read(self, name: str, row: int) -> np.ndarray:
        """``row(name, row)`` read from its file into a new array, without a memory map: for passes over a
        whole split (e.g. training epochs), whose pages would otherwise all stay mapped into the process
        (its resident set grows with the split); read, they stay in the OS's page cache only."""
        if name not in self.names:
            raise KeyError(f"no array '{name}' (have: {', '.join(self.names)})")
        shard, i = divmod(int(row), self.shard_size)
        start, stop = int(self._offsets[shard][i]), int(self._offsets[shard][i + 1])
        if start == stop:
            return np.zeros((0,), np.float32)
        path = self.folder / shard_name(shard) / f"{name}.npy"
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):  # np.save writes 1.0 (2.0 for huge headers)
                return np.array(self.row(name, row))
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(f)
            row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            f.seek(f.tell() + start * row_bytes)
            data = bytearray((stop - start) * row_bytes)
            f.readinto(data)
        return np.frombuffer(data, dtype=dtype).reshape(stop - start, *shape[1:])

    def padded(self, name: str) -> np.ndarray:
        """``[N, Lmax, ...]`` zero padded, in memory (``padded_map`` is the same on disk, memory-mapped)."""
        return np.array(self.padded_map(name))

    def padded_map(self, name: str) -> np.ndarray:
        """``padded(name)`` written once beside the shards (``padded_<name>.npy``) and read memory-mapped:
        the ``[N, Lmax, ...]`` layout of the per-timestep tables, on disk instead of in memory."""
        path = self.folder / f"padded_{name}.npy"
        if not path.exists():
            first = next(
                (
                    self._array(name, s)
                    for s in range(self.num_shards)
                    if (self.folder / shard_name(s) / f"{name}.npy").exists()
                ),
                None,
            )
            if first is None:
                raise KeyError(f"no array '{name}' in {self.folder}")
            fd, tmp = tempfile.mkstemp(prefix=f".padded_{name}.", suffix=".npy", dir=self.folder)
            os.close(fd)
            try:
                out = np.lib.format.open_memmap(
                    tmp,
                    mode="w+",
                    dtype=first.dtype,
                    shape=(len(self), int(self.lengths.max(initial=0)), *first.shape[1:]),
                )
                for row in range(len(self)):  # one video at a time: memory stays at one video's outputs
                    values = self.row(name, row)
                    if len(values):
                        out[row, : len(values)] = values
                out.flush()
                del out
                os.replace(tmp, path)  # concurrent writers write the same bytes: the last rename wins
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        return np.load(path, mmap_mode="r")


@dataclass(frozen=True)
class RowsRead:
    """``rows_read[i]`` = ``arrays.read(name, rows[i])``: a sequence of videos' outputs read on access."""

    arrays: ShardedArrays
    name: str
    rows: Sequence[int]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.arrays.read(self.name, self.rows[i])


@dataclass(frozen=True)
class NetworkOnClips:
    """Factory of the shared stages' per-timestep outputs: a backbone as a ``ClipNet`` on the video's
    non-overlapping clips of ``clip_len`` frames -> ``features`` ``[L, D]`` and (``with_logits``) ``logits``.

    ``build``: a picklable callable returning the backbone module (e.g. ``functools.partial(build_backbone,
    name, params, num_classes)``); ``state_path``: the ClipNet state dict (a trained stage's model.pt).
    """

    build: Callable[[], torch.nn.Module]
    clip_len: int
    state_path: str | None = None
    size: int | None = None
    input_kind: str | None = None  # "2d" for the cheap network (one frame per timestep)
    with_logits: bool = True
    batch: int = 256

    def __call__(self, device: torch.device) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        net = ClipNet(self.build(), self.clip_len, size=self.size)
        if self.input_kind:
            net.input_kind = self.input_kind
        if self.state_path:
            net.load_state_dict(torch.load(self.state_path, map_location="cpu", weights_only=True))
        net = net.to(device).eval()

        @torch.no_grad()
        def video_fn(frames: np.ndarray) -> dict[str, np.ndarray]:
            clips = frames_to_clips(frames, self.clip_len)
            feats, logits = [], []
            for start in range(0, len(clips), self.batch):
                f = net.features(clips[start : start + self.batch].to(device, non_blocking=True))
                feats.append(f.float().cpu().numpy())
                if self.with_logits:
                    logits.append(net.head(f).float().cpu().numpy())
            out = {"features": np.concatenate(feats)}
            if self.with_logits:
                out["logits"] = np.concatenate(logits)
            return out

        return video_fn
