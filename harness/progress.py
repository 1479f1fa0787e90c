"""Live terminal view of a grid: counts, elapsed and estimated time, each finished trial's metrics.

On a terminal it is a ``rich`` live table; elsewhere (CI logs, pipes) one plain line per event,
so logs stay readable.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Sequence

from rich.console import Console
from rich.live import Live
from rich.table import Table

METRIC_KEYS = ("top1", "map", "gflops_per_video_mean")


def _label(cfg: dict) -> str:
    params = cfg["method"]["params"]
    shown = ",".join(f"{k}={v}" for k, v in params.items() if k in cfg.get("swept", ()))
    return f"{cfg.get('label') or cfg['method']['name']}[{shown}] s{cfg['seed']}" if shown else \
        f"{cfg.get('label') or cfg['method']['name']} s{cfg['seed']} {cfg['hash'][:6]}"


class GridProgress:
    def __init__(self, trials: Sequence[dict], skipped: int = 0, enabled: bool = True, console: Console | None = None):
        self.trials = {cfg["hash"]: cfg for cfg in trials}
        self.state = {h: "pending" for h in self.trials}
        self.metrics: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.skipped = skipped
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.live_mode = enabled and self.console.is_terminal
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
        return (f"{c['done']} done, {c['running']} running, {c['failed']} failed, {c['pending']} pending"
                + (f", {self.skipped} already finished (skipped)" if self.skipped else "")
                + f" | elapsed {elapsed:.0f}s, eta {eta}")

    def render(self) -> Table:
        table = Table(title=self.summary_line(), title_justify="left", expand=False)
        for col in ("trial", "state", "top1 %", "mAP %", "GFLOPs/video", "note"):
            table.add_column(col)
        for h, cfg in self.trials.items():
            m = self.metrics.get(h, {})
            fmt = lambda k, spec=".1f": format(m[k], spec) if k in m and m[k] == m[k] else ""  # noqa: E731
            table.add_row(_label(cfg), self.state[h], fmt("top1"), fmt("map"), fmt("gflops_per_video_mean", ".3g"),
                          self.errors.get(h, "")[:80])
        return table

    def _set(self, h: str, state: str) -> None:
        if h not in self.state:
            return
        with self._lock:
            if self.state[h] == state and state != "done":
                return
            self.state[h] = state
            if not self.enabled:
                return
            if self._live is not None:
                self._live.update(self.render())
            elif state in ("done", "failed", "retrying"):
                extra = self.errors.get(h, "") if state == "failed" else " ".join(
                    f"{k}={v:.4g}" for k, v in self.metrics.get(h, {}).items())
                print(f"[{state}] {_label(self.trials[h])} {extra} ({self.summary_line()})", file=sys.stderr, flush=True)

    def __enter__(self) -> "GridProgress":
        if self.enabled:
            if self.live_mode:
                self._live = Live(self.render(), console=self.console, refresh_per_second=2)
                self._live.__enter__()
            else:
                print(f"running {len(self.trials)} trials ({self.summary_line()})", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)
            self._live = None
