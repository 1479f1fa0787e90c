"""A network trained once as a stage: declared before ``fit``, trained by the plan, loaded by each trial.

A method whose network does not depend on the test-time knob it sweeps (SGS's ``bins_test``,
clustering's ``g`` with ``g_train``, the shared heavy classifier and LightNet) trains it once per
key: ``network_stage`` declares it (``Method.stages``), so the plan computes it once before the
trials that need it start, and ``trained_network`` gives the trial the network (trained here, under
the store's lock, only when no stage has it yet: the safety net for undeclared stages).

The stage folder holds ``model.pt`` (the state dict on the CPU). A network is loaded once per
trial, not per process: a Ray worker runs many trials and no trial may see a network object
another trial has used or changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from harness.method import TrialContext
from harness.stages import StageRequest, stage_key
from harness.toolkit.training import train_streamed, video_requests

MODEL = "model.pt"


def trained_network(
    ctx: TrialContext,
    name: str,
    deps: Mapping[str, Any],
    new_net: Callable[[], nn.Module],
    train: Callable[[nn.Module], None],
    record_as: str | None = None,
) -> tuple[nn.Module, Path]:
    """The network of stage ``name`` in eval mode on ``ctx.device`` and its folder: ``new_net()``
    trained by ``train(net)`` and saved when no stage has it, else read from the store.
    ``record_as`` records the stage in ``ctx.stages_used`` under another name."""

    def compute(folder: Path) -> None:
        net = new_net().to(ctx.device)
        train(net)
        torch.save({k: v.cpu() for k, v in net.state_dict().items()}, folder / MODEL)

    if record_as is None:
        folder = ctx.stage(name, deps, compute)
    else:
        folder = ctx.store.get_or_compute(name, deps, compute)
        ctx.stages_used[record_as] = folder.name
    loaded = ctx.__dict__.setdefault("_loaded_networks", {})
    if str(folder) not in loaded:
        net = new_net()
        net.load_state_dict(torch.load(folder / MODEL, map_location="cpu", weights_only=True))
        loaded[str(folder)] = net.to(ctx.device).eval()
    return loaded[str(folder)], folder


def network_stage(
    ctx: TrialContext,
    name: str,
    deps: Mapping[str, Any],
    new_net: Callable[[], nn.Module],
    train: Callable[[nn.Module], None],
    cost: float = 20.0,
    after: tuple[str, ...] = (),
    record_as: str | None = None,
) -> StageRequest:
    """The declaration of ``trained_network(ctx, name, deps, new_net, train, record_as)``: the same key,
    built after the training frames (``ctx.frames("train")``) and the stages keyed ``after`` (a network
    that starts from another stage's network); ``cost``: rough seconds (``StageRequest.cost``)."""
    return StageRequest(
        name,
        deps,
        lambda: trained_network(ctx, name, deps, new_net, train, record_as),
        after=(stage_key("frames", ctx.frames_deps("train")), *after),
        cost=cost,
    )


def train_on_videos(
    ctx: TrialContext,
    net: nn.Module,
    pick: Callable[[int, np.random.Generator], np.ndarray],
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    p: Mapping[str, Any],
    what: str,
) -> None:
    """Train ``net`` on the readable training videos, each epoch on the frames ``pick(length, rng)``
    chooses per video (``train_streamed``), with the method's ``epochs``, ``batch_size`` and ``lr``."""
    bank = ctx.frames("train")
    skipped = {video_id for video_id, _ in bank.skipped}
    rows = [bank.index(r.video_id) for r in ctx.dataset.split("train") if r.video_id not in skipped]
    train_streamed(
        net,
        bank,
        video_requests(bank, rows, pick),
        forward,
        epochs=int(p["epochs"]),
        batch_size=int(p["batch_size"]),
        lr=float(p["lr"]),
        seed=ctx.seed,
        multilabel=ctx.dataset.multilabel,
        num_classes=ctx.dataset.num_classes,
        log=ctx.log,
        what=what,
    )
