"""Streaming data path: same tensors as the frame bank, bad videos skipped and reported, one chooser."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.data.encoding import write_video
from harness.data.streaming import (
    BankFrames,
    FrameRequests,
    StreamedFrames,
    decoded_bytes,
    drain_skipped,
    frame_loader,
    open_frames,
    video_index,
)
from harness.registry import DATASETS
from harness.stages import StageStore


def _video(path, n, h=32, w=32, seed=0):
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 255, (n, 1, 1, 3), dtype=np.uint8), h * w, 1).reshape(n, h, w, 3)
    frames[:, :, : w // 2] //= 2  # different content per frame and per half: a wrong index or crop shows
    write_video(path, frames, fps=10)


@pytest.fixture()
def dataset_dir(tmp_path):
    root = tmp_path / "ds"
    _video(root / "v/a.mp4", 9, seed=1)
    _video(root / "v/b.mp4", 20, seed=2)
    _video(root / "v/c.mp4", 6, h=48, w=64, seed=3)  # another resolution: resized + cropped like the bank
    noise = (np.random.default_rng(0).random((40, 32, 32, 3)) * 255).astype(np.uint8)
    write_video(root / "v/full.mp4", noise, faststart=True)
    data = (root / "v/full.mp4").read_bytes()
    (root / "v/cut.mp4").write_bytes(data[: len(data) // 2])  # opens (index first), fails while decoding
    (root / "v/zero.mp4").write_bytes(b"")
    entries = [
        {"path": f"v/{n}.mp4", "labels": [lab]}
        for n, lab in [("a", "x"), ("cut", "y"), ("b", "y"), ("zero", "x"), ("missing", "x"), ("c", "y")]
    ]
    (root / "train.json").write_text(json.dumps({"videos": entries}))
    (root / "test.json").write_text(json.dumps({"videos": entries[:1]}))
    return root


def _dataset(root):
    return DATASETS.get("generic")(root=str(root))


@pytest.mark.parametrize("size,max_frames", [(None, None), (16, 8)])
def test_stream_and_bank_give_the_same_tensors(dataset_dir, tmp_path, size, max_frames):
    store = StageStore(tmp_path / "stages")
    ds = _dataset(dataset_dir)
    bank = open_frames(ds, "train", store, size=size, max_frames=max_frames)
    stream = open_frames(ds, "train", store, size=size, max_frames=max_frames, budget_bytes=0)
    assert isinstance(bank, BankFrames) and isinstance(stream, StreamedFrames)
    assert stream.key == bank.key  # stages trained on these frames keep their key whichever path reads them
    assert bank.video_ids == ["v/a", "v/b", "v/c"]  # the bank drops v/cut while decoding it
    assert stream.video_ids == ["v/a", "v/cut", "v/b", "v/c"]  # the stream finds out when it reads it
    rng = np.random.default_rng(0)
    for video_id in bank.video_ids:
        b_row, s_row = bank.index(video_id), stream.index(video_id)
        assert int(stream.lengths[s_row]) == int(bank.lengths[b_row])
        assert np.array_equal(stream.get(video_id), bank.get(video_id))
        indices = rng.integers(0, int(bank.lengths[b_row]), 5)  # unsorted, with repeats: as samplers ask
        assert np.array_equal(stream.frames(s_row, indices), bank.frames(b_row, indices))
        assert stream.fps[s_row] == pytest.approx(bank.fps[b_row])


def test_loader_workers_skip_and_report_bad_videos(dataset_dir, tmp_path):
    store = StageStore(tmp_path / "stages")
    ds = _dataset(dataset_dir)
    stream = open_frames(ds, "train", store, size=16, budget_bytes=None)
    assert dict(stream.skipped) == {"v/zero": "zero bytes", "v/missing": "missing"}
    bank = open_frames(ds, "train", store, size=16)
    last = [int(n) - 1 for n in stream.lengths]
    requests = FrameRequests(stream, indices=[[0, 2, n] for n in last])  # the last frame of v/cut cannot be decoded
    skipped: list = []
    got = {}
    for batch in drain_skipped(iter(frame_loader(requests, batch_size=2, workers=2)), skipped):
        assert batch["frames"].dtype == torch.uint8 and batch["frames"].shape[1:] == (3, 16, 16, 3)
        for video_id, frames in zip(batch["video_ids"], batch["frames"]):
            got[video_id] = frames.numpy()
    assert skipped == [("v/cut", "truncated")]
    assert sorted(got) == ["v/a", "v/b", "v/c"]
    for video_id, frames in got.items():
        row = bank.index(video_id)
        assert np.array_equal(frames, bank.frames(row, [0, 2, int(bank.lengths[row]) - 1]))


def test_open_frames_chooses_by_decoded_size(dataset_dir, tmp_path):
    store = StageStore(tmp_path / "stages")
    ds = _dataset(dataset_dir)
    index = video_index(ds, "train", store, size=16)
    need = decoded_bytes(index, None)
    assert need == (9 + 40 + 20 + 6) * 16 * 16 * 3
    assert isinstance(open_frames(ds, "train", store, size=16, budget_bytes=need), BankFrames)
    assert isinstance(open_frames(ds, "train", store, size=16, budget_bytes=need - 1), StreamedFrames)
    assert decoded_bytes(index, 8) == (8 + 8 + 8 + 6) * 16 * 16 * 3


def test_clip_requests_cover_the_clips_the_bank_would_cut(dataset_dir, tmp_path):
    from harness.data.streaming import clip_requests

    store = StageStore(tmp_path / "stages")
    stream = open_frames(_dataset(dataset_dir), "train", store, size=16, budget_bytes=None)
    every = clip_requests(stream, 4, rng=np.random.default_rng(1))
    pairs = sorted((r, tuple(i)) for r, i in zip(every.rows, every.indices))
    expected = sorted(
        (row, tuple(range(4 * t, 4 * t + 4))) for row, n in enumerate(stream.lengths) for t in range(int(n) // 4)
    )
    assert pairs == expected and every.rows != sorted(every.rows)  # every clip once, shuffled
    two = clip_requests(stream, 4, per_video=2, rng=np.random.default_rng(1))
    assert sorted(np.bincount(two.rows).tolist()) == [1, 2, 2, 2]  # v/c has 6 frames: one clip
    short = clip_requests(stream, 8, rng=np.random.default_rng(1))
    c_row = stream.index("v/c")
    assert [list(i) for r, i in zip(short.rows, short.indices) if r == c_row] == [[0, 1, 2, 3, 4, 5, 5, 5]]


HEAP_PROBE = """
import sys
import numpy as np
from harness.data.streaming import open_frames
from harness.registry import DATASETS
from harness.stages import StageStore

def anon_mb():
    return int(next(x for x in open("/proc/self/status") if x.startswith("RssAnon")).split()[1]) // 1024

if sys.argv[1] == "stream":
    open_frames(DATASETS.get("generic")(root=sys.argv[2]), "train", StageStore(sys.argv[3]), budget_bytes=None)
np.ones(16 << 20, np.uint8)  # a large block freed: glibc's dynamic threshold would rise to 16 MiB
base = anon_mb()
blocks, pins = [], []
for _ in range(40):  # 160 MiB of 4 MiB tensors / frame batches, each followed by a small block that stays alive
    blocks.append(np.ones(4 << 20, np.uint8))
    pins.append(np.ones(200_000, np.uint8))
del blocks
print(anon_mb() - base)
"""


@pytest.mark.skipif(not open("/proc/self/maps").read().count("libc.so.6"), reason="glibc's malloc only")
def test_streaming_process_gives_freed_memory_back(dataset_dir, tmp_path):
    """Bug: glibc raised its mmap threshold after the first large free and kept freed tensors in its heap,
    so a streaming run's resident memory grew with its number of steps (videos): scale benchmark (a)."""

    def held_mb(mode: str) -> int:  # in a fresh process: the allocator's state is per process
        cmd = [sys.executable, "-c", HEAP_PROBE, mode, str(dataset_dir), str(tmp_path / "stages")]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        return int(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.split()[-1])

    assert held_mb("plain") > 100  # the allocator's default policy holds the freed 160 MiB
    assert held_mb("stream") < 20  # once a split is streamed, freed blocks go back to the OS
