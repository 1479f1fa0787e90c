"""Data-loading benchmark: the harness's loader versus raw decord, and the feature cache's speed-up.

    .venv/bin/python benchmarks/data_loading.py [--threads 1] [--repeats 3]

1. Frames per second of ``harness.data.decoding.read_frames`` (backend auto) versus raw
   ``decord.VideoReader(...).get_batch(...).asnumpy()`` on the same videos, indices and thread count,
   for sequential (every frame), strided (every 4th) and random (32 frames, unsorted) access. Each
   call opens the video, as a data loader does. Best of ``--repeats``, alternating the two; both
   CPU time of this process (robust when other processes load the machine) and wall-clock time.
   Target ratio >= 0.9.
2. The speed-up of a second run served from the stage store: per-clip features of a small CNN
   over the ``skim-digits`` small test split (decode + compute vs memory-mapped read), and the frame
   bank itself (decode vs memory-mapped read). Target >= 20x.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: F401,E402  (before decord, see harness.data)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from harness.data.bank import load_frame_bank  # noqa: E402
from harness.data.decoding import read_frames  # noqa: E402
from harness.data.features import cached_array_stage  # noqa: E402
from harness.data.synthetic import sample_video_paths  # noqa: E402
from harness.registry import DATASETS  # noqa: E402
from harness.stages import StageStore  # noqa: E402


def patterns(n: int, rng: np.random.Generator) -> dict[str, list[int]]:
    return {
        "sequential": list(range(n)),
        "strided": list(range(0, n, 4)),
        "random": rng.choice(n, size=min(32, n), replace=False).tolist(),
    }


def raw_decord(path: str, indices: list[int], threads: int) -> np.ndarray:
    import decord

    return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads).get_batch(indices).asnumpy()


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cpu_and_wall(fn) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def loader_benchmark(videos: list[str], threads: int, repeats: int) -> None:
    import decord

    rng = np.random.default_rng(0)
    print(
        f"\n1. loader vs raw decord ({len(videos)} videos, {threads} decoder thread(s), best of {repeats}, alternating)"
    )
    print("   fps per CPU-second of this process (robust on a shared machine) and per wall-clock second")
    print(
        f"{'access':<11} {'frames':>7} {'raw cpu-fps':>12} {'ours cpu-fps':>13} {'ratio':>6} {'raw wall-fps':>13} {'ours wall-fps':>14} {'ratio':>6}"  # noqa: E501
    )
    per_video = {v: patterns(len(decord.VideoReader(v)), rng) for v in videos}
    for name in ("sequential", "strided", "random"):
        frames = sum(len(p[name]) for p in per_video.values())
        raw, ours = np.zeros(2), np.zeros(2)  # (cpu s, wall s), summed over videos of the best repeat
        for video, pats in per_video.items():
            raw_t, our_t = [], []
            for _ in range(repeats):  # alternate, so that load from other processes hits both alike
                raw_t.append(cpu_and_wall(lambda: raw_decord(video, pats[name], threads)))
                our_t.append(cpu_and_wall(lambda: read_frames(video, pats[name], num_threads=threads)))
            raw += np.min(raw_t, axis=0)
            ours += np.min(our_t, axis=0)
        print(
            f"{name:<11} {frames:>7} {frames / raw[0]:>12.0f} {frames / ours[0]:>13.0f} {raw[0] / ours[0]:>5.2f}x"
            f" {frames / raw[1]:>13.0f} {frames / ours[1]:>14.0f} {raw[1] / ours[1]:>5.2f}x"
        )


class TinyCNN(torch.nn.Module):
    """A stand-in feature extractor: 3 conv layers over each frame, mean-pooled per 4-frame clip."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(64, 128, 3, stride=2, padding=1),
            torch.nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # uint8 [T,H,W,3] -> [T//4, 128]
        x = frames.permute(0, 3, 1, 2).float() / 255
        f = self.net(x).flatten(1)
        return f[: len(f) // 4 * 4].reshape(-1, 4, f.shape[1]).mean(1)


def cache_benchmark(root: str, repeats: int) -> None:
    torch.manual_seed(0)
    dataset = DATASETS.get("skim-digits")(size="small", root=root)
    dataset.split("test")  # generate outside the timings
    model = TinyCNN().eval()
    with tempfile.TemporaryDirectory() as tmp:
        store = StageStore(tmp)
        t = time.perf_counter()
        bank = load_frame_bank(dataset, "test", store)
        bank_first = time.perf_counter() - t

        def features() -> np.ndarray:
            with torch.inference_mode():
                return np.stack([model(bank.video(v)).numpy() for v in bank.video_ids])

        deps = {"manifest": dataset.manifest_hash(), "backbone": "TinyCNN", "weights": "seed0", "sampling": "clips4"}
        t = time.perf_counter()
        first = np.asarray(cached_array_stage(store, "features", deps, features))
        feat_first = time.perf_counter() - t + bank_first  # a cold run decodes, then computes

        def warm_bank() -> None:
            b = load_frame_bank(dataset, "test", store)
            float(np.asarray(b.frames).sum())  # touch every frame

        def warm_features() -> None:
            f = cached_array_stage(store, "features", deps, features)
            assert np.array_equal(np.asarray(f), first)

        bank_warm = best_time(warm_bank, repeats)
        feat_warm = best_time(warm_features, repeats)
    print(
        f"\n2. stage-store cache (skim-digits small, test split: {len(bank.video_ids)} videos x {bank.frames.shape[1]} frames)"  # noqa: E501
    )
    print(f"{'what':<34} {'first run s':>11} {'cached s':>9} {'speed-up':>9}")
    print(
        f"{'frame bank (decode vs mmap read)':<34} {bank_first:>11.3f} {bank_warm:>9.4f} {bank_first / bank_warm:>8.0f}x"  # noqa: E501
    )
    print(
        f"{'clip features (decode+CNN vs mmap)':<34} {feat_first:>11.3f} {feat_warm:>9.4f} {feat_first / feat_warm:>8.0f}x"  # noqa: E501
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--root", default="data/skim-digits", help="where skim-digits small is (generated if absent)")
    args = parser.parse_args()
    dataset = DATASETS.get("skim-digits")(size="small", root=args.root)
    synthetic = [r.path for r in dataset.split("test")[:20]]
    videos = [str(p) for p in sample_video_paths()] + synthetic
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; videos: the bundled sample videos "
        f"(176x144 to 1280x720) + 20 skim-digits small videos (32x32)"
    )
    loader_benchmark(videos, args.threads, args.repeats)
    cache_benchmark(args.root, args.repeats)


if __name__ == "__main__":
    main()
