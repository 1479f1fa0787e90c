"""Writing real video files with PyAV: the built-in benchmark and the test fixtures use it.

Single-threaded encoding keeps the bytes reproducible for a given input. B-frames are off so
that every decoder (decord, PyAV) agrees on the frame count and order.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: container extension -> (codec, pixel format); what the official datasets ship as
CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".avi": ("mpeg4", "yuv420p"),  # UCF101 / HMDB51 / Breakfast are XviD (MPEG-4 part 2) in AVI
    ".webm": ("libvpx", "yuv420p"),  # Something-Something V2 is VP8/VP9 in WebM
}


def write_video(path: str | Path, frames: np.ndarray, fps: float = 25.0, codec: str | None = None,
                quality: int = 12, faststart: bool = False) -> Path:
    """Encode uint8 RGB frames ``[T,H,W,3]`` (H and W even) to ``path``; the codec follows the extension.

    ``quality`` is x264's CRF (lower = closer to lossless); other codecs use a high fixed rate.
    ``faststart`` puts an MP4's index before the data (as web videos do).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 [T,H,W,3] frames, got {frames.dtype} {frames.shape}")
    default_codec, pix_fmt = CODECS.get(path.suffix.lower(), CODECS[".mp4"])
    codec = codec or default_codec
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "faststart"} if faststart and path.suffix.lower() == ".mp4" else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.thread_count = 1
        if codec == "libx264":
            # x264 is only bit-exact run to run with one thread and no lookahead threads
            stream.options = {"crf": str(quality), "preset": "veryfast", "bframes": "0", "threads": "1",
                              "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0:deterministic=1"}
        elif codec == "mpeg4":
            stream.bit_rate = 4_000_000
            stream.options = {"bf": "0", "threads": "1"}
        elif codec.startswith("libvpx"):
            stream.bit_rate = 2_000_000
            stream.options = {"threads": "1"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
