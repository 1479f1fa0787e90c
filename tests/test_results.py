"""``skimbench results``: one row per trial under its trial name, budgets sorted as numbers, no None
parameters, no floating-point dust, fitted to the terminal; a store logged before the metrics carried
their unit (``top1``) still reads. Runs written to a real MLflow store."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from harness.report.collect import load_trials
from harness.results import results_frame, results_table
from harness.tracking import TAG, ensure_experiment


def _trial_run(client, experiment_id, name, label, budget, seed, top1, std, accuracy=("top1_pct", "map_pct")):
    tags = {
        f"{TAG}role": "trial",
        f"{TAG}name": name,
        f"{TAG}label": label,
        f"{TAG}method": label,
        f"{TAG}budget": budget,
        f"{TAG}seed": str(seed),
        f"{TAG}trial_hash": f"{abs(hash(name)):016x}"[:16],
        f"{TAG}backbone": "r3d_18",
    }
    run = client.create_run(experiment_id, tags=tags)
    client.log_metric(run.info.run_id, accuracy[0], top1)
    client.log_metric(run.info.run_id, "gflops_per_video_std", std)
    for metric in (accuracy[1], "gflops_per_video_mean", "latency_ms_per_video", "params_m", "videos_skipped"):
        client.log_metric(run.info.run_id, metric, 12.345678)
    client.set_terminated(run.info.run_id)


def test_results_rows_are_named_sorted_numerically_and_clean(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = ensure_experiment(uri, "res")
    client = MlflowClient(uri)
    for objective in ("ac", "sal_cl", "sal_rank"):
        _trial_run(client, experiment_id, f"scsampler[k=1,objective={objective}]", "scsampler", "1", 0, 50.0, 0.0)
    for bins in (16, 4, 8):
        _trial_run(client, experiment_id, f"sgs[bins_test={bins},mode=atfr]", "sgs", str(bins), 0, 60.0, 3.469e-18)
    _trial_run(client, experiment_id, "sgs[mode=base]", "sgs", "null", 0, 61.0, 0.0)
    monkeypatch.setenv("COLUMNS", "100")  # the terminal's width
    text = results_table(uri, "res")
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines), text
    names = [line.split()[0] for line in lines[1:8]]  # the first block of columns
    assert names[:3] == [
        "scsampler[k=1,objective=ac]",
        "scsampler[k=1,objective=sal_cl]",
        "scsampler[k=1,objective=sal_rank]",
    ]
    assert names[3:] == [
        "sgs[mode=base]",
        "sgs[bins_test=4,mode=atfr]",
        "sgs[bins_test=8,mode=atfr]",
        "sgs[bins_test=16,mode=atfr]",
    ]  # 4 before 16: numbers, not text
    assert "e-18" not in text and "null" not in text and "None" not in text


def test_a_store_logged_before_the_unit_joined_the_name_still_reads(tmp_path):
    # bug caught: an older store's runs (``top1``, ``map``) read as NaN accuracy, so its report is empty
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = ensure_experiment(uri, "old")
    client = MlflowClient(uri)
    _trial_run(client, experiment_id, "uniform[k=2]", "uniform", "2", 0, 50.0, 0.0, accuracy=("top1", "map"))
    _trial_run(client, experiment_id, "uniform[k=4]", "uniform", "4", 0, 70.0, 0.0)  # a run logged today
    (old, new) = load_trials(uri, ["old"]).sort_values("budget").itertuples()
    assert (old.top1_pct, old.map_pct, new.top1_pct) == (50.0, 12.345678, 70.0)
    assert not {"top1", "map"} & set(load_trials(uri, ["old"]).columns)  # one name per metric
    assert list(results_frame(uri, "old")["top1 %"]) == [50.0, 70.0]
