"""The LightNet's width and input size come from the spec: one parameter table shared by the
methods that use it, part of the LightNet's stage key, and the cost regime they set (per-timestep
GFLOPs of the LightNet against the heavy network), counted with fvcore."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from harness.backbones import build_backbone
from harness.compute import count_flops
from harness.registry import METHODS
from harness.toolkit.stages import LIGHT_PARAMS, light_config, light_deps, timestep_gflops

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
LIGHT_USERS = ("videoepitoma", "liteeval")


def _quickstart():
    spec = yaml.safe_load(QUICKSTART.read_text())
    heavy = spec["backbones"][0]
    clip_len = int((spec.get("evaluation") or {}).get("clip_len", 4))
    return spec, heavy, clip_len


@pytest.mark.parametrize("name", LIGHT_USERS)
def test_every_lightnet_method_declares_the_shared_light_params(name):
    declared = METHODS.get(name).params
    assert {k: declared[k] for k in LIGHT_PARAMS} == LIGHT_PARAMS


def test_light_width_and_size_are_part_of_the_light_stage_key():
    class Ctx:  # what light_deps reads of a trial context
        evaluation = {"light_backbone": "mobilenet_v2", "clip_len": 4, "heavy_epochs": 2, "clips_per_video": 4}
        seed, dataset = 0, type("D", (), {"p": {"variant": "move4"}, "name": "skim-digits"})()

        def frames(self, split):
            return type("Bank", (), {"key": "frames-key"})()

        def frames_deps(self, split):
            return {"split": split}

    base = light_deps(Ctx(), {"light_width": 1.0, "light_size": 16})
    assert light_deps(Ctx(), {"light_width": 0.25, "light_size": 16}) != base
    assert light_deps(Ctx(), {"light_width": 1.0, "light_size": 24}) != base
    longer = type("Longer", (Ctx,), {"evaluation": {**Ctx.evaluation, "clips_per_video": 8}})
    assert light_deps(longer(), {"light_width": 1.0, "light_size": 16}) != base  # the recipe is in the key
    assert light_config("mobilenet_v2", {"light_width": 0.25, "light_size": 16})["params"]["width_mult"] == 0.25


def test_cost_regime_ratio_from_fvcore_counts():
    spec, heavy, clip_len = _quickstart()
    side = int(heavy["params"]["input_size"])
    for entry in spec["methods"]:
        if entry["name"] not in LIGHT_USERS:
            continue
        light = {**{k: p.default for k, p in LIGHT_PARAMS.items()}, **entry.get("params", {})}
        cost = timestep_gflops(heavy, light, clip_len=clip_len, height=side, width=side, num_classes=4)
        # the same numbers as fvcore on the bare networks: heavy on one clip, MobileNetV2 on one small frame
        heavy_net = build_backbone(heavy["name"], heavy["params"], 4).eval()
        light_net = build_backbone("mobilenet_v2", {"width_mult": light["light_width"]}, 4).eval()
        size = light["light_size"]
        assert cost["heavy"] == pytest.approx(count_flops(heavy_net, (torch.zeros(1, 3, clip_len, side, side),)).gflops)
        bare = count_flops(light_net, (torch.zeros(1, 3, size, size),)).gflops
        assert bare <= cost["light"] <= bare + 3 * side * side / 1e9  # plus the resize to light_size
        assert cost["light_to_heavy"] == pytest.approx(cost["light"] / cost["heavy"])
        # the papers' regime: the LightNet at most 1/50 of the heavy network per timestep
        assert cost["light_to_heavy"] <= 1 / 50, (entry["name"], light, cost)
