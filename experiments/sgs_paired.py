"""Paired differences between rows of one experiment, with the report's bootstrap (``harness.report.evidence``).

``skimbench report`` judges SGS-1 against one fixed reference, the base network trained from scratch.
This prints, for pairs of labels of the same dataset, backbone and experiment, the difference of their
top-1 (same seeds, same test videos, the report's shared draws) with its 95% interval: e.g. ATFR started
from the base network against that base network trained on with the same recipe (docs/sgs.md)::

    python experiments/sgs_paired.py sgs-claims atfr-from-base:base-continued atfr-from-base-ft:base-continued-ft
"""

from __future__ import annotations

import argparse

from harness.report.collect import label_series, load_predictions, load_trials
from harness.report.evidence import GROUP, Evidence
from harness.report.pareto import finished, seed_summary
from harness.report.stats import interval


def point(reps: dict, label: str) -> tuple | None:
    """The key of ``label`` (``label@budget``: that budget; else its largest budget)."""
    name, _, budget = label.partition("@")
    keys = [k for k in reps if k[0] == name and (not budget or k[1] == float(budget))]
    return max(keys, key=lambda k: -1.0 if k[1] is None else k[1]) if keys else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("pairs", nargs="+", help="A:B, the difference A - B (label or label@budget)")
    parser.add_argument("--tracking-uri", default="sqlite:///results/sgs_claims/mlflow.db")
    parser.add_argument("--metric", default="top1_pct")
    args = parser.parse_args()
    trials = label_series(load_trials(args.tracking_uri, [args.experiment]))
    done = finished(trials)
    points = seed_summary(trials)
    predictions = {r: p for r in done["run_id"] if (p := load_predictions(args.tracking_uri, r)) is not None}
    evidence = Evidence(points, done, predictions, args.metric)
    for group, reps in evidence.replicates.items():
        est = evidence.estimates[group]
        print(" / ".join(str(g) for g in group))
        for pair in args.pairs:
            a, b = pair.split(":")
            ka, kb = point(reps, a), point(reps, b)
            if ka is None or kb is None:
                print(f"  {a} - {b}: not run")
                continue
            lo, hi = interval(reps[ka] - reps[kb])
            seeds = points[(points["label"] == ka[0]) & (points[GROUP[2]] == group[2])]["seeds"].iloc[0]
            print(
                f"  {a} {est[ka]:.1f} [{interval(reps[ka])[0]:.1f}, {interval(reps[ka])[1]:.1f}]"
                f" - {b} {est[kb]:.1f} [{interval(reps[kb])[0]:.1f}, {interval(reps[kb])[1]:.1f}]"
                f" = {est[ka] - est[kb]:+.1f} [{lo:+.1f}, {hi:+.1f}] pt (seeds {seeds})"
            )


if __name__ == "__main__":
    main()
