"""Shared fixtures: the built-in benchmark at size tiny, generated once per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugins" / "quick_methods.py"


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """Root folder of skim-digits (variant longrange, size tiny), generated once."""
    from harness.data.synthetic import make

    root = tmp_path_factory.mktemp("skim-digits")
    make(size="tiny", variant="longrange", seed=0, root=str(root))
    return root


def write_spec(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(body)
    return path


def quick_spec(
    folder: Path,
    tiny_root: Path,
    *,
    experiment: str = "e2e",
    method_params: str = "",
    grid: str = "k: [2, 4]",
    seeds: str = "[0]",
    extra: str = "",
) -> Path:
    """A spec running the quick_centroid test plugin on the tiny benchmark, everything under ``folder``."""
    return write_spec(
        folder,
        experiment,
        f"""\
experiment: {experiment}
dataset:
  name: skim-digits
  params: {{variant: longrange, size: tiny, root: "{tiny_root}"}}
backbones: [resnet18]
seeds: {seeds}
methods:
  - name: quick_centroid
    params: {{{method_params}}}
    grid: {{{grid}}}
evaluation: {{batch_size: 2, latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{folder}/mlflow.db"}}
ray: {{num_cpus: 2}}
output: "{folder}/results"
{extra}""",
    )


def skimbench(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def one_thread():
    """Tiny models: one intra-op thread is several times faster than two on a shared 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_trial(
    tiny_root: Path,
    method: str,
    params: dict,
    *,
    store: Path,
    workdir: Path,
    backbone: str = "resnet18",
    backbone_params: dict | None = None,
    evaluation: dict | None = None,
):
    """(ctx, method) built exactly as a trial builds them, on the tiny built-in benchmark."""
    from harness.params import resolve_params
    from harness.registry import BACKBONES, DATASETS, METHODS
    from harness.settings import EVALUATION_PARAMS
    from harness.stages import StageStore
    from harness.trial import build_context

    cfg = {
        "seed": 0,
        "dataset": {
            "name": "skim-digits",
            "params": resolve_params(
                DATASETS.get("skim-digits").params, {"variant": "longrange", "size": "tiny", "root": str(tiny_root)}
            ),
        },
        "backbone": {"name": backbone, "params": resolve_params(BACKBONES.get(backbone).params, backbone_params or {})},
        "method": {"name": method, "params": resolve_params(METHODS.get(method).params, params)},
        "evaluation": resolve_params(EVALUATION_PARAMS, {"device": "cpu", **(evaluation or {})}),
    }
    return build_context(cfg, StageStore(store), workdir, log=lambda _: None)
