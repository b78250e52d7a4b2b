"""MediaPipe solutions without their start-up noise.

MediaPipe's inference engine (TFLite, glog) writes banners straight to file descriptor 2 when a
graph starts and closes; `quiet_stderr` silences them (replaying them if the block fails), and
`QuietSolution` is the base of the project's MediaPipe wrappers (the pose detector, the person
segmenter), closed quietly and usable as a context manager.
"""
import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def quiet_stderr():
    """Silence C++ logging written straight to file descriptor 2 (TFLite's and glog's
    start-up banners). What was written is replayed if the block fails, so a real
    error message is never lost."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # no real stderr (e.g. some IDEs)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


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

