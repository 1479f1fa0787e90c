"""benchmarks/verdict_stability.py: how two runs' claims and trials are compared."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.claims import FAILS, HOLDS, INCONCLUSIVE

SPEC = importlib.util.spec_from_file_location(
    "verdict_stability", Path(__file__).resolve().parent.parent / "benchmarks" / "verdict_stability.py"
)
stability = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(stability)


def claims(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "backbone": "b", "id": i, "verdict": v} for i, v in rows])


def test_only_holds_against_does_not_hold_is_a_flip():
    # a claim with two curves (two rows of one id): matched row by row, not collapsed into one
    a = claims(("A", HOLDS), ("B", HOLDS), ("B", FAILS), ("C", INCONCLUSIVE))
    b = claims(("A", INCONCLUSIVE), ("B", HOLDS), ("B", HOLDS), ("C", INCONCLUSIVE))
    same, flips, total, differ = stability.compare_claims(a, b)
    assert (same, flips, total) == (2, 1, 4)
    assert sorted(differ.index.get_level_values("id")) == ["A", "B"]


def test_trials_matched_by_label_budget_and_seed_even_without_a_budget():
    # bug caught: matching on label and seed only pairs K=1 with K=2 of the same seed
    def trials(top1: list[float]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "label": ["dense", "uniform", "uniform"],
                "budget": [np.nan, 1.0, 2.0],
                "seed": [0, 0, 0],
                "run_id": ["r1", "r2", "r3"],
                "top1_pct": top1,
                "top1_pct_lo": [t - 2 for t in top1],
                "top1_pct_hi": [t + 2 for t in top1],
            }
        )

    both = stability.compare_trials(trials([80.0, 60.0, 70.0]), trials([84.0, 60.0, 69.0]))
    assert len(both) == 3  # dense (no budget) is compared too
    assert both["units"].max() == 2.0  # 4 points over a half-width of 2
