"""The trial pipeline in this process: ``execute`` (start the run, run the trial, record it), with and
without a timeout, the Trial's travel into config.json, the Method base's hooks, code versions in
the trial identity, and what the MLflow run carries (run name, source files, flags as tags, dataset
input). Real MLflow (sqlite), real decoded videos, the quick test plugin."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from conftest import PLUGIN, quick_spec, skimbench
from mlflow.tracking import MlflowClient

from harness import tracking
from harness.grid import expand
from harness.hashing import code_version
from harness.launchers import LaunchContext, TrialTimeout, execute
from harness.method import Method
from harness.registry import load_plugin_file
from harness.spec import load_spec
from harness.timing_lock import EXCLUSIVE
from harness.tracking import TAG, trial_runs

load_plugin_file(PLUGIN)


def _setup(tmp_path: Path, tiny_root: Path, **spec_args):
    spec = load_spec(quick_spec(tmp_path, tiny_root, grid="k: [2]", **spec_args))
    uri = tracking.resolve_uri(spec.tracking["uri"])
    experiment_id = tracking.ensure_experiment(uri, spec.experiment, artifact_root=tmp_path / "mlartifacts")
    context = LaunchContext(uri, experiment_id, None, str(tmp_path / "stages"), (str(PLUGIN),))
    (trial,) = expand(spec)
    return trial, context


def test_execute_logs_a_complete_run(tiny_root, tmp_path, one_thread):
    trial, context = _setup(tmp_path, tiny_root, experiment="execute")
    metrics = execute(trial, context)
    (run,) = trial_runs(context.uri, "execute")
    client = MlflowClient(context.uri)
    assert run.info.status == "FINISHED" and run.data.metrics["top1_pct"] == metrics["top1_pct"]
    # percent metrics carry their unit in the name; no bare ``top1`` beside them
    assert {"top1_pct", "top5_pct", "map_pct"} <= set(run.data.metrics)
    assert not {"top1", "top5", "map"} & set(run.data.metrics)
    # config.json is the Trial, nothing added on the way (no display-only "swept", no "attempt")
    config = json.loads(Path(client.download_artifacts(run.info.run_id, "config.json")).read_text())
    assert config == json.loads(json.dumps(trial.to_dict()))
    # one name everywhere; flags are tags; the plugin's source travels with the run
    assert run.data.tags["mlflow.runName"] == run.data.tags[f"{TAG}name"] == trial.name == "quick_centroid"
    assert "latency_from_trace" not in run.data.metrics
    assert run.data.tags[f"{TAG}latency_from_trace"] in ("true", "false")
    assert run.data.tags[f"{TAG}latency_timing"] == EXCLUSIVE  # timed holding the machine's timing lock
    assert run.data.tags["mlflow.source.git.commit"] == run.data.tags[f"{TAG}git_commit"]
    assert run.data.tags[f"{TAG}code.method"] == trial.code["method"]
    sources = [a.path for a in client.list_artifacts(run.info.run_id, "source")]
    assert "source/quick_methods.py" in sources
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "skim-digits" and dataset.dataset.digest
    assert client.get_experiment(context.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_timed_trial_runs_in_a_child_and_goes_through_the_same_entry_point(tiny_root, tmp_path, one_thread):
    trial, context = _setup(tmp_path, tiny_root, experiment="child", extra="timeout_s: 120\n")
    metrics = execute(trial, context)  # finished in time: the child's result comes back
    assert metrics["videos_evaluated"] > 0
    slow = dataclasses.replace(
        trial, timeout_s=3, method=dataclasses.replace(trial.method, params={**trial.method.params, "sleep_s": 60})
    )
    with pytest.raises(TrialTimeout):
        execute(slow, context)
    runs = {r.info.status: r for r in trial_runs(context.uri, "child")}
    assert set(runs) == {"FINISHED", "KILLED"}
    killed = runs["KILLED"]
    assert killed.data.tags[f"{TAG}outcome"] == "TIMEOUT"
    text = Path(MlflowClient(context.uri).download_artifacts(killed.info.run_id, "traceback.txt")).read_text()
    assert "timeout_s = 3" in text


def test_method_base_has_an_eval_mode_hook():
    assert callable(Method.eval_mode) and Method.eval_mode(object.__new__(Method)) is None


def test_declared_version_replaces_the_source_hash():
    class Versioned(Method):
        version = "2"

    class Unversioned(Method):
        pass

    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    assert code_version(Versioned) == "version:2"
    assert code_version(Unversioned) == f"source:{digest}"  # the file of the module that defines it


EDITABLE = """\
import numpy as np
from harness.method import Component, Method, Prediction, Usage
from harness.registry import register_method
from torch import nn


@register_method("editable")
class Editable(Method):
    budget_param = None

    def components(self):
        return {"probe": Component(nn.Linear(1, 1), lambda: (__import__("torch").zeros(1, 1),))}

    def predict(self, video):
        scores = np.zeros(self.ctx.dataset.num_classes)
        scores[SCORE_INDEX] = 1.0
        return Prediction(scores=scores, usage=Usage({"probe": 1}))


SCORE_INDEX = 0
"""


def test_editing_a_plugin_reruns_its_trials(tiny_root, tmp_path):
    """A method's code is part of its trials' identity: edit it, and the rerun does not skip it."""
    plugin = tmp_path / "editable.py"
    plugin.write_text(EDITABLE)
    spec = quick_spec(tmp_path, tiny_root, experiment="edited", grid="k: [2]")
    spec.write_text(
        spec.read_text().replace(
            "  - name: quick_centroid\n    params: {}\n    grid: {k: [2]}\n", "  - name: editable\n"
        )
    )
    first = skimbench("run", str(spec), "--plugin", str(plugin), "--local", "--no-report", "--quiet")
    assert first.returncode == 0, first.stderr[-2000:]
    same = skimbench("run", str(spec), "--plugin", str(plugin), "--local", "--no-report", "--quiet")
    assert "1 skipped" in same.stderr, same.stderr[-2000:]
    plugin.write_text(EDITABLE.replace("SCORE_INDEX = 0", "SCORE_INDEX = 1"))
    edited = skimbench("run", str(spec), "--plugin", str(plugin), "--local", "--no-report", "--quiet")
    assert edited.returncode == 0, edited.stderr[-2000:]
    assert "1 finished" in edited.stderr and "0 skipped" in edited.stderr, edited.stderr[-2000:]
    runs = trial_runs(f"sqlite:///{tmp_path}/mlflow.db", "edited")
    assert len(runs) == 2 and len({r.data.tags[f"{TAG}trial_hash"] for r in runs}) == 2
    newest = runs[0]  # trial_runs lists newest first
    assert newest.data.tags[f"{TAG}code.method"] == "source:" + hashlib.sha256(plugin.read_bytes()).hexdigest()[:16]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    files = {a.path for a in client.list_artifacts(newest.info.run_id, "source")}
    assert "source/editable.py" in files
