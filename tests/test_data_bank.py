"""Frame bank (bad-data policy on really corrupted files), manifest, cached features, data commands."""

import json
import shutil

import numpy as np
import pytest
import torch

from harness.data.bank import collate_videos, load_frame_bank
from harness.data.commands import main as data_main
from harness.data.encoding import write_video
from harness.data.features import cached_array_stage, weights_hash
from harness.registry import DATASETS
from harness.stages import StageStore


def _video(path, n, h=32, w=32, value=100, faststart=False):
    frames = np.full((n, h, w, 3), value, np.uint8)
    frames[:, :, : w // 2] = 220  # left half bright: survives resizing and compression
    write_video(path, frames, fps=10, faststart=faststart)


@pytest.fixture()
def dataset_dir(tmp_path):
    root = tmp_path / "ds"
    _video(root / "v/a.mp4", 8)
    _video(root / "v/b.mp4", 12)
    _video(root / "v/c.mp4", 5, h=64, w=48)  # another resolution: resized to the first one's
    _video(root / "v/good_for_truncation.mp4", 40, value=30)
    data = (root / "v/good_for_truncation.mp4").read_bytes()
    (root / "v/trunc.mp4").write_bytes(data[: len(data) // 2])
    (root / "v/zero.mp4").write_bytes(b"")
    noise = (np.random.default_rng(0).random((40, 32, 32, 3)) * 255).astype(np.uint8)
    write_video(root / "v/faststart.mp4", noise, faststart=True)
    data = (root / "v/faststart.mp4").read_bytes()
    (root / "v/cut.mp4").write_bytes(data[: len(data) // 2])  # opens (index first), fails while decoding
    (root / "v/text.mp4").write_text("definitely not a video\n" * 20)
    entries = [
        {"path": "v/a.mp4", "labels": ["x"], "relevance": "00111100"},
        {"path": "v/cut.mp4", "labels": ["x"]},
        {"path": "v/trunc.mp4", "labels": ["y"]},
        {"path": "v/b.mp4", "labels": ["y"]},
        {"path": "v/zero.mp4", "labels": ["x"]},
        {"path": "v/missing.mp4", "labels": ["x"]},
        {"path": "v/text.mp4", "labels": ["y"]},
        {"path": "v/c.mp4", "labels": ["x", "y"]},
    ]
    (root / "train.json").write_text(json.dumps({"videos": entries}))
    (root / "test.json").write_text(json.dumps({"videos": entries[:1]}))
    return root


def _dataset(root):
    return DATASETS.get("generic")(root=str(root), multilabel=True)


def test_bank_skips_bad_videos_and_pads_with_a_mask(dataset_dir, tmp_path):
    store = StageStore(tmp_path / "stages")
    calls = []
    bank = load_frame_bank(_dataset(dataset_dir), "train", store, progress=lambda d, n: calls.append(d))
    assert bank.video_ids == ["v/a", "v/b", "v/c"]
    assert dict(bank.skipped) == {
        "v/trunc": "truncated",
        "v/zero": "zero bytes",
        "v/missing": "missing",
        "v/text": "undecodable",
        "v/cut": "truncated",
    }
    assert bank.frames.shape == (3, 12, 32, 32, 3) and bank.lengths.tolist() == [8, 12, 5]
    assert bank.labels == [(0,), (1,), (0, 1)]
    mask = bank.mask()
    assert mask.sum(1).tolist() == [8, 12, 5] and not mask[0, 8:].any()
    assert bank.frames[0, 8:].max() == 0 and bank.frames[2, 5:].max() == 0  # padding is zeros
    a = bank.video("v/a")
    assert a.dtype == torch.uint8 and a.shape == (8, 32, 32, 3)
    assert a[:, :, :12].float().mean() > 190 and a[:, :, 20:].float().mean() < 130
    assert bank.relevance[0, :8].tolist() == [0, 0, 1, 1, 1, 1, 0, 0] and bank.relevance[1].sum() == 0
    c = bank.video("v/c")
    assert c.shape == (5, 32, 32, 3) and c[:, :, :12].float().mean() > 190  # resized and centre-cropped
    with pytest.raises(KeyError, match="skipped: missing"):
        bank.index("v/missing")
    assert calls  # decoded once...
    calls.clear()
    again = load_frame_bank(_dataset(dataset_dir), "train", store, progress=lambda d, n: calls.append(d))
    assert not calls and again.key == bank.key and isinstance(again.frames, np.memmap)  # ...then memory-mapped


def test_bank_size_and_max_frames(dataset_dir, tmp_path):
    bank = load_frame_bank(
        _dataset(dataset_dir), "train", StageStore(tmp_path / "s"), size=16, max_frames=4, backend="pyav"
    )
    assert bank.frames.shape == (3, 4, 16, 16, 3) and bank.lengths.tolist() == [4, 4, 4]
    assert bank.relevance[0].tolist() == [0, 1, 1, 0]  # frames 1, 3, 5, 7 of "00111100"
    assert bank.fps[0] == pytest.approx(5.0)


def test_collate_videos():
    videos = [torch.ones(3, 2, 2, 3, dtype=torch.uint8), torch.full((5, 2, 2, 3), 2, dtype=torch.uint8)]
    padded, mask = collate_videos(videos)
    assert padded.shape == (2, 5, 2, 2, 3) and mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert padded[0, 3:].sum() == 0 and padded[1].min() == 2


def test_manifest_tracks_content_not_location(dataset_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SKIMBENCH_CACHE", str(tmp_path / "cache"))
    first = _dataset(dataset_dir).manifest_hash()
    assert len(first) == 16 and list((tmp_path / "cache/manifests").glob("*.json"))
    copy = tmp_path / "copy"
    shutil.copytree(dataset_dir, copy)
    assert _dataset(copy).manifest_hash() == first
    _video(copy / "v/b.mp4", 13)  # a re-encoded video
    assert _dataset(copy).manifest_hash() != first
    (copy / "v/b.mp4").unlink()
    shutil.copy(dataset_dir / "v/b.mp4", copy / "v/b.mp4")
    (copy / "test.json").write_text((copy / "test.json").read_text().replace('"x"', '"y"'))  # an edited annotation
    assert _dataset(copy).manifest_hash() != first


def test_cached_array_stage(tmp_path):
    store = StageStore(tmp_path / "stages")
    calls = []

    def compute():
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    deps = {"manifest": "abc", "backbone": {"name": "r"}, "weights": "w", "sampling": {"k": 4}, "preprocessing": {}}
    first = cached_array_stage(store, "features", deps, compute)
    second = cached_array_stage(store, "features", deps, compute)
    assert calls == [1] and isinstance(second, np.memmap) and np.array_equal(first, second)
    cached_array_stage(store, "features", {**deps, "weights": "w2"}, compute)
    assert calls == [1, 1]
    net = torch.nn.Linear(3, 2)
    h = weights_hash(net)
    with torch.no_grad():
        net.weight[0, 0] += 1
    assert weights_hash(net) != h


def test_data_check_and_make_commands(dataset_dir, tmp_path, capsys):
    code = data_main(
        [
            "data",
            "check",
            "generic",
            "--param",
            f"root={dataset_dir}",
            "--param",
            "multilabel=true",
            "--workers",
            "2",
            "--csv",
            str(tmp_path / "bad.csv"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "8 videos checked, 5 unreadable" in out
    for name, reason in [
        ("trunc.mp4", "truncated"),
        ("cut.mp4", "truncated"),
        ("zero.mp4", "zero bytes"),
        ("missing.mp4", "missing"),
        ("text.mp4", "undecodable"),
    ]:
        assert f"{name}: {reason}" in out
    assert len((tmp_path / "bad.csv").read_text().splitlines()) == 6
    assert (
        data_main(
            [
                "data",
                "make",
                "skim-digits",
                "--size",
                "tiny",
                "--root",
                str(tmp_path / "sd"),
                "--param",
                "num_train=2",
                "--param",
                "num_test=1",
            ]
        )
        == 0
    )
    assert "generated in" in capsys.readouterr().out
    good = tmp_path / "good"
    good.mkdir()
    _video(good / "a.mp4", 4)
    (good / "train.csv").write_text("path,label\na.mp4,z\n")
    (good / "test.csv").write_text("path,label\na.mp4,z\n")
    assert (
        data_main(
            [
                "data",
                "check",
                "generic",
                "--param",
                f"root={good}",
                "--param",
                "train=train.csv",
                "--param",
                "test=test.csv",
                "--full",
            ]
        )
        == 0
    )


def test_bank_of_only_unreadable_videos_is_empty_not_an_error(tmp_path):
    (tmp_path / "a.mp4").write_text("x")
    (tmp_path / "train.json").write_text(
        '{"videos": [{"path": "a.mp4", "labels": ["q"]}, {"path": "gone.mp4", "labels": ["q"]}]}'
    )
    (tmp_path / "test.json").write_text('{"videos": []}')
    bank = load_frame_bank(DATASETS.get("generic")(root=str(tmp_path)), "train", StageStore(tmp_path / "s"))
    assert len(bank) == 0 and bank.mask().shape == (0, 0)
    assert bank.skipped == [("a", "undecodable"), ("gone", "missing")]


def test_bank_itself_skips_videos_shorter_than_min_frames(dataset_dir, tmp_path):
    # a.mp4 has 8 frames, b.mp4 12, c.mp4 5: with min_frames=8 the bank keeps a and b and lists c as too short
    bank = load_frame_bank(_dataset(dataset_dir), "train", StageStore(tmp_path / "s"), min_frames=8)
    assert bank.video_ids == ["v/a", "v/b"] and bank.lengths.tolist() == [8, 12]
    assert dict(bank.skipped)["v/c"] == "too short"
    assert bank.frames.shape[0] == 2


def test_data_make_bad_knob_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    for knob, words in [
        ("num_frames=30", "num_frames must be a multiple of 4"),
        ("nope=3", "no generator knob(s) ['nope']"),
    ]:
        code = data_main(
            ["data", "make", "skim-digits", "--size", "tiny", "--root", str(tmp_path / "sd"), "--param", knob]
        )
        err = capsys.readouterr().err
        assert code == 2 and words in err and "Traceback" not in err and not (tmp_path / "sd").exists(), err
