"""How a curve looks, the same in every figure, report and comparison.

A method's colour comes from a fixed palette: registered built-in methods take its first entries
in registry (sorted name) order, any other method (a plugin) one of the remaining entries chosen by
a hash of its name, so it never depends on which other methods a report holds. Each variant of a
method (a curve of its own: objective, mode, placement...) gets its own marker and line style.
Non-deployable curves (upper bounds) are drawn hollow and dotted."""

from __future__ import annotations

import hashlib

import pandas as pd

from harness.registry import METHODS

# tab10, then the light halves of tab20: distinct on white, hex so matplotlib and plotly share them
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
]
# matplotlib marker -> the same shape in plotly
MARKERS = [
    ("o", "circle"),
    ("s", "square"),
    ("^", "triangle-up"),
    ("D", "diamond"),
    ("v", "triangle-down"),
    ("P", "cross"),
    ("X", "x"),
    ("<", "triangle-left"),
    (">", "triangle-right"),
    ("h", "hexagon"),
    ("*", "star"),
    ("p", "pentagon"),
]
LINESTYLES = [("-", "solid"), ("--", "dash"), ("-.", "dashdot"), (":", "dot")]


def builtin_methods() -> list[str]:
    prefixes = tuple(module + "." for module in METHODS.builtin_modules)
    return [name for name in METHODS.names() if METHODS.origin(name).startswith(prefixes)]


def method_colour(method: str, builtins: list[str] | None = None) -> str:
    builtins = builtin_methods() if builtins is None else builtins
    if method in builtins:
        return PALETTE[builtins.index(method) % len(PALETTE)]
    rest = PALETTE[len(builtins) :] or PALETTE
    return rest[int(hashlib.sha1(method.encode()).hexdigest(), 16) % len(rest)]


class Styles:
    """Colour per method, marker and line style per curve (label) within its method."""

    def __init__(self, points: pd.DataFrame):
        builtins = builtin_methods()
        self.colour = {m: method_colour(m, builtins) for m in points["method"].unique()}
        self.variant: dict[str, int] = {}
        for _, group in points.groupby("method"):
            for i, label in enumerate(sorted(group["label"].unique())):
                self.variant[label] = i
        self.deployable = dict(zip(points["label"], points["deployable"].astype(bool)))

    def legend(self, label: str) -> str:
        return label if self.deployable.get(label, True) else f"{label} (non-deployable upper bound)"

    def kwargs(self, method: str, label: str) -> dict:
        """matplotlib keyword arguments for ``plot``/``errorbar``."""
        deployable = self.deployable.get(label, True)
        variant = self.variant.get(label, 0)
        colour = self.colour.get(method) or method_colour(method)
        return {
            "color": colour,
            "marker": MARKERS[variant % len(MARKERS)][0],
            "linestyle": LINESTYLES[variant % len(LINESTYLES)][0] if deployable else ":",
            "markerfacecolor": colour if deployable else "none",
            "label": self.legend(label),
        }

    def plotly(self, method: str, label: str) -> dict:
        """plotly ``line`` and ``marker`` dicts for a scatter trace."""
        deployable = self.deployable.get(label, True)
        variant = self.variant.get(label, 0)
        colour = self.colour.get(method) or method_colour(method)
        return {
            "line": {"color": colour, "dash": LINESTYLES[variant % len(LINESTYLES)][1] if deployable else "dot"},
            "marker": {
                "color": colour,
                "size": 9,
                "symbol": MARKERS[variant % len(MARKERS)][1] + ("" if deployable else "-open"),
            },
        }
