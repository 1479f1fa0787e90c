"""Time the main job: generate the built-in `small` benchmark, run experiments/quickstart.yaml
through Ray and write the report, in a fresh output folder. Target: at most 10 minutes on 2 cores.

    python benchmarks/quickstart.py [--spec experiments/quickstart.yaml] [--keep DIR]

Installation is not included (it depends on the package cache); `make quickstart` on a fresh clone
adds it. The printed ratio is the measured time over the 600 s target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 600.0


def step(name: str, args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{name} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
    print(f"  {name}: {seconds:.1f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="experiments/quickstart.yaml")
    parser.add_argument("--keep", help="write results here instead of a temporary folder")
    args = parser.parse_args()

    spec = yaml.safe_load((ROOT / args.spec).read_text())
    with tempfile.TemporaryDirectory(prefix="skimbench-qs-") as tmp:
        out = Path(args.keep or tmp).resolve()
        out.mkdir(parents=True, exist_ok=True)
        data_root = out / "data"
        spec["dataset"].setdefault("params", {})["root"] = str(data_root)
        spec["output"] = str(out / "results")
        spec["tracking"] = {"uri": f"sqlite:///{out}/results/mlflow.db"}
        timed_spec = out / "quickstart-timed.yaml"
        timed_spec.write_text(yaml.safe_dump(spec, sort_keys=False))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        print(f"quickstart benchmark: {args.spec} -> {out} ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
        params = spec["dataset"]["params"]
        total = step(
            "generate skim-digits small",
            [
                "data",
                "make",
                "skim-digits",
                "--size",
                params.get("size", "small"),
                "--variant",
                params.get("variant", "longrange"),
                "--root",
                str(data_root),
            ],
            env,
        )
        total += step("skimbench run (Ray + MLflow + report)", ["run", str(timed_spec), "--quiet"], env)
        print(
            f"total {total:.1f} s; ratio to the 600 s target: {total / TARGET_S:.2f} "
            f"[{'met' if total <= TARGET_S else 'NOT met'}]"
        )


if __name__ == "__main__":
    main()
