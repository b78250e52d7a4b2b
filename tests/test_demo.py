"""The demo, headless, and every kind of bad input on the command line."""
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

import DanceDemo as demo_module
from browser import browser, play
from conftest import ROOT, assert_one_line_error, run
from DanceDemo import DanceDemo
from generators import GEN_TYPE, TABLE, parse_gen_type
from project import DanceError
from VideoReader import VideoReader
from VideoSkeleton import VideoSkeleton


def test_gen_type_accepts_numbers_and_names():
    assert parse_gen_type("1") is GEN_TYPE.NEAREST
    assert parse_gen_type("nearest") is GEN_TYPE.NEAREST
    assert parse_gen_type("GAN") is GEN_TYPE.GAN and parse_gen_type(3) is GEN_TYPE.VANILLA_NN_Image
    with pytest.raises(DanceError, match="unknown --gen-type"):
        parse_gen_type(str(len(TABLE) + 1))
    assert [row.number for row in TABLE] == [t.value for t in GEN_TYPE]  # the enum is the table's


def test_demo_writes_one_frame_per_processed_source_frame(clip, tmp_path):
    out = tmp_path / "out" / "demo.mp4"
    stats = DanceDemo(clip, "nearest", target=clip, every=2).draw(output=out)
    assert stats["frames"] == 30 and 0 < stats["missing"] < 30  # the clip has frames with no pose
    with VideoReader(out) as video:
        assert video.frame_count == 30 and video.size == (512, 256)
        assert video.fps == pytest.approx(12.5)
        frames = [f for _, f in video]
    assert len(frames) == 30
    assert not list(out.parent.glob(".*tmp*"))  # the temporary file was renamed away


def test_demo_without_display_writes_a_video(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(demo_module, "has_display", lambda: False)
    monkeypatch.setattr(demo_module, "PROJECT_DIR", tmp_path)
    stats = DanceDemo(clip, GEN_TYPE.NEAREST, target=clip, every=3).draw()
    with VideoReader(stats["output"]) as video:
        assert video.frame_count == 20
    assert stats["output"].startswith(str(tmp_path / "output"))


def test_frames_can_be_taken_without_drawing(clip):
    """A source is iterated by frames() alone: the counts start at the constructor."""
    demo = DanceDemo(clip, "nearest", target=clip, every=6)
    pictures = [picture for _, (picture, _frame) in zip(range(3), demo.frames())]
    assert len(pictures) == 3 and demo.stats["frames"] == 3 and pictures[0].shape == (256, 512, 3)


def test_placeholder_marks_frames_with_nobody(clip, tmp_path):
    marked = demo_module.placeholder(np.full((90, 160, 3), 200, np.uint8), 128)
    assert marked.shape == (128, 128, 3)
    assert tuple(marked[0, 64]) == (0, 0, 255)  # red frame around it
    assert marked[20, 64].max() < 100  # darkened


def test_cli_demo_runs_and_summarises(clip, tmp_path):
    out = tmp_path / "cli.mp4"
    result = run("DanceDemo.py", "--source", clip, "--target", clip, "--gen-type", "1", "--every", "4",
                 "--output", out)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: 15 frames" in result.stdout
    with VideoReader(out) as video:
        assert video.frame_count == 15
    # MediaPipe's notes at each graph's first person (glog lines such as "W0000 ...
    # landmark_projection_calculator.cc") are quieted: the user reads ours alone.
    assert not re.search(r"^[IWE]\d{4} ", result.stderr, re.M), result.stderr[-2000:]


def test_a_display_variable_with_no_x_server_behind_it_means_no_window(clip, monkeypatch):
    from display import has_display, x_server_answers
    with socket.socket(socket.AF_UNIX) as x_local, socket.socket() as x_tcp:
        x_local.bind("\0/tmp/.X11-unix/X4242")  # an abstract socket, as Linux X servers also listen on
        x_local.listen()
        x_tcp.bind(("127.0.0.1", 0))
        x_tcp.listen()
        port = x_tcp.getsockname()[1]
        assert x_server_answers(":4242") and x_server_answers("unix:4242.0")
        assert port < 6000 or x_server_answers(f"127.0.0.1:{port - 6000}")
    assert not x_server_answers(":4243") and not x_server_answers("nonsense")
    monkeypatch.setenv("DISPLAY", ":4243")
    assert not has_display()
    # The demo with no --output and that DISPLAY: OpenCV's Qt would abort (exit 134); it writes the video.
    out = ROOT / "output" / f"{clip.stem}_to_{clip.stem}_nearest.mp4"
    try:
        result = run("DanceDemo.py", "--source", clip, "--target", clip, "--gen-type", "nearest", "--every", "6")
        assert result.returncode == 0 and f"wrote {out}" in result.stdout, result.stderr
        assert "no X server answers" in result.stderr
    finally:
        out.unlink(missing_ok=True)


# ---- bad input: one line naming the file and the problem, exit 2, nothing left behind ----

@pytest.fixture(params=["missing", "text", "empty"])
def bad_video(request, tmp_path):
    path = tmp_path / f"{request.param}.mp4"
    if request.param == "text":
        path.write_text("not a video at all\n" * 20)
    elif request.param == "empty":
        path.write_bytes(b"")
    return path


def test_cli_bad_video_files(bad_video, clip, tmp_path, private_cache):
    assert_one_line_error(run("VideoSkeleton.py", bad_video), bad_video)
    out = tmp_path / "never.mp4"
    assert_one_line_error(run("DanceDemo.py", "--source", bad_video, "--target", clip, "--output", out),
                          bad_video)
    assert_one_line_error(run("DanceDemo.py", "--source", clip, "--target", bad_video, "--gen-type", "nearest",
                              "--output", out),
                          bad_video)
    # The shipped model, loaded and compiled beside the source's opening: its notes are not said
    # when the source turns out bad (they were, for a while: "OpenVINO runs the network ..." first).
    alone = run("DanceDemo.py", "--source", bad_video, "--output", out)
    assert_one_line_error(alone, bad_video)
    assert len(alone.stderr.strip().splitlines()) == 1, alone.stderr
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    assert not private_cache.exists() or not list(private_cache.glob(f"{bad_video.stem}*"))


def test_cli_video_without_anybody(empty_scene, clip, tmp_path, private_cache):
    assert_one_line_error(run("VideoSkeleton.py", empty_scene), empty_scene, "no person found")
    out = tmp_path / "never.mp4"
    assert_one_line_error(run("DanceDemo.py", "--source", empty_scene, "--target", clip, "--gen-type", "nearest",
                              "--every", "5", "--output", out), empty_scene, "no person found")
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    assert not list(private_cache.glob("empty_scene*"))


def test_cli_damaged_cache(clip, private_cache):
    vs = VideoSkeleton(clip, every=5, progress=False)
    vs.cache_file.write_bytes(vs.cache_file.read_bytes()[:1000])
    assert_one_line_error(run("VideoSkeleton.py", clip, "--every", "5"), vs.cache_file, "damaged")
    result = run("VideoSkeleton.py", clip, "--every", "5", "--force")
    assert result.returncode == 0 and "skeletons found" in result.stdout


@pytest.mark.parametrize("gen_type, model, message", [
    ("banana", None, "unknown --gen-type"),
    ("2", "models/taichi1_vanilla_nn_image.pth", "needs input 'ske'"),
    ("gan", "models/taichi1_vanilla_nn_ske.pth", "not a GenGAN"),
    ("3", "models/missing.pth", "no such model file"),
    ("nearest", "models/taichi1_pix2pix.pth", "--model is for the learned generators"),
    ("4", "README.md", "not a readable checkpoint")])
def test_cli_generator_errors(clip, tmp_path, gen_type, model, message):
    out = tmp_path / "never.mp4"
    args = ["--source", clip, "--target", clip, "--gen-type", gen_type, "--output", out]
    assert_one_line_error(run("DanceDemo.py", *args, *(["--model", model] if model else [])), message)
    assert not out.exists()


# ---- the learned generators, as shipped in models/ ----

@pytest.mark.parametrize("gen_type", [row.name for row in TABLE if row.learned])
def test_demo_runs_each_shipped_model_headless(clip, tmp_path, gen_type):
    out = tmp_path / f"{gen_type}.mp4"
    stats = DanceDemo(clip, gen_type, every=3).draw(output=out)
    assert stats["frames"] == 20 and stats["missing"] < 20
    with VideoReader(out) as video:
        assert video.frame_count == 20 and video.size == (512, 256)
        frames = [f for _, f in video]
    right = np.stack(frames)[:, :, 256:]
    assert right.std() > 10  # a picture, not a flat panel


def test_demo_plays_the_shipped_track_with_no_data_folder(tmp_path):
    out = tmp_path / "fresh.mp4"
    env_run = subprocess.run([sys.executable, str(ROOT / "DanceDemo.py"), "--output", str(out)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path,
                             env={**os.environ, "DANCE_DATA": str(tmp_path / "no-data-here")})
    assert env_run.returncode == 0, env_run.stderr
    assert "karate1_track.npz" in env_run.stderr and "wrote" in env_run.stdout
    track = np.load(ROOT / "data" / "karate1_track.npz")
    with VideoReader(out) as video:
        assert video.frame_count == int(track["frames_read"]) and video.size == (512, 256)


def test_a_bad_track_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    assert_one_line_error(run("DanceDemo.py", "--source", bad, "--output", tmp_path / "x.mp4"),
                          bad, "not a skeleton track")


# ---- smoothing and normalisation in the demo ----

def test_the_demo_normalises_another_person_into_the_target_frame(clip, tmp_path):
    demo = DanceDemo(clip, GEN_TYPE.PIX2PIX, every=3)  # karate1 frames driving the taichi1 model
    assert demo.norm is not None  # auto: the source is not the target, and the model says where it stands
    source, target = demo.norm
    assert target == demo.generator.record["target_stats"] and source["frame_size"] == [640.0, 360.0]
    stats = demo.draw(output=tmp_path / "norm.mp4")
    assert stats["frames"] == 20
    assert DanceDemo(clip, GEN_TYPE.PIX2PIX, every=3, normalise="off").norm is None
    track = ROOT / "data" / "karate1_track.npz"
    assert DanceDemo(track, GEN_TYPE.PIX2PIX, normalise="on").norm is None  # a track cannot say where


def test_place_puts_the_crop_where_the_normalised_box_is(clip):
    demo = DanceDemo(clip, GEN_TYPE.PIX2PIX, every=3)
    target = {**demo.norm[1], "frame_size": [200.0, 100.0], "far": 60.0, "near": 80.0, "centre_x": 100.0}
    crop = np.full((128, 128, 3), 200, np.uint8)
    lm = np.zeros((33, 4), np.float32)
    lm[:, :2] = 0.5
    panel = demo.place(crop, (0.0, 0.0, 10.0), lm, (demo.norm[0], target))
    assert panel.shape == (256, 256, 3)
    assert not panel[:60].any() and not panel[-60:].any()  # letterbox: a 2:1 frame in a square panel
    assert (panel[64:192] == 200).all()  # the crop and its extended edges fill the target's frame


def test_smoothing_choices_are_checked(clip):
    with pytest.raises(DanceError, match="unknown --smooth"):
        DanceDemo(clip, GEN_TYPE.PIX2PIX, smooth="gaussian")
    with pytest.raises(DanceError, match="unknown --normalise"):
        DanceDemo(clip, GEN_TYPE.PIX2PIX, normalise="maybe")


# ---- videos people can play and hear ----
def probe(path):
    """(codec names of the streams, duration in seconds) of a media file, from ffmpeg's report."""
    from VideoWriter import ffmpeg
    report = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    codecs = re.findall(r"Stream #\S+.*?: (Video|Audio): (\w+)", report)
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", report).groups()
    return {kind: codec for kind, codec in codecs}, int(h) * 3600 + int(m) * 60 + float(s)


def test_the_demo_writes_h264_with_the_sources_sound(karate_path, tmp_path):
    from VideoWriter import ffmpeg
    source = tmp_path / "dance.mp4"  # 2.4 s of karate1.mp4 with its AAC sound
    subprocess.run([ffmpeg(), "-v", "error", "-ss", "4", "-t", "2.4", "-i", str(karate_path), "-c:v", "libx264",
                    "-c:a", "aac", str(source)], check=True, timeout=120)
    codecs, duration = probe(source)
    assert codecs == {"Video": "h264", "Audio": "aac"}
    for every in (1, 3):
        out = tmp_path / f"demo{every}.mp4"
        DanceDemo(source, "nearest", target=source, every=every).draw(output=out)
        got, length = probe(out)
        assert got == {"Video": "h264", "Audio": "aac"}
        assert abs(length - duration) <= 1 / 25 + 1e-6, (every, length, duration)  # within one source frame
    silent = tmp_path / "silent.mp4"
    DanceDemo(ROOT / "data" / "karate1_track.npz", "pix2pix").draw(output=silent)  # a track has no sound
    assert probe(silent)[0] == {"Video": "h264"}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


@pytest.mark.skipif(browser() is None, reason="no Chromium or Playwright here (.ci/run installs Chromium)")
def test_the_demo_video_plays_in_a_browser(karate_path, tmp_path):
    out = tmp_path / "demo.mp4"
    DanceDemo(karate_path, "nearest", target=karate_path, every=2).draw(output=out)
    shown = play(out, tmp_path / "screenshot.png", seconds=1.0)
    assert shown["error"] is None and shown["currentTime"] >= 1.0, shown   # it played, in real time
    assert (shown["width"], shown["height"]) == (512, 256)
    assert shown["audioBytes"] > 0 and shown["videoBytes"] > 0, shown      # picture and sound decoded
    assert abs(shown["duration"] - probe(karate_path)[1]) < 0.1
    assert (tmp_path / "screenshot.png").stat().st_size > 1000
