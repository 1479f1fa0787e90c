"""Orchestration: how well a grid uses the workers, and what a launch costs.

(a) Speed-up: a grid (the quickstart by default; ``--methods`` keeps a subset of its method entries)
    on the same generated data, with fresh stage stores: ``skimbench run --local`` (one worker)
    against ``skimbench run`` on Ray with two workers. Target >= 1.7x.
(b) Worker time waiting: in the Ray run, the share of worker time that trials spent computing or
    waiting on a stage themselves (``sched_stage_wait_s``). Target <= 5%.
(c) Launch overhead: the wall time of ``skimbench run`` minus the span of its trials and stages,
    with a fresh Ray (the run of (a)) and attached to a running Ray (``ray start --head`` started
    here on its own port and temp folder, then ``--address``; the second attached launch is timed:
    the first one starts the workers, which the second finds warm, ``harness/launchers/pool.py``).
    Target <= 6 s attached.
(d) Per-trial overhead: N trivial trials (the quick_centroid test plugin on the tiny benchmark, one
    worker) through ``skimbench run`` against a bare loop of ``run_trial``, amortised per trial.
    Target < 0.5 s.
(e) Answer time of the commands that run no trial: ``skimbench plan`` on the grid of (a) and ``skimbench
    methods`` with an empty plugin-listing cache (its slowest case), the median of 3 runs each, imports
    included (a fresh interpreter each time). Target < 2 s.

    python benchmarks/orchestration.py [--methods uniform,videoepitoma] [--seeds 0] [--trials 8] [--parts abcde]
        [--keep DIR]   (keep the runs: ``skimbench report`` on DIR/ray/spec.yaml's experiment draws its Gantt chart)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PLUGIN = ROOT / "tests" / "plugins" / "quick_methods.py"


def skimbench(*args: str, env: dict | None = None) -> float:
    """Wall time of one ``skimbench`` command (which must succeed)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"skimbench {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return elapsed


def grid_spec(source: Path, methods: list[str], data_root: Path, out: Path, seeds: list[int] | None = None) -> Path:
    """The grid of ``source`` (method entries named in ``methods`` only, when given; ``seeds`` instead of
    its seeds, when given) writing under ``out``."""
    spec = yaml.safe_load(source.read_text())
    if methods:
        spec["methods"] = [m for m in spec["methods"] if (m if isinstance(m, str) else m["name"]) in methods]
    if seeds:
        spec["seeds"] = seeds
    spec["dataset"].setdefault("params", {})["root"] = str(data_root)
    spec["output"] = str(out / "results")
    spec["tracking"] = {"uri": f"sqlite:///{out}/mlflow.db"}
    spec["ray"] = {**spec.get("ray", {}), "num_cpus": 2}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def schedule(spec_path: Path) -> tuple[float, float, float]:
    """(span of the trials and stages, worker time, trials' own stage wait) of the run logged by the spec."""
    from harness.registry import load_plugin_file
    from harness.report.collect import load_trials
    from harness.report.schedule import efficiency, intervals, stage_spans
    from harness.spec import load_spec
    from harness.tracking import resolve_uri

    load_plugin_file(PLUGIN)  # the trivial grids use the test plugin
    spec = load_spec(spec_path)
    uri = resolve_uri(spec.tracking["uri"])
    trials = load_trials(uri, [spec.experiment])
    table = intervals(trials, stage_spans(uri, [spec.experiment]))
    figures = efficiency(table, trials)
    busy = float((table["end"] - table["start"]).sum())
    return figures["span_s"], busy, figures["stage_wait"] * busy


def part_a_b(args: argparse.Namespace, folder: Path) -> float:
    source = ROOT / args.spec
    spec = yaml.safe_load(source.read_text())
    params = spec["dataset"].get("params", {})
    data_root = folder / "data"
    skimbench(
        "data",
        "make",
        spec["dataset"]["name"],
        "--size",
        params.get("size", "small"),
        "--variant",
        params.get("variant", "longrange"),
        "--root",
        str(data_root),
    )
    local_spec = grid_spec(source, args.methods, data_root, folder / "local", args.seeds)
    ray_spec = grid_spec(source, args.methods, data_root, folder / "ray", args.seeds)
    local = skimbench("run", str(local_spec), "--local", "--no-report", "--quiet")
    on_ray = skimbench("run", str(ray_spec), "--no-report", "--quiet")
    span, busy, waited = schedule(ray_spec)
    what = f"{args.spec}" + (f" (methods: {', '.join(args.methods)})" if args.methods else "")
    what += f" (seeds: {args.seeds})" if args.seeds else ""
    print(
        f"(a) {what}: --local (1 worker) {local:.1f} s, Ray (2 workers) {on_ray:.1f} s: "
        f"speed-up {local / on_ray:.2f}x  [target >= 1.7x: {'met' if local / on_ray >= 1.7 else 'NOT met'}]"
    )
    print(
        f"(b) worker time spent by trials on stages themselves: {waited:.1f} s of {busy:.1f} s = "
        f"{100 * waited / busy:.1f}%  [target <= 5%: {'met' if waited / busy <= 0.05 else 'NOT met'}]"
    )
    print(f"(c) launch overhead, fresh Ray: {on_ray:.1f} s - span {span:.1f} s = {on_ray - span:.1f} s")
    return on_ray - span


def part_c_attached(args: argparse.Namespace, folder: Path) -> None:
    """A trivial grid, attached to a running Ray on a private port (other users' Rays are not touched)."""
    data_root = folder / "tiny"
    skimbench("data", "make", "skim-digits", "--size", "tiny", "--variant", "longrange", "--root", str(data_root))
    port = 6390 + os.getpid() % 500
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    auth = {"RAY_AUTH_MODE": "token"}  # `ray start` requires its token (~/.ray/auth_token) from every client
    env = {**os.environ, "PYTHONPATH": str(ROOT), **auth}
    ray_bin = str(Path(sys.executable).parent / "ray")
    subprocess.run(
        [
            ray_bin,
            "start",
            "--head",
            "--num-cpus",
            "2",
            "--port",
            str(port),
            "--temp-dir",
            str(temp),
            "--node-ip-address",
            "127.0.0.1",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        overheads = []
        for attempt in range(2):
            out = folder / f"attached{attempt}"
            spec = trivial_spec(out, data_root, "orch_attached", "k: [1, 2, 3, 4]", concurrent=2)
            wall = skimbench(
                "run",
                str(spec),
                "--plugin",
                str(PLUGIN),
                "--no-report",
                "--quiet",
                "--address",
                f"127.0.0.1:{port}",
                env=auth,
            )
            span, _, _ = schedule(spec)
            overheads.append(wall - span)
        print(
            f"(c) launch overhead, attached to a running Ray: {overheads[1]:.1f} s "
            f"(first attach: {overheads[0]:.1f} s)"
            f"  [target <= 6 s: {'met' if overheads[1] <= 6 else 'NOT met'}]"
        )
    finally:
        stop_head(temp)


def stop_head(temp: Path) -> None:
    """Stop the Ray started here, and only it: the processes whose command line names its temp folder, or
    that hold a file open in it (Ray renames its agents and workers, ``ray::...``, so their command line no
    longer names it). ``ray stop`` would stop every Ray instance on the machine, other users' included."""
    import psutil  # noqa: PLC0415 - a Ray dependency, needed only here

    def uses_temp(proc: psutil.Process) -> bool:
        if any(str(temp) in part for part in proc.info["cmdline"] or []):
            return True
        try:
            return any(f.path.startswith(str(temp)) for f in proc.open_files())
        except psutil.Error:
            return False

    me = {psutil.Process().pid, *(p.pid for p in psutil.Process().parents())}  # whose command line may name it too
    ours = [p for p in psutil.process_iter(["cmdline"]) if p.pid not in me and uses_temp(p)]
    for proc in ours:
        proc.terminate()
    _, alive = psutil.wait_procs(ours, timeout=10)
    for proc in alive:
        proc.kill()


def trivial_spec(folder: Path, data_root: Path, experiment: str, grid: str, concurrent: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{experiment}.yaml"
    path.write_text(f"""\
experiment: {experiment}
dataset: {{name: skim-digits, params: {{variant: longrange, size: tiny, root: "{data_root}"}}}}
backbones: [resnet18]
seeds: [0]
methods: [{{name: quick_centroid, grid: {{{grid}}}}}]
evaluation: {{batch_size: 2, latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{folder}/mlflow.db"}}
ray: {{num_cpus: 2, max_concurrent: {concurrent}}}
output: "{folder}/results"
""")
    return path


def part_d(args: argparse.Namespace, folder: Path) -> None:
    from harness.grid import expand
    from harness.registry import load_plugin_file
    from harness.spec import load_spec
    from harness.stages import StageStore
    from harness.trial import run_trial

    data_root = folder / "tiny"
    if not data_root.exists():
        skimbench("data", "make", "skim-digits", "--size", "tiny", "--variant", "longrange", "--root", str(data_root))
    grid = "k: [" + ", ".join(str(k) for k in range(1, args.trials + 1)) + "]"
    spec_path = trivial_spec(folder / "short", data_root, "orch_short", grid, concurrent=1)
    load_plugin_file(PLUGIN)
    store = StageStore(folder / "short" / "results" / "stages")  # the run's store: frames decoded once here
    bare = []
    for _ in range(2):  # the first pass decodes and imports; the second is timed
        bare = []
        for trial in expand(load_spec(spec_path)):
            t0 = time.perf_counter()
            run_trial(trial, store, folder / "work", log=lambda m: None)
            bare.append(time.perf_counter() - t0)
    wall = skimbench("run", str(spec_path), "--plugin", str(PLUGIN), "--no-report", "--quiet", "--local")
    amortised = wall / args.trials - statistics.mean(bare)
    print(
        f"(d) {args.trials} trivial trials, 1 worker (--local): bare loop {sum(bare):.2f} s, "
        f"skimbench run {wall:.2f} s: "
        f"{amortised:.3f} s per trial amortised  [target < 0.5 s: {'met' if amortised < 0.5 else 'NOT met'}]"
    )


def part_e(args: argparse.Namespace, folder: Path) -> None:
    spec = ROOT / args.spec
    plan = statistics.median(skimbench("plan", str(spec)) for _ in range(3))
    misses = []
    for attempt in range(3):
        cache = folder / f"cache{attempt}"  # empty: the listing imports every plugin
        misses.append(skimbench("methods", env={"XDG_CACHE_HOME": str(cache)}))
    hit = skimbench("methods", env={"XDG_CACHE_HOME": str(folder / "cache0")})
    methods = statistics.median(misses)
    print(
        f"(e) skimbench plan {args.spec}: {plan:.2f} s; skimbench methods: {methods:.2f} s with an empty cache, "
        f"{hit:.2f} s cached  [target < 2 s: {'met' if max(plan, methods) < 2 else 'NOT met'}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="experiments/quickstart.yaml", help="the grid of part (a)")
    parser.add_argument(
        "--methods",
        type=lambda s: [m for m in s.split(",") if m],
        default=[],
        help="keep only these method entries of the grid (a reduced run on a busy machine)",
    )
    parser.add_argument(
        "--seeds", type=lambda s: [int(x) for x in s.split(",") if x], default=[], help="these seeds instead (a)"
    )
    parser.add_argument("--keep", default="", help="work in this folder and keep it (its runs, for a report)")
    parser.add_argument("--trials", type=int, default=8, help="trivial trials of part (d)")
    parser.add_argument("--parts", default="abcde", help="which parts to run (b and the fresh-Ray c come with a)")
    args = parser.parse_args()
    print(f"orchestration benchmark ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})", flush=True)
    with tempfile.TemporaryDirectory(prefix="skimbench-orch-") as tmp:
        folder = Path(args.keep or tmp)
        if "a" in args.parts:
            part_a_b(args, folder)
        if "c" in args.parts:
            part_c_attached(args, folder)
        if "d" in args.parts:
            part_d(args, folder)
        if "e" in args.parts:
            part_e(args, folder)


if __name__ == "__main__":
    main()
