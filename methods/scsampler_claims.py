"""SCSampler's (seed 003) central claims, checked by ``skimbench report`` (``harness.report.claims``).

References (Tables 1–2): ``dense`` (every clip), and K ``uniform`` and K ``random`` clips at the same K.
"""

from harness.report.claims import (
    Claim,
    beats_at_equal_budget,
    cheaper_and_as_accurate,
    ordered,
    point_or_run,
    register_claim,
)

PAPER = "SCSampler (003)"


def dense(ctx):
    return point_or_run(ctx, "dense", "every clip")


register_claim(
    Claim(
        "SC-1",
        PAPER,
        "Tables 1–2",
        "The sampler's top-K clips beat K random or uniformly spaced clips.",
        "Sports1M MC3-18: 72.80% vs random 64.54 / uniform 64.76; Kinetics: 67.00 vs 63.08 / 62.31",
        "scsampler",
        lambda c: beats_at_equal_budget(c, "scsampler", "uniform") + beats_at_equal_budget(c, "scsampler", "random"),
    )
)
register_claim(
    Claim(
        "SC-2",
        PAPER,
        "Tables 1–2",
        "SCSampler on K clips is more accurate than dense evaluation of all clips, at a fraction of the cost.",
        "Sports1M MC3-18: 72.80% (0.8 days) vs dense 66.57% (12.9 days); Kinetics 67.00 vs 65.06%",
        "scsampler",
        lambda c: cheaper_and_as_accurate(c, "scsampler", dense, need_better=True),
    )
)
register_claim(
    Claim(
        "SC-3",
        PAPER,
        "Table 4",
        "For the visual sampler the AC objective works best, then SAL-RANK, then SAL-CL.",
        "miniSports, K=10: SAL-RANK 64.77%, SAL-CL 63.17%; AC stated best (its cell is lost in our copy)",
        "scsampler",
        lambda c: ordered(c, "scsampler", "objective", ["ac", "sal_rank", "sal_cl"]),
    )
)
register_claim(
    Claim(
        "SC-4",
        PAPER,
        "Table 1",
        "The oracle (top-K clips by the true class's score) is an upper bound well above the sampler.",
        "Sports1M MC3-18: oracle 85.10% vs SCSampler 72.80%",
        "scsampler",
        lambda c: beats_at_equal_budget(c, "oracle", "scsampler"),
    )
)
