"""VideoReader and VideoSkeleton on a short real clip cut from karate1.mp4."""
import numpy as np
import pytest

import pose_detector
from conftest import write_clip
from project import DanceError
from VideoReader import VideoReader
from VideoSkeleton import VideoSkeleton


def test_reader_reports_and_yields_every_frame(clip, karate_frames):
    with VideoReader(clip) as video:
        assert video.size == (640, 360) and video.frame_count == 60
        assert video.fps == pytest.approx(25)
        frames = list(video)
    assert [i for i, _ in frames] == list(range(60))
    assert frames[0][1].shape == (360, 640, 3) and frames[0][1].dtype == np.uint8


def test_reader_skip_moves_ahead(clip):
    with VideoReader(clip) as video:
        video.read()
        assert video.skip(10) == 10 and video.position == 11
        assert video.skip(1000) == 49 and video.read() is None


@pytest.mark.parametrize("content, problem", [(None, "no such"), (b"", "empty"),
                                              (b"this is not a video\n" * 10, "cannot be decoded")])
def test_reader_rejects_bad_files(tmp_path, content, problem):
    path = tmp_path / "bad.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DanceError, match=problem) as err:
        VideoReader(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_videoskeleton_extracts_caches_and_reloads(clip, private_cache):
    vs = VideoSkeleton(clip, every=2, size=96, progress=False)
    assert not vs.loaded_from_cache and vs.cache_file.exists()
    assert vs.cache_file.parent == private_cache  # never beside the video
    assert vs.frames_read == 30 and 10 <= len(vs) < 30  # the karateka turns: some frames have no pose
    assert np.all(vs.frame_index % 2 == 0) and np.all(np.diff(vs.frame_index) > 0)
    assert vs.images().shape == (len(vs), 96, 96, 3)
    assert vs.vectors().shape == (len(vs), 26)
    # the person is inside their crop, with room around them
    box = np.array([s.boundingBox() for s in vs.ske])
    assert box[:, :2].min() > -0.05 and box[:, 2:].max() < 1.05

    again = VideoSkeleton(clip, every=2, size=96, progress=False)
    assert again.loaded_from_cache
    np.testing.assert_array_equal(again.skeletons, vs.skeletons)
    np.testing.assert_array_equal(again.frame_index, vs.frame_index)
    np.testing.assert_array_equal(again.readImage(3), vs.readImage(3))

    other = VideoSkeleton(clip, every=3, size=96, progress=False)  # other settings: own cache
    assert not other.loaded_from_cache and other.cache_file != vs.cache_file


def test_videoskeleton_recomputes_when_the_video_changes(clip, karate_frames):
    first = VideoSkeleton(clip, every=3, progress=False)
    write_clip(clip, karate_frames[:30])  # same path, different content
    second = VideoSkeleton(clip, every=3, progress=False)
    assert not second.loaded_from_cache and second.frames_read == 10 != first.frames_read
    assert second.cache_file == first.cache_file


def test_videoskeleton_force_recomputes(clip):
    VideoSkeleton(clip, every=4, progress=False)
    assert not VideoSkeleton(clip, every=4, force=True, progress=False).loaded_from_cache


def test_damaged_cache_is_reported(clip):
    vs = VideoSkeleton(clip, every=4, progress=False)
    data = vs.cache_file.read_bytes()
    vs.cache_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(DanceError, match="damaged") as err:
        VideoSkeleton(clip, every=4, progress=False)
    assert str(vs.cache_file) in str(err.value)
    assert VideoSkeleton(clip, every=4, force=True, progress=False).skeCount() == len(vs)


def test_no_person_gives_an_error_and_no_cache(empty_scene, private_cache):
    with pytest.raises(DanceError, match="no person found") as err:
        VideoSkeleton(empty_scene, progress=False)
    assert str(empty_scene) in str(err.value)
    assert not list(private_cache.glob("*"))


def test_interrupted_extraction_resumes_to_the_same_result(clip, monkeypatch, private_cache):
    full = VideoSkeleton(clip, every=2, progress=False)
    calls, real_detect = [0], pose_detector.PoseDetector.detect

    def detect_then_interrupt(self, image):
        calls[0] += self.tracking  # the extraction's detector (the border is chosen with static ones first)
        if calls[0] == 12:
            raise KeyboardInterrupt
        return real_detect(self, image)

    monkeypatch.setattr(pose_detector.PoseDetector, "detect", detect_then_interrupt)
    full.cache_file.unlink()
    with pytest.raises(KeyboardInterrupt):
        VideoSkeleton(clip, every=2, progress=False)
    assert full.partial_file.exists() and not full.cache_file.exists()
    monkeypatch.setattr(pose_detector.PoseDetector, "detect", real_detect)
    resumed = VideoSkeleton(clip, every=2, progress=False)
    assert not full.partial_file.exists() and resumed.frames_read == full.frames_read
    # The tracker is run again over the frames before the resume point (all of them here: fewer
    # than RESUME_WARM_UP), so it resumes in the state it had: the same skeletons to the bit.
    np.testing.assert_array_equal(resumed.frame_index, full.frame_index)
    np.testing.assert_array_equal(resumed.skeletons, full.skeletons)


def two_people(frames, alone=5, gone=(20, 28)):
    """40 frames 1280 wide: the karateka on the left (missing in frames `gone`), from frame
    `alone` on a second person (the same frames mirrored) on the right. (Frames 28-40 of
    `karate_frames` show a turn no detector finds, so the first 28 are played, then 12 again.)"""
    frames = list(frames[:28]) + list(frames[:12])
    grey = np.full_like(frames[0], 128)
    return [np.hstack([grey if gone[0] <= i < gone[1] else f, grey if i < alone else f[:, ::-1]])
            for i, f in enumerate(frames)]


def test_extraction_follows_the_first_person_and_says_another_is_in_view(tmp_path, karate_frames, caplog):
    clip = write_clip(tmp_path / "two.mp4", two_people(karate_frames))
    with caplog.at_level("WARNING", logger="dance"):
        videoSke = VideoSkeleton(clip, progress=False)
    x = np.nanmean(videoSke.frame_landmarks()[:, [11, 12, 23, 24], 0], axis=1)
    assert len(x) >= 30 and np.all(x < 0.5)  # never the person on the right
    assert not set(videoSke.frame_index.tolist()) & set(range(20, 28))  # while the first is gone: nobody
    assert "more than one person in view" in caplog.text and "followed throughout" in caplog.text


def test_after_a_long_absence_the_detector_follows_another_person_and_says_so(karate_frames, monkeypatch, caplog):
    monkeypatch.setattr(pose_detector, "FOLLOW_CALLS", 3)
    found = []
    with caplog.at_level("WARNING", logger="dance"), pose_detector.PoseDetector(tracking=True, margin=0) as detector:
        for frame in two_people(karate_frames):
            ske = detector.detect(frame)
            found.append(None if ske is None else float(np.nanmean(ske.landmarks[[11, 12, 23, 24], 0])))
        assert detector.switches and 20 < detector.switches[0] <= 25
    assert all(x is None or x < 0.5 for x in found[:20]) and any(x is not None and x > 0.5 for x in found[20:])
    assert "another was followed from frame" in caplog.text


def test_blank_out_fills_the_persons_box_with_the_frames_median_colour(karate_frames):
    """The fill is the median of every pixel of a small frame, of a grid of about BLANK_SAMPLES
    of a large one (the whole median of a 1080p frame took 60 ms, on the live frame's path);
    the frame given is left as it was."""
    landmarks = np.full((33, 4), np.nan, np.float32)
    landmarks[:2, :2] = [[0.4, 0.3], [0.6, 0.7]]                       # a box: x 0.4-0.6, y 0.3-0.7
    small = karate_frames[0][:100, :160].copy()                    # 16,000 pixels: every one of them
    large = np.kron(karate_frames[0], np.ones((3, 3, 1), np.uint8))  # 1920x1080, the same picture
    grow = pose_detector.BLANK_GROW * 0.2, pose_detector.BLANK_GROW * 0.4
    assert small.shape[0] * small.shape[1] <= pose_detector.BLANK_SAMPLES < large.shape[0] * large.shape[1]
    for frame, exact in ((small, True), (large, False)):
        h, w = frame.shape[:2]
        cols = int(w * (0.4 - grow[0])), int(w * (0.6 + grow[0]))
        rows = int(h * (0.3 - grow[1])), int(h * (0.7 + grow[1]))
        before = frame.copy()
        out = pose_detector.blank_out(frame, landmarks)
        np.testing.assert_array_equal(frame, before)
        fill = np.median(frame.reshape(-1, 3), axis=0).astype(np.uint8)
        inside = out[rows[0] + 1:rows[1] - 1, cols[0] + 1:cols[1] - 1].reshape(-1, 3)   # a pixel off rounding
        assert (inside == inside[0]).all()
        assert np.array_equal(inside[0], fill) if exact else np.abs(inside[0].astype(int) - fill).max() <= 2
        outside = np.ones(frame.shape[:2], bool)
        outside[rows[0] - 1:rows[1] + 1, cols[0] - 1:cols[1] + 1] = False
        np.testing.assert_array_equal(out[outside], frame[outside])
