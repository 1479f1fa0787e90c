"""``skimbench new-method NAME``: write a complete, working method plugin and its test.

The generated module is the shortest honest example of the method contract (``harness.method``):
declared params with a budget knob, a compute component, ``fit`` on the training videos, and
``predict`` returning scores, per-component usage and the frames it looked at. Its test loads it
the way ``--plugin`` does and runs it on tiny real videos that it writes itself, so it passes
without any dataset. A user edits both files; nothing under ``harness/`` needs to change.
``--package`` writes the same two files into an installable distribution (``pyproject.toml`` with a
``skimbench.methods`` entry point), so that ``pip install -e`` makes the method available everywhere.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
from pathlib import Path
from string import Template

METHOD_TEMPLATE = Template('''\
"""${name}: a skimbench method plugin (scaffolded by ``skimbench new-method ${name}``).

What it does now, as a starting point: look at K frames spread evenly over the video, embed each
with a tiny CNN (fixed random weights: the seed decides them), average the embeddings, and
predict the class whose training-set mean embedding is nearest. Replace the frame selection and
the model with your method, and keep the contract of ``harness.method.Method``:

- ``params``: every knob, typed, with a default and a doc line (checked before a grid runs);
  ``budget_param`` names the one that trades accuracy for compute;
- ``components()``: the modules whose runs cost compute, with an example input;
- ``predict()``: scores plus how many times each component ran (``Usage``); the harness turns
  that into GFLOPs with fvcore, times inference and logs everything.

Use it in a spec, run with ``skimbench run SPEC --plugin ${name}.py``::

    methods:
      - name: ${name}
        grid: {k: [2, 4, 8]}
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from harness.data.decoding import open_video
from harness.data.sampling import uniform_frames
from harness.method import Component, Method, Prediction, TrialContext, Usage
from harness.params import Param
from harness.registry import register_method


def read_frames(path: str, k: int, size: int) -> tuple[torch.Tensor, list[int]]:
    """Decode ``k`` evenly spread frames (decord, PyAV fallback; a bad file raises ``VideoDecodeError``,
    which the harness counts as a skipped video): float ``[K, 3, size, size]`` in [0, 1], and their indices."""
    reader = open_video(path)
    indices = sorted(set(uniform_frames(len(reader), k).tolist()))  # a video shorter than k gives fewer
    frames = torch.from_numpy(reader.get_batch(indices)).permute(0, 3, 1, 2).float().div(255)
    return nn.functional.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False), indices


class TinyEncoder(nn.Module):
    """Frame -> embedding: one strided convolution and global average pooling."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, dim, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)


@register_method("${name}")
class ${cls}(Method):
    summary = "K evenly spread frames, tiny CNN, nearest class mean (scaffold: edit me)"
    params = {
        "k": Param(4, "frames looked at per video: the compute budget", low=1),
        "size": Param(32, "side of the frames fed to the encoder, in pixels", low=8),
        "dim": Param(16, "embedding size", low=1),
    }
    budget_param = "k"
    dynamic = False  # k encoder runs per video (fewer only for videos shorter than k frames)
    selection_unit = "frame"

    def __init__(self, ctx: TrialContext, **params: Any):
        super().__init__(ctx, **params)
        torch.manual_seed(ctx.seed)
        self.encoder = TinyEncoder(self.p["dim"]).to(ctx.device).eval()
        self.class_means: torch.Tensor | None = None

    def components(self) -> dict[str, Component]:
        size, device = self.p["size"], self.ctx.device
        return {"encoder": Component(
            module=self.encoder,
            make_inputs=lambda: (torch.zeros(1, 3, size, size, device=device),),  # one frame per run
            role="recognition",
            config={"method": "${name}", "dim": self.p["dim"], "size": size},
        )}

    @torch.no_grad()
    def embed(self, video: Any) -> tuple[torch.Tensor, list[int]]:
        frames, indices = read_frames(video.path, self.p["k"], self.p["size"])
        return self.encoder(frames.to(self.ctx.device)).mean(dim=0).cpu(), indices

    def fit(self, train: Sequence[Any]) -> None:
        num_classes = self.ctx.dataset.num_classes
        sums, counts = torch.zeros(num_classes, self.p["dim"]), torch.zeros(num_classes)
        for video in train:
            embedding, _ = self.embed(video)
            for label in video.labels:  # one label, or several for multi-label datasets
                sums[label] += embedding
                counts[label] += 1
        self.class_means = sums / counts.clamp(min=1).unsqueeze(1)

    def predict(self, video: Any) -> Prediction:
        assert self.class_means is not None, "fit() first"
        embedding, indices = self.embed(video)
        distances = torch.cdist(embedding[None], self.class_means)[0]
        if getattr(self.ctx.dataset, "multilabel", False):
            scores = torch.exp(-distances)  # an independent score per class
        else:
            scores = torch.softmax(-distances, dim=0)
        return Prediction(scores=scores.numpy(), usage=Usage({"encoder": len(indices)}), selected=indices)
''')

TEST_TEMPLATE = Template('''\
"""Tests of the ${name} method plugin: it registers with its declared params, and learns to tell
dark videos from bright ones on tiny real mp4 files that the test writes (no dataset needed).

Run: ``python -m pytest test_${name}.py -q``
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from harness.data.dataset import VideoRecord
from harness.method import Prediction, TrialContext
from harness.params import resolve_params
from harness.registry import METHODS, load_plugin_file
from harness.stages import StageStore

PLUGIN = Path(__file__).with_name("${name}.py")


def write_video(path: Path, brightness: int, num_frames: int = 12, side: int = 32) -> None:
    """A real mp4 of noisy frames around one brightness (PyAV's built-in mpeg4 encoder)."""
    rng = np.random.default_rng(brightness)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for _ in range(num_frames):
            pixels = np.clip(brightness + rng.integers(-20, 20, (side, side, 3)), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class TinyDataset:
    """An in-memory stand-in for a ``VideoDataset``: class 0 = dark videos, class 1 = bright ones."""

    multilabel = False
    class_names = ["dark", "bright"]
    num_classes = 2

    def __init__(self, root: Path):
        self.records: dict[str, list[VideoRecord]] = {"train": [], "test": []}
        for split, count in (("train", 2), ("test", 2)):
            for i in range(count):
                for label, brightness in ((0, 40 + 10 * i), (1, 200 - 10 * i)):
                    path = root / f"{split}_{label}_{i}.mp4"
                    write_video(path, brightness)
                    self.records[split].append(VideoRecord(f"{split}_{label}_{i}", str(path), (label,), num_frames=12))

    def split(self, name: str) -> list[VideoRecord]:
        return self.records[name]


@pytest.fixture(scope="module")
def method_class():
    load_plugin_file(PLUGIN)
    return METHODS.get("${name}")


@pytest.fixture
def method(method_class, tmp_path):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = TrialContext(seed=0, device=device, dataset=TinyDataset(tmp_path), backbone={"name": "none", "params": {}},
                       store=StageStore(tmp_path / "stages"), evaluation={}, workdir=tmp_path)
    return method_class(ctx, **resolve_params(method_class.params, {"k": 3}))


def test_registered_with_declared_params(method_class):
    assert method_class.name == "${name}"
    assert method_class.budget_param in method_class.params
    for name, param in method_class.params.items():
        assert param.doc, f"param {name} needs a doc line"
        assert param.check(param.default) is None, f"default of {name} fails its own check"


def test_fit_then_predict_tiny_videos(method):
    dataset = method.ctx.dataset
    method.fit(dataset.split("train"))
    for video in dataset.split("test"):
        prediction = method.predict(video)
        assert isinstance(prediction, Prediction)
        assert prediction.scores.shape == (dataset.num_classes,)
        assert prediction.scores.sum() == pytest.approx(1.0, abs=1e-5)
        assert int(prediction.scores.argmax()) == video.labels[0], video.video_id
        assert prediction.selected == [2, 6, 10]  # k=3: the centres of 3 equal bins of 12 frames
        assert prediction.usage.total("encoder") == 3
        assert {c for c, _, _ in prediction.usage.items()} <= set(method.components())


def test_components_run_on_their_example_inputs(method):
    for name, component in method.components().items():
        with torch.no_grad():
            output = component.module(*component.make_inputs())
        assert output.shape[0] == 1, name
''')


PYPROJECT_TEMPLATE = Template("""\
# ${name}: a skimbench method plugin, packaged (scaffolded by `skimbench new-method ${name} --package`).
# `pip install -e .` here registers it through the entry point below: `skimbench plugins methods ${name}`.
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "${dist}"
version = "0.1.0"
description = "${name}: a skimbench method plugin"
requires-python = ">=3.10"
dependencies = ["skimbench"]

[project.entry-points."skimbench.methods"]
${name} = "${name}"

[tool.setuptools]
py-modules = ["${name}"]
""")


class ScaffoldError(ValueError):
    """A method name that cannot be scaffolded (one-line message for the CLI)."""


def class_name(name: str) -> str:
    """``my_sampler`` -> ``MySampler``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Method"


def check_method_name(name: str) -> None:
    """A method name becomes a module file and a registry key: it must be a plain identifier that
    does not shadow an importable module (``random.py`` next to the test would hide ``random``)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or keyword.iskeyword(name):
        raise ScaffoldError(f"method name {name!r} must be a Python identifier (letters, digits, '_'; not a keyword)")
    if name.startswith("test"):
        raise ScaffoldError(f"method name {name!r} must not start with 'test' (pytest would collect the module)")
    try:
        taken = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        taken = True
    if taken:
        raise ScaffoldError(f"method name {name!r} would shadow the importable module '{name}': choose another name")
    from harness.registry import METHODS

    if name in METHODS:
        raise ScaffoldError(f"method name {name!r} is already registered by {METHODS.origin(name)}")


def distribution_name(name: str) -> str:
    """``my_sampler`` -> ``skimbench-my-sampler`` (the package's folder and its name on an index)."""
    return "skimbench-" + name.replace("_", "-").lower()


def scaffold_method(name: str, dest_dir: str | Path = ".", package: bool = False) -> list[Path]:
    """Write ``NAME.py`` and ``test_NAME.py`` into ``dest_dir`` (with ``package``: into
    ``dest_dir/skimbench-NAME/`` with a ``pyproject.toml``); refuse to overwrite any of them.
    Raises ``ScaffoldError`` (a ``ValueError``) for a bad name and ``FileExistsError`` when a file is already there."""
    check_method_name(name)
    dest = Path(dest_dir) / distribution_name(name) if package else Path(dest_dir)
    files = {dest / f"{name}.py": METHOD_TEMPLATE, dest / f"test_{name}.py": TEST_TEMPLATE}
    if package:
        files[dest / "pyproject.toml"] = PYPROJECT_TEMPLATE
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)}")
    dest.mkdir(parents=True, exist_ok=True)
    for path, template in files.items():
        path.write_text(template.substitute(name=name, cls=class_name(name), dist=distribution_name(name)))
    return list(files)
