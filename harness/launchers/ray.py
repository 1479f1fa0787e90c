"""The Ray launcher: the plan as calls to Ray workers, on this machine or a cluster (the default).

Ray Core, not Ray Tune: Tune runs a flat list of trials, while a plan is a graph (a trial may start
only when its stages are done) with its own priorities; Tune's resume is not used (a grid resumes
from MLflow, and stages from the store) and its retry is one loop here. The workers are long-lived
actors, one per slot (``harness.launchers.pool``: kept between launches on a running Ray, so a launch
does not import torch and MLflow again). The driver keeps at most one call per worker in flight and
gives a free worker the ready task (a stage whose stages are done, or a trial whose stages are done)
of the largest rank: the longest expected chain of work first, the costliest trials before the cheap
ones (``harness.plan``). So no worker waits on a file lock for a declared stage, the grid ends on
short trials, and every task records when it started, ended and waited (``harness.launchers.execute``).

A stage that fails is not retried: the trials that need it are recorded as failed with its traceback
(``record_blocked``), and the rest of the grid goes on. A trial is retried up to ``max_failures``
times; a timed-out one is not. The cluster is checked first for the GPUs and CPUs a trial asks for.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import ray
import ray._private.services as ray_services

from harness import tracking
from harness.launchers import LaunchContext, Launched, LaunchError, pool, record_blocked, stage_error
from harness.plan import Plan
from harness.trial import Trial


class RayLauncher:
    def __init__(self, spec: Any, address: str | None = None):
        self.spec = spec
        self.address = address
        self.workers: list[Any] = []
        self.key = self.launch_id = ""

    def start(self, context: LaunchContext) -> None:
        """Connect to Ray and take one worker per slot (``harness.launchers.pool``: kept from the last launch
        with the same code, else started now), each importing what a task imports (torch, the registries,
        MLflow) while the driver builds the plan: the workers' start-up overlaps the driver's."""
        paths = connect_ray(self.spec, self.address)
        slots, resources = self.slots()
        self.key = pool.pool_key(context, resources, paths)
        self.launch_id = ray.get_runtime_context().get_job_id()
        self.workers = pool.workers(slots, self.key, resources, context, self.launch_id)

    def slots(self) -> tuple[int, dict[str, float]]:
        """Worker slots and the resources of one, checked against the cluster (one line if they cannot fit)."""
        spec = self.spec
        cpus, gpus = float(spec.resources.get("cpus", 1)), float(spec.resources.get("gpus", 0))
        available = ray.cluster_resources()
        if gpus > 0 and available.get("GPU", 0) < gpus:
            raise LaunchError(
                f"the spec asks for {gpus:g} GPU per trial but the Ray cluster has "
                f"{available.get('GPU', 0):g} GPUs; set resources.gpus: 0 or connect to a cluster "
                "with GPUs (--address)"
            )
        if available.get("CPU", 0) < cpus:
            raise LaunchError(
                f"the spec asks for {cpus:g} CPUs per trial but the Ray cluster has {available.get('CPU', 0):g}"
            )
        slots = int(available.get("CPU", 0) // max(cpus, 1e-9))
        if gpus > 0:
            slots = min(slots, int(available.get("GPU", 0) // gpus))
        slots = max(1, min(slots, int(spec.ray.get("max_concurrent") or slots)))
        return slots, {"num_cpus": cpus, "num_gpus": gpus}

    def launch(self, plan: Plan, context: LaunchContext, progress: Any) -> Launched:
        launched = Launched()
        if not plan.trials:
            return launched
        if not self.workers:
            self.start(context)
        _, resources = self.slots()

        def replace() -> Any:  # a new worker for one that died
            self.workers.append(pool.new_worker(self.key, resources, context, self.launch_id))
            return self.workers[-1]

        try:
            Schedule(plan, context, progress, launched, self.workers, replace).run()
        finally:
            pool.release(self.workers, self.launch_id)
        for trial in plan.trials:  # cannot happen with a well-formed plan; never drop a trial silently
            if trial.hash not in launched.finished and trial.hash not in launched.failed:
                launched.failed[trial.hash] = f"{trial.name or trial.label} {trial.hash[:8]}: not run (stages not done)"
        # a worker that died on the last attempt left its run RUNNING
        tracking.abandon_running(context.uri, context.experiment_id, launched.failed, "WORKER_LOST")
        return launched


class Schedule:
    """The driver's loop: submit ready tasks into free slots, collect them as they end."""

    def __init__(
        self,
        plan: Plan,
        context: LaunchContext,
        progress: Any,
        launched: Launched,
        workers: list[Any],
        replace: Callable[[], Any],
    ):
        self.plan, self.context, self.progress, self.launched = plan, context, progress, launched
        self.free, self.replace = list(workers), replace  # idle workers; a new worker for one that died
        self.stages = plan.order()  # not yet submitted, in priority order
        self.done: set[str] = set()
        self.broken: dict[str, tuple[str, str]] = {}  # stage key -> (one line, traceback)
        self.waiting = [t for t in plan.trials]  # not yet submitted, in grid order
        self.ready_at: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.running: dict[Any, tuple[str, str, Any]] = {}  # object ref -> ("stage" or "trial", key or hash, worker)
        self.by_hash = {t.hash: t for t in plan.trials}

    def run(self) -> None:
        self.settle()
        while self.stages or self.waiting or self.running:
            self.fill()
            if not self.running:  # nothing can start: every remaining task needs a broken stage
                self.settle()
                if not self.running and not self.fill():
                    break
                continue
            finished, _ = ray.wait(list(self.running), num_returns=1, timeout=pool.TOUCH_S)
            for worker in [] if finished else self.free:  # idle while the grid waits on work elsewhere
                worker.touch.remote()
            for ref in finished:
                kind, ident, worker = self.running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died (a new one replaces it) or the call raised
                    outcome = {"died": exc}
                    if isinstance(exc, ray.exceptions.RayActorError):
                        worker = self.replace()
                self.free.append(worker)
                if kind == "stage":
                    self.stage_ended(ident, outcome)
                else:
                    self.trial_ended(ident, outcome)
            self.settle()

    def fill(self) -> bool:
        """Fill the free workers with the ready task of the largest rank (``harness.plan``: a stage's expected
        chain of work, a trial's expected cost); among equals, stages before trials, then plan and grid order."""
        submitted = False
        while self.free:
            ready = [self.plan.stages[k] for k in self.stages if self.plan.stages[k].after <= self.done]
            stage = min(ready, key=lambda s: s.priority, default=None)
            trial = max(
                (t for t in self.waiting if t.hash in self.ready_at),
                key=lambda t: self.plan.cost.get(t.hash, 0.0),
                default=None,
            )
            if stage is not None and (trial is None or stage.rank >= self.plan.cost.get(trial.hash, 0.0)):
                key = stage.key
                self.stages.remove(key)
                worker = self.free.pop(0)
                trial = self.plan.representative(key)
                ref = worker.stage.remote(trial.to_dict(), self.plan.stages[key].name, key, self.context)
                self.running[ref] = ("stage", key, worker)
                submitted = True
                continue
            if trial is None:
                break
            self.waiting.remove(trial)
            self.submit(trial)
            submitted = True
        return submitted

    def submit(self, trial: Trial) -> None:
        self.attempts[trial.hash] = self.attempts.get(trial.hash, 0) + 1
        if self.attempts[trial.hash] == 1:
            self.progress.started(trial.hash)
        else:
            self.progress.retrying(trial.hash)
        worker = self.free.pop(0)
        ref = worker.trial.remote(trial.to_dict(), self.context, self.ready_at[trial.hash])
        self.running[ref] = ("trial", trial.hash, worker)

    def settle(self) -> None:
        """Mark the trials whose stages are all done ready; record those that need a broken stage."""
        now = time.time()
        for stage_key in list(self.stages):  # a stage built on a broken one is broken too
            after = self.plan.stages[stage_key].after & self.broken.keys()
            if after:
                self.broken[stage_key] = self.broken[next(iter(after))]
                self.stages.remove(stage_key)
        for trial in list(self.waiting):
            needs = self.plan.needs.get(trial.hash, [])
            bad = next((k for k in needs if k in self.broken), None)
            if bad is not None:
                self.waiting.remove(trial)
                error = record_blocked(trial, self.context, *self.broken[bad])
                self.launched.failed[trial.hash] = error
                self.progress.failed(trial.hash, error)
            elif trial.hash not in self.ready_at and all(k in self.done for k in needs):
                self.ready_at[trial.hash] = now

    def stage_ended(self, key: str, outcome: dict) -> None:
        if "died" in outcome:
            outcome = {"error": stage_error(self.plan.stages[key].name, key, outcome["died"]), "details": ""}
        if outcome.get("error"):
            self.broken[key] = (outcome["error"], outcome["details"])
        else:
            self.done.add(key)

    def trial_ended(self, h: str, outcome: dict) -> None:
        trial = self.by_hash[h]
        if "died" in outcome:  # the worker died: its run is left RUNNING, closed as WORKER_LOST
            tracking.abandon_running(self.context.uri, self.context.experiment_id, [h], "WORKER_LOST")
            outcome = {"failed": f"{trial.name or trial.label} {h[:8]}: {_one_line(outcome['died'])}"}
        if "metrics" in outcome:
            self.launched.finished[h] = outcome["metrics"]
            self.progress.finished(h, outcome["metrics"])
        elif "failed" in outcome and self.attempts[h] <= int(trial.max_failures or 0):
            self.submit(trial)
        else:
            error = outcome.get("failed") or outcome.get("timeout", "failed")
            self.launched.failed[h] = error
            self.progress.failed(h, error)


def connect_ray(spec: Any, address: str | None) -> str:
    """Attach to the Ray given (``--address``, the spec's ``ray.address``, ``RAY_ADDRESS``), else to a
    Ray already running on this machine (``ray start --head``: no start-up cost per launch), else
    start a local one. Attached workers get this driver's ``PYTHONPATH`` (they run the same code),
    which is returned."""
    address = address or spec.ray.get("address") or os.environ.get("RAY_ADDRESS")
    paths = os.pathsep.join(p for p in [os.environ.get("PYTHONPATH", ""), os.getcwd()] if p)
    if ray.is_initialized():
        return paths
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR")
    attached = dict(runtime_env={"env_vars": {"PYTHONPATH": paths}}, **common)
    try:
        if address:
            ray.init(address=address, **attached)
            return paths
        running = started_head()
        if running:
            ray.init(address=running, **attached)
            return paths
        # a local instance listens on loopback only (safe by default; tests/test_reliability.py)
        with _node_ip_stays_loopback():
            ray.init(
                num_cpus=spec.ray.get("num_cpus"),
                num_gpus=spec.ray.get("num_gpus"),
                _node_ip_address="127.0.0.1",
                **common,
            )
    except Exception as exc:  # noqa: BLE001
        raise LaunchError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {exc}") from exc
    return paths


@contextmanager
def _node_ip_stays_loopback() -> Iterator[None]:
    """Keep ``_node_ip_address="127.0.0.1"`` as given while a local instance starts.

    Ray (2.60) passes the node address through ``services.resolve_ip_for_localhost``, which turns
    127.0.0.1 into the machine's external address; the GCS, the raylet, the workers and the driver
    then listen on every interface and the runtime-env agent on that address, unauthenticated.
    With the node address really 127.0.0.1 every one of them binds loopback. Neither ``ray.init``
    nor ``ray start`` has an option for this (``ray start --node-ip-address`` resolves it the same
    way), and the environment switch that avoids it (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) is
    read once at import for the whole process, so it would also mislabel a driver that attaches
    to a real cluster. Hence this patch of Ray's private function, for the duration of the start only.
    """
    resolve = ray_services.resolve_ip_for_localhost
    ray_services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        ray_services.resolve_ip_for_localhost = resolve


def started_head() -> str | None:
    """The address of the Ray that ``ray start --head`` started on this machine (Ray writes it to
    ``/tmp/ray/ray_current_cluster``; ``ray stop`` removes it), or None. Not ``address="auto"``, which
    also joins any Ray instance another program started here."""
    path = Path(os.environ.get("RAY_TMPDIR", "/tmp/ray")) / "ray_current_cluster"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    for line in reversed(text):  # Ray wraps the cause; its last line names the real error
        if "TrialFailed" in line or "Error" in line:
            return line.strip()[:300]
    return (text[-1] if text else repr(error))[:300]
