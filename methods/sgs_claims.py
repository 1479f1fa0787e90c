"""SGS / ATFR's (seed 002) central claims, checked by ``skimbench report`` (``harness.report.claims``).

Reference (Table 7): the same 3D CNN without SGS, run by this plugin with ``mode: base`` and trained from
scratch (``init: scratch``; a ``mode: base`` row with ``init: base`` is a control trained on from it, never the
reference).
"""

from harness.report.claims import (
    Claim,
    cheaper_and_as_accurate,
    cost_increases_with_budget,
    fact_varies,
    point_or_run,
    register_claim,
)
from harness.report.tables import COST

PAPER = "SGS / ATFR (002)"


def base_network(ctx):
    scratch = ctx.method_points("sgs", "base")
    scratch = scratch[scratch["params"].map(lambda p: isinstance(p, dict) and p.get("init", "scratch") == "scratch")]
    if scratch.empty:
        return point_or_run(ctx, "sgs", "the same backbone without SGS", mode="base", init="scratch")
    return scratch.sort_values(COST).iloc[-1]


register_claim(
    Claim(
        "SGS-1",
        PAPER,
        "Table 7",
        "Adding SGS to a 3D CNN cuts its GFLOPs substantially while accuracy stays about the same.",
        "Mini-Kinetics 3DResNet-50: 40.8 → 23.4 GFLOPs, 79.2 → 79.3% top-1; X3D-S 1.9 → 1.1, 77.9 → 78.0%",
        "sgs",
        lambda c: cheaper_and_as_accurate(c, "sgs", base_network, need_better=False),
    )
)
register_claim(
    Claim(
        "SGS-2",
        PAPER,
        "Fig. 3",
        "The temporal resolution after SGS (active bins B') differs from video to video.",
        "histogram of B' over Mini-Kinetics validation clips, spread over roughly 5–32 bins",
        "sgs",
        lambda c: fact_varies(c, "sgs", "bins", "B'"),
    )
)
register_claim(
    Claim(
        "SGS-3",
        PAPER,
        "Table A.4",
        "Fewer bins B at inference (same trained model) lower the GFLOPs (and the accuracy).",
        "3DResNet-18 trained with B=32, tested with B 4/8/16/32: 3.5/5.0/8.0/14.0 GFLOPs, 51.1/61.4/64.4/69.6% top-1",
        "sgs",
        lambda c: cost_increases_with_budget(c, "sgs"),
    )
)
