"""LiteEval's (seed 001) central claims, checked by ``skimbench report`` (``harness.report.claims``).

Reference (Table 1): UNIFORM, the fine CNN on 25 uniformly sampled frames of a video that LiteEval
reads at 1 fps (FCVID: 167 s on average, so 25 of ~167 frames = 15%). Here: ``uniform`` with
k = round(15% of the timesteps LiteEval's coarse RNN reads per video).
"""

from harness.report.claims import (
    Claim,
    PaperCost,
    cost_increases_with_budget,
    cost_varies_per_video,
    point_or_run,
    reaches_reference,
    register_claim,
    register_paper_cost,
    usage_median,
)

PAPER = "LiteEval (001)"
UNIFORM_SHARE = 25 / 167  # UNIFORM's 25 frames of FCVID's ~167 frames per video at 1 fps


def uniform_over_the_papers_share(ctx, curve):
    timesteps = usage_median(ctx, curve.iloc[0], "coarse_rnn")
    if not timesteps:
        return "the timesteps per video are unknown (no coarse_rnn usage in the predictions)"
    k = max(1, round(UNIFORM_SHARE * timesteps))
    return point_or_run(ctx, "uniform", f"{UNIFORM_SHARE:.0%} of {timesteps:g} timesteps", k=k)


register_claim(
    Claim(
        "LE-1",
        PAPER,
        "Table 1",
        "LiteEval matches or beats the UNIFORM baseline's accuracy with about half its GFLOPs.",
        "FCVID 80.0% mAP @ 94.3 vs UNIFORM 80.0% @ 195.5; ActivityNet 72.7% @ 95.1 vs 70.0% @ 195.5",
        "liteeval",
        lambda c: reaches_reference(c, "liteeval", uniform_over_the_papers_share),
    )
)
register_claim(
    Claim(
        "LE-2",
        PAPER,
        "Fig. 4, Tables 4–5",
        "The computation LiteEval spends varies from video to video.",
        "Kinetics 275.91 ± 144.10 GFLOPs (fine features 4.16 ± 2.20); Breakfast 497.80 ± 390.10",
        "liteeval",
        lambda c: cost_varies_per_video(c, "liteeval", 0.05),
    )
)
register_claim(
    Claim(
        "LE-3",
        PAPER,
        "Table 7",
        "The budget target γ trades compute for accuracy: a larger γ uses more GFLOPs.",
        "FCVID γ 0.01/0.03/0.05/0.10: 75.4/82.1/94.3/139.0 GFLOPs, 78.8/79.7/80.0/80.1% mAP",
        "liteeval",
        lambda c: cost_increases_with_budget(c, "liteeval"),
    )
)
register_paper_cost(
    PaperCost("liteeval", "1:98", "section 4.1: MobileNetV2 @112 0.08 vs ResNet-101 @224 7.82 GFLOPs per frame")
)
