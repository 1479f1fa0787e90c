"""The claims check on hand-made seed means: verdicts follow the stated criteria, missing trials
give 'not comparable here', and every claim of every paper gets a row."""
import numpy as np
import pandas as pd

from harness.report.claims import CLAIMS, FAILS, HOLDS, NOT_COMPARABLE, check_claims
from harness.report.collect import label_series
from harness.report.pareto import seed_summary


def trial(method, budget, top1, gflops, seed=0, budget_param="k", **params):
    return {"experiment": "e", "run_id": f"{method}{budget}{seed}{params}", "status": "FINISHED", "method": method,
            "dataset": "d", "backbone": "bb", "seed": seed, "budget_param": budget_param, "budget": budget,
            "deployable": method != "oracle", "dynamic": method in ("liteeval", "sgs"),
            "params": dict(params, **{budget_param: budget}), "top1": top1, "gflops_per_video_mean": gflops,
            "gflops_per_video_std": 0.2 * gflops, "gflops_selection_mean": 0.01 * gflops}


def points(rows):
    return seed_summary(label_series(pd.DataFrame(rows)))


def verdicts(rows, claim_id, bins=None):
    table = check_claims(points(rows), "top1", bins)
    return table[table["id"] == claim_id]


UNIFORM = [trial("uniform", k, 40 + 5 * i, float(k)) for i, k in enumerate([2, 4, 8])]  # 40/45/50 @ 2/4/8


def test_every_claim_gets_a_row_and_missing_methods_are_not_comparable():
    table = check_claims(points(UNIFORM), "top1")
    assert set(table["id"]) == {c.id for c in CLAIMS}
    papers = {c.paper for c in CLAIMS}
    assert len(papers) == 5
    assert (table["verdict"] == NOT_COMPARABLE).all()  # every claim needs a method besides uniform
    ve = table[table["id"] == "VE-1"].iloc[0]
    assert ve["verdict"] == NOT_COMPARABLE and "videoepitoma" in ve["why"]


def test_matching_uniform_at_half_compute_holds_and_not_reaching_fails():
    good = UNIFORM + [trial("liteeval", g, a, c, budget_param="gamma") for g, a, c in [(0.05, 45, 2.5), (0.1, 50, 3.5)]]
    row = verdicts(good, "LE-1").iloc[0]
    assert row["verdict"] == HOLDS and "reference uniform k=8: 50.0% @ 8 GFLOPs" in row["measured here"]
    bad = UNIFORM + [trial("liteeval", g, a, c, budget_param="gamma") for g, a, c in [(0.05, 40, 2.5), (0.1, 46, 7.0)]]
    row = verdicts(bad, "LE-1").iloc[0]
    assert row["verdict"] == FAILS and "never reaches" in row["measured here"]


def test_beating_baselines_is_judged_per_curve_at_matched_compute():
    rows = UNIFORM + [trial("random", k, 38 + 5 * i, float(k)) for i, k in enumerate([2, 4, 8])]
    rows += [trial("scsampler", k, a, c, objective="ac") for k, a, c in [(1, 47, 3.0), (2, 52, 6.0)]]
    rows += [trial("scsampler", k, a, c, objective="sal_cl") for k, a, c in [(1, 41, 3.0), (2, 52, 6.0)]]
    table = verdicts(rows, "SC-1")
    by_curve = {r["measured here"].split(":")[0]: r["verdict"] for _, r in table.iterrows()}
    assert by_curve == {"scsampler (objective=ac)": HOLDS, "scsampler (objective=sal_cl)": FAILS}


def test_rule_ordering_names_rules_that_were_not_run():
    rows = [trial("temporal_clustering", g, a, float(g), budget_param="g", rule=r)
            for r, base in (("cumulative", 50), ("uniform", 45)) for g, a in ((4, base), (8, base + 3))]
    row = verdicts(rows, "TC-1").iloc[0]
    assert row["verdict"] == HOLDS and "slope not run" in row["why"]
    rows = [trial("temporal_clustering", 4, 50, 4.0, budget_param="g", rule="cumulative")]
    assert verdicts(rows, "TC-1").iloc[0]["verdict"] == NOT_COMPARABLE


def test_clusters_versus_uniform_frames_compares_equal_budgets_only():
    rows = UNIFORM + [trial("temporal_clustering", g, a, g + 0.5, budget_param="g", rule="cumulative")
                      for g, a in ((4, 46), (8, 49))]
    row = verdicts(rows, "TC-2").iloc[0]
    assert row["verdict"] == FAILS  # 46 > 45 at g=4 but 49 < 50 at g=8
    assert "4: 46.0 vs 45.0; 8: 49.0 vs 50.0" in row["measured here"]


def test_bins_vary_needs_per_video_counts():
    rows = [trial("sgs", b, 50 + b, b / 2, budget_param="bins") for b in (4, 8)]
    assert verdicts(rows, "SGS-2").iloc[0]["verdict"] == NOT_COMPARABLE
    bins = {("sgs", 4.0): np.array([2, 3, 4]), ("sgs", 8.0): np.array([5, 5, 5])}
    row = verdicts(rows, "SGS-2", bins).iloc[0]
    assert row["verdict"] == FAILS and "1 distinct values" in row["measured here"]
    assert verdicts(rows, "SGS-3").iloc[0]["verdict"] == HOLDS  # GFLOPs rise with B


def test_selection_overhead_threshold():
    rows = [trial("videoepitoma", k, 50, float(k)) for k in (2, 4)]  # selection is 1% of the total
    assert verdicts(rows, "VE-3").iloc[0]["verdict"] == HOLDS


def test_a_methods_own_baseline_mode_is_its_reference_not_one_of_its_curves():
    rows = [trial("sgs", b, 60 + b / 4, b / 2, budget_param="bins_test", mode="atfr") for b in (4, 8, 16)]
    rows += [trial("sgs", 16, 64.5, 20.0, budget_param="bins_test", mode="base")]  # plain backbone
    rows += [trial("dense", 1, 90.0, 40.0)]  # would make the claim fail if it were the reference
    row = verdicts(rows, "SGS-1").iloc[0]
    assert len(verdicts(rows, "SGS-1")) == 1  # the base mode is not judged as an SGS curve
    assert row["verdict"] == HOLDS and "mode=base" in row["why"] and "64.5%" in row["measured here"]


def test_clustering_against_all_frames_and_sampled_modes_with_training_memory():
    rows = [trial("temporal_clustering", g, 50 + g, g + 1.0, budget_param="g", mode="cluster") for g in (4, 8)]
    rows += [trial("temporal_clustering", 8, 60, 30.0, budget_param="g", mode="all_frames")]
    rows += [trial("temporal_clustering", g, 52 + g, float(g), budget_param="g", mode="sampled") for g in (4, 8)]
    pts = points(rows)
    label = {p["mode"]: lab for p, lab in zip(pts["params"], pts["label"])}
    memory = {(label["cluster"], 4): {"train_memory_mb": 100.0}, (label["cluster"], 8): {"train_memory_mb": 150.0},
              (label["all_frames"], 8): {"train_memory_mb": 120.0}}
    table = check_claims(pts, "top1", extras=memory)
    tc3 = table[table["id"] == "TC-3"].iloc[0]
    assert tc3["verdict"] == FAILS and "150 vs 120 MB" in tc3["measured here"]  # memory exceeds all frames at g=8
    tc2 = table[table["id"] == "TC-2"].iloc[0]
    assert tc2["verdict"] == FAILS and "mode=sampled" in tc2["measured here"]  # 54 < 56 at g=4
