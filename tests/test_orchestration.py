"""The plan of a grid and how it runs: each declared stage once, before the trials that need it; no
trial computes or waits on a declared stage itself; stages already in the store are not scheduled
again; a failing stage fails its dependents with its traceback, once, and the rest goes on.
Real Ray, real MLflow (sqlite), the tiny built-in benchmark, the quick test plugin."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PLUGIN, quick_spec, skimbench, write_spec
from mlflow.tracking import MlflowClient

from harness import tracking
from harness.grid import expand
from harness.plan import build_plan, format_plan
from harness.registry import load_plugin_file
from harness.spec import load_spec
from harness.tracking import TAG, trial_runs

load_plugin_file(PLUGIN)


def test_the_plan_holds_each_shared_stage_once_before_its_dependents(tiny_root, tmp_path):
    """Selection methods and baselines share the heavy classifier and its tables; two LightNet methods
    share the LightNet: each stage is one node, after the stages it builds on."""
    spec = write_spec(
        tmp_path,
        "shared",
        f"""\
experiment: shared
dataset: {{name: skim-digits, params: {{variant: longrange, size: tiny, root: "{tiny_root}"}}}}
backbones: [{{name: r3d_18, params: {{width: 8, input_size: 32}}}}]
seeds: [0]
methods:
  - {{name: uniform, grid: {{k: [1, 2]}}}}
  - {{name: videoepitoma, params: {{light_width: 0.25, light_size: 16}}, grid: {{sparsity: [0.1, 0.3]}}}}
output: "{tmp_path}/results"
""",
    )
    trials = expand(load_spec(spec))
    plan = build_plan(trials, tmp_path / "stages")
    names = [s.name for s in plan.stages.values()]
    assert sorted(names) == sorted(
        [
            "frames",
            "frames",
            "heavy_classifier",
            "heavy_timesteps_test",
            "heavy_timesteps_train",
            "light_network",
            "light_timesteps_train",
            "light_timesteps_test",
        ]
    )
    by_name = {s.name: s for s in plan.stages.values()}
    assert len(by_name["heavy_classifier"].trials) == 4 and len(by_name["light_network"].trials) == 2
    order = plan.order()
    position = {key: i for i, key in enumerate(order)}
    for stage in plan.stages.values():
        assert all(position[before] < position[stage.key] for before in stage.after), stage.name
    assert by_name["heavy_classifier"].key in by_name["heavy_timesteps_test"].after
    assert by_name["light_network"].key in by_name["light_timesteps_test"].after
    # most trials unblocked first: the heavy classifier (4 trials) before the LightNet (2)
    assert position[by_name["heavy_classifier"].key] < position[by_name["light_network"].key]
    text = format_plan(plan, {t.hash: t.name for t in trials})
    assert "heavy_classifier" in text and "unblocks 4" in text


def test_in_network_methods_declare_their_trained_network_once_per_training_config(tiny_root, tmp_path):
    """SGS's network serves every ``bins_test`` and clustering's every ``g`` with ``g_train``: one declared
    stage each, unblocking all their trials, so no trial trains it under the lock."""
    spec = write_spec(
        tmp_path,
        "innet",
        f"""\
experiment: innet
dataset: {{name: skim-digits, params: {{variant: longrange, size: tiny, root: "{tiny_root}"}}}}
backbones: [{{name: r3d_18, params: {{width: 4, input_size: 32}}}}]
seeds: [0]
methods:
  - {{name: sgs, params: {{frames: 8, epochs: 1}}, grid: {{bins_test: [2, 4, 8]}}}}
  - name: temporal_clustering
    backbones: [{{name: tsm_resnet18, params: {{width: 8, input_size: 32}}}}]
    params: {{g_train: 4, epochs: 1}}
    grid: {{g: [2, 4]}}
output: "{tmp_path}/results"
""",
    )
    plan = build_plan(expand(load_spec(spec)), tmp_path / "stages")
    assert not plan.undeclared, plan.undeclared
    models = {s.name: s for s in plan.stages.values() if s.name.endswith("_model")}
    assert sorted(models) == ["sgs_model", "temporal_clustering_model"]
    assert len(models["sgs_model"].trials) == 3 and len(models["temporal_clustering_model"].trials) == 2


@pytest.mark.parametrize("local", [False, True], ids=["ray", "local"])
def test_a_shared_stage_is_computed_once_and_no_trial_waits_on_it(tiny_root, tmp_path, local):
    counter = tmp_path / "counter.txt"
    spec = quick_spec(tmp_path, tiny_root, method_params=f'stage_counter: "{counter}"', grid="k: [2, 4]")
    done = skimbench(
        "run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet", *(["--local"] if local else [])
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert counter.read_text().count("computed") == 1
    spec_ = load_spec(spec)
    runs = trial_runs(tracking.resolve_uri(spec_.tracking["uri"]), spec_.experiment)
    assert len(runs) == 2
    for run in runs:  # the stage sleeps 1 s: a trial that computed it or waited on its lock shows >= 1 s
        assert run.data.metrics["sched_stage_wait_s"] < 0.5, run.data.metrics
        assert "sched_queue_wait_s" in run.data.metrics and "sched_run_s" in run.data.metrics

    # Resume: the stage is in the store, so a new plan does not schedule it, and a forced rerun does
    # not compute it again.
    plan = build_plan(expand(spec_), Path(spec_.output) / "stages")
    assert [s.name for s in plan.stages.values()] == []
    assert any(item.startswith("quick_shared ") for items in plan.in_store.values() for item in items)
    again = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet", "--force", "--local")
    assert again.returncode == 0, again.stderr[-3000:]
    assert counter.read_text().count("computed") == 1


@pytest.mark.parametrize("local", [False, True], ids=["ray", "local"])
def test_a_failing_stage_fails_its_dependents_once_with_its_traceback(tiny_root, tmp_path, local):
    counter = tmp_path / "counter.txt"
    spec = write_spec(
        tmp_path,
        "failing",
        f"""\
experiment: failing
dataset: {{name: skim-digits, params: {{variant: longrange, size: tiny, root: "{tiny_root}"}}}}
backbones: [resnet18]
seeds: [0]
methods:
  - {{name: quick_centroid, params: {{stage_counter: "{counter}", stage_fail: true}}, grid: {{k: [2, 4]}}}}
  - {{name: quick_centroid, params: {{k: 3}}}}
evaluation: {{batch_size: 2, latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{tmp_path}/mlflow.db"}}
ray: {{num_cpus: 2}}
output: "{tmp_path}/results"
""",
    )
    done = skimbench(
        "run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet", *(["--local"] if local else [])
    )
    assert done.returncode != 0
    assert counter.read_text().count("computed") == 1  # once, not once per dependent
    spec_ = load_spec(spec)
    uri = tracking.resolve_uri(spec_.tracking["uri"])
    runs = trial_runs(uri, spec_.experiment)
    assert len(runs) == 3
    failed = [r for r in runs if r.info.status == "FAILED"]
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(failed) == 2 and len(finished) == 1  # the rest of the grid went on
    client = MlflowClient(uri)
    for run in failed:
        assert "stage quick_shared" in run.data.tags[f"{TAG}error"]
        trace = Path(client.download_artifacts(run.info.run_id, "traceback.txt", str(tmp_path))).read_text()
        assert "quick_shared was asked to fail" in trace and "Traceback" in trace


def test_costly_work_starts_first(tiny_root, tmp_path):
    """Declared costs order the launch (one worker slot, so the order is the start order): the
    costliest trial starts first whatever its place in the grid, and a stage whose chain of work is
    longer than any ready trial starts before it."""
    counter = tmp_path / "counter.txt"
    spec = write_spec(
        tmp_path,
        "costs",
        f"""\
experiment: costs
dataset: {{name: skim-digits, params: {{variant: longrange, size: tiny, root: "{tiny_root}"}}}}
backbones: [resnet18]
seeds: [0]
methods:
  - {{name: quick_centroid, params: {{expected_cost: 1}}, grid: {{k: [1, 2]}}}}
  - {{name: quick_centroid, params: {{expected_cost: 30}}, grid: {{k: [3]}}}}
  - {{name: quick_centroid, params: {{expected_cost: 5, stage_counter: "{counter}"}}, grid: {{k: [4]}}}}
evaluation: {{batch_size: 2, latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{tmp_path}/mlflow.db"}}
ray: {{num_cpus: 2, max_concurrent: 1}}
output: "{tmp_path}/results"
""",
    )
    spec_ = load_spec(spec)
    plan = build_plan(expand(spec_), tmp_path / "plan-stages")
    (shared,) = [s for s in plan.stages.values() if s.name == "quick_shared"]
    assert shared.rank == pytest.approx(shared.cost + 5)  # its cost, then the trial it unblocks
    done = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = trial_runs(tracking.resolve_uri(spec_.tracking["uri"]), spec_.experiment)
    started = sorted(runs, key=lambda r: r.data.metrics["sched_start"])
    assert [int(r.data.params["method.params.k"]) for r in started] == [3, 4, 1, 2]


def test_a_new_sqlite_store_starts_from_the_migrated_template_and_stands_alone(tmp_path, monkeypatch):
    """Two new stores seeded from one cached template: MLflow accepts each (its schema check passes)
    and what one records is not in the other (a copy, never a link to the template)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    uris = [f"sqlite:///{tmp_path}/store{i}.db" for i in range(2)]
    ids = [tracking.ensure_experiment(uri, "seeded") for uri in uris]
    assert list((tmp_path / "cache" / "skimbench").glob("mlflow-*.db"))
    run = MlflowClient(uris[0]).create_run(ids[0])
    assert MlflowClient(uris[0]).get_run(run.info.run_id).info.run_id == run.info.run_id
    assert MlflowClient(uris[1]).search_runs([ids[1]]) == []
    assert tracking.ensure_experiment(uris[1], "other") != ids[1]


def test_the_plugin_listing_cache_follows_every_source_edit(tmp_path):
    """``skimbench methods`` prints from a cache keyed by the sources' fingerprint: the cached listing
    is the listing, and editing (here: touching) a built-in method's file changes the key."""
    import os

    import methods.uniform
    from harness.registry import sources_fingerprint

    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first, second = skimbench("methods", env=env), skimbench("methods", env=env)
    assert first.returncode == second.returncode == 0 and first.stdout == second.stdout
    assert "uniform:" in first.stdout and list((tmp_path / "cache" / "skimbench" / "plugins").glob("*.txt"))
    source = Path(methods.uniform.__file__)
    before, stat = sources_fingerprint(), source.stat()
    try:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert sources_fingerprint() != before
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert sources_fingerprint() == before


def test_a_stage_measured_before_is_planned_at_its_measured_cost(tiny_root, tmp_path):
    """An earlier build of a stage of the same name (another key) in the store replaces the declared
    cost with the seconds it took, and the stage's rank follows."""
    import json

    counter = tmp_path / "counter.txt"
    spec = quick_spec(tmp_path, tiny_root, method_params=f'stage_counter: "{counter}", expected_cost: 3', grid="k: [2]")
    store = tmp_path / "stages"
    declared = build_plan(expand(load_spec(spec)), store)
    (shared,) = [s for s in declared.stages.values() if s.name == "quick_shared"]
    assert shared.cost == 5.0 and shared.rank == pytest.approx(8.0)  # StageRequest's default, then the trial
    for key, seconds in (("a" * 16, 100.0), ("b" * 16, 140.0), ("c" * 16, 120.0)):
        (store / "quick_shared" / key).mkdir(parents=True)
        (store / "quick_shared" / key / "meta.json").write_text(json.dumps({"seconds": seconds}))
    measured = build_plan(expand(load_spec(spec)), store)
    (shared,) = [s for s in measured.stages.values() if s.name == "quick_shared"]
    assert shared.cost == 120.0 and shared.rank == pytest.approx(123.0)  # the median of the earlier builds


def test_a_stage_built_outside_the_store_lock_still_shows_in_the_schedule(tiny_root, tmp_path):
    """A declared stage whose build writes its folder itself (as sharded extractions do) emits no
    events of its own: ``run_stage`` records its span, once, so the Gantt chart shows it."""
    from harness.plan import run_stage
    from harness.stages import stage_spans

    counter = tmp_path / "counter.txt"
    spec = quick_spec(
        tmp_path, tiny_root, method_params=f'stage_counter: "{counter}", stage_direct: true', grid="k: [2]"
    )
    store = tmp_path / "stages"
    plan = build_plan(expand(load_spec(spec)), store)
    (key,) = [s.key for s in plan.stages.values() if s.name == "quick_shared"]
    run_stage(plan.representative(key), key, store)
    run_stage(plan.representative(key), key, store)  # already there: nothing computed, nothing recorded
    spans = [s for s in stage_spans(store) if s["stage"] == "quick_shared"]
    assert len(spans) == 1 and spans[0]["end"] - spans[0]["start"] >= 1.0  # the build sleeps 1 s
    assert counter.read_text().count("computed") == 1


def test_launches_attached_to_a_running_ray_reuse_its_workers_until_the_code_changes(tiny_root, tmp_path, running_ray):
    """The second launch on a running Ray runs in the worker processes of the first (no new imports);
    a launch with edited plugin code gets new workers, and the old ones give their CPUs back (else
    it could not start: they hold both CPUs of the cluster)."""
    cluster, plugin = running_ray
    pids = []
    for launch in range(3):
        if launch == 2:
            plugin.write_text(plugin.read_text() + "\n# edited\n")
        folder = tmp_path / f"launch{launch}"
        folder.mkdir()
        spec = quick_spec(folder, tiny_root, experiment="pool", grid="k: [1, 2, 3, 4]")
        proc = _run_attached(spec, plugin, cluster)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs = trial_runs(f"sqlite:///{folder}/mlflow.db", "pool")
        assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
        pids.append({int(r.data.metrics["sched_pid"]) for r in runs})
    assert pids[1] <= pids[0], "the second launch started new worker processes"
    assert not pids[2] & pids[0], "workers with the old plugin code ran the edited plugin's trials"


def test_a_launch_of_other_code_waits_for_a_running_grid_instead_of_cutting_it_short(tiny_root, tmp_path, running_ray):
    """Two grids of different code on one running Ray: the second needs the workers' CPUs, and the first
    grid's workers retire only when it has ended (a worker retired in the middle of it fails the trials
    sent to it next). Both grids finish every trial."""
    cluster, plugin = running_ray
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = quick_spec(tmp_path / "a", tiny_root, experiment="a", grid=_grid(8), method_params="sleep_s: 4")
    running = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(first), "--plugin", str(plugin)]
        + ["--address", cluster.address, "--no-report", "--quiet"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not _started(tmp_path / "a", "a"):
        assert running.poll() is None and time.time() < deadline, running.communicate()[1][-3000:]
        time.sleep(0.5)
    plugin.write_text(plugin.read_text() + "\n# edited\n")  # other code: another pool
    second = quick_spec(tmp_path / "b", tiny_root, experiment="b", grid=_grid(2))
    proc = _run_attached(second, plugin, cluster)
    _, err = running.communicate(timeout=600)
    assert running.returncode == 0, err[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    for folder, experiment, n in ((tmp_path / "a", "a", 8), (tmp_path / "b", "b", 2)):
        runs = trial_runs(f"sqlite:///{folder}/mlflow.db", experiment)
        assert len(runs) == n and all(r.info.status == "FINISHED" for r in runs), experiment


def _run_attached(spec: Path, plugin: Path, cluster) -> subprocess.CompletedProcess:
    return skimbench(
        "run", str(spec), "--plugin", str(plugin), "--address", cluster.address, "--no-report", "--quiet", timeout=600
    )


def _grid(n: int) -> str:
    return "k: [" + ", ".join(str(k) for k in range(1, n + 1)) + "]"


def _started(folder: Path, experiment: str) -> bool:
    """Whether a trial of the experiment has opened its run (the grid is under way)."""
    try:
        return bool(trial_runs(f"sqlite:///{folder}/mlflow.db", experiment))
    except Exception:  # noqa: BLE001 - the store is being created
        return False


@pytest.fixture
def running_ray(tmp_path):
    """A running Ray with two CPUs (as ``ray start --head`` leaves one), and a copy of the test plugin
    to edit; the cluster is shut down at the end, with every worker kept in it."""
    from ray.cluster_utils import Cluster

    plugin = tmp_path / "quick_methods.py"
    plugin.write_text(Path(PLUGIN).read_text())
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "object_store_memory": 80 * 2**20, "include_dashboard": False},
    )
    try:
        yield cluster, plugin
    finally:
        cluster.shutdown()
