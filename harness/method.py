"""The method contract: what a method plugin implements and what the harness does for it.

A method declares typed parameters, names its compute components (modules with an input shape),
trains in ``fit`` (reusing shared stages through ``ctx.stage``), and for every test video returns a
``Prediction``: class scores, how many times each component ran (``Usage``), and what it selected.
The harness -- not the method -- turns usage into GFLOPs with fvcore, computes metrics, measures
latency and logs everything, so every method is measured by the same rules.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from harness.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from harness.stages import StageRequest, StageStore


@dataclass(frozen=True)
class Component:
    """A unit of compute that a method runs some number of times per video.

    ``module`` is counted by fvcore on ``make_inputs(**shape)``; ``shape`` keys let one component be
    counted at per-video shapes (SGS's B' bins, g clusters). ``role`` separates the selection
    machinery ("selection": LightNet, gates, samplers, RNNs) from recognition ("recognition").
    """

    module: "torch.nn.Module"
    make_inputs: Callable[..., tuple]
    role: str = "recognition"
    config: Mapping[str, Any] = field(default_factory=dict)  # identifies the module for the FLOP cache


class Usage:
    """Per-video counts of component runs, optionally at a realised shape.

    >>> u = Usage(); u.add("light", 16); u.add("heavy", 4); u.add("rest", 1, bins=5)
    """

    def __init__(self, counts: Mapping[str, int] | None = None):
        self._counts: Counter[tuple[str, tuple[tuple[str, Any], ...]]] = Counter()
        for name, count in (counts or {}).items():
            self.add(name, count)

    def add(self, component: str, count: int = 1, **shape: Any) -> "Usage":
        if count:
            self._counts[(component, tuple(sorted(shape.items())))] += int(count)
        return self

    def items(self) -> list[tuple[str, dict[str, Any], int]]:
        return [(name, dict(shape), n) for (name, shape), n in sorted(self._counts.items(), key=str)]

    def total(self, component: str) -> int:
        return sum(n for (name, _), n in self._counts.items() if name == component)

    def to_json(self) -> str:
        return json.dumps([{"component": c, "shape": s, "count": n} for c, s, n in self.items()])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Usage) and self._counts == other._counts

    def __repr__(self) -> str:
        return f"Usage({self.items()})"


@dataclass
class Prediction:
    """One test video's output.

    ``scores``: class scores (probabilities for single-label, per-class scores for multi-label).
    ``selected``: the frame indices (or clip indices with ``selection_unit="clip"``) that the method
    looked at with its expensive path, for selection-quality scoring; None for in-network methods.
    ``extras``: small per-video facts worth logging (B', cluster boundaries, ...).
    ``decoded``: the frame indices the method had to decode for this video, by any of its networks
    and at any resolution (``harness.decode_cost`` counts and times them); None = every frame, so a
    method that does not declare it is never flattered.
    """

    scores: np.ndarray
    usage: Usage
    selected: Sequence[int] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    decoded: Sequence[int] | None = None


@dataclass
class TrialContext:
    """Everything a method may use during a trial. Built by ``harness.trial``."""

    seed: int
    device: "torch.device"
    dataset: Any  # harness.data.dataset.VideoDataset
    backbone: Mapping[str, Any]  # {"name": ..., "params": {...}} resolved
    store: "StageStore"
    evaluation: Mapping[str, Any]
    workdir: Path
    stages_used: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = print

    def stage(self, name: str, deps: Mapping[str, Any], compute: Callable[[Path], None]) -> Path:
        """Run ``compute(tmpdir)`` once for these deps across trials and re-runs; return its folder."""
        path = self.store.get_or_compute(name, deps, compute)
        self.stages_used[name] = path.name
        return path

    def frames(self, split: str) -> Any:
        """The frames of a split (``harness.data.streaming.open_frames``): the frame bank (decoded once,
        cached) when its decoded size fits under ``evaluation.frame_bank_gb``, else streamed from the files."""
        from harness.data.streaming import open_frames  # lazy: importing torch's DataLoader at module load is slow

        opened = self.__dict__.setdefault("_opened_frames", {})
        if split not in opened:
            budget = int(float(self.evaluation.get("frame_bank_gb", 2.0)) * 2**30)
            opened[split] = open_frames(self.dataset, split, self.store, budget_bytes=budget, log=self.log)
        self.stages_used[f"frames:{split}"] = opened[split].key
        return opened[split]

    def frames_deps(self, split: str) -> dict[str, Any]:
        """The key inputs of ``frames(split)``'s stage ("frames"), known without decoding anything."""
        from harness.data.bank import bank_deps

        return bank_deps(self.dataset, split, None, None, "auto", 1)  # load_frame_bank's defaults, as frames()


class Method:
    """Base class of method plugins. Subclass, declare ``params``, decorate with ``@register_method``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for ``skimbench methods``
    params: ClassVar[dict[str, Param]] = {}
    budget_param: ClassVar[str | None] = None  # the knob that traces the accuracy-compute curve
    dynamic: ClassVar[bool] = False  # per-video cost varies (requires a brute-force proof test)
    deployable: ClassVar[bool] = True  # False for upper bounds such as the oracle
    selection_unit: ClassVar[str] = "frame"  # unit of Prediction.selected: "frame" or "clip"
    # values of the ``mode`` parameter that run a baseline inside this plugin -> what it is (never the method's
    # own curve; claims use it as the method's reference)
    baseline_modes: ClassVar[dict[str, str]] = {}
    # Prediction.extras keys the report shows per video -> description (a number, or a list whose distinct
    # values are counted)
    video_facts: ClassVar[dict[str, str]] = {}
    # Part of the trial identity. None: a hash of the module's source file, so editing the code reruns
    # its trials; a string ("2") replaces that hash: bump it when results change, keep it for refactors.
    version: ClassVar[str | None] = None
    # Rough seconds of a trial's own work (fit + predict + accounting, outside its declared stages) on the
    # built-in benchmark at size small on one CPU core; only ratios matter. The scheduler starts the costliest
    # work first, so the end of a grid keeps every worker busy (harness/plan.py). A property may use ``self.p``.
    cost: ClassVar[float] = 2.0
    # small backbone the registry-wide contract tests (tests/test_flops_proof.py) build the method on
    test_backbone: ClassVar[dict[str, Any]] = {"name": "resnet18", "params": {"width": 8, "input_size": 32}}

    def __init__(self, ctx: TrialContext, **params: Any):
        self.ctx = ctx
        self.p = params  # resolved: every declared param present

    # -- to implement -------------------------------------------------------------------------
    def fit(self, train: Sequence[Any]) -> None:
        """Train on the training videos (records of ``ctx.dataset``). Shared work goes through ``ctx.stage``."""

    def components(self) -> dict[str, Component]:
        """The compute components that ``Prediction.usage`` refers to."""
        raise NotImplementedError

    def predict(self, video: Any) -> Prediction:
        """Predict one test video (a record of ``ctx.dataset``)."""
        raise NotImplementedError

    # -- optional -----------------------------------------------------------------------------
    def stages(self) -> list["StageRequest"]:
        """The shared stages ``fit`` will need, declared before it runs (e.g. ``harness.toolkit.stages``'s
        ``timestep_stages``): the plan computes each once, before the trials that need it start.
        Undeclared stages still work: the first trial that reaches one computes it under the lock."""
        return []

    def eval_mode(self) -> None:
        """Called once after ``fit`` and before ``predict``: put trained networks in inference mode."""

    def predict_batch(self, videos: Sequence[Any]) -> list[Prediction]:
        return [self.predict(v) for v in videos]

    def trace_video(self, video: Any) -> tuple["torch.nn.Module", tuple]:
        """A module and inputs whose forward performs exactly the computation this method ran for
        ``video``, from decoded frames. Dynamic methods implement it for the brute-force FLOP proof."""
        raise NotImplementedError
