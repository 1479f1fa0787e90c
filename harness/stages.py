"""Content-addressed store for shared stage outputs (trained heavy classifiers, cached features...).

A stage's key is a hash of its name and of everything it depends on, so a stage runs once per grid
and once across re-runs. Concurrent trials (Ray workers, or processes on several nodes sharing the
folder) take a file lock on the key: the first computes into a private temporary folder that is
renamed into place when complete, the others wait and then read it. A reader can never see a
half-written output, and a crash mid-compute leaves only a temporary folder that is ignored.

Every computation appends a ``start`` and an ``end`` line to ``<root>/events.jsonl``, so the live
view (in the driver, possibly on another machine sharing the folder) shows which stage is being
computed and for how long.

A method declares the stages it needs before ``fit`` (``Method.stages`` returns ``StageRequest``s:
name, key inputs, the stages it builds on, and a call that builds it), so that the plan
(``harness.plan``) computes each one once, before the trials that need it start. A stage that is not
declared is still computed once, under the file lock, by the first trial that reaches it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from filelock import FileLock

from harness.hashing import content_hash

EVENTS = "events.jsonl"


def stage_key(name: str, deps: Mapping[str, Any]) -> str:
    """The store key of a stage: a hash of its name and key inputs (its folder name)."""
    return content_hash({"stage": name, "deps": deps})


@dataclass(frozen=True)
class StageRequest:
    """A shared stage a trial needs: ``name`` and key inputs ``deps`` (its key, as the store computes
    it), the keys of the stages it builds on (``after``), and ``build()``, which makes it exist in the
    trial's store (through ``ctx.stage``: computed under the lock, or read when already there).
    ``cost``: rough seconds to compute it (as ``Method.cost``); an earlier build of a stage of the same
    name in the store replaces it with what that build took (``typical_seconds``)."""

    name: str
    deps: Mapping[str, Any] = field(compare=False)
    build: Callable[[], Any] = field(compare=False, repr=False)
    after: tuple[str, ...] = ()
    cost: float = field(default=5.0, compare=False)

    @property
    def key(self) -> str:
        return stage_key(self.name, self.deps)


class StageStore:
    """``results/stages/<name>/<key>/`` holds one computed stage; ``meta.json`` records its deps."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.waited_s = 0.0  # seconds spent computing or waiting for stages that were not there yet
        self.emitted: set[str] = set()  # keys whose computation this store object recorded

    def key(self, name: str, deps: Mapping[str, Any]) -> str:
        return stage_key(name, deps)

    def path(self, name: str, deps: Mapping[str, Any]) -> Path:
        return self.root / name / self.key(name, deps)

    def exists(self, name: str, deps: Mapping[str, Any]) -> bool:
        return (self.path(name, deps) / "meta.json").exists()

    def get_or_compute(self, name: str, deps: Mapping[str, Any], compute: Callable[[Path], None]) -> Path:
        """Return the stage folder, running ``compute(tmpdir)`` first if no complete output exists."""
        final = self.path(name, deps)

        def build(tmp: Path) -> None:
            started = time.time()
            self.emit("start", name, final.name)
            try:
                compute(tmp)
            finally:
                self.emit("end", name, final.name)
            meta = {
                "stage": name,
                "key": final.name,
                "deps": deps,
                "seconds": round(time.time() - started, 3),
                "pid": os.getpid(),
                "host": os.uname().nodename,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))

        if (final / "meta.json").exists():
            return final
        started = time.perf_counter()
        try:
            return build_once(final, "meta.json", build)
        finally:
            self.waited_s += time.perf_counter() - started

    def emit(self, event: str, name: str, key: str, at: float | None = None) -> None:
        """Append one event line (a single small ``O_APPEND`` write: lines from processes never mix),
        dated now or ``at``."""
        self.emitted.add(key)
        line = (
            json.dumps(
                {
                    "event": event,
                    "stage": name,
                    "key": key,
                    "time": time.time() if at is None else at,
                    "host": os.uname().nodename,
                    "pid": os.getpid(),
                }
            )
            + "\n"
        )
        fd = os.open(self.root / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


class StageWatcher:
    """Which stages are being computed now, from the events the store appends (read incrementally:
    only the lines added since the watcher was made, or since its last call)."""

    def __init__(self, root: str | Path):
        self.path = Path(root) / EVENTS
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.running: dict[tuple, dict[str, Any]] = {}
        self.typical: dict[str, float | None] = {}

    def active(self) -> list[dict[str, Any]]:
        """Started, not ended, by a process still alive (when on this host); each event dict gains
        ``elapsed`` seconds and ``typical`` (seconds an earlier build of the same stage took, or None)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
        self.offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ident = (event["stage"], event["key"], event["host"], event["pid"])
            if event["event"] == "start":
                self.running[ident] = event
            else:
                self.running.pop(ident, None)
        now, here = time.time(), os.uname().nodename
        out = []
        for ident, event in list(self.running.items()):
            if event["host"] == here and not _alive(event["pid"]):
                del self.running[ident]
                continue
            if event["stage"] not in self.typical:
                self.typical[event["stage"]] = typical_seconds(self.path.parent, event["stage"])
            out.append({**event, "elapsed": now - event["time"], "typical": self.typical[event["stage"]]})
        return out


def stage_spans(root: str | Path, since: float = 0.0) -> list[dict[str, Any]]:
    """The stage computations that started at or after ``since``, from the events: one dict each
    (stage, key, host, pid, start, end; end None when it never ended)."""
    path = Path(root) / EVENTS
    if not path.exists():
        return []
    spans: dict[tuple, dict[str, Any]] = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        ident = (event["stage"], event["key"], event["host"], event["pid"])
        if event["event"] == "start" and event["time"] >= since:
            spans[ident + (event["time"],)] = {
                "stage": event["stage"],
                "key": event["key"],
                "host": event["host"],
                "pid": event["pid"],
                "start": event["time"],
                "end": None,
            }
        elif event["event"] == "end":
            open_ = [k for k in spans if k[:4] == ident and spans[k]["end"] is None]
            if open_:
                spans[open_[-1]]["end"] = event["time"]
    return sorted(spans.values(), key=lambda span: span["start"])


def typical_seconds(root: str | Path, name: str, most: int = 20) -> float | None:
    """The median seconds of up to ``most`` earlier builds of stage ``name`` in the store (any key), or None."""
    seconds = []
    for meta in sorted((Path(root) / name).glob("*/meta.json"))[:most]:
        try:
            seconds.append(float(json.loads(meta.read_text())["seconds"]))
        except (ValueError, KeyError, OSError):
            continue
    return sorted(seconds)[len(seconds) // 2] if seconds else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_once(final: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Build folder ``final`` exactly once across processes; ``final/marker`` says it is complete.

    Under a file lock, ``build(tmpdir)`` writes into a private temporary folder (it must create
    ``marker`` last), which is renamed into place: readers never see a half-built folder, and a
    crash leaves only a temporary folder behind.
    """
    final = Path(final)
    if (final / marker).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if (final / marker).exists():  # another process finished it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            build(tmp)
            if final.exists():  # leftover without its marker: an interrupted earlier attempt
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
