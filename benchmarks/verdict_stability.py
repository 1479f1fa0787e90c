"""Are the quickstart's verdicts stable? Run it twice, each from freshly generated data in its own output
folder (its own generation, stage store and MLflow store), build both reports, and compare them.

    python benchmarks/verdict_stability.py [--spec experiments/quickstart.yaml] [--only uniform,random]
        [--seeds 0,1,2] [--size small] [--data-seeds 0,0] [--local] [--keep DIR]

Prints (issue #12, items 6 and 7):
- how many claims got the same verdict in both runs, and how many flipped between "holds" and
  "does not hold" (target 0);
- the largest difference of any trial's top-1 (same label, budget and seed) between the two runs, in
  units of its 95% interval's half-width (a one-seed bootstrap over that trial's test videos, the
  mean of the two runs' half-widths);
- the seed-to-seed standard deviation of top-1 of every method and budget, in each run (target: at
  most 3 points), and the largest per method.

With the same data seed (the default) the two generations must be byte-identical (same manifest
hash): then every difference comes from the pipeline. ``--data-seeds 0,1`` draws a second benchmark
of the same size instead, to see how much the verdicts move with the data. Verdicts, intervals and
seed summaries are read with the report's own functions (``harness.report``); each run also writes
its full report (``<out>/run_<i>/results/<experiment>/report.md``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.registry import METHODS  # noqa: E402
from harness.report.claims import FAILS, HOLDS, check_claims  # noqa: E402  (after the path: runs from a checkout)
from harness.report.collect import label_series, load_predictions, load_trials  # noqa: E402
from harness.report.evidence import Evidence, numeric_extras_means, per_video_facts, trial_intervals  # noqa: E402
from harness.report.pareto import finished, seed_summary  # noqa: E402

STD_TARGET = 3.0  # points of top-1, issue #12 item 7


def cli(args: list[str], env: dict) -> float:
    """Run ``skimbench ARGS`` in a subprocess; exit with its output on failure; return its seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if proc.returncode != 0:
        sys.exit(f"skimbench {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
    return time.perf_counter() - t0


def run_once(spec: dict, out: Path, data_seed: int, args: argparse.Namespace, env: dict) -> tuple[str, str]:
    """Generate the data, run the spec into ``out``; return (tracking uri, data folder name)."""
    out.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load(yaml.safe_dump(spec))  # a deep copy
    params = spec["dataset"].setdefault("params", {})
    params.update({"root": str(out / "data"), "seed": data_seed, "size": args.size or params.get("size", "small")})
    spec["output"] = str(out / "results")
    uri = f"sqlite:///{out}/results/mlflow.db"
    spec["tracking"] = {"uri": uri}
    spec_path = out / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    seconds = cli(
        [
            "data",
            "make",
            spec["dataset"]["name"],
            "--size",
            params["size"],
            "--variant",
            params.get("variant", "longrange"),
            "--seed",
            str(data_seed),
            "--root",
            str(out / "data"),
        ],
        env,
    )
    print(f"  {out.name}: generated {params['size']} (data seed {data_seed}) in {seconds:.0f} s", flush=True)
    run = ["run", str(spec_path), "--quiet"] + [f"--only={o}" for o in args.only]
    run += ([f"--seeds={args.seeds}"] if args.seeds else []) + (["--local"] if args.local else [])
    seconds = cli(run, env)
    print(f"  {out.name}: ran and reported in {seconds:.0f} s", flush=True)
    folders = sorted(p.name for p in (out / "data").iterdir() if p.is_dir())
    return uri, ",".join(folders)


def judged(uri: str, experiment: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(seed summary, claims, per-trial top-1 with its interval) of one run, by the report's functions."""
    trials = label_series(load_trials(uri, [experiment]))
    done = finished(trials)
    points = seed_summary(trials)
    predictions = {r: p for r in done["run_id"] if (p := load_predictions(uri, r)) is not None}
    evidence = Evidence(points, done, predictions, "top1_pct")
    points = evidence.with_intervals(points)
    declared = {m: dict(METHODS.get(m).video_facts) for m in done["method"].unique() if m in METHODS}
    contexts = evidence.context(per_video_facts(done, predictions, declared), numeric_extras_means(done, predictions))
    claims = check_claims(points, "top1_pct", contexts)
    per_trial = done[["label", "budget", "seed", "run_id", "top1_pct"]].merge(
        trial_intervals(uri, list(done["run_id"]), ("top1_pct",)), on="run_id"
    )
    return points, claims, per_trial


def claim_keys(claims: pd.DataFrame) -> pd.DataFrame:
    """Claims keyed by (dataset, backbone, id, n-th row of that id): a claim has one row per curve."""
    keyed = claims.assign(n=claims.groupby(["dataset", "backbone", "id"]).cumcount())
    return keyed.set_index(["dataset", "backbone", "id", "n"])


def compare_claims(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, int, int, pd.DataFrame]:
    """(same verdict, flipped holds <-> does not hold, compared) and the rows that differ."""
    both = (
        claim_keys(a)[["verdict"]]
        .rename(columns={"verdict": "verdict_a"})
        .join(claim_keys(b)[["verdict"]].rename(columns={"verdict": "verdict_b"}), how="outer")
    )
    same = int((both["verdict_a"] == both["verdict_b"]).sum())
    flips = (
        both["verdict_a"].isin([HOLDS, FAILS])
        & both["verdict_b"].isin([HOLDS, FAILS])
        & (both["verdict_a"] != both["verdict_b"])
    )
    return same, int(flips.sum()), len(both), both[both["verdict_a"] != both["verdict_b"]]


def compare_trials(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per trial in both runs: |top-1 difference| in points and in units of the interval's half-width."""
    keys = ["label", "budget", "seed"]
    both = a.fillna({"budget": -1}).merge(b.fillna({"budget": -1}), on=keys, suffixes=("_a", "_b"))
    half = ((both["top1_pct_hi_a"] - both["top1_pct_lo_a"]) + (both["top1_pct_hi_b"] - both["top1_pct_lo_b"])) / 4
    diff = (both["top1_pct_a"] - both["top1_pct_b"]).abs()
    return both.assign(diff=diff, half=half, units=diff / half.where(half > 0))


def std_table(points: list[pd.DataFrame]) -> pd.DataFrame:
    """Seed-to-seed std of top-1 per (label, budget), one column per run."""
    cols = []
    for i, p in enumerate(points):
        cols.append(p.set_index(["label", "budget"])["top1_pct_std"].rename(f"std run {i + 1}"))
        cols.append(p.set_index(["label", "budget"])["top1_pct_mean"].rename(f"mean run {i + 1}"))
    return pd.concat(cols, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="experiments/quickstart.yaml")
    parser.add_argument("--only", action="append", default=[], help="keep only these method entries (repeatable)")
    parser.add_argument("--seeds", help="replace the spec's seeds, e.g. 0,1,2")
    parser.add_argument("--size", help="benchmark size (default: the spec's)")
    parser.add_argument("--data-seeds", default="0,0", help="generator seeds of the two runs (default 0,0)")
    parser.add_argument("--local", action="store_true", help="run trials in-process instead of through Ray")
    parser.add_argument("--keep", help="write both runs here instead of a temporary folder")
    args = parser.parse_args()
    data_seeds = [int(s) for s in args.data_seeds.split(",")]
    if len(data_seeds) != 2:
        sys.exit("--data-seeds takes two generator seeds, e.g. 0,0")

    spec = yaml.safe_load((ROOT / args.spec).read_text())
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="skimbench-stability-") as tmp:
        out = Path(args.keep or tmp).resolve()
        print(
            f"verdict stability: {args.spec} twice -> {out} ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        runs = [run_once(spec, out / f"run_{i + 1}", seed, args, env) for i, seed in enumerate(data_seeds)]
        if data_seeds[0] == data_seeds[1]:
            same_data = runs[0][1] == runs[1][1]
            print(f"data: {runs[0][1]} vs {runs[1][1]}: {'same' if same_data else 'DIFFERENT'} manifest hash")
        results = [judged(uri, spec["experiment"]) for uri, _ in runs]  # `skimbench run` wrote each report

    (pa, ca, ta), (pb, cb, tb) = results
    same, flips, total, differ = compare_claims(ca, cb)
    print(
        f"\nclaims: {same} of {total} got the same verdict; {flips} flipped between holds and does not hold (target 0)"
    )
    if not differ.empty:
        print(differ.to_string())
    trials = compare_trials(ta, tb)
    if trials.empty:
        print("trials: none in both runs")
    else:
        worst = trials.sort_values("units", ascending=False).iloc[0]
        print(
            f"trials: {len(trials)} in both runs; largest top-1 difference {trials['diff'].max():.2f} points; "
            f"in units of its interval's half-width: {trials['units'].max():.2f} "
            f"({worst['label']} budget {worst['budget']:g} seed {int(worst['seed'])}: "
            f"{worst['top1_pct_a']:.1f} vs {worst['top1_pct_b']:.1f}, +-{worst['half']:.1f})"
        )
    stds = std_table([pa, pb])
    print(f"\nseed-to-seed std of top-1 (points; target <= {STD_TARGET:g}):")
    print(stds.to_string(float_format=lambda v: f"{v:.2f}"))
    worst = stds.filter(like="std").max(axis=1).groupby(level="label").max()
    above = worst[worst > STD_TARGET]
    print("largest per method: " + ", ".join(f"{k} {v:.2f}" for k, v in worst.items()))
    print(f"above {STD_TARGET:g} points: " + (", ".join(above.index) if len(above) else "none"))


if __name__ == "__main__":
    main()
