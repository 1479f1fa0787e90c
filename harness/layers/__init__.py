"""Reusable in-network temporal-reduction layers (temporal clustering, seed 004; SGS lives beside
its method in ``methods/sgs_layers.py``)."""
from harness.layers.clustering import TemporalClustering, cluster_ids, cluster_starts, hamming_neighbours

__all__ = ["TemporalClustering", "cluster_ids", "cluster_starts", "hamming_neighbours"]
