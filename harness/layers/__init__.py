"""Reusable in-network temporal-reduction layers: SGS (seed 002) and temporal clustering (seed 004).

Both take the activations of a video network part-way through and return fewer temporal feature
maps per video, a number that varies per video (SGS) or is fixed but content-placed (clustering).
"""
from harness.layers.clustering import TemporalClustering, cluster_ids, cluster_starts, hamming_neighbours
from harness.layers.sgs import ATFRNet, SimilarityGuidedSampling, SplitVideoNet, run_grouped, sample_bins

__all__ = ["ATFRNet", "SimilarityGuidedSampling", "SplitVideoNet", "run_grouped", "sample_bins", "TemporalClustering",
           "cluster_ids", "cluster_starts", "hamming_neighbours"]
