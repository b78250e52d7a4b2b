"""Temporal smoothing and global pose normalisation, on synthetic skeletons with known answers."""
import numpy as np
import pytest

import Motion as M
import smoothing as S
from Skeleton import Skeleton, square_box


@pytest.fixture
def noisy():
    """A still person (constant landmarks) seen through a jittery detector, plus the truth."""
    rng = np.random.default_rng(0)
    truth = np.tile(rng.uniform(0.2, 0.8, (1, 33, 4)).astype(np.float32), (120, 1, 1))
    return truth, truth + rng.normal(0, 0.01, truth.shape).astype(np.float32)


@pytest.mark.parametrize("method", ["median", "one_euro"])
def test_smoothing_leaves_a_constant_track_unchanged(noisy, method):
    truth, _ = noisy
    np.testing.assert_allclose(S.smooth_track(truth, method), truth, atol=1e-6)


@pytest.mark.parametrize("method", ["median", "one_euro"])
def test_smoothing_reduces_jitter(noisy, method):
    truth, track = noisy
    smooth = S.smooth_track(track, method)
    jitter = lambda t: np.abs(np.diff(t, axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < jitter(track) / 2
    assert np.abs(smooth - truth).mean() < np.abs(track - truth).mean()


def test_smoothing_follows_real_motion():
    """A landmark moving steadily is not held back by the median (centred window)."""
    track = np.linspace(0, 1, 30, dtype=np.float32)[:, None, None] * np.ones((1, 33, 4), np.float32)
    np.testing.assert_allclose(S.median_smooth(track)[2:-2], track[2:-2], atol=1e-6)


def test_the_live_median_gives_the_offline_median_and_keeps_gaps():
    rng = np.random.default_rng(1)
    track = rng.normal(size=(23, 33, 4)).astype(np.float32)
    track[7] = np.nan        # nobody found
    track[3, 5] = np.nan     # one landmark unknown
    items = [(i, None if np.isnan(x).all() else x) for i, x in enumerate(track)]
    out = list(S.smooth_stream(items, "median"))
    assert [i for i, _ in out] == list(range(23))
    offline = S.median_smooth(track)
    assert out[7][1] is None
    for i, lm in out:
        if lm is not None:
            np.testing.assert_allclose(lm, offline[i], atol=1e-6)
    assert np.isnan(out[3][1][5]).all()


def test_the_live_one_euro_filter_gives_the_offline_one():
    rng = np.random.default_rng(2)
    track = rng.normal(size=(15, 33, 4)).astype(np.float32)
    live = [lm for _, lm in S.smooth_stream(((i, x) for i, x in enumerate(track)), "one_euro", fps=25)]
    np.testing.assert_allclose(np.stack(live), S.one_euro_smooth(track, fps=25), atol=1e-6)


def test_timeline_puts_missing_frames_back():
    t = M.timeline(np.ones((3, 33, 4), np.float32), [4, 5, 8])
    assert len(t) == 5 and np.isnan(t[2]).all() and np.isnan(t[3]).all() and (t[[0, 1, 4]] == 1).all()


# ---- global pose normalisation ----
def person(ankle_y, height, centre_x, frame_size):
    """A standing person as 33 landmarks normalised to the frame: nose `height` pixels above
    the ankles, hips half-way, everything else at the hips."""
    lm = np.zeros((33, 4), np.float32)
    lm[:, 3] = 1
    lm[:, :2] = (centre_x, ankle_y - height / 2)
    lm[M.NOSE, :2] = (centre_x, ankle_y - height)
    lm[M.LEFT_ANKLE, :2] = (centre_x + 5, ankle_y)
    lm[M.RIGHT_ANKLE, :2] = (centre_x - 5, ankle_y)
    lm[M.LEFT_HIP, :2] = (centre_x + 8, ankle_y - height / 2)
    lm[M.RIGHT_HIP, :2] = (centre_x - 8, ankle_y - height / 2)
    lm[:, :2] /= frame_size
    return lm


def walk(far, near, far_h, near_h, centre_x, frame_size, steps=41):
    """A video of a person walking from far (high in the frame, small) to near, perspective-like."""
    a = np.linspace(0, 1, steps)
    return np.stack([person(far + t * (near - far), far_h + t * (near_h - far_h), centre_x, frame_size) for t in a])


SOURCE_SIZE, TARGET_SIZE = (640, 360), (800, 600)


@pytest.fixture
def stats():
    source = M.pose_stats(walk(100, 300, 50, 150, 200, SOURCE_SIZE), SOURCE_SIZE)
    target = M.pose_stats(walk(250, 450, 120, 240, 400, TARGET_SIZE), TARGET_SIZE)
    return source, target


def test_pose_stats_find_near_and_far(stats):
    source, _ = stats
    assert source["far"] == pytest.approx(110, abs=1) and source["near"] == pytest.approx(290, abs=1)  # 5th, 95th pct
    assert source["centre_x"] == pytest.approx(200) and source["frame_size"] == list(SOURCE_SIZE)
    assert 50 < source["far_height"] < 75 and 125 < source["near_height"] < 150


def test_normalisation_maps_the_source_ankle_track_onto_the_target_range(stats):
    source, target = stats
    for t in (0.0, 0.5, 1.0):
        ankle = source["far"] + t * (source["near"] - source["far"])
        height = np.interp(ankle, [source["far"], source["near"]], [source["far_height"], source["near_height"]])
        out = M.normalise(person(ankle, height, 200, SOURCE_SIZE), source, target) * (*TARGET_SIZE, 1, 1)
        want_ankle = target["far"] + t * (target["near"] - target["far"])
        # The paper interpolates the scale (target height / source height) between far and near.
        far_ratio, near_ratio = (target[k] / source[k] for k in ("far_height", "near_height"))
        want_height = height * (far_ratio + t * (near_ratio - far_ratio))
        assert out[M.LEFT_ANKLE, 1] == pytest.approx(want_ankle, abs=1e-3)
        assert out[M.LEFT_ANKLE, 1] - out[M.NOSE, 1] == pytest.approx(want_height, rel=1e-4)
        if t in (0.0, 1.0):  # at the ends, the source is exactly as tall as the target there
            assert out[M.LEFT_ANKLE, 1] - out[M.NOSE, 1] == pytest.approx(
                target["near_height" if t else "far_height"], rel=1e-4)
        assert out[M.NOSE, 0] == pytest.approx(target["centre_x"], abs=1e-3)  # centred where the target stands


def test_normalisation_clamps_beyond_the_range_and_keeps_offsets(stats):
    source, target = stats
    beyond = M.normalise(person(source["near"] + 40, 150, 260, SOURCE_SIZE), source, target) * (*TARGET_SIZE, 1, 1)
    assert beyond[M.LEFT_ANKLE, 1] == pytest.approx(target["near"], abs=1e-3)
    scale, _, _ = M.normalisation(source["near"], source, target)
    assert beyond[M.NOSE, 0] - target["centre_x"] == pytest.approx(60 * scale, abs=1e-3)  # 60 px right of centre


def test_a_crop_does_not_see_the_normalisation_but_the_box_moves(stats):
    """Why normalisation decides placement, not the generator's input: the person-centred crop
    of a scaled and moved skeleton is the crop of the original."""
    source, target = stats
    lm = person(200, 100, 150, SOURCE_SIZE)
    lm[15, :2] = (240 / 640, 120 / 360)  # a raised wrist, so the box is not symmetric
    moved = M.normalise(lm, source, target)
    crop_a, box = M.crop_landmarks(lm, SOURCE_SIZE, 0.2)
    crop_b, box_b = M.crop_landmarks(moved, TARGET_SIZE, 0.2)
    np.testing.assert_allclose(crop_a[:, :2], crop_b[:, :2], atol=1e-5)
    np.testing.assert_allclose(M.normalised_box(box, lm, source, target), box_b, atol=1e-3)
    assert box_b == pytest.approx(square_box(Skeleton(moved), TARGET_SIZE, 0.2))


def test_a_source_crossing_a_wide_frame_stays_inside_the_targets_frame():
    """A dancer travelling across a 1280-pixel stage, driven into a small square target frame:
    the travel is compressed (still in order), and every skeleton lies inside the frame, as
    does a jump off its top edge."""
    wide, square = (1280, 360), (128, 128)
    crossing = np.stack([person(300, 200, x, wide) for x in np.linspace(40, 1240, 25)])
    source = M.pose_stats(crossing, wide)
    target = M.pose_stats(walk(100, 110, 70, 75, 64, square), square)
    placed = np.stack([M.normalise(lm, source, target) for lm in crossing])
    assert np.all(placed[:, :, :2] >= 0) and np.all(placed[:, :, :2] <= 1)
    hips = placed[:, M.LEFT_HIP, 0] * square[0]
    # compressed to TRAVEL_ROOM between the travel's robust ends (2nd-98th percentile), a little more overall
    assert np.all(np.diff(hips) > 0) and hips[-1] - hips[0] <= 1.05 * M.TRAVEL_ROOM * square[0]
    jump = person(60, 200, 640, wide)  # ankles far above where they ever stood
    jump[M.NOSE, 1] = -0.2             # the head out of the source frame's top
    assert np.all(M.normalise(jump, source, target)[:, :2] >= 0)
    box = M.normalised_box((500, -80, 300), jump, source, target)
    assert box[1] > -80 * 0.5  # the crop's box moves with the skeleton
