"""Which frames share an SGS bin? A trained ATFR's bins on ``skim-digits`` test videos, read against the
generator's ground truth (docs/sgs.md, "Why ATFR trails its base network here").

    python experiments/sgs_bins.py [--spec experiments/sgs_claims.yaml] [--label atfr] [--seed 0] [--bins 16]
        [--set KEY=VALUE ...] [--videos N]

Builds the trial exactly as ``skimbench run`` does (same spec, same stage store: the network is loaded
from the store, trained there first if absent), runs the method's own batched forward on the test
videos, and reads each sampled frame's bin from ``Prediction.extras["bin_of_frame"]`` (with the linear
kernel a frame has weight in exactly one bin). Frames are the T sampled frames; a frame is informative
when the annotations mark it relevant (the actor moves); the actor's position comes from ``actor_xy``.
Prints:

- B', the informative sampled frames per video and the bins they occupy;
- the share of informative frames that share their bin with another informative frame, and the
  share of such bins that also hold uninformative frames;
- the spread of the actor's position inside a bin (largest distance between two of its informative
  frames, on the torus the digit wraps around), against the distance between consecutive sampled frames;
- the share of multi-frame bins whose frames are consecutive samples, against the same bins sizes
  drawn at random over the video's frames;
- whether the order the layers after SGS see (kept bins in magnitude order) follows the actor's
  motion: the share of pairs of informative frames in different bins whose bin order agrees with
  their time order (0.5: no information about the direction; 0 or 1: the order is time, reversed or not);
- top-1, overall and by the number of bins the informative frames occupy, and the confusion matrix
  (on move4, a model that cannot tell the order of its frames confuses each motion with its reverse).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.grid import expand  # noqa: E402  (after the path: runs from a checkout)
from harness.spec import load_spec, parse_override  # noqa: E402
from harness.stages import StageStore  # noqa: E402
from harness.trial import build_context  # noqa: E402


def pick_trial(spec_path: str, overrides: list[str], label: str, seed: int, bins: int):
    spec = load_spec(spec_path, dict(parse_override(text) for text in overrides))
    for trial in expand(spec):
        if trial.label == label and trial.seed == seed and trial.method.params.get("bins_test") in (bins, None):
            return spec, trial
    raise SystemExit(f"{spec_path}: no trial labelled '{label}' with seed {seed} and bins_test {bins}")


def unrolled_time(relevance: np.ndarray) -> np.ndarray:
    """Each frame's time since the informative segment started, the segment read around the circle
    (a move4 segment may run over the end of the video and continue at its start)."""
    n = len(relevance)
    starts = [t for t in range(n) if relevance[t] and not relevance[t - 1]]
    start = starts[0] if starts else 0
    return (np.arange(n) - start) % n


def torus_distance(a: np.ndarray, b: np.ndarray, size: int) -> float:
    d = np.abs(a - b) % size
    return float(np.hypot(*np.minimum(d, size - d)))


def video_figures(bin_of_frame: list[int], frames: list[int], entry: dict, resolution: int, rng) -> dict:
    """The figures of one video: ``bin_of_frame[i]`` is the kept-bin rank of sampled frame ``frames[i]``."""
    bins, frames = np.asarray(bin_of_frame), np.asarray(frames)
    relevance = np.array([int(c) for c in entry["relevance"]])
    informative = relevance[frames] == 1
    position = {t: np.array([x, y]) for t, x, y in entry["actor_xy"]}
    time = unrolled_time(relevance)[frames]
    out = {"informative": int(informative.sum()), "inf_bins": len(set(bins[informative]) - {-1})}
    shared, mixed, spread, contiguous, chance = 0, [], [], [], []
    for b in set(bins) - {-1}:
        members = np.flatnonzero(bins == b)
        inf = members[informative[members]]
        if len(inf) >= 2:
            shared += len(inf)
            mixed.append(bool((~informative[members]).any()))
            points = [position[int(frames[i])] for i in inf]
            spread.append(max(torus_distance(p, q, resolution) for p in points for q in points))
        if len(members) >= 2:
            contiguous.append(bool(members[-1] - members[0] == len(members) - 1))
            drawn = np.sort(rng.choice(len(bins), size=len(members), replace=False))
            chance.append(bool(drawn[-1] - drawn[0] == len(members) - 1))
    shuffled = rng.permutation(max(int(bins.max()), 0) + 1)  # the kept bins in a random order
    pairs = agree = agree_chance = 0
    inf_idx = np.flatnonzero(informative & (bins >= 0))
    for i in inf_idx:
        for j in inf_idx:
            if time[i] < time[j] and bins[i] != bins[j]:
                pairs += 1
                agree += int(bins[i] < bins[j])
                agree_chance += int(shuffled[bins[i]] < shuffled[bins[j]])
    steps = [
        torus_distance(position[int(frames[i])], position[int(frames[j])], resolution)
        for i, j in zip(inf_idx[:-1], inf_idx[1:])
        if time[j] > time[i]
    ]
    out.update(shared=shared, mixed=mixed, spread=spread, contiguous=contiguous, chance=chance, step=steps)
    out["order_agree"] = agree / pairs if pairs else None
    out["order_chance"] = agree_chance / pairs if pairs else None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="experiments/sgs_claims.yaml")
    parser.add_argument("--label", default="atfr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bins", type=int, default=16, help="bins_test of the trial (default 16; base mode: ignored)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="spec override, as for run")
    parser.add_argument("--videos", type=int, default=None, help="only the first N test videos")
    args = parser.parse_args(argv)

    spec, trial = pick_trial(args.spec, args.set, args.label, args.seed, args.bins)
    with tempfile.TemporaryDirectory() as work:
        ctx, method = build_context(trial, StageStore(Path(spec.output) / "stages"), Path(work), log=print)
        test = ctx.dataset.split("test")[: args.videos]
        method.fit(ctx.dataset.split("train"))
        method.eval_mode()
        with torch.inference_mode():
            predictions = method.predict_batch(test)
        annotations = json.loads((ctx.dataset.folder / "test.json").read_text())
        resolution = int(ctx.dataset.config["resolution"])
    entries = {v["id"]: v for v in annotations["videos"]}
    names = ctx.dataset.class_names
    labels = np.array([record.labels[0] for record in test])
    predicted = np.array([int(np.argmax(p.scores)) for p in predictions])
    print(f"{trial.label} seed {trial.seed}, {len(test)} test videos: top-1 {np.mean(labels == predicted):.1%}")
    if "bin_of_frame" in predictions[0].extras:
        rng = np.random.default_rng(0)
        rows = [
            video_figures(p.extras["bin_of_frame"], p.extras["frames"], entries[r.video_id], resolution, rng)
            | {"bins": p.extras["bins"]}
            for r, p in zip(test, predictions)
        ]
        print_bins(rows, labels == predicted, args.bins, len(predictions[0].extras["frames"]), resolution)
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    print("  confusion (rows: true class, columns: predicted): " + " ".join(f"{n:>6}" for n in names))
    for name, line in zip(names, confusion):
        print(f"    {name:>6} " + " ".join(f"{c:6d}" for c in line))
    return 0


def print_bins(rows: list[dict], correct: np.ndarray, bins: int, frames: int, resolution: int) -> None:
    def flat(key):
        return [x for r in rows for x in r[key]]

    def mean(key):
        return np.mean([r[key] for r in rows if r[key] is not None])

    def far_from_half(key):
        return np.mean([abs(r[key] - 0.5) for r in rows if r[key] is not None])

    shared = sum(r["shared"] for r in rows) / sum(r["informative"] for r in rows)
    print(
        f"  bins_test {bins}, T = {frames}: B' mean {mean('bins'):.1f}; informative sampled frames "
        f"{mean('informative'):.1f}, in {mean('inf_bins'):.1f} bins"
    )
    print(f"  informative frames sharing their bin with another informative frame: {shared:.0%}")
    print(f"  bins with >= 2 informative frames that also hold uninformative ones: {np.mean(flat('mixed')):.0%}")
    print(
        f"  actor's position spread inside a bin: mean {np.mean(flat('spread')):.1f} px, median "
        f"{np.median(flat('spread')):.1f} px (consecutive sampled informative frames: {np.mean(flat('step')):.1f} px "
        f"apart; frame {resolution} px)"
    )
    print(
        f"  multi-frame bins whose frames are consecutive samples: {np.mean(flat('contiguous')):.0%} "
        f"(the same bin sizes drawn at random: {np.mean(flat('chance')):.0%})"
    )
    print(
        f"  informative pairs in different bins whose bin order follows their time order: {mean('order_agree'):.2f}; "
        f"per video |share - 1/2| {far_from_half('order_agree'):.2f} (bins in a random order: "
        f"{far_from_half('order_chance'):.2f}; 1/2: the order says nothing of the direction)"
    )
    occupied = np.array([r["inf_bins"] for r in rows])
    print("  top-1 by the bins the informative frames occupy:")
    for low, high in ((0, 2), (3, 4), (5, 6), (7, 99)):
        chosen = (occupied >= low) & (occupied <= high)
        if chosen.any():
            print(f"    {low}-{high} bins: {chosen.sum()} videos, top-1 {correct[chosen].mean():.1%}")


if __name__ == "__main__":
    sys.exit(main())
