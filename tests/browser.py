"""Play a video in headless Chromium, as a person opening the demo's output in a browser
would, and report what the page's <video> element says.

Chromium is driven over its DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages ending in a NUL byte, on file descriptors 3 and 4), so nothing beyond the
standard library and the browser is needed, and playback runs in real time (a headless
screenshot alone fires before the video has played).
"""
import base64
import json
import os
import shutil
import subprocess

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PAGE = """<!doctype html><body style="margin:0;background:#222">
<video src="{video}" autoplay playsinline width="{width}" height="{height}"></video></body>"""


def browser():
    """The path of a Chromium on this machine, or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class DevTools:
    """A headless Chromium and a pipe to its DevTools protocol."""

    def __init__(self, executable, width, height):
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def descriptors():  # in the child: the protocol's pipe is fd 3 (in) and fd 4 (out)
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--autoplay-policy=no-user-gesture-required", f"--window-size={width},{height}", "about:blank"],
            preexec_fn=descriptors, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._next_id, self._buffer, self._events = 0, b"", []

    def _receive(self):
        """The next message from the browser (an answer or an event)."""
        while b"\0" not in self._buffer:
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, session=None, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:  # events come in between: kept for `navigate`
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def navigate(self, session, url):
        """Load `url` in the session's tab and wait for its load event (not an earlier page's)."""
        self.call("Page.enable", session)
        self._events.clear()
        self.call("Page.navigate", session, url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            self._events.append(self._receive())

    def close(self):
        self.proc.kill()
        self.proc.wait()
        os.close(self._in)
        os.close(self._out)


def play(video, screenshot, seconds=1.0, timeout=30, size=(600, 340)):
    """Open a page with `video` (a local file) in a <video> element, play it for `seconds` of
    its time, write a PNG screenshot, and return the element's figures: currentTime,
    duration, videoWidth/Height, bytes of audio and video decoded, error (None)."""
    page = video.parent / f"{video.stem}-player.html"
    page.write_text(PAGE.format(video=video.name, width=size[0], height=size[1] - 40))
    script = f"""new Promise(done => {{
        const start = performance.now();
        (function poll() {{
          const v = document.querySelector('video');
          const late = performance.now() - start > {timeout * 1000};
          if (!v && late) return done({{error: 'no video element'}});
          if (v && (v.error || v.currentTime >= {seconds} || late))
            return done({{error: v.error && v.error.code, currentTime: v.currentTime, duration: v.duration,
                          width: v.videoWidth, height: v.videoHeight, paused: v.paused,
                          audioBytes: v.webkitAudioDecodedByteCount, videoBytes: v.webkitVideoDecodedByteCount}});
          setTimeout(poll, 50);
        }})();
      }})"""
    tools = DevTools(browser(), *size)
    try:
        # Open a blank tab, then load the page in it once we listen: evaluating while the tab
        # still navigates would run in a context the navigation then destroys.
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tools.navigate(session, page.as_uri())
        figures = tools.call("Runtime.evaluate", session, expression=script, awaitPromise=True,
                             returnByValue=True)["result"]["value"]
        png = tools.call("Page.captureScreenshot", session, format="png")["data"]
        screenshot.write_bytes(base64.b64decode(png))
    finally:
        tools.close()
    return figures
