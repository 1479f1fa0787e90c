"""Measured runtime next to FLOPs: latency, throughput, peak memory, on the trial's device.

FLOPs do not predict speed (depthwise 3D convolutions, gathers and scatters in samplers), so every
trial also times its real inference path. CUDA work is asynchronous: each timed call ends with
``torch.cuda.synchronize()`` or the clock would stop before the GPU finished.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch


def pick_device(setting: str = "auto") -> torch.device:
    """``auto``: the first visible CUDA device if any (Ray sets CUDA_VISIBLE_DEVICES to the trial's
    GPUs), else CPU. ``cpu``, ``cuda`` or ``cuda:N`` ask for one explicitly; an unavailable CUDA
    request is an error, never a silent fallback to CPU."""
    setting = (setting or "auto").strip().lower()
    if setting == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device '{setting}' requested but CUDA is not available on this machine")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device '{setting}' requested but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
        return torch.device("cuda", index)
    return device


def autocast(device: torch.device | str, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (the trial option ``evaluation.autocast``); a no-op on CPU or when off."""
    if enabled and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(module_or_tensor: Any) -> Any:
    """Channels-last memory format (``evaluation.channels_last``): 4-D weights and inputs get
    ``channels_last``, 5-D ones ``channels_last_3d``; other tensors are left as they are."""
    if isinstance(module_or_tensor, torch.nn.Module):
        for param in module_or_tensor.parameters():
            param.data = channels_last(param.data)
        return module_or_tensor
    if isinstance(module_or_tensor, torch.Tensor) and module_or_tensor.dim() in (4, 5):
        fmt = torch.channels_last if module_or_tensor.dim() == 4 else torch.channels_last_3d
        return module_or_tensor.contiguous(memory_format=fmt)
    return module_or_tensor


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    *,
    warmup: int = 2,
    repeats: int = 5,
    device: torch.device | str = "cpu",
    batch_size: int = 1,
) -> dict[str, Any]:
    """Median wall time of ``fn(*args)`` after ``warmup`` untimed calls.

    Returns ``latency_ms`` (median per call), ``throughput`` (items per second at this batch:
    ``batch_size`` items per call), ``repeats``, ``threads`` (torch intra-op threads), ``device``
    and ``times_ms`` (every repeat, for spread).
    """
    with torch.no_grad():
        for _ in range(warmup):
            fn(*args)
        _sync(device)
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            fn(*args)
            _sync(device)
            times.append((time.perf_counter() - start) * 1000.0)
    latency = statistics.median(times)
    return {
        "latency_ms": latency,
        "throughput": batch_size * 1000.0 / latency if latency > 0 else float("inf"),
        "repeats": len(times),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "times_ms": times,
    }


# -- memory -----------------------------------------------------------------------------------
def _rss_high_water_mb() -> float:
    """Process peak RSS: VmHWM (resettable, see ``track_peak_memory``), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _rss_now_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _reset_rss_high_water() -> bool:
    """Linux >= 4.0 resets VmHWM to the current RSS when '5' is written to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb(device: torch.device | str = "cpu") -> float:
    """Peak memory so far: CUDA max allocated on that device, else the process's peak RSS."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _rss_high_water_mb()


@dataclass
class PeakMemory:
    """Filled when the ``track_peak_memory`` block exits. ``peak_mb``: absolute peak during the
    block; ``increase_mb``: peak minus what was in use when the block started. ``source`` says what
    was measured (``cuda_max_allocated``, ``rss_hwm`` or ``rss_hwm_process`` when the high-water
    mark could not be reset, so the peak may predate the block)."""

    device: str
    source: str = ""
    peak_mb: float = float("nan")
    increase_mb: float = float("nan")


@contextlib.contextmanager
def track_peak_memory(device: torch.device | str = "cpu") -> Iterator[PeakMemory]:
    """``with track_peak_memory(dev) as mem: ...`` then ``mem.peak_mb``. On CPU, RSS includes the
    allocator's caches and everything else in the process: compare models in fresh processes, or
    use ``saved_activation_mb`` for the training-memory term that grows with the frames."""
    device = torch.device(device)
    result = PeakMemory(device=str(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device) / 2**20
        result.source = "cuda_max_allocated"
    else:
        start = _rss_now_mb()
        result.source = "rss_hwm" if _reset_rss_high_water() else "rss_hwm_process"
    try:
        yield result
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result.peak_mb = peak_memory_mb(device)
        result.increase_mb = max(0.0, result.peak_mb - start)


def saved_activation_mb(fn: Callable[..., torch.Tensor], *args: Any) -> float:
    """Megabytes of tensors that autograd keeps for the backward pass of ``fn(*args)``, each
    storage counted once, parameters excluded: the part of training memory that scales with the
    number of frames (what seed 004's Table 1 compares). Deterministic and device-independent."""
    storages: dict[int, int] = {}
    params: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if not isinstance(t, torch.nn.Parameter) and storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    for arg in (fn, *args):
        if isinstance(arg, torch.nn.Module):
            params.update(p.untyped_storage().data_ptr() for p in arg.parameters())
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    del out
    return sum(storages.values()) / 2**20
