"""Reusable in-network temporal-reduction layers (temporal clustering, seed 004)."""
from harness.layers.clustering import TemporalClustering, cluster_ids, cluster_starts, hamming_neighbours

__all__ = ["TemporalClustering", "cluster_ids", "cluster_starts", "hamming_neighbours"]
