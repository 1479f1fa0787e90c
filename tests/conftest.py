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


def quick_spec(folder: Path, tiny_root: Path, *, experiment: str = "e2e", method_params: str = "", grid: str = "k: [2, 4]",
               seeds: str = "[0]", extra: str = "") -> Path:
    """A spec running the quick_centroid test plugin on the tiny benchmark, everything under ``folder``."""
    return write_spec(folder, experiment, f"""\
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
{extra}""")


def skimbench(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
