"""Builds a small, realistic experiment in a real MLflow sqlite store, logged the way
``harness.tracking`` logs trials (tags, flattened params, metrics, ``predictions.csv``).
Imported by the report tests; holds no tests itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from harness.timing_lock import EXCLUSIVE

NUM_FRAMES, CLIP_LEN, NUM_VIDEOS = 32, 4, 6
FRAME_GFLOPS, LIGHT_GFLOPS = 0.5, 0.02


def relevance() -> dict[str, np.ndarray]:
    """Per-frame ground truth: video i is relevant on frames [8+i, 16+i)."""
    out = {}
    for i in range(NUM_VIDEOS):
        rel = np.zeros(NUM_FRAMES, dtype=int)
        rel[8 + i : 16 + i] = 1
        out[f"vid{i}"] = rel
    return out


def frames(video_id: str) -> np.ndarray:
    """A [T, H, W, 3] uint8 clip whose relevant frames are bright, so a filmstrip shows them."""
    rel = relevance()[video_id]
    t = np.arange(NUM_FRAMES)[:, None, None, None]
    base = np.broadcast_to(40 + 4 * t, (NUM_FRAMES, 24, 32, 3)).astype(np.uint8).copy()
    base[rel == 1, 6:18, 8:24, 0] = 230
    return base


# method -> (budget_param, budgets, selection unit, deployable, dynamic, extra params variants)
METHODS = {
    "uniform": ("k", [2, 4, 8], "frame", True, False, [{}]),
    "random": ("k", [2, 4, 8], "frame", True, False, [{}]),
    "dense": (None, [None], "clip", True, False, [{}]),
    "oracle": ("k", [1, 2], "clip", False, False, [{}]),
    "scsampler": ("k", [1, 2, 4], "clip", True, False, [{"objective": "ac"}, {"objective": "sal_rank"}]),
    "videoepitoma": ("k", [2, 4, 8], "frame", True, True, [{}]),
    "liteeval": ("gamma", [0.05, 0.1, 0.3], "frame", True, True, [{}]),
    "sgs": ("bins", [4, 8, 16], None, True, True, [{}]),
    "temporal_clustering": ("g", [2, 4, 8], None, True, False, [{"rule": "cumulative"}, {"rule": "uniform"}]),
}


def _selection(method, budget, video, rng):
    rel = relevance()[video]
    relevant = np.flatnonzero(rel)
    if method == "uniform":
        return np.linspace(0, NUM_FRAMES - 1, budget).round().astype(int).tolist()
    if method == "random":
        return sorted(rng.choice(NUM_FRAMES, budget, replace=False).tolist())
    if method == "videoepitoma":  # mostly relevant frames
        return sorted(set(relevant[: budget - 1].tolist()) | {0})
    if method == "liteeval":
        n = int(2 + 20 * budget + rng.integers(0, 3))
        return sorted(rng.choice(NUM_FRAMES, n, replace=False).tolist())
    if method == "dense":
        return list(range(NUM_FRAMES // CLIP_LEN))
    if method in ("oracle", "scsampler"):
        clips = sorted({int(f) // CLIP_LEN for f in relevant})
        return clips[:budget]
    return None


def _accuracy(method, budget, params, seed):
    base = {
        "uniform": 40,
        "random": 36,
        "dense": 55,
        "oracle": 80,
        "scsampler": 50,
        "videoepitoma": 48,
        "liteeval": 50,
        "sgs": 52,
        "temporal_clustering": 45,
    }[method]
    if method == "scsampler" and params.get("objective") == "sal_rank":
        base -= 3
    if method == "temporal_clustering" and params.get("rule") == "uniform":
        base -= 4
    gain = 0 if budget is None else 6 * np.log2(1 + budget * (10 if method == "liteeval" else 1))
    return float(min(99.0, base + gain + (seed - 0.5) * 2))


def log_trial(client, exp_id, parent, method, budget, seed, params, status="FINISHED", with_predictions=True):
    budget_param, _, unit, deployable, dynamic, _ = METHODS[method]
    rng = np.random.default_rng([seed, len(method), int((budget or 0) * 100)])
    method_params = dict(params, **({budget_param: budget} if budget_param else {}))
    trial_hash = f"{abs(hash((method, json.dumps(method_params, sort_keys=True), seed))):016x}"[:16]
    tags = {
        "skimbench.trial_hash": trial_hash,
        "skimbench.method": method,
        "skimbench.label": method,
        "skimbench.dataset": "synthetic",
        "skimbench.backbone": "r3d_18",
        "skimbench.seed": str(seed),
        "skimbench.budget_param": budget_param or "",
        "skimbench.budget": "" if budget_param is None else json.dumps(budget),
        "skimbench.deployable": str(deployable).lower(),
        "skimbench.dynamic": str(dynamic).lower(),
        "skimbench.role": "trial",
        "mlflow.parentRunId": parent,
    }
    if unit:
        tags["skimbench.selection_unit"] = unit
    # random's seed-1 trials timed without the machine lock; the others with it
    tags["skimbench.latency_timing"] = (
        EXCLUSIVE if (method, seed) != ("random", 1) else "shared: timing lock unavailable (Read-only file system)"
    )
    run_id = client.create_run(exp_id, tags=tags).info.run_id
    flat = {f"method.params.{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in method_params.items()}
    flat.update({"evaluation.clip_len": str(CLIP_LEN), "seed": str(seed), "method.name": method})
    client.log_batch(run_id, params=[Param(k, v) for k, v in flat.items()])
    if status != "FINISHED":
        client.log_batch(run_id, tags=[RunTag("skimbench.outcome", "ERROR")])
        client.set_terminated(run_id, status)
        return run_id
    videos = [f"vid{i}" for i in range(NUM_VIDEOS)]
    top1 = _accuracy(method, budget, params, seed)
    hits = round(top1 / 100 * NUM_VIDEOS)  # the first `hits` videos are classified right
    rows = []
    for i, v in enumerate(videos):
        label = int(v[-1]) % 3
        scores = [0.1, 0.1, 0.1]
        scores[label if i < hits else (label + 1) % 3] = 0.8
        selected = _selection(method, budget, v, rng)
        extras = {}
        if method == "sgs":
            extras["bins"] = int(rng.integers(max(1, budget // 2), budget + 1))
            gflops = 1.0 + 0.4 * extras["bins"]
        elif method == "temporal_clustering":
            starts = [0] + sorted(rng.choice(np.arange(1, NUM_FRAMES), budget - 1, replace=False).tolist())
            extras["cluster_boundaries"] = starts  # as methods/temporal_clustering.py: every cluster's start
            extras["train_memory_mb"] = 50.0 + 10 * budget
            gflops = 0.3 + FRAME_GFLOPS * budget
        elif selected is None or method == "dense":
            gflops = NUM_FRAMES * FRAME_GFLOPS
        else:
            per_unit = FRAME_GFLOPS * (CLIP_LEN if unit == "clip" else 1)
            gflops = per_unit * len(selected)
        selection = NUM_FRAMES * LIGHT_GFLOPS if method in ("scsampler", "videoepitoma", "liteeval") else 0.0
        rows.append(
            {
                "video_id": v,
                "labels": json.dumps([label]),
                "scores": json.dumps(scores),
                "gflops": gflops + selection,
                "gflops_selection": selection,
                "usage": "[]",
                "selected": json.dumps(selected),
                "extras": json.dumps(extras),
            }
        )
    table = pd.DataFrame(rows)
    g = table["gflops"]
    metrics = {
        "top1_pct": top1,
        "top5_pct": min(100.0, top1 + 20),
        "gflops_per_video_mean": g.mean(),
        "gflops_per_video_std": g.std(ddof=0),
        "gflops_per_video_min": g.min(),
        "gflops_per_video_max": g.max(),
        "gflops_selection_mean": table["gflops_selection"].mean(),
        "params_m": 33.2,
        "latency_ms_per_video": 3.0 * g.mean() + 1.0,
        "throughput_videos_per_s": 1000 / (3.0 * g.mean() + 1.0),
        "peak_memory_mb": 100.0 + 10 * g.mean(),
        "videos_evaluated": float(len(videos)),
        "videos_skipped": 0.0,
    }
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
    if with_predictions:
        folder = Path(client.tracking_uri.replace("sqlite:///", "")).parent / f"pred-{run_id}"
        folder.mkdir()
        table.to_csv(folder / "predictions.csv", index=False)
        client.log_artifact(run_id, str(folder / "predictions.csv"))
        heavy = {
            "component": "heavy",
            "role": "recognition",
            "shape": {},
            "gflops_per_call": FRAME_GFLOPS,
            "calls": 4 * NUM_VIDEOS,
        }
        light = {
            "component": "light",
            "role": "selection",
            "shape": {},
            "gflops_per_call": LIGHT_GFLOPS,
            "calls": NUM_FRAMES * NUM_VIDEOS,
        }
        parts = [heavy, light] if method in ("scsampler", "videoepitoma", "liteeval") else [heavy]
        (folder / "flops_components.json").write_text(json.dumps(parts))
        client.log_artifact(run_id, str(folder / "flops_components.json"))
    client.set_terminated(run_id, "FINISHED")
    return run_id


def make_experiment(
    tmp_path: Path, name: str = "quick", methods=None, seeds=(0, 1), with_predictions=True, failed: bool = True
) -> str:
    """Log an experiment (parent run + trials); returns the tracking URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    exp_id = (
        exp.experiment_id
        if exp
        else client.create_experiment(name, artifact_location=str(tmp_path / f"artifacts-{name}"))
    )
    parent = client.create_run(exp_id, tags={"skimbench.role": "parent"}).info.run_id
    for method in methods or METHODS:
        _, budgets, _, _, _, variants = METHODS[method]
        for params in variants:
            for budget in budgets:
                for seed in seeds:
                    log_trial(client, exp_id, parent, method, budget, seed, params, with_predictions=with_predictions)
    if failed:
        log_trial(client, exp_id, parent, "uniform", 16, 0, {}, status="FAILED")
    client.set_terminated(parent, "FINISHED")
    return uri
