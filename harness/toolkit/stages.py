"""The shared stages of the selection family: the heavy clip classifier, the LightNet, per-timestep tables.

Every selection method and baseline of a grid must look through the *same* heavy classifier, or
their accuracy differences would measure training noise instead of selection. So the heavy
classifier, the LightNet and their per-timestep outputs are stages (``ctx.stage``): trained or
computed once per (decoded frames, network config, clip_len, epochs, seed) and reused by every
method, trial and re-run. Methods then train and predict from memory-mapped tables in milliseconds.

Nothing here holds a split in memory: the networks train through the streaming loader
(``harness.toolkit.training.train_streamed`` over ``clip_requests``: DataLoader workers decode a few
random clips of every video per epoch, or read them from the frame bank when the split fits its
budget), and the per-timestep tables are sharded extractions (``harness.features.shards``: one
file per shard, resumable, memory-mapped), so the tables' cost grows with the number of videos,
never with their decoded size. A backbone entry's ``weights: {path, sha256}`` is loaded when the
network is built (``build_with_weights``) and its SHA-256 is part of every stage key below.

Stages (names in ``ctx.stages_used``): ``heavy_classifier``, ``light_network``,
``heavy_timesteps_<split>``, ``light_timesteps_<split>``; a classifier other than the trial's own
(SCSampler's cross-classifier labels) is recorded as ``heavy_classifier[<backbone>]``. Training
recipe of both networks (``RECIPE``): ``harness.toolkit.training.train_network`` with batch
``TRAIN_BATCH``, peak learning rate ``TRAIN_LR``, ``heavy_epochs`` epochs of
``clips_per_video`` random clips per training video (both ``evaluation`` settings), every clip labelled with its
video's label, seeded by the trial seed.

The LightNet is ``evaluation.light_backbone`` (MobileNetV2) at the width multiplier ``light_width``
on each timestep's middle frame resized to ``light_size`` pixels: method parameters declared once
in ``LIGHT_PARAMS``, which every method using the LightNet merges into its ``params`` and passes
back (``light=self.p``). ``timestep_gflops`` gives the per-timestep GFLOPs of the heavy network and
the LightNet and their ratio (the papers' cost regime is 1:18 to 1:220).

Usage convention of the components: "heavy" counts one run of the heavy classifier on one
timestep (batch 1, [1, 3, F, H, W]); "light" one run of the LightNet on one timestep (its middle
frame resized inside the module, so the resize is counted).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from harness.backbones.weights import build_with_weights, weights_deps
from harness.compute import count_flops
from harness.data.streaming import clip_requests
from harness.features.shards import NetworkOnClips, ShardedArrays, sharded_stage
from harness.method import Component, TrialContext
from harness.params import Param, resolve_params
from harness.registry import BACKBONES
from harness.stages import StageRequest, stage_key
from harness.toolkit.clips import ClipNet, clip_input_maker, frame_shape
from harness.toolkit.selection import multi_hot
from harness.toolkit.trained import trained_network
from harness.toolkit.training import loader_workers, train_streamed

RECIPE = 4  # bump when the training recipe changes: it is part of every stage key
TRAIN_BATCH = 64
TRAIN_LR = 2e-3

LIGHT_PARAMS: dict[str, Param] = {
    "light_width": Param(1.0, "LightNet width multiplier (MobileNetV2's; 1.0 = published)", low=0.05),
    "light_size": Param(16, "LightNet input side in pixels (each timestep's middle frame is resized to it)", low=4),
}


# ----------------------------------------------------------------------------------------------
# Configs and stage keys
# ----------------------------------------------------------------------------------------------
def backbone_config(ctx: TrialContext, backbone: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """The trial's backbone config, or another one ({"name", "params"} or a bare name = its defaults)."""
    if backbone is None:
        backbone = ctx.backbone
    if isinstance(backbone, str):
        return {"name": backbone, "params": resolve_params(BACKBONES.get(backbone).params, {})}
    cfg = {"name": backbone["name"], "params": dict(backbone.get("params", {}))}
    if backbone.get("weights"):  # pretrained: {path, sha256}
        cfg["weights"] = dict(backbone["weights"])
    return cfg


def backbone_deps(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What a stage key holds for a backbone config: name, params and its weights' SHA-256 (not their path)."""
    deps = {"name": cfg["name"], "params": dict(cfg.get("params", {}))}
    if cfg.get("weights"):
        deps["weights"] = weights_deps(cfg["weights"])
    return deps


def light_config(light_backbone: str, light: Mapping[str, Any]) -> dict[str, Any]:
    """The LightNet's backbone config ({"name", "params"}) and input ``size`` from a method's params."""
    params = resolve_params(BACKBONES.get(light_backbone).params, {"width_mult": float(light["light_width"])})
    return {"name": light_backbone, "params": params, "size": int(light["light_size"])}


def dataset_deps(ctx: TrialContext) -> dict[str, Any]:
    """The data a shared stage was trained on: dataset name, params (not where the copy lies: the
    frame bank's key already holds the manifest hash) and the decoded training frames."""
    params = {k: v for k, v in sorted(dict(ctx.dataset.p).items()) if k != "root"}
    return {
        "name": getattr(ctx.dataset, "name", type(ctx.dataset).__name__),
        "params": params,
        "train_frames": stage_key("frames", ctx.frames_deps("train")),
    }  # = ctx.frames("train").key


def _recipe_deps(ctx: TrialContext) -> dict[str, Any]:
    ev = ctx.evaluation
    return {
        "recipe": RECIPE,
        "clips_per_video": int(ev["clips_per_video"]),
        "dataset": dataset_deps(ctx),
        "clip_len": int(ev["clip_len"]),
        "epochs": int(ev["heavy_epochs"]),
        "seed": int(ctx.seed),
    }


def heavy_deps(ctx: TrialContext, cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {**_recipe_deps(ctx), "backbone": backbone_deps(cfg)}


def light_deps(ctx: TrialContext, light: Mapping[str, Any]) -> dict[str, Any]:
    cfg = light_config(str(ctx.evaluation["light_backbone"]), light)
    return {**_recipe_deps(ctx), "backbone": {"name": cfg["name"], "params": cfg["params"]}, "size": cfg["size"]}


# ----------------------------------------------------------------------------------------------
# The two networks
# ----------------------------------------------------------------------------------------------
def new_heavy(cfg: Mapping[str, Any], clip_len: int, num_classes: int) -> ClipNet:
    return ClipNet(build_with_weights(cfg, num_classes), clip_len)


def new_light(cfg: Mapping[str, Any], clip_len: int, num_classes: int) -> ClipNet:
    """The LightNet: always one frame per timestep (the middle one), resized to ``cfg["size"]``."""
    return ClipNet(build_with_weights(cfg, num_classes), clip_len, size=cfg["size"], input_kind="2d")


def timestep_gflops(
    heavy: Mapping[str, Any],
    light: Mapping[str, Any],
    *,
    light_backbone: str = "mobilenet_v2",
    clip_len: int,
    height: int,
    width: int,
    num_classes: int,
) -> dict[str, float]:
    """fvcore GFLOPs of one timestep ([1, 3, F, H, W]) through the heavy network (backbone config
    ``heavy``) and through the LightNet (a method's ``light_width``/``light_size``), and their ratio
    ``light_to_heavy`` (1/50 means the LightNet is 50 times cheaper)."""
    x = (torch.zeros(1, 3, clip_len, height, width),)
    heavy_net = new_heavy(heavy, clip_len, num_classes).eval()
    light_net = new_light(light_config(light_backbone, light), clip_len, num_classes).eval()
    g_heavy, g_light = count_flops(heavy_net, x).gflops, count_flops(light_net, x).gflops
    return {"heavy": g_heavy, "light": g_light, "light_to_heavy": g_light / g_heavy}


def _trained(
    ctx: TrialContext, name: str, deps: dict[str, Any], new_net: Callable[[], ClipNet], record_as: str | None = None
) -> tuple[ClipNet, Path]:
    """The network of stage ``name`` (trained now if no stage has it) and its folder (``model.pt``)."""

    def train(net: ClipNet) -> None:
        frames, clip_len = ctx.frames("train"), int(ctx.evaluation["clip_len"])
        train_streamed(
            net,
            frames,
            lambda rng: clip_requests(frames, clip_len, int(ctx.evaluation["clips_per_video"]), rng),
            lambda x, _mask: net(x),
            epochs=int(ctx.evaluation["heavy_epochs"]),
            batch_size=TRAIN_BATCH,
            lr=TRAIN_LR,
            seed=ctx.seed,
            multilabel=ctx.dataset.multilabel,
            num_classes=ctx.dataset.num_classes,
            log=ctx.log,
            what=name,
        )

    return trained_network(ctx, name, deps, new_net, train, record_as)  # type: ignore[return-value]


def heavy_classifier(ctx: TrialContext, backbone: Mapping[str, Any] | str | None = None) -> ClipNet:
    """The heavy clip classifier f (the trial's backbone unless ``backbone`` names another), trained once."""
    cfg = backbone_config(ctx, backbone)
    other = cfg != backbone_config(ctx, None)
    return _trained(
        ctx,
        "heavy_classifier",
        heavy_deps(ctx, cfg),
        lambda: new_heavy(cfg, int(ctx.evaluation["clip_len"]), ctx.dataset.num_classes),
        record_as=f"heavy_classifier[{cfg['name']}]" if other else None,
    )[0]


def light_network(ctx: TrialContext, light: Mapping[str, Any]) -> ClipNet:
    """The LightNet at the method's ``light_width`` and ``light_size``, trained once as a frame
    classifier with the video label (no pretrained weights exist here)."""
    cfg = light_config(str(ctx.evaluation["light_backbone"]), light)
    return _trained(
        ctx,
        "light_network",
        light_deps(ctx, light),
        lambda: new_light(cfg, int(ctx.evaluation["clip_len"]), ctx.dataset.num_classes),
    )[0]


# ----------------------------------------------------------------------------------------------
# Per-timestep tables
# ----------------------------------------------------------------------------------------------
def _timesteps(
    ctx: TrialContext,
    split: str,
    name: str,
    deps: dict[str, Any],
    model_pt: Path,
    cfg: Mapping[str, Any],
    record_as: str | None = None,
    **net: Any,
) -> ShardedArrays:
    """Per-timestep outputs of the network ``cfg`` (trained weights ``model_pt``) on every video of ``split``:
    a sharded, resumable extraction streamed from the split's frames (``harness.features.shards``)."""
    build = partial(build_with_weights, {k: v for k, v in cfg.items() if k != "weights"}, ctx.dataset.num_classes)
    factory = NetworkOnClips(build, int(ctx.evaluation["clip_len"]), state_path=str(model_pt), **net)
    return split_outputs(ctx, split, name, deps, factory, record_as)


def split_outputs(
    ctx: TrialContext, split: str, name: str, deps: dict[str, Any], factory: Callable, record_as: str | None = None
) -> ShardedArrays:
    """The per-timestep outputs of ``factory`` (``harness.features.shards``: ``factory(device) -> video_fn``)
    on every video of ``split``: stage ``name`` of the store, a sharded, resumable extraction streamed from
    the split's frames and read memory-mapped, so its memory grows with one shard, not with the split.
    The shared tables and a method's own per-timestep inputs (e.g. a sampler's) go through it."""
    frames = ctx.frames(split)
    arrays = sharded_stage(ctx.store, name, deps, frames, factory, workers=loader_workers(frames), device=ctx.device)
    ctx.stages_used[record_as or name] = arrays.key
    return arrays


class TimestepTable:
    """Per-video, per-timestep outputs of the shared networks on one split.

    All arrays are indexed [video row, timestep], padded to Lmax; use ``mask``/``lengths``, never read
    padding as content: ``video_ids``, ``row(video_id)``, ``lengths [N]``, ``mask [N, Lmax]``,
    ``labels [N, C]`` (multi-hot), ``heavy_logits [N, Lmax, C]``, ``heavy_features [N, Lmax, Dh]``,
    ``light_features [N, Lmax, Dl]``, ``frame_start``/``frame_end [N, Lmax]`` (timestep frame range),
    ``heavy_frames(row, timesteps)``, ``clip_len``, ``multilabel``.

    ``light_features`` is loaded on first access (training the LightNet then, if no stage has it):
    methods that never read it -- the baselines, SCSampler -- never pay for the LightNet.
    """

    def __init__(
        self,
        video_ids: list[str],
        lengths: np.ndarray,
        labels: np.ndarray,
        heavy_logits: np.ndarray,
        heavy_features: np.ndarray,
        light_features: np.ndarray | Callable[[], np.ndarray] | None = None,
        clip_len: int = 4,
        multilabel: bool = False,
        heavy_kind: str = "3d",
    ):
        self.video_ids, self.lengths, self.labels = list(video_ids), np.asarray(lengths), np.asarray(labels)
        self.heavy_logits, self.heavy_features = heavy_logits, heavy_features
        self._light = light_features
        self.clip_len, self.multilabel, self.heavy_kind = int(clip_len), bool(multilabel), heavy_kind
        self._rows = {video_id: i for i, video_id in enumerate(self.video_ids)}

    @property
    def light_features(self) -> np.ndarray:
        if callable(self._light):
            self._light = self._light()
        if self._light is None:
            raise RuntimeError("this TimestepTable was built without light features (pass light=the method's params)")
        return self._light

    @property
    def mask(self) -> np.ndarray:
        return np.arange(self.heavy_logits.shape[1])[None, :] < self.lengths[:, None]

    @property
    def frame_start(self) -> np.ndarray:
        return np.where(self.mask, np.arange(self.heavy_logits.shape[1])[None, :] * self.clip_len, -1)

    @property
    def frame_end(self) -> np.ndarray:
        return np.where(self.mask, self.frame_start + self.clip_len, -1)

    def row(self, video_id: str) -> int:
        return self._rows[video_id]

    def __len__(self) -> int:
        return len(self.video_ids)

    def heavy_frames(self, row: int, timesteps: Sequence[int]) -> list[int]:
        """The frame indices the heavy network saw for these timesteps (for ``Prediction.selected``)."""
        del row  # every timestep of every video has the same layout; kept for a future variable layout
        frames: list[int] = []
        for t in sorted(int(t) for t in timesteps):
            start = t * self.clip_len
            if self.heavy_kind == "2d":
                frames.append(start + self.clip_len // 2)
            else:
                frames += range(start, start + self.clip_len)
        return frames


def timestep_table(
    ctx: TrialContext,
    split: str,
    backbone: Mapping[str, Any] | str | None = None,
    light: Mapping[str, Any] | None = None,
) -> TimestepTable:
    """Heavy logits/features of every timestep of ``split`` and, with ``light`` (a method's params
    holding ``LIGHT_PARAMS``), the LightNet's features on demand: two stages, memory-mapped."""
    cfg = backbone_config(ctx, backbone)
    other = cfg != backbone_config(ctx, None)
    clip_len, classes = int(ctx.evaluation["clip_len"]), ctx.dataset.num_classes
    heavy, heavy_dir = _trained(
        ctx,
        "heavy_classifier",
        heavy_deps(ctx, cfg),
        lambda: new_heavy(cfg, clip_len, classes),
        record_as=f"heavy_classifier[{cfg['name']}]" if other else None,
    )
    split_frames = ctx.frames(split).key
    heavy_name = f"heavy_timesteps_{split}"
    heavy_deps_ = {"classifier": heavy_deps(ctx, cfg), "split": split, "frames": split_frames}
    # another classifier's table (SCSampler's cross-classifier labels) is recorded under its own name
    outputs = _timesteps(
        ctx,
        split,
        heavy_name,
        heavy_deps_,
        heavy_dir / "model.pt",
        cfg,
        record_as=f"{heavy_name}[{cfg['name']}]" if other else None,
    )
    ids = outputs.video_ids

    def light_features() -> np.ndarray:
        cfg_light = light_config(str(ctx.evaluation["light_backbone"]), light)
        _, light_dir = _trained(
            ctx, "light_network", light_deps(ctx, light), lambda: new_light(cfg_light, clip_len, classes)
        )
        deps = {"network": light_deps(ctx, light), "split": split, "frames": split_frames}
        light_out = _timesteps(
            ctx,
            split,
            f"light_timesteps_{split}",
            deps,
            light_dir / "model.pt",
            {"name": cfg_light["name"], "params": cfg_light["params"]},
            size=cfg_light["size"],
            input_kind="2d",
            with_logits=False,
        )
        if ids != light_out.video_ids:
            raise RuntimeError(f"heavy and light timestep tables of split '{split}' list different videos")
        return light_out.padded_map("features")

    labels_of = {r.video_id: r.labels for r in ctx.dataset.split(split)}
    labels = np.stack([multi_hot(labels_of[v], classes) for v in ids]) if ids else np.zeros((0, 0))
    return TimestepTable(
        video_ids=ids,
        lengths=outputs.lengths,
        labels=labels,
        heavy_logits=outputs.padded_map("logits"),
        heavy_features=outputs.padded_map("features"),
        light_features=None if light is None else light_features,
        clip_len=clip_len,
        multilabel=bool(ctx.dataset.multilabel),
        heavy_kind=heavy.input_kind,
    )


# ----------------------------------------------------------------------------------------------
# Declared stages (``Method.stages``): keys and builds known before ``fit``, without decoding or training
# ----------------------------------------------------------------------------------------------
# Rough seconds per video of a split for its per-timestep table (StageRequest.cost: the scheduler's guess;
# the small built-in benchmark on one core, a loaded machine: ~86 s for 1000 test videos through the heavy network)
TABLE_SECONDS_PER_VIDEO = {"heavy": 0.06, "light": 0.02}


def frames_stage(ctx: TrialContext, split: str) -> StageRequest:
    """The decoded frames of ``split`` (``ctx.frames``)."""
    return StageRequest("frames", ctx.frames_deps(split), lambda: ctx.frames(split))


def heavy_stage(ctx: TrialContext, backbone: Mapping[str, Any] | str | None = None) -> StageRequest:
    """The heavy classifier (``heavy_classifier``) of the trial's backbone, or another one."""
    cfg = backbone_config(ctx, backbone)
    return StageRequest(
        "heavy_classifier",
        heavy_deps(ctx, cfg),
        lambda: heavy_classifier(ctx, cfg),
        after=(frames_stage(ctx, "train").key,),
        cost=60.0,  # rough seconds on the small built-in benchmark, one core (StageRequest.cost)
    )


def light_stage(ctx: TrialContext, light: Mapping[str, Any]) -> StageRequest:
    """The LightNet at a method's ``light_width``/``light_size`` (``light_network``)."""
    return StageRequest(
        "light_network",
        light_deps(ctx, light),
        lambda: light_network(ctx, light),
        after=(frames_stage(ctx, "train").key,),
        cost=20.0,
    )


def timestep_stages(
    ctx: TrialContext,
    splits: Sequence[str],
    backbone: Mapping[str, Any] | str | None = None,
    light: Mapping[str, Any] | None = None,
) -> list[StageRequest]:
    """The stages behind ``timestep_table(ctx, split, backbone, light)`` for each split (the light
    tables only with ``light``): the networks, then their per-timestep tables. The deps are those
    ``timestep_table`` passes to the store, so a declared stage is the very folder the trial reads."""
    cfg = backbone_config(ctx, backbone)
    heavy = heavy_stage(ctx, cfg)
    out = [heavy] + [frames_stage(ctx, split) for split in splits]
    if light is not None:
        out.append(light_stage(ctx, light))
    for split in splits:
        frames = frames_stage(ctx, split)
        deps = {"classifier": heavy.deps, "split": split, "frames": frames.key}
        out.append(
            StageRequest(
                f"heavy_timesteps_{split}",
                deps,
                lambda split=split: timestep_table(ctx, split, cfg),
                after=(heavy.key, frames.key),
                cost=TABLE_SECONDS_PER_VIDEO["heavy"] * len(ctx.dataset.split(split)),
            )
        )
        if light is not None:
            deps = {"network": light_deps(ctx, light), "split": split, "frames": frames.key}
            out.append(
                StageRequest(
                    f"light_timesteps_{split}",
                    deps,
                    lambda split=split: timestep_table(ctx, split, cfg, light).light_features,
                    after=(out[-1].key, stage_key("light_network", light_deps(ctx, light))),
                    cost=TABLE_SECONDS_PER_VIDEO["light"] * len(ctx.dataset.split(split)),
                )
            )
    return out


# ----------------------------------------------------------------------------------------------
# Accounting components
# ----------------------------------------------------------------------------------------------
def heavy_component(ctx: TrialContext, backbone: Mapping[str, Any] | str | None = None) -> Component:
    """The heavy classifier as an accounting component: one timestep ([1, 3, F, H, W]) at batch 1."""
    cfg = backbone_config(ctx, backbone)
    clip_len, (h, w) = int(ctx.evaluation["clip_len"]), frame_shape(ctx)
    return Component(
        heavy_classifier(ctx, cfg),
        clip_input_maker(clip_len, h, w),
        role="recognition",
        config={"net": "heavy_classifier", "backbone": cfg, "clip_len": clip_len, "hw": [h, w]},
    )


def light_component(ctx: TrialContext, light: Mapping[str, Any]) -> Component:
    """The LightNet as an accounting component: one timestep ([1, 3, F, H, W], the middle frame
    resized to ``light_size`` inside the module) at batch 1."""
    clip_len, (h, w) = int(ctx.evaluation["clip_len"]), frame_shape(ctx)
    cfg = light_config(str(ctx.evaluation["light_backbone"]), light)
    return Component(
        light_network(ctx, light),
        clip_input_maker(clip_len, h, w),
        role="selection",
        config={
            "net": "light_network",
            "backbone": {"name": cfg["name"], "params": cfg["params"]},
            "size": cfg["size"],
            "clip_len": clip_len,
            "hw": [h, w],
        },
    )


def shared_components(
    ctx: TrialContext, light: Mapping[str, Any], backbone: Mapping[str, Any] | str | None = None
) -> dict[str, Component]:
    """{"heavy": heavy_component, "light": light_component} (building "light" trains the LightNet)."""
    return {"heavy": heavy_component(ctx, backbone), "light": light_component(ctx, light)}
