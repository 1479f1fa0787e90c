"""Video decoding behind one small interface: decord by default, PyAV as the fallback.

decord is fast at random access but fails on some files and lacks wheels on some platforms
(MMAction2 issues 362, 893, 1001, 602), so ``backend="auto"`` opens with decord and falls back to
PyAV when decord cannot open or decode a file. Every failure is a ``VideoDecodeError`` carrying one
of a fixed set of reasons, so that the frame bank and ``skimbench data check`` can count and list
bad files instead of crashing a trial.

Import order matters: PyAV is imported before decord, because decord bundles its own FFmpeg
libraries and, loaded first, breaks PyAV's libvpx encoder in the same process.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Protocol, Sequence

import av  # noqa: F401  (must be loaded before decord, see the module docstring)
import numpy as np

#: the reasons a video can be rejected, in the order they are checked
REASONS = ("missing", "zero bytes", "truncated", "undecodable", "too short")
BACKENDS = ("auto", "decord", "pyav")


class VideoDecodeError(Exception):
    """A video that cannot be used; ``reason`` is one of ``REASONS``."""

    def __init__(self, path: str, reason: str, detail: str = ""):
        assert reason in REASONS, reason
        self.path, self.reason, self.detail = str(path), reason, detail.strip().splitlines()[0][:200] if detail.strip() else ""
        super().__init__(f"{self.path}: {reason}" + (f" ({self.detail})" if self.detail else ""))


class VideoReader(Protocol):
    backend: str
    fps: float

    def __len__(self) -> int: ...

    def get_batch(self, indices: Sequence[int]) -> np.ndarray: ...


def _check_indices(indices: Sequence[int], length: int, path: str) -> list[int]:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= length):
        raise IndexError(f"{path}: frame indices must lie in [0, {length}), got min {idx.min()} max {idx.max()}")
    return idx.tolist()


class DecordReader:
    """decord.VideoReader with frame-accurate ``get_batch``; ``num_threads`` = decoder threads (0 = auto)."""

    backend = "decord"

    def __init__(self, path: str, num_threads: int = 1):
        import decord

        self.path = str(path)
        self._vr = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=num_threads)
        self._len = len(self._vr)
        self.fps = float(self._vr.get_avg_fps() or 0.0)

    def __len__(self) -> int:
        return self._len

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        idx = _check_indices(indices, self._len, self.path)
        if not idx:
            return np.zeros((0, 0, 0, 3), np.uint8)
        return self._vr.get_batch(idx).asnumpy()


class PyAVReader:
    """Sequential PyAV decoding: every ``get_batch`` decodes from the start up to the last index asked.

    Slower than decord for random access on long videos, but reads files decord cannot.
    """

    backend = "pyav"

    def __init__(self, path: str, num_threads: int = 1):
        self.path = str(path)
        self.num_threads = num_threads
        with av.open(self.path) as container:
            if not container.streams.video:
                raise ValueError("no video stream")  # classified by open_video (truncated MP4 or not a video)
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 0.0
            self._len = int(stream.frames or 0)
            if self._len <= 0:  # some containers (WebM, MKV) do not store a frame count: count packets
                self._len = sum(1 for p in container.demux(stream) if p.size)

    def __len__(self) -> int:
        return self._len

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        idx = _check_indices(indices, self._len, self.path)
        if not idx:
            return np.zeros((0, 0, 0, 3), np.uint8)
        wanted = set(idx)
        last = max(idx)
        got: dict[int, np.ndarray] = {}
        position = -1
        with av.open(self.path) as container:
            stream = container.streams.video[0]
            if self.num_threads != 1:
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = self.num_threads
            try:
                for position, frame in enumerate(container.decode(stream)):
                    if position in wanted:
                        got[position] = frame.to_ndarray(format="rgb24")
                    if position >= last:
                        break
            except av.FFmpegError as exc:
                raise VideoDecodeError(self.path, "truncated", f"decoding stopped after frame {position}: {exc}") from exc
        if position < last:  # the index promised more frames than the stream holds
            if position < 0:
                raise VideoDecodeError(self.path, "undecodable", "no frame could be decoded")
            raise VideoDecodeError(self.path, "truncated", f"{position + 1} frames decoded, {self._len} indexed")
        return np.stack([got[i] for i in idx])


class AutoReader:
    """decord first; on any decord failure (open or decode) the same call is retried with PyAV."""

    backend = "auto"

    def __init__(self, path: str, num_threads: int = 1):
        self.path, self.num_threads = str(path), num_threads
        try:
            self._reader: DecordReader | PyAVReader = DecordReader(self.path, num_threads)
        except Exception:  # decord raises its own DECORDError / RuntimeError types
            self._reader = PyAVReader(self.path, num_threads)
        self.fps = self._reader.fps

    @property
    def active_backend(self) -> str:
        return self._reader.backend

    def __len__(self) -> int:
        return len(self._reader)

    def get_batch(self, indices: Sequence[int]) -> np.ndarray:
        try:
            return self._reader.get_batch(indices)
        except (IndexError, VideoDecodeError):
            raise
        except Exception:
            if self._reader.backend != "decord":
                raise
            self._reader = PyAVReader(self.path, self.num_threads)
            return self._reader.get_batch(indices)


def _iso_bmff_truncated(path: str, size: int) -> bool:
    """True for an MP4/MOV file whose top-level boxes run past the end of the file or lack ``moov``."""
    boxes: list[bytes] = []
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            header = fh.read(16)
            box_size, kind = struct.unpack(">I4s", header[:8])
            if box_size == 1 and len(header) >= 16:
                box_size = struct.unpack(">Q", header[8:16])[0]
            elif box_size == 0:  # box extends to the end of the file
                box_size = size - offset
            if box_size < 8:
                return False
            boxes.append(kind)
            if offset + box_size > size:
                return True
            offset += box_size
    return bool(boxes) and boxes[0] == b"ftyp" and b"moov" not in boxes


def _classify_open_failure(path: str, exc: Exception) -> VideoDecodeError:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[4:8] == b"ftyp" and _iso_bmff_truncated(path, size):
        return VideoDecodeError(path, "truncated", f"MP4 boxes end past the file's {size} bytes or no moov box")
    return VideoDecodeError(path, "undecodable", f"{type(exc).__name__}: {exc}")


def open_video(path: str | os.PathLike, backend: str = "auto", num_threads: int = 1) -> VideoReader:
    """Open a video for frame access; raises ``VideoDecodeError`` (missing, zero bytes, truncated, undecodable)."""
    path = str(path)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "missing")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "zero bytes")
    cls = {"auto": AutoReader, "decord": DecordReader, "pyav": PyAVReader}[backend]
    try:
        reader = cls(path, num_threads)
    except VideoDecodeError:
        raise
    except Exception as exc:
        raise _classify_open_failure(path, exc) from exc
    if len(reader) == 0:
        raise VideoDecodeError(path, "too short", "no frames")
    return reader


def read_frames(path: str | os.PathLike, indices: Sequence[int], backend: str = "auto", num_threads: int = 1) -> np.ndarray:
    """Decode the frames at ``indices`` of one video: uint8 ``[N,H,W,3]`` RGB."""
    reader = open_video(path, backend, num_threads)
    try:
        return reader.get_batch(indices)
    except (IndexError, VideoDecodeError):
        raise
    except Exception as exc:  # decord failing on a frame (no fallback with backend="decord")
        raise VideoDecodeError(str(path), "undecodable", f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    backend: str


def check_video(path: str | os.PathLike, min_frames: int = 1, backend: str = "auto", full: bool = False) -> VideoInfo:
    """Verify that a video is usable: it opens, its first and last frames decode (all frames if
    ``full``), and it has at least ``min_frames`` frames. Raises ``VideoDecodeError`` otherwise."""
    reader = open_video(path, backend)
    n = len(reader)
    if n < min_frames:
        raise VideoDecodeError(str(path), "too short", f"{n} frames < {min_frames}")
    indices = list(range(n)) if full else sorted({0, n - 1})
    try:
        frames = reader.get_batch(indices)
    except VideoDecodeError:
        raise
    except Exception as exc:  # decord failing on a frame (no fallback with backend="decord")
        raise VideoDecodeError(str(path), "undecodable", f"{type(exc).__name__}: {exc}") from exc
    used = getattr(reader, "active_backend", reader.backend)
    return VideoInfo(str(path), n, reader.fps, frames.shape[1], frames.shape[2], used)
