"""What fixed sampling rules see of the built-in benchmark's informative clips, from its ground truth.

``skimbench data coverage --variant move4 --size small`` (generating the copy first if it is
missing) reads the per-frame ``relevance`` of every video of a split, cuts each video into its
4-frame clips (a clip is informative when its frames are relevant) and prints, for each rule and K:

- ``videos hit``: the share of videos in which at least one of the K clips is informative;
- ``informative share``: the share of the K selected clips that are informative (mean over videos);
- ``informative seen``: the share of a video's informative clips that the K clips include (mean).

Rules, on the C clips of a video: ``uniform (centres)``, the centres of K equal bins (TSN's test
rule, ``harness.data.sampling.uniform_frames``); ``uniform (endpoints)``, K clips evenly spaced with
the first and the last clip of the video included (SCSampler section 4.1.2; K = 1 takes the centre;
``uniform_frames(..., placement="endpoints")``);
``random``, the exact expectation over all K-subsets of clips (no sampling noise); ``dense``,
every clip (K = C).
"""
from __future__ import annotations

import json
from math import comb
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.data.sampling import uniform_frames
from harness.data.synthetic import CLIP_LEN

RULES = ("uniform (centres)", "uniform (endpoints)", "random", "dense")


def informative_clips(relevance: str, clip_len: int = CLIP_LEN) -> np.ndarray:
    """bool ``[C]``: which whole clips of ``clip_len`` frames hold a relevant frame (a trailing partial
    clip is dropped)."""
    frames = np.array([c == "1" for c in relevance], dtype=bool)
    clips = len(frames) // clip_len
    return frames[: clips * clip_len].reshape(clips, clip_len).any(1)


def _seen(informative: np.ndarray, picked: np.ndarray) -> tuple[float, float, float]:
    hits = informative[picked]
    total = informative.sum()
    return float(hits.any()), float(hits.mean()), float(hits.sum() / total) if total else 0.0


def _random(informative: np.ndarray, k: int) -> tuple[float, float, float]:
    """Exact expectations for K distinct clips drawn uniformly at random."""
    c, i = len(informative), int(informative.sum())
    k = min(k, c)
    return 1 - comb(c - i, k) / comb(c, k), i / c, k / c if i else 0.0


def coverage_rows(relevances: Sequence[str], ks: Sequence[int], clip_len: int = CLIP_LEN) -> list[dict[str, object]]:
    """One row per (rule, K): the three shares, averaged over the videos whose ``relevance`` strings are given."""
    videos = [informative_clips(r, clip_len) for r in relevances]
    num_clips = {len(v) for v in videos}
    rows = []
    for rule in RULES:
        for k in ([max(num_clips)] if rule == "dense" else ks):
            per_video = []
            for informative in videos:
                c = len(informative)
                if rule == "random":
                    per_video.append(_random(informative, k))
                    continue
                picked = {"uniform (centres)": lambda: uniform_frames(c, k),
                          "uniform (endpoints)": lambda: uniform_frames(c, k, placement="endpoints"),
                          "dense": lambda: np.arange(c)}[rule]()
                per_video.append(_seen(informative, picked))
            hit, share, seen = np.mean(per_video, axis=0)
            rows.append({"rule": rule, "k": k, "videos_hit": hit, "informative_share": share, "informative_seen": seen})
    return rows


def format_rows(rows: list[dict[str, object]]) -> str:
    lines = ["| rule | K | videos hit | informative share of the K clips | informative clips seen |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['rule']} | {row['k']} | {row['videos_hit']:.2f} | {row['informative_share']:.2f} "
                     f"| {row['informative_seen']:.2f} |")
    return "\n".join(lines)


def split_relevance(folder: Path, split: str) -> list[str]:
    """The ``relevance`` strings of a generated copy's split (its ground truth)."""
    doc = json.loads((folder / f"{split}.json").read_text())
    return [video["relevance"] for video in doc["videos"]]
