"""Declared trial-wide settings shared by every method of a grid (the spec's ``evaluation:`` block).

They are part of the trial hash. Anything that several methods must share for a comparison to be
fair (the timestep definition, the heavy classifier's training recipe, the cheap network) lives
here rather than in one method's parameters.
"""
from harness.params import Param

EVALUATION_PARAMS: dict[str, Param] = {
    "device": Param("auto", "torch device for the trial: auto (CUDA if Ray gave this trial a GPU), cpu, cuda, cuda:N", type=str),
    "batch_size": Param(8, "evaluation batch size for latency and throughput", low=1),
    "latency_warmup": Param(2, "untimed warm-up batches before timing", low=0),
    "latency_repeats": Param(5, "timed repeats; the median is reported", low=1),
    "channels_last": Param(False, "use channels-last memory format on CUDA"),
    "autocast": Param(False, "run inference under autocast (bf16 on CUDA)"),
    "threads": Param(0, "torch intra-op threads for this trial (0 = resources.cpus, on Ray and --local alike)", low=0),
    "clip_len": Param(4, "frames per timestep (clip) for clip- and timestep-based methods", low=1),
    "heavy_epochs": Param(8, "epochs to train the shared heavy clip classifier", low=1),
    "light_backbone": Param("mobilenet_v2", "cheap per-timestep network (LightNet / coarse CNN / sampler input)", type=str),
    "frame_bank_gb": Param(2.0, "decoded-size budget (GiB) under which a split is decoded once into the frame bank; "
                           "larger splits stream from the video files", low=0.0),
    "views": Param(1, "test views per video (clips x crops); per-view and per-video GFLOPs are kept apart", low=1),
}
