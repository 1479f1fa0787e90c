"""Similarity Guided Sampling (SGS, seed 002 section 4): adaptive temporal feature resolution.

Each temporal feature map I_t (C x H x W) is embedded into an L-dimensional similarity space
(spatial average pool, two 1x1 layers, batch-norm as in the official code), its magnitude Delta_t
is binned into B bins of half-width gamma = Delta_max / 2B with centres (2b - 1) gamma, and every
bin aggregates the maps that fall in it through a sampling kernel (eq. 4-6). Empty bins are
dropped, so a video leaves the layer with B' <= B maps, B' chosen by its content.

Conventions, written in bin units p_t = Delta_t / 2 gamma = B * Delta_t / Delta_max, so that bin b
(1-based) spans [b - 1, b) with centre b - 1/2:

* Delta_max is treated as a constant in the backward pass, as eq. 7-8 do (gamma and beta_b carry no
  gradient); the linear kernel's gradient is exactly eq. 8, including +1/gamma at Delta_t = beta_b.
* The frame that defines Delta_max always sits on the upper edge of the last bin, where the paper's
  kernels give it weight 0 (the official code gives it 1e-7). We flatten the last bin's kernel above
  its centre (and the first bin's below its centre), i.e. clamp p to [1/2, B - 1/2]: that frame gets
  weight 1 and identical maps collapse into one bin instead of vanishing.
* Degenerate videos: Delta_max <= ``eps`` (all magnitudes zero, e.g. identical maps under the
  distance-to-mean magnitude) put every map into one bin instead of dividing by zero. The embedding
  is batch-normalised, so Delta is O(1) and eps = 1e-3 also absorbs float noise that batch-norm
  amplifies when a batch holds identical maps.
* Kept bins come out in bin order, i.e. sorted by magnitude, as in the paper and the official code:
  the temporal order of the frames is not kept after SGS (what the layers after it see as "time" is
  the similarity axis).
* ``linear_normalized`` (the official code's other linear option) divides each bin by its total
  weight, so a bin holding many maps is not larger in scale than a bin holding one.
* The Kronecker kernel (eq. 5) averages its bin in the forward pass; its true derivative in Delta is
  zero almost everywhere, so like the official code we pass the linear kernel's sub-gradient
  (straight-through) to keep the similarity network trainable.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

MAGNITUDES = ("mean_distance", "norm")
KERNELS = ("linear", "kronecker", "linear_normalized")


def bin_positions(delta: Tensor, bins: int, eps: float = 1e-3, delta_max: Tensor | None = None) -> Tensor:
    """Magnitudes [N, T] -> clamped bin coordinates p in [1/2, B - 1/2] (bin b holds p in [b-1, b)).

    ``delta_max`` [N, 1] defaults to the per-video maximum, held constant for the backward pass."""
    if delta_max is None:
        delta_max = delta.detach().amax(dim=1, keepdim=True)
    degenerate = delta_max <= eps
    p = bins * delta / delta_max.clamp_min(eps)
    p = torch.where(degenerate, torch.zeros_like(p), p)
    return p.clamp(0.5, bins - 0.5)


def kernel_weights(p: Tensor, bins: int, kernel: str = "linear") -> Tensor:
    """Sampling weights [N, B, T] of every bin for every frame (eq. 5 or eq. 6, in bin units)."""
    centres = torch.arange(bins, dtype=p.dtype, device=p.device).add_(0.5).view(1, bins, 1)
    d = p.unsqueeze(1) - centres  # [N, B, T]; gamma = 1/2 in these units
    raw = torch.where(d <= 0, 1 + 2 * d, 1 - 2 * d)  # slope +1/gamma up to the centre, -1/gamma after (eq. 8)
    linear = torch.where(raw > 0, raw, torch.zeros_like(raw))  # zero, with zero gradient, outside the support
    if kernel == "linear":
        return linear
    if kernel == "linear_normalized":  # the official code's option: each bin a weighted average, not a sum
        return linear / linear.sum(dim=2, keepdim=True).clamp_min(1e-6)
    if kernel == "kronecker":
        index = p.detach().floor().clamp(0, bins - 1).long()  # [N, T]
        hard = torch.zeros_like(linear).scatter_(1, index.unsqueeze(1), 1.0)
        hard = hard / hard.sum(dim=2, keepdim=True).clamp_min(1.0)  # average of the bin's maps (eq. 5)
        return hard + (linear - linear.detach())  # forward: eq. 5; backward: the linear sub-gradient
    raise ValueError(f"unknown SGS kernel '{kernel}' (choose from {', '.join(KERNELS)})")


def sample_bins(features: Tensor, delta: Tensor, bins: int, kernel: str = "linear", eps: float = 1e-3,
                delta_max: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Eq. 4: O_b = sum_t I_t Psi(Delta_t, beta_b) for all B bins.

    features [N, C, T, H, W], delta [N, T] -> (O [N, C, B, H, W], occupied [N, B] bool). A bin is
    empty when no map has a positive weight in it (O_b = 0 whatever the features).
    """
    n, c, t, h, w = features.shape
    weights = kernel_weights(bin_positions(delta, bins, eps, delta_max), bins, kernel)  # [N, B, T]
    flat = features.transpose(1, 2).reshape(n, t, c * h * w)
    out = torch.matmul(weights, flat).view(n, bins, c, h, w).transpose(1, 2)
    occupied = weights.detach().sum(dim=2) > 0
    return out, occupied


@dataclass
class SGSOutput:
    """Per-video outputs of the layer: ``maps[i]`` is [C, B'_i, H, W] (no padding anywhere)."""

    maps: list[Tensor]
    bins_kept: list[int]
    delta: Tensor  # [N, T] magnitudes
    occupied: Tensor  # [N, B] which bins survived


class SimilarityGuidedSampling(nn.Module):
    """The SGS layer for [N, C, T, H, W] activations; ``bins=None`` means B = T (the paper's default)."""

    def __init__(self, channels: int, embed_dim: int = 8, kernel: str = "linear", magnitude: str = "mean_distance",
                 eps: float = 1e-3):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"unknown SGS kernel '{kernel}' (choose from {', '.join(KERNELS)})")
        if magnitude not in MAGNITUDES:
            raise ValueError(f"unknown SGS magnitude '{magnitude}' (choose from {', '.join(MAGNITUDES)})")
        self.kernel, self.magnitude_kind, self.eps = kernel, magnitude, eps
        # Sec. 4.1: pool over space, then two kernel-1 layers with C and L outputs.
        self.similarity = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(inplace=False), nn.Linear(channels, embed_dim))
        self.norm = nn.BatchNorm1d(embed_dim)  # the official code normalises the embedding

    def embed(self, x: Tensor) -> Tensor:
        """[N, C, T, H, W] -> Z [N, T, L]."""
        z = self.similarity(x.mean(dim=(3, 4)).transpose(1, 2))
        return self.norm(z.transpose(1, 2)).transpose(1, 2)

    def magnitude(self, z: Tensor) -> Tensor:
        """Delta [N, T]: the paper's ||Z_t|| (eq. 1) or the official code's ||Z_t - mean_t Z||."""
        if self.magnitude_kind == "mean_distance":
            z = z - z.mean(dim=1, keepdim=True)
        return torch.linalg.vector_norm(z, dim=2)

    def sample(self, x: Tensor, bins: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """All B bins before dropping: (O [N, C, B, H, W], occupied [N, B], Delta [N, T])."""
        bins = int(bins or x.shape[2])
        delta = self.magnitude(self.embed(x))
        out, occupied = sample_bins(x, delta, bins, self.kernel, self.eps)
        return out, occupied, delta

    def forward(self, x: Tensor, bins: int | None = None) -> SGSOutput:
        out, occupied, delta = self.sample(x, bins)
        maps = [out[i][:, occupied[i]] for i in range(out.shape[0])]
        return SGSOutput(maps=maps, bins_kept=[int(m.shape[1]) for m in maps], delta=delta, occupied=occupied)


class SGSAllBins(nn.Module):
    """The layer's computation as one tensor-out module (for FLOP counting): all B bins, before dropping."""

    def __init__(self, layer: SimilarityGuidedSampling, bins: int | None):
        super().__init__()
        self.layer, self.bins = layer, bins

    def forward(self, x: Tensor) -> Tensor:
        return self.layer.sample(x, self.bins)[0]


def run_grouped(module: nn.Module, maps: list[Tensor]) -> Tensor:
    """Run ``module`` on per-video maps [C, T_i, H, W] of different lengths, batching equal lengths.

    Why not pad to the longest and mask: the 3D convolutions after SGS mix neighbouring time steps
    and batch-norm turns zero padding into non-zero values, so padding would leak into a video's
    real bins (the official code zero-pads and lets it leak). Grouping by length is exact and costs
    one forward call per distinct B' in the batch; batch-norm statistics are then per group.
    """
    order: dict[int, list[int]] = {}
    for i, m in enumerate(maps):
        order.setdefault(int(m.shape[1]), []).append(i)
    results: list[Tensor | None] = [None] * len(maps)
    for _, idx in sorted(order.items()):
        out = module(torch.stack([maps[i] for i in idx]))
        for j, i in enumerate(idx):
            results[i] = out[j]
    return torch.stack(results)  # type: ignore[arg-type]


class SplitVideoNet(nn.Module):
    """A registered video backbone cut after ``after_stage`` stages: ``pre`` (stem + stages[:k]) and
    ``post`` (stages[k:] + pool + head). ``after_stage=0`` cuts right after the stem."""

    def __init__(self, backbone: nn.Module, after_stage: int):
        super().__init__()
        stages = list(backbone.stages)
        if not 0 <= after_stage < len(stages):
            raise ValueError(f"after_stage must be in [0, {len(stages) - 1}], got {after_stage}")
        self.after_stage = after_stage
        self.pre = nn.Sequential(backbone.stem, *stages[:after_stage])
        self.post = _Post(stages[after_stage:], backbone.pool, backbone.head)

    @torch.no_grad()
    def pre_channels(self, reference: Tensor) -> int:
        was = self.pre.training
        self.pre.eval()
        channels = int(self.pre(reference).shape[1])
        self.pre.train(was)
        return channels


class _Post(nn.Module):
    def __init__(self, stages: list[nn.Module], pool: nn.Module, head: nn.Module):
        super().__init__()
        self.stages = nn.Sequential(*stages)
        self.pool, self.head = pool, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.stages(x)).flatten(1))


class ATFRNet(nn.Module):
    """A 3D CNN with an SGS layer after stage ``after_stage`` (seed 002's ATFR)."""

    def __init__(self, backbone: nn.Module, after_stage: int, reference: Tensor, embed_dim: int = 8,
                 kernel: str = "linear", magnitude: str = "mean_distance"):
        super().__init__()
        self.split = SplitVideoNet(backbone, after_stage)
        self.sgs = SimilarityGuidedSampling(self.split.pre_channels(reference), embed_dim, kernel, magnitude)

    def forward(self, x: Tensor, bins: int | None = None) -> tuple[Tensor, SGSOutput]:
        """x [N, C, T, H, W] -> (logits [N, classes], the SGS output: B' per video in ``.bins_kept``)."""
        result = self.sgs(self.split.pre(x), bins)
        return run_grouped(self.split.post, result.maps), result


class ATFRTrace(nn.Module):
    """What ATFR computes for one video, as one traceable module (the brute-force FLOP proof)."""

    def __init__(self, net: ATFRNet, bins: int | None):
        super().__init__()
        self.net, self.bins = net, bins

    def forward(self, x: Tensor) -> Tensor:
        out, occupied, _ = self.net.sgs.sample(self.net.split.pre(x), self.bins)
        kept = occupied[0].nonzero().flatten()
        return self.net.split.post(out.index_select(2, kept))
