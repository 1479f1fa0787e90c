"""One trial: what it is (the frozen ``Trial``) and how it runs, as plain calls: build, fit, predict, measure.

``run_trial`` knows nothing about Ray or MLflow: ``harness.launchers.execute`` opens the trial's
MLflow run (``harness.tracking``), calls ``run_trial`` and records the result; the launchers
(``harness.launchers.local``, ``harness.launchers.ray``) schedule ``execute``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from harness.decode_cost import decode_metrics, decoded_indices
from harness.method import Method, Prediction, TrialContext
from harness.metrics import default_rule, video_metrics
from harness.registry import DATASETS, METHODS
from harness.repro import seed_everything
from harness.stages import StageStore
from harness.timing_lock import exclusive_timing
from harness.views import parse_views, view_gflops


@dataclass(frozen=True)
class Plugin:
    """A plugin and its resolved parameters (every declared parameter present)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, str] | None = None  # backbones only: a local pretrained checkpoint {path, sha256}

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "params": dict(self.params)}
        if self.weights:
            out["weights"] = dict(self.weights)
        return out


@dataclass(frozen=True)
class Trial:
    """One trial of a grid, as ``harness.grid.expand`` makes it; travels through Ray and into config.json.

    ``code`` maps "dataset", "backbone", "method" to their plugin's code version (declared
    ``version`` or source hash, ``harness.hashing.code_version``); it is part of ``hash``.
    ``name`` is the display name (``harness.naming.trial_name``), ``label`` the spec entry's label.
    """

    experiment: str
    label: str
    dataset: Plugin
    backbone: Plugin
    method: Plugin
    seed: int
    evaluation: dict[str, Any]
    resources: dict[str, Any] = field(default_factory=dict)
    max_failures: int = 0
    timeout_s: float | None = None
    code: dict[str, str] = field(default_factory=dict)
    hash: str = ""
    spec_hash: str = ""
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("dataset", "backbone", "method"):  # "weights" only where given: other trials' hashes unchanged
            if out[key].get("weights") is None:
                out[key].pop("weights", None)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Trial":
        """The inverse of ``to_dict``; keys left out take their defaults (tests build partial trials)."""
        plugins = {
            key: Plugin(data[key]["name"], dict(data[key].get("params", {})), data[key].get("weights"))
            for key in ("dataset", "backbone", "method")
        }
        rest = {
            key: data[key]
            for key in (
                "experiment",
                "label",
                "seed",
                "evaluation",
                "resources",
                "max_failures",
                "timeout_s",
                "code",
                "hash",
                "spec_hash",
                "name",
            )
            if key in data
        }
        rest.setdefault("experiment", "")
        rest.setdefault("label", plugins["method"].name)
        return cls(**plugins, **rest)


@dataclass
class TrialResult:
    metrics: dict[str, float]
    predictions: pd.DataFrame
    flops_components: list[dict[str, Any]]
    skipped: list[tuple[str, str]]
    stages_used: dict[str, str]
    facts: dict[str, str] = field(default_factory=dict)  # tags: manifest hash, device, threads...


def build_dataset(trial: Trial):
    return DATASETS.get(trial.dataset.name)(**trial.dataset.params)


def build_context(
    trial: Trial | Mapping[str, Any], store: StageStore, workdir: Path, log: Callable[[str], None] = print
) -> tuple[TrialContext, Method]:
    """Seed, pick the device, build the dataset and the method: everything before ``fit``.
    ``trial`` may be a ``Trial`` or its ``to_dict`` form (tests pass the parts they need)."""
    from harness.runtime import pick_device

    if not isinstance(trial, Trial):
        trial = Trial.from_dict(trial)
    seed_everything(trial.seed)
    evaluation = trial.evaluation
    # The same thread count on every path (Ray worker, --local, benchmark loop): float reductions,
    # and so trained weights, depend on it.
    threads = int(evaluation.get("threads") or max(1, int(trial.resources.get("cpus", 1))))
    torch.set_num_threads(threads)
    ctx = TrialContext(
        seed=trial.seed,
        device=pick_device(evaluation.get("device", "auto")),
        dataset=build_dataset(trial),
        backbone=trial.backbone.to_dict(),
        store=store,
        evaluation=evaluation,
        workdir=Path(workdir),
        log=log,
    )
    method = METHODS.get(trial.method.name)(ctx, **trial.method.params)
    return ctx, method


def run_trial(trial: Trial, store: StageStore, workdir: Path, log: Callable[[str], None] = print) -> TrialResult:
    from harness.compute import account
    from harness.runtime import autocast, channels_last, peak_memory_mb

    started = time.perf_counter()
    ctx, method = build_context(trial, store, workdir, log)
    dataset = ctx.dataset

    # Videos that cannot be decoded are skipped by the frame bank's policy; evaluate the rest.
    train_skipped, test_skipped = ctx.frames("train").skipped, ctx.frames("test").skipped
    skipped = [(vid, f"train: {why}") for vid, why in train_skipped] + [
        (vid, f"test: {why}") for vid, why in test_skipped
    ]
    train = _readable(dataset.split("train"), train_skipped)
    test = _readable(dataset.split("test"), test_skipped)
    if not test:
        raise RuntimeError(f"no readable test video in dataset '{trial.dataset.name}' ({len(test_skipped)} unreadable)")

    t0 = time.perf_counter()
    method.fit(train)
    train_time = time.perf_counter() - t0

    method.eval_mode()
    evaluation = trial.evaluation
    use_autocast = bool(evaluation.get("autocast"))
    if evaluation.get("channels_last") and ctx.device.type == "cuda":
        for component in method.components().values():
            channels_last(component.module)
    with torch.inference_mode(), autocast(ctx.device, use_autocast):
        predictions: list[Prediction] = method.predict_batch(test)
    accounting = account(method.components(), [p.usage for p in predictions])

    metrics = video_metrics(
        np.stack([p.scores for p in predictions]), [r.labels for r in test], dataset.num_classes, dataset.multilabel
    )
    metrics.update(accounting.summary)
    metrics["params_m"] = accounting.params / 1e6

    with exclusive_timing() as timing_facts:  # trials on one machine time one at a time
        timing = _measure_latency(method, test[: int(evaluation["batch_size"])], evaluation, ctx.device, use_autocast)
    from_trace = timing.pop("latency_from_trace")  # a flag: logged as a tag, not a metric
    metrics.update(timing)
    # decoding cost beside GFLOPs: each video's declared frames, timed on the latency videos
    bank = ctx.frames("test")
    lengths = [int(bank.get(r.video_id).shape[0]) for r in test]
    decoded = [decoded_indices(p.decoded, n) for p, n in zip(predictions, lengths)]
    metrics.update(decode_metrics(test, decoded, lengths, int(evaluation["batch_size"]), evaluation))
    metrics["peak_memory_mb"] = peak_memory_mb(ctx.device)
    metrics["train_time_s"] = train_time
    metrics["wall_time_s"] = time.perf_counter() - started
    metrics["videos_evaluated"] = float(len(test))
    metrics["videos_skipped"] = float(len(skipped))
    views = parse_views(evaluation.get("views", 1))  # N clips, or {clips, crops}
    per_view = view_gflops(metrics["gflops_per_video_mean"] / views.count, views)  # accounting covers every view
    if views.count > 1:
        metrics["gflops_per_view"], metrics["views"] = per_view["gflops_per_view"], float(views.count)

    table = pd.DataFrame(
        {
            "video_id": [r.video_id for r in test],
            "labels": [json.dumps(list(r.labels)) for r in test],
            "scores": [json.dumps(np.round(np.asarray(p.scores, dtype=float), 6).tolist()) for p in predictions],
            "gflops": accounting.per_video,
            "gflops_selection": accounting.per_video_selection,
            "decoded_frames": [len(d) for d in decoded],
            "usage": [p.usage.to_json() for p in predictions],
            "selected": [json.dumps(None if p.selected is None else [int(i) for i in p.selected]) for p in predictions],
            "extras": [json.dumps(p.extras, default=_jsonable) for p in predictions],
        }
    )
    facts = {
        "dataset": trial.dataset.name,
        "dataset_manifest": dataset.manifest_hash(),
        "device": str(ctx.device),
        "threads": str(torch.get_num_threads()),
        "latency_from_trace": str(bool(from_trace)).lower(),
        "latency_measured_on": "trace_video path, batch 1" if from_trace else "predict_batch",
        "dataset_root": str(dataset.root_dir or ""),
        **timing_facts,
    }
    if views.count > 1:  # how a video's views are counted and combined (MMAction2 / PySlowFast conventions)
        facts.update(
            {
                "views": f"{views.clips} clips x {views.crops} crops",
                "gflops_x_views": per_view["gflops_x_views"],
                "view_rule": default_rule(bool(dataset.multilabel)),
            }
        )
    return TrialResult(
        metrics={k: float(v) for k, v in metrics.items()},
        predictions=table,
        flops_components=accounting.table,
        skipped=skipped,
        stages_used=dict(ctx.stages_used),
        facts=facts,
    )


def _measure_latency(
    method: Method, videos: list, evaluation: dict, device: torch.device, use_autocast: bool
) -> dict[str, float]:
    """Latency of the computation a method really runs per video, from decoded frames.

    Methods that predict from cached features (the shared heavy classifier's logits) would
    otherwise time a table lookup, so when a method can rebuild a video's realised path
    (``trace_video``, also used by the FLOP proof) that module is timed, one video at a time
    (paths differ per video); otherwise ``predict_batch`` on a batch is timed.
    """
    from harness.runtime import autocast, measure_latency

    warmup, repeats = int(evaluation["latency_warmup"]), int(evaluation["latency_repeats"])
    with torch.inference_mode(), autocast(device, use_autocast):
        try:
            paths = [method.trace_video(v) for v in videos]
        except NotImplementedError:
            paths = None
        if paths is None:
            t = measure_latency(lambda: method.predict_batch(videos), (), warmup=warmup, repeats=repeats, device=device)
            return {
                "latency_ms_per_video": t["latency_ms"] / len(videos),
                "throughput_videos_per_s": t["throughput"] * len(videos),
                "latency_from_trace": 0.0,
            }
        times = [
            measure_latency(module, tuple(inputs), warmup=warmup, repeats=repeats, device=device)["latency_ms"]
            for module, inputs in paths
        ]
    latency = float(np.median(times))
    return {
        "latency_ms_per_video": latency,
        "throughput_videos_per_s": 1000.0 / latency if latency > 0 else float("nan"),
        "latency_from_trace": 1.0,
    }


def _readable(records: list, skipped: list[tuple[str, str]]) -> list:
    unreadable = {video_id for video_id, _ in skipped}
    return [r for r in records if r.video_id not in unreadable]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    return str(value)
