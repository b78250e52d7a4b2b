"""MediaPipe solutions without their start-up noise.

MediaPipe's inference engine (TFLite, absl's logging) writes banners straight to file
descriptor 2 when a graph starts and closes; `quiet_stderr` silences them, and `QuietSolution`
is the base of the project's MediaPipe wrappers (the pose detector, the person segmenter),
closed quietly and usable as a context manager.

File descriptor 2 is the process's, not the thread's: while it points elsewhere, what another
thread writes to stderr (the demo's generating thread logging a warning while detection starts
its graph, a progress bar) goes there too. So only the engine's own lines (`ENGINE_LINE`) are
dropped; everything else written meanwhile is written out when the window closes.
"""
import contextlib
import os
import re
import sys
import tempfile
import threading

# The lines MediaPipe 0.10's C++ side writes at start-up and close: TFLite's delegate banner,
# absl's note before its logging starts, and absl/glog lines ("W0000 00:00:1796561059.949606
# 10361 inference_feedback_manager.cc:114] ...": severity, month and day, time (before absl's
# logging starts: 00:00: and the seconds since 1970), thread, file:line]).
ENGINE_LINE = re.compile(rb"(INFO: Created TensorFlow Lite |WARNING: All log messages before absl::InitializeLog"
                         rb"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] )")

STDERR_FD = 2   # where the C++ side writes, whatever Python's sys.stderr is


def not_engine_lines(data):
    """What of `data` (bytes written to stderr) is not the engine's start-up noise (ENGINE_LINE):
    the other lines, whole, in their order."""
    return b"".join(line for line in data.splitlines(keepends=True) if not ENGINE_LINE.match(line))


@contextlib.contextmanager
def quiet_stderr():
    """Silence C++ logging written straight to file descriptor 2 (TFLite's and absl's
    start-up banners, ENGINE_LINE). Whatever else was written to stderr meanwhile, by any
    thread, is written out when the block ends; if it fails, everything is, so a real error
    message is never lost. Windows of several threads that overlap (the web page's demos,
    each starting its detector) share one: stderr comes back when the last one closes."""
    fd = STDERR_FD
    try:
        os.fstat(fd)
    except OSError:  # no file descriptor 2 (e.g. some IDEs' and services' processes): nothing to quiet
        yield
        return
    _open_window(fd)
    failed = True
    try:
        yield
        failed = False
    finally:
        _close_window(fd, failed)


_window_lock = threading.Lock()
_window = {"open": 0, "saved": None, "sink": None, "failed": False}   # the quiet window now open, if any


def _open_window(fd):
    with _window_lock:
        if not _window["open"]:
            sys.stderr.flush()
            sink = tempfile.TemporaryFile()
            _window.update(saved=os.dup(fd), sink=sink, failed=False)
            os.dup2(sink.fileno(), fd)
        _window["open"] += 1


def _close_window(fd, failed):
    with _window_lock:
        _window["open"] -= 1
        _window["failed"] |= failed
        if _window["open"]:
            return
        sys.stderr.flush()   # Python's own text still buffered goes to the sink, in its order
        os.dup2(_window["saved"], fd)
        os.close(_window["saved"])
        with _window["sink"] as sink:
            sink.seek(0)
            written = sink.read()
        kept = written if _window["failed"] else not_engine_lines(written)
        while kept:
            kept = kept[os.write(fd, kept):]


class QuietSolution:
    """A MediaPipe solution (its graph in `self._solution`), closed with its C++ banners
    silenced (quiet_stderr) and usable as a context manager; subclasses start it likewise."""

    def close(self):
        with quiet_stderr():
            self._solution.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

