"""Reading video files.

`VideoReader` iterates the frames of a video (BGR uint8, as a player shows them: a phone's
rotation metadata is applied, and a non-square pixel shape is stretched to the display size)
and knows its fps, size, an estimate of its frame count and the time of each frame. A video
is only ever read forwards from its start: streams that cannot seek (a live-recorded webm,
MPEG-TS) land somewhere else than asked when they seek, so going back means opening the file
again. `scan` reads a video through once to count its frames, time them and sample a few.
Problems with the file surface as a `DanceError` whose message names the file, what is wrong
and what to do; the command-line entry points print that one line and exit non-zero.
"""
import math
import os
from pathlib import Path
from typing import NamedTuple

# FFmpeg prints its own complaints ("moov atom not found") straight to the terminal;
# we report those problems ourselves, in one line, so keep it quiet.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
import cv2  # noqa: E402  (the variable above must be set first)
import numpy as np  # noqa: E402

from files import check_file, opencv_path  # noqa: E402
from mp4_display import mirrored_display  # noqa: E402
from project import DanceError, evenly_spaced  # noqa: E402

MAX_FRAME_COUNT = 10 ** 8  # a container claiming more frames (or fewer than 1) does not know: 46 days at 25 fps
SAME_RATE = 0.01       # a measured frame rate within 1% of the container's is the container's (rounding of times)
SAR_TOLERANCE = 0.01   # pixels less than 1% from square are left as stored: a resize for no visible change
                       # (scaling to an odd size, 641x361, leaves a SAR of 1.0012 behind)


class VideoReader:
    """Frames of a video file, in order, from its start.

        with VideoReader("data/karate1.mp4") as video:
            print(video.fps, video.frame_count, video.size)
            for index, frame in video:   # frame: BGR uint8 (height, width, 3)
                ...                      # video.time: its display time, in seconds

    Frames come as a player shows them: turned upright and mirrored as the display matrix
    says (rotation metadata; a mirror, in an mp4 or mov, see `mirrored_display`) and, where
    the pixels are not square (a sample aspect ratio other than 1:1, as DV and some broadcast
    and phone formats store them), stretched to the display size, so that a person keeps
    their proportions. A container's clean aperture (a crop that few players apply) is not.
    `time` is the display time of the frame read last, in seconds from the video stream's
    start, from its timestamp: at a variable frame rate (phones) frames are not 1 / fps
    apart. Reading only goes forwards (`seek` backwards reopens the file).
    `frame_count` is the container's count, an estimate: 0 where it is
    unknown or absurd (a live-recorded webm claims -2.3e17), exact once the video has been
    read to its end (see `scan` for the count before the work).
    """

    def __init__(self, filename):
        self.filename = Path(filename)
        check_file(self.filename)
        self._flip = mirrored_display(self.filename)
        self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 1 <= fps <= 1000 else 25.0  # some containers carry no rate
        # The container's count; a damaged file may hold fewer decodable frames, a stream without
        # an index (live webm, MPEG-TS) only guesses, or gives nonsense.
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and 1 <= count <= MAX_FRAME_COUNT else 0
        # The pixel shape (sample aspect ratio): a player stretches the width by it, before turning.
        num, den = self._cap.get(cv2.CAP_PROP_SAR_NUM), self._cap.get(cv2.CAP_PROP_SAR_DEN)
        self._sar = num / den if num > 0 and den > 0 and math.isfinite(num / den) else 1.0
        # Whether OpenCV turned the frames by 90 or 270 degrees (with a flip, we turn them ourselves).
        self._turned = self._flip is None and int(round(self._cap.get(cv2.CAP_PROP_ORIENTATION_META))) % 180 == 90
        self._display_size = None
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise DanceError(f"{self.filename}: holds no decodable frame; check the file "
                             f"(is it truncated?) or convert it again")
        h, w = first.shape[:2]  # as decoded and turned upright
        if abs(self._sar - 1) > SAR_TOLERANCE:  # the stored width (the height, once turned) is stretched by it
            self._display_size = (w, max(1, round(h * self._sar))) if self._turned else \
                (max(1, round(w * self._sar)), h)
        self._first_time = self._frame_time()
        self._pending = self._display(first)
        self.height, self.width = self._pending.shape[:2]
        self.time = None  # the display time of the frame read last

    def _open(self):
        with opencv_path(self.filename) as name:
            self._cap = cv2.VideoCapture(name)
        # Phones store frames as the sensor saw them and say how to turn them (rotation
        # metadata); OpenCV ignores that unless asked, and a sideways person is a different pose.
        # A matrix that also mirrors, OpenCV reads as a turn (a mirror image as upside down):
        # then the frames are taken as stored and turned here (`_display`).
        self._cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, int(self._flip is None))
        if not self._cap.isOpened():
            raise DanceError(f"{self.filename}: cannot be decoded as a video "
                             f"(not a video, or a format OpenCV cannot read); convert it to mp4")
        self._next_index, self._last_time = 0, None

    def _display(self, frame):
        """A decoded frame as it is displayed: at its display size, turned and mirrored as its
        display matrix says where OpenCV does not."""
        if self._display_size is not None:
            shrink = self._display_size[0] * self._display_size[1] < frame.shape[0] * frame.shape[1]
            frame = cv2.resize(frame, self._display_size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        if self._flip is not None:
            transpose, mirror, upside_down = self._flip
            frame = frame.swapaxes(0, 1) if transpose else frame
            frame = np.ascontiguousarray(frame[::-1 if upside_down else 1, ::-1 if mirror else 1])
        return frame

    def _frame_time(self):
        """The display time (seconds since the video stream's start) of the frame just decoded,
        from its timestamp; where there is none, or it does not move forwards (a container
        without timestamps), one frame after the previous one."""
        t = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        if self._last_time is not None and not (math.isfinite(t) and t > self._last_time):
            t = self._last_time + 1 / self.fps
        elif not math.isfinite(t):
            t = 0.0
        self._last_time = t
        return t

    @property
    def size(self):
        """(width, height) in pixels, as displayed."""
        return self.width, self.height

    def read(self):
        """The next frame (BGR uint8), or None at the end of the video; `time` becomes its time."""
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self.time = self._first_time
        else:
            ok, frame = self._cap.read()
            if not ok:
                self._reached_end()
                return None
            self.time = self._frame_time()
            frame = self._display(frame)
        self._next_index += 1
        return frame

    def _reached_end(self):
        self.frame_count = self._next_index  # counted: exact, whatever the container said

    def skip(self, count):
        """Skip `count` frames without decoding them into images; returns how many were skipped."""
        skipped = 0
        if count > 0 and self._pending is not None:
            self._pending = None
            self.time = self._first_time
            skipped = 1
        while skipped < count:
            if not self._cap.grab():
                self._next_index += skipped
                self._reached_end()
                return skipped
            self.time = self._frame_time()
            skipped += 1
        self._next_index += skipped
        return skipped

    def seek(self, index):
        """Go to frame `index` (the next read() returns it), exactly: by reading forwards, from the
        start again (the file reopened) when it lies behind. Never by the container's seek, which
        on a stream without an index lands elsewhere, or nowhere, and says it did as asked."""
        index = int(index)
        if index < self._next_index:
            self._cap.release()
            self._open()
            self._pending = None
        self.skip(index - self._next_index)

    @property
    def position(self):
        """Index of the frame the next read() returns."""
        return self._next_index

    def __iter__(self):
        """Yield (index, frame) until the end of the video."""
        while True:
            index = self._next_index
            frame = self.read()
            if frame is None:
                return
            yield index, frame

    def __len__(self):
        return self.frame_count

    def release(self):
        self._cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Scan(NamedTuple):
    """What one pass through a video found (see `scan`)."""
    count: int            # frames it holds, counted
    times: np.ndarray     # (count,) float64: each frame's display time, seconds since the first
    samples: list         # (index, frame) pairs spread evenly over the video, frames as VideoReader reads them
    container_fps: float  # the rate the container states (an average, for a variable rate)

    @property
    def fps(self):
        """The video's usual frame rate, from its frames' times (1 / the median interval): for a
        variable rate (phones), the rate of its densest stretches, not the container's average."""
        gaps = np.diff(self.times)
        gaps = gaps[gaps > 0]
        rate = 1 / float(np.median(gaps)) if len(gaps) else self.container_fps
        return self.container_fps if abs(rate - self.container_fps) <= SAME_RATE * self.container_fps else rate


def scan(filename, samples=0):
    """Read a video once from its start, without seeking: its frame count, every frame's time,
    and about `samples` frames spread evenly over it (between `samples` and twice as many are
    kept while reading, their spacing doubled as the video turns out longer, since how long it
    is may be known only at its end). Costs a decode of the whole video (skipped frames are not
    converted), a fraction of what detecting a person in each costs."""
    kept, stride, times = [], 1, []
    with VideoReader(filename) as video:
        while True:
            index = video.position
            if samples and index % stride == 0:
                frame = video.read()
                if frame is None:
                    break
                kept.append((index, frame))
                if len(kept) >= 2 * samples:  # the video is longer than thought: half as many, twice as far apart
                    kept, stride = kept[::2], stride * 2
            elif not video.skip(1):
                break
            times.append(video.time)
        fps = video.fps
    t = np.asarray(times, np.float64)
    picks = [kept[i] for i in evenly_spaced(len(kept), samples)] if kept else []
    return Scan(len(times), t - t[0] if len(t) else t, picks, fps)
