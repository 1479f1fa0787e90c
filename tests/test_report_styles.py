"""How figures read: a method keeps its colour whatever else a report holds, variants of a method
get their own markers, log axes are labelled with plain decades, points at or below chance level
are marked, and a missing interval reads 'n/a', not 'nan'."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from harness.registry import METHODS
from harness.report.claims import judge
from harness.report.collect import label_series
from harness.report.evidence import chance_level
from harness.report.html import tradeoff_figure
from harness.report.pareto import seed_summary
from harness.report.plots import log_x
from harness.report.styles import Styles, builtin_methods, method_colour


def summary(entries):
    """entries: (method, extra params, top1 by budget) -> seed summary of one seed per point."""
    rows = [
        {
            "experiment": "e",
            "run_id": f"{m}-{k}-{i}",
            "status": "FINISHED",
            "method": m,
            "dataset": "d",
            "backbone": "bb",
            "seed": 0,
            "budget_param": "k",
            "budget": k,
            "deployable": True,
            "dynamic": False,
            "params": dict(extra, k=k),
            "top1_pct": top1,
            "gflops_per_video_mean": k,
            "gflops_per_video_std": 0.0,
            "gflops_per_video_min": k,
            "gflops_per_video_max": k,
            "latency_ms_per_video": 2.0 * k,
        }
        for i, (m, extra, curve) in enumerate(entries)
        for k, top1 in curve.items()
    ]
    return seed_summary(label_series(pd.DataFrame(rows)))


def test_a_method_keeps_its_colour_in_every_report():
    names = builtin_methods()
    assert len(names) >= 3 and set(names) <= set(METHODS.names())
    few = Styles(summary([(names[-1], {}, {1: 50.0})]))
    many = Styles(summary([(n, {}, {1: 50.0}) for n in names]))
    assert few.colour[names[-1]] == many.colour[names[-1]]  # not its index among this report's methods
    assert len(set(many.colour.values())) == len(names)  # built-ins never share a colour
    assert method_colour("my_plugin") == method_colour("my_plugin")
    assert method_colour("my_plugin") not in many.colour.values()


def test_variants_of_a_method_share_its_colour_not_its_marker():
    name = builtin_methods()[0]
    points = summary([(name, {"objective": o}, {1: 50.0, 2: 55.0}) for o in ("ac", "sal_cl", "sal_rank")])
    styles = Styles(points)
    looks = [styles.kwargs(name, label) for label in sorted(points["label"].unique())]
    assert len({look["color"] for look in looks}) == 1
    assert len({look["marker"] for look in looks}) == 3
    assert len({styles.plotly(name, label)["marker"]["symbol"] for label in points["label"].unique()}) == 3


def test_log_axis_labels_plain_decades():
    fig, ax = plt.subplots()
    ax.plot([0.03, 400], [1, 2])
    log_x(ax)
    fig.canvas.draw()
    low, high = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
    plt.close(fig)
    assert labels == ["0.1", "1", "10", "100"]


def test_points_at_or_below_chance_are_marked():
    table = pd.DataFrame(
        {"video_id": ["a", "b", "c", "d"], "labels": [[0], [0], [1], [2]], "scores": [[0.1, 0.2, 0.7]] * 4}
    )
    trials = pd.DataFrame({"dataset": ["d"], "run_id": ["r"]})
    assert chance_level(trials, {"r": table}, "top1_pct") == {"d": 50.0}  # always answering class 0
    name = builtin_methods()[0]
    points = summary([(name, {}, {1: 40.0, 2: 50.0, 4: 60.0})])
    styles = Styles(points)
    marked = [
        t
        for t in tradeoff_figure(points, "top1_pct", "gflops_per_video_mean_mean", "t", styles, 50.0).data
        if t.name == "at or below chance"
    ]
    assert len(marked) == 1 and list(marked[0].y) == [40.0, 50.0]
    assert not [
        t
        for t in tradeoff_figure(points, "top1_pct", "gflops_per_video_mean_mean", "t", styles, 30.0).data
        if t.name == "at or below chance"
    ]


def test_a_missing_interval_reads_na():
    verdict, text, _ = judge(2.0, np.full(100, np.nan), 0.0)
    assert "nan" not in text and "n/a" in text and verdict == "inconclusive"


def test_an_estimate_on_the_threshold_up_to_float_noise_asks_for_no_absurd_amount_of_data():
    from harness.report.claims import Context
    from harness.report.stats import more_data_factor

    assert more_data_factor(1e-15, -20.0, 29.0, 0.0) == float("inf")  # +0.0 computed as a difference of floats
    ctx = Context(points=pd.DataFrame({"n_seeds": [2]}), metric="top1_pct", n_videos=12)
    assert "would be settled" not in ctx.settle(more_data_factor(1e-15, -20.0, 29.0, 0.0))
    assert "would be settled" not in ctx.settle(5e6)
    assert "would be settled at about 4.0x the data (~48 test videos" in ctx.settle(4.0)
