"""The built-in benchmark: determinism, ground truth, variants, and the generic read-back path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.data import coverage, synthetic
from harness.data.decoding import open_video
from harness.registry import DATASETS

KNOBS = {"num_train": 6, "num_test": 3}  # a small slice of `tiny` keeps the test fast


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    a, _ = synthetic.make("tiny", "longrange", seed=3, root=str(tmp_path_factory.mktemp("a")), **KNOBS)
    b, _ = synthetic.make("tiny", "longrange", seed=3, root=str(tmp_path_factory.mktemp("b")), **KNOBS)
    return a, b


def test_same_seed_same_annotations_and_frames(copies, tmp_path):
    a, b = copies
    for name in ("train.json", "test.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    doc = json.loads((a / "train.json").read_text())
    for entry in doc["videos"]:
        fa = open_video(a / entry["path"]).get_batch(range(48))
        fb = open_video(b / entry["path"]).get_batch(range(48))
        assert np.array_equal(fa, fb)
    parallel, _ = synthetic.make("tiny", "longrange", seed=3, root=str(tmp_path / "p"), workers=2, **KNOBS)
    for name in ("train.json", "test.json", "videos/train/train_00004.mp4"):
        assert (parallel / name).read_bytes() == (a / name).read_bytes()  # worker processes change nothing
    other, _ = synthetic.make("tiny", "longrange", seed=4, root=str(tmp_path), **KNOBS)
    assert (other / "train.json").read_bytes() != (a / "train.json").read_bytes()


def test_relevant_frames_contain_the_actor(copies):
    a, _ = copies
    alphas, targets = synthetic._digits(12)
    for entry in json.loads((a / "train.json").read_text())["videos"]:
        relevance = np.array([int(c) for c in entry["relevance"]])
        frames = open_video(a / entry["path"]).get_batch(range(entry["num_frames"])).astype(float)
        assert len(relevance) == 48 and relevance.sum() == len(entry["actor_xy"]) > 0
        assert relevance.reshape(-1, 4).std(1).max() == 0  # segments are whole clips of 4 frames
        for t, x, y in entry["actor_xy"]:
            assert relevance[t] == 1
            rows, cols = (y + np.arange(12)) % 32, (x + np.arange(12)) % 32
            patch = frames[t][np.ix_(rows, cols)].mean(-1)
            # the digit's strokes are white (255) over footage dimmed to at most 128
            ink = np.sort(patch.ravel())[-12:]
            assert ink.mean() > 180, (entry["id"], t)
        # the labels are the ordered motions of the informative segments
        motions = [seg[2] for seg in entry["segments"]]
        assert entry["labels"] == [">".join(motions)] and len(set(motions)) == 2


def test_actor_moves_in_the_labelled_direction(copies):
    a, _ = copies
    for entry in json.loads((a / "test.json").read_text())["videos"]:
        xy = {t: (x, y) for t, x, y in entry["actor_xy"]}
        for start, end, motion in entry["segments"]:
            t0, t1 = int(round(start * synthetic.FPS)), int(round(end * synthetic.FPS)) - 1
            dx = (xy[t1][0] - xy[t0][0] + 16) % 32 - 16
            dy = (xy[t1][1] - xy[t0][1] + 16) % 32 - 16
            expected = synthetic.DIRECTIONS[motion]
            assert np.sign(dx) == expected[0] and np.sign(dy) == expected[1]


def test_digit4_class_is_the_actor_digit_and_its_motion_is_random(monkeypatch):
    """``digit4``: every relevant frame shows a handwritten digit of the labelled class, and the motion
    varies within a class (it is not the label, as in move4)."""
    pasted = []
    real_paste = synthetic._paste
    monkeypatch.setattr(
        synthetic, "_paste", lambda frame, alpha, x, y: pasted.append(alpha) or real_paste(frame, alpha, x, y)
    )
    cfg = synthetic.resolve_config("digit4", "tiny")
    alphas, targets = synthetic._digits(12)
    motions = {label: set() for label in range(4)}
    for i in range(16):
        label = i % 4
        pasted.clear()
        _, entry = synthetic.make_video(cfg, label, np.random.default_rng([5, i]))
        assert entry["labels"] == [str(label)] and synthetic.class_names("digit4", 1)[label] == str(label)
        actor = [a for a in pasted if any(np.array_equal(a, alphas[j]) for j in np.flatnonzero(targets == label))]
        assert len(actor) == len(entry["actor_xy"]) > 0  # each relevant frame pastes one digit of the class
        motions[label] |= {segment[2] for segment in entry["segments"]}
    assert all(len(m) > 1 for m in motions.values()), motions


def test_dataset_reads_back_through_the_generic_loader(tmp_path):
    ds = DATASETS.get("skim-digits")(variant="multilabel", size="tiny", root=str(tmp_path), num_frames=32)
    assert ds.multilabel and ds.class_names == list(synthetic.PRIMITIVES)
    train, test = ds.split("train"), ds.split("test")
    assert len(train) == 24 and len(test) == 12
    record = train[0]
    assert record.num_frames == 32 and len(record.relevance) == 32 and record.fps == synthetic.FPS
    assert set(record.labels) == {ds.class_names.index(m) for m in record.meta["segment_labels"]}
    assert len(open_video(record.path)) == 32
    assert len(ds.manifest_hash()) == 16
    move4 = DATASETS.get("skim-digits")(variant="move4", size="tiny", root=str(tmp_path), num_frames=32)
    assert move4.num_classes == 4 and not move4.multilabel
    assert (
        DATASETS.get("skim-digits")(variant="longrange", num_segments=3, size="tiny", root=str(tmp_path)).num_classes
        == 24
    )
    with pytest.raises(ValueError):
        synthetic.resolve_config("longrange", "tiny", num_frames=30)


def test_small_size_budget():
    cfg = synthetic.resolve_config("longrange", "small")
    assert cfg["resolution"] == 32 and 96 <= cfg["num_frames"] <= 128 and cfg["num_frames"] % 4 == 0
    assert (cfg["num_train"], cfg["num_test"]) == (240, 1000)  # 1000 test videos: a 95% interval of about +-3 points
    full = synthetic.resolve_config("move4", "full")
    assert full["resolution"] == 112 and full["num_frames"] >= 300 and full["num_train"] + full["num_test"] >= 2000


def _generate_in_a_process(root, threads, workers):
    """``skimbench data make`` in a fresh process with ``threads`` BLAS/OpenMP threads: {file: bytes}, manifest hash."""
    env = {
        **os.environ,
        **{name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    command = [
        sys.executable,
        "-m",
        "harness.data.commands",
        "data",
        "make",
        "skim-digits",
        "--size",
        "tiny",
        "--variant",
        "move4",
        "--root",
        str(root),
        "--workers",
        str(workers),
        "--param",
        "num_train=8",
        "--param",
        "num_test=4",
    ]
    subprocess.run(command, env=env, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
    (folder,) = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return files, DATASETS.get("generic")(root=str(folder), train="train.json", test="test.json").manifest_hash()


def test_generation_is_byte_identical_across_processes_and_threads(tmp_path):
    one, manifest_one = _generate_in_a_process(tmp_path / "one", threads=1, workers=1)
    two, manifest_two = _generate_in_a_process(tmp_path / "two", threads=2, workers=2)
    assert len(one) == 8 + 4 + 3 and sorted(one) == sorted(two)
    differing = [name for name in one if one[name] != two[name]]
    assert not differing, f"files differ between two generations: {differing}"
    assert manifest_one == manifest_two


def test_informative_clips_are_placed_uniformly(tmp_path):
    """Every clip position is informative equally often (move4), so no fixed rule is favoured: the
    centre clip is not (it was in 92% of move4 videos when the segment could not wrap)."""
    for variant in ("move4", "multilabel"):
        cfg = synthetic.resolve_config(variant, "small")
        clips = cfg["num_frames"] // synthetic.CLIP_LEN
        informative = np.zeros((4000, clips))
        for i in range(len(informative)):
            segments, gaps, shift = synthetic.layout(cfg, np.random.default_rng([0, 1, i]))
            pieces = np.ravel(np.c_[gaps[:-1], segments])  # gap, segment, gap, segment, ..., then the last gap
            row = np.concatenate([np.repeat([0, 1] * len(segments), pieces), np.zeros(gaps[-1])])
            informative[i] = np.roll(row, shift)
        share = informative.mean(0)  # how often each clip position is informative
        expected = round(cfg["informative_fraction"] * clips) / clips
        assert np.abs(share - expected).max() < 0.04, (variant, share.round(2))  # 4000 draws: sd 0.008


def test_coverage_of_fixed_rules_on_hand_made_ground_truth():
    # 4 clips of 4 frames; video 1: only the last clip informative, video 2: the two middle clips
    rows = coverage.coverage_rows(["0000000000001111", "0000111111110000"], ks=[1, 2])
    got = {(r["rule"], r["k"]): (r["videos_hit"], r["informative_share"], r["informative_seen"]) for r in rows}
    assert got[("uniform (centres)", 1)] == (0.5, 0.5, 0.25)  # clip 2: misses video 1, 1 of 2 in video 2
    assert got[("uniform (endpoints)", 2)] == (0.5, 0.25, 0.5)  # clips 0 and 3: the last clip is included
    assert got[("uniform (centres)", 2)] == (1.0, 0.5, 0.75)  # clips 1 and 3
    hit, share, seen = got[("random", 2)]  # exact: 1 - C(3,2)/C(4,2) = 0.5 and 1 - C(2,2)/C(4,2) = 5/6
    assert hit == pytest.approx((0.5 + 5 / 6) / 2) and share == pytest.approx(0.375) and seen == pytest.approx(0.5)
    assert got[("dense", 4)] == (1.0, 0.375, 1.0)
