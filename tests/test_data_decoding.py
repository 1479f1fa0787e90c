"""Decoding: decord and PyAV agree on real files, bad files are rejected with the right reason."""

import numpy as np
import pytest

from harness.data.decoding import VideoDecodeError, check_video, open_video, read_frames
from harness.data.encoding import write_video
from harness.data.synthetic import sample_video_paths


def _frames(n=24, h=32, w=64):
    """A moving bright square on a gradient: easy to check after lossy compression."""
    x = np.zeros((n, h, w, 3), np.uint8)
    x[..., 0] = np.linspace(0, 120, w, dtype=np.uint8)[None, None, :]
    for t in range(n):
        x[t, 8:16, t : t + 8] = 255
    return x


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    frames = _frames()
    good = write_video(root / "good.mp4", frames, fps=12)
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) * 6 // 10])
    (root / "zero.mp4").write_bytes(b"")
    (root / "wrong_container.mp4").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    (root / "text.mp4").write_text("not a video\n" * 50)
    return root, frames


@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_backends_read_the_same_frames(videos, backend):
    root, frames = videos
    reader = open_video(root / "good.mp4", backend=backend)
    assert len(reader) == 24 and reader.fps == pytest.approx(12)
    batch = reader.get_batch([0, 5, 23, 5])
    assert batch.dtype == np.uint8 and batch.shape == (4, 32, 64, 3)
    assert np.abs(batch.astype(int) - frames[[0, 5, 23, 5]]).mean() < 6  # lossy, but close
    assert np.array_equal(batch[1], batch[3])
    # the bright square moved: frame 23 has it at columns 23..30
    assert batch[2, 12, 26].min() > 200 and batch[0, 12, 26].max() < 150


def test_decord_and_pyav_agree_exactly(videos):
    root, _ = videos
    a = read_frames(root / "good.mp4", range(24), backend="decord")
    b = read_frames(root / "good.mp4", range(24), backend="pyav", num_threads=2)
    assert (
        np.abs(a.astype(int) - b.astype(int)).max() <= 2
    )  # same FFmpeg decoder; colour conversion may round differently


@pytest.mark.parametrize(
    "name,reason",
    [
        ("truncated.mp4", "truncated"),
        ("zero.mp4", "zero bytes"),
        ("wrong_container.mp4", "undecodable"),
        ("text.mp4", "undecodable"),
        ("absent.mp4", "missing"),
    ],
)
@pytest.mark.parametrize("backend", ["decord", "pyav", "auto"])
def test_bad_files_are_rejected_with_their_reason(videos, name, reason, backend):
    root, _ = videos
    with pytest.raises(VideoDecodeError) as info:
        check_video(root / name, backend=backend)
    assert info.value.reason == reason
    assert str(root / name) in str(info.value)


def test_truncated_inside_the_stream_is_detected(tmp_path):
    """An MP4 whose index comes first (faststart) still opens when truncated; decoding must notice."""
    import av

    frames = (np.random.default_rng(0).random((48, 64, 64, 3)) * 255).astype(np.uint8)
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for im in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(im, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    for backend in ("pyav", "auto"):
        with pytest.raises(VideoDecodeError) as info:
            check_video(cut, backend=backend)
        assert info.value.reason == "truncated"


def test_too_short_and_index_errors(videos):
    root, _ = videos
    with pytest.raises(VideoDecodeError) as info:
        check_video(root / "good.mp4", min_frames=25)
    assert info.value.reason == "too short"
    with pytest.raises(IndexError):
        read_frames(root / "good.mp4", [24])


def test_other_containers_decode(tmp_path):
    frames = _frames(16, 32, 32)
    for ext in (".avi", ".webm", ".mkv"):
        path = write_video(tmp_path / f"v{ext}", frames, fps=10)
        for backend in ("decord", "pyav"):
            reader = open_video(path, backend=backend)
            assert len(reader) == 16, (ext, backend)
            assert np.abs(reader.get_batch([3]).astype(int) - frames[3]).mean() < 8, (ext, backend)


def test_bundled_sample_videos_at_native_resolution():
    expected = {
        "bikes.mp4": (250, 272, 640),
        "bigbuckbunny.mp4": (132, 720, 1280),
        "carphone_pristine.mp4": (120, 144, 176),
    }
    paths = {p.name: p for p in sample_video_paths()}
    assert set(expected) <= set(paths)
    for name, (n, h, w) in expected.items():
        d = open_video(paths[name], backend="decord")
        assert len(d) == n
        a = d.get_batch([0, n // 2, n - 1])
        assert a.shape == (3, h, w, 3)
        b = open_video(paths[name], backend="pyav").get_batch([0, n // 2, n - 1])
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
        assert a.std() > 10  # real footage, not blank frames


def test_auto_falls_back_to_pyav_where_decord_fails(tmp_path):
    """decord 0.6 cannot convert frames of some widths (16, 24, 48 px here): auto mode must still read them."""
    frames = _frames(8, 32, 48)
    path = write_video(tmp_path / "w48.mp4", frames)
    with pytest.raises(VideoDecodeError) as info:
        check_video(path, backend="decord")
    assert info.value.reason == "undecodable"
    reader = open_video(path, backend="auto")
    batch = reader.get_batch([0, 7])
    assert reader.active_backend == "pyav"
    assert batch.shape == (2, 32, 48, 3)
    assert np.abs(batch.astype(int) - frames[[0, 7]]).mean() < 6
