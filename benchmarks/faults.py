"""Faults survived: a grid run through `skimbench run` with injected faults, checked in MLflow.

Grid 1 (Ray, 2 workers, max_failures 2), on the tiny built-in benchmark with the quick_centroid test plugin:
  - one trial raises an exception on its first attempt (fail_once_file);
  - one trial SIGKILLs its Ray worker process on its first attempt (die: true);
  - the driver is SIGKILLed mid-grid (its whole process group: Ray and the workers it started go too),
    then the same command is run again and resumes.
Grid 2 (same, with timeout_s): one trial sleeps far beyond timeout_s; one ordinary trial. Kept apart
from grid 1 because a spec's timeout_s runs every trial in a child process, and grid 1 must kill a real
Ray worker.

Printed, from MLflow: the faults injected, the faults survived, the trials lost (target 0: every trial
has exactly one FINISHED run, except the deliberate timeout, recorded KILLED with outcome TIMEOUT) and
the duplicate runs (target 0: no trial hash with more than one FINISHED run).

    python benchmarks/faults.py [--timeout 30]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugins" / "quick_methods.py"


def spec_text(folder: Path, data_root: Path, experiment: str, methods: list[str], extra: str = "") -> str:
    entries = "".join(f"  - {{name: quick_centroid, {m}}}\n" for m in methods)
    return f"""\
experiment: {experiment}
dataset: {{name: skim-digits, params: {{variant: longrange, size: tiny, root: "{data_root}"}}}}
backbones: [resnet18]
seeds: [0]
methods:
{entries}evaluation: {{batch_size: 2, latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{folder}/mlflow.db"}}
ray: {{num_cpus: 2, max_concurrent: 2}}
max_failures: 2
output: "{folder}/results"
{extra}"""


def skimbench_command(spec: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet"]


def trial_hashes(spec: Path) -> list[str]:
    from harness.grid import expand
    from harness.registry import load_plugin_file
    from harness.spec import load_spec

    load_plugin_file(PLUGIN)
    return [trial.hash for trial in expand(load_spec(spec))]


def runs_by_hash(folder: Path, experiment: str) -> dict[str, list]:
    from harness.tracking import TAG, trial_runs

    out: dict[str, list] = {}
    for run in trial_runs(f"sqlite:///{folder}/mlflow.db", experiment):
        out.setdefault(run.data.tags[f"{TAG}trial_hash"], []).append(run)
    return out


def status_counts(folder: Path, experiment: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    try:
        for runs in runs_by_hash(folder, experiment).values():
            for run in runs:
                counts[run.info.status] = counts.get(run.info.status, 0) + 1
    except Exception:  # noqa: BLE001 - the store may be busy
        pass
    return counts


# -- processes ---------------------------------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, int, int, str]]:
    """pid -> (ppid, pgrp, session, state) for every live process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        table[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[3]), fields[0])
    return table


def started_by(leader: int) -> set[int]:
    """The driver, everything in its session or process group, and all its descendants."""
    table = _proc_table()
    family = {pid for pid, (_, pgrp, sid, _) in table.items() if leader in (pgrp, sid)} | {leader}
    grew = True
    while grew:
        children = {pid for pid, (ppid, *_) in table.items() if ppid in family} - family
        family |= children
        grew = bool(children)
    return family


def alive(pids: set[int]) -> set[int]:
    table = _proc_table()
    return {pid for pid in pids if pid in table and table[pid][3] != "Z"}


def kill_driver(proc: subprocess.Popen) -> tuple[int, int]:
    """SIGKILL the driver's process group, then any process it started elsewhere; (killed, left alive)."""
    family = started_by(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for pid in alive(family):  # a process that left the group (setsid) still goes, by its own id
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 30
    while alive(family) and time.time() < deadline:
        time.sleep(0.2)
    return len(family), len(alive(family))


def run_to_end(spec: Path) -> subprocess.CompletedProcess:
    return subprocess.run(skimbench_command(spec), cwd=ROOT, capture_output=True, text=True, timeout=1800)


# -- the benchmark -----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6, help="ordinary trials in grid 1")
    parser.add_argument(
        "--burn", type=float, default=3.0, help="CPU seconds per ordinary trial, so the driver dies mid-grid"
    )
    parser.add_argument("--kill-after", type=int, default=2, help="SIGKILL the driver once this many runs FINISHED")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="timeout_s of grid 2 (its slow trial sleeps 10x longer)"
    )
    args = parser.parse_args()

    from mlflow.tracking import MlflowClient

    from harness.data.synthetic import make
    from harness.tracking import TAG, trial_runs

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no schema-migration chatter in the figures

    with tempfile.TemporaryDirectory(prefix="skimbench-faults-") as tmp:
        folder = Path(tmp)
        data_root = folder / "data"
        make(size="tiny", variant="longrange", seed=0, root=str(data_root))
        flag_error, flag_die = folder / "error.flag", folder / "die.flag"

        # grid 1: exception, killed worker, killed and restarted driver
        ordinary = [f"params: {{k: {k}, burn_s: {args.burn}}}" for k in range(1, args.trials + 1)]
        error_trial = f'params: {{k: 2, fail_once_file: "{flag_error}"}}'
        die_trial = f'params: {{k: 3, fail_once_file: "{flag_die}", die: true}}'
        spec1 = folder / "faults.yaml"
        spec1.write_text(spec_text(folder, data_root, "faults", ordinary + [error_trial, die_trial]))
        hashes1 = trial_hashes(spec1)
        error_hash, die_hash = hashes1[-2], hashes1[-1]

        trial_runs(
            f"sqlite:///{folder}/mlflow.db", "faults"
        )  # create the store's schema now: polling must not race the driver's migration
        t0 = time.perf_counter()
        driver = subprocess.Popen(
            skimbench_command(spec1),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        while True:  # kill mid-grid: some trials FINISHED and at least one in flight, whose work is lost
            counts = status_counts(folder, "faults")
            if counts.get("FINISHED", 0) >= args.kill_after and counts.get("RUNNING", 0) >= 1:
                break
            if driver.poll() is not None:
                raise SystemExit(f"the driver ended before it could be killed:\n{driver.stderr.read()[-3000:]}")
            time.sleep(0.3)
        killed, left_alive = kill_driver(driver)
        driver.stderr.close()
        time_to_kill = time.perf_counter() - t0
        counts = status_counts(folder, "faults")  # runs in flight stay RUNNING: nobody is left to close them
        finished_before_kill, running_at_kill = counts.get("FINISHED", 0), counts.get("RUNNING", 0)

        t0 = time.perf_counter()
        rerun = run_to_end(spec1)
        rerun_time = time.perf_counter() - t0
        summary = [line for line in rerun.stderr.splitlines() if "finished," in line]

        # grid 2: a timeout that really stops the trial
        spec2 = folder / "timeout.yaml"
        spec2.write_text(
            spec_text(
                folder,
                data_root,
                "timeout",
                ["params: {k: 2}", f"params: {{k: 4, sleep_s: {10 * args.timeout:g}}}"],
                extra=f"timeout_s: {args.timeout:g}\n",
            )
        )
        hashes2 = trial_hashes(spec2)
        timeout_hash = hashes2[-1]
        t0 = time.perf_counter()
        timeout_run = run_to_end(spec2)
        timeout_time = time.perf_counter() - t0

        # -- read everything back from MLflow --
        runs1, runs2 = runs_by_hash(folder, "faults"), runs_by_hash(folder, "timeout")
        all_runs = {**runs1, **runs2}
        finished = {h: [r for r in all_runs.get(h, []) if r.info.status == "FINISHED"] for h in hashes1 + hashes2}
        still_running = sum(r.info.status == "RUNNING" for runs in all_runs.values() for r in runs)
        timeout_runs = runs2.get(timeout_hash, [])
        timeout_ok = (
            bool(timeout_runs)
            and not finished[timeout_hash]
            and all(r.info.status == "KILLED" and r.data.tags.get(f"{TAG}outcome") == "TIMEOUT" for r in timeout_runs)
        )
        longest_attempt = max(((r.info.end_time - r.info.start_time) / 1000 for r in timeout_runs), default=0.0)
        lost = [h for h in hashes1 + hashes2 if h != timeout_hash and len(finished[h]) == 0] + (
            [] if timeout_ok else [timeout_hash]
        )
        duplicates = [h for h, runs in finished.items() if len(runs) > 1]

        def outcomes(h: str) -> str:
            return ", ".join(
                f"{r.info.status}/{r.data.tags.get(f'{TAG}outcome', '-')}"
                for r in sorted(all_runs.get(h, []), key=lambda r: r.info.start_time)
            )

        error_first = [r for r in runs1.get(error_hash, []) if r.info.status == "FAILED"]
        has_traceback = bool(error_first) and any(
            a.path == "traceback.txt"
            for a in MlflowClient(f"sqlite:///{folder}/mlflow.db").list_artifacts(error_first[0].info.run_id)
        )
        survived = {
            "exception in fit (1st attempt)": len(finished[error_hash]) == 1 and bool(error_first) and has_traceback,
            "Ray worker SIGKILLed mid-trial (1st attempt)": len(finished[die_hash]) == 1
            and len(runs1.get(die_hash, [])) >= 2,
            "driver SIGKILLed mid-grid, restarted": rerun.returncode == 0
            and left_alive == 0
            and still_running == 0
            and all(len(finished[h]) == 1 for h in hashes1),
            "trial beyond timeout_s": timeout_ok
            and longest_attempt < args.timeout + 30
            and all(len(finished[h]) == 1 for h in hashes2 if h != timeout_hash),
        }

        print(
            f"grid 1 'faults': {len(hashes1)} trials ({args.trials} ordinary of {args.burn:g} CPU s, 1 raising once, "
            f"1 killing its worker once), 2 workers, max_failures 2"
        )
        print(
            f"  driver SIGKILLed after {time_to_kill:.1f} s with {finished_before_kill} runs FINISHED and {running_at_kill} RUNNING; "  # noqa: E501
            f"{killed} processes in its group/tree, {left_alive} left alive [target 0: {'met' if left_alive == 0 else 'NOT met'}]"  # noqa: E501
        )
        print(
            f"  restart with the same command: exit {rerun.returncode}, {rerun_time:.1f} s; {summary[-1].strip() if summary else rerun.stderr[-2000:]}"  # noqa: E501
        )
        print(f"  trial runs still RUNNING at the end (in flight at the kill, not closed on restart): {still_running}")
        print(f"  runs of the exception trial: {outcomes(error_hash)}")
        print(f"  runs of the worker-killing trial: {outcomes(die_hash)}")
        print(
            f"grid 2 'timeout': timeout_s {args.timeout:g}, one trial sleeping {10 * args.timeout:g} s, one ordinary; "
            f"exit {timeout_run.returncode}, {timeout_time:.1f} s"
        )
        print(f"  runs of the timeout trial: {outcomes(timeout_hash)}; longest attempt {longest_attempt:.1f} s")
        print(f"faults injected: {len(survived)}: " + "; ".join(survived))
        print(
            f"faults survived: {sum(survived.values())}/{len(survived)}"
            + "".join(f"\n  {'survived' if ok else 'NOT survived'}: {name}" for name, ok in survived.items())
        )
        print(
            f"trials lost: {len(lost)} of {len(hashes1) + len(hashes2)}  [target 0: {'met' if not lost else 'NOT met'}]"
            + "".join(f"\n  lost {h}: {outcomes(h) or 'no run'}" for h in lost)
        )
        print(
            f"duplicate runs: {len(duplicates)}  [target 0: {'met' if not duplicates else 'NOT met'}]"
            + "".join(f"\n  duplicate {h}: {outcomes(h)}" for h in duplicates)
        )


if __name__ == "__main__":
    main()
