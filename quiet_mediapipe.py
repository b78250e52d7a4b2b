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
    """What of `data` (bytes written to stderr) is not the engine's start-up noise (ENGINE_LINE),
    in its order. An engine line may follow text of ours with no line end between them (a
    progress bar's update ends in a carriage return, rewritten in place): it is cut from where
    it starts to its end."""
    kept = []
    for line in data.splitlines(keepends=True):   # at \n, \r and \r\n
        noise = ENGINE_LINE.search(line)
        kept.append(line if noise is None else line[:noise.start()])
    return b"".join(kept)


@contextlib.contextmanager
def quiet_stderr():
    """Silence C++ logging written straight to file descriptor 2 (TFLite's and absl's
    start-up banners, ENGINE_LINE). Whatever else was written to stderr meanwhile, by any
    thread, is written out when the block ends; if it fails, everything is, so a real error
    message is never lost. Windows of several threads that overlap (the web page's demos,
    each starting its detector) share one: stderr comes back when the last one closes, and
    what was written is passed on each time one of them closes."""
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
# The quiet window now open, if any: how many blocks are inside, the real stderr (a duplicate of
# fd 2), the file fd 2 points to meanwhile, how much of it was passed on, whether a block failed.
_window = {"open": 0, "saved": None, "sink": None, "read": 0, "failed": False}


def _flush_python_stderr():
    """Python's own text still buffered, written to fd 2 now, so that it keeps its order."""
    with contextlib.suppress(AttributeError, ValueError, OSError):   # no sys.stderr, or a closed one
        sys.stderr.flush()


def _open_window(fd):
    with _window_lock:
        if not _window["open"]:
            _flush_python_stderr()
            sink = tempfile.TemporaryFile()
            saved = None
            try:
                saved = os.dup(fd)
                os.dup2(sink.fileno(), fd)
            except OSError:
                sink.close()
                if saved is not None:
                    os.close(saved)
                raise
            _window.update(saved=saved, sink=sink, read=0, failed=False)
        _window["open"] += 1


def _close_window(fd, failed):
    """One block leaves: what was written since the last pass is passed on to the real stderr
    (its whole lines; the engine's dropped unless a block failed), so that windows of other
    threads that keep overlapping never hold it back; the last one out gives fd 2 back."""
    with _window_lock:
        _window["open"] -= 1
        _window["failed"] |= failed
        last = not _window["open"]
        _flush_python_stderr()
        try:
            if last:
                os.dup2(_window["saved"], fd)
            _pass_on(_window["saved"], whole=last)
        finally:
            if last:
                os.close(_window["saved"])
                _window["sink"].close()
                _window.update(saved=None, sink=None)


def _pass_on(out, whole):
    """Write to `out` what the sink got since the last pass: all of it when `whole`, else up to
    its last line end (a line being written stays for the next pass). Read without moving the
    sink's offset, where fd 2's writes land."""
    sink, start = _window["sink"].fileno(), _window["read"]
    data = os.pread(sink, max(0, os.fstat(sink).st_size - start), start)
    if not whole:
        data = data[:max(data.rfind(b"\n"), data.rfind(b"\r")) + 1]
    _window["read"] = start + len(data)
    kept = data if _window["failed"] else not_engine_lines(data)
    while kept:
        kept = kept[os.write(out, kept):]


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

