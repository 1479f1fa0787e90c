"""Scale-out and reliability with real processes: multi-node Ray on loopback, logical GPU packing,
concurrent tracking into sqlite and into a real `mlflow server`, timeouts, retries, killed workers."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import psycopg2
import pytest
from conftest import PLUGIN, quick_spec, skimbench
from mlflow.tracking import MlflowClient

from harness.tracking import TAG, trial_runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grid(n: int) -> str:
    return "k: [" + ", ".join(str(k) for k in range(1, n + 1)) + "]"


def _intervals(runs):
    return sorted((r.info.start_time, r.info.end_time) for r in runs)


def _max_overlap(intervals) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_multi_node_cluster_on_loopback(tiny_root, tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
        cluster.wait_for_nodes()
        spec = quick_spec(tmp_path, tiny_root, experiment="multinode", grid=_grid(4), method_params="sleep_s: 1.5")
        proc = skimbench(
            "run", str(spec), "--plugin", str(PLUGIN), "--address", cluster.address, "--no-report", "--quiet"
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs = trial_runs(f"sqlite:///{tmp_path}/mlflow.db", "multinode")
        assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
        assert len({r.data.tags[f"{TAG}ray_node"] for r in runs}) == 2  # trials ran on both nodes
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("gpus,expect_overlap", [(0.5, 2), (1, 1)])
def test_fractional_gpus_pack_trials_on_logical_gpus(tiny_root, tmp_path, gpus, expect_overlap):
    spec = quick_spec(tmp_path, tiny_root, experiment="gpus", grid=_grid(2), method_params="sleep_s: 3.0", extra="")
    text = spec.read_text().replace("resources: {cpus: 1, gpus: 0}", f"resources: {{cpus: 0.5, gpus: {gpus}}}")
    spec.write_text(text.replace("ray: {num_cpus: 2}", "ray: {num_cpus: 2, num_gpus: 1}"))
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = trial_runs(f"sqlite:///{tmp_path}/mlflow.db", "gpus")
    assert len(runs) == 2
    assert _max_overlap(_intervals(runs)) == expect_overlap
    for run in runs:  # each trial saw exactly the device Ray assigned to it
        assert run.data.tags[f"{TAG}ray_gpu_ids"] == "0"
        assert run.data.tags[f"{TAG}cuda_visible_devices"] == "0"


def test_spec_asking_for_missing_gpus_fails_fast(tiny_root, tmp_path):
    spec = quick_spec(tmp_path, tiny_root, experiment="nogpu", grid=_grid(1))
    spec.write_text(spec.read_text().replace("gpus: 0}", "gpus: 1}"))
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet", timeout=120)
    assert proc.returncode == 2 and "GPUs" in proc.stderr and "Traceback" not in proc.stderr


def _check_complete(uri: str, experiment: str, n: int) -> None:
    runs = trial_runs(uri, experiment)
    assert len(runs) == n and all(r.info.status == "FINISHED" for r in runs)
    client = MlflowClient(uri)
    for run in runs:
        assert (
            len(run.data.params) >= 20 and "top1_pct" in run.data.metrics and "gflops_per_video_max" in run.data.metrics
        )
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"predictions.csv", "config.json", "flops_components.json"} <= files


def _concurrent_spec(tmp_path, tiny_root, experiment, uri):
    spec = quick_spec(tmp_path, tiny_root, experiment=experiment, grid=_grid(16))
    text = spec.read_text().replace("ray: {num_cpus: 2}", "ray: {num_cpus: 16}")
    spec.write_text(text.replace(f'uri: "sqlite:///{tmp_path}/mlflow.db"', f'uri: "{uri}"'))
    return spec


def test_sixteen_concurrent_trials_into_sqlite(tiny_root, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    spec = _concurrent_spec(tmp_path, tiny_root, "concurrent", uri)
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_complete(uri, "concurrent", 16)


def _mlflow_server(port: int, backend: str, artifacts) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1:port, answering /health. A loaded 2-core machine needs tens of seconds
    to start a worker: uvicorn's default health-check timeout (5 s) would kill them one after another."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            str(artifacts),
            "--workers",
            "2",
            "--uvicorn-opts",
            "--timeout-worker-healthcheck 120",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                _stop(server)
                pytest.fail("mlflow server did not start")
            time.sleep(1)


def _stop(server: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the server's process group; SIGKILL if it has not exited 30 s after ``sig``."""
    for each in (sig, signal.SIGKILL):
        try:
            os.killpg(server.pid, each)
            server.wait(timeout=30)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def test_sixteen_concurrent_trials_into_an_mlflow_server(tiny_root, tmp_path):
    port = _free_port()
    server = _mlflow_server(port, f"sqlite:///{tmp_path}/server.db", tmp_path / "server-artifacts")
    try:
        uri = f"http://127.0.0.1:{port}"
        spec = _concurrent_spec(tmp_path, tiny_root, "server", uri)
        proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet")
        assert proc.returncode == 0, proc.stderr[-3000:]
        _check_complete(uri, "server", 16)
        assert any((tmp_path / "server-artifacts").rglob("predictions.csv"))  # stored by the server, not locally
    finally:
        _stop(server)


def _pg_bin() -> str | None:
    """The folder of PostgreSQL's server programs (Debian keeps them off PATH), or None."""
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[::-1]), None)
    return os.path.dirname(os.path.realpath(found)) if found else None


@pytest.fixture
def postgres():
    """A real PostgreSQL on 127.0.0.1 with a database `mlflow`; yields its port (as root: runs as `postgres`)."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (`make postgres` installs Debian's postgresql with apt)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="skimbench-pg-"))  # pytest's tmp_path is closed to other users
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    pg_ctl = [*as_user, f"{bin_dir}/pg_ctl", "-D", str(folder / "data")]
    try:  # stopped below even when initdb, the start or the test fail (a start that timed out may still be running)
        subprocess.run(
            [*as_user, f"{bin_dir}/initdb", "-D", str(folder / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c max_connections=200"
        subprocess.run(
            [*pg_ctl, "-l", str(folder / "log"), "-w", "-o", options, "start"], check=True, capture_output=True
        )
        db = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        db.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        db.cursor().execute("CREATE DATABASE mlflow")
        db.close()
        yield port
    finally:
        if subprocess.run([*pg_ctl, "-m", "fast", "stop"], capture_output=True).returncode != 0:
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)  # not running, or stuck
        shutil.rmtree(folder, ignore_errors=True)


# MLflow's HTTP client alone retries a refused connection for about 4 minutes (7 retries, back-off factor 2),
# longer than the outage below: with it cut to 3 retries (0 + 4 + 8 s of back-off, plus up to 1 s of jitter
# each), one tracking call gives up after at most 14 s, so trials outlive the outage only through
# harness.tracking.with_retry (12 such calls with back-off: about 3 minutes).
OUTAGE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2"}
DOWN_S = 15.0  # the server stays dead at least this long, more than one call's 14 s


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process started in its own session: its process group and every descendant (Ray's)."""
    try:
        family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        family = [proc.pid]
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


class _MemoryWatch:
    """Peak resident memory of a process tree (shared pages counted in each process) and the machine's least
    available memory, sampled by ``sample``."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.least = pid, 0, psutil.virtual_memory().available

    def sample(self) -> None:
        try:
            family = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        total = 0
        for each in family:
            try:
                total += each.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        self.peak, self.least = max(self.peak, total), min(self.least, psutil.virtual_memory().available)

    def __str__(self) -> str:
        total = psutil.virtual_memory().total
        return (
            f"grid process tree peak RSS {self.peak / 2**30:.1f} GiB; machine: least available "
            f"{self.least / 2**30:.1f} of {total / 2**30:.1f} GiB"
        )


@pytest.mark.slow
def test_thirty_two_trials_into_postgresql_survive_a_server_restart(tiny_root, tmp_path, postgres):
    """32 trials at once log into `mlflow server` on PostgreSQL; the server is SIGKILLed while all 32 runs are open
    and comes back DOWN_S later on the same address; every trial is recorded whole, once. Prints the figures quoted
    in docs/reliability.md."""
    port = _free_port()
    backend, artifacts = f"postgresql+psycopg2://postgres@127.0.0.1:{postgres}/mlflow", tmp_path / "server-artifacts"
    uri = f"http://127.0.0.1:{port}"
    barrier = tmp_path / "barrier"  # each trial says "here" in it from inside fit, then waits for `release`
    barrier.mkdir()
    spec = quick_spec(
        tmp_path, tiny_root, experiment="postgres", grid=_grid(32), method_params=f'barrier_dir: "{barrier}"'
    )
    spec.write_text(
        spec.read_text()
        .replace("ray: {num_cpus: 2}", "ray: {num_cpus: 32}")  # 32 slots of resources.cpus 1: 32 workers at once
        .replace(f'uri: "sqlite:///{tmp_path}/mlflow.db"', f'uri: "{uri}"')
    )
    errors = tmp_path / "grid.err"
    command = [sys.executable, "-m", "harness.cli", "run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet"]
    server = _mlflow_server(port, backend, artifacts)
    grid = None
    try:
        started = time.time()
        with open(errors, "w") as err:
            grid = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, **OUTAGE_ENV},
                start_new_session=True,  # its process group holds the local Ray instance: killed whole on failure
            )
        memory = _MemoryWatch(grid.pid)
        while len(here := list(barrier.glob("here-*"))) < 32:
            assert grid.poll() is None, errors.read_text()[-3000:]
            assert time.time() - started < 900, f"only {len(here)} of 32 trials were running together after 900 s"
            memory.sample()
            time.sleep(0.5)
        together = time.time() - started
        workers = [psutil.Process(int(path.name.split("-")[1])).memory_full_info() for path in here]
        assert sum(r.info.status == "RUNNING" for r in trial_runs(uri, "postgres")) == 32  # 32 runs open in MLflow

        _stop(server, signal.SIGKILL)  # the tracking server dies with 32 runs open...
        killed = time.time()
        (barrier / "release").touch()  # ...and the trials go on: predict, measure, log into the dead server
        time.sleep(DOWN_S)
        server = _mlflow_server(port, backend, artifacts)  # back on the same address
        back = time.time()
        while grid.poll() is None:
            assert time.time() - started < 1500, "the grid did not end within 1500 s"
            memory.sample()
            time.sleep(0.5)
        mib = 2**20
        print(
            f"\n32 trials running together {together:.1f} s after the launch; per Ray worker in fit: "
            f"RSS {min(w.rss for w in workers) / mib:.0f}-{max(w.rss for w in workers) / mib:.0f} MiB, "
            f"USS {min(w.uss for w in workers) / mib:.0f}-{max(w.uss for w in workers) / mib:.0f} MiB; {memory}\n"
            f"server down {back - killed:.1f} s (SIGKILL to /health answering); grid {time.time() - started:.1f} s, "
            f"exit {grid.returncode}"
        )
        assert grid.returncode == 0, errors.read_text()[-3000:]
        runs = trial_runs(uri, "postgres")
        hashes = {r.data.tags[f"{TAG}trial_hash"] for r in runs}
        assert len(runs) == 32 and len(hashes) == 32 and all(r.info.status == "FINISHED" for r in runs)  # once each
        assert _max_overlap(_intervals(runs)) == 32  # MLflow's own record: at one instant 32 runs were open
        for run in runs:  # mid-grid: every run was opened before the kill and closed after the restart
            assert run.info.start_time < killed * 1000 and run.info.end_time > back * 1000
        client = MlflowClient(uri)
        for run in runs:  # nothing lost: every param, metric and artifact of every trial
            assert (
                len(run.data.params) >= 20
                and "top1_pct" in run.data.metrics
                and "gflops_per_video_max" in run.data.metrics
            )
            files = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"predictions.csv", "config.json", "flops_components.json", "stages.json"} <= files
    finally:
        if grid is not None and grid.poll() is None:
            _kill_tree(grid)
        _stop(server)


def test_timeout_really_stops_the_trial(tiny_root, tmp_path):
    spec = quick_spec(
        tmp_path, tiny_root, experiment="timeout", grid="k: [2]", method_params="sleep_s: 60", extra="timeout_s: 5\n"
    )
    t0 = time.time()
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--local", "--no-report", "--quiet")
    assert time.time() - t0 < 45, "the timeout did not stop the trial"
    assert proc.returncode == 1 and "TIMEOUT" in proc.stderr
    (run,) = trial_runs(f"sqlite:///{tmp_path}/mlflow.db", "timeout")
    assert run.info.status == "KILLED" and run.data.tags[f"{TAG}outcome"] == "TIMEOUT"


def test_retry_after_exception_and_after_killed_worker(tiny_root, tmp_path):
    marker_a, marker_b = tmp_path / "a.flag", tmp_path / "b.flag"
    spec = quick_spec(
        tmp_path,
        tiny_root,
        experiment="retry",
        grid="k: [2]",
        method_params=f'fail_once_file: "{marker_a}"',
        extra="max_failures: 2\n",
    )
    text = spec.read_text().replace(
        "    grid: {k: [2]}\n",
        "    grid: {k: [2]}\n  - name: quick_centroid\n"
        f'    params: {{fail_once_file: "{marker_b}", die: true, k: 3}}\n',
    )
    spec.write_text(text)
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = trial_runs(f"sqlite:///{tmp_path}/mlflow.db", "retry")
    by_hash: dict[str, list[str]] = {}
    for r in runs:
        by_hash.setdefault(r.data.tags[f"{TAG}trial_hash"], []).append(r.info.status)
    assert len(by_hash) == 2
    for statuses in by_hash.values():  # one failed or killed attempt, then exactly one FINISHED run
        assert sorted(statuses) in (["FAILED", "FINISHED"], ["FINISHED", "KILLED"])


def test_resume_rules():
    from harness.runner import select_trials
    from harness.trial import Plugin, Trial

    trials = [
        Trial("x", "m", Plugin("d"), Plugin("b"), Plugin("m"), 0, {}, hash=h)
        for h in ("fin", "fail", "timeout", "killed", "running", "new")
    ]
    previous = {"fin": "FINISHED", "fail": "FAILED", "timeout": "TIMEOUT", "killed": "KILLED", "running": "RUNNING"}
    run, skipped = select_trials(trials, previous, force=False, rerun_failed=False)
    assert [t.hash for t in run] == ["killed", "running", "new"] and skipped == ["fin", "fail", "timeout"]
    run, skipped = select_trials(trials, previous, force=False, rerun_failed=True)
    assert [t.hash for t in run] == ["fail", "timeout", "killed", "running", "new"] and skipped == ["fin"]
    run, skipped = select_trials(trials, previous, force=True, rerun_failed=False)
    assert len(run) == 6 and skipped == []
