"""Full-video temporal clustering (seed 004 section 3.3): all frames in, g averaged clusters out.

After an early block, every frame's activations are binarised (sign; after a ReLU that is "> 0"),
neighbouring frames are compared by Hamming distance, and the frames are cut into g contiguous
clusters whose activations are averaged, so the rest of the network runs on g maps per video.

Rules (``cluster_starts``):

* ``cumulative``: C_i = sum of the neighbour distances up to frame i (C_1 = 0); frame i gets cluster
  ceil(g * C_i / C_N), computed in exact integers.
* ``slope``: cluster boundaries just after the g - 1 largest neighbour distances (earliest first on ties).
* ``uniform``: g equal segments regardless of content (the paper's baseline).

What the paper leaves open, decided here:

* The first frame's id ceil(0) = 0 is clamped to 1 (it joins the first cluster).
* C_N = 0 (all frames binarise identically) falls back to uniform segments: any grouping averages
  identical maps, and uniform is the one that needs no distances.
* Empty clusters (one large jump crosses several thresholds) and slope rules with fewer than g - 1
  positive distances: the longest cluster is split at its middle until there are g of them, so the
  network always sees g distinct groups of real frames.
* Videos of fewer than g frames: each frame is its own cluster and the last frame is repeated to
  fill g, which is the paper's padding rule ("pad it repeatedly with the last video frame").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

RULES = ("cumulative", "slope", "uniform")


def hamming_neighbours(x: Tensor) -> Tensor:
    """Activations [T, ...] -> Hamming distances [T - 1] between the binarised frames t and t + 1."""
    bits = (x.detach() > 0).flatten(1)
    return (bits[1:] != bits[:-1]).sum(dim=1)


def uniform_starts(length: int, g: int) -> list[int]:
    return [(j * length) // g for j in range(g)]


def cluster_ids(distances: list[int], g: int) -> list[int]:
    """Cumulative clustering ids (1-based) from neighbour distances, exactly as the paper's formula
    with the first frame clamped to 1; C_N = 0 gives all ones (the caller falls back to uniform)."""
    cumulative = [0]
    for d in distances:
        cumulative.append(cumulative[-1] + int(d))
    total = cumulative[-1]
    if total == 0:
        return [1] * len(cumulative)
    return [max(1, -((-g * c) // total)) for c in cumulative]  # ceil(g c / C_N) in integers


def cluster_starts(distances: list[int] | Tensor, g: int, rule: str = "cumulative") -> list[int]:
    """Start frame of each of the g clusters (sorted; repeated last frame when the video is shorter than g)."""
    if rule not in RULES:
        raise ValueError(f"unknown clustering rule '{rule}' (choose from {', '.join(RULES)})")
    distances = [int(d) for d in (distances.tolist() if isinstance(distances, Tensor) else distances)]
    length = len(distances) + 1
    if length <= g:
        return list(range(length)) + [length - 1] * (g - length)
    if rule == "uniform" or sum(distances) == 0:
        return uniform_starts(length, g)
    if rule == "cumulative":
        ids = cluster_ids(distances, g)
        starts = [0] + [i for i in range(1, length) if ids[i] != ids[i - 1]]
    else:  # slope: cut after the g - 1 largest positive jumps
        ranked = sorted((i for i in range(len(distances)) if distances[i] > 0), key=lambda i: (-distances[i], i))
        starts = [0] + sorted(i + 1 for i in ranked[: g - 1])
    return _fill(starts, length, g)


def _fill(starts: list[int], length: int, g: int) -> list[int]:
    """Split the longest cluster at its middle until there are g clusters (length >= g assumed)."""
    starts = sorted(set(starts))
    while len(starts) < g:
        ends = starts[1:] + [length]
        longest = max(range(len(starts)), key=lambda j: (ends[j] - starts[j], -j))
        starts.insert(longest + 1, starts[longest] + (ends[longest] - starts[longest]) // 2)
    return starts


def starts_to_ids(starts: list[int], length: int) -> Tensor:
    """Cluster index (0-based) of each of ``length`` frames from the cluster starts."""
    ids = torch.zeros(length, dtype=torch.long)
    for j, s in enumerate(starts[1:], start=1):
        if s > starts[j - 1]:  # repeated starts (short video) add no frame
            ids[s:] = j
    return ids


def average_clusters(x: Tensor, starts: list[int]) -> Tensor:
    """[T, ...] activations -> [g, ...] cluster means (a repeated start repeats that frame)."""
    length = x.shape[0]
    ends = [max(e, s + 1) for s, e in zip(starts, starts[1:] + [length])]
    return torch.stack([x[s:e].mean(dim=0) for s, e in zip(starts, ends)])


class TemporalClustering(nn.Module):
    """One video's early activations [T, C, H, W] -> ([g, C, H, W] cluster means, cluster starts)."""

    def __init__(self, g: int, rule: str = "cumulative"):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown clustering rule '{rule}' (choose from {', '.join(RULES)})")
        self.g, self.rule = int(g), rule

    def starts(self, x: Tensor, g: int | None = None) -> list[int]:
        distances = hamming_neighbours(x) if self.rule != "uniform" else torch.zeros(max(x.shape[0] - 1, 0))
        return cluster_starts(distances, int(g or self.g), self.rule)

    def forward(self, x: Tensor, g: int | None = None) -> tuple[Tensor, list[int]]:
        """``g`` overrides the layer's cluster count (a model trained with one g tested at another)."""
        starts = self.starts(x, g)
        return average_clusters(x, starts), starts
