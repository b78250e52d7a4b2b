"""The project's caches: where they live, what keys them, how they are written and checked.

A cache is a plain .npz (no pickle) in the cache folder ($DANCE_CACHE, else cache/), written
atomically (`save_npz_atomic`) and keyed by the sha256 of its video's content (`file_digest`),
so that a copied or touched video keeps its cache and a changed one gets a new one. Read back,
a cache's numbers drive a training or a demo, so they are checked first (`check_cache`).
"""
import hashlib
import io
import os

import numpy as np

from files import atomic_path
from project import DanceError, cache_location

MAX_FPS = 1000          # a cache's recorded frame rate beyond this (or below 1) is damage, not a video


def cache_dir():
    """Where caches go: $DANCE_CACHE when set, else cache/ in the project (git-ignored)."""
    path = cache_location()
    if path.exists() and not path.is_dir():
        raise DanceError(f"{path}: the cache folder{' (DANCE_CACHE)' if os.environ.get('DANCE_CACHE') else ''} "
                         f"is a file; point DANCE_CACHE at a folder")
    return path


def file_digest(path, chunk=1 << 20):
    """sha256 of a file's content: the cache follows the video's content, not its date."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_npz_atomic(path, **arrays):
    """Write an .npz atomically (see `atomic_path`): a crash or Ctrl-C never leaves half a cache.
    The archive is built in memory first: written straight to a file, a full disk leaves
    numpy's ZipFile open, and its clean-up prints a second traceback after the error line."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def check_cache(meta, skeletons, boxes, index):
    """Raise a ValueError unless a cache's numbers are of the right kind and in range: read
    back, they drive a training or a demo (a frame count of 10**12, a frame of 0x0 pixels)."""
    def whole(v, low):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low
    n = len(index)
    if not (isinstance(meta, dict) and isinstance(meta.get("digest"), str) and isinstance(meta.get("settings"), dict)):
        raise ValueError("no digest or settings")
    size = meta.get("video_size")
    fps = meta.get("video_fps")
    if not (whole(meta.get("frames_read"), n) and isinstance(fps, (int, float)) and np.isfinite(fps)
            and 1 <= fps <= MAX_FPS and isinstance(size, list) and len(size) == 2 and all(whole(v, 1) for v in size)):
        raise ValueError(f"frames read {meta.get('frames_read')!r}, frame rate {fps!r} or frame size {size!r}")
    if not (np.issubdtype(index.dtype, np.integer) and (n == 0 or index[0] >= 0) and np.all(np.diff(index) > 0)):
        raise ValueError("frame numbers not increasing")
    if not (np.isfinite(boxes).all() and np.all(boxes[:, 2] > 0) and np.isfinite(skeletons[:, :, :2]).all()):
        raise ValueError("crop boxes or skeletons not finite")
