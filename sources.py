"""The demo's sources, behind one interface (`Source`): a video file, a skeleton track, or a
live capture (live.py). Each yields (SourceFrame, landmarks (33, 4) in the frame's normalised
coordinates, or None where nobody was found), and owns what differs between them: how its
pictures are timed in a recording, how fast a window shows them, what it writes on each
picture (live: the meter), what its summary adds, and what Ctrl-C means to it.

    source = open_source("data/karate1.mp4", every=1, panel=256)   # or a .npz track, or "0"
"""
import functools
import logging
import time
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from live import LiveCapture, Meter, live_kind
from panels import status
from pipeline import StageClock
from pose_detector import PoseDetector, check_frame_size
from VideoReader import VideoReader, scan
from VideoWriter import check_fps
from files import check_file
from project import DanceError
from VideoSkeleton import PROBE_FRAMES, choose_detect_margin, probe_detect_margin

DEFAULT_SMOOTHER = "median"   # see Motion.py and the README's measurements
LIVE_SMOOTHER = "one_euro"    # causal: a live picture that waits for frames to come is late
# What a skeleton track may say, read back (it sets how many frames the demo writes, and how fast):
TRACK_MAX_FRAMES = 1_000_000  # processed frames: over 9 hours at 30 fps, longer than any video here
TRACK_MAX_EVERY = 10_000      # a track of every 10,000th frame holds a pose every 5 minutes: none to follow
TRACK_FPS = (1.0, 1000.0)     # frames per second, as VideoReader accepts a video's
MS = 1000                     # milliseconds in a second

log = logging.getLogger("dance")


def load_track(path):
    """A skeleton track written by `VideoSkeleton.py --save-track`: a dict of arrays."""
    check_file(path, "skeleton track")
    again = "write the track again with VideoSkeleton.py VIDEO --save-track FILE.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            track = {k: z[k] for k in ("skeletons", "frame_index", "every", "frames_read", "fps")}
        skeletons, index = track["skeletons"], track["frame_index"]
        if skeletons.ndim != 3 or skeletons.shape[1:] != (33, 4) or index.shape != (len(skeletons),):
            raise ValueError("arrays of the wrong shape")
        kinds = {"skeletons": "f", "frame_index": "iu", "every": "iu", "frames_read": "iu", "fps": "iuf"}
        wrong = [k for k, kind in kinds.items() if track[k].dtype.kind not in kind
                 or (k in ("every", "frames_read", "fps") and track[k].shape != ())]
        if wrong:
            raise DanceError(f"{path}: its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not "
                             f"{'a number' if len(wrong) == 1 else 'numbers'} of the right kind; {again}")
    except DanceError:
        raise
    except Exception as e:
        raise DanceError(f"{path}: not a skeleton track ({type(e).__name__}); "
                         f"write one with VideoSkeleton.py VIDEO --save-track FILE.npz") from None
    every, frames_read, fps = int(track["every"]), int(track["frames_read"]), float(track["fps"])
    for name, value, low, high in (("every", every, 1, TRACK_MAX_EVERY),
                                   ("frames_read", frames_read, len(skeletons), TRACK_MAX_FRAMES),
                                   ("fps", fps, *TRACK_FPS)):
        if not low <= value <= high:  # NaN fails too
            raise DanceError(f"{path}: its {name} {value} is not between {low:g} and {high:g}; {again}")
    bad = np.flatnonzero(~np.isfinite(skeletons[:, :, :2]).all(axis=(1, 2)))
    if len(bad) or np.any(np.diff(index) <= 0) or (len(index) and not 0 <= index[0] <= index[-1] < frames_read * every):
        where = f"frame {int(index[bad[0]])} holds no finite skeleton" if len(bad) else \
            "its frame numbers are damaged"
        raise DanceError(f"{path}: {where}; {again}")
    return track


class SourceFrame(NamedTuple):
    """One frame of a source, as the demo passes it along with its skeleton."""
    caption: str
    image: np.ndarray                # BGR uint8, the whole frame
    captured: Optional[float] = None  # live: time.monotonic() when it was captured
    time: Optional[float] = None     # a video: its display time in the video (seconds), where it is shown


class Source:
    """What the demo needs of a source. Attributes: `name` (for messages), `stem` (for output
    names), `path` (the file read, or None), `sound` (the file whose audio the recording keeps,
    or None), `fps`, `total` (processed frames, None when not known), `frame_size` (w, h),
    `normalisable` (its skeletons say where in the frame the person stands), `live`, `detects`
    (it finds the skeletons itself, rather than reading them).
    Iterating yields (SourceFrame, landmarks (33, 4) or None) per processed frame."""

    normalisable = False
    live = False
    detects = True   # finds each frame's skeleton (on the prefetch thread when the demo overlaps)
    default_smoother = DEFAULT_SMOOTHER
    output_prefix = ""            # before the default output's name
    progress_label = "demo"

    def __iter__(self):
        raise NotImplementedError

    @functools.cached_property
    def clock(self):
        """The time each frame spends being read and detected (pipeline.StageClock); the demo
        keeps its own stages in the same clock."""
        return StageClock()

    def skip(self, seconds):
        """Jump `seconds` ahead (the window's `n`); a source that cannot does nothing."""

    def time_of(self, frame):
        """When `frame` happened, in seconds, for a smoother that follows the real spacing."""
        return frame.time

    def stamp(self, frame):
        """The recording's time of the picture of `frame` (see VideoWriter.write): where the video shows it."""
        return frame.time

    def show_delay_ms(self):
        """How long a window waits on each picture: the source's own pace."""
        return max(1, int(MS / self.fps))

    def shown(self, picture, frame):
        """`picture` (of `frame`) as it is handed on to be shown: as it is."""
        return picture

    def interrupted(self, recording):
        """Ctrl-C (or SIGTERM) while playing: a file's demo stops with it. Call inside the handler."""
        raise  # the interrupt being handled, on its way

    def summary(self):
        """What the demo's summary adds for this kind of source."""
        return {}


class VideoSource(Source):
    """Source frames from a video, each with the source's skeleton found live, in the
    coordinates of the whole frame (None where nobody is found)."""

    normalisable = True  # the skeletons say where in the frame the person stands

    def __init__(self, path, every, panel):
        self.path, self.every, self.panel = Path(path), every, panel
        self.name, self.stem, self.sound = str(self.path), self.path.stem, self.path
        with VideoReader(self.path) as probe:  # a bad source fails now, before any long work
            check_frame_size(probe.size, self.path)
            self.frame_size = probe.size
            # One pass through it first: its frames counted and timed (a stream may not know), and
            # a sample on which the detection border is chosen (a border where it helps: tight crops).
            survey = scan(self.path, PROBE_FRAMES)
            self.detect_margin = probe_detect_margin(probe, survey=survey)
        # The output's rate: the source's usual rate (a phone's variable rate: its densest stretches,
        # so no frame need be left out); each frame is placed at its own time (see VideoWriter).
        self.fps = check_fps(survey.fps, every, self.path)
        self.total = -(-survey.count // every)
        self._skip = 0   # frames to jump, asked by the window's `n` (read by the thread that reads)

    def __iter__(self):
        with VideoReader(self.path) as video, PoseDetector(tracking=True, margin=self.detect_margin) as det:
            for index, frame in self.clock.timed(video, "read"):
                with self.clock("detect"):
                    ske = det.detect(frame)
                yield SourceFrame(f"source {index}", frame, time=video.time), None if ske is None else ske.landmarks
                jump, self._skip = self._skip, 0
                video.skip(self.every - 1 + jump)

    def skip(self, seconds):
        self._skip += int(seconds * self.fps * self.every)


class TrackSource(Source):
    """Source skeletons from a track file, shown as stick figures on black. A track holds
    crop coordinates only, so each "frame" is a black square the skeleton is already
    centred in; frames of the original video where nobody was found come back as None."""

    normalisable = False  # a track does not say where in its frame the person stood
    detects = False       # its skeletons are read, not found

    def __init__(self, path, every, panel):
        self.path, self.panel = Path(path), panel
        self.name, self.stem, self.sound = str(self.path), self.path.stem, None  # a track has no sound
        self.track = load_track(self.path)
        self.step = int(self.track["every"]) * every        # frames of the original video per output frame
        self.fps = check_fps(float(self.track["fps"]), every, self.path)
        self.total = -(-int(self.track["frames_read"]) // every)
        self.frame_size = (panel, panel)
        self._frame = 0

    def __iter__(self):
        by_frame = dict(zip(self.track["frame_index"].tolist(), self.track["skeletons"]))
        last = int(self.track["frames_read"]) * int(self.track["every"])
        self._frame = 0
        while self._frame < last:
            blank = np.zeros((self.panel, self.panel, 3), np.uint8)
            yield SourceFrame(f"track {self._frame}", blank), by_frame.get(self._frame)
            self._frame += self.step

    def skip(self, seconds):
        self._frame += int(seconds * self.fps) * self.step


class LiveSource(Source):
    """Source frames from a live capture (a camera, a stream, or a file played in real time;
    see live.py): the newest frame whenever the demo is ready, the ones in between dropped.
    The detection border is chosen on the first frame alone (causal). Its pictures carry the
    frame rate, the latency from capture to display and the frames dropped (a `Meter`)."""

    normalisable = False  # no whole video to measure: DanceDemo calibrates on the first seconds
    live = True
    default_smoother = LIVE_SMOOTHER
    output_prefix = "live_"
    progress_label = "live"

    def __init__(self, spec, panel, kind="file", capture=None):
        self.capture = capture or LiveCapture(spec, kind)  # `capture`: one made elsewhere (live.PushedCapture)
        try:
            check_frame_size(self.capture.size, self.capture.name)
        except DanceError:
            self.capture.close()
            raise
        self.path = Path(spec) if self.capture.kind == "file" else None
        self.fps, self.frame_size, self.panel = self.capture.fps, self.capture.size, panel
        self.name, self.stem = self.capture.name, self.capture.stem
        self.sound, self.total = None, None  # live: no sound, no end known
        self.meter = Meter()

    def __iter__(self):
        margin = choose_detect_margin([self.capture.first])
        with self.capture, PoseDetector(tracking=True, margin=margin) as det:
            det.warm_up(self.capture.first)   # before the capture starts: no frame waits for it
            for frame in self.capture:
                with self.clock("detect"):
                    ske = det.detect(frame.image)
                yield (SourceFrame(f"live {frame.seq}", frame.image, frame.captured),
                       None if ske is None else ske.landmarks)

    def time_of(self, frame):
        return frame.captured  # One-Euro follows the real spacing of the frames: their capture

    def stamp(self, frame):
        return time.monotonic()  # a live session is recorded as it was shown

    def show_delay_ms(self):
        return 1  # live frames come at their own pace

    def shown(self, picture, frame):
        self.meter.shown(frame.captured)
        return status(picture, f"{self.meter.fps:4.1f} fps  latency {self.meter.latency * MS:4.0f} ms  "
                               f"dropped {self.capture.dropped}")

    def interrupted(self, recording):
        """Ctrl-C ends a live session; what was shown is kept."""
        if recording:
            log.info("stopped: keeping the recording of what was shown")

    def summary(self):
        capture = self.capture
        return dict(captured=capture.captured, dropped=capture.dropped, stopped_early=capture.stopped_early,
                    **self.meter.summary())


def open_source(source, every, panel, live=False):
    """The Source that `source` names: a live one (a camera index, a device, a URL; or any video
    with `live`), a skeleton track (.npz), or a video file; a Source made by the caller is
    taken as it is. Refuses, in one line (DanceError), a track played live and --every with a
    live source."""
    if isinstance(source, Source):
        return source
    kind, is_track = live_kind(source), is_skeleton_track(source)
    if live or kind:
        if is_track:
            raise DanceError(f"{source}: a skeleton track cannot be played live; play a video with --live")
        if every != 1:
            raise DanceError(f"--every {every}: a live source takes every frame it has time for "
                             f"and drops the rest; leave --every out")
        return LiveSource(source, panel, kind or "file")
    return (TrackSource if is_track else VideoSource)(Path(source), every, panel)


def is_skeleton_track(source):
    """Whether `source` (a path or --source value) names a skeleton track (.npz): skeletons read,
    not detected (TrackSource)."""
    return not isinstance(source, Source) and Path(str(source)).suffix.lower() == ".npz"


def detects(source, live=False):
    """Whether the Source `open_source` makes of `source` finds each frame's skeleton, known
    before it is opened (a skeleton track does not)."""
    return source.detects if isinstance(source, Source) else live or not is_skeleton_track(source)
