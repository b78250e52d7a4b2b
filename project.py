"""What every module of the project needs: where it lives and where its data and caches are,
the one kind of error a user sees, and how a command starts and stops.

`DanceError` is a problem with the user's input (a file, an argument): the command-line entry
points (`cli_main`) print its message as one line and exit 2. Ctrl-C, SIGTERM and SIGHUP all
stop a command as Ctrl-C does (see `STOP_SIGNALS`): long work saves what it has.
"""
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent


class DanceError(Exception):
    """A problem with the user's input (a file, an argument), not a bug.

    Entry points print its message as one line and exit with status 2."""


def cache_location():
    """Where the project's caches live: $DANCE_CACHE when set, else cache/ in the project
    (caches.cache_dir checks that it is a folder)."""
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
