"""Scale benchmark: bounded memory on the streaming path, loader throughput, resumable extraction.

    python benchmarks/scale.py [--videos 20] [--frames 192] [--resolution 64] [--workers 2] [--parts abc]

Data: the built-in ``skim-digits`` benchmark generated at ``--resolution`` px with ``--frames`` frames
per video, once with ``--videos`` (N) and once with 10 x N training videos (under ``--root``).

(a) Bounded memory. The same small grid -- uniform, SCSampler and SGS (end-to-end) on an R3D-18
    at width 8 -- run by ``skimbench run --local`` on the N and on the 10 x N training split, forced
    onto the streaming path (``evaluation.frame_bank_gb: 0``: the shared classifier and SGS train
    through the streaming loader, the per-timestep tables are sharded extractions), each in a fresh
    process: peak RSS of the process and of its DataLoader workers, and the ratio 10N / N.
    Target <= 1.2. A forked worker's RSS includes the pages it shares copy-on-write with the process
    (their sum counts those twice). The full-size check (more than 8 GB of decoded frames, more than a third of a 24 GB
    machine): ``--videos 100 --frames 704 --parts a --copies`` (1000 x 704 x 64 x 64 x 3 = 8.65 GB). With
    ``--copies`` the 10 x N set lists each of the N generated videos 10 times (hard links: every copy is
    decoded again, the same bytes), because generating 1000 distinct 704-frame videos takes about an hour on
    2 shared cores; without it the 10 x N videos are generated.
(b) Loader throughput. Frames per second of ``frame_loader`` (``StreamedFrames``) versus a plain
    DataLoader whose dataset calls raw ``decord.VideoReader(path, num_threads=1).get_batch(indices)``,
    on the same videos (the N set), the same 16 uniform indices per video, the same worker count and
    batch size. Best of ``--repeats``, alternating; by CPU time of the loader and its workers (robust
    when other processes share the machine) and by wall time. Target >= 0.9x.
(c) Resumable extraction. An extraction (shards of 2 videos) runs in a child process that is
    SIGKILLed once half of its shards are on disk; the extraction is then run again. Prints the shards
    on disk before the kill, the shards computed on resume, and how many of the former were
    recomputed (target 0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: F401,E402  (before decord, see harness.data)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from harness.backbones import build_backbone  # noqa: E402
from harness.data.sampling import uniform_frames  # noqa: E402
from harness.data.streaming import FrameRequests, decoded_bytes, frame_loader, open_frames, video_index  # noqa: E402
from harness.data.synthetic import make  # noqa: E402
from harness.features.shards import NetworkOnClips, extract, missing_shards, shard_rows  # noqa: E402
from harness.registry import DATASETS  # noqa: E402
from harness.stages import StageStore  # noqa: E402

CLIP_LEN = 4


def generated(args: argparse.Namespace, videos: int) -> Path:
    """The folder of skim-digits with ``videos`` training videos, generated once (outside every measurement).
    With ``--copies`` a set larger than N is the N set's videos, each linked ``videos / N`` times."""
    if args.copies and videos > args.videos:
        return linked_copies(generated(args, args.videos), videos // args.videos)
    folder, _ = make(
        size="tiny",
        root=args.root,
        resolution=args.resolution,
        num_frames=args.frames,
        num_train=videos,
        num_test=2,
        workers=args.workers,
    )
    return folder


def linked_copies(folder: Path, times: int) -> Path:
    """``folder`` with its training videos listed ``times`` times (ids ``<id>_c<i>``, hard links to the same
    files): decoding it reads ``times`` x the frames; made in seconds instead of generated in an hour."""
    out = folder.with_name(f"{folder.name}-x{times}")
    if (out / "train.json").exists():
        return out
    for split in ("train", "test"):
        (out / "videos" / split).mkdir(parents=True, exist_ok=True)
        annotations = json.loads((folder / f"{split}.json").read_text())
        videos = []
        for copy in range(times if split == "train" else 1):
            for v in annotations["videos"]:
                suffix = f"_c{copy}" if split == "train" else ""
                path = Path(v["path"]).with_name(f"{v['id']}{suffix}{Path(v['path']).suffix}")
                if not (out / path).exists():
                    os.link(folder / v["path"], out / path)
                videos.append({**v, "id": f"{v['id']}{suffix}", "path": str(path)})
        (out / f"{split}.tmp").write_text(json.dumps({**annotations, "videos": videos}))
    for split in ("test", "train"):  # train.json last: the copy is complete
        os.replace(out / f"{split}.tmp", out / f"{split}.json")
    return out


def dataset(args: argparse.Namespace, videos: int):
    """The benchmark set with ``videos`` training videos, read as generic."""
    return DATASETS.get("generic")(root=str(generated(args, videos)))


def streamed(args: argparse.Namespace, videos: int):
    return open_frames(dataset(args, videos), "train", StageStore(Path(args.root) / "stages"), budget_bytes=None)


def factory(num_classes: int) -> NetworkOnClips:
    return NetworkOnClips(partial(build_backbone, "resnet18", {"width": 8}, num_classes), clip_len=CLIP_LEN)


# ------------------------------------------------------------------------------------------------
# (a) bounded memory
# ------------------------------------------------------------------------------------------------
GRID = """\
experiment: scale-{videos}
dataset: {{name: generic, params: {{root: "{root}"}}}}
backbones: [{{name: r3d_18, params: {{width: 8, input_size: {resolution}}}}}]
seeds: [0]
methods:
  - {{name: uniform, params: {{k: 2}}}}
  - {{name: scsampler, params: {{k: 2}}}}
  - {{name: sgs, params: {{frames: 8, epochs: 1, batch_size: 8}}}}
evaluation: {{frame_bank_gb: 0, heavy_epochs: 1, batch_size: 2, latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{out}/mlflow.db"}}
output: "{out}/results"
"""


def child_grid(args: argparse.Namespace) -> None:
    """Run in a fresh process: the grid on the streaming path (``frame_bank_gb: 0``), in this process
    (``--local``: trials one after another); print peak RSS (MB) of this process and of its loader workers."""
    from harness.cli import main as skimbench  # lazy: only the measured child needs the CLI

    folder = generated(args, args.child_videos)
    index = video_index(DATASETS.get("generic")(root=str(folder)), "train", StageStore(Path(args.root) / "stages"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "grid.yaml"
        spec.write_text(GRID.format(videos=args.child_videos, root=folder, resolution=args.resolution, out=tmp))
        code = skimbench(["run", str(spec), "--local", "--no-report", "--quiet"])
        streamed_stages = not (Path(tmp) / "results" / "stages" / "frames").exists()
    print(
        json.dumps(
            {
                "videos": len(index["videos"]),
                "exit": code,
                "no_frame_bank": streamed_stages,
                "decoded_gb": decoded_bytes(index, None) / 1e9,
                "seconds": time.perf_counter() - started,
                "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def bounded_memory(args: argparse.Namespace) -> None:
    print(
        f"\n(a) bounded memory: the grid uniform + SCSampler + SGS (--local, shared stages streamed and "
        f"sharded), {args.resolution} px, {args.frames} frames/video, one loader worker per trial CPU"
    )
    print(
        f"{'videos':>7} {'decoded GB':>10} {'exit':>4} {'seconds':>8} {'peak RSS main MB':>16} {'worker MB':>9}"
        f" {'total MB':>8}",
        flush=True,
    )
    rows = []
    for videos in (args.videos, 10 * args.videos):
        dataset(args, videos)  # generated outside the measured process
        cmd = [sys.executable, __file__, "--child-videos", str(videos), *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        rows.append(r)
        print(  # each row as soon as it is measured: the 10 x N run takes long
            f"{r['videos']:>7} {r['decoded_gb']:>10.2f} {r['exit']:>4} {r['seconds']:>8.1f}"
            f" {r['rss_main_mb']:>16.0f} {r['rss_worker_mb']:>9.0f} {r['rss_main_mb'] + r['rss_worker_mb']:>8.0f}",
            flush=True,
        )
    total = [r["rss_main_mb"] + r["rss_worker_mb"] for r in rows]
    print(
        f"peak RSS ratio 10N / N: {total[1] / total[0]:.2f} (target <= 1.2); "
        f"no frame bank written: {all(r['no_frame_bank'] for r in rows)}"
    )


# ------------------------------------------------------------------------------------------------
# (b) loader throughput
# ------------------------------------------------------------------------------------------------
class RawDecord(Dataset):
    def __init__(self, paths: list[str], indices: list[np.ndarray]):
        self.paths, self.indices = paths, indices

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        import decord

        return torch.from_numpy(
            decord.VideoReader(self.paths[i], ctx=decord.cpu(0), num_threads=1)
            .get_batch(self.indices[i].tolist())
            .asnumpy()
        )


def throughput(args: argparse.Namespace) -> None:
    frames = streamed(args, args.videos)
    indices = [uniform_frames(int(n), 16) for n in frames.lengths]
    total = sum(len(i) for i in indices)
    ours = frame_loader(FrameRequests(frames, indices=indices), batch_size=4, workers=args.workers)
    raw = DataLoader(
        RawDecord(frames.paths, [frames.file_indices(r, i) for r, i in enumerate(indices)]),
        batch_size=4,
        num_workers=args.workers,
        prefetch_factor=2 if args.workers else None,
    )

    def cpu_seconds() -> float:  # this process and its reaped DataLoader workers
        own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime

    def run(loader) -> tuple[float, float]:
        cpu, wall = cpu_seconds(), time.perf_counter()
        for _ in loader:
            pass
        return cpu_seconds() - cpu, time.perf_counter() - wall

    raw_t, our_t = [], []
    for _ in range(args.repeats):  # alternate, so that other load on the machine hits both alike
        raw_t.append(run(raw))
        our_t.append(run(ours))
    (raw_cpu, raw_wall), (our_cpu, our_wall) = np.min(raw_t, axis=0), np.min(our_t, axis=0)
    print(
        f"\n(b) loader throughput: {len(frames)} videos x 16 frames at {args.resolution} px, "
        f"{args.workers} worker(s), "
        f"batch 4, best of {args.repeats}; frames per CPU-second (loader + workers: robust on a shared machine) "
        f"and per wall-clock second"
    )
    print(f"raw decord get_batch: {total / raw_cpu:8.0f} cpu-fps {total / raw_wall:8.0f} wall-fps")
    print(f"streaming loader    : {total / our_cpu:8.0f} cpu-fps {total / our_wall:8.0f} wall-fps")
    print(f"ratio: {raw_cpu / our_cpu:.2f}x by CPU time, {raw_wall / our_wall:.2f}x by wall time (target >= 0.9)")


# ------------------------------------------------------------------------------------------------
# (c) resumable extraction
# ------------------------------------------------------------------------------------------------
def child_resumable(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    frames = streamed(args, args.videos)
    extract(args.child_folder, frames, factory(len(dataset(args, args.videos).class_names)), shard_size=2)


def resumable(args: argparse.Namespace) -> None:
    frames = streamed(args, args.videos)
    num_shards = len(shard_rows(len(frames), 2))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "x"
        child = subprocess.Popen([sys.executable, __file__, "--child-folder", str(folder), *sys.argv[1:]])
        while child.poll() is None and num_shards - len(missing_shards(folder, num_shards)) < num_shards // 2:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        before = [s for s in range(num_shards) if s not in missing_shards(folder, num_shards)]
        mtimes = {s: (folder / f"shard_{s:05d}" / "meta.json").stat().st_mtime_ns for s in before}
        computed: list[int] = []
        extract(
            folder, frames, factory(len(dataset(args, args.videos).class_names)), shard_size=2, on_shard=computed.append
        )
        redone = [
            s
            for s in before
            if s in computed or (folder / f"shard_{s:05d}" / "meta.json").stat().st_mtime_ns != mtimes[s]
        ]
    print(f"\n(c) resumable extraction: {num_shards} shards of 2 videos, child SIGKILLed midway")
    print(
        f"shards on disk before the kill: {len(before)}; computed on resume: {len(computed)}; "
        f"of the former recomputed: {len(redone)} (target 0)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20, help="N: training videos of the small set (10 x N: large)")
    parser.add_argument("--frames", type=int, default=192)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="abc", help="which of (a), (b), (c) to run")
    parser.add_argument("--root", default="data/scale-bench", help="where the generated copies go")
    parser.add_argument("--copies", action="store_true", help="(a): the 10 x N set links each of the N videos 10 times")
    parser.add_argument("--child-videos", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_videos:
        return child_grid(args)
    if args.child_folder:
        return child_resumable(args)
    for part, fn in (("b", throughput), ("c", resumable), ("a", bounded_memory)):
        if part in args.parts:
            fn(args)


if __name__ == "__main__":
    main()
