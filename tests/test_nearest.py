"""Nearest neighbour: exact matches, and invariance to where and how big the source is."""
import numpy as np
import pytest

from GenNearest import GenNearest, GenNeirest
from poses import normalise_poses
from Skeleton import Skeleton
from VideoSkeleton import VideoSkeleton


@pytest.fixture
def target(clip):
    return VideoSkeleton(clip, every=2, progress=False)


def moved(ske, scale, dx, dy):
    lm = ske.to_array()
    lm[:, 0] = lm[:, 0] * scale + dx
    lm[:, 1] = lm[:, 1] * scale + dy
    return Skeleton(lm)


def test_normalised_poses_ignore_position_and_scale():
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 1, (5, 33, 4)).astype(np.float32)
    w = v.copy()
    w[..., :2] = v[..., :2] * 0.4 + np.array([0.3, -0.1], np.float32)
    np.testing.assert_allclose(normalise_poses(v), normalise_poses(w), atol=1e-5)
    n = normalise_poses(v)
    np.testing.assert_allclose(n.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(np.sqrt((n ** 2).sum(-1).mean(-1)), 1, atol=1e-5)


def test_returns_the_exact_frame_of_a_target_skeleton(target):
    gen = GenNeirest(target)
    assert GenNearest is GenNeirest
    picks = range(0, len(target), 3)
    assert list(gen.nearest([target.ske[i] for i in picks])) == list(picks)
    image = gen.generate(target.ske[4])
    np.testing.assert_array_equal(image, target.readImage(4))
    assert image.dtype == np.uint8 and image.shape == (target.size, target.size, 3)


@pytest.mark.parametrize("scale, dx, dy", [(0.5, 0.2, 0.1), (1.7, -0.4, -0.3), (1.0, 0.25, 0.0)])
def test_a_shifted_and_scaled_skeleton_finds_the_same_frame(target, scale, dx, dy):
    gen = GenNearest(target)
    picks = list(range(0, len(target), 2))
    assert list(gen.nearest([moved(target.ske[i], scale, dx, dy) for i in picks])) == picks


def test_indices_restrict_the_search(target):
    half = np.arange(0, len(target), 2)
    gen = GenNearest(target, indices=half)
    found = gen.nearest(target.ske)
    assert set(found) <= set(half)
    assert list(found[half]) == list(half)
