"""The claims check on hand-made result sets: per-video outcomes go through the real bootstrap
(``harness.report.evidence``), verdicts are three-valued and decided on intervals, references are
fixed the papers' way, and claims are declared beside their methods."""

import json

import numpy as np
import pandas as pd
import pytest

from harness.registry import RegistryError
from harness.report.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    Claim,
    check_claims,
    register_claim,
    registered_claims,
)
from harness.report.collect import label_series
from harness.report.evidence import Evidence
from harness.report.pareto import seed_summary

N = 400
EASY = np.random.default_rng(0).permutation(N) / N  # one difficulty per video, shared by all: correlated outcomes


def trial(
    method, budget, gflops, accuracy, seed=0, budget_param="k", difficulty=EASY, usage=None, per_video=None, **params
):
    """A finished trial whose videos with difficulty below ``accuracy`` are classified right.
    ``per_video``: its predictions' per-video ``gflops`` and ``gflops_selection`` columns."""
    hits = difficulty < accuracy
    table = pd.DataFrame(
        {
            "video_id": [f"v{i}" for i in range(len(hits))],
            "labels": [[0]] * len(hits),
            "scores": [[1.0, 0.0] if h else [0.0, 1.0] for h in hits],
            "usage": [usage or []] * len(hits),
            "extras": [{}] * len(hits),
            **(per_video or {}),
        }
    )
    row = {
        "experiment": "e",
        "run_id": f"{method}{budget}{seed}{json.dumps(params)}",
        "status": "FINISHED",
        "method": method,
        "dataset": "d",
        "backbone": "bb",
        "seed": seed,
        "budget_param": budget_param,
        "budget": budget,
        "deployable": method != "oracle",
        "dynamic": False,
        "params": dict(params, **({budget_param: budget} if budget is not None else {})),
        "top1_pct": 100 * hits.mean(),
        "gflops_per_video_mean": gflops,
        "gflops_per_video_std": 0.2 * gflops,
        "gflops_selection_mean": 0.01 * gflops,
    }
    return row, table


def check(made, claim_id):
    trials = label_series(pd.DataFrame([r for r, _ in made]))
    predictions = {r["run_id"]: t for r, t in made}
    points = seed_summary(trials)
    contexts = Evidence(points, trials, predictions, "top1_pct").context({}, {})
    table = check_claims(points, "top1_pct", contexts)
    return table[table["id"] == claim_id]


LITE_USAGE = [{"component": "coarse_rnn", "shape": {}, "count": 24}]  # 24 timesteps: UNIFORM's 15% is k=4
UNIFORM = [trial("uniform", k, 2.0 * k, a) for k, a in ((2, 0.5), (4, 0.6), (8, 0.7), (24, 0.8))]


def liteeval(*points, difficulty=EASY):
    return [
        trial("liteeval", g, c, a, budget_param="gamma", usage=LITE_USAGE, difficulty=difficulty) for g, c, a in points
    ]


def test_every_registered_claim_gets_a_row_and_missing_methods_are_not_comparable():
    table = check_claims(seed_summary(label_series(pd.DataFrame([r for r, _ in UNIFORM]))), "top1_pct")
    claims = registered_claims()
    assert set(table["id"]) == {c.id for c in claims}
    assert len({c.paper for c in claims}) == 5
    assert all(c.check.__module__.startswith("methods.") and c.check.__module__.endswith("_claims") for c in claims)
    assert (table["verdict"] == NOT_COMPARABLE).all()  # every claim needs a method besides uniform


def test_reaching_the_fixed_reference_at_half_compute_holds():
    row = check(UNIFORM + liteeval((0.05, 3.0, 0.62), (0.1, 4.0, 0.64)), "LE-1").iloc[0]
    assert row["verdict"] == HOLDS
    assert "reference uniform k=4: 60.0" in row["measured here"]  # the paper's share, not the costliest uniform


def test_reaching_the_reference_only_above_the_claimed_fraction_does_not_hold():
    row = check(UNIFORM + liteeval((0.05, 3.0, 0.40), (0.3, 7.5, 0.60)), "LE-1").iloc[0]  # 60% only at 94% of 8
    assert row["verdict"] == FAILS
    assert "interpolated at 4.8 GFLOPs" in row["measured here"]


def test_a_small_gap_on_noisy_outcomes_is_inconclusive_and_says_what_would_settle_it():
    noisy = np.random.default_rng(5).permutation(N) / N  # independent of the reference's: a wide paired interval
    row = check(UNIFORM + liteeval((0.1, 4.0, 0.585), difficulty=noisy), "LE-1").iloc[0]
    assert row["verdict"] == INCONCLUSIVE
    assert "would be settled at about" in row["why"] and "test videos instead of 400" in row["why"]
    assert "one seed: training variance is not measured" in row["why"]


def test_equal_budget_comparison_is_paired_per_k():
    made = UNIFORM + [trial("random", k, 2.0 * k, a - 0.05) for k, a in ((2, 0.5), (4, 0.6))]
    made += [trial("scsampler", k, 2.0 * k + 0.5, a + 0.05, objective="ac") for k, a in ((2, 0.5), (4, 0.6))]
    rows = check(made, "SC-1")
    assert list(rows["verdict"]) == [HOLDS, HOLDS]  # vs uniform, vs random: 5 pt on nested outcomes
    assert "2: 55.0 vs 50.0" in rows.iloc[0]["measured here"]


def test_a_methods_own_baseline_mode_is_its_reference_not_one_of_its_curves():
    made = [trial("sgs", b, b / 2, 0.6 + b / 100, budget_param="bins_test", mode="atfr") for b in (4, 8, 16)]
    made += [trial("dense", None, 40.0, 0.9)]  # would make the claim fail if it were the reference
    assert check(made, "SGS-1").iloc[0]["why"] == "run sgs with mode=base, init=scratch (the same backbone without SGS)"
    made += [trial("sgs", 16, 20.0, 0.65, budget_param="bins_test", mode="base", init="scratch")]
    rows = check(made, "SGS-1")
    assert len(rows) == 1 and rows.iloc[0]["verdict"] == HOLDS  # 0.68 at 4 GFLOPs vs 0.65 at 20
    assert "mode=base" in rows.iloc[0]["measured here"]


def test_videoepitoma_reference_is_uniform_on_its_candidate_timesteps():
    made = UNIFORM + [trial("videoepitoma", k, 2.0 * k + 0.2, 0.75, candidates=8) for k in (3, 4)]
    row = check(made, "VE-1").iloc[0]
    assert "reference uniform k=8: 70.0" in row["measured here"] and row["verdict"] == HOLDS
    made = UNIFORM + [trial("videoepitoma", k, 2.0 * k + 0.2, 0.75, candidates=12) for k in (3, 4)]
    assert check(made, "VE-1").iloc[0]["why"] == "run uniform with k=12 (the 12 candidate timesteps)"


def epitoma_with_selection(shares, total=1.0, spread=0.0):
    """VideoEpitoma at sparsity 1, one trial per seed: each video's selection is ``share`` of its
    ``total`` GFLOPs, plus a per-video spread (an adaptive policy's cost moves with the video)."""
    made = []
    for seed, share in enumerate(shares):
        noise = np.random.default_rng(seed).normal(0.0, spread, N)
        selection = np.clip(share * total + noise, 0.0, None)
        per_video = {"gflops": np.full(N, total), "gflops_selection": selection}
        made.append(trial("videoepitoma", 1, total, 0.7, seed=seed, per_video=per_video, candidates=8))
        made[-1][0]["gflops_selection_mean"] = float(selection.mean())
    return made


def test_a_selection_share_is_judged_on_its_interval_over_seeds_and_videos():
    # the point estimate is under 10% on every seed mix below; only the interval tells them apart
    assert check(epitoma_with_selection([0.05, 0.06, 0.07]), "VE-3").iloc[0]["verdict"] == HOLDS
    assert check(epitoma_with_selection([0.12, 0.13, 0.14]), "VE-3").iloc[0]["verdict"] == FAILS
    row = check(epitoma_with_selection([0.05, 0.09, 0.13]), "VE-3").iloc[0]  # mean 9%: seeds straddle 10%
    assert row["verdict"] == INCONCLUSIVE, row["measured here"]
    assert "would be settled at about" in row["why"]
    assert "9.0% [" in row["measured here"]


def test_a_cost_ratio_whose_interval_reaches_the_reference_is_not_cheaper():
    def clustered(costs):
        fixed = {"gflops": np.full(N, 10.0)}  # the reference: the same network on all frames, a fixed cost
        made = [trial("temporal_clustering", None, 10.0, 0.8, budget_param="g", per_video=fixed, mode="all_frames")]
        for seed, cost in enumerate(costs):
            per_video = {"gflops": np.random.default_rng(seed).normal(cost, 1.0, N)}
            made.append(trial("temporal_clustering", 8, cost, 0.7, seed=seed, budget_param="g", per_video=per_video))
        return made

    rows = check(clustered([5.0, 6.0, 7.0]), "TC-3")
    assert rows.iloc[0]["verdict"] == HOLDS, rows.iloc[0].to_dict()
    rows = check(clustered([7.0, 10.0, 13.0]), "TC-3")  # 100% on average: seeds on both sides
    assert rows.iloc[0]["verdict"] == INCONCLUSIVE, rows.iloc[0].to_dict()


def test_a_claim_id_registered_twice_from_two_places_is_an_error():
    claim = registered_claims()[0]
    with pytest.raises(RegistryError, match=f"duplicate claim id '{claim.id}'"):
        register_claim(Claim(claim.id, "p", "t", "s", "n", "m", lambda ctx: []), origin="elsewhere")


def test_third_party_claims_load_through_the_entry_point_group(tmp_path, monkeypatch):
    import harness.report.claims as claims

    (tmp_path / "thirdparty_claims.py").write_text(
        "from harness.report.claims import Claim, missing, register_claim\n"
        "register_claim(Claim('X-1', 'Third party', 'Table 9', 's', 'n', 'nothing', lambda c: missing('nothing')))\n"
    )
    dist = tmp_path / "thirdparty-0.1.dist-info"  # an installed distribution, as pip leaves it
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[skimbench.claims]\nthirdparty = thirdparty_claims\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(claims, "_loaded", False)
    monkeypatch.setattr(claims, "_CLAIMS", dict(claims._CLAIMS))
    monkeypatch.setattr(claims, "_ORIGINS", dict(claims._ORIGINS))
    assert "X-1" in {c.id for c in claims.registered_claims()}
