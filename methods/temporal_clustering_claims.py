"""No frame left behind's (seed 004) central claims, checked by ``skimbench report``
(``harness.report.claims``).

References (Tables 1–2): the same TSM on g sampled frames (``mode: sampled``) and on all frames
(``mode: all_frames``), both run by this plugin.
"""

from harness.report.claims import (
    Claim,
    beats_at_equal_budget,
    cheaper_than,
    increases_with_budget,
    ordered,
    point_or_run,
    register_claim,
)

PAPER = "Full-video clustering (004)"
METHOD = "temporal_clustering"


def all_frames(ctx):
    return point_or_run(ctx, METHOD, "TSM on every frame", mode="all_frames")


register_claim(
    Claim(
        "TC-1",
        PAPER,
        "Tables 1–2",
        "Cumulative clustering beats slope clustering, which beats uniform grouping, at equal g.",
        "Breakfast g=8: 62.0 / 60.7 / 58.3%; g=16: 64.4 / 63.7 / 60.2%",
        METHOD,
        lambda c: ordered(c, METHOD, "rule", ["cumulative", "slope", "uniform"]),
    )
)
register_claim(
    Claim(
        "TC-2",
        PAPER,
        "Table 2",
        "g clusters over all frames beat the same network on g uniformly sampled frames.",
        "Breakfast: cumulative g=8 62.0% vs TSM 8 frames 59.1%; g=16 64.4% vs 61.4%",
        METHOD,
        lambda c: beats_at_equal_budget(
            c, METHOD, METHOD, mode="sampled", keep=lambda label: "rule=uniform" not in label
        ),
    )
)
register_claim(
    Claim(
        "TC-3",
        PAPER,
        "Table 1",
        "Clustering costs far fewer GFLOPs and less training memory per video than the network on all frames.",
        "Move4MNIST: 28.61 GFLOPs and 1.56 GB (g=8) vs 58.24 GFLOPs and 3.15 GB on all 32 frames",
        METHOD,
        lambda c: cheaper_than(c, METHOD, all_frames, memory_key="train_memory_mb"),
    )
)
register_claim(
    Claim(
        "TC-4",
        PAPER,
        "Table 2",
        "More clusters give higher accuracy.",
        "Breakfast g=8 → 16: cumulative 62.0 → 64.4%, slope 60.7 → 63.7%, uniform 58.3 → 60.2%",
        METHOD,
        lambda c: increases_with_budget(c, METHOD),
    )
)
