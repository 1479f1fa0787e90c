"""Orchestration overhead: the same grid as a bare Python loop vs through `skimbench run` (Ray + MLflow).

Part 1: N short trials (the quick_centroid test plugin on the tiny built-in benchmark), one worker:
  overhead per trial = (wall time of `skimbench run`, Ray start included) / N - bare time per trial,
  and the median per-trial tracking overhead (MLflow run duration - bare trial time).
  Target: under 1 s per trial (median).
Part 2: CPU-bound trials of 5 s each: bare loop vs `skimbench run` with 2 workers.
  Target: the Ray path faster than the loop (ratio > 1) on 2 cores.

    python benchmarks/orchestration.py [--trials 8] [--burn 5] [--burn-trials 4]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
PLUGIN = ROOT / "tests" / "plugins" / "quick_methods.py"


def spec_text(folder: Path, data_root: Path, experiment: str, grid: str, params: str, concurrent: int) -> str:
    return f"""\
experiment: {experiment}
dataset: {{name: skim-digits, params: {{variant: longrange, size: tiny, root: "{data_root}"}}}}
backbones: [resnet18]
seeds: [0]
methods: [{{name: quick_centroid, params: {{{params}}}, grid: {{{grid}}}}}]
evaluation: {{batch_size: 2, latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{folder}/mlflow.db"}}
ray: {{num_cpus: 2, max_concurrent: {concurrent}}}
output: "{folder}/results"
"""


def bare_loop(spec_path: Path, folder: Path) -> list[float]:
    """Call the trial function directly, no Ray, no MLflow."""
    from harness.grid import expand
    from harness.registry import load_plugin_file
    from harness.spec import load_spec
    from harness.stages import StageStore
    from harness.trial import run_trial

    load_plugin_file(PLUGIN)
    spec = load_spec(spec_path)
    store = StageStore(folder / "bare-stages")
    times = []
    for cfg in expand(spec):
        t0 = time.perf_counter()
        run_trial(cfg, store, folder / "work", log=lambda m: None)
        times.append(time.perf_counter() - t0)
    return times


def through_skimbench(spec_path: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(spec_path), "--plugin", str(PLUGIN),
                           "--no-report", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"skimbench run failed:\n{proc.stderr[-3000:]}")
    return elapsed


def run_durations(folder: Path, experiment: str) -> list[float]:
    from harness.tracking import trial_runs

    return [(r.info.end_time - r.info.start_time) / 1000 for r in trial_runs(f"sqlite:///{folder}/mlflow.db", experiment)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--burn", type=float, default=5.0, help="CPU seconds per trial in part 2")
    parser.add_argument("--burn-trials", type=int, default=8)
    args = parser.parse_args()

    from harness.data.synthetic import make

    with tempfile.TemporaryDirectory(prefix="skimbench-orch-") as tmp:
        folder = Path(tmp)
        data_root = folder / "data"
        make(size="tiny", variant="longrange", seed=0, root=str(data_root))
        # warm the decoded-frame stage for both paths so neither pays for decoding
        grid = "k: [" + ", ".join(str(k) for k in range(1, args.trials + 1)) + "]"
        short = folder / "short.yaml"
        short.write_text(spec_text(folder, data_root, "orch_short", grid, "", concurrent=1))
        bare_loop(short, folder)  # warm-up: decodes the frame bank once, imports everything
        bare = bare_loop(short, folder)
        wall = through_skimbench(short)
        durations = run_durations(folder, "orch_short")
        per_trial_tracking = [d - b for d, b in zip(sorted(durations), sorted(bare))]
        amortised = wall / args.trials - statistics.mean(bare)
        print(f"part 1: {args.trials} short trials, 1 worker")
        print(f"  bare loop: {sum(bare):.2f} s total, {statistics.median(bare):.3f} s per trial (median)")
        print(f"  skimbench run (Ray + MLflow, Ray start included): {wall:.2f} s total")
        print(f"  overhead per trial, amortised incl. Ray start-up: {amortised:.3f} s")
        print(f"  overhead per trial inside its run (MLflow run time - bare), median: {statistics.median(per_trial_tracking):.3f} s"
              f"  [target < 1 s: {'met' if statistics.median(per_trial_tracking) < 1 else 'NOT met'}]")
        print(f"  ratio skimbench / bare loop: {wall / sum(bare):.2f}x")

        burn = folder / "burn.yaml"
        burn.write_text(spec_text(folder, data_root, "orch_burn", "k: [" + ", ".join(str(k) for k in range(1, args.burn_trials + 1)) + "]",
                                  f"burn_s: {args.burn}", concurrent=2))
        t0 = time.perf_counter()
        bare_loop(burn, folder)
        loop_time = time.perf_counter() - t0
        ray_time = through_skimbench(burn)
        print(f"part 2: {args.burn_trials} CPU-bound trials of {args.burn:g} s")
        print(f"  bare loop: {loop_time:.2f} s; skimbench run with 2 workers: {ray_time:.2f} s")
        print(f"  speed-up of the Ray path over the loop: {loop_time / ray_time:.2f}x  [target > 1: {'met' if loop_time > ray_time else 'NOT met'}]")


if __name__ == "__main__":
    main()
