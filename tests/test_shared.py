"""The shared stages on the real tiny benchmark: trained once for several methods, tables that agree
with a live forward, 2-D heavy backbones, and the brute-force FLOP proof of the baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.compute import verify_accounting
from harness.params import resolve_params
from harness.registry import BACKBONES, METHODS
from harness.settings import EVALUATION_PARAMS
from harness.stages import StageStore
from harness.toolkit.clips import frames_to_clips, num_timesteps, video_clips
from harness.toolkit.stages import heavy_classifier, timestep_table
from harness.toolkit.training import epoch_order
from harness.trial import build_context

R3D = {"name": "r3d_18", "params": {"width": 8, "input_size": 32}}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is faster on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


def make_method(
    root: Path,
    store: StageStore,
    name: str,
    params: dict | None = None,
    backbone: dict = R3D,
    seed: int = 0,
    evaluation: dict | None = None,
):
    """A method built the way a trial builds it, on skim-digits tiny (longrange), 2 heavy epochs."""
    from harness.registry import DATASETS

    data = {"size": "tiny", "variant": "longrange", "root": str(root)}
    cfg = {
        "dataset": {"name": "skim-digits", "params": resolve_params(DATASETS.get("skim-digits").params, data)},
        "backbone": {
            "name": backbone["name"],
            "params": resolve_params(BACKBONES.get(backbone["name"]).params, backbone["params"]),
        },
        "method": {"name": name, "params": resolve_params(METHODS.get(name).params, params or {})},
        "seed": seed,
        "evaluation": resolve_params(EVALUATION_PARAMS, {"device": "cpu", "heavy_epochs": 2, **(evaluation or {})}),
    }
    ctx, method = build_context(cfg, store, root.parent / "work", log=lambda _: None)
    method.fit(ctx.dataset.split("train"))
    return ctx, method


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> StageStore:
    return StageStore(tmp_path_factory.mktemp("stages"))


def _computed(store: StageStore, name: str) -> list[str]:
    folder = store.root / name
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_heavy_classifier_and_tables_are_computed_once_for_several_methods(tiny_root, store):
    ctx_u, uniform = make_method(tiny_root, store, "uniform", {"k": 2})
    ctx_o, oracle = make_method(tiny_root, store, "oracle", {"k": 2})
    ctx_d, _ = make_method(tiny_root, store, "dense")
    for key in ("heavy_classifier", "heavy_timesteps_test"):
        assert ctx_u.stages_used[key] == ctx_o.stages_used[key] == ctx_d.stages_used[key]
        assert _computed(store, key) == [ctx_u.stages_used[key]]
    assert "light_network" not in ctx_u.stages_used  # baselines never pay for the cheap network
    # another seed is another heavy classifier
    ctx_s, _ = make_method(tiny_root, store, "uniform", {"k": 2}, seed=1)
    assert ctx_s.stages_used["heavy_classifier"] != ctx_u.stages_used["heavy_classifier"]
    assert len(_computed(store, "heavy_classifier")) == 2


def test_timestep_table_matches_a_live_forward_and_the_frame_bank(tiny_root, store):
    ctx, method = make_method(tiny_root, store, "dense")
    table = timestep_table(ctx, "test", light={"light_width": 0.25, "light_size": 16})
    bank = ctx.frames("test")
    assert table.video_ids == bank.video_ids
    assert list(table.lengths) == [num_timesteps(n, 4) for n in bank.lengths]
    assert table.mask.sum() == table.lengths.sum()
    net = heavy_classifier(ctx)
    row = 3
    with torch.no_grad():
        live = net(video_clips(ctx, "test", table.video_ids[row]))
    assert np.allclose(live.numpy(), table.heavy_logits[row, : table.lengths[row]], atol=1e-4)
    assert table.frame_start[row, 2] == 8 and table.frame_end[row, 2] == 12
    assert table.heavy_frames(row, [2, 0]) == [0, 1, 2, 3, 8, 9, 10, 11]
    # the cheap network's features come on demand, one per timestep
    assert table.light_features.shape[:2] == table.heavy_logits.shape[:2]


def test_a_2d_heavy_backbone_sees_the_middle_frame(tiny_root, store):
    resnet = {"name": "resnet18", "params": {"width": 8, "input_size": 32}}
    ctx, method = make_method(tiny_root, store, "uniform", {"k": 3}, backbone=resnet)
    table = timestep_table(ctx, "test")
    assert table.heavy_kind == "2d" and table.heavy_frames(0, [0, 2]) == [2, 10]
    record = ctx.dataset.split("test")[0]
    prediction = method.predict(record)
    assert prediction.selected == [2 + 4 * t for t in prediction.extras["timesteps"]]
    clips = frames_to_clips(ctx.frames("test").get(record.video_id), 4)
    net = heavy_classifier(ctx)
    with torch.no_grad():
        direct = net.backbone(clips[:, :, 2])  # the 2-D backbone on the middle frames
    assert np.allclose(direct.numpy(), table.heavy_logits[table.row(record.video_id), : len(clips)], atol=1e-4)


@pytest.mark.parametrize(
    "name,params",
    [("uniform", {"k": 2}), ("random", {"k": 3}), ("dense", {}), ("oracle", {"k": 2}), ("uniform", {"k": 50})],
)
def test_baseline_accounting_matches_brute_force(tiny_root, store, name, params):
    ctx, method = make_method(tiny_root, store, name, params)
    records = ctx.dataset.split("test")[:10]
    pairs = verify_accounting(method, records)
    assert len(pairs) == 10
    for accounted, brute in pairs:
        assert brute > 0 and abs(accounted - brute) <= 0.01 * brute, (name, accounted, brute)


def test_epoch_order_takes_at_most_n_clips_of_every_video():
    rows = np.array([0] * 9 + [1] * 2 + [2] * 5)
    rng = np.random.default_rng(0)
    first = epoch_order(rows, 3, rng)
    assert np.bincount(rows[first]).tolist() == [3, 2, 3] and len(set(first.tolist())) == 8
    second = epoch_order(rows, 3, rng)
    assert sorted(first.tolist()) != sorted(second.tolist())  # a new draw every epoch
    assert sorted(epoch_order(rows, None, rng).tolist()) == list(range(16))


def test_stage_keys_do_not_depend_on_where_the_dataset_lies(tiny_root, store, tmp_path):
    import shutil

    ctx_a, _ = make_method(tiny_root, store, "uniform", {"k": 2})
    moved = tmp_path / "elsewhere"
    shutil.copytree(tiny_root, moved)
    ctx_b, _ = make_method(moved, store, "uniform", {"k": 2})
    assert ctx_a.stages_used["heavy_classifier"] == ctx_b.stages_used["heavy_classifier"]


def test_a_split_over_the_budget_streams_and_gives_the_frame_banks_tables(tiny_root, store, tmp_path):
    """frame_bank_gb 0: nothing is decoded into a frame bank; the heavy classifier trains through the
    streaming loader (DataLoader workers decoding the files) and its sharded table equals the bank path's."""
    from harness.data.streaming import StreamedFrames

    ctx_bank, _ = make_method(tiny_root, store, "dense")
    streamed_store = StageStore(tmp_path / "stages")
    ctx, _ = make_method(tiny_root, streamed_store, "dense", evaluation={"frame_bank_gb": 0})
    assert isinstance(ctx.frames("train"), StreamedFrames) and isinstance(ctx.frames("test"), StreamedFrames)
    assert not (streamed_store.root / "frames").exists()  # no split was decoded whole
    assert ctx.stages_used["heavy_classifier"] == ctx_bank.stages_used["heavy_classifier"]  # same frames, same key
    bank_table, table = timestep_table(ctx_bank, "test"), timestep_table(ctx, "test")
    assert isinstance(table.heavy_logits, np.memmap)  # on disk, not in memory
    assert table.video_ids == bank_table.video_ids and list(table.lengths) == list(bank_table.lengths)
    assert np.allclose(table.heavy_logits, bank_table.heavy_logits, atol=1e-4)
