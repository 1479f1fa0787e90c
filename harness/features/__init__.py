"""Per-timestep features and logits of whole splits, extracted in shards (see ``harness.features.shards``)."""
