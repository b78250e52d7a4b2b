"""The browser's webcam as a live source for the demo: frames streamed by the page, the
target's pictures streamed back.

Gradio's streaming image sends the webcam's frames to the server at a fixed pace
(`STREAM_EVERY_S`) and shows whatever the handler returns. Detection and generation are
slower than that on a CPU, so the handler must not wait for them: it hands each frame to a
`live.PushedCapture` (the demo's one-frame mailbox, as for a camera: frames that come while
the demo is busy are dropped, never queued) and returns the newest picture the demo has made,
or nothing new. The demo itself (`DanceDemo.pictures`, the command line's live path) runs on
a thread of its own per tab (the page hands in how to make it: this module is below the demo),
with its frame rate, latency and dropped frames marked on each picture. The latency shown is from the frame's arrival at the server to its picture being
made; the browser's own capture and the network round trip add to it.
"""
import logging
import threading
import time
from typing import NamedTuple

import numpy as np

from live import PushedCapture
from panels import PANEL
from project import DanceError
from sources import LiveSource

STREAM_EVERY_S = 0.04      # the page sends a frame every 40 ms (25 fps; Gradio's echo carries 24.6 fps here)
STREAM_LIMIT_S = 600       # a stream ends after ten minutes (a forgotten tab would hold the CPU)
IDLE_S = 3.0               # no frame for this long: the tab stopped streaming, the session ends
STATUS_EVERY_S = 1.0       # the status line is rewritten at most this often

log = logging.getLogger("dance")


class WebcamSession:
    """One tab's live session: the demo over pushed frames, on a thread of its own.

    `push(rgb)` hands in a webcam frame (H, W, 3) uint8 RGB, as Gradio gives it, and returns
    the newest side-by-side picture (RGB) made since the last call, or None (frames keep the
    first one's size: a new size starts a new session, `stream_step`). `make_demo(source,
    settings)` makes the demo (a DanceDemo) over the live source, on the session's thread;
    `settings` (the page's: generator, target name, smoother, normalisation) compare equal
    while the same session goes on. A demo that fails leaves its one-line message in `error`."""

    def __init__(self, settings, first_rgb, make_demo, fps=1 / STREAM_EVERY_S):
        self.settings = settings
        self.capture = PushedCapture(np.ascontiguousarray(first_rgb[..., ::-1]), fps, idle_s=IDLE_S)
        self.demo, self._newest, self._sent, self.error = None, None, None, None
        self.shown, self.first_shown = 0, None   # the first picture comes once the model has loaded
        self._thread = threading.Thread(target=self._run, args=(make_demo,), name="webcam demo", daemon=True)
        self._thread.start()

    def _run(self, make_demo):
        """Make the demo (its model loads here, never on the page's thread) and run it."""
        try:
            self.demo = make_demo(LiveSource(None, PANEL, capture=self.capture), self.settings)
            pictures = self.demo.pictures()
            try:
                for picture, _ in pictures:
                    self._newest = picture
                    self.shown += 1
                    self.first_shown = self.first_shown or time.monotonic()
            finally:
                pictures.close()
        except DanceError as e:
            self.error = str(e)
        except Exception as e:  # a bug, not bad input: said in one line on the page, logged whole
            log.exception("the webcam's demo failed")
            self.error = f"the live demo failed ({type(e).__name__}: {e}); the server's log has the details"
        finally:
            self.capture.close()

    @property
    def running(self):
        return self._thread.is_alive()

    def push(self, rgb):
        """Hand in a frame; the newest picture not yet returned (RGB), or None."""
        self.capture.push(np.ascontiguousarray(rgb[..., ::-1]))
        picture = self._newest
        if picture is None or picture is self._sent:
            return None
        self._sent = picture
        return np.ascontiguousarray(picture[..., ::-1])

    def summary(self):
        """What the session did so far: frames received, pictures made, dropped, latency (ms), and
        the seconds since the first picture (the rate is counted from there, not from the load)."""
        since = time.monotonic() - (self.first_shown or time.monotonic())
        latency = self.demo.source.meter.summary() if self.demo else {"latency_ms": None, "latency_p90_ms": None}
        return {"received": self.capture.captured, "shown": self.shown, "dropped": self.capture.dropped,
                "seconds": since, **latency}

    def close(self):
        """End the session; its thread ends by itself once its current frame is done (not waited
        for: the page's thread never waits on the generator)."""
        self.capture.close()


def describe(summary):
    """The status line for a session's summary."""
    s = summary
    if not s["shown"]:
        return f"{s['received']} frames received; the first picture is on its way (the model loads)"
    rate = (s["shown"] - 1) / s["seconds"] if s["seconds"] > 0 else 0.0
    return (f"{s['shown']} pictures from {s['received']} frames received ({rate:.1f} a second), "
            f"{s['dropped']} dropped while busy; latency median {s['latency_ms']:.0f} ms, "
            f"p90 {s['latency_p90_ms']:.0f} ms (server side)")


class Refused(NamedTuple):
    """Settings a session could not start with, and why: not tried again on every frame."""
    settings: tuple
    error: str


def stream_step(frame, session, settings, last_status, make_demo):
    """One call of the page's stream event: (picture or None, session, status or None, status time).

    A new session starts on the first frame, after the last one ended, or when the settings
    changed; settings refused once (a one-line DanceError, shown as the status) are not tried
    again until they change. The status line is returned at most every STATUS_EVERY_S."""
    now = time.monotonic()
    if frame is None or (isinstance(session, Refused) and session.settings == settings):
        return None, session, None, last_status
    if isinstance(session, WebcamSession) and (session.settings != settings or not session.running
                                               or frame.shape[:2] != session.capture.first.shape[:2]):
        session.close()
        session = session if session.error and session.settings == settings else None
    if isinstance(session, WebcamSession) and session.error:
        return None, Refused(settings, session.error), f"error: {session.error}", now
    if isinstance(session, WebcamSession):
        picture = session.push(frame)
    else:
        try:
            session, picture = WebcamSession(settings, frame, make_demo), None  # the frame is its first
        except DanceError as e:
            return None, Refused(settings, str(e)), f"error: {e}", now
    if now - last_status < STATUS_EVERY_S:
        return picture, session, None, last_status
    return picture, session, describe(session.summary()), now
