"""Pareto front, seed means and curve interpolation on hand-made point sets."""

import math

import numpy as np
import pandas as pd
import pytest

from harness.report.collect import label_series
from harness.report.pareto import (
    accuracy_at_matched_compute,
    compute_to_reach,
    finished,
    front_share,
    interpolate_metric,
    matched_cost_grid,
    pareto_front,
    seed_summary,
)


def points(pairs):
    return pd.DataFrame(pairs, columns=["cost", "acc"])


def front(pairs):
    return list(pareto_front(points(pairs), "cost", "acc"))


def test_front_of_a_simple_trade_off():
    # (2, 50) is dominated by (1, 60); (4, 70) and (1, 60) and (8, 80) form the front
    assert front([(1, 60), (2, 50), (4, 70), (8, 80), (8, 75)]) == [True, False, True, True, False]


def test_single_point_is_the_front():
    assert front([(3.0, 10.0)]) == [True]


def test_exact_duplicates_are_both_kept():
    assert front([(1, 60), (1, 60), (2, 55)]) == [True, True, False]


def test_equal_cost_keeps_only_the_better_metric():
    assert front([(1, 60), (1, 61)]) == [False, True]


def test_equal_metric_keeps_only_the_cheaper():
    assert front([(1, 60), (2, 60)]) == [True, False]


def test_nan_points_are_never_on_the_front_and_dominate_nothing():
    assert front([(1, np.nan), (2, 50), (np.nan, 90)]) == [False, True, False]


def test_front_keeps_the_index():
    df = points([(1, 60), (2, 50)]).set_axis([10, 20])
    assert pareto_front(df, "cost", "acc").to_dict() == {10: True, 20: False}


def test_front_share_counts_members_per_curve():
    df = points([(1, 60), (2, 50), (4, 70), (8, 80)]).assign(label=["a", "b", "a", "c"])
    share = front_share(df, pareto_front(df, "cost", "acc")).set_index("label")
    assert share.loc["a", "n_on_front"] == 2 and share.loc["b", "n_on_front"] == 0
    assert share.loc["a", "share_of_front"] == pytest.approx(2 / 3)
    assert share["share_of_front"].sum() == pytest.approx(1.0)


def test_interpolation_is_linear_in_log_cost_and_never_extrapolates():
    costs, accs = [1.0, 100.0], [50.0, 70.0]
    assert interpolate_metric(costs, accs, 10.0) == pytest.approx(60.0)  # halfway in log10
    assert math.isnan(interpolate_metric(costs, accs, 0.5))
    assert math.isnan(interpolate_metric(costs, accs, 200.0))
    assert interpolate_metric(costs, accs, 100.0) == pytest.approx(70.0)


def test_interpolation_of_unsorted_curve_with_shared_cost_uses_best():
    assert interpolate_metric([10, 1, 10], [40, 20, 60], 10) == pytest.approx(60.0)


def test_compute_to_reach():
    costs, accs = [1.0, 10.0, 100.0], [40.0, 60.0, 80.0]
    assert compute_to_reach(costs, accs, 70.0) == pytest.approx(10**1.5)
    assert compute_to_reach(costs, accs, 30.0) == pytest.approx(1.0)  # cheapest point already reaches it
    assert math.isnan(compute_to_reach(costs, accs, 90.0))  # never reached: no extrapolation
    # a non-monotone curve: the first crossing from the cheap end counts
    assert compute_to_reach([1, 2, 4], [50, 80, 70], 75) == pytest.approx(10 ** (np.log10(2) * 5 / 6))


def test_accuracy_at_matched_compute_table():
    df = pd.DataFrame({"label": ["a", "a", "b", "b"], "cost": [1, 100, 10, 1000], "acc": [50, 70, 40, 80]})
    table = accuracy_at_matched_compute(df, [1, 10, 1000], "cost", "acc")
    assert table.loc["a", 10] == pytest.approx(60) and math.isnan(table.loc["a", 1000])
    assert math.isnan(table.loc["b", 1]) and table.loc["b", 10] == pytest.approx(40)


def test_matched_cost_grid_stays_inside_the_range():
    grid = matched_cost_grid(pd.DataFrame({"label": ["a", "a"], "c": [0.123456, 98.7654]}), "c")
    assert grid[0] >= 0.123456 and grid[-1] <= 98.7654 and len(grid) == 4


def test_matched_cost_grid_spans_where_most_curves_overlap():
    df = pd.DataFrame({"label": ["a", "a", "b", "b", "c", "c", "dense"], "c": [1, 4, 2, 8, 1, 6, 100]})
    grid = matched_cost_grid(df, "c", n=3)
    assert grid[0] == 1.5 and grid[-1] == 7  # medians of the curves' min and max (dense is one curve of four)


def trial(method, budget, seed, top1, gflops, status="FINISHED", **params):
    return {
        "experiment": "e",
        "run_id": f"{method}-{budget}-{seed}",
        "status": status,
        "method": method,
        "dataset": "d",
        "backbone": "bb",
        "seed": seed,
        "budget_param": "k",
        "budget": budget,
        "deployable": method != "oracle",
        "dynamic": False,
        "params": {"k": budget, **params},
        "top1_pct": top1,
        "gflops_per_video_mean": gflops,
    }


def test_seed_summary_means_std_and_failed_runs_excluded():
    trials = pd.DataFrame(
        [
            trial("uniform", 4, 0, 50.0, 2.0),
            trial("uniform", 4, 1, 54.0, 2.0),
            trial("uniform", 4, 2, 0.0, 2.0, status="FAILED"),
            trial("uniform", 8, 0, 60.0, 4.0),
        ]
    )
    summary = seed_summary(label_series(trials)).set_index("budget")
    assert summary.loc[4, "top1_pct_mean"] == pytest.approx(52.0)
    assert summary.loc[4, "top1_pct_std"] == pytest.approx(np.std([50, 54], ddof=1))
    assert summary.loc[4, "n_seeds"] == 2 and summary.loc[4, "seeds"] == [0, 1]
    assert math.isnan(summary.loc[8, "top1_pct_std"])  # one seed: no spread to report
    assert "uniform-4-2" not in summary.loc[4, "run_ids"]


def test_a_trial_rerun_counts_once_but_the_same_hash_in_two_experiments_counts_twice():
    rows = [
        dict(trial("uniform", 4, 0, 50.0, 2.0), trial_hash="h", start_time=1),
        dict(trial("uniform", 4, 0, 60.0, 2.0), trial_hash="h", start_time=2, run_id="rerun"),
    ]
    summary = seed_summary(label_series(pd.DataFrame(rows)))
    assert summary.loc[0, "n_seeds"] == 1 and summary.loc[0, "top1_pct_mean"] == 60.0  # the latest run
    rows[1]["experiment"] = "other"
    assert finished(pd.DataFrame(rows)).shape[0] == 2


def test_labels_split_curves_by_non_budget_params_only():
    trials = pd.DataFrame(
        [
            trial("scsampler", 2, 0, 1, 1, objective="ac"),
            trial("scsampler", 4, 0, 1, 1, objective="ac"),
            trial("scsampler", 2, 0, 1, 1, objective="sal_rank"),
            trial("uniform", 2, 0, 1, 1),
        ]
    )
    assert list(label_series(trials)["label"]) == ["scsampler[objective=ac]"] * 2 + [
        "scsampler[objective=sal_rank]",
        "uniform",
    ]


def test_spec_labels_name_curves_and_still_split_differing_params():
    rows = [dict(trial("sgs", b, 0, 1, 1, mode="atfr"), spec_label="atfr") for b in (4, 8)]
    rows += [dict(trial("sgs", 16, 0, 1, 1, mode="base"), spec_label="base-3d-cnn")]
    rows += [dict(trial("scsampler", 2, 0, 1, 1, objective=o), spec_label="sampler") for o in ("ac", "sal_cl")]
    assert list(label_series(pd.DataFrame(rows))["label"]) == [
        "atfr",
        "atfr",
        "base-3d-cnn",
        "sampler[objective=ac]",
        "sampler[objective=sal_cl]",
    ]


def test_a_non_numeric_budget_separates_curves_instead_of_merging_them():
    from harness.report.collect import _budget_param

    assert _budget_param({"skimbench.budget_param": "k", "skimbench.budget": "4"}) == "k"
    assert _budget_param({"skimbench.budget_param": "bins_test", "skimbench.budget": "null"}) == "bins_test"
    assert _budget_param({"skimbench.budget_param": "arch", "skimbench.budget": '"small"'}) is None
    rows = [dict(trial("m", float("nan"), 0, 1, 1, arch=a), budget_param=None) for a in ("small", "big")]
    for row in rows:
        row["params"].pop("k")
    assert list(label_series(pd.DataFrame(rows))["label"]) == ["m[arch=small]", "m[arch=big]"]
