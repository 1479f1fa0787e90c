"""The interactive report page, ``report.html``: the whole of ``report.md`` (every section, table and
figure, in the same order), with the accuracy-against-compute figures as plotly charts (hover shows
each point's parameters, run ids and per-video GFLOPs spread) and every other figure embedded as a
PNG. plotly.js and the images are inlined, so the page opens from disk with no network.

The page is rendered from the Markdown the report writes (the subset ``build.py`` produces:
headings, paragraphs, pipe tables, images, bold, italics, code and links), so a section added to
report.md appears in report.html with no further code."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from harness.report.plots import GFLOPS_LABEL, LATENCY_LABEL, METRIC_LABELS, metric_error
from harness.report.stats import mean_ci
from harness.report.styles import Styles
from harness.report.tables import front_mask

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1250px; margin: auto; padding: 0 1em; color: #222; }
nav { background: #f6f6f6; padding: .4em 1em; border-radius: 4px; }
nav a { margin-right: 1.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
.table { overflow-x: auto; margin: .6em 0 1.2em; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; display: block; margin: .6em 0; }
code { background: #f3f3f3; padding: 0 3px; }
"""


def hover_text(row: pd.Series, metric: str, cost: str) -> str:
    params = json.dumps(row["params"], sort_keys=True) if isinstance(row["params"], dict) else str(row["params"])
    budget = "" if pd.isna(row["budget"]) else f"{row['budget_param']} = {row['budget']:g}<br>"
    std = "" if pd.isna(row[f"{metric}_std"]) else f", std over seeds {row[f'{metric}_std']:.2f}"
    ci = mean_ci(row[f"{metric}_mean"], row.get(f"{metric}_lo", np.nan), row.get(f"{metric}_hi", np.nan), 2)
    return (
        f"<b>{html.escape(row['label'])}</b><br>{budget}"
        f"{metric}: {ci} %{std}, {row['n_seeds']} seed(s) {row['seeds']}<br>"
        f"GFLOPs/video: {row['gflops_per_video_mean_mean']:.4g} "
        f"(per-video std {row['gflops_per_video_std_mean']:.3g}, "
        f"min {row['gflops_per_video_min_mean']:.4g}, max {row['gflops_per_video_max_mean']:.4g})<br>"
        f"latency: {row['latency_ms_per_video_mean']:.3g} ms/video<br>"
        f"params: {html.escape(params, quote=False)}<br>runs: {', '.join(row['run_ids'])}"
    )


def log_axis(values: pd.Series, title: str) -> dict:
    """A plotly log axis labelled with plain numbers at the decades (also at 2 and 5 when the data
    span less than two decades)."""
    positive = values[values > 0]
    span = np.log10(positive.max() / positive.min()) if len(positive) else 0
    return {
        "type": "log",
        "title": title,
        "exponentformat": "none",
        "dtick": 1 if span >= 2 else "D2",
        "showgrid": True,
        "minor": {"showgrid": True, "gridcolor": "#f3f3f3"},
    }


def tradeoff_figure(
    points: pd.DataFrame, metric: str, cost: str, title: str, styles: Styles, chance: float | None = None
) -> go.Figure:
    """Seed means with their 95% intervals along each curve, the deployable front, chance level and
    the points at or below it; ``cost`` is a seed-mean column (GFLOPs or latency)."""
    pts = points.dropna(subset=[f"{metric}_mean", cost])
    pts = pts[pts[cost] > 0]
    fig = go.Figure()
    for label, curve in pts.groupby("label", sort=True):
        curve = curve.sort_values(["budget", cost])
        bars = metric_error(curve, metric)  # the 95% interval where known
        fig.add_trace(
            go.Scatter(
                x=curve[cost],
                y=curve[f"{metric}_mean"],
                mode="lines+markers",
                name=styles.legend(label),
                error_y={"type": "data", "symmetric": False, "array": bars[1], "arrayminus": bars[0], "visible": True},
                hovertext=[hover_text(r, metric, cost) for _, r in curve.iterrows()],
                hoverinfo="text",
                **styles.plotly(curve["method"].iloc[0], label),
            )
        )
    front = pts[front_mask(pts, metric, cost).loc[pts.index]].sort_values(cost)
    if not front.empty:
        fig.add_trace(
            go.Scatter(
                x=front[cost],
                y=front[f"{metric}_mean"],
                mode="lines",
                name="Pareto front (deployable)",
                line={"color": "black", "dash": "dash", "shape": "hv", "width": 1},
                hoverinfo="skip",
            )
        )
    if chance is not None and not pd.isna(chance) and not pts.empty:
        fig.add_trace(
            go.Scatter(
                x=[pts[cost].min(), pts[cost].max()],
                y=[chance, chance],
                mode="lines",
                name=f"chance level ({chance:.1f}%)",
                hoverinfo="skip",
                line={"color": "grey", "dash": "dot", "width": 1},
            )
        )
        below = pts[pts[f"{metric}_mean"] <= chance]
        if not below.empty:
            fig.add_trace(
                go.Scatter(
                    x=below[cost],
                    y=below[f"{metric}_mean"],
                    mode="markers",
                    name="at or below chance",
                    hoverinfo="skip",
                    marker={"symbol": "x-thin-open", "size": 14, "color": "red", "line": {"width": 2, "color": "red"}},
                )
            )
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=560,
        hoverlabel={"align": "left"},
        xaxis=log_axis(pts[cost], GFLOPS_LABEL if cost.startswith("gflops") else LATENCY_LABEL),
        yaxis={"title": METRIC_LABELS.get(metric, metric)},
    )
    return fig


def inline(text: str) -> str:
    """Markdown inline markup -> HTML: escape, then code, bold, links, italics."""
    out = html.escape(text, quote=False).replace("\\|", "|")
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"<a href='\2'>\1</a>", out)
    return re.sub(r"(?<![\w])_(.+?)_(?![\w])", r"<i>\1</i>", out)


def table_html(lines: list[str]) -> str:
    def cells(line: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]

    header, body = cells(lines[0]), [cells(line) for line in lines[2:]]
    return (
        "<div class='table'><table><thead><tr>"
        + "".join(f"<th>{inline(c)}</th>" for c in header)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in body)
        + "</tbody></table></div>"
    )


def image_html(src: str, alt: str, base: Path) -> str:
    path = base / src
    if not path.is_file():
        return f"<p><i>figure {html.escape(src)} missing</i></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def markdown_to_html(markdown: str, base: Path, charts: Mapping[str, go.Figure]) -> str:
    """The body of the page: ``charts`` replaces the image of the same file name by its plotly
    chart; every other image is read from ``base`` and inlined."""
    blocks: list[str] = []
    paragraph: list[str] = []
    lines = markdown.splitlines()
    plotly_js = True  # plotly.js goes into the page once, with the first chart

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        image = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line.strip())
        heading = re.match(r"(#{1,4}) (.*)", line)
        if line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            blocks.append(table_html(rows))
            continue
        if heading:
            flush()
            level, text = len(heading.group(1)), heading.group(2)
            blocks.append(f"<h{level} id='{anchor(text)}'>{inline(text)}</h{level}>")
        elif image:
            flush()
            name = Path(image.group(2)).name
            if name in charts:
                blocks.append(
                    pio.to_html(
                        charts[name], include_plotlyjs=plotly_js, full_html=False, config={"displaylogo": False}
                    )
                )
                plotly_js = False
            else:
                blocks.append(image_html(image.group(2), image.group(1), base))
        elif not line.strip():
            flush()
        else:
            paragraph.append(line.strip())
        i += 1
    flush()
    return "\n".join(blocks)


def write_html(markdown: str, path: Path, title: str, charts: Mapping[str, go.Figure]) -> Path:
    """Write ``path``: the report's Markdown as one self-contained page, with a contents bar of its
    sections and ``charts`` (PNG file name -> plotly figure) in place of those images."""
    sections = [m.group(1) for m in re.finditer(r"^## (.*)$", markdown, flags=re.M)]
    nav = " ".join(f"<a href='#{anchor(s)}'>{html.escape(s)}</a>" for s in sections)
    body = markdown_to_html(markdown, path.parent, charts)
    page = (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
