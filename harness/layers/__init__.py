"""Reusable in-network temporal-reduction layers: SGS (seed 002). It takes the activations of a video
network part-way through and returns a number of temporal feature maps that varies per video.
(Temporal clustering's layer lives beside its method: ``methods/temporal_clustering_layers.py``.)
"""
from harness.layers.sgs import ATFRNet, SimilarityGuidedSampling, SplitVideoNet, run_grouped, sample_bins

__all__ = ["ATFRNet", "SimilarityGuidedSampling", "SplitVideoNet", "run_grouped", "sample_bins"]
