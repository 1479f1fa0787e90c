"""Pretrained weights: a local checkpoint saved here, hash-checked, key-mapped, loaded weights-only."""

import re

import pytest
import torch

from harness.backbones import build_backbone
from harness.backbones.weights import WeightsError, build_with_weights, load_weights, sha256_file, weights_deps


def _same(a, b, skip_head=False):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not (skip_head and k.startswith("head.")))


def _torchvision_layout(state):
    """Our ResNet keys written back in torchvision's names (conv1, bn1, layerN, fc), as its checkpoints are."""
    out = {}
    for key, value in state.items():
        key = key.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.").replace("head.", "fc.")
        key = re.sub(r"^stages\.(\d)\.blocks\.", lambda m: f"layer{int(m[1]) + 1}.", key)
        out[key] = value
    return out


def test_wrapped_ddp_checkpoint_with_another_class_count(tmp_path):
    source = build_backbone("resnet18", {"width": 4}, 400)
    path = tmp_path / "k400.pth"
    torch.save({"state_dict": {"module.backbone." + k: v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    cfg = {"name": "resnet18", "params": {"width": 4}, "weights": {"path": str(path), "sha256": sha256_file(path)}}
    model = build_with_weights(cfg, num_classes=5)
    assert _same(model, source, skip_head=True) and model.head.weight.shape == (5, 32)  # head dropped: 400 != 5
    same_classes = build_backbone("resnet18", {"width": 4}, 400)
    report = load_weights(same_classes, cfg["weights"])
    assert _same(same_classes, source) and not report.dropped_head


def test_torchvision_resnet_layout(tmp_path):
    source = build_backbone("resnet18", {"width": 4}, 10)
    path = tmp_path / "tv.pth"
    torch.save(_torchvision_layout(source.state_dict()), path)
    model = build_backbone("resnet18", {"width": 4}, 10)
    report = load_weights(model, {"path": str(path), "sha256": sha256_file(path)})
    assert _same(model, source) and report.renamed["layer1.0.conv1.weight"] == "stages.0.blocks.0.conv1.weight"
    assert report.renamed["fc.weight"] == "head.weight"


def test_hash_and_shape_mismatches_are_one_line_errors(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(build_backbone("resnet18", {"width": 8}, 10).state_dict(), path)
    digest = sha256_file(path)
    model = build_backbone("resnet18", {"width": 4}, 10)
    with pytest.raises(WeightsError, match=r"sha256 mismatch: expected 0+, file has") as err:
        load_weights(model, {"path": str(path), "sha256": "0" * 64})
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match=r"shape mismatch at 'stem.0.weight'") as err:
        load_weights(model, {"path": str(path), "sha256": digest})
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="need 'sha256' \\(this file's is " + digest):
        load_weights(model, {"path": str(path)})
    with pytest.raises(WeightsError, match="not found"):
        load_weights(model, {"path": str(tmp_path / "nope.pth"), "sha256": digest})
    full = build_backbone("resnet18", {"width": 4}, 10).state_dict()
    partial = {k: v for k, v in full.items() if "stages.3" not in k}
    torch.save(partial, tmp_path / "p.pth")
    with pytest.raises(WeightsError, match=r"lacks \d+ parameter\(s\) of the model, first 'stages.3"):
        load_weights(model, {"path": str(tmp_path / "p.pth"), "sha256": sha256_file(tmp_path / "p.pth")})


def test_code_in_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": build_backbone("resnet18", {"width": 4}, 10).state_dict(), "cfg": object()}, path)
    with pytest.raises(WeightsError, match="weights-only"):
        load_weights(build_backbone("resnet18", {"width": 4}, 10), {"path": str(path), "sha256": sha256_file(path)})


def test_the_stage_key_holds_the_hash_not_the_path(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(build_backbone("resnet18", {"width": 4}, 10).state_dict(), path)
    moved = tmp_path / "elsewhere.pth"
    moved.write_bytes(path.read_bytes())
    digest = sha256_file(path)
    assert weights_deps({"path": str(path), "sha256": digest}) == weights_deps({"path": str(moved), "sha256": digest})
    assert weights_deps(None) is None
