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
  the similarity axis). ``order: time`` (an ablation, not the paper) sorts them by the mean frame
  index of their maps instead.
* ``magnitude: cumulative`` (not the paper; docs/sgs.md, "Why ATFR trails its base network here"):
  Delta_t = sum_{s <= t} ||Z_s - Z_{s-1}||, the change accumulated since the first frame. It rises
  with time, so every bin holds a run of consecutive frames and the magnitude order of the bins is
  their temporal order; a bin is skipped (dropped) where the content jumps, and a static stretch
  collapses into one bin. The paper's magnitudes put frames far apart in time into one bin and
  order the bins by magnitude, which loses the order of the frames.
* ``linear_normalized`` (the official code's other linear option) divides each bin by its total
  weight, so a bin holding many maps is not larger in scale than a bin holding one.
* The Kronecker kernel (eq. 5) averages its bin in the forward pass; its true derivative in Delta is
  zero almost everywhere, so like the official code we pass the linear kernel's sub-gradient
  (straight-through) to keep the similarity network trainable.
* ``delta_grad``: eq. 7-8 train the similarity network through Delta. Whether that gradient also
  flows on into the layers *before* SGS (through the similarity network's input) is not specified;
  ``similarity`` stops it there (the input of f_s is detached; the early layers still learn through
  the sampled maps O, eq. 7), ``backbone`` lets it through.

One forward per batch after SGS: the videos' B' differ, so the kept bins are packed to the front
and the batch is zero-padded to its largest B' (``PaddedBins``). The layers after SGS are made
padding-exact by ``mask_padding``: batch norm takes its statistics over the real bins only and
re-zeroes the padded positions, and global average pools divide by the real length. Since every
convolution then sees zeros beyond a video's last bin -- exactly its own zero padding -- each
video's logits equal those of a forward on its B' maps alone (``tests/test_sgs.py`` checks it on
the method's real forward). Layers after SGS may stride time (a video of length L at the padded
length T leaves a stride-s layer with ceil(L / s) positions, ``PaddedBins.mask``); batch norm then
sees all videos of the batch together, not per-B' groups of one to three videos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from harness.backbones.base import SplitVideoNet

MAGNITUDES = ("mean_distance", "norm", "cumulative")
DELTA_GRADS = ("similarity", "backbone")
BIN_ORDERS = ("magnitude", "time")
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


def sample_bins(
    features: Tensor,
    delta: Tensor,
    bins: int,
    kernel: str = "linear",
    eps: float = 1e-3,
    delta_max: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
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
    """Per-video outputs of the layer: video i's kept bins are ``padded[i, :, :bins_kept[i]]`` (in bin
    order), the rest of ``padded`` [N, C, max B', H, W] is zero."""

    padded: Tensor
    bins_kept: list[int]
    delta: Tensor  # [N, T] magnitudes
    occupied: Tensor  # [N, B] which bins survived
    order: Tensor  # [N, B] bin indices in the order the layers after SGS see them, kept first

    @property
    def maps(self) -> list[Tensor]:
        """Video i's kept bins [C, B'_i, H, W], without padding."""
        return [self.padded[i, :, :kept] for i, kept in enumerate(self.bins_kept)]


def pack_kept(out: Tensor, occupied: Tensor, order: Tensor) -> tuple[Tensor, list[int]]:
    """Move each video's occupied bins to the front, in ``order`` (``SimilarityGuidedSampling.kept_order``):
    O [N, C, B, H, W] -> [N, C, max B', H, W]."""
    kept = occupied.sum(dim=1)
    width = max(int(kept.max()), 1)
    order = order[:, :width]
    n, c, _, h, w = out.shape
    packed = out.gather(2, order.view(n, 1, width, 1, 1).expand(n, c, width, h, w))
    real = torch.arange(width, device=out.device).view(1, width) < kept.view(n, 1)
    return packed * real.view(n, 1, width, 1, 1).to(packed.dtype), [int(k) for k in kept]


class SimilarityGuidedSampling(nn.Module):
    """The SGS layer for [N, C, T, H, W] activations; ``bins=None`` means B = T (the paper's default)."""

    def __init__(
        self,
        channels: int,
        embed_dim: int = 8,
        kernel: str = "linear",
        magnitude: str = "mean_distance",
        eps: float = 1e-3,
        delta_grad: str = "backbone",
        order: str = "magnitude",
    ):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"unknown SGS kernel '{kernel}' (choose from {', '.join(KERNELS)})")
        if magnitude not in MAGNITUDES:
            raise ValueError(f"unknown SGS magnitude '{magnitude}' (choose from {', '.join(MAGNITUDES)})")
        if delta_grad not in DELTA_GRADS:
            raise ValueError(f"unknown SGS delta_grad '{delta_grad}' (choose from {', '.join(DELTA_GRADS)})")
        if order not in BIN_ORDERS:
            raise ValueError(f"unknown SGS bin order '{order}' (choose from {', '.join(BIN_ORDERS)})")
        self.kernel, self.magnitude_kind, self.eps, self.delta_grad = kernel, magnitude, eps, delta_grad
        self.order = order
        # Sec. 4.1: pool over space, then two kernel-1 layers with C and L outputs.
        self.similarity = nn.Sequential(
            nn.Linear(channels, channels), nn.ReLU(inplace=False), nn.Linear(channels, embed_dim)
        )
        self.norm = nn.BatchNorm1d(embed_dim)  # the official code normalises the embedding

    def embed(self, x: Tensor) -> Tensor:
        """[N, C, T, H, W] -> Z [N, T, L]."""
        pooled = x.mean(dim=(3, 4))
        if self.delta_grad == "similarity":
            pooled = pooled.detach()
        z = self.similarity(pooled.transpose(1, 2))
        return self.norm(z.transpose(1, 2)).transpose(1, 2)

    def magnitude(self, z: Tensor) -> Tensor:
        """Delta [N, T]: the paper's ||Z_t|| (eq. 1), the official code's ||Z_t - mean_t Z||, or the
        change accumulated over time (``cumulative``, not the paper: bins are runs of consecutive frames)."""
        if self.magnitude_kind == "cumulative":
            step = torch.linalg.vector_norm(z[:, 1:] - z[:, :-1], dim=2)
            return torch.cat([torch.zeros_like(z[:, :1, 0]), step.cumsum(dim=1)], dim=1)
        if self.magnitude_kind == "mean_distance":
            z = z - z.mean(dim=1, keepdim=True)
        return torch.linalg.vector_norm(z, dim=2)

    def sample(self, x: Tensor, bins: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """All B bins before dropping: (O [N, C, B, H, W], occupied [N, B], Delta [N, T])."""
        bins = int(bins or x.shape[2])
        delta = self.magnitude(self.embed(x))
        out, occupied = sample_bins(x, delta, bins, self.kernel, self.eps)
        return out, occupied, delta

    def kept_order(self, delta: Tensor, occupied: Tensor) -> Tensor:
        """[N, B] bin indices, the occupied ones first: in bin order (``magnitude``: the paper's and
        the official code's), or by the mean frame index of each bin's maps (``time``: an ablation
        that keeps the temporal order for the layers after SGS)."""
        if self.order == "magnitude":
            return torch.sort((~occupied).to(torch.uint8), dim=1, stable=True).indices
        bins, t = occupied.shape[1], delta.shape[1]
        weights = kernel_weights(bin_positions(delta.detach(), bins, self.eps), bins, "linear")  # [N, B, T]
        frames = torch.arange(t, dtype=weights.dtype, device=weights.device)
        centre = (weights * frames).sum(dim=2) / weights.sum(dim=2).clamp_min(1e-6)
        return torch.sort(torch.where(occupied, centre, torch.full_like(centre, float(t))), dim=1, stable=True).indices

    def forward(self, x: Tensor, bins: int | None = None) -> SGSOutput:
        out, occupied, delta = self.sample(x, bins)
        order = self.kept_order(delta, occupied)
        padded, kept = pack_kept(out, occupied, order)
        return SGSOutput(padded=padded, bins_kept=kept, delta=delta, occupied=occupied, order=order)


class SGSAllBins(nn.Module):
    """The layer's computation as one tensor-out module (for FLOP counting): all B bins, before dropping."""

    def __init__(self, layer: SimilarityGuidedSampling, bins: int | None):
        super().__init__()
        self.layer, self.bins = layer, bins

    def forward(self, x: Tensor) -> Tensor:
        return self.layer.sample(x, self.bins)[0]


# -- one padded forward per batch after SGS ------------------------------------------------------
class PaddedBins:
    """Each video's real length in the padded batch now running through the layers after SGS
    (empty outside such a forward: the masked layers then behave as the plain ones)."""

    def __init__(self):
        self.lengths: dict[int, Tensor] = {}  # padded length T -> [N] real lengths at that T

    def start(self, frames: int, bins_kept: list[int]) -> None:
        self.lengths = {int(frames): torch.tensor(bins_kept)}

    def mask(self, x: Tensor) -> Tensor:
        """[N, 1, T, 1, 1] of 1 on the real positions of ``x`` [N, C, T, H, W], 0 on the padding.

        A layer that strode time by s took the padded length T_in to ceil(T_in / s) and a video's
        length L to ceil(L / s); s is recovered from the last longer padded length seen."""
        t = x.shape[2]
        if t not in self.lengths:
            previous = min(k for k in self.lengths if k > t)
            stride = math.ceil(previous / t)
            self.lengths[t] = torch.div(self.lengths[previous] + stride - 1, stride, rounding_mode="floor")
        real = torch.arange(t, device=x.device).view(1, t) < self.lengths[t].to(x.device).view(-1, 1)
        return real.view(x.shape[0], 1, t, 1, 1).to(x.dtype)

    @property
    def active(self) -> bool:
        return bool(self.lengths)


class MaskedBatchNorm3d(nn.BatchNorm3d):
    """Batch norm whose statistics come from the real positions only, padding re-zeroed after it.
    Same parameters and buffers as ``nn.BatchNorm3d`` (state dicts are interchangeable)."""

    padding: PaddedBins | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.padding is None or not self.padding.active:
            return super().forward(x)
        mask = self.padding.mask(x)
        if self.training or not self.track_running_stats:
            count = mask.sum() * x.shape[3] * x.shape[4]
            mean = (x * mask).sum(dim=(0, 2, 3, 4)) / count
            var = (((x - mean.view(1, -1, 1, 1, 1)) * mask) ** 2).sum(dim=(0, 2, 3, 4)) / count
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                    self.running_mean.lerp_(mean.detach(), momentum)
                    self.running_var.lerp_(var.detach() * count / (count - 1).clamp_min(1), momentum)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean.view(1, -1, 1, 1, 1)) * torch.rsqrt(var.view(1, -1, 1, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1, 1) + self.bias.view(1, -1, 1, 1, 1)
        return y * mask


class MaskedAvgPool3d(nn.AdaptiveAvgPool3d):
    """Global average pool over the real positions only (output size 1)."""

    padding: PaddedBins | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.padding is None or not self.padding.active:
            return super().forward(x)
        mask = self.padding.mask(x)
        return (x * mask).sum(dim=(2, 3, 4), keepdim=True) / (mask.sum(dim=2, keepdim=True) * x.shape[3] * x.shape[4])


def mask_padding(module: nn.Module) -> PaddedBins:
    """Swap, in place, every ``BatchNorm3d`` and global ``AdaptiveAvgPool3d`` inside ``module`` for
    its masked twin (parameters and buffers kept, as ``nn.SyncBatchNorm.convert_sync_batchnorm``
    does) and return the ``PaddedBins`` they all read. Other layers must map zeros to zeros
    (convolutions without bias after batch norm, ReLU/SiLU, residual additions, the pooled
    squeeze-excitation), which holds for the built-in video backbones."""
    padding = PaddedBins()
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm3d:
                masked = MaskedBatchNorm3d(
                    child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
                )
                masked.load_state_dict(child.state_dict())
            elif type(child) is nn.AdaptiveAvgPool3d and child.output_size in (1, (1, 1, 1)):
                masked = MaskedAvgPool3d(1)
            else:
                continue
            masked.padding = padding
            setattr(parent, name, masked)
    return padding


class ATFRNet(nn.Module):
    """A 3D CNN with an SGS layer after stage ``after_stage`` (seed 002's ATFR)."""

    def __init__(
        self,
        backbone: nn.Module,
        after_stage: int,
        reference: Tensor,
        embed_dim: int = 8,
        kernel: str = "linear",
        magnitude: str = "mean_distance",
        delta_grad: str = "backbone",
        order: str = "magnitude",
    ):
        super().__init__()
        self.split = SplitVideoNet(backbone, after_stage)
        self.sgs = SimilarityGuidedSampling(
            self.split.pre_channels(reference), embed_dim, kernel, magnitude, delta_grad=delta_grad, order=order
        )
        self.padding = mask_padding(self.split.post)

    def post_padded(self, padded: Tensor, bins_kept: list[int]) -> Tensor:
        """The layers after SGS, once on the padded batch, each video's padding masked out."""
        self.padding.start(padded.shape[2], bins_kept)
        try:
            return self.split.post(padded)
        finally:
            self.padding.lengths = {}

    def forward(self, x: Tensor, bins: int | None = None) -> tuple[Tensor, SGSOutput]:
        """x [N, C, T, H, W] -> (logits [N, classes], the SGS output: B' per video in ``.bins_kept``)."""
        result = self.sgs(self.split.pre(x), bins)
        return self.post_padded(result.padded, result.bins_kept), result


def load_base_network(net: ATFRNet, base: nn.Module) -> None:
    """Start ATFR's backbone layers (before and after SGS) from ``base``, a trained network of the same
    backbone (``mode: base``): every parameter and buffer, strict about names and shapes. The SGS layer
    (the similarity network) is not in the base network and keeps its fresh initialisation."""
    net.split.load_state_dict(SplitVideoNet(base, net.split.after_stage).state_dict(), strict=True)


class ATFRTrace(nn.Module):
    """What ATFR computes for one video, as one traceable module (the brute-force FLOP proof)."""

    def __init__(self, net: ATFRNet, bins: int | None):
        super().__init__()
        self.net, self.bins = net, bins

    def forward(self, x: Tensor) -> Tensor:
        out, occupied, delta = self.net.sgs.sample(self.net.split.pre(x), self.bins)
        kept = self.net.sgs.kept_order(delta, occupied)[0, : int(occupied[0].sum())]
        return self.net.split.post(out.index_select(2, kept))
