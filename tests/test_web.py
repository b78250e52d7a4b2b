"""The web page (app.py): driven in headless Chromium as a user drives it, its job queue with
a fake trainer, and its checks of what the page accepts (uploads, names of files)."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import web_inputs
import web_jobs
import web_live
from browser import browser, chromium, watch
from conftest import ROOT, as_in_a_terminal, footage, write_clip
from project import DanceError
from training_log import progress

needs_browser = pytest.mark.skipif(browser() is None, reason="no Chromium or Playwright here (.ci/run installs "
                                                              "Debian's Chromium, requirements.txt Playwright)")


@pytest.fixture
def web(tmp_path, monkeypatch):
    """The page's folders in tmp_path: its state, the uploads, a data folder of its own."""
    for name, folder in (("DANCE_WEB", "web"), ("DANCE_UPLOADS", "uploads"), ("DANCE_DATA", "data")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(name, str(tmp_path / folder))
    return tmp_path


# ---- what the page accepts -------------------------------------------------------------
def test_a_name_from_the_page_reaches_only_the_listed_videos(web, clip):
    (web / "data" / "clip.mp4").write_bytes(clip.read_bytes())
    (web / "elsewhere.mp4").write_bytes(clip.read_bytes())
    (web / "uploads" / "link.mp4").symlink_to(web / "elsewhere.mp4")  # a link out of the folder
    assert web_inputs.video_path("clip.mp4") == web / "data" / "clip.mp4"
    assert set(web_inputs.videos()) == {"clip.mp4"}
    for name in ("../elsewhere.mp4", str(web / "elsewhere.mp4"), "/etc/passwd", "link.mp4", "..", ""):
        with pytest.raises(DanceError):
            web_inputs.video_path(name)


def test_an_upload_is_checked_then_kept_once_under_a_plain_name(web, clip, tmp_path, monkeypatch):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    with pytest.raises(DanceError, match=r"^notes\.mp4: cannot be decoded as a video") as e:
        web_inputs.store_upload(notes, "notes.mp4")
    assert "\n" not in str(e.value)
    with pytest.raises(DanceError, match="not a video file name"):
        web_inputs.store_upload(clip, "clip.txt")
    kept = web_inputs.store_upload(clip, "my clip (1).MP4")
    assert kept == web / "uploads" / "my_clip_1.mp4" and kept.read_bytes() == clip.read_bytes()
    assert web_inputs.store_upload(clip, "my clip (1).MP4") == kept   # the same content: kept once
    other = write_clip(tmp_path / "other.mp4", [clip_frame(clip)] * 5)
    assert web_inputs.store_upload(other, "my clip (1).mp4").name == "my_clip_1-2.mp4"  # another video
    assert web_inputs.store_upload(other, "my_clip_1.mov").name == "my_clip_1-3.mov"    # a stem is a target's name
    empty, tiny = tmp_path / "gradio-copy-1.mp4", write_clip(tmp_path / "gradio-copy-2.mp4", [clip_frame(clip)[:32, :32]] * 3)
    empty.write_bytes(b"")
    for path, sent, said in ((empty, "empty.mp4", "empty"), (tiny, "tiny.mp4", "too small to find a person")):
        with pytest.raises(DanceError, match=f"^{sent}: .*{said}"):         # named as sent, never kept
            web_inputs.store_upload(path, sent)
    monkeypatch.setattr(web_inputs, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(DanceError, match="more than the page accepts"):
        web_inputs.store_upload(clip, "big.mp4")
    assert not [p for p in (web / "uploads").iterdir() if ".tmp" in p.name]  # nothing half-written


def clip_frame(clip):
    import cv2
    cap = cv2.VideoCapture(str(clip))
    ok, frame = cap.read()
    cap.release()
    return frame


# ---- the job queue, with fake trainers ---------------------------------------------------
FAKE_TRAINER = """
import sys, time
try:
    for epoch in range(1, int(sys.argv[1]) + 1):
        time.sleep(float(sys.argv[2]))
        print(f"epoch {epoch}: l1 0.1000  val_l1 0.0{epoch}00  nearest_val_l1 0.0700  seconds 1.0", flush=True)
except KeyboardInterrupt:
    print("stopped: state saved", flush=True)
    sys.exit(130)
if len(sys.argv) > 3:
    print("error: " + sys.argv[3], file=sys.stderr)
    sys.exit(2)
"""


def fake(epochs, pause, error=None):
    return [sys.executable, "-c", FAKE_TRAINER, str(epochs), str(pause), *([error] if error else [])]


def wait_for(job, states, timeout=30):
    deadline = time.monotonic() + timeout
    while (record := web_jobs.read(job))["state"] not in states:
        assert time.monotonic() < deadline, record
        time.sleep(0.05)
    return record


def test_jobs_run_one_at_a_time_and_record_their_end_and_log(web):
    first = web_jobs.submit("train", fake(2, 0.3), "first")
    second = web_jobs.submit("train", fake(1, 0.01, "--epochs 0: must lie between 1 and 100000"), "second")
    assert wait_for(first, ("running",))["state"] == "running"
    assert web_jobs.read(second)["state"] == "queued"          # it waits for the first
    assert wait_for(first, web_jobs.ENDED)["state"] == "done"
    ended = wait_for(second, web_jobs.ENDED)                     # started by the first one's runner
    assert ended["state"] == "failed" and ended["error"] == "--epochs 0: must lie between 1 and 100000"
    assert ended["started"] >= web_jobs.read(first)["ended"]
    p = progress(web_jobs.log_tail(first), ["--epochs", "2"])
    assert [e["val_l1"] for e in p.epochs] == [0.01, 0.02] and p.epochs[0]["nearest_val_l1"] == 0.07
    assert [j["id"] for j in web_jobs.all_jobs()] == [second, first]


def test_a_job_stops_as_ctrl_c_stops_it_and_a_queued_one_is_cancelled(web):
    job = web_jobs.submit("train", fake(100, 0.1), "long")
    queued = web_jobs.submit("train", fake(1, 0.01), "next")
    record = wait_for(job, ("running",))
    while "epoch 1:" not in web_jobs.log_tail(job):
        time.sleep(0.05)
    assert "taken off" in web_jobs.stop(queued)
    assert "asked to stop" in web_jobs.stop(job)
    ended = wait_for(job, web_jobs.ENDED)
    assert ended["state"] == "stopped" and ended["returncode"] == 130, ended
    assert "stopped: state saved" in web_jobs.log_tail(job) and record["pid"]
    assert web_jobs.read(queued)["state"] == "cancelled"
    assert web_jobs.running() is None


def test_a_job_whose_process_was_killed_reads_as_failed(web):
    job = web_jobs.submit("train", fake(100, 0.1), "killed")
    record = wait_for(job, ("running",))
    os.killpg(record["pid"], signal.SIGKILL)                     # the runner and its command, no last word
    assert wait_for(job, web_jobs.ENDED)["state"] == "failed"
    with pytest.raises(DanceError):
        web_jobs.read("../../etc")


def test_the_training_progress_reads_the_trainers_own_log():
    log = ("held-out L1 of nearest neighbour (the baseline to beat): 0.0700\n"
           "epoch 1: g_l1 0.0900  adv 0.5000  val_l1 0.0650  nearest_val_l1 0.0700  seconds 100.0\n"
           "epoch 2/4:  50%|#####     | 10/20 [00:40<00:40,  4.00s/batch, g_l1=0.08]\r")
    p = progress(log, ["GenLayered.py", "me.mp4", "--epochs", "4"])
    assert p.done == 1 and p.epoch_total == 4 and p.current == (2, 10, 20)
    assert p.seconds_left == pytest.approx(40 + 2 * 100)         # this epoch's rest, then two more
    bar = "epoch 1/4:  {}%|#    | {}/20 [00:01<00:10]"
    shown = web_jobs.readable("\r".join(bar.format(5 * i, i) for i in range(1, 4)).replace("\r", "\n") + "\n" + log)
    assert shown.splitlines()[0] == bar.format(15, 3) and len(shown.splitlines()) == 4  # a bar's newest update only


# ---- the live stream's steps, with a fake demo -------------------------------------------
class FakeDemo:
    """Stands in for DanceDemo over the webcam's pushed frames: each frame's picture is the frame."""

    def __init__(self, source, settings):
        if settings[0] == "broken":
            raise DanceError("broken: no such generator")
        self.source, self.frames = source, []

    def pictures(self):
        for frame in self.source.capture:
            self.frames.append(frame.seq)
            time.sleep(0.05)                        # slower than the frames come: some are dropped
            self.source.meter.shown(frame.captured)
            yield frame.image, frame


def test_a_stream_runs_one_session_and_a_new_one_when_its_settings_change():
    good, other = ("layered", "t.mp4", "one_euro", "auto"), ("warp", "t.mp4", "one_euro", "auto")
    frame = np.zeros((72, 128, 3), np.uint8)
    picture, session, status, last = web_live.stream_step(frame, None, good, 0.0, FakeDemo)
    assert status.startswith("1 frames received")
    shown = []
    for k in range(1, 40):                          # frames every 10 ms, pictures every 50 ms at best
        picture, same, _, last = web_live.stream_step(frame + k, session, good, last, FakeDemo)
        assert same is session
        shown += [] if picture is None else [int(picture[0, 0, 0])]
        time.sleep(0.01)
    assert shown == sorted(set(shown)) and len(shown) >= 3                # in order, never twice
    taken, deadline = session.demo.frames, time.monotonic() + 10
    while taken[-1] != 39 and time.monotonic() < deadline:               # the last frame sent is taken...
        time.sleep(0.01)
    assert taken[-1] == 39 and taken == sorted(taken)
    assert session.capture.dropped > 0 and len(taken) + session.capture.dropped == 40  # ...the rest dropped
    _, new, _, _ = web_live.stream_step(frame, session, other, 0.0, FakeDemo)
    assert new is not session and new.settings == other
    session._thread.join(5)
    assert not session.running                                             # the old session ended
    broken, deadline, status = new, time.monotonic() + 10, None
    while not (status or "").startswith("error") and time.monotonic() < deadline:  # the demo fails on its thread
        _, broken, status, _ = web_live.stream_step(frame, broken, ("broken",), 0.0, FakeDemo)
        time.sleep(0.01)
    assert status == "error: broken: no such generator" and isinstance(broken, web_live.Refused)
    assert web_live.stream_step(frame, broken, ("broken",), 0.0, FakeDemo)[1] is broken  # not retried each frame
    again = web_live.stream_step(frame, broken, good, 0.0, FakeDemo)[1]
    assert again.running
    again.close()


# ---- the page, in a browser ----------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    """The page, served by `python app.py` as the README starts it, on folders of its own."""
    root = tmp_path_factory.mktemp("web_page")
    data = footage("karate1.mp4").parent
    port = free_port()
    env = {**os.environ, "DANCE_DATA": str(data), "DANCE_WEB": str(root / "web"),
           "DANCE_UPLOADS": str(root / "uploads"), "DANCE_CACHE": str(root / "cache")}
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"),
                              preexec_fn=as_in_a_terminal)   # it is stopped with SIGINT below
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (root / "server.log").read_text()[-3000:]
            time.sleep(0.5)
    yield url
    server.send_signal(signal.SIGINT)
    server.wait(timeout=30)


@contextlib.contextmanager
def opened(page_url, camera=None):
    """A tab on the page, and every host it asked for anything (only the server, we check)."""
    with chromium((1280, 1000), camera) as tab:
        hosts = set()
        tab.on("request", lambda r: hosts.add(r.url.split("/")[2]) if "://" in r.url[:10] else None)
        tab.goto(page_url)
        yield tab
        assert hosts <= {page_url.split("/")[2]}, f"the page fetched from elsewhere: {hosts}"


@pytest.fixture
def page(page_url):
    with opened(page_url) as tab:
        yield tab


@pytest.fixture(scope="module")
def webcam_video(tmp_path_factory):
    """Two seconds of karate1.mp4 as a .y4m file: what Chromium's fake webcam plays, looped."""
    import imageio_ffmpeg
    y4m = tmp_path_factory.mktemp("webcam") / "karate.y4m"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(footage("karate1.mp4")),
                    "-t", "2", "-pix_fmt", "yuv420p", str(y4m)], check=True)
    return y4m


def choose(page, element, option, tries=60, again=None):
    """Pick `option` in a dropdown; its choices may still be on their way (set by another event,
    queued behind the page's first events on a cold server): `again()`, when given, is called
    every tenth try (the event that sets them, done once more)."""
    for k in range(tries):
        if again is not None and k and k % 10 == 0:
            again()
        page.locator(f"#{element} input").click()
        wanted = page.get_by_role("option", name=option, exact=True)
        try:
            wanted.click(timeout=1000)
            return
        except Exception:  # playwright's TimeoutError: not listed yet
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)
    pytest.fail(f"{element}: no option {option!r}")


@needs_browser
def test_the_page_drives_karate1_with_nearest_neighbour_and_the_result_plays(page):
    choose(page, "generator", "1 nearest")
    def nearest_again():  # another generator, then nearest: a change event each (the same value fires none)
        choose(page, "generator", "2 vanilla_nn_ske")
        choose(page, "generator", "1 nearest")
    choose(page, "target", "karate1", again=nearest_again)
    page.locator("#run").click()
    page.wait_for_selector("#result video", timeout=240_000)
    status = page.locator("#drive-status textarea").input_value()
    assert status.startswith("wrote karate1_to_karate1_nearest") and "192 frames" in status, status
    page.evaluate("() => { const v = document.querySelector('#result video'); v.muted = true; v.play(); }")
    shown = watch(page, "#result video", seconds=1.0)
    assert shown["error"] is None and shown["currentTime"] > 0, shown
    assert abs(shown["duration"] - 192 / 25) < 0.1 and (shown["width"], shown["height"]) == (512, 256), shown


@needs_browser
def test_a_text_file_named_mp4_shows_the_one_line_error(page, tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("just some notes\n")
    page.get_by_role("tab", name="Make your own target").click()
    page.locator("#train-upload input[type=file]").set_input_files(str(notes))
    page.wait_for_function("() => document.querySelector('#train-status textarea').value.length > 0",
                           timeout=60_000)
    said = page.locator("#train-status textarea").input_value()
    assert said.startswith("error: notes.mp4: cannot be decoded as a video") and "\n" not in said, said


@needs_browser
def test_the_webcam_streams_live_and_the_targets_pictures_come_back(page_url, webcam_video):
    with opened(page_url, camera=webcam_video) as page:
        page.get_by_label("the webcam, live").check()
        page.locator("#run").wait_for(state="hidden", timeout=30_000)  # a stream starts with the webcam's button
        page.locator("#webcam").get_by_text("Click to Access Webcam").click()
        page.locator("#webcam button", has_text="Record").click()
        page.wait_for_function("() => /^\\d+ pictures from/.test(document.querySelector('#drive-status "
                               "textarea').value)", timeout=120_000)
        sources = set()
        for _ in range(100):                                         # pictures keep coming, not one
            sources.add(page.locator("#live-result img").get_attribute("src"))
            if len(sources) >= 3:
                break
            page.wait_for_timeout(200)
        status = page.locator("#drive-status textarea").input_value()
        page.locator("#webcam button", has_text="Stop").click()
    assert len(sources) >= 3 and "dropped while busy" in status, (sources, status)
