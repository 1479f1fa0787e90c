"""VideoEpitoma's (seed 000) central claims, checked by ``skimbench report`` (``harness.report.claims``).

Reference (Table 1): the HeavyNet on all T candidate timesteps the LightNet sees, i.e. ``uniform``
with k = T; T is the method's ``candidates`` parameter when it has one, else the number of
timesteps its selector scored per video (from ``predictions.csv``'s usage).
"""

from harness.report.claims import (
    Claim,
    PaperCost,
    beats_at_matched_compute,
    point_or_run,
    reaches_reference,
    register_claim,
    register_paper_cost,
    selection_share_at_most,
    usage_median,
)

PAPER = "VideoEpitoma (000)"


def uniform_on_the_candidates(ctx, curve):
    first = curve.iloc[0]
    candidates = first["params"].get("candidates") or usage_median(ctx, first, "selector", "steps")
    if not candidates:
        return "the number of candidate timesteps is unknown (no `candidates` parameter, no selector usage)"
    return point_or_run(ctx, "uniform", f"the {int(candidates)} candidate timesteps", k=int(candidates))


register_claim(
    Claim(
        "VE-1",
        PAPER,
        "Table 1",
        "Selecting half of the timesteps keeps the HeavyNet's accuracy at about half the GFLOPs.",
        "Breakfast, I3D: 16 uniform timesteps 76.91% @ 207.7 GFLOPs vs VideoEpitoma 8 timesteps 78.11% @ 104.8",
        "videoepitoma",
        lambda c: reaches_reference(c, "videoepitoma", uniform_on_the_candidates),
    )
)
register_claim(
    Claim(
        "VE-2",
        PAPER,
        "Table 2 (appendix)",
        "The selector beats uniform and random timestep sampling for the same HeavyNet at every budget.",
        "Breakfast, I3D, 8 timesteps: selector 79.69% vs uniform 74.05%, random 69.22% (wins at all of 1–128)",
        "videoepitoma",
        lambda c: beats_at_matched_compute(c, "videoepitoma", ["uniform", "random"]),
    )
)
register_claim(
    Claim(
        "VE-3",
        PAPER,
        "Table 1",
        "The LightNet and gating cost is marginal next to the HeavyNet.",
        "LightNet + gating 0.94 of 104.8 GFLOPs (0.9%) with I3D; the classifier adds 0.13",
        "videoepitoma",
        lambda c: selection_share_at_most(c, "videoepitoma", 0.10),
    )
)
register_paper_cost(
    PaperCost(
        "videoepitoma",
        "1:18 to 1:220",
        "Table 1: LightNet + gating 0.94 GFLOPs over 16 timesteps vs HeavyNet per timestep "
        "(ShuffleNet3D 1.08 to I3D 13.0 GFLOPs)",
    )
)
