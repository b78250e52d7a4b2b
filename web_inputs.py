"""What the web page (app.py) may read and write, checked as the command line checks it.

The page names files only by their bare names, picked from lists this module makes: the
videos of the data folder and of the uploads folder, and the targets that have a video or a
model. A name from the page is turned back into a path here (`video_path`), and only when
it is one of those files: nothing outside the project's folders can be reached from the
page, whatever a request sends ("../../etc/passwd", an absolute path, a link out).

An upload is checked before it is kept: its ending, its size (MAX_UPLOAD_BYTES), that
OpenCV decodes a frame of it (VideoReader, the same one-line DanceError as on the command
line), and then copied into the uploads folder under a plain name (letters, digits, - and _:
it becomes a model's file name) by `atomic_path`, so that a half-copied file is never there.
The same content uploaded twice is kept once.
"""
import os
import re
import shutil
from pathlib import Path

from caches import file_digest
from files import atomic_path, check_file
from project import PROJECT_DIR, DanceError, data_dir
from pose_detector import check_frame_size
from VideoReader import VideoReader

MAX_UPLOAD_BYTES = 500 * 1024 * 1024  # a few minutes of phone video; more would take hours to extract and train
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")  # what phones, cameras and browsers record
MAX_NAME = 60  # characters of a stored name's stem: model files are named after it
PLAIN = re.compile(r"[^A-Za-z0-9_-]+")


def web_dir():
    """Where the page keeps its state (jobs, results, evaluations, Gradio's own upload
    folder): $DANCE_WEB when set, else output/web/ in the project (`make clean` removes it)."""
    return Path(os.environ.get("DANCE_WEB") or PROJECT_DIR / "output" / "web")


def uploads_dir():
    """Where checked uploads are kept: $DANCE_UPLOADS when set, else data/uploads/ (never
    committed, kept by `make clean`: a target trained on an upload needs its video)."""
    return Path(os.environ.get("DANCE_UPLOADS") or PROJECT_DIR / "data" / "uploads")


def video_folders():
    """The folders the page lists videos from, the data folder first."""
    return [data_dir(), uploads_dir()]


def _videos_in(folder):
    try:
        return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
                      and not p.name.startswith(".") and _inside(p, folder))
    except OSError:  # a folder that is not there (yet) lists nothing
        return []


def _inside(path, folder):
    """Whether `path`, its links followed, lies in `folder` (a link out of it does not)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def videos():
    """{bare name: path} of every video the page may use; a name in the data folder wins."""
    found = {}
    for folder in video_folders():
        for path in _videos_in(folder):
            found.setdefault(path.name, path)
    return found


def video_path(name):
    """The path of the video the page calls `name`: one of `videos()`, else a DanceError.
    A name with a folder in it, or one that is not listed, is refused, never opened."""
    name = str(name or "").strip()
    if not name:
        raise DanceError("choose a video first")
    if Path(name).name != name or name in (".", ".."):
        raise DanceError(f"{name}: not a video of the data or uploads folder; pick one from the list")
    found = videos().get(name)
    if found is None:
        raise DanceError(f"{name}: no such video in {data_dir()} or {uploads_dir()}; pick one from the list, "
                         f"or upload it")
    return found


def plain_stem(filename):
    """A stem made of letters, digits, - and _ (a model's file name starts with it): the
    upload's own name where it can be, 'upload' when nothing of it is left."""
    stem = PLAIN.sub("_", Path(str(filename)).stem).strip("_-")[:MAX_NAME]
    return stem or "upload"


def check_upload(path, original_name=None):
    """Check an uploaded file (at `path`, sent as `original_name`) as a video input: its
    ending, its size, that a frame decodes. Returns its ending; a one-line DanceError otherwise."""
    shown = original_name or Path(path).name
    suffix = Path(str(shown)).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise DanceError(f"{shown}: not a video file name; upload one ending in {', '.join(VIDEO_SUFFIXES)}")
    try:  # the messages name the file as it was sent, not Gradio's copy of it
        check_file(path)
        size = Path(path).stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise DanceError(f"{shown}: {size / 2**20:.0f} MB is more than the page accepts "
                             f"({MAX_UPLOAD_BYTES // 2**20} MB); cut the video shorter")
        with VideoReader(path) as video:  # decodes its first frame, or says in one line why not
            check_frame_size(video.size, shown)  # frames too small to find anyone in: never kept
    except DanceError as e:
        raise DanceError(str(e).replace(str(path), str(shown), 1)) from None
    return suffix


def store_upload(path, original_name=None):
    """Check an upload (`check_upload`) and keep it in the uploads folder: the path kept.
    The same content already kept (or in the data folder) is not copied again; another
    video of the same stem, whatever its ending, is kept beside it as name-2, name-3, ...
    (a target is known by its stem: models/<stem>_<generator>.pth)."""
    suffix = check_upload(path, original_name)
    stem = plain_stem(original_name or Path(path).name)
    digest = file_digest(path)
    by_stem = {}
    for folder in video_folders():
        for there in _videos_in(folder):
            by_stem.setdefault(there.stem, there)
    for n in range(1, 1000):
        name = f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}"
        there = by_stem.get(Path(name).stem)
        if there is None:
            break
        if there.suffix.lower() == suffix and file_digest(there) == digest:
            return there
    else:
        raise DanceError(f"{original_name}: too many uploads of this name; rename the file")
    target = uploads_dir() / name
    with atomic_path(target) as tmp:  # a half-copied upload is never listed
        shutil.copyfile(path, tmp)
    return target
