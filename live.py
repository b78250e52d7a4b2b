"""Live sources for the demo: a camera, a network stream, or a video file played as one.

A live source does not wait for us. A capture thread reads each frame as it arrives and
keeps only the newest in a one-frame mailbox (`Mailbox`); the demo takes whatever is newest
whenever it is ready for the next. When detection and generation are slower than the
camera, the frames in between are dropped, never queued: a queue would put the picture
further behind with every frame (a latency without bound), while dropping keeps it to
about one frame's processing time. Each frame carries the moment it was captured, so the
demo can show its end-to-end latency (capture to display) beside its frame rate (`Meter`).

    --source 0                    camera 0 (cameras numbered as OpenCV numbers them)
    --source /dev/video2          a camera by its device path
    --source rtsp://host/stream   an RTSP, RTMP, HTTP(S), UDP, ... stream: anything FFmpeg opens
    --source clip.mp4 --live      a video file played at its own frame rate through the same
                                  code: a camera to test with on a machine that has none

Live sources have no sound here (a camera's microphone is not read), and nothing downstream
of them looks ahead beyond the smoother's stated delay (see DanceDemo).
"""
import contextlib
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from project import DanceError
from VideoReader import VideoReader

OPEN_TIMEOUT_S = 10        # a stream that has not opened by then is an error, not a hang
READ_TIMEOUT_S = 10        # a stream that sends nothing for this long has stopped
DEFAULT_CAMERA_FPS = 30.0  # what a camera that does not say its rate is taken to run at
METER_WINDOW_S = 1.0       # frames per second are counted over the last second
STOP_WAIT_S = 2.0          # how long closing waits for the capture thread
CAMERA_INDEX = re.compile(r"\d{1,3}")
LOG_LEVEL_SILENT = 0       # OpenCV's cv::utils::logging::LOG_LEVEL_SILENT
STREAM_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://.+")


class LiveFrame(NamedTuple):
    seq: int            # its number in the capture, from 0: a gap means frames were dropped
    image: np.ndarray   # BGR uint8
    captured: float     # time.monotonic() when it arrived


def live_kind(spec):
    """What a --source value names: "camera" (an index), "device" (/dev/...), "stream" (a URL),
    or None for a file."""
    text = str(spec)
    if CAMERA_INDEX.fullmatch(text):
        return "camera"
    if STREAM_URL.fullmatch(text):
        return "stream"
    if text.startswith("/dev/"):
        return "device"
    return None


class Mailbox:
    """Room for one frame, the newest. `put` replaces a frame nobody took (counted in
    `dropped`); `take` waits for the next frame, and returns None once the sender has ended
    and nothing is left."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame, self._ended = None, False
        self.dropped = 0

    def put(self, frame):
        with self._cond:
            self.dropped += self._frame is not None
            self._frame = frame
            self._cond.notify()

    def end(self):
        with self._cond:
            self._ended = True
            self._cond.notify()

    @property
    def ended(self):
        return self._ended

    def take(self, timeout=None):
        """The newest frame; None once the sender has ended (or nothing came for `timeout` s)."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._ended, timeout)
            frame, self._frame = self._frame, None
            return frame


@contextlib.contextmanager
def _opencv_quiet():
    """OpenCV logs its own warnings when a camera index does not exist ("can't open camera by
    index"); we say that ourselves, in one line."""
    level = cv2.getLogLevel()
    cv2.setLogLevel(LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.setLogLevel(level)


class Capture:
    """What the demo reads of a live source (LiveCapture, PushedCapture): iterating yields the
    newest frame each time (a LiveFrame), through a one-frame Mailbox (`_box`); `first` (its
    first frame, BGR), `fps`, `size` (w, h), `name`, `stem` (for file names), `captured` and
    `dropped` (frames so far), `paced` (a file released at its own times), `stopped_early` (the
    source went away); `close()` ends it, also as a context manager."""

    def close(self):
        raise NotImplementedError

    @property
    def dropped(self):
        return self._box.dropped

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LiveCapture(Capture):
    """Frames of a live source, read on a thread of their own; iterating yields the newest
    frame each time (a LiveFrame), the ones in between are dropped.

        with LiveCapture("0") as camera:        # a camera index, a /dev path, a URL
            for frame in camera:                # take your time: frames meanwhile are dropped
                ...
        camera.dropped, camera.captured         # how many were dropped, of how many

    `LiveCapture("clip.mp4")` plays a file in real time: each frame is released at its own time
    in the file (k / fps seconds after the first at a constant rate; a phone's variable rate as
    it was recorded), as a camera would deliver it. The source is opened, and its first frame
    read, in the constructor: a bad camera or address fails there, in one line.
    """

    def __init__(self, spec, kind=None):
        self.kind = kind or live_kind(spec) or "file"  # the caller may have asked live_kind already
        self.spec = str(spec)
        self.name = f"camera {spec}" if self.kind == "camera" else self.spec
        self.stem = f"camera{spec}" if self.kind == "camera" else \
            "stream" if self.kind == "stream" else Path(self.spec).stem
        self.paced = self.kind == "file"   # a file comes as fast as it decodes: release it at its rate
        self._video = self._cap = None
        if self.paced:
            self._video = VideoReader(spec)
            self.fps, self.size = self._video.fps, self._video.size
            first = self._video.read()
            self._start_time = self._video.time  # the file's frames are released at their own times
        else:
            first = self._open()
        self.first = first
        self._box, self._stop = Mailbox(), threading.Event()
        self._thread = None
        self.captured, self.stopped_early = 0, False

    def _open(self):
        """Open a camera, device or stream; return its first frame."""
        if self.kind == "device" and not Path(self.spec).exists():
            raise DanceError(f"{self.spec}: no such device; list the cameras with `ls /dev/video*`")
        with _opencv_quiet():
            if self.kind == "camera":
                cap = cv2.VideoCapture(int(self.spec))
            else:  # a URL or a device path: FFmpeg's timeouts keep a dead address from hanging us
                cap = cv2.VideoCapture(self.spec, cv2.CAP_ANY,
                                       [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_S * 1000,
                                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_S * 1000])
            ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            cap.release()
            hint = {"camera": "no camera with that number here; try another index, or list the cameras "
                              "with `ls /dev/video*`",
                    "device": "is it a camera, and free (not used by another program)?",
                    "stream": f"it did not open, or sent no picture, within {OPEN_TIMEOUT_S} s; check the "
                              f"address, and that the stream plays in a player such as ffplay or VLC"}[self.kind]
            raise DanceError(f"{self.name}: cannot be opened as a live source ({hint})")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)   # where the backend allows: no stale frames queued in the driver
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if np.isfinite(fps) and 1 <= fps <= 240 else DEFAULT_CAMERA_FPS
        self.size = (first.shape[1], first.shape[0])
        self._cap = cap
        return first

    def _read(self):
        if self.paced:
            return self._video.read()
        ok, frame = self._cap.read()
        return frame if ok else None

    def _run(self):
        start = time.monotonic()
        image, seq = self.first, 0
        try:
            while image is not None and not self._stop.is_set():
                if self.paced and self._stop.wait(max(0.0, start + self._video.time - self._start_time
                                                      - time.monotonic())):
                    break
                self._box.put(LiveFrame(seq, image, time.monotonic()))
                seq += 1
                self.captured = seq   # counted as they come: a summary never waits for the thread
                image = self._read()
            self.stopped_early = image is None and not self.paced   # a camera or stream went away
        finally:
            self._release()  # here, by the thread that reads: never while a read is under way
            self._box.end()

    def __iter__(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"capture {self.name}", daemon=True)
            self._thread.start()
        while (frame := self._box.take()) is not None:
            yield frame

    def _release(self):
        if self._video is not None:
            self._video.release()
        if self._cap is not None:
            self._cap.release()

    def close(self):
        """Stop reading. The capture thread releases the source when its read returns (a
        stream's read may take up to READ_TIMEOUT_S; the thread is a daemon, so it never holds
        the program open)."""
        self._stop.set()
        if self._thread is None:
            self._release()
        else:
            self._thread.join(STOP_WAIT_S)


class PushedCapture(Capture):
    """A live capture whose frames are handed in by someone else (`push`) instead of read by
    a thread of ours: the web page's stream handler, with a browser's webcam frames. Frames
    pushed while the demo is busy are dropped, as a camera's are. The capture ends when
    `close` is called or when no frame came for `idle_s` seconds (a closed tab says nothing)."""

    kind, paced = "pushed", False

    def __init__(self, first, fps, name="browser camera", idle_s=READ_TIMEOUT_S):
        self.name, self.stem, self.spec = name, "webcam", name
        self.fps, self.size, self.first = fps, (first.shape[1], first.shape[0]), first
        self.idle_s, self._box = idle_s, Mailbox()
        self.captured, self.stopped_early = 0, False
        self.push(first)

    def push(self, image):
        """Hand in the next frame (BGR uint8, the first frame's size)."""
        self._box.put(LiveFrame(self.captured, image, time.monotonic()))
        self.captured += 1

    def __iter__(self):
        while (frame := self._box.take(self.idle_s)) is not None:
            yield frame
        self.stopped_early = not self._box.ended   # nothing came: the sender went away

    def close(self):
        self._box.end()


class Meter:
    """Frames per second over the last second, and the latency of every frame shown (from
    its capture to the moment it is shown), for the live overlay and the summary."""

    def __init__(self, window=METER_WINDOW_S):
        self.window, self._times, self.latencies = window, deque(), []

    def shown(self, captured, now=None):
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times[0] < now - self.window:
            self._times.popleft()
        self.latencies.append(now - captured)

    @property
    def fps(self):
        span = self._times[-1] - self._times[0] if len(self._times) > 1 else 0.0
        return (len(self._times) - 1) / span if span > 0 else 0.0

    @property
    def latency(self):
        return self.latencies[-1] if self.latencies else 0.0

    def summary(self):
        """Median and 90th-percentile latency, in milliseconds."""
        if not self.latencies:
            return {"latency_ms": None, "latency_p90_ms": None}
        ms = np.asarray(self.latencies) * 1000
        return {"latency_ms": float(np.median(ms)), "latency_p90_ms": float(np.percentile(ms, 90))}
