"""Spatial transforms in plain torch (no torchvision at run time), on any device.

Frames come out of the decoder as uint8 ``[T,H,W,3]``; ``to_float`` turns them into float
``[T,3,H,W]`` in [0, 1]; every other transform takes ``[..., C, H, W]`` (so clips ``[B,T,C,H,W]``
work too) and keeps the device and dtype. Random transforms take a ``torch.Generator`` so that a
trial's augmentation is reproducible.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float ``[..., 3, H, W]`` in [0, 1]."""
    return frames.movedim(-1, -3).float().div_(255.0)


def resize_short_side(x: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize so that min(H, W) == ``size``, keeping the aspect ratio. ``x``: ``[..., C, H, W]``."""
    h, w = x.shape[-2:]
    if min(h, w) == size:
        return x
    scale = size / min(h, w)
    new = (size, max(1, round(w * scale))) if h <= w else (max(1, round(h * scale)), size)
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    dtype = flat.dtype
    out = F.interpolate(flat.float(), size=new, mode="bilinear", align_corners=False, antialias=antialias)
    if not dtype.is_floating_point:
        out = out.round_().clamp_(0, 255)
    return out.to(dtype).reshape(*lead, *out.shape[-3:])


def crop(x: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    return x[..., top:top + height, left:left + width]


def center_crop(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    if th > h or tw > w:
        raise ValueError(f"crop {th}x{tw} larger than the frame {h}x{w}")
    return crop(x, (h - th) // 2, (w - tw) // 2, th, tw)


def random_crop(x: torch.Tensor, size: int | tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
    """One crop position for all leading dims (the same crop for every frame of a clip)."""
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    if th > h or tw > w:
        raise ValueError(f"crop {th}x{tw} larger than the frame {h}x{w}")
    top = int(torch.randint(0, h - th + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - tw + 1, (1,), generator=generator))
    return crop(x, top, left, th, tw)


def three_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """The 3 crops of multi-view testing: along the long side, start / centre / end (size x size)."""
    h, w = x.shape[-2:]
    if w >= h:
        offsets = [(max(0, (h - size) // 2), left) for left in (0, (w - size) // 2, w - size)]
    else:
        offsets = [(top, max(0, (w - size) // 2)) for top in (0, (h - size) // 2, h - size)]
    return [crop(x, top, left, size, size) for top, left in offsets]


def horizontal_flip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def random_flip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    return horizontal_flip(x) if float(torch.rand((), generator=generator)) < p else x


def normalize(x: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """(x - mean) / std per channel; ``x``: float ``[..., C, H, W]``."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - m) / s


def resize_crop_uint8(frames: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """uint8 ``[T,H,W,3]`` -> uint8 ``[T,h,w,3]``: short-side resize then centre crop (the frame bank's rule)."""
    th, tw = (size, size) if isinstance(size, int) else size
    x = frames.movedim(-1, -3)
    h, w = x.shape[-2:]
    scale = max(th / h, tw / w)
    if (h, w) != (th, tw):
        x = F.interpolate(x.float(), size=(max(th, round(h * scale)), max(tw, round(w * scale))), mode="bilinear",
                          align_corners=False, antialias=True).round_().clamp_(0, 255).to(torch.uint8)
    return center_crop(x, (th, tw)).movedim(-3, -1).contiguous()
