"""Frames to network inputs: the normalisation, non-overlapping clips, and ``ClipNet``.

A video's frames come from its frame bank (``ctx.frames(split).get(video_id)``: uint8 [T, H, W, 3]
of the video's true length); ``to_input`` is the one normalisation of every network trained here
(no pretrained weights exist, so no ImageNet statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.method import TrialContext

MEAN, STD = 0.45, 0.225  # input normalisation of every network trained here


def to_input(frames: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [..., T, H, W, 3] -> normalised float [..., 3, T, H, W] on ``device``."""
    x = frames if isinstance(frames, torch.Tensor) else torch.as_tensor(np.asarray(frames))
    x = x.to(device, non_blocking=True)  # pinned batches of the streaming loader copy asynchronously
    x = x.movedim(-1, -4).float().div_(255.0)
    return x.sub_(MEAN).div_(STD)


def num_timesteps(num_frames: int, clip_len: int) -> int:
    """L = T // F, at least 1 (a video shorter than a clip gets one padded clip)."""
    return max(1, int(num_frames) // int(clip_len))


def split_into_clips(frames: np.ndarray, clip_len: int) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [L, F, H, W, 3]: the non-overlapping clips (a copy; padded when short)."""
    x = torch.from_numpy(np.array(frames))  # a writable copy of the memory-mapped frames
    if x.shape[0] < clip_len:  # shorter than one clip: repeat the last frame (documented policy)
        x = torch.cat([x, x[-1:].expand(clip_len - x.shape[0], *x.shape[1:])])
    length = x.shape[0] // clip_len
    return x[: length * clip_len].reshape(length, clip_len, *x.shape[1:])


def frames_to_clips(frames: np.ndarray, clip_len: int) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> normalised float [L, 3, F, H, W] of the non-overlapping clips (CPU)."""
    return to_input(split_into_clips(frames, clip_len))


def video_clips(ctx: TrialContext, split: str, video_id: str) -> torch.Tensor:
    """The normalised clips [L, 3, F, H, W] (CPU) of one video of ``split``, from the frame bank."""
    return frames_to_clips(ctx.frames(split).get(video_id), int(ctx.evaluation["clip_len"]))


def frame_shape(ctx: TrialContext, split: str = "train") -> tuple[int, int]:
    """(H, W) of the decoded frames of ``split``."""
    bank = ctx.frames(split)
    frames = bank.get(bank.video_ids[0])
    return int(frames.shape[1]), int(frames.shape[2])


def clip_input_maker(clip_len: int, height: int, width: int):
    """make_inputs for a component fed one clip: ``() -> (zeros [1, 3, F, H, W],)``."""
    return lambda **_: (torch.zeros(1, 3, clip_len, height, width),)


class ClipNet(nn.Module):
    """A backbone behind one input convention: normalised float clips ``[B, 3, F, H, W]``.

    ``input_kind`` "2d": the middle frame of each clip (optionally resized to ``size``); "tsm": the F
    frames as segments ``[B*F, 3, H, W]``; anything else ("3d", "video"): the clip as is.
    ``features(x) -> [B, D]``, ``head(f) -> [B, C]``, ``forward(x) = head(features(x))``,
    ``frames_seen(i)``: the frame indices timestep i shows the network (for ``Prediction.selected``).
    """

    def __init__(self, backbone: nn.Module, clip_len: int, size: int | None = None, input_kind: str | None = None):
        super().__init__()
        self.backbone = backbone
        self.clip_len = int(clip_len)
        self.size = size
        self.input_kind: Any = input_kind or getattr(backbone, "input_kind", "3d")
        self.feature_dim = int(backbone.feature_dim)

    def frames_seen(self, timestep: int) -> list[int]:
        start = int(timestep) * self.clip_len
        if self.input_kind == "2d":
            return [start + self.clip_len // 2]
        return list(range(start, start + self.clip_len))

    def _prepare(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5:
            raise ValueError(f"ClipNet expects clips [B, 3, F, H, W], got {tuple(clips.shape)}")
        if self.input_kind == "2d":
            x = clips[:, :, clips.shape[2] // 2]
            if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
                x = F.interpolate(x, size=(self.size, self.size), mode="area")
            return x
        if self.input_kind == "tsm":
            b, c, t, h, w = clips.shape
            return clips.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        return clips

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_features(self._prepare(clips))
        if self.input_kind == "tsm" and feats.shape[0] != clips.shape[0]:  # backbone left segments apart
            feats = feats.reshape(clips.shape[0], -1, feats.shape[-1]).mean(1)
        return feats

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone.head(features)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(clips))
