"""Reading video files, and where the project looks for its data.

`VideoReader` iterates the frames of a video (BGR uint8, as OpenCV decodes them)
and knows its fps, frame count and size. Problems with the file surface as a
`DanceError` whose message names the file, what is wrong and what to do; the
command-line entry points print that one line and exit non-zero.
"""
import contextlib
import os
import sys
from pathlib import Path

# FFmpeg prints its own complaints ("moov atom not found") straight to the terminal;
# we report those problems ourselves, in one line, so keep it quiet.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
import cv2  # noqa: E402  (the variable above must be set first)
import numpy as np  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parent


class DanceError(Exception):
    """A problem with the user's input (a file, an argument), not a bug.

    Entry points print its message as one line and exit with status 2."""


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


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside `path` to write to; when the block succeeds it is
    renamed to `path`, otherwise removed. A reader never finds a half-written file. The
    temporary name keeps the ending, for writers that pick the format from it (OpenCV)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path, image):
    """Write an image (its format from the name's ending) atomically; a DanceError naming the
    file when it cannot be written, where OpenCV would only return False."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), image):
                raise DanceError(f"{path}: cannot write an image there (is '{path.suffix}' an image "
                                 f"format OpenCV knows, such as .png or .jpg?)")
    except OSError as e:
        raise DanceError(f"{path}: cannot write it ({e.strerror or e})") from None
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
        if not self._cap.isOpened():
            raise DanceError(f"{self.filename}: cannot be decoded as a video "
                             f"(not a video, or a format OpenCV cannot read); convert it to mp4")
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 25.0  # some containers carry no rate
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        # The container's count; a damaged file may hold fewer decodable frames.
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise DanceError(f"{self.filename}: holds no decodable frame; check the file "
                             f"(is it truncated?) or convert it again")
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


class VideoWriter:
    """An mp4 written under a temporary name and renamed into place by `close()`,
    so an error or Ctrl-C never leaves a half-written video behind (`discard()`
    removes the temporary file instead).

        with VideoWriter("output/demo.mp4", fps=25) as out:
            out.write(frame)            # every frame the same size, BGR uint8
    """

    def __init__(self, filename, fps):
        self.filename = Path(filename)
        if self.filename.suffix.lower() != ".mp4":
            raise DanceError(f"{self.filename}: the output must be an .mp4 file")
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        # The temporary name keeps the .mp4 ending: OpenCV picks the container from it.
        self._tmp = self.filename.with_name(f".{self.filename.stem}.{os.getpid()}.tmp.mp4")
        self.fps = fps
        self.frames = 0
        self._writer = None

    def write(self, frame):
        if self._writer is None:
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise DanceError(f"{self.filename}: cannot write a video there (check the folder and disk space)")
            self.size = (w, h)
        self._writer.write(frame)
        self.frames += 1

    def close(self):
        """Finish the file and move it into place (a video with no frame is not kept)."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        os.replace(self._tmp, self.filename)

    def discard(self):
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:
            self.discard()
