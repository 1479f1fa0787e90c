"""End to end: trials logged to a real MLflow sqlite store the way harness.tracking logs them, then
``build_report`` writes every section; missing pieces are reported, not fatal; two experiments
share axes."""

import matplotlib.image
import pandas as pd
import pytest
from test_report_helpers import frames, make_experiment, relevance

from harness.report.build import build_report, report_dir
from harness.report.claims import VERDICTS, registered_claims
from harness.report.collect import ReportError, load_predictions, load_trials


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    uri = make_experiment(tmp)
    out = report_dir(tmp / "results", ["quick"])
    report = build_report(uri, ["quick"], out, get_frames=frames, relevance=relevance())
    return uri, out, report.read_text(), tmp


def test_load_trials_keeps_only_trials_and_types_tags(full):
    trials = load_trials(full[0], ["quick"])
    assert len(trials) == 61  # 60 finished + 1 failed; the parent run (no trial hash) is not a trial
    assert set(trials["status"]) == {"FINISHED", "FAILED"}
    oracle = trials[trials["method"] == "oracle"].iloc[0]
    assert not oracle["deployable"] and oracle["budget"] in (1.0, 2.0) and oracle["selection_unit"] == "clip"
    assert trials.loc[trials["method"] == "dense", "budget"].isna().all()
    assert trials[trials["method"] == "scsampler"]["params"].map(lambda p: p["objective"]).nunique() == 2


def test_load_predictions_decodes_json_cells(full):
    trials = load_trials(full[0], ["quick"])
    run = trials[(trials["method"] == "sgs") & (trials["status"] == "FINISHED")].iloc[0]
    table = load_predictions(full[0], run["run_id"])
    assert len(table) == 6 and isinstance(table["extras"][0]["bins"], int) and table["selected"][0] is None
    failed = trials[trials["status"] == "FAILED"].iloc[0]
    assert load_predictions(full[0], failed["run_id"]) is None


def test_report_files(full):
    _, out, _, _ = full
    assert out.name == "quick"
    for stem in (
        "pareto_synthetic_top1_pct",
        "latency_synthetic_top1_pct",
        "cost_per_video_synthetic",
        "sgs_bins_synthetic",
        "selection_synthetic",
        "filmstrip",
    ):
        png = out / "figures" / f"{stem}.png"
        assert matplotlib.image.imread(png).shape[0] > 200, stem
        assert (out / "figures" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    for stem in (
        "methods_top1_pct",
        "matched_compute_top1_pct",
        "reach_reference_top1_pct",
        "front_share_top1_pct",
        "selection_quality",
        "claims",
        "cost_regime",
    ):
        for suffix in (".csv", ".md", ".tex"):
            assert (out / "tables" / f"{stem}{suffix}").stat().st_size > 0, stem + suffix
    assert "\\toprule" in (out / "tables" / "methods_top1_pct.tex").read_text()


def test_report_md_content(full):
    _, out, text, _ = full
    assert "one fused multiply-add counts as one FLOP" in text
    for section in (
        "## Accuracy against compute",
        "## Tables",
        "## Per-video cost of dynamic methods",
        "## Selection quality",
        "## Claims check",
        "## Missing or failed trials",
    ):
        assert section in text
    assert "![synthetic top1_pct vs GFLOPs per video](figures/pareto_synthetic_top1_pct.png)" in text
    assert "**synthetic, top1_pct: Pareto front**" in text and "sgs bins=16" in text
    assert "| uniform | k=16 | 0 | FAILED | ERROR |" in text  # the failed trial is listed
    assert "oracle | k=1 | 2 | 86.0 [58.3, 100.0] | 1.4 |" in text  # seed mean [95% interval], std over two seeds
    assert "| light | selection | 0.02 | 1:25 |" in text  # cost regime: light vs heavy per call, 0.02 vs 0.5
    assert "1:98 (section 4.1" in text  # LiteEval's paper ratio, declared beside the method
    assert "n/a (non-deployable)" in text
    # a per-video fact with one value per budget is a sentence, not a histogram of one bar
    assert not (out / "figures" / "temporal_clustering_cluster_boundaries_synthetic.png").exists()
    assert "is the same for every test video: temporal_clustering[rule=cumulative] g=2: 2," in text
    caveat = next(line for line in text.splitlines() if line.startswith("**Latency caveat.**"))
    assert "random k=2 seed 1" in caveat and "seed 0" not in caveat and "uniform" not in caveat


def test_tables_numbers(full):
    _, out, _, _ = full
    methods = pd.read_csv(out / "tables" / "methods_top1_pct.csv")
    uniform = methods[methods["method"] == "uniform"].set_index("budget")
    assert list(uniform.index) == [2, 4, 8]  # the failed k=16 trial has no row
    assert uniform.loc[2, "top1_pct_mean"] == pytest.approx((48.509775 + 50.509775) / 2)
    assert not methods.loc[methods["method"] == "oracle", "on_front"].any()
    reach = pd.read_csv(out / "tables" / "reach_reference_top1_pct.csv").set_index("method")
    assert reach.loc["dense", "fraction_of_reference_gflops"] == pytest.approx(1.0)
    assert set(reach["reference"]) == {"dense"}  # the only method without a budget knob
    share = pd.read_csv(out / "tables" / "front_share_top1_pct.csv")
    assert share["share_of_front"].sum() == pytest.approx(1.0)
    quality = pd.read_csv(out / "tables" / "selection_quality.csv")
    assert "sgs" not in set(quality["label"])  # in-network methods select nothing
    epitoma = quality.set_index("label").loc["videoepitoma"].sort_values("budget")
    assert epitoma["precision_mean"].iloc[-1] == pytest.approx(0.875)


def test_claims_rows(full):
    _, out, _, _ = full
    claims = pd.read_csv(out / "tables" / "claims.csv")
    assert {c.id for c in registered_claims()} == set(claims["id"])
    assert set(claims["verdict"]) <= set(VERDICTS)
    assert claims.set_index("id").loc["VE-3", "verdict"] == "does not hold"  # 39% selection overhead at k=2


# The tests below add experiments to the same sqlite store: creating a store costs seconds.


def test_missing_pieces_are_reported_not_fatal(full, tmp_path):
    uri = make_experiment(full[3], "bare", methods=["uniform", "random"], seeds=(0,), with_predictions=False)
    report = build_report(uri, ["bare"], tmp_path / "out", get_frames=frames, relevance=relevance())
    text = report.read_text()
    assert "_No dynamic method" in text
    assert "_No finished trial of a method without a budget knob: nothing to reach._" in text
    assert "No per-video facts declared" in text
    assert "One seed per point: training variance is not measured." in text
    assert "No trial recorded selected frames or clips" in text
    assert "have no predictions.csv" in text and "1 trial(s) have no finished run" in text
    claims = pd.read_csv(tmp_path / "out" / "tables" / "claims.csv")
    assert set(claims["verdict"]) == {"not comparable here"}
    assert (tmp_path / "out" / "figures" / "pareto_synthetic_top1_pct.png").exists()


def test_compare_two_experiments_on_the_same_axes(full, tmp_path):
    uri = make_experiment(full[3], "cpu", methods=["uniform", "dense"], seeds=(0,), failed=False)
    make_experiment(full[3], "gpu", methods=["uniform", "dense"], seeds=(0,), failed=False)  # same trial hashes
    out = report_dir(tmp_path / "results", ["cpu", "gpu"])
    assert out.name == "compare-cpu-vs-gpu"
    text = build_report(uri, ["cpu", "gpu"], out).read_text()
    methods = pd.read_csv(out / "tables" / "methods_top1_pct.csv")
    assert {
        "uniform[experiment=cpu]",
        "uniform[experiment=gpu]",
        "dense[experiment=cpu]",
        "dense[experiment=gpu]",
    } == set(methods["method"])
    assert len(methods) == 8  # 3 uniform budgets + dense, per experiment: none dropped as a duplicate
    assert "experiment(s) `cpu`, `gpu`" in text and "selection quality skipped" in text
    reach = pd.read_csv(out / "tables" / "reach_reference_top1_pct.csv")
    assert len(reach) == 4  # each curve against the dense baseline of its own experiment


def test_unknown_experiment_is_a_clear_error(full):
    with pytest.raises(ReportError, match="no MLflow experiment 'missing'.*quick"):
        load_trials(full[0], ["missing"])


def test_per_video_facts_from_extras():
    from harness.report.evidence import fact_value

    assert fact_value([0, 3, 7, 9]) == 4  # a list counts its distinct values: every cluster's start frame
    assert fact_value([0, 1, 2, 2, 2]) == 3  # short video: repeated starts add no cluster
    assert fact_value(7) == 7 and fact_value(None) is None and fact_value(True) is None


def test_an_experiment_whose_trials_all_failed_still_gets_a_report(full, tmp_path):
    from mlflow.tracking import MlflowClient
    from test_report_helpers import log_trial

    client = MlflowClient(full[0])
    exp = client.create_experiment("allfail", artifact_location=str(tmp_path / "artifacts"))
    log_trial(client, exp, client.create_run(exp).info.run_id, "uniform", 2, 0, {}, status="FAILED")
    text = build_report(full[0], ["allfail"], tmp_path / "out").read_text()
    assert "No finished trial has an accuracy or mAP metric" in text
    assert "_No metric to check claims against._" in text and "| uniform | k=2 | 0 | FAILED |" in text


def test_trial_intervals_for_skimbench_results(full):
    from harness.report.evidence import trial_intervals

    trials = load_trials(full[0], ["quick"])
    done = trials[trials["status"] == "FINISHED"].iloc[:2]
    failed = trials[trials["status"] == "FAILED"].iloc[0]
    table = trial_intervals(full[0], list(done["run_id"]) + [failed["run_id"]]).set_index("run_id")
    for run_id in done["run_id"]:
        assert table.loc[run_id, "top1_pct_lo"] <= table.loc[run_id, "top1_pct_hi"]
    assert pd.isna(table.loc[failed["run_id"], "top1_pct_lo"])  # no predictions, no interval


def test_cost_regime_ratio_comes_from_fvcore_counts():
    import torch

    from harness.compute import account, count_flops
    from harness.method import Component, Usage
    from harness.report.claims import PaperCost
    from harness.report.tables import cost_regime_table

    light, heavy = torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(3, 64, 3)
    frame = lambda: (torch.zeros(1, 3, 32, 32),)  # noqa: E731
    parts = {"light": Component(light, frame, role="selection"), "heavy": Component(heavy, frame)}
    accounting = account(parts, [Usage({"light": 8, "heavy": 2}), Usage({"light": 8, "heavy": 4})])
    numeric, text = cost_regime_table({("d", "sampler", "m"): accounting.table}, {"m": PaperCost("m", "1:98", "x")})
    row = numeric.set_index("component").loc["light"]
    expected = count_flops(light, frame()).gflops / count_flops(heavy, frame()).gflops
    assert row["ratio_to_heaviest_recognition"] == pytest.approx(expected) and expected == pytest.approx(1 / 16)
    assert text.set_index("component").loc["light", "vs heaviest recognition"] == "1:16"
    assert row["paper_ratio"] == "1:98" and row["calls_all_videos"] == 16
