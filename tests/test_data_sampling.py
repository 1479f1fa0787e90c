"""Samplers on hand-checked cases, including videos shorter than the request."""

import numpy as np
import pytest
import torch

from harness.data import sampling as S
from harness.data import transforms as T


def rng(seed=0):
    return np.random.default_rng(seed)


def test_tsn_segments():
    assert S.tsn_segments(10, 4).tolist() == [1, 3, 6, 8]  # segment centres at test
    assert S.tsn_segments(3, 5).tolist() == S.uniform_frames(3, 5).tolist()  # shorter: centres, frames repeat
    starts, ends = [0, 2, 5, 7], [2, 5, 7, 10]
    draws = np.stack([S.tsn_segments(10, 4, train=True, rng=rng(s)) for s in range(50)])
    assert ((draws >= starts) & (draws < ends)).all()
    assert len({tuple(d) for d in draws}) > 5  # random offsets in training
    assert (
        S.tsn_segments(10, 4, train=True, rng=rng(3)).tolist() == S.tsn_segments(10, 4, train=True, rng=rng(3)).tolist()
    )


def test_uniform_and_random():
    assert S.uniform_frames(10, 4).tolist() == [1, 3, 6, 8]
    assert S.uniform_frames(3, 5).tolist() == [0, 0, 1, 2, 2]
    assert S.uniform_frames(96, 1).tolist() == [48]
    # endpoints (SCSampler 4.1.2): the first and the last frame included, evenly spaced between
    assert S.uniform_frames(10, 4, placement="endpoints").tolist() == [0, 3, 6, 9]
    assert S.uniform_frames(96, 2, placement="endpoints").tolist() == [0, 95]
    assert S.uniform_frames(96, 1, placement="endpoints").tolist() == [48]
    assert S.uniform_frames(3, 5, placement="endpoints").tolist() == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="placement"):
        S.uniform_frames(10, 4, placement="edges")
    r = S.random_frames(10, 4, rng=rng(1))
    assert len(set(r.tolist())) == 4 and (np.diff(r) > 0).all() and r.max() < 10
    short = S.random_frames(3, 5, rng=rng(1))
    assert len(short) == 5 and set(short.tolist()) == {0, 1, 2}


def test_dense_clips():
    assert S.dense_clips(10, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert S.dense_clips(10, 2, frame_stride=2).tolist() == [[0, 2], [4, 6]]
    assert S.dense_clips(3, 4).tolist() == [[0, 1, 2, 2]]  # one clip padded with the last frame
    assert S.dense_clips(8, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    offsets = {int(S.dense_clips(10, 4, train=True, rng=rng(s))[0, 0]) for s in range(40)}
    assert offsets == {0, 1, 2}


def test_fixed_rate():
    assert S.fixed_rate(100, fps=25, rate=1).tolist() == [0, 25, 50, 75]
    assert S.fixed_rate(30, fps=10, rate=2).tolist() == [0, 5, 10, 15, 20, 25]
    assert S.fixed_rate(3, fps=25, rate=1).tolist() == [0]
    train = S.fixed_rate(100, fps=25, rate=1, train=True, rng=rng(2))
    assert (np.diff(train) == 25).all() and 0 <= train[0] < 25 and train.max() < 100
    with pytest.raises(ValueError):
        S.fixed_rate(10, fps=0)


def test_all_frames_and_multi_view():
    assert S.all_frames(5).tolist() == [0, 1, 2, 3, 4]
    views = S.multi_view(20, 4, num_clips=3, num_crops=3)
    assert len(views) == 9 and [v.crop for v in views[:3]] == [0, 1, 2]
    assert [views[i].indices.tolist() for i in (0, 3, 6)] == [[0, 1, 2, 3], [8, 9, 10, 11], [16, 17, 18, 19]]
    short = S.multi_view(2, 4, num_clips=2, num_crops=1)
    assert [v.indices.tolist() for v in short] == [[0, 1, 1, 1], [0, 1, 1, 1]]
    assert S.valid_mask(short[0].indices).tolist() == [True, True, False, False]
    with pytest.raises(ValueError):
        S.all_frames(0)
    assert set(S.SAMPLERS) == {"tsn", "uniform", "random", "dense_clips", "fixed_rate", "all", "multi_view"}


def test_transforms():
    frames = torch.zeros(4, 60, 80, 3, dtype=torch.uint8)
    frames[:, :, :40] = 200  # left half bright
    x = T.to_float(frames)
    assert x.shape == (4, 3, 60, 80) and x.max() == pytest.approx(200 / 255)
    r = T.resize_short_side(x, 30)
    assert r.shape == (4, 3, 30, 40)
    c = T.center_crop(r, 20)
    assert c.shape == (4, 3, 20, 20)
    assert c[..., :, :10].mean() > 0.7 and c[..., :, 10:].mean() < 0.05  # centre crop straddles the edge
    f = T.horizontal_flip(x)
    assert f[0, 0, 0, 0] == 0 and f[0, 0, 0, -1] > 0.7
    g = torch.Generator().manual_seed(0)
    rc = T.random_crop(x, 16, generator=g)
    assert rc.shape == (4, 3, 16, 16)
    crops = T.three_crops(r, 30)
    assert [k.shape[-1] for k in crops] == [30, 30, 30]
    assert crops[0].mean() > crops[2].mean()  # left crop brighter than the right one
    n = T.normalize(torch.full((1, 3, 2, 2), 0.5), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert torch.allclose(n, torch.zeros_like(n))
    u = T.resize_crop_uint8(frames, 32)
    assert u.dtype == torch.uint8 and u.shape == (4, 32, 32, 3)
