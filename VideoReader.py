"""Reading video files, and where the project looks for its data.

`VideoReader` iterates the frames of a video (BGR uint8, upright: a phone's rotation
metadata is applied) and knows its fps, frame count and size. Problems with the file
surface as a `DanceError` whose message names the file, what is wrong and what to do;
the command-line entry points print that one line and exit non-zero.

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
import subprocess
import sys
import tempfile
from pathlib import Path

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


def cli_main(main):
    """Run `main()` as a command: a DanceError becomes one line on stderr and exit 2,
    Ctrl-C exits 130 without a traceback."""
    try:
        sys.exit(main())
    except DanceError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


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


def write_image(path, image):
    """Write an image (its format from the name's ending) atomically; a DanceError naming the
    file when it cannot be written, where OpenCV would only return False."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DanceError(f"{path}: cannot write an image there: the name must end in {' or '.join(IMAGE_SUFFIXES)}")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise DanceError(f"{path}: cannot write an image there (is the disk full?)")
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
    """Frames of a video file, in order.

        with VideoReader("data/karate1.mp4") as video:
            print(video.fps, video.frame_count, video.size)
            for index, frame in video:   # frame: BGR uint8 (height, width, 3)
                ...
    """

    def __init__(self, filename):
        self.filename = Path(filename)
        check_file(self.filename)
        self._cap = cv2.VideoCapture(str(self.filename))
        # Phones store frames as the sensor saw them and say how to turn them (rotation
        # metadata); OpenCV ignores that unless asked, and a sideways person is a different pose.
        self._cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        if not self._cap.isOpened():
            raise DanceError(f"{self.filename}: cannot be decoded as a video "
                             f"(not a video, or a format OpenCV cannot read); convert it to mp4")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 1 <= fps <= 1000 else 25.0  # some containers carry no rate
        # The container's count; a damaged file may hold fewer decodable frames.
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise DanceError(f"{self.filename}: holds no decodable frame; check the file "
                             f"(is it truncated?) or convert it again")
        self.height, self.width = first.shape[:2]  # as decoded and turned upright
        self._pending = first
        self._next_index = 0

    @property
    def size(self):
        """(width, height) in pixels."""
        return self.width, self.height

    def read(self):
        """The next frame (BGR uint8), or None at the end of the video."""
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, frame = self._cap.read()
            if not ok:
                return None
        self._next_index += 1
        return frame

    def skip(self, count):
        """Skip `count` frames without decoding them into images; returns how many were skipped."""
        skipped = 0
        if count > 0 and self._pending is not None:
            self._pending = None
            skipped = 1
        while skipped < count and self._cap.grab():
            skipped += 1
        self._next_index += skipped
        return skipped

    def seek(self, index):
        """Go to frame `index` (the next read() returns it, as near as the container allows)."""
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        self._pending, self._next_index = None, int(index)

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


def ffmpeg():
    """The ffmpeg binary inside the imageio-ffmpeg wheel (libx264 and AAC built in): nothing is
    downloaded, nothing needs installing by hand."""
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


class VideoWriter:
    """An mp4 that plays everywhere (H.264, yuv420p, the index at the front for browsers),
    with the audio of `audio` (a video file) when it has any, written under a temporary name
    and renamed into place by `close()`: an error or Ctrl-C never leaves a half-written video
    behind (`discard()` removes the temporary file instead).

        with VideoWriter("output/demo.mp4", fps=25, inputs=[source], audio=source) as out:
            out.write(frame)            # every frame the same size, BGR uint8

    Frames are piped raw to the ffmpeg binary that ships inside the imageio-ffmpeg wheel. The
    audio starts with the first frame and is cut (or padded with silence) to the video's length,
    so a video of every k-th source frame at fps / k keeps the source's sound in step.
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

    def _add_sound(self):
        """The video with the audio of `self.audio` from its start, cut or padded with silence to
        exactly the video's length (frames / fps); no audio track when the source has none."""
        command = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(self._silent),
                   "-i", str(self.audio), "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy", "-c:a", "aac",
                   "-b:a", "128k", "-af", "apad", "-t", f"{self.frames / self.fps:.6f}", "-movflags", "+faststart",
                   str(self._tmp)]
        self._log.seek(0)
        self._log.truncate()
        return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=self._log).returncode

    def write(self, frame):
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
            check = cv2.VideoCapture(str(self._tmp))  # count what is there
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
