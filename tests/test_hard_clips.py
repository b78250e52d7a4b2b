"""Harder driving clips made from footage at hand: turned, mirrored, at half size (hard_clips.py)."""
import numpy as np
import pytest

from hard_clips import VARIANTS, clip_path, make_clip, transform
from project import DanceError
from VideoReader import VideoReader


def bar_frame(w=64, h=48):
    frame = np.zeros((h, w, 3), np.uint8)
    frame[8:40, 30:34] = 255          # a standing figure: a vertical bar
    frame[8:12, 30:34] = (0, 0, 255)  # its head, red
    return frame


def test_a_turned_frame_leans_by_its_angle_and_loses_nothing():
    frame = bar_frame()
    for variant, angle in (("turned+35", 35.0), ("turned-20", -20.0)):
        out = transform(frame, variant)
        a = np.radians(abs(angle))
        assert out.shape[1] >= 64 * np.cos(a) + 48 * np.sin(a) - 2 and out.shape[0] >= 64 * np.sin(a) + 48 * np.cos(a) - 2
        assert out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0                # H.264 wants even sides
        assert abs(int(out.sum()) - int(frame.sum())) < 0.05 * frame.sum()    # the whole picture is still there
        ys, xs = np.nonzero(out.max(axis=2) > 128)
        lean = np.degrees(np.arctan2(np.polyfit(ys, xs, 1)[0], 1))            # x grows with y: the top leans left
        head = np.argwhere((out[..., 2] > 128) & (out[..., 0] < 100)).mean(axis=0)
        # turned clockwise (positive angle), the head moves right of the feet: x falls as y grows
        assert abs(-lean - angle) < 4 and (head[1] > xs.mean()) == (angle > 0), (variant, lean)


def test_mirrored_and_half_size():
    frame = bar_frame()
    np.testing.assert_array_equal(transform(frame, "mirrored"), frame[:, ::-1])
    half = transform(frame, "half-size")
    assert half.shape == frame.shape
    ys, xs = np.nonzero(half.max(axis=2) > 200)
    assert 14 <= ys.max() - ys.min() + 1 <= 17 and 1 <= xs.max() - xs.min() + 1 <= 3  # 32x4 became 16x2
    with pytest.raises(DanceError, match="unknown hard clip variant"):
        transform(frame, "upside-down")


def test_clips_are_made_once_into_the_cache_with_every_frame(clip, private_cache):
    path = make_clip(clip, "turned+20")
    assert path == clip_path(clip, "turned+20") and path.is_relative_to(private_cache)
    with VideoReader(path) as made, VideoReader(clip) as source:
        assert made.frame_count == source.frame_count and made.size[0] > source.size[0]
    stamp = path.stat().st_mtime_ns
    assert make_clip(clip, "turned+20") == path and path.stat().st_mtime_ns == stamp  # reused
    assert len(VARIANTS) == 6
