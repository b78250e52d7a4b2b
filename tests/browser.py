"""Play a video in headless Chromium, as a person opening the demo's output in a browser
would, and report what the page's <video> element says; and the browser the web page's
tests drive.

Playwright drives Debian's Chromium (`executable_path`): its own browser download needs the
internet, its Python wheel brings the driver. Playback runs in real time, so the figures are
what a viewer gets (a headless screenshot alone fires before the video has played).
"""
import contextlib
import shutil

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
PAGE = """<!doctype html><body style="margin:0;background:#222">
<video src="{video}" autoplay playsinline width="{width}" height="{height}"></video></body>"""
# Waits until the first <video> matching the selector has played `seconds` (or failed, or
# `timeout` went by), then says what it shows.
WATCH = """([selector, seconds, timeout]) => new Promise(done => {
    const start = performance.now();
    (function poll() {
      const v = document.querySelector(selector);
      const late = performance.now() - start > timeout * 1000;
      if (!v && late) return done({error: 'no video element'});
      if (v && (v.error || v.currentTime >= seconds || late))
        return done({error: v.error && v.error.code, currentTime: v.currentTime, duration: v.duration,
                     width: v.videoWidth, height: v.videoHeight, paused: v.paused,
                     audioBytes: v.webkitAudioDecodedByteCount, videoBytes: v.webkitVideoDecodedByteCount});
      setTimeout(poll, 50);
    })();
  })"""


def browser():
    """The path of a Chromium on this machine, or None (then the browser tests are skipped)."""
    with contextlib.suppress(ImportError):
        import playwright.sync_api  # noqa: F401  (the driver: without it there is no browser test either)
        return next((path for path in map(shutil.which, BROWSERS) if path), None)
    return None


@contextlib.contextmanager
def chromium(size=(600, 340), camera=None):
    """A page of a headless Chromium, `size` (width, height) pixels; with `camera` (a .y4m or
    .mjpeg file), a webcam the page may use that shows that video, looped."""
    from playwright.sync_api import sync_playwright
    flags = FLAGS + ([] if camera is None else ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                                                 f"--use-file-for-fake-video-capture={camera}"])
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=browser(), args=flags)
        try:
            yield instance.new_page(viewport={"width": size[0], "height": size[1]},
                                    permissions=[] if camera is None else ["camera"])
        finally:
            instance.close()


def watch(page, selector="video", seconds=1.0, timeout=30):
    """What the page's <video> (the first `selector` matches) says once it has played `seconds`."""
    return page.evaluate(WATCH, [selector, seconds, timeout])


def play(video, screenshot, seconds=1.0, timeout=30, size=(600, 340)):
    """Open a page with `video` (a local file) in a <video> element, play it for `seconds` of
    its time, write a PNG screenshot, and return the element's figures: currentTime,
    duration, videoWidth/Height, bytes of audio and video decoded, error (None)."""
    page_file = video.parent / f"{video.stem}-player.html"
    page_file.write_text(PAGE.format(video=video.name, width=size[0], height=size[1] - 40))
    with chromium(size) as page:
        page.goto(page_file.as_uri())
        figures = watch(page, "video", seconds, timeout)
        page.screenshot(path=str(screenshot))
    return figures
