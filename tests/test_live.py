"""The live source: a file played in real time through the same code as a camera, frames
dropped (never queued) when the demo falls behind, causal smoothing, clear errors."""
import functools
import http.server
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import ROOT, as_in_a_terminal, assert_one_line_error, read_until, run
from DanceDemo import DanceDemo
from live import LiveCapture, LiveFrame, Mailbox, Meter, PushedCapture, live_kind
from Motion import Calibration, pose_stats
from project import DanceError
from smoothing import OneEuroFilter, smooth_stream
from VideoReader import VideoReader


def test_live_sources_are_told_from_files():
    assert live_kind("0") == live_kind(12) == "camera"
    assert live_kind("/dev/video2") == "device"
    assert live_kind("rtsp://host:8554/cam") == live_kind("https://example.org/a.m3u8") == "stream"
    for path in ("karate1.mp4", "data/0.mp4", "dance 2024.mp4", "C:/videos/x.mp4"):
        assert live_kind(path) is None


def test_the_mailbox_keeps_only_the_newest_frame():
    box = Mailbox()
    for seq in range(3):
        box.put(seq)
    assert box.take() == 2 and box.dropped == 2     # the two it had no time for
    box.put(3)
    box.end()
    assert box.take() == 3 and box.take() is None   # what is left comes first, then the end


def test_pushed_frames_keep_the_newest_and_end_when_closed_or_no_longer_sent():
    image = np.zeros((36, 64, 3), np.uint8)
    capture = PushedCapture(image, fps=25, idle_s=0.2)
    for k in range(1, 4):
        capture.push(image + k)
    frames = iter(capture)
    first = next(frames)
    assert (first.seq, first.image[0, 0, 0], capture.dropped) == (3, 3, 3)  # the newest; the rest dropped
    assert capture.size == (64, 36) and capture.captured == 4
    start = time.monotonic()
    assert list(frames) == [] and capture.stopped_early                      # nothing sent for idle_s: the end
    assert 0.15 < time.monotonic() - start < 2
    closed = PushedCapture(image, fps=25)
    closed.close()
    assert [f.seq for f in closed] == [0] and not closed.stopped_early       # what was left, then the end


def test_a_file_plays_at_its_own_frame_rate(clip):
    with LiveCapture(clip) as capture:
        start = time.monotonic()
        frames = list(capture)
        elapsed = time.monotonic() - start
    assert capture.fps == 25 and capture.size == (640, 360)
    assert elapsed >= 59 / 25 - 0.05               # 60 frames at 25 fps take 2.36 s, not a decoding sprint
    assert capture.captured == 60 and len(frames) + capture.dropped == 60
    assert capture.dropped <= 3                     # a consumer that keeps up misses (next to) nothing
    times = np.array([f.captured for f in frames])
    assert np.median(np.diff(times)) == pytest.approx(1 / 25, abs=0.01)
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})


def test_a_slow_consumer_drops_frames_instead_of_queueing(clip):
    waits = []
    with LiveCapture(clip) as capture:
        for frame in capture:
            waits.append(time.monotonic() - frame.captured)  # how old the frame is when taken
            time.sleep(0.2)                                   # five times a frame's time at 25 fps
    assert capture.dropped >= 35 and len(waits) + capture.dropped == 60
    # A queue would serve frames ever later (the last about 2 s old); the mailbox serves the newest.
    assert max(waits) < 0.15, waits


def test_a_stream_url_is_read(clip):
    """An HTTP stream from a server on this machine: the URL path of LiveCapture. The clip is
    served as MPEG-TS, the container live streams use (an mp4 needs seeking to its index)."""
    from VideoWriter import ffmpeg
    stream = clip.with_suffix(".ts")
    subprocess.run([ffmpeg(), "-v", "error", "-i", str(clip), "-c:v", "libx264", "-f", "mpegts", str(stream)],
                   check=True, timeout=120)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LiveCapture(f"http://127.0.0.1:{server.server_port}/{stream.name}") as capture:
            assert capture.kind == "stream" and capture.size == (640, 360)
            frames = [f for f, _ in zip(capture, range(5))]
        assert len(frames) == 5 and frames[0].image.shape == (360, 640, 3)
    finally:
        server.shutdown()
        server.server_close()


def test_one_euro_follows_the_real_time_between_frames():
    rng = np.random.default_rng(0)
    xs = np.cumsum(rng.normal(size=(8, 3)), axis=0)
    plain, timed = OneEuroFilter(30), OneEuroFilter(30)
    assert all(np.allclose(plain(x), timed(x, t / 30)) for t, x in enumerate(xs))  # evenly spaced: the same
    late, even = OneEuroFilter(30), OneEuroFilter(30)
    late(xs[0], 0.0), even(xs[0], 0.0)
    # After a gap of 4 frames the filter trusts the new sample more (a longer dt means less smoothing).
    assert np.abs(late(xs[1], 4 / 30) - xs[1]).max() < np.abs(even(xs[1], 1 / 30) - xs[1]).max()
    items = [((f"f{t}", t / 30), x) for t, x in enumerate(xs)]
    streamed = [lm for _, lm in smooth_stream(items, "one_euro", 30, time_of=lambda p: p[1])]
    fresh = OneEuroFilter(30)
    assert all(np.allclose(a, fresh(x, t / 30)) for t, (a, x) in enumerate(zip(streamed, xs)))


def test_calibration_measures_only_the_first_skeletons(karate_path):
    from VideoSkeleton import VideoSkeleton
    video = VideoSkeleton(karate_path, progress=False)
    landmarks = video.frame_landmarks()
    calibrate = Calibration(video.frame_size, count=10)
    answers = [calibrate(lm) for lm in landmarks[:20]]
    assert all(a is None for a in answers[:9]) and answers[9] is not None
    assert answers[19] == answers[9] == pose_stats(landmarks[:10], video.frame_size)  # fixed once measured


def test_the_meter_counts_the_last_second():
    meter = Meter()
    for k in range(50):
        meter.shown(captured=k / 20 - 0.1, now=k / 20)     # 20 per second, each 100 ms after capture
    assert meter.fps == pytest.approx(20) and meter.latency == pytest.approx(0.1)
    assert meter.summary()["latency_ms"] == pytest.approx(100)


def test_the_live_demo_records_what_was_shown(clip, tmp_path):
    out = tmp_path / "live.mp4"
    demo = DanceDemo(clip, "nearest", target=clip, live=True)
    assert demo.smooth == "one_euro" and demo.norm is None   # causal: no look-ahead, no whole-video stats
    t0 = time.monotonic()
    stats = demo.draw(output=out)
    on_screen = time.monotonic() - t0  # under load the last picture is shown later than 2.4 s
    assert stats["captured"] == 60 and stats["frames"] + stats["dropped"] == 60
    assert 0 < stats["latency_ms"] < 1000 and not stats["stopped_early"]
    with VideoReader(out) as video:  # real time: the seconds it was on screen, at the source's rate
        assert video.fps == 25 and 25 <= video.frame_count <= round(on_screen * 25) + 2


def test_a_slowed_generator_drops_frames_and_keeps_its_latency(clip, tmp_path):
    demo = DanceDemo(clip, "nearest", target=clip, live=True)
    generate = demo.generator.generate

    def slow(skeleton):  # slowed on purpose: 0.15 s a frame against 0.04 s between frames
        time.sleep(0.15)
        return generate(skeleton)

    demo.generator.generate = slow
    stats = demo.draw(output=tmp_path / "slow.mp4")
    assert stats["dropped"] >= 20 and stats["frames"] + stats["dropped"] == 60
    assert stats["latency_p90_ms"] < 800, stats   # bounded by about one frame's work, not the backlog


def test_live_normalisation_is_measured_on_the_first_frames(clip, tmp_path, monkeypatch):
    import DanceDemo as demo_module
    monkeypatch.setattr(demo_module, "CALIBRATION_SECONDS", 0.4)   # 10 frames at 25 fps
    demo = DanceDemo(clip, "nearest", target=clip, live=True, normalise="on")
    assert demo.calibration.count == 10
    demo.draw(output=tmp_path / "calibrated.mp4")
    assert demo.calibration.stats is not None and len(demo.calibration.seen) == 10


@pytest.mark.parametrize("args, message", [
    (("--source", "7"), "camera 7: cannot be opened"),
    (("--source", "/dev/video97"), "/dev/video97: no such device"),
    (("--source", "rtsp://127.0.0.1:9/nothing"), "rtsp://127.0.0.1:9/nothing: cannot be opened"),
    (("--source", "{clip}", "--live", "--every", "2"), "--every 2: a live source"),
    (("--source", str(ROOT / "data" / "karate1_track.npz"), "--live"), "cannot be played live"),
])
def test_bad_live_sources_are_one_line_errors(clip, tmp_path, args, message):
    args = [a.format(clip=clip) for a in args]
    assert_one_line_error(run("DanceDemo.py", *args, "--gen-type", "nearest", "--target", clip,
                              "--output", tmp_path / "never.mp4"), message)
    assert not list(tmp_path.glob("*never*"))


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_ends_a_live_session_and_keeps_the_recording(karate_path, tmp_path, stop):
    out = tmp_path / "live.mp4"
    proc = subprocess.Popen([sys.executable, str(ROOT / "DanceDemo.py"), "--source", karate_path, "--live",
                             "--target", karate_path, "--gen-type", "nearest", "--output", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            preexec_fn=as_in_a_terminal)  # a background suite passes ignored signals on
    # Eleven pictures shown or more before the signal: eleven span at least ten frame periods, so
    # the recording (each picture held until the next, at the source's rate) holds ten frames at
    # least; ten shown could span nine, and a recording of nine under load.
    said = read_until(proc, rb"live: *(1[1-9]|[2-9]\d|\d{3,})frame")
    proc.send_signal(stop)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, (said + stderr).decode(errors="replace")
    assert b"keeping the recording" in said + stderr and b"wrote" in stdout
    with VideoReader(out) as video:
        assert video.frame_count >= 10
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_live_frames_carry_their_capture_time(clip):
    with LiveCapture(clip) as capture:
        frame = next(iter(capture))
    assert isinstance(frame, LiveFrame) and frame.seq == 0 and frame.captured <= time.monotonic()
    with pytest.raises(DanceError, match="no such video file"):
        LiveCapture(clip.parent / "missing.mp4")
