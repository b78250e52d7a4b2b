"""Streams as they come (issue 21): streams that cannot seek, frames and sound at their own
times, and frames shown at their display geometry. Each input is made here, with ffmpeg, from
a few frames of karate1.mp4 or from synthetic frames."""
import subprocess

import cv2
import numpy as np
import pytest

import hard_clips
from conftest import run, write_clip
from VideoReader import VideoReader, scan
from VideoSkeleton import VideoSkeleton
from VideoWriter import ffmpeg as ffmpeg_exe, stream_starts

FPS = 25
SR = 8000   # audio compared at this rate (samples per second)


def ffmpeg(*args):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True, timeout=120)


@pytest.fixture(scope="module")
def short(karate_path, tmp_path_factory):
    """40 frames of karate1.mp4 (from 4 s, the person moving), H.264, with its sound."""
    path = tmp_path_factory.mktemp("streams") / "short.mp4"
    ffmpeg("-ss", 4, "-i", karate_path, "-frames:v", 40, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           path)
    return path


BITS = 6  # frames numbered up to 2 ** BITS - 1


def numbered_clip(path, count=40, size=(96, 96)):
    """A clip whose frame n shows n in binary, one horizontal band per bit (white for 1): which
    frame a picture is can be read off it, through lossy coding and a left-right mirror."""
    rows = np.repeat(np.arange(BITS), size[1] // BITS)
    frames = [np.repeat(np.where((n >> rows) & 1, 255, 0).astype(np.uint8)[:, None, None], size[0], 1).repeat(3, 2)
              for n in range(count)]
    return write_clip(path, frames, FPS)


def frame_numbers(path):
    """(the number each frame of a numbered clip shows, the video's rate)."""
    with VideoReader(path) as video:
        numbers = []
        for _, frame in video:
            bands = frame.mean(axis=(1, 2))[:BITS * (frame.shape[0] // BITS)].reshape(BITS, -1).mean(axis=1)
            numbers.append(int(sum(1 << bit for bit in range(BITS) if bands[bit] > 128)))
        return np.array(numbers), video.fps


# ---- 1. streams that cannot seek, or seek badly ----
@pytest.mark.parametrize("kind", ["live.webm", "plain.ts"])
def test_a_stream_that_cannot_seek_is_read_whole_each_frame_under_its_number(short, tmp_path, kind):
    """Before: the border probe seeked about and back to frame 0; a live-recorded webm (no index,
    a frame count of -2.3e17) then gave no frame at all (exit 2), an MPEG-TS 39-63 of 192 frames,
    numbered from one in the middle."""
    stream = tmp_path / kind
    if kind.endswith(".webm"):
        ffmpeg("-i", short, "-c:v", "libvpx", "-b:v", "1M", "-deadline", "realtime", "-c:a", "libopus", "-live", 1,
               stream)
    else:
        ffmpeg("-i", short, "-c", "copy", stream)
    with VideoReader(stream) as video:
        assert 0 <= video.frame_count <= 10 ** 8  # never the container's nonsense
    assert scan(stream).count == 40
    result = run("VideoSkeleton.py", stream, "--save-track", tmp_path / "track.npz")
    assert result.returncode == 0, result.stderr
    assert "frames read: 40" in result.stdout
    got, want = VideoSkeleton(stream, progress=False), VideoSkeleton(short, progress=False)
    assert got.frames_read == 40 and len(got) >= max(20, len(want) - 3)
    mine = dict(zip(want.frame_index.tolist(), want.frame_landmarks()))
    common = [(k, lm) for k, lm in zip(got.frame_index.tolist(), got.frame_landmarks()) if k in mine]
    assert len(common) >= len(got) - 2
    # each under its own number: where the person stood in the same frame of the mp4
    errors = [np.nanmedian(np.abs(lm[:, :2] - mine[k][:, :2])) for k, lm in common]
    assert np.median(errors) < 0.01 and max(errors) < 0.05, errors


def test_going_back_in_a_stream_reopens_it_and_lands_exactly(short, tmp_path):
    stream = tmp_path / "plain.ts"
    ffmpeg("-i", short, "-c", "copy", stream)
    with VideoReader(stream) as video:
        frames = [f for _, f in video]
        assert video.frame_count == 40  # counted
        for index in (30, 5, 0, 39):
            video.seek(index)
            assert video.position == index and np.array_equal(video.read(), frames[index])


# ---- 2. time ----
def test_a_variable_rate_clip_keeps_each_frame_at_its_time(tmp_path):
    """Frames 10-29 of a 25 fps clip kept one in two (a phone's variable rate): 30 frames over
    1.6 s. The copy is written at 25 fps, each source frame from its own time on: the kept
    ones twice in the sparse stretch (before: 30 frames at the average 18.75 fps, the middle
    0.4 s away from its sound)."""
    source = numbered_clip(tmp_path / "numbered.mp4")
    vfr = tmp_path / "vfr.mp4"
    ffmpeg("-i", source, "-vf", r"select='not(between(n\,10\,29)*mod(n\,2))'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", vfr)
    survey = scan(vfr)
    assert survey.count == 30 and survey.fps == pytest.approx(FPS, rel=0.01)
    out = hard_clips.make_clip(vfr, "mirrored", tmp_path / "copy.mp4")
    assert np.array_equal(frame_numbers(source)[0], np.arange(40))
    shown, fps = frame_numbers(out)
    assert fps == pytest.approx(FPS) and len(shown) == 40
    expected = [k - k % 2 if 10 <= k < 30 else k for k in range(40)]  # the latest source frame at k / 25 s
    assert np.array_equal(shown, expected), shown


def test_the_demo_places_a_variable_rate_source_at_its_times(short, tmp_path):
    vfr = tmp_path / "vfr.mp4"
    ffmpeg("-i", short, "-vf", r"select='not(between(n\,10\,29)*mod(n\,2))'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "copy", vfr)
    out = tmp_path / "demo.mp4"
    result = run("DanceDemo.py", "--source", vfr, "--target", short, "--gen-type", "nearest", "--normalise", "off",
                 "--output", out)
    assert result.returncode == 0, result.stderr
    assert "30 frames" in result.stdout  # each source frame processed once
    with VideoReader(out) as video:
        frames = [f.astype(np.float32) for _, f in video]
        assert video.fps == pytest.approx(FPS)
    assert len(frames) == 40  # 1.6 s at 25 fps, as long as the source (before: 30 frames)
    # A new source frame changes the picture somewhere by most of the range (its caption at least,
    # "source <index>"); a repeat only by coding noise (measured: at most 36 against at least 213).
    change = [np.abs(frames[k + 1] - frames[k]).max() for k in range(39)]
    repeats = [k for k, c in enumerate(change) if c < 128]  # output frame k + 1 shows the same source frame as k
    assert repeats == list(range(10, 30, 2)), change


@pytest.fixture(scope="module")
def late_video(short, tmp_path_factory):
    """The clip with its video stream starting 1 s after its sound (a camera that records sound first)."""
    path = tmp_path_factory.mktemp("late") / "late.mp4"
    ffmpeg("-i", short, "-itsoffset", 1, "-i", short, "-map", "1:v", "-map", "0:a", "-c", "copy", path)
    return path


def sound(path):
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-vn", "-af", "asetpts=PTS-STARTPTS",
                          "-ac", "1", "-ar", str(SR), "-f", "s16le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16).astype(np.float32)


def where_in(source, out, start=0.1, length=0.5):
    """Seconds into `source`'s sound at which `out`'s sound begins (by cross-correlation)."""
    seg = out[int(start * SR):int((start + length) * SR)]
    scores = [np.dot(source[lag:lag + len(seg)], seg) / (np.linalg.norm(source[lag:lag + len(seg)]) + 1e-9)
              for lag in range(len(source) - len(seg))]
    return int(np.argmax(scores)) / SR - start


def test_the_sound_starts_at_the_first_frame_when_the_video_starts_late(short, late_video, tmp_path):
    """Before: the sound was taken from its own start, 1 s ahead of the picture."""
    video_start, audio_start = stream_starts(late_video)
    assert video_start - audio_start == pytest.approx(1.0, abs=0.05)
    out = hard_clips.make_clip(late_video, "mirrored", tmp_path / "copy.mp4")
    lag = where_in(sound(late_video), sound(out))
    assert lag == pytest.approx(video_start - audio_start, abs=1 / FPS)
    plain = hard_clips.make_clip(short, "mirrored", tmp_path / "plain.mp4")  # no offset: none added
    assert abs(where_in(sound(short), sound(plain))) < 1 / FPS


# ---- 3. display geometry ----
def torso_shape(vs):
    """Median shoulder width over torso height of a VideoSkeleton's people, in frame pixels."""
    lm = vs.frame_landmarks()
    x, y = lm[:, :, 0] * vs.frame_size[0], lm[:, :, 1] * vs.frame_size[1]
    return float(np.median(np.hypot(x[:, 11] - x[:, 12], y[:, 11] - y[:, 12])
                           / np.hypot(x[:, 11] - x[:, 23], y[:, 11] - y[:, 23])))


def test_non_square_pixels_are_read_at_their_display_size(short, tmp_path):
    """Stored 320x360 with pixels twice as wide as tall (SAR 2:1): a player shows 640x360.
    Before: read 320x360, the person half as wide (shoulders / torso 0.27 instead of 0.55)."""
    ana = tmp_path / "anamorphic.mp4"
    ffmpeg("-i", short, "-vf", "scale=320:360,setsar=2/1", "-an", ana)
    with VideoReader(ana) as a, VideoReader(short) as b:
        assert a.size == b.size == (640, 360)
        assert np.abs(a.read().astype(int) - b.read()).mean() < 8
    squeezed, square = VideoSkeleton(ana, progress=False), VideoSkeleton(short, progress=False)
    assert squeezed.frame_size == (640, 360) and len(squeezed) >= len(square) - 2
    assert torso_shape(squeezed) == pytest.approx(torso_shape(square), rel=0.15)


@pytest.mark.parametrize("options, turn", [
    (["-display_rotation", 90], lambda f: cv2.rotate(f, cv2.ROTATE_90_COUNTERCLOCKWISE)),
    (["-display_rotation", 180], lambda f: cv2.rotate(f, cv2.ROTATE_180)),
    (["-display_hflip"], lambda f: cv2.flip(f, 1)),
    (["-display_vflip"], lambda f: cv2.flip(f, 0)),
    (["-display_rotation", 90, "-display_hflip"], lambda f: cv2.flip(cv2.rotate(f, cv2.ROTATE_90_COUNTERCLOCKWISE), 1)),
])
def test_display_matrices_turn_and_mirror_frames_as_a_player_does(short, tmp_path, options, turn):
    """A display matrix that mirrors (before: OpenCV read a mirror image as turned upside down)."""
    path = tmp_path / "turned.mp4"
    ffmpeg(*options, "-i", short, "-frames:v", 3, "-c", "copy", path)
    player = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe",
                             "-c:v", "png", "-"], capture_output=True, check=True).stdout  # ffmpeg applies the matrix
    shown = cv2.imdecode(np.frombuffer(player, np.uint8), cv2.IMREAD_COLOR)
    with VideoReader(path) as video, VideoReader(short) as plain:
        first, upright = video.read(), plain.read()
    assert first.shape == shown.shape == turn(upright).shape
    assert np.abs(first.astype(int) - shown).mean() < 2 and np.abs(first.astype(int) - turn(upright)).mean() < 2
