"""Showing images: whether a window can open, and images laid side by side.

OpenCV's Qt aborts the process (exit 134) when DISPLAY names an X server that does not answer,
so a window is opened only where `has_display` says one can; otherwise the commands write a file.
"""
import functools
import logging
import os
import re
import socket

import numpy as np

log = logging.getLogger("dance")

X_TIMEOUT = 0.5         # seconds an X server has to accept a connection before there is no display


def x_server_answers(display, timeout=X_TIMEOUT):
    """Whether the X server of `display` (the DISPLAY variable: ":0", "unix:1.0", "host:10.0")
    accepts a connection: its local socket (/tmp/.X11-unix/X<n>, or Linux's abstract one of that
    name), or TCP port 6000 + n on a remote host."""
    match = re.fullmatch(r"(?:(?P<host>[^:/]*)/)?(?P<name>[^:]*):(?P<n>\d+)(?:\.\d+)?", display.strip())
    if match is None:
        return False
    host, n = match["name"], int(match["n"])
    local = host in ("", "unix")
    targets = [(socket.AF_UNIX, f"/tmp/.X11-unix/X{n}"), (socket.AF_UNIX, f"\0/tmp/.X11-unix/X{n}")] if local \
        else [(socket.AF_INET, (host, 6000 + n))]
    for family, address in targets:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(address)
                return True
        except OSError:
            continue
    return False


def has_display():
    """Whether an OpenCV window can open. On Linux that needs an X server that answers (OpenCV's
    Qt aborts the process, exit 134, when DISPLAY names one that does not: then the video is
    written instead, and said)."""
    if os.name == "nt" or os.uname().sysname == "Darwin":
        return True
    display = os.environ.get("DISPLAY")
    return bool(display) and _display_answers(display)


@functools.lru_cache(maxsize=None)
def _display_answers(display):
    """`x_server_answers`, asked once per DISPLAY value, and said once when it does not."""
    if x_server_answers(display):
        return True
    log.info("DISPLAY=%s is set but no X server answers there: no window (written to a file instead)", display)
    return False


def combine_images(*images):
    """Place images side by side on a black canvas as tall as the tallest."""
    height = max(im.shape[0] for im in images)
    canvas = np.zeros((height, sum(im.shape[1] for im in images), 3), dtype=np.uint8)
    x = 0
    for im in images:
        canvas[:im.shape[0], x:x + im.shape[1]] = im
        x += im.shape[1]
    return canvas
