"""FLOP accounting that stays true for dynamic methods.

fvcore counts one traced forward: a gate that skipped its heavy branch for the traced input is
counted at zero, silently. So the harness never traces a whole dynamic method. It counts each
*component* (a module at a static input shape) once with fvcore -- cached per component config
and shape -- and multiplies by what each video actually used (``Prediction.usage``), at the
shape it was used at (SGS's B' bins, g clusters, K selected clips). ``verify_accounting`` proves
the bookkeeping per video against a brute-force fvcore count of the path that really ran.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import elementwise_flop_counter, get_shape
from torch import nn

from harness.hashing import content_hash
from harness.method import Component, Usage

FLOP_CONVENTION = (
    "GFLOPs are fvcore counts: one fused multiply-add = one FLOP (what fvcore and the papers "
    "call GFLOPs, i.e. GMACs); element-wise ops (add, mul, activations, softmax) count zero and "
    "batch norm counts zero (folded into the preceding convolution at inference, as in the "
    "published figures); counted in eval mode at batch 1; per video unless labelled per view."
)


@dataclass(frozen=True)
class StaticCount:
    """One module at one input shape. ``unsupported_ops`` counted zero; record them, never hide them."""

    gflops: float
    params: int
    unsupported_ops: dict[str, int] = field(default_factory=dict)
    uncalled_modules: list[str] = field(default_factory=list)


# -- extra fvcore handles: recurrent layers (LiteEval's LSTMs) would otherwise count zero --------
def _recurrent_flop_jit(inputs: list, outputs: list) -> int:
    """aten::lstm / gru / rnn_*: every 2-D weight (input, hidden, projection) is applied once per
    time step and batch element. LSTMCell/GRUCell need no handle: they trace to linear ops."""
    x_shape = get_shape(inputs[0])
    steps = math.prod(x_shape[:-1])
    weights = [get_shape(w) for w in inputs[2].node().inputs()]
    return int(steps * sum(math.prod(s) for s in weights if s is not None and len(s) == 2))


EXTRA_HANDLES = {
    # eval-mode batch norm is an affine map folded into the preceding conv for inference; the
    # published figures (torchvision's tables, MobileNetV2's 300M) do not count it
    "aten::batch_norm": lambda inputs, outputs: 0,  # (a None handle does not override fvcore 0.1.5's own)
    "aten::lstm": _recurrent_flop_jit,
    "aten::gru": _recurrent_flop_jit,
    "aten::rnn_tanh": _recurrent_flop_jit,
    "aten::rnn_relu": _recurrent_flop_jit,
    # fvcore counts adaptive_avg_pool2d (one per input element); count the 1-D and 3-D ones alike
    "aten::adaptive_avg_pool1d": elementwise_flop_counter(1, 0),
    "aten::adaptive_avg_pool3d": elementwise_flop_counter(1, 0),
}


def _as_tuple(inputs: Any) -> tuple:
    return inputs if isinstance(inputs, tuple) else tuple(inputs) if isinstance(inputs, list) else (inputs,)


def shape_key(inputs: Any) -> Any:
    """Hashable description of the inputs: shapes and dtypes of tensors, repr of anything else."""
    if isinstance(inputs, torch.Tensor):
        return ("tensor", tuple(inputs.shape), str(inputs.dtype))
    if isinstance(inputs, (tuple, list)):
        return tuple(shape_key(x) for x in inputs)
    return repr(inputs)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _analyse(module: nn.Module, inputs: Any) -> StaticCount:
    """fvcore on one forward, in eval mode (batch norm differs in training) without gradients."""
    device = next((p.device for p in module.parameters()), None)
    if device is not None:  # make_inputs may build CPU tensors for a module on CUDA
        inputs = tuple(x.to(device) if isinstance(x, torch.Tensor) else x for x in _as_tuple(inputs))
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(module, _as_tuple(inputs))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            for op, handle in EXTRA_HANDLES.items():
                analysis.set_op_handle(op, handle)
            total = analysis.total()
            unsupported = dict(sorted(analysis.unsupported_ops().items()))
            uncalled = sorted(analysis.uncalled_modules())
    finally:
        for m, training in modes:
            m.training = training
    return StaticCount(
        gflops=total / 1e9, params=count_params(module), unsupported_ops=unsupported, uncalled_modules=uncalled
    )


_BY_CONFIG: dict[tuple[str, Any], StaticCount] = {}
_BY_MODULE: "weakref.WeakKeyDictionary[nn.Module, dict[Any, StaticCount]]" = weakref.WeakKeyDictionary()


def count_flops(module: nn.Module, inputs: Any, config: Mapping[str, Any] | None = None) -> StaticCount:
    """fvcore count of ``module`` on ``inputs`` (batch 1 by convention), cached.

    The cache key is (config, input shapes) when a config identifies the module -- equal configs
    share a count across trials of one process -- else (this module object, input shapes).
    """
    shapes = shape_key(_as_tuple(inputs))
    if config:
        key = (
            content_hash({"class": f"{type(module).__module__}.{type(module).__qualname__}", "config": config}),
            shapes,
        )
        if key not in _BY_CONFIG:
            _BY_CONFIG[key] = _analyse(module, inputs)
        return _BY_CONFIG[key]
    per_module = _BY_MODULE.setdefault(module, {})
    if shapes not in per_module:
        per_module[shapes] = _analyse(module, inputs)
    return per_module[shapes]


def clear_cache() -> None:
    _BY_CONFIG.clear()
    _BY_MODULE.clear()


def brute_force_gflops(module: nn.Module, inputs: Any) -> float:
    """Uncached fvcore count of the realised path: ``module(*inputs)`` must perform exactly the
    computation that ran for one video (what ``Method.trace_video`` returns)."""
    return _analyse(module, inputs).gflops


# -- per-video accounting ---------------------------------------------------------------------
@dataclass
class Accounting:
    """Per-video GFLOPs of a trial and how they were obtained.

    ``table``: one row per (component, realised shape) with GFLOPs per call, calls over all videos,
    params, role, unsupported ops and uncalled modules (the ``flops_components.json`` artifact).
    ``params``: parameters of all components, shared tensors counted once.
    """

    per_video: np.ndarray
    per_video_selection: np.ndarray
    per_video_recognition: np.ndarray
    table: list[dict[str, Any]]
    params: int
    convention: str = FLOP_CONVENTION

    @property
    def summary(self) -> dict[str, float]:
        def stat(values: np.ndarray, fn) -> float:
            return float(fn(values)) if len(values) else float("nan")

        return {
            "gflops_per_video_mean": stat(self.per_video, np.mean),
            "gflops_per_video_std": stat(self.per_video, np.std),
            "gflops_per_video_min": stat(self.per_video, np.min),
            "gflops_per_video_max": stat(self.per_video, np.max),
            "gflops_selection_mean": stat(self.per_video_selection, np.mean),
            "gflops_recognition_mean": stat(self.per_video_recognition, np.mean),
        }


def account(components: Mapping[str, Component], usages: Sequence[Usage]) -> Accounting:
    """Turn each video's usage into GFLOPs: sum over (component, shape) of calls x GFLOPs per call."""
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    per_video, selection, recognition = [], [], []
    for usage in usages:
        totals = {"selection": 0.0, "recognition": 0.0}
        for name, shape, calls in usage.items():
            if name not in components:
                raise KeyError(
                    f"usage names component '{name}', which components() does not declare "
                    f"(declared: {', '.join(sorted(components)) or 'none'})"
                )
            component = components[name]
            if component.role not in totals:
                raise ValueError(
                    f"component '{name}': role must be 'selection' or 'recognition', got '{component.role}'"
                )
            row_key = (name, tuple(sorted(shape.items())))
            if row_key not in rows:
                try:
                    inputs = component.make_inputs(**shape)
                except TypeError as exc:
                    raise TypeError(f"component '{name}': make_inputs(**{shape}) failed: {exc}") from exc
                count = count_flops(component.module, inputs, dict(component.config) or None)
                rows[row_key] = {
                    "component": name,
                    "role": component.role,
                    "shape": dict(shape),
                    "input_shapes": [list(x.shape) for x in _as_tuple(inputs) if isinstance(x, torch.Tensor)],
                    "gflops_per_call": count.gflops,
                    "params": count.params,
                    "calls": 0,
                    "unsupported_ops": count.unsupported_ops,
                    "uncalled_modules": count.uncalled_modules,
                }
            rows[row_key]["calls"] += calls
            totals[component.role] += calls * rows[row_key]["gflops_per_call"]
        selection.append(totals["selection"])
        recognition.append(totals["recognition"])
        per_video.append(totals["selection"] + totals["recognition"])
    unique = {id(p): p.numel() for c in components.values() for p in c.module.parameters()}
    return Accounting(
        per_video=np.asarray(per_video, dtype=float),
        per_video_selection=np.asarray(selection, dtype=float),
        per_video_recognition=np.asarray(recognition, dtype=float),
        table=sorted(rows.values(), key=lambda r: (r["component"], str(r["shape"]))),
        params=sum(unique.values()),
    )


def verify_accounting(method: Any, records: Sequence[Any]) -> list[tuple[float, float]]:
    """For each video: (GFLOPs accounted from ``predict``'s usage, brute-force GFLOPs of
    ``trace_video``'s realised path). Equal within rounding when the method's bookkeeping is true."""
    method.eval_mode()
    components = method.components()
    pairs = []
    for record in records:
        with torch.no_grad():
            prediction = method.predict(record)
        accounted = float(account(components, [prediction.usage]).per_video[0])
        module, inputs = method.trace_video(record)
        pairs.append((accounted, brute_force_gflops(module, inputs)))
    return pairs
