"""The documented real-data path (docs/data.md, "Real datasets at scale") on a small generated Kinetics-400 copy:
official CSV layout, a local pretrained checkpoint with its sha256, streamed frames, sharded features."""

import json
from functools import partial

import numpy as np
import pytest
import torch
from conftest import skimbench, write_spec
from mlflow.tracking import MlflowClient

from harness.backbones import build_backbone
from harness.backbones.weights import build_with_weights, sha256_file
from harness.data.encoding import write_video
from harness.data.streaming import StreamedFrames, open_frames
from harness.features.shards import NetworkOnClips, extract
from harness.registry import DATASETS
from harness.stages import StageStore

CLASSES = ["abseiling", "air drumming", "juggling balls"]


def _kinetics_copy(root):
    (root / "annotations").mkdir(parents=True)
    rows = {"train": [], "validate": []}
    for i in range(9):
        split = "train" if i < 6 else "validate"
        label, ytid = CLASSES[i % 3], f"yt{i:09d}"[:11]
        rows[split].append(f'"{label}",{ytid},{10 * i},{10 * i + 10},{split},0')
        if i == 7:
            continue  # listed but never downloaded: skipped as "missing" and reported
        frames = (np.random.default_rng(i).random((12 + i, 40, 56, 3)) * 255).astype(np.uint8)
        folder = root / "train" / label if split == "train" else root / "val"
        write_video(folder / f"{ytid}_{10 * i:06d}_{10 * i + 10:06d}.mp4", frames, fps=10)
    for split, lines in rows.items():
        (root / f"annotations/{split}.csv").write_text(
            "label,youtube_id,time_start,time_end,split,is_cc\n" + "\n".join(lines) + "\n"
        )


def test_kinetics_copy_through_the_streaming_path(tmp_path, one_thread):
    _kinetics_copy(tmp_path / "k400")
    ds = DATASETS.get("kinetics400")(root=str(tmp_path / "k400"))
    assert ds.class_names == CLASSES
    pretrained = build_backbone("resnet18", {"width": 4}, 400)  # stands for a downloaded Kinetics-400 checkpoint
    torch.save({"state_dict": {"module." + k: v for k, v in pretrained.state_dict().items()}}, tmp_path / "r18.pth")
    backbone = {
        "name": "resnet18",
        "params": {"width": 4},
        "weights": {"path": str(tmp_path / "r18.pth"), "sha256": sha256_file(tmp_path / "r18.pth")},
    }
    store = StageStore(tmp_path / "stages")
    for split, expected, skipped in [("train", 6, []), ("test", 2, [("yt000000007_000070_000080", "missing")])]:
        frames = open_frames(ds, split, store, size=32, max_frames=16, budget_bytes=0)
        assert isinstance(frames, StreamedFrames) and len(frames) == expected and frames.skipped == skipped
        assert frames.get(frames.video_ids[0]).shape[1:] == (32, 32, 3)
        factory = NetworkOnClips(partial(build_with_weights, backbone, len(CLASSES)), clip_len=4)
        arrays = extract(tmp_path / f"features-{split}", frames, factory, shard_size=4)
        assert arrays.names == ["features", "logits"]
        assert arrays.lengths.tolist() == [int(n) // 4 for n in frames.lengths]
        assert arrays.get("logits", frames.video_ids[-1]).shape[1] == len(CLASSES)
    net = build_with_weights(backbone, len(CLASSES))
    assert torch.equal(net.stem[0].weight, pretrained.stem[0].weight)  # the pretrained body, a fresh 3-class head


def _spec(folder, root, weights):
    return write_spec(
        folder,
        "k400",
        f"""\
experiment: k400_resnet18
dataset: {{name: kinetics400, params: {{root: "{root}"}}}}
backbones:
  - name: resnet18
    params: {{width: 8}}
    weights: {{path: "{weights["path"]}", sha256: "{weights["sha256"]}"}}
methods: [{{name: uniform, params: {{k: 2}}}}]
evaluation: {{clip_len: 4, heavy_epochs: 1, frame_bank_gb: 0, views: {{clips: 2, crops: 3}}, batch_size: 2,
             latency_warmup: 0, latency_repeats: 1}}
resources: {{cpus: 1, gpus: 0}}
tracking: {{uri: "sqlite:///{folder}/mlflow.db"}}
output: "{folder}/results"
""",
    )


def test_a_kinetics_spec_with_a_local_checkpoint_runs_a_streamed_trial(tmp_path):
    """docs/data.md's steps: the spec's ``weights: {path, sha256}`` reaches the trial (its hash, not its
    path, in the shared stages' keys), the splits stream, and a wrong hash is one line, exit 2."""
    _kinetics_copy(tmp_path / "k400")
    torch.save(build_backbone("resnet18", {"width": 8}, 400).state_dict(), tmp_path / "r18.pth")
    weights = {"path": str(tmp_path / "r18.pth"), "sha256": sha256_file(tmp_path / "r18.pth")}
    run = skimbench("run", str(_spec(tmp_path, tmp_path / "k400", weights)), "--local", "--no-report", "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    stages = tmp_path / "results" / "stages"
    assert not (stages / "frames").exists()  # both splits streamed: nothing decoded whole
    (meta,) = (stages / "heavy_classifier").glob("*/meta.json")
    assert json.loads(meta.read_text())["deps"]["backbone"]["weights"] == weights["sha256"]
    assert (stages / "heavy_timesteps_test").is_dir()
    mlflow = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (trial,) = mlflow.search_runs(
        [mlflow.get_experiment_by_name("k400_resnet18").experiment_id],
        filter_string="tags.`skimbench.views` = '2 clips x 3 crops'",
    )
    assert trial.data.metrics["views"] == 6 and trial.data.tags["skimbench.view_rule"] == "mean_softmax"
    assert trial.data.metrics["gflops_per_view"] == pytest.approx(trial.data.metrics["gflops_per_video_mean"] / 6)
    bad = write_spec(tmp_path, "bad", _spec(tmp_path, tmp_path / "k400", {**weights, "sha256": "0" * 64}).read_text())
    run = skimbench("run", str(bad), "--local", "--no-report", "--quiet")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "sha256 mismatch" in run.stderr, run.stderr
