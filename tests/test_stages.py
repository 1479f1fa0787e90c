"""The stage store: one computation per key, atomic outputs, safe under concurrency."""

import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from harness.hashing import content_hash
from harness.stages import StageStore


def _compute_slowly(root: str, counter: str, deps: dict) -> str:
    store = StageStore(root)

    def compute(out: Path) -> None:
        with open(counter, "a") as f:
            f.write("computed\n")
        time.sleep(0.5)  # long enough for the other process to arrive while we hold the lock
        (out / "value.json").write_text(json.dumps(deps))

    path = store.get_or_compute("slow", deps, compute)
    return (path / "value.json").read_text()


def test_concurrent_processes_compute_a_stage_once(tmp_path):
    counter = tmp_path / "counter.txt"
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        outputs = pool.starmap(_compute_slowly, [(str(tmp_path / "store"), str(counter), {"a": 1})] * 2)
    assert counter.read_text().count("computed") == 1
    assert outputs[0] == outputs[1] == json.dumps({"a": 1})


def test_key_ignores_dict_order_and_reruns_reuse(tmp_path):
    store = StageStore(tmp_path)
    calls = []

    def compute(out: Path) -> None:
        calls.append(1)
        (out / "x").write_text("1")

    first = store.get_or_compute("s", {"a": 1, "b": [1, 2]}, compute)
    second = StageStore(tmp_path).get_or_compute("s", {"b": [1, 2], "a": 1}, compute)
    assert first == second and len(calls) == 1
    assert store.get_or_compute("s", {"a": 2, "b": [1, 2]}, compute) != first and len(calls) == 2
    assert content_hash({"x": 1, "y": 2}) == content_hash({"y": 2, "x": 1})


def test_failed_compute_leaves_nothing_readable_and_is_retried(tmp_path):
    store = StageStore(tmp_path)

    def broken(out: Path) -> None:
        (out / "half").write_text("partial")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        store.get_or_compute("s", {"k": 1}, broken)
    assert not store.exists("s", {"k": 1})
    assert list((tmp_path / "s").glob("*/half")) == []  # the partial output was not renamed into place

    path = store.get_or_compute("s", {"k": 1}, lambda out: (out / "ok").write_text("done"))
    assert (path / "ok").read_text() == "done" and json.loads((path / "meta.json").read_text())["deps"] == {"k": 1}
