"""Live terminal view of a grid: counts, elapsed and estimated time, the shared stages being
computed, the running trials and the last ones finished, each under its trial name.

On a terminal it is a ``rich`` live view, re-rendered twice a second (not only on trial events), and
sized to the terminal: on 80x24 it shows the counts, the stages, the running trials and the last few
finished, never a table cut off with "...". Elsewhere (CI logs, pipes) one plain line per event.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from harness.stages import StageWatcher

METRIC_KEYS = ("top1_pct", "map_pct", "gflops_per_video_mean")
RECENT = 5  # finished trials kept on screen


class GridProgress:
    def __init__(
        self,
        trials: Sequence[Any],
        skipped: int = 0,
        enabled: bool = True,
        console: Console | None = None,
        store_root: str | Path | None = None,
    ):
        self.trials = {trial.hash: trial for trial in trials}
        self.state = {h: "pending" for h in self.trials}
        self.metrics: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.since: dict[str, float] = {}
        self.ended: list[str] = []  # finished or failed, oldest first
        self.skipped = skipped
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.live_mode = enabled and self.console.is_terminal
        self.stages = StageWatcher(store_root) if store_root is not None else None
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._start = time.time()

    # -- events ---------------------------------------------------------------------------------
    def started(self, h: str) -> None:
        self._set(h, "running")

    def retrying(self, h: str) -> None:
        self._set(h, "retrying")

    def finished(self, h: str, metrics: dict[str, Any]) -> None:
        self.metrics[h] = {k: metrics[k] for k in METRIC_KEYS if k in metrics}
        self._set(h, "done")

    def failed(self, h: str, error: str) -> None:
        self.errors[h] = error
        self._set(h, "failed")

    # -- rendering ------------------------------------------------------------------------------
    def name(self, h: str) -> str:
        trial = self.trials[h]
        return trial.name or f"{trial.label} {h[:6]}"

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("done", "running", "failed", "pending")}
        for s in self.state.values():
            out["running" if s == "retrying" else s] += 1
        return out

    def summary_line(self) -> str:
        c = self.counts()
        elapsed = time.time() - self._start
        finished = c["done"] + c["failed"]
        remaining = c["pending"] + c["running"]
        eta = f"{elapsed / finished * remaining:.0f}s" if finished and remaining else ("0s" if not remaining else "?")
        return (
            f"{c['done']} done, {c['running']} running, {c['failed']} failed, {c['pending']} pending"
            + (f", {self.skipped} already finished (skipped)" if self.skipped else "")
            + f" | elapsed {elapsed:.0f}s, eta {eta}"
        )

    def lines(self, height: int) -> list[str]:
        """The view as rich-markup lines, at most ``height`` of them: the counts, the stages being
        computed, the running trials, the last finished ones; names escaped (``[k=1]`` is not markup)."""
        now = time.time()
        head = [f"[bold]{escape(self.summary_line())}[/bold]"]
        for stage in self.stages.active() if self.stages is not None else []:
            typical = f" of ~{stage['typical']:.0f}s" if stage["typical"] else ""
            head.append(
                f"[cyan]stage[/cyan] {escape(stage['stage'])} {stage['key'][:8]}: computing "
                f"{stage['elapsed']:.0f}s{typical}"
            )
        running = [h for h, s in self.state.items() if s in ("running", "retrying")]
        recent = self.ended[-RECENT:][::-1]
        room = max(0, height - len(head) - bool(running) - bool(recent))  # less the section headers
        show_recent = min(len(recent), max(room // 3, room - len(running)))
        show_running = min(len(running), room - show_recent)
        body = []
        if running:
            body.append(f"[bold]running[/bold] ({len(running)})")
            overflow = len(running) > show_running > 0
            listed = running[: show_running - 1] if overflow else running[:show_running]
            for h in listed:
                retry = " (retry)" if self.state[h] == "retrying" else ""
                body.append(f"  {escape(self.name(h))}{retry}  {now - self.since.get(h, now):.0f}s")
            if overflow:
                body.append(f"  ... and {len(running) - len(listed)} more running")
        if recent and show_recent:
            body.append("[bold]last finished[/bold]")
            for h in recent[:show_recent]:
                body.append("  " + self._ended_line(h))
        return (head + body)[: max(1, height)]

    def _ended_line(self, h: str) -> str:
        if self.state[h] == "failed":
            return f"[red]failed[/red] {escape(self.name(h))}: {escape(self.errors.get(h, '')[:60])}"
        m = self.metrics.get(h, {})
        shown = " ".join(f"{key}={m[key]:.3g}" for key in METRIC_KEYS if key in m and m[key] == m[key])
        return f"[green]done[/green] {escape(self.name(h))}  {escape(shown)}"

    def render(self) -> Group:
        height = self.console.size.height - 1  # rich keeps the cursor line below the view
        texts = [Text.from_markup(line, overflow="ellipsis") for line in self.lines(height)]
        for text in texts:
            text.no_wrap = True  # one line per row, cut with an ellipsis: the view keeps its height
        return Group(*texts)

    def _set(self, h: str, state: str) -> None:
        if h not in self.state:
            return
        with self._lock:
            if self.state[h] == state and state != "done":
                return
            self.state[h] = state
            if state == "running":
                self.since[h] = time.time()
            if state in ("done", "failed"):
                self.ended = [e for e in self.ended if e != h] + [h]
            if not self.enabled or self._live is not None:  # the live view re-renders on its timer
                return
            if state in ("done", "failed", "retrying"):
                extra = (
                    self.errors.get(h, "")
                    if state == "failed"
                    else " ".join(f"{k}={v:.4g}" for k, v in self.metrics.get(h, {}).items())
                )
                print(f"[{state}] {self.name(h)} {extra} ({self.summary_line()})", file=sys.stderr, flush=True)

    def __enter__(self) -> "GridProgress":
        if self.enabled:
            if self.live_mode:
                self._live = Live(
                    console=self.console,
                    get_renderable=self.render,
                    refresh_per_second=2,
                    transient=False,
                    redirect_stderr=False,
                    redirect_stdout=False,
                )
                self._live.__enter__()
            else:
                print(f"running {len(self.trials)} trials ({self.summary_line()})", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(*exc)
            self._live = None
