"""Declared settings tables of a spec, checked by ``harness.params.validate`` like plugin parameters.

``EVALUATION_PARAMS`` (the spec's ``evaluation:`` block) are shared by every method of a grid and
are part of the trial hash: anything several methods must share for a comparison to be fair (the
timestep definition, the heavy classifier's training recipe, the cheap network) lives there rather
than in one method's parameters. ``RESOURCE_PARAMS``, ``TRACKING_PARAMS``, ``RAY_PARAMS`` and
``LAUNCH_PARAMS`` say where and how a grid runs; they are not part of any trial's hash.
"""

from harness.params import Param

EVALUATION_PARAMS: dict[str, Param] = {
    "device": Param(
        "auto", "torch device for the trial: auto (CUDA if Ray gave this trial a GPU), cpu, cuda, cuda:N", type=str
    ),
    "batch_size": Param(8, "evaluation batch size for latency and throughput", low=1),
    "latency_warmup": Param(2, "untimed warm-up batches before timing", low=0),
    "latency_repeats": Param(5, "timed repeats; the median is reported", low=1),
    "channels_last": Param(False, "use channels-last memory format on CUDA"),
    "autocast": Param(False, "run inference under autocast (bf16 on CUDA)"),
    "threads": Param(0, "torch intra-op threads for this trial (0 = resources.cpus, on Ray and --local alike)", low=0),
    "clip_len": Param(4, "frames per timestep (clip) for clip- and timestep-based methods", low=1),
    "heavy_epochs": Param(8, "epochs to train the shared heavy clip classifier (and the LightNet)", low=1),
    "clips_per_video": Param(
        4, "random clips of every training video per epoch when training the shared networks", low=1
    ),
    "light_backbone": Param(
        "mobilenet_v2", "cheap per-timestep network (LightNet / coarse CNN / sampler input)", type=str
    ),
    "frame_bank_gb": Param(
        2.0,
        "decoded-size budget (GiB) under which a split is decoded once into the frame bank; "
        "larger splits stream from the video files",
        low=0.0,
    ),
    "views": Param(
        1,
        "test views per video: N clips, or {clips: N, crops: 1|3} (harness.views); per-view and "
        "per-video GFLOPs are kept apart",
        low=1,
    ),
}

RESOURCE_PARAMS: dict[str, Param] = {
    "cpus": Param(1, "CPUs Ray reserves per trial", type=float, low=0, exclusive_low=True),
    "gpus": Param(
        0, "GPUs per trial: a fraction below 1 packs trials on one GPU, or a whole number", type=float, low=0
    ),
}

TRACKING_PARAMS: dict[str, Param] = {
    "uri": Param(None, "MLflow tracking URI (default sqlite:///OUTPUT/mlflow.db)", type=str, nullable=True),
    "experiment": Param(None, "MLflow experiment name (default: the spec's experiment)", type=str, nullable=True),
}

RAY_PARAMS: dict[str, Param] = {
    "address": Param(
        None, "Ray cluster: auto, HOST:PORT or ray://HOST:PORT; null starts a local Ray", type=str, nullable=True
    ),
    "num_cpus": Param(None, "CPUs of a local Ray instance (null: this machine's)", type=int, low=1, nullable=True),
    "num_gpus": Param(None, "GPUs of a local Ray instance (null: this machine's)", type=int, low=0, nullable=True),
    "max_concurrent": Param(
        None, "at most this many trials at once (null: as many as fit)", type=int, low=1, nullable=True
    ),
}

LAUNCH_PARAMS: dict[str, Param] = {
    "max_failures": Param(0, "retries of a failed trial", low=0),
    "timeout_s": Param(
        None, "per-trial wall-clock limit in seconds (null: none)", type=float, low=0, exclusive_low=True, nullable=True
    ),
}
