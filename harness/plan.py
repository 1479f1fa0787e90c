"""The plan of a grid: the shared stages its trials declare, each once, and the trials each one unblocks.

Every trial needs its decoded frames (train and test) and the stages its method declares
(``Method.stages``, asked before ``fit`` on a context built as the trial would build it, without
decoding or training anything). A stage is identified by its store key, so trials that declare the
same stage share one node. Stages already in the store are left out (they are not scheduled again).

Expected costs (rough seconds; only their ratios matter): a trial's is its method's ``cost``; a
stage's is what earlier builds of a stage of the same name took in this store (``typical_seconds``:
the median of their recorded seconds), else the ``cost`` its ``StageRequest`` declares. A stage's
``rank`` is its cost plus the largest rank of what it unblocks (the stages built on it and the
trials that need it): the expected length of the longest chain of work that starts with it.

The launchers run a plan: ``harness.launchers.local`` in ``order()``; ``harness.launchers.ray``
as Ray tasks, a stage when the stages it builds on are done, a trial when all its stages are done;
a free worker takes the ready task of the largest rank (a trial's rank is its cost): the longest
chains first, then the costliest trials, so that the last minutes of a grid are short trials that
keep every worker busy (longest-processing-time-first list scheduling on a critical-path priority).
``run_stage`` computes one stage in any process, from one of the trials that declared it.
"""

from __future__ import annotations

import functools
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.stages import StageRequest, StageStore, typical_seconds
from harness.trial import Trial, build_context

FRAMES_SECONDS_PER_VIDEO = 0.03  # rough decoding seconds per video (StageRequest.cost of the frames stages)


@dataclass
class PlannedStage:
    name: str
    key: str
    after: set[str]  # keys of the planned stages it builds on (stages already in the store left out)
    trials: list[str] = field(default_factory=list)  # hashes of the trials that need it
    height: int = 1  # stages on the longest chain from this one down (itself included)
    cost: float = 0.0  # expected seconds to compute it
    rank: float = 0.0  # expected seconds of the longest chain of work from it: cost + the largest rank it unblocks

    @property
    def priority(self) -> tuple:
        """Sort key: the longest expected chain first, then the most trials unblocked, then the most stages
        below, then by name."""
        return (-self.rank, -len(self.trials), -self.height, self.name, self.key)


@dataclass
class Plan:
    trials: list[Trial]
    stages: dict[str, PlannedStage]  # key -> stage, in priority order
    needs: dict[str, list[str]]  # trial hash -> keys of the planned stages it needs
    in_store: dict[str, list[str]] = field(default_factory=dict)  # trial hash -> "name key" already computed
    undeclared: dict[str, str] = field(default_factory=dict)  # trial hash -> why its stages are unknown
    cost: dict[str, float] = field(default_factory=dict)  # trial hash -> expected seconds (its method's cost)

    def order(self) -> list[str]:
        """Stage keys in an order that respects ``after``, by priority among the ready ones."""
        done: set[str] = set()
        out: list[str] = []
        while len(out) < len(self.stages):
            ready = [s for s in self.stages.values() if s.key not in done and s.after <= done]
            if not ready:  # a cycle cannot come from content keys; keep going rather than hang
                ready = [s for s in self.stages.values() if s.key not in done]
            first = min(ready, key=lambda s: s.priority)
            done.add(first.key)
            out.append(first.key)
        return out

    def representative(self, key: str) -> Trial:
        """A trial that declared the stage: the one whose context builds it."""
        wanted = self.stages[key].trials[0]
        return next(t for t in self.trials if t.hash == wanted)


def declared(trial: Trial, store: StageStore, datasets: dict[str, Any] | None = None) -> list[StageRequest]:
    """The stages a trial needs, asked of its method on a context built as the trial builds it.
    ``datasets`` shares one dataset object (and its manifest hash) between the trials of a plan."""
    with tempfile.TemporaryDirectory(prefix="skimbench-plan-") as work:
        return _requests(trial, store, Path(work), datasets)[0]


def _requests(
    trial: Trial, store: StageStore, work: Path, datasets: dict[str, Any] | None = None
) -> tuple[list[StageRequest], float]:
    """The stages the trial's method declares (its decoded frames first) and its expected cost."""
    ctx, method = build_context(trial, store, work, log=lambda msg: None)
    if datasets is not None:  # the manifest hash reads every annotation file: once per dataset, not per trial
        shared = json.dumps(trial.dataset.to_dict(), sort_keys=True, default=str)
        if shared not in datasets:
            ctx.dataset.manifest_hash = functools.cache(ctx.dataset.manifest_hash)
            datasets[shared] = ctx.dataset
        ctx.dataset = datasets[shared]
    frames = [
        StageRequest(
            "frames",
            ctx.frames_deps(split),
            lambda split=split: ctx.frames(split),
            cost=FRAMES_SECONDS_PER_VIDEO * len(ctx.dataset.split(split)),
        )
        for split in ("train", "test")
    ]
    return frames + list(method.stages()), float(method.cost)


def build_plan(trials: Sequence[Trial], store_root: str | Path) -> Plan:
    store = StageStore(store_root)
    plan = Plan(list(trials), {}, {})
    stages: dict[str, PlannedStage] = {}
    datasets: dict[str, Any] = {}
    measured: dict[str, float | None] = {}  # stage name -> typical seconds of its earlier builds
    with tempfile.TemporaryDirectory(prefix="skimbench-plan-") as work:
        for trial in trials:
            try:
                requests, plan.cost[trial.hash] = _requests(trial, store, Path(work), datasets)
            except Exception as exc:  # noqa: BLE001 - the trial runs anyway and meets the same error itself
                plan.needs[trial.hash] = []
                plan.undeclared[trial.hash] = f"{type(exc).__name__}: {exc}"
                continue
            _add(plan, stages, trial, requests, store, measured)
    for stage in stages.values():
        stage.after &= stages.keys()
    for stage in stages.values():
        stage.height = _height(stage.key, stages, {})
    ranks: dict[str, float] = {}
    for stage in stages.values():
        stage.rank = _rank(stage.key, stages, plan.cost, ranks)
    plan.stages = {s.key: s for s in sorted(stages.values(), key=lambda s: s.priority)}
    return plan


def _add(
    plan: Plan,
    stages: dict[str, PlannedStage],
    trial: Trial,
    requests: list[StageRequest],
    store: StageStore,
    measured: dict[str, float | None],
) -> None:
    """Add a trial's declared stages to the graph (those not in the store yet) and its needs."""
    needs: list[str] = []
    plan.in_store[trial.hash] = []
    for request in requests:
        key = request.key
        if store.exists(request.name, request.deps):
            plan.in_store[trial.hash].append(f"{request.name} {key[:10]}")
            continue
        if key not in stages:
            if request.name not in measured:
                measured[request.name] = typical_seconds(store.root, request.name)
            cost = measured[request.name]
            stages[key] = PlannedStage(
                request.name, key, set(request.after), cost=request.cost if cost is None else cost
            )
        if trial.hash not in stages[key].trials:
            stages[key].trials.append(trial.hash)
        if key not in needs:
            needs.append(key)
    plan.needs[trial.hash] = needs


def _rank(key: str, stages: dict[str, PlannedStage], trial_cost: dict[str, float], memo: dict[str, float]) -> float:
    if key not in memo:
        memo[key] = 0.0  # guards against a cycle
        stage = stages[key]
        below = [_rank(s.key, stages, trial_cost, memo) for s in stages.values() if key in s.after]
        below += [trial_cost.get(h, 0.0) for h in stage.trials]
        memo[key] = stage.cost + max(below, default=0.0)
    return memo[key]


def _height(key: str, stages: dict[str, PlannedStage], memo: dict[str, int]) -> int:
    if key not in memo:
        memo[key] = 0  # guards against a cycle
        below = [s.key for s in stages.values() if key in s.after]
        memo[key] = 1 + max((_height(k, stages, memo) for k in below), default=0)
    return memo[key]


def run_stage(trial: Trial, key: str, store_root: str | Path) -> float:
    """Compute the stage ``key`` as ``trial`` declared it (read it when another process already has it);
    return the seconds it took. A stage built without ``StageStore.get_or_compute`` (a sharded
    extraction) gets its start and end events here, so the schedule shows every stage computed."""
    store = StageStore(store_root)
    with tempfile.TemporaryDirectory(prefix="skimbench-stage-") as work:
        request = next((r for r in _requests(trial, store, Path(work))[0] if r.key == key), None)
        if request is None:
            raise RuntimeError(f"trial {trial.name or trial.hash} does not declare stage {key}")
        missing, started = not store.exists(request.name, request.deps), time.time()
        request.build()
        if missing and key not in store.emitted:
            store.emit("start", request.name, key, at=started)
            store.emit("end", request.name, key)
    return store.waited_s


def format_plan(plan: Plan, names: dict[str, str]) -> str:
    """The stages to compute, in order, each with the trials it unblocks; then what is in the store."""
    lines = [f"{len(plan.stages)} stages to compute (each once), in order:"]
    for i, key in enumerate(plan.order(), 1):
        stage = plan.stages[key]
        after = ", ".join(plan.stages[k].name for k in sorted(stage.after)) or "-"
        unblocks = ", ".join(names.get(h, h[:8]) for h in stage.trials)
        lines.append(
            f"  {i:>2}. {stage.name} {key[:10]}  ~{stage.cost:.0f}s, chain ~{stage.rank:.0f}s  after: {after}  "
            f"unblocks {len(stage.trials)}: {unblocks}"
        )
    stored = sorted({s for items in plan.in_store.values() for s in items})
    lines.append(f"{len(stored)} stages already in the store" + (": " + ", ".join(stored) if stored else ""))
    for h, why in plan.undeclared.items():
        lines.append(f"  {names.get(h, h[:8])}: stages not declared ({why}); computed under the lock when reached")
    return "\n".join(lines)
