"""The methods' toolkit: what the built-in methods share, one module per concept.

- ``clips``: the input normalisation, frames -> clips, ``ClipNet`` (any backbone behind one clip input).
- ``selection``: uniform / random timesteps, top-K, per-video randomness, score aggregation, class
  probabilities, multi-hot labels.
- ``training``: the one supervised training loop, and the training-memory measure.
- ``stages``: the shared stages (heavy classifier, LightNet, per-timestep tables) and their components.
- ``heavy_on_timesteps``: the base of methods that run the heavy classifier on chosen timesteps.

Vocabulary. A *timestep* is a non-overlapping clip of ``clip_len`` (F) consecutive frames; a video
of T frames has L = T // F timesteps (its true length: trailing frames that do not fill a clip are
dropped; a video shorter than one clip gets one clip padded by repeating its last frame). Timestep
i covers frames [i*F, (i+1)*F).
"""
