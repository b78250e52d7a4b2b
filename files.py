"""Writing files safely, and naming them to OpenCV.

Every file the project writes goes through `atomic_path` (a temporary name beside it, renamed
when complete), so a crash, Ctrl-C or full disk never leaves half a file, and a write that
fails is a one-line `DanceError` (`write_error`). `check_output` validates an output path
before the work that fills it starts: its ending, that it is no input and no cache, that its
folder can be written. `OutputClaim` holds an output for one process while it works, so that
two commands never write the same file at once. `check_file` checks an input before it is
read. OpenCV crashes on a name that is not UTF-8 (`opencv_path`) and draws ASCII only
(`opencv_text`); `write_image` writes an image atomically.
"""
import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path

import cv2

from project import DanceError, cache_location

try:
    import fcntl  # POSIX: a lock held by a process ends with it, however it ends
except ImportError:  # Windows
    fcntl = None

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # the images the project writes


def temporary_name(path):
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
    tmp = temporary_name(path)
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
