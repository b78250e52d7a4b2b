"""Reading video files, and where the project looks for its data.

`VideoReader` iterates the frames of a video (BGR uint8, as a player shows them: a phone's
rotation metadata is applied, and a non-square pixel shape is stretched to the display size)
and knows its fps, size, an estimate of its frame count and the time of each frame. A video
is only ever read forwards from its start: streams that cannot seek (a live-recorded webm,
MPEG-TS) land somewhere else than asked when they seek, so going back means opening the file
again. `scan` reads a video through once to count its frames, time them and sample a few.
Problems with the file surface as a `DanceError` whose message names the file, what is wrong
and what to do; the command-line entry points print that one line and exit non-zero.

Writing: every file the project writes goes through `atomic_path` (a temporary name
beside it, renamed when complete), so a crash, Ctrl-C or full disk never leaves half a
file, and a write that fails is a one-line error. `check_output` validates an output path
before the work that fills it starts: its ending, that it is no input and no cache, that
its folder can be written. `OutputClaim` holds an output for one process while it works,
so that two commands never write the same file at once.
"""
import contextlib
import errno
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

# FFmpeg prints its own complaints ("moov atom not found") straight to the terminal;
# we report those problems ourselves, in one line, so keep it quiet.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
import cv2  # noqa: E402  (the variable above must be set first)
import numpy as np  # noqa: E402

try:
    import fcntl  # POSIX: a lock held by a process ends with it, however it ends
except ImportError:  # Windows
    fcntl = None

PROJECT_DIR = Path(__file__).resolve().parent
log = logging.getLogger("dance")


class DanceError(Exception):
    """A problem with the user's input (a file, an argument), not a bug.

    Entry points print its message as one line and exit with status 2."""


MIN_OUTPUT_FPS = 1.0   # a video written at fewer frames per second is a slide show: refused
MAX_FRAME_COUNT = 10 ** 8  # a container claiming more frames (or fewer than 1) does not know: 46 days at 25 fps
SAME_RATE = 0.01       # a measured frame rate within 1% of the container's is the container's (rounding of times)
SAR_TOLERANCE = 0.01   # pixels less than 1% from square are left as stored: a resize for no visible change
                       # (scaling to an odd size, 641x361, leaves a SAR of 1.0012 behind)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # the images the project writes


def cache_location():
    """Where the project's caches live: $DANCE_CACHE when set, else cache/ in the project
    (VideoSkeleton.cache_dir checks that it is a folder)."""
    return Path(os.environ.get("DANCE_CACHE") or PROJECT_DIR / "cache")


def data_dir():
    """The folder of videos: $DANCE_DATA when set, else data/ in the project."""
    return Path(os.environ.get("DANCE_DATA") or PROJECT_DIR / "data")


def data_path(name):
    """A file in the data folder (a path that names a folder is returned as is)."""
    path = Path(name)
    return path if path.parent != Path(".") or path.exists() else data_dir() / path


def evenly_spaced(n, count):
    """Indices of `count` items spread evenly over `n` (first and last included; all of them
    when there are fewer than `count`): the frames a grid or a calibration pass looks at."""
    return np.linspace(0, n - 1, min(count, n)).round().astype(int)


# The signals that end long work as Ctrl-C does (the progress so far saved, the recording kept):
# SIGTERM is what `kill`, `timeout`, schedulers and container stops send, SIGHUP a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_last_stop = [signal.SIGINT]  # the stop signal heard last: the exit status says which


def stop_signals():
    """The STOP_SIGNALS this process listens to: those not ignored (a job started with `nohup`
    ignores SIGHUP, one started with `&` from a script ignores SIGINT; that choice is kept)."""
    return tuple(s for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN)


def note_stop(signum):
    """Remember that stop signal `signum` was heard (the command's exit status reports it)."""
    _last_stop[0] = signum


def interrupt(signum, frame=None):
    """A signal handler: raise KeyboardInterrupt, as Python's own SIGINT handler does."""
    note_stop(signum)
    raise KeyboardInterrupt


def cli_main(main):
    """Run `main()` as a command: a DanceError becomes one line on stderr and exit 2; Ctrl-C,
    SIGTERM and SIGHUP all stop it as Ctrl-C does (long work saves what it has; see
    STOP_SIGNALS) and exit 128 + the signal's number (130 for Ctrl-C), without a traceback."""
    if threading.current_thread() is threading.main_thread():
        for s in stop_signals():
            signal.signal(s, interrupt)
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed escaped, not a crash
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        sys.exit(main())
    except DanceError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        stopped_by = signal.Signals(_last_stop[0])
        print("interrupted" if stopped_by == signal.SIGINT else f"stopped by {stopped_by.name}", file=sys.stderr)
        sys.exit(128 + stopped_by)


def _temporary_name(path):
    """The temporary name `atomic_path` writes `path` under: hidden, with this process's id,
    the ending kept (for writers that pick the format from it, such as OpenCV)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def remove_stale_temporaries(path):
    """Delete temporary files of `path` left by processes that no longer run (killed with
    SIGKILL, or by a power cut): nothing else would ever clean them up."""
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.(\d+)\.tmp{re.escape(path.suffix)}$")
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return
    for tmp in candidates:
        match = pattern.match(tmp.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            tmp.unlink(missing_ok=True)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def write_error(path, error):
    """A DanceError for an OSError met while writing `path`: what happened, in words."""
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
              errno.EACCES: "no permission to write there", errno.EPERM: "no permission to write there",
              errno.EROFS: "the file system is read-only", errno.EISDIR: "it is a folder",
              errno.ENOTDIR: "a part of the path is a file, not a folder"}.get(error.errno,
                                                                                error.strerror or str(error))
    if error.errno in (errno.EEXIST, errno.ENOTDIR):  # a folder on the way is a file (mkdir: "File exists")
        blocking = next((p for p in reversed(Path(path).parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            reason = f"{blocking} is a file, not a folder; name another folder, or move that file"
    return DanceError(f"{path}: cannot write it: {reason}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside `path` to write to; when the block succeeds it is
    renamed to `path`, otherwise removed. A reader never finds a half-written file, and an
    OSError (full disk, no permission) becomes a DanceError naming `path`."""
    path = Path(path)
    tmp = _temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        with contextlib.suppress(OSError):  # a folder that never was (ENOTDIR) has no temporary to remove
            tmp.unlink(missing_ok=True)


def _same_file(a, b):
    try:
        return Path(a).resolve() == Path(b).resolve() or (Path(b).exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _inside(path, folder):
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except OSError:
        return False


def check_output(path, suffixes, what="output", inputs=(), cache=False):
    """Validate an output path before the work that fills it: its ending is one of
    `suffixes`, it is none of `inputs` (never write over what is being read), it is not in
    the cache folder unless it is a `cache` (the caches are read back by every command: a
    track written over one makes it "damaged"), it is not a folder or a device, and its
    folder exists or can be made and is writable (tried, not guessed). Returns it as a Path;
    a DanceError naming it otherwise."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise DanceError(f"{path}: the {what} must end in {' or '.join(suffixes)}")
    for source in inputs:
        if source is not None and _same_file(path, source):
            raise DanceError(f"{path}: is also an input of this command; write the {what} to another file")
    if not cache and _inside(path, cache_location()):
        raise DanceError(f"{path}: is in the cache folder {cache_location()}, whose files the project reads "
                         f"back; write the {what} elsewhere")
    if path.is_dir():
        raise DanceError(f"{path}: is a folder; name a file for the {what}")
    if path.exists() and not path.is_file():  # /dev/full, a pipe: a rename would replace the device itself
        raise DanceError(f"{path}: is not a regular file (a device or a pipe); name a file for the {what}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-test-"):
            pass
    except OSError as e:
        raise write_error(path, e) from None
    return path


class OutputClaim:
    """An output held by this process from before its work starts until it is written, so
    that a second command writing the same file stops at once with one line instead of
    silently replacing the first one's result when it ends (two trainers with one --out).

        with OutputClaim(out, "model"):
            ...check what is there, work, write out...

    The claim is a lock on a hidden file beside the output (.<name>.claim): the operating
    system ends the lock with its process, however it ends (Ctrl-C, SIGKILL, a power cut),
    so a claim is never left behind. Without fcntl (Windows) the file's exclusive creation
    is the claim, removed when released."""

    def __init__(self, path, what="output"):
        self.path, self.what = Path(path), what
        self.file = self.path.with_name(f".{self.path.name}.claim")
        self._fd = None

    def acquire(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            while self._fd is None:
                if fcntl is None:
                    self._fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                    break
                fd = os.open(self.file, os.O_CREAT | os.O_RDWR)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise FileExistsError from None
                # The holder before us may have removed the file between our open and our lock:
                # then we locked a name nobody else sees, and must try again.
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.file))
                except FileNotFoundError:
                    same = False
                if same:
                    self._fd = fd
                else:
                    os.close(fd)
        except FileExistsError:
            raise DanceError(f"{self.path}: another command is writing this {self.what} now (it holds "
                             f"{self.file.name}); wait for it to finish, or write to another file") from None
        except OSError as e:
            raise write_error(self.path, e) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())  # for people: which process holds it
        return self

    def release(self):
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.file.unlink()  # while still locked: the next claimant sees a fresh file
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def check_fps(fps, every, name):
    """The frame rate of a video made of every `every`-th frame of `name` (at `fps`);
    a DanceError when it would be a slide show."""
    out = fps / every
    if not math.isfinite(out) or out < MIN_OUTPUT_FPS:
        most = max(1, int(fps // MIN_OUTPUT_FPS))
        raise DanceError(f"--every {every}: {name} at {fps:g} frames/s would give {out:.3g} frames/s; "
                         f"use --every {most} or less")
    return out


@contextlib.contextmanager
def opencv_path(path):
    """A name under which OpenCV can open `path`. OpenCV takes names as UTF-8 and crashes (a
    segmentation fault) on one that is not (a Latin-1 'caf\\xe9.mp4', which Python holds with
    surrogates): such a file is reached through a symbolic link with a plain name, in a
    temporary folder removed afterwards. Open the file inside the block."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        with tempfile.TemporaryDirectory(prefix="dance-name-") as folder:
            link = Path(folder) / "video"
            os.symlink(os.path.abspath(path), link)
            yield str(link)
    else:
        yield text


def opencv_text(text):
    """What OpenCV's Hershey fonts can draw of `text`: its ASCII, anything else as '?' (they
    have no other letters, and a name that is not UTF-8 crashes cv2.putText)."""
    return str(text).encode("ascii", "replace").decode("ascii")


def write_image(path, image):
    """Write an image (its format from the name's ending) atomically; a DanceError naming the
    file when it cannot be written, where OpenCV would only return False."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DanceError(f"{path}: cannot write an image there: the name must end in {' or '.join(IMAGE_SUFFIXES)}")
    ok, encoded = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise DanceError(f"{path}: OpenCV cannot encode this image as {path.suffix}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())  # a full disk is an OSError: atomic_path says it in one line
    return path


def check_file(path, what="video"):
    """Raise a DanceError unless `path` is a non-empty regular file."""
    path = Path(path)
    if not path.exists():
        raise DanceError(f"{path}: no such {what} file (check the path, or set DANCE_DATA "
                         f"to the folder holding the videos)")
    if not path.is_file():
        raise DanceError(f"{path}: is not a file")
    if path.stat().st_size == 0:
        raise DanceError(f"{path}: the file is empty (0 bytes); copy the {what} again")


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

    # Names of the course code this toolkit grew from.
    def getTotalFrames(self):
        return self.frame_count

    def readFrame(self):
        return self.read()


MP4_CONTAINERS = {b"moov", b"trak", b"mdia"}  # the boxes on the way to a track's header and handler


def _mp4_boxes(f, end):
    """(type, start of its content, end) of each ISO base media box from f's position to `end`."""
    while f.tell() + 8 <= end:
        start = f.tell()
        size, kind = int.from_bytes(f.read(4), "big"), f.read(4)
        header = 8
        if size == 1:
            size, header = int.from_bytes(f.read(8), "big"), 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            return
        yield kind, start + header, start + size
        f.seek(start + size)


def _video_track_matrix(f, end):
    """The display matrix (a, b, c, d of the 3x3, as signed numbers) of the first video track
    under a box ending at `end`, or None."""
    for kind, content, stop in list(_mp4_boxes(f, end)):
        if kind == b"moov":
            f.seek(content)
            return _video_track_matrix(f, stop)
        if kind == b"trak":
            f.seek(content)
            matrix = handler = None
            for sub, sub_content, sub_stop in list(_mp4_boxes(f, stop)):
                if sub == b"tkhd":
                    f.seek(sub_content)
                    version = f.read(1)[0]
                    f.seek(sub_content + (4 + 32 if version == 1 else 4 + 20) + 16)  # past times, ids, layer...
                    m = [int.from_bytes(f.read(4), "big", signed=True) for _ in range(5)]
                    matrix = (m[0], m[1], m[3], m[4])
                elif sub == b"mdia":
                    f.seek(sub_content)
                    for leaf, leaf_content, _ in list(_mp4_boxes(f, sub_stop)):
                        if leaf == b"hdlr":
                            f.seek(leaf_content + 8)
                            handler = f.read(4)
            if handler == b"vide" and matrix is not None:
                return matrix
    return None


def mirrored_display(path):
    """How to show the frames of an mp4 or mov whose display matrix mirrors them (a front
    camera's or an editor's "flip"): (transpose, mirror left-right, upside down), applied in
    that order to the frames as stored; None when it does not mirror, or is no such file (OpenCV
    applies the turns of a matrix, but reads a mirroring one as a turn). The matrix is the
    track header's (ISO/IEC 14496-12, 8.3.2): a display point is (a x + c y, b x + d y)."""
    try:
        with open(path, "rb") as f:
            if f.read(12)[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
                return None
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(0)
            matrix = _video_track_matrix(f, end)
    except (OSError, IndexError):
        return None
    if matrix is None:
        return None
    a, b, c, d = (int(np.sign(v)) for v in matrix)
    if a * d - b * c >= 0 or (a * b != 0 or c * d != 0):  # no mirror, or not a multiple of 90 degrees
        return None
    if a == 0:  # x' = c y, y' = b x: the axes swapped, then each reversed where negative
        return True, c < 0, b < 0
    return False, a < 0, d < 0


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


def ffmpeg():
    """The ffmpeg binary inside the imageio-ffmpeg wheel (libx264 and AAC built in): nothing is
    downloaded, nothing needs installing by hand."""
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


STREAM_LINE = re.compile(r"^\s*Stream #\d+:\d+.*?: (Video|Audio): (.*)$", re.M)
STREAM_START = re.compile(r", start (-?\d+(?:\.\d+)?)")


def stream_starts(path):
    """(video, audio): the time, in seconds on the file's clock, at which the first video stream
    and the first audio stream start (0 where ffmpeg states none; audio None without any):
    a video stream may begin after its sound (MPEG-TS, a camera that starts recording sound
    first, a file cut or muxed with an offset), and only these say by how much."""
    said = subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                          text=True, errors="replace").stderr
    starts = {}
    for kind, rest in STREAM_LINE.findall(said):
        if kind not in starts and "(attached pic)" not in rest:  # cover art is no video stream
            match = STREAM_START.search(rest)
            starts[kind] = float(match.group(1)) if match else 0.0
    return starts.get("Video", 0.0), starts.get("Audio")


class VideoWriter:
    """An mp4 that plays everywhere (H.264, yuv420p, the index at the front for browsers),
    with the audio of `audio` (a video file) when it has any, written under a temporary name
    and renamed into place by `close()`: an error or Ctrl-C never leaves a half-written video
    behind (`discard()` removes the temporary file instead).

        with VideoWriter("output/demo.mp4", fps=25, inputs=[source], audio=source) as out:
            out.write(frame)            # every frame the same size, BGR uint8
            out.write(frame, time=t)    # or: shown from t seconds on (a source frame's time)

    Frames are piped raw to the ffmpeg binary that ships inside the imageio-ffmpeg wheel, at
    a constant `fps`. Written with its time, a frame is shown from that time until the next
    frame's (output frames of 1 / fps each: repeated where the frames are further apart, left
    out where they are closer, so each is on screen within half an output frame of its time),
    as a variable-rate phone video or a live session needs; without, each frame is one output
    frame. The audio starts with the first frame, at the sound the source plays with it
    (the times are on `audio`'s clock when it is the frames' source: a video stream that
    starts after its sound, or before, stays in step), and is cut (or padded with silence) to
    the video's length, so a video of every k-th source frame at fps / k keeps the sound in step.
    """

    def __init__(self, filename, fps, inputs=(), audio=None, cache=False):
        self.filename = check_output(filename, (".mp4",), "video", inputs, cache=cache)
        if not (math.isfinite(fps) and fps >= MIN_OUTPUT_FPS):
            raise DanceError(f"{self.filename}: cannot write a video at {fps:.3g} frames per second "
                             f"(at least {MIN_OUTPUT_FPS:g})")
        self._claim = OutputClaim(self.filename, "video").acquire()  # released by close() or discard()
        picture = self.filename.with_name(f"{self.filename.stem}-picture.mp4")  # before the sound is added
        for path in (self.filename, picture):
            remove_stale_temporaries(path)
        self._tmp, self._silent = _temporary_name(self.filename), _temporary_name(picture)
        self.fps, self.audio = fps, audio if audio is None else Path(audio)
        self.frames = 0
        self._ffmpeg = self._log = None
        self._first_time, self._held = None, None  # timed writes: the time of the first, the frame on screen

    def _start(self, width, height):
        # The picture first (its length is known only at the end); the sound is added in close().
        target = self._silent if self.audio else self._tmp
        command = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", f"{self.fps:.6g}",
                   "-i", "pipe:0", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",  # yuv420p needs even sides
                   "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                   "-movflags", "+faststart", str(target)]
        self._log = tempfile.TemporaryFile()
        # A session of its own: Ctrl-C in the terminal is for us to handle (a live recording is
        # finished and kept, anything else discarded), not a signal that stops ffmpeg mid-file.
        self._ffmpeg = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
                                        start_new_session=True)
        self.size = (width, height)

    def _sound_filter(self):
        """The audio filter that starts the sound where the first frame is: `audio`'s sound from
        its first sample is moved by where the first frame lies on its clock (trimmed when the
        sound started earlier, delayed by silence when later), then padded at the end."""
        video_start, audio_start = stream_starts(self.audio)
        offset = video_start + (self._first_time or 0.0) - (audio_start or 0.0)  # seconds into the sound
        steps = ["asetpts=PTS-STARTPTS"]
        if offset > 0:
            steps += [f"atrim=start={offset:.6f}", "asetpts=PTS-STARTPTS"]
        elif offset < 0:
            steps += [f"adelay=delays={-offset * 1000:.3f}:all=1"]
        return ",".join(steps + ["apad"])

    def _add_sound(self):
        """The video with the audio of `self.audio` from its first frame (see `_sound_filter`),
        cut or padded with silence to exactly the video's length (frames / fps); no audio track
        when the source has none."""
        command = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(self._silent),
                   "-i", str(self.audio), "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy", "-c:a", "aac",
                   "-b:a", "128k", "-af", self._sound_filter(), "-t", f"{self.frames / self.fps:.6f}",
                   "-movflags", "+faststart", str(self._tmp)]
        self._log.seek(0)
        self._log.truncate()
        return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=self._log).returncode

    def write(self, frame, time=None):
        """Add `frame` (BGR uint8, the size of the first): one output frame, or with `time`
        (seconds, on the clock of the source the frames come from, increasing) on screen from
        then until the next frame's time."""
        if time is None:
            self._emit(frame)
            return
        if self._first_time is None:
            self._first_time = time
        slot = round((time - self._first_time) * self.fps)  # the output frame it is first shown in
        if self._held is not None:
            while self.frames < slot:  # the previous frame stayed on screen until now
                self._emit(self._held)
        self._held = frame

    def _emit(self, frame):
        if self._ffmpeg is None:
            self._start(frame.shape[1], frame.shape[0])
        try:
            self._ffmpeg.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())
        except OSError:  # ffmpeg stopped (a full disk, a bad audio file): close() says why
            self.close()
        self.frames += 1

    def _ffmpeg_says(self):
        self._log.seek(0)
        lines = [line for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no message"

    def close(self):
        """Finish the file and move it into place (a video with no frame is not kept). A file
        that holds fewer frames than were written (a full disk) is an error, and is removed."""
        if self._held is not None:  # the last timed frame: on screen for one output frame
            held, self._held = self._held, None
            self._emit(held)
        if self._ffmpeg is None:
            self._claim.release()
            return
        proc, self._ffmpeg = self._ffmpeg, None
        try:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            returncode = proc.wait()
            if returncode == 0 and self.audio and self._add_sound() != 0:
                said = self._ffmpeg_says()
                if "No space left" in said:
                    raise OSError(errno.ENOSPC, said)
                # The picture is whole: a sound track that cannot be read (damaged, an odd codec)
                # costs the sound, not the video.
                log.warning("%s: the sound of %s could not be copied (%s); the video is written without sound",
                            self.filename, self.audio, said)
                os.replace(self._silent, self._tmp)
            if returncode != 0:
                said = self._ffmpeg_says()
                if "No space left" in said:
                    raise OSError(errno.ENOSPC, said)
                raise DanceError(f"{self.filename}: ffmpeg could not write the video ({said})")
            with opencv_path(self._tmp) as name:
                check = cv2.VideoCapture(name)  # count what is there
            written = int(check.get(cv2.CAP_PROP_FRAME_COUNT)) if check.isOpened() else 0
            check.release()
            if written != self.frames:
                raise DanceError(f"{self.filename}: cannot write it: {written} of {self.frames} frames could be "
                                 f"written (is the disk full?)")
            os.replace(self._tmp, self.filename)
        except OSError as e:
            raise write_error(self.filename, e) from None
        finally:
            self._tmp.unlink(missing_ok=True)
            self._silent.unlink(missing_ok=True)
            self._log.close()
            self._claim.release()

    def discard(self):
        self._held = None
        if self._ffmpeg is not None:
            self._ffmpeg.kill()
            self._ffmpeg.wait()
            self._ffmpeg = None
            self._log.close()
        self._tmp.unlink(missing_ok=True)
        self._silent.unlink(missing_ok=True)
        self._claim.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.discard()
