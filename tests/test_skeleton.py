"""Skeleton maths on synthetic landmarks: no video, no detector (except on blank images); the
detector's quiet start."""
import os
import re
import threading

import numpy as np
import pytest

from pose_detector import PoseDetector
from quiet_mediapipe import quiet_stderr
from Skeleton import BONES, REDUCED_IDS, SIDE_COLOURS, Skeleton, crop_person, crop_square, square_box


def synthetic(seed=0, spread=0.2, centre=(0.5, 0.5)):
    rng = np.random.default_rng(seed)
    lm = np.zeros((33, 4), np.float32)
    lm[:, :2] = np.array(centre) + rng.uniform(-spread, spread, (33, 2))
    lm[:, 2] = rng.normal(0, 0.1, 33)
    lm[:, 3] = 1
    return Skeleton(lm)


def test_reduced_vector_takes_the_13_joints_in_mediapipe_order():
    lm = np.zeros((33, 4), np.float32)
    lm[:, 0] = np.arange(33) / 100
    lm[:, 1] = np.arange(33) / 200
    vec = Skeleton(lm).vector()
    assert list(REDUCED_IDS) == [0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    assert vec.shape == (26,) and vec.dtype == np.float32
    np.testing.assert_allclose(vec[0::2], REDUCED_IDS / 100, rtol=1e-6)
    np.testing.assert_allclose(vec[1::2], REDUCED_IDS / 200, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(Skeleton(lm)), vec)


def test_array_round_trips():
    ske = synthetic()
    np.testing.assert_array_equal(Skeleton.from_array(ske.to_array()).landmarks, ske.landmarks)
    np.testing.assert_array_equal(Skeleton.from_array(ske.to_array().ravel()).landmarks, ske.landmarks)
    back = Skeleton.from_array(ske.vector())
    np.testing.assert_array_equal(back.vector(), ske.vector())
    assert np.isnan(back.landmarks[1, 0])  # a landmark the reduced form does not carry
    with pytest.raises(ValueError):
        Skeleton.from_array(np.zeros(25))


def test_bounding_box_spans_the_known_landmarks():
    lm = np.full((33, 4), 0.5, np.float32)
    lm[3, :2] = (0.1, 0.7)
    lm[20, :2] = (0.9, 0.2)
    assert Skeleton(lm).boundingBox() == pytest.approx((0.1, 0.2, 0.9, 0.7))
    reduced_only = Skeleton.from_array(Skeleton(lm).vector())  # NaNs are ignored
    assert reduced_only.boundingBox() == pytest.approx((0.5, 0.5, 0.5, 0.5))


def test_crop_maps_the_box_onto_the_unit_square():
    lm = np.zeros((33, 4), np.float32)
    lm[0, :3] = (0.2, 0.3, 0.05)
    lm[1, :2] = (0.6, 0.9)
    lm[2, :2] = (0.4, 0.6)
    cropped = Skeleton(lm).crop(0.2, 0.3, 0.4, 0.6)
    np.testing.assert_allclose(cropped.landmarks[0, :2], (0, 0), atol=1e-6)
    np.testing.assert_allclose(cropped.landmarks[1, :2], (1, 1), atol=1e-6)
    np.testing.assert_allclose(cropped.landmarks[2, :2], (0.5, 0.5), atol=1e-6)
    assert cropped.landmarks[0, 2] == pytest.approx(0.05 / 0.4)
    assert Skeleton(lm).landmarks[1, 0] == pytest.approx(0.6)  # the original is untouched


def test_distance_is_a_metric_in_joint_units():
    a, b, c = synthetic(1), synthetic(2), synthetic(3)
    assert a.distance(a) == 0
    assert a.distance(b) == pytest.approx(b.distance(a))
    assert a.distance(c) <= a.distance(b) + b.distance(c) + 1e-9
    shifted = Skeleton(a.landmarks + np.array([0.03, 0.04, 0, 0], np.float32))
    assert a.distance(shifted) == pytest.approx(0.05, abs=1e-6)  # every joint moved by 0.05


@pytest.mark.parametrize("shape", [(64, 64), (128, 128), (360, 640), (720, 540)])
def test_draw_puts_left_and_right_limbs_in_their_colours(shape):
    image = np.zeros(shape + (3,), np.uint8)
    ske = synthetic(spread=0.3)
    out = ske.draw(image)
    assert out is image and image.any()
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert SIDE_COLOURS["left"] in colours and SIDE_COLOURS["right"] in colours
    # the middle of a left bone is painted in the left colour (unless a joint dot covers it)
    a, b, _ = next(bone for bone in BONES if bone[2] == "left")
    mid = ((ske.reduced()[a] + ske.reduced()[b]) / 2 * (shape[1], shape[0])).round().astype(int)
    assert tuple(image[mid[1], mid[0]]) in (SIDE_COLOURS["left"], (255, 255, 255))


def test_square_box_is_square_centred_and_holds_the_person():
    ske = synthetic(centre=(0.3, 0.6), spread=0.1)
    x0, y0, side = square_box(ske, (640, 360), margin=0.2)
    bx0, by0, bx1, by1 = ske.boundingBox()
    assert x0 <= bx0 * 640 and x0 + side >= bx1 * 640
    assert y0 <= by0 * 360 and y0 + side >= by1 * 360
    assert x0 + side / 2 == pytest.approx((bx0 + bx1) / 2 * 640, rel=1e-5)


def test_crop_square_pads_instead_of_slicing_out_of_bounds():
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    inside = crop_square(image, (5, 2, 16), 16)  # an in-bounds square at its own size is a copy
    np.testing.assert_array_equal(inside, image[2:18, 5:21])
    outside = crop_square(image, (-10, -10, 40), 40)  # mostly outside: replicated border
    assert outside.shape == (40, 40, 3)
    np.testing.assert_array_equal(outside[0, 0], image[0, 0])
    np.testing.assert_array_equal(outside[10:30, 10:40], image[:, :30])


def test_crop_person_keeps_skeleton_and_pixels_aligned():
    image = np.zeros((360, 640, 3), np.uint8)
    ske = synthetic(centre=(0.7, 0.5), spread=0.15)
    px = (ske.reduced()[5] * (640, 360)).round().astype(int)
    image[px[1] - 2:px[1] + 3, px[0] - 2:px[0] + 3] = 255  # a white dot on joint 5
    crop, cropped, box = crop_person(image, ske, 128)
    q = (cropped.reduced()[5] * 128).round().astype(int)
    assert crop.shape == (128, 128, 3) and crop[q[1], q[0]].max() > 100


def test_detector_finds_nobody_in_a_blank_image():
    with PoseDetector(tracking=False) as detector:
        assert detector.detect(np.full((128, 128, 3), 127, np.uint8)) is None


ENGINE_NOISE = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                b"W0000 00:00:1796561059.949606   10361 inference_feedback_manager.cc:114] Feedback manager ...\n")


def test_the_quiet_window_drops_the_engines_lines_and_keeps_everything_else(capfd):
    """What another thread writes to stderr while MediaPipe starts (a warning of the generating
    thread, a progress bar) comes out after the window; the engine's banners do not."""
    def ours():   # on file descriptor 2, as Python's stderr writes outside pytest's capture
        os.write(2, b"ours: a warning from another thread\n")
        os.write(2, b"progress\r")

    with quiet_stderr():
        os.write(2, ENGINE_NOISE)
        thread = threading.Thread(target=ours)
        thread.start()
        thread.join()
        os.write(2, b"demo: 11%|# | 21/192" + ENGINE_NOISE)   # after a progress bar's update, no line end between
    err = capfd.readouterr().err
    assert err == "ours: a warning from another thread\nprogress\rdemo: 11%|# | 21/192"


def test_overlapping_quiet_windows_pass_on_what_came_and_give_stderr_back_when_the_last_closes(capfd):
    first, second = quiet_stderr(), quiet_stderr()
    first.__enter__()
    second.__enter__()          # another demo starting its detector meanwhile
    os.write(2, ENGINE_NOISE + b"ours\nhalf a")
    first.__exit__(None, None, None)
    assert capfd.readouterr().err == "ours\n"   # passed on while the other window stays open
    os.write(2, b" line\n" + ENGINE_NOISE)      # still inside the second window
    second.__exit__(None, None, None)
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "half a line\nafter\n"


def test_a_failing_quiet_window_writes_out_everything(capfd):
    with pytest.raises(RuntimeError), quiet_stderr():
        os.write(2, ENGINE_NOISE)
        raise RuntimeError("the graph did not start")
    assert capfd.readouterr().err == ENGINE_NOISE.decode()


def test_a_detector_starts_without_the_engines_banners(capfd):
    with PoseDetector(tracking=False) as detector:
        detector.detect(np.full((128, 128, 3), 127, np.uint8))
    assert not re.search(r"TensorFlow Lite|absl::|\.cc:\d+\] ", capfd.readouterr().err)   # not ENGINE_LINE: its gaps
