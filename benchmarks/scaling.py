"""Scaling: the same CPU-bound grid through `skimbench run` on 1 worker, then on 2.

The grid: the quick_centroid test plugin on the tiny built-in benchmark, N trials each burning B CPU
seconds in fit. Each run has its own folder and experiment (nothing is skipped by resume). Printed:
  - the wall time of the whole command (Ray start-up, tracking and the results table included);
  - the grid span from MLflow (first trial start to last trial end: the part that workers parallelise);
  - the speed-up of 2 workers over 1 for both. Target: at least 1.7x (grid span) on a 2-core machine.
CPU seconds are counted with process_time, so other load on the machine stretches wall time: note
`uptime` alongside the figures.

    python benchmarks/scaling.py [--trials 6] [--burn 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugins" / "quick_methods.py"
TARGET = 1.7


def spec_text(folder: Path, data_root: Path, experiment: str, trials: int, burn: float, workers: int) -> str:
    grid = ", ".join(str(k) for k in range(1, trials + 1))
    return f"""\
experiment: {experiment}
dataset: {{name: skim-digits, params: {{variant: longrange, size: tiny, root: "{data_root}"}}}}
backbones: [resnet18]
seeds: [0]
methods: [{{name: quick_centroid, params: {{burn_s: {burn:g}}}, grid: {{k: [{grid}]}}}}]
evaluation: {{batch_size: 2, latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{folder}/mlflow.db"}}
ray: {{num_cpus: 2, max_concurrent: {workers}}}
output: "{folder}/results"
"""


def run_grid(tmp: Path, data_root: Path, trials: int, burn: float, workers: int) -> tuple[float, float, int]:
    """(command wall time, grid span from MLflow, FINISHED runs) for one run on ``workers`` workers."""
    from harness.tracking import trial_runs

    folder = tmp / f"workers-{workers}"
    folder.mkdir()
    experiment = f"scaling_{workers}"
    spec = folder / "spec.yaml"
    spec.write_text(spec_text(folder, data_root, experiment, trials, burn, workers))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"skimbench run failed ({workers} workers):\n{proc.stderr[-3000:]}")
    runs = trial_runs(f"sqlite:///{folder}/mlflow.db", experiment)
    span = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    return wall, span, sum(r.info.status == "FINISHED" for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--burn", type=float, default=4.0, help="CPU seconds burnt in each trial's fit")
    args = parser.parse_args()

    from harness.data.synthetic import make

    print(
        f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="skimbench-scaling-") as tmp:
        data_root = Path(tmp) / "data"
        make(size="tiny", variant="longrange", seed=0, root=str(data_root))
        results = {workers: run_grid(Path(tmp), data_root, args.trials, args.burn, workers) for workers in (1, 2)}
    (wall1, span1, _), (wall2, span2, _) = results[1], results[2]
    print(f"grid: {args.trials} CPU-bound trials of {args.burn:g} CPU s (quick_centroid, tiny benchmark)")
    for workers, (wall, span, done) in results.items():
        print(
            f"  {workers} worker{'s' if workers > 1 else ''}: wall {wall:.1f} s (command), grid span {span:.1f} s (MLflow), "  # noqa: E501
            f"{done}/{args.trials} FINISHED"
        )
    speedup = span1 / span2
    print(
        f"speed-up 2 vs 1 workers, grid span: {speedup:.2f}x  [target >= {TARGET}x: {'met' if speedup >= TARGET else 'NOT met'}]"  # noqa: E501
    )
    print(f"speed-up 2 vs 1 workers, whole command (Ray start-up included): {wall1 / wall2:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
