"""Long-lived Ray workers: one actor per worker slot, kept from one launch to the next.

A Ray task runs in a worker process of its job, and every launch is a new job: on a running Ray
(``ray start --head``, then ``skimbench run`` attaches) each launch would start new processes that
import torch, MLflow, the registries and the plugins again (seconds per launch). The workers are
instead detached actors in the namespace ``skimbench``, named by ``pool_key``: a hash of every source
file the registries list (``registry.sources_fingerprint``), the ``--plugin`` files' contents, the
workers' Python path, the resources of one worker, and the git commit and package versions that a
worker records with each trial (cached per process). The next launch with the same key takes the
same warm processes; a launch with another key (edited code, other resources) retires the actors it
does not use: each exits once the launches using it (its leases) have ended, so neither a trial nor a
concurrent grid of other code is cut short.

An actor holds its CPUs and GPUs while it lives: it exits by itself after ``IDLE_EXIT_S`` without a
call (a launch touches the workers it waits with every ``TOUCH_S``; a driver that died does not),
returning them to the cluster. On a Ray that the launch started itself, the actors end with it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import ray

from harness import tracking
from harness.launchers import LaunchContext, TrialFailed, TrialTimeout, execute, stage_error
from harness.plan import run_stage
from harness.registry import sources_fingerprint
from harness.repro import git_commit, package_versions
from harness.trial import Trial

NAMESPACE = "skimbench"
PREFIX = "worker-"
IDLE_EXIT_S = 300.0  # an idle worker gives its CPUs and GPUs back to the cluster after this long
ANSWER_S = 5.0  # a kept worker that does not answer within this long is busy (a concurrent launch's call)
TOUCH_S = 60.0  # a launch tells its idle workers that it still runs this often


def pool_key(context: LaunchContext, resources: dict[str, float], paths: str) -> str:
    """What a worker's processes depend on: the code it imported and the resources it holds."""
    facts = [sources_fingerprint(), paths, sys.executable, repr(sorted(resources.items()))]
    facts += [git_commit(), repr(sorted(package_versions().items()))]  # what a worker tags its trials with
    facts += [f"{p} {hashlib.sha256(Path(p).read_bytes()).hexdigest()}" for p in context.plugins]
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


@ray.remote(max_restarts=0, max_task_retries=0)
class Worker:
    """One worker slot: runs a launch's stages and trials, one call at a time, in one process."""

    def __init__(self, idle_exit_s: float):
        self.idle_exit_s, self.last, self.busy = idle_exit_s, time.monotonic(), False
        self.leases: set[str] = set()  # the launches using this worker (their Ray job ids)
        self.retiring = False
        threading.Thread(target=self._exit_when_idle, daemon=True).start()

    def warm(self, context: LaunchContext, launch: str) -> int:
        """Take a lease for the launch and import what its calls will import (a no-op in a worker kept
        from an earlier launch)."""
        self.leases.add(launch)
        with self._call():
            import harness.compute  # noqa: F401, PLC0415 - warming the worker is the point
            import harness.runtime  # noqa: F401, PLC0415
            from harness.registry import BACKBONES, DATASETS, METHODS  # noqa: PLC0415

            context.load_plugins()
            for registry in (METHODS, DATASETS, BACKBONES):
                registry.load()
            tracking.client(context.uri).get_experiment(context.experiment_id)  # the store's engine, once
            return os.getpid()

    def stage(self, trial: dict, name: str, key: str, context: LaunchContext) -> dict:
        with self._call():
            context.load_plugins()
            try:
                run_stage(Trial.from_dict(trial), key, context.store_root)
            except Exception as exc:  # noqa: BLE001 - returned: the driver fails the stage's dependents with it
                return {"error": stage_error(name, key, exc), "details": traceback.format_exc()}
            return {}

    def trial(self, trial: dict, context: LaunchContext, ready_at: float) -> dict:
        with self._call():
            runtime = ray.get_runtime_context()
            facts = {
                f"{tracking.TAG}ray_node": runtime.get_node_id(),
                f"{tracking.TAG}ray_gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
                f"{tracking.TAG}cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            }
            try:
                return {"metrics": execute(Trial.from_dict(trial), context, extra_tags=facts, ready_at=ready_at)}
            except TrialTimeout as exc:  # recorded; not retried (it would only time out again)
                return {"timeout": str(exc)}
            except TrialFailed as exc:  # recorded; retried by the driver up to max_failures
                return {"failed": str(exc)}

    def touch(self) -> None:
        """The launch holding this worker still runs (it waits on work elsewhere): not idle."""
        with self._call():
            pass

    def release(self, launch: str) -> None:
        """The launch has ended; a retiring worker exits with its last lease."""
        self.leases.discard(launch)
        if self.retiring and not self.leases:
            ray.actor.exit_actor()

    def retire(self) -> None:
        """A launch with other code or resources needs the cluster: exit now, or when the launches that
        use this worker have ended (never in the middle of their grid). Leases untouched for two
        ``TOUCH_S`` belong to launches that died."""
        self.retiring = True
        if not self.leases or time.monotonic() - self.last > 2 * TOUCH_S:
            ray.actor.exit_actor()

    @contextmanager
    def _call(self) -> Iterator[None]:
        """Busy during a call: a worker never exits for idleness in the middle of one."""
        self.busy = True
        try:
            yield
        finally:
            self.busy, self.last = False, time.monotonic()

    def _exit_when_idle(self) -> None:
        while True:
            time.sleep(min(5.0, self.idle_exit_s))
            if not self.busy and time.monotonic() - self.last > self.idle_exit_s:
                os._exit(0)


def workers(count: int, key: str, resources: dict[str, float], context: LaunchContext, launch: str) -> list[Any]:
    """``count`` warm workers of this key: the living ones first, new ones for the rest (warming while the
    driver goes on); the others retired. A kept worker answers its ``warm`` call first, which also resets
    its idle clock, so one that exited for idleness just now is replaced here, not met by a stage or trial.
    One busy with a concurrent launch's call (no answer within ``ANSWER_S``) is kept: calls queue."""
    named = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == NAMESPACE]
    ours = sorted(n for n in named if n.startswith(f"{PREFIX}{key}-"))
    for name in ours[count:] + [n for n in named if n.startswith(PREFIX) and not n.startswith(f"{PREFIX}{key}-")]:
        try:
            ray.get_actor(name, namespace=NAMESPACE).retire.remote()
        except ValueError:  # it has just exited
            pass
    found = {}
    for name in ours[:count]:
        try:
            worker = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:  # it has just exited
            continue
        found[worker.warm.remote(context, launch)] = worker
    answered, _ = ray.wait(list(found), num_returns=len(found), timeout=ANSWER_S) if found else ([], [])
    kept = []
    for ref, worker in found.items():
        try:
            if ref in answered:
                ray.get(ref)
        except ray.exceptions.RayActorError:  # exited since it was listed
            continue
        except Exception:  # noqa: BLE001, S110 - the warm-up failed (a broken plugin): its trials will say why
            pass
        kept.append(worker)
    return kept + [new_worker(key, resources, context, launch) for _ in range(count - len(kept))]


def new_worker(key: str, resources: dict[str, float], context: LaunchContext, launch: str) -> Any:
    """A new worker, warming up for the launch (while the driver goes on); also one that replaces a worker
    that died (its name is unique: a dead actor's name may linger)."""
    worker = Worker.options(
        name=f"{PREFIX}{key}-{uuid.uuid4().hex[:8]}", namespace=NAMESPACE, lifetime="detached", **resources
    ).remote(IDLE_EXIT_S)
    worker.warm.remote(context, launch)
    return worker


def release(workers: list[Any], launch: str) -> None:
    """End the launch's leases (sent before the driver disconnects; a worker that exits on it is fine)."""
    ray.wait([worker.release.remote(launch) for worker in workers], num_returns=len(workers), timeout=ANSWER_S)
