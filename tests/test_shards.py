"""Sharded feature extraction: resumable shard by shard, memory-mapped reads, the Ray Data path on CPU."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest
import torch

from harness.backbones import build_backbone
from harness.data.encoding import write_video
from harness.data.streaming import open_frames
from harness.features.shards import NetworkOnClips, ShardedArrays, extract, missing_shards, sharded_stage
from harness.registry import DATASETS
from harness.stages import StageStore
from harness.toolkit.clips import ClipNet

NUM_VIDEOS = 7


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    entries = []
    for i in range(NUM_VIDEOS):
        frames = (np.random.default_rng(i).random((6 + 2 * i, 24, 24, 3)) * 255).astype(np.uint8)
        write_video(root / f"v/{i}.mp4", frames, fps=10)
        entries.append({"path": f"v/{i}.mp4", "labels": ["ab"[i % 2]]})
    (root / "v/zero.mp4").write_bytes(b"")
    entries.insert(3, {"path": "v/zero.mp4", "labels": ["a"]})  # skipped when indexed
    (root / "train.json").write_text(json.dumps({"videos": entries}))
    (root / "test.json").write_text(json.dumps({"videos": entries[:1]}))
    ds = DATASETS.get("generic")(root=str(root))
    return open_frames(ds, "train", StageStore(root / "stages"), size=16, budget_bytes=None)


BUILD = partial(build_backbone, "resnet18", {"width": 4}, 2)


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    """Factories of one fixed set of weights (a trained stage's model.pt): every extraction computes the same."""
    state = str(tmp_path_factory.mktemp("net") / "model.pt")
    torch.save(ClipNet(BUILD(), 2).state_dict(), state)
    return lambda: NetworkOnClips(BUILD, clip_len=2, state_path=state)


CHILD = """
import pickle, sys, time
from harness.features.shards import extract
source, factory, folder = pickle.load(open(sys.argv[1], "rb"))

def slow(device):
    video_fn = factory(device)

    def fn(frames):
        time.sleep(0.5)  # slow enough to be killed midway
        return video_fn(frames)
    return fn

extract(folder, source, slow, shard_size=2)
"""


def test_killed_extraction_resumes_at_the_first_missing_shard(source, factory, tmp_path, one_thread):
    folder = tmp_path / "x"
    (tmp_path / "job.pkl").write_bytes(pickle.dumps((source, factory(), str(folder))))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "job.pkl")], env={**os.environ})
    deadline = time.time() + 300
    while len(missing_shards(folder, 4)) > 2 and child.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)  # a real kill: no exception handler, no clean-up runs
    child.wait()
    before = sorted(set(range(4)) - set(missing_shards(folder, 4)))
    assert before == [0, 1] and not (folder / "index.json").exists()

    resumed: list[int] = []
    arrays = extract(tmp_path / "x", source, factory(), shard_size=2, on_shard=resumed.append)
    assert resumed == [2, 3]  # restarted at the first missing shard: 0 and 1 were not recomputed

    fresh: list[int] = []
    reference = extract(tmp_path / "fresh", source, factory(), shard_size=2, on_shard=fresh.append)
    assert fresh == [0, 1, 2, 3]
    assert arrays.video_ids == source.video_ids and len(arrays) == NUM_VIDEOS
    assert arrays.lengths.tolist() == [n // 2 for n in source.lengths.tolist()]
    for name in ("features", "logits"):
        assert np.array_equal(arrays.padded(name), reference.padded(name))
    assert isinstance(arrays.get("logits", source.video_ids[4]), np.memmap)
    assert arrays.get("logits", source.video_ids[4]).shape == (source.lengths[4] // 2, 2)

    done: list[int] = []
    extract(tmp_path / "x", source, factory(), shard_size=2, on_shard=done.append)
    assert done == []  # complete: nothing recomputed


def test_sharded_stage_in_the_store(source, factory, tmp_path, one_thread):
    store = StageStore(tmp_path / "stages")
    deps = {"what": "test"}
    arrays = sharded_stage(store, "timesteps", deps, source, factory(), shard_size=3)
    assert store.exists("timesteps", deps) and arrays.num_shards == 3
    again: list[int] = []
    again_arrays = sharded_stage(store, "timesteps", deps, source, factory(), shard_size=3, on_shard=again.append)
    assert again_arrays.key == arrays.key
    assert again == []


def test_read_gives_the_rows_without_mapping_the_files(source, factory, tmp_path, one_thread):
    """A pass over a whole split reads rows from the files: the same arrays as the memory-mapped ``row``, and
    no shard file stays mapped into the process (a map would grow its resident set with the split)."""
    extract(tmp_path / "x", source, factory(), shard_size=3)
    arrays = ShardedArrays(tmp_path / "x")  # fresh: nothing mapped yet
    read = {name: [arrays.read(name, r) for r in range(len(arrays))] for name in ("features", "logits")}
    with open("/proc/self/maps") as f:
        assert str(tmp_path / "x") not in f.read()
    for name, rows in read.items():
        for r, values in enumerate(rows):
            assert np.array_equal(values, arrays.row(name, r)) and values.flags.writeable
            assert len(values) == arrays.lengths[r]


def test_ray_data_actor_pool_writes_the_same_shards(source, factory, tmp_path, one_thread):
    ray = pytest.importorskip("ray")
    local = extract(tmp_path / "local", source, factory(), shard_size=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        written: list[int] = []
        remote = extract(tmp_path / "ray", source, factory(), shard_size=2, ray_actors=2, on_shard=written.append)
    finally:
        ray.shutdown()
    assert sorted(written) == [0, 1, 2, 3]
    assert isinstance(remote, ShardedArrays) and remote.video_ids == local.video_ids
    for name in ("features", "logits"):
        np.testing.assert_allclose(remote.padded(name), local.padded(name), rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_extraction_matches_cpu_through_pinned_loader(source, factory, tmp_path):
    from harness.data.streaming import FrameRequests, frame_loader

    batch = next(iter(frame_loader(FrameRequests(source), batch_size=2, workers=1, device="cuda")))
    assert batch["frames"].is_pinned()
    cpu = extract(tmp_path / "cpu", source, factory(), shard_size=3)
    gpu = extract(tmp_path / "gpu", source, factory(), shard_size=3, device="cuda")
    np.testing.assert_allclose(gpu.padded("logits"), cpu.padded("logits"), rtol=1e-3, atol=1e-3)
