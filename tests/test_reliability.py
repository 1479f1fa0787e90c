"""The guarantees of docs/reliability.md, each proved with real processes: loopback-only Ray,
one run per trial under concurrent launches, and a record for a trial whose MLflow run cannot be made."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
import time
from dataclasses import replace

import psutil
import pytest
from conftest import PLUGIN, ROOT, quick_spec

from harness import trial_claims as claims
from harness.grid import expand
from harness.registry import load_plugin_file
from harness.runner import run_grid
from harness.spec import load_spec
from harness.tracking import TAG, ensure_experiment, trial_runs


def _outside_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # [::ffff:127.0.0.1]
    return not address.is_loopback


def _listening(root: psutil.Process) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every TCP/UDP socket that ``root`` or a descendant listens on."""
    try:
        pids = {root.pid} | {p.pid for p in root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for conn in psutil.net_connections("inet"):
        if conn.pid in pids and conn.laddr and (conn.status == psutil.CONN_LISTEN or conn.type == 2):  # 2: UDP
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.NoSuchProcess:
                continue
            found.add((name, conn.laddr.ip, conn.laddr.port))
    return found


def test_local_ray_listens_on_loopback_only(tiny_root, tmp_path):
    spec = quick_spec(tmp_path, tiny_root, experiment="loopback", grid="k: [2]", method_params="sleep_s: 8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    root, sockets = psutil.Process(proc.pid), set()
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:  # sample while the trial sleeps in its worker
        sockets |= _listening(root)
        time.sleep(0.5)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # the sampling saw Ray running
    assert not [s for s in sockets if _outside_loopback(s[1])], sockets


def _launch(spec, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            str(spec),
            "--plugin",
            str(PLUGIN),
            "--local",
            "--no-report",
            "--quiet",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs_by_hash(uri: str, experiment: str) -> dict[str, list[str]]:
    by_hash: dict[str, list[str]] = {}
    for run in trial_runs(uri, experiment):
        by_hash.setdefault(run.data.tags[f"{TAG}trial_hash"], []).append(run.info.status)
    return by_hash


@pytest.mark.parametrize("store", ["existing", "fresh"])
def test_two_launches_together_run_each_trial_once(tiny_root, tmp_path, store):
    spec = quick_spec(tmp_path, tiny_root, experiment="twice", grid="k: [1, 2, 3]", method_params="sleep_s: 1")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    if store == "existing":  # the schema and the experiment exist: both launches race on the trials
        ensure_experiment(uri, "twice")
    first, second = _launch(spec), _launch(spec)
    errors = [proc.communicate(timeout=600)[1] for proc in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, errors
    assert "duplicate column" not in "".join(errors)
    by_hash = _runs_by_hash(uri, "twice")
    assert len(by_hash) == 3 and all(statuses == ["FINISHED"] for statuses in by_hash.values()), by_hash
    assert not list((tmp_path / "results" / "claims").glob("*.claim"))  # released


def test_trial_whose_run_mlflow_refuses_is_recorded_and_not_retried_silently(tiny_root, tmp_path):
    load_plugin_file(str(PLUGIN))
    spec = load_spec(quick_spec(tmp_path, tiny_root, experiment="refused", grid="k: [1, 2]"))
    good, bad = expand(spec)
    bad = replace(bad, name="refused \ud800")  # a lone surrogate: MLflow's SQLite store cannot encode the run name

    def launch(trials, **flags):
        return run_grid(spec, trials, local=True, plugins=[str(PLUGIN)], show_progress=False, **flags)

    first = launch([good, bad])
    assert first.finished == [good.hash] and list(first.failed) == [bad.hash]
    record_path = tmp_path / "results" / "unrecorded" / f"{bad.hash}.json"
    record = json.loads(record_path.read_text())
    assert record["trial"]["hash"] == bad.hash and "surrogates not allowed" in record["error"]
    assert "Traceback" in record["traceback"] and str(record_path) in first.failed[bad.hash]
    assert bad.hash not in _runs_by_hash(f"sqlite:///{tmp_path}/mlflow.db", "refused")  # MLflow has no run of it

    resumed = launch([good, bad])  # not retried silently, but reported
    assert resumed.skipped == [good.hash] and list(resumed.unrecorded) == [bad.hash] and not resumed.failed
    assert any("--rerun-failed" in line and str(record_path.parent) in line for line in resumed.summary())

    retried = launch([good, replace(bad, name="refused")], rerun_failed=True)
    assert retried.finished == [bad.hash] and not record_path.exists()


def test_claim_of_a_dead_launch_is_taken_over_and_a_live_one_is_respected(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for h, proc in (("deadbeef", dead), ("c0ffee00", live)):  # claims as another launch leaves them
            (tmp_path / f"{h}.claim").write_text(
                json.dumps({"host": socket.gethostname(), "pid": proc.pid, "start": claims._start_time(proc.pid)})
            )
        mine, others = claims.claim(tmp_path, ["deadbeef", "c0ffee00", "fresh000"])
        assert mine == ["deadbeef", "fresh000"] and list(others) == ["c0ffee00"]
        claims.release(tmp_path, mine)
        assert sorted(p.name for p in tmp_path.glob("*.claim")) == ["c0ffee00.claim"]  # only ours are released
    finally:
        live.kill()
        live.wait()
