"""Decode time of the frame patterns the selection methods declare, against decoding every frame.

    python benchmarks/decode_cost.py [--root data/skim-digits] [--videos 8]

On the built-in benchmark (skim-digits move4 small: 96 frames of 32x32, 24 clips of 4 frames;
generated under --root if missing), each pattern's frames are decoded from the real files with
``harness.decode_cost.decode_ms`` (decord, 1 thread; 1 warm-up, median of 5) on the first test
videos. Prints milliseconds per video and the ratio to decoding every frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.data.decoding import open_video  # noqa: E402
from harness.data.synthetic import make  # noqa: E402
from harness.decode_cost import clip_frames, decode_ms  # noqa: E402

CLIP_LEN, K = 4, 4


def patterns(num_frames: int) -> dict[str, np.ndarray]:
    clips = num_frames // CLIP_LEN
    uniform = np.floor((np.arange(K) + 0.5) * clips / K).astype(int)  # segment centres
    return {
        "every frame (dense, SCSampler's sampler)": np.arange(num_frames),
        f"uniform {K} clips, 3D heavy": np.array(clip_frames(uniform, CLIP_LEN)),
        f"uniform {K} clips, 2D heavy (middle frames)": np.array(clip_frames(uniform, CLIP_LEN, middle_only=True)),
        "middle frame of every clip (LiteEval / VideoEpitoma cheap pass)": np.array(
            clip_frames(range(clips), CLIP_LEN, middle_only=True)
        ),
        f"first {K} clips (SEQ-K)": np.arange(K * CLIP_LEN),
        "first frame only (opening the file)": np.arange(1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/skim-digits")
    parser.add_argument("--videos", type=int, default=8)
    args = parser.parse_args()
    folder, _ = make(size="small", variant="move4", seed=0, root=args.root)
    test = json.loads((folder / "test.json").read_text())
    entries = test["videos"] if isinstance(test, dict) else test
    paths = [str(folder / e["path"]) for e in entries[: args.videos]]
    times: dict[str, list[float]] = {}
    for path in paths:
        for name, indices in patterns(len(open_video(path))).items():
            times.setdefault(name, []).append(decode_ms(path, indices, warmup=1, repeats=5))
    reference = float(np.median(times["every frame (dense, SCSampler's sampler)"]))
    print(f"{len(paths)} test videos of {folder.name}; median ms per video (ratio to every frame)")
    for name, values in times.items():
        print(f"  {name:66s} {np.median(values):7.2f} ms  ({np.median(values) / reference:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
