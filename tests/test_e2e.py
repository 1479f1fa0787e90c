"""End to end through the real command line: real Ray, real MLflow (sqlite), real decoded videos."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import PLUGIN, quick_spec, skimbench
from mlflow.tracking import MlflowClient

from harness.tracking import TAG, trial_runs


def _runs(folder, experiment):
    uri = f"sqlite:///{folder}/mlflow.db"
    return uri, trial_runs(uri, experiment)


@pytest.fixture(scope="module")
def ray_grid(tiny_root, tmp_path_factory):
    """One grid of 2 trials through Ray (2 workers), both needing the same shared stage."""
    folder = tmp_path_factory.mktemp("ray-grid")
    counter = folder / "stage-counter.txt"
    spec = quick_spec(folder, tiny_root, method_params=f'stage_counter: "{counter}"')
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--no-report", "--quiet")
    return folder, spec, counter, proc


def test_ray_grid_logs_parent_and_child_runs(ray_grid):
    folder, _, _, proc = ray_grid
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri, runs = _runs(folder, "e2e")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    client = MlflowClient(uri)
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1
    parent = client.get_run(parents.pop())
    assert parent.data.tags[f"{TAG}role"] == "launch" and parent.info.status == "FINISHED"
    # MLflow as researchers use it: named runs, the spec attached, the UI opening on runs
    assert parent.data.tags["mlflow.runName"] == "e2e (e2e.yaml)"
    assert "e2e.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert client.get_experiment_by_name("e2e").tags["mlflow.experimentKind"] == "custom_model_development"
    assert sorted(r.data.tags["mlflow.runName"] for r in runs) == ["quick_centroid[k=2]", "quick_centroid[k=4]"]
    for run in runs:
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        assert params["method.name"] == "quick_centroid" and params["method.params.k"] in {"2", "4"}
        assert params["dataset.params.size"] == "tiny" and params["seed"] == "0"
        for key in (
            "top1_pct",
            "top5_pct",
            "map_pct",
            "gflops_per_video_mean",
            "gflops_per_video_std",
            "gflops_per_video_min",
            "gflops_per_video_max",
            "params_m",
            "latency_ms_per_video",
            "throughput_videos_per_s",
            "peak_memory_mb",
            "train_time_s",
            "wall_time_s",
            "videos_evaluated",
        ):
            assert key in metrics, key
        assert 0 <= metrics["top1_pct"] <= 100 and metrics["gflops_per_video_mean"] > 0
        for key in (
            "trial_hash",
            "git_commit",
            "dataset_manifest",
            "version.torch",
            "version.ray",
            "version.mlflow",
            "version.fvcore",
            "version.decord",
            "hardware.cpu",
            "hardware.cores",
            "spec_hash",
            "stages",
            "ray_node",
        ):
            assert tags.get(f"{TAG}{key}"), key
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"predictions.csv", "config.json", "skipped_videos.csv", "flops_components.json"} <= files
        table = pd.read_csv(client.download_artifacts(run.info.run_id, "predictions.csv"))
        assert len(table) == metrics["videos_evaluated"]
        k = int(params["method.params.k"])
        assert all(len(json.loads(s)) == k for s in table["selected"])
    # more frames looked at costs more: the accounting follows the usage
    by_k = {int(r.data.params["method.params.k"]): r.data.metrics["gflops_per_video_mean"] for r in runs}
    assert by_k[4] == pytest.approx(2 * by_k[2], rel=1e-6)


def test_shared_stage_computed_once_for_concurrent_trials(ray_grid):
    folder, _, counter, proc = ray_grid
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert counter.read_text().count("computed") == 1
    _, runs = _runs(folder, "e2e")
    keys = {json.loads(r.data.tags[f"{TAG}stages"])["quick_shared"] for r in runs}
    assert len(keys) == 1


def test_local_path_gives_the_same_metrics_as_ray(ray_grid, tiny_root):
    folder, _, counter, _ = ray_grid
    spec = quick_spec(folder, tiny_root, experiment="e2e_local", method_params=f'stage_counter: "{counter}"')
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--local", "--no-report", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, ray_runs = _runs(folder, "e2e")
    _, local_runs = _runs(folder, "e2e_local")
    pick = lambda runs: {
        r.data.tags[f"{TAG}trial_hash"]: {
            k: r.data.metrics[k] for k in ("top1_pct", "map_pct", "gflops_per_video_mean")
        }
        for r in runs
    }
    assert pick(ray_runs) == pick(local_runs)


def test_rerun_skips_finished_trials_and_force_reruns(ray_grid):
    folder, spec, _, _ = ray_grid
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--local", "--no-report", "--quiet")
    assert proc.returncode == 0 and "2 skipped" in proc.stderr, proc.stderr[-2000:]
    assert len(_runs(folder, "e2e")[1]) == 2
    uri = f"sqlite:///{folder}/mlflow.db"
    launches = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("e2e").experiment_id], filter_string=f"tags.`{TAG}role` = 'launch'"
    )
    assert len(launches) == 1  # no empty parent run when every trial was skipped


def test_failing_trial_is_recorded_and_the_grid_goes_on(tiny_root, tmp_path):
    spec = quick_spec(
        tmp_path,
        tiny_root,
        experiment="fails",
        grid="k: [2]",
        extra="""\
  # (appended to methods)
""",
    )
    text = spec.read_text().replace(
        "    grid: {k: [2]}\n", "    grid: {k: [2]}\n  - name: quick_centroid\n    params: {fail: true}\n"
    )
    spec.write_text(text)
    proc = skimbench("run", str(spec), "--plugin", str(PLUGIN), "--local", "--no-report", "--quiet")
    assert proc.returncode == 1, proc.stderr[-2000:]
    uri, runs = _runs(tmp_path, "fails")
    status = sorted(r.info.status for r in runs)
    assert status == ["FAILED", "FINISHED"]
    failed = next(r for r in runs if r.info.status == "FAILED")
    path = MlflowClient(uri).download_artifacts(failed.info.run_id, "traceback.txt")
    text = open(path).read()
    assert "Traceback" in text and "quick_centroid was asked to fail" in text
    assert failed.data.tags[f"{TAG}outcome"] == "ERROR"


def test_malformed_spec_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "experiment: x\ndataset: {name: skim-digits}\nseeds: [0]\nmethods:\n  - name: uniform\n    grid: {k: [1, ten]}\n"  # noqa: E501
    )
    proc = skimbench("run", str(bad))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"{bad}:6: methods[0].grid.k[1]:"), lines[0]
    assert not (tmp_path / "results").exists()
