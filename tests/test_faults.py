"""Phone videos, full disks and careless commands (issue 11): each class of fault gives a
right result or one clear line and exit 2, before the work, leaving no file behind."""
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

import training as T
from conftest import ROOT, as_in_a_terminal, assert_one_line_error, read_until, run, write_clip
from files import atomic_path, write_image
from GenVanillaNN import GenVanillaNN
from pose_detector import DETECT_MARGIN, MIN_VISIBILITY, PoseDetector, plausible
from project import DanceError
from VideoReader import VideoReader
from VideoSkeleton import VideoSkeleton, probe_detect_margin
from VideoWriter import VideoWriter


def ffmpeg(*args):
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True, timeout=120)


@contextlib.contextmanager
def mounted_tmpfs(options):
    """A fresh tmpfs mounted with `options` (root only: read-only or tiny file systems that
    even root cannot write past)."""
    where = Path(tempfile.mkdtemp(prefix="dance-tmpfs-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode:
        where.rmdir()
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        where.rmdir()


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody running the tests may write into: a read-only tmpfs for root (who
    ignores permission bits), a folder without write permission otherwise."""
    if os.geteuid() == 0:
        with mounted_tmpfs("ro,size=1m") as where:
            yield where
    else:
        where = tmp_path / "read-only"
        where.mkdir()
        where.chmod(0o555)
        yield where
        where.chmod(0o755)


# ---- videos as phones and cameras make them ----
@pytest.fixture(scope="module")
def upright_and_phone(tmp_path_factory, karate_frames):
    """The karate clip upright, and as a phone stores it: frames sideways, rotation metadata."""
    root = tmp_path_factory.mktemp("phone")
    upright = write_clip(root / "upright.mp4", karate_frames[:20])
    sideways = write_clip(root / "sideways.mp4", [cv2.rotate(f, cv2.ROTATE_90_COUNTERCLOCKWISE) for f in karate_frames[:20]])
    ffmpeg("-display_rotation", 270, "-i", sideways, "-c", "copy", root / "phone.mp4")
    return upright, root / "phone.mp4"


def test_a_phone_clip_with_rotation_metadata_is_read_upright(upright_and_phone):
    upright, phone = upright_and_phone
    with VideoReader(upright) as a, VideoReader(phone) as b:
        assert b.size == a.size == (640, 360)
        first_a, first_b = next(iter(a))[1], next(iter(b))[1]
    assert first_b.shape == first_a.shape and np.abs(first_b.astype(int) - first_a).mean() < 3


def test_a_portrait_frame_with_a_small_person_is_detected_without_a_border(tmp_path, karate_frames):
    """A landscape clip padded into a 1080x1920 portrait frame: with the fixed 25% border the
    detector found nobody (0 of 50 frames, measured); the border chosen per video finds the
    person as often as in the landscape clip."""
    frames = karate_frames[:30:3]
    portrait = [cv2.copyMakeBorder(cv2.resize(f, (1080, 608)), 656, 656, 0, 0, cv2.BORDER_CONSTANT) for f in frames]
    land = VideoSkeleton(write_clip(tmp_path / "land.mp4", frames), progress=False)
    tall = VideoSkeleton(write_clip(tmp_path / "tall.mp4", portrait), progress=False)
    assert tall.detect_margin == 0 and len(tall) >= len(land) - 1 and len(land) >= 5


@pytest.mark.parametrize("found, chosen, tried", [({0.0: 4, 0.25: 4}, 0.0, [0.0]),        # all found: no second try
                                                   ({0.0: 3, 0.25: 4}, 0.25, [0.0, 0.25]),
                                                   ({0.0: 2, 0.25: 2}, 0.0, [0.0, 0.25])])  # a tie keeps the first
def test_the_border_is_the_one_that_finds_the_person_in_more_frames(monkeypatch, found, chosen, tried):
    """choose_detect_margin on a fake detector that finds the person in `found[margin]` of 4 frames."""
    import VideoSkeleton as vs
    calls = {}   # margin -> frames detected with it so far

    class Fake(contextlib.AbstractContextManager):
        def __init__(self, tracking):
            assert tracking is False
            self.margin = None

        def detect(self, frame):
            index = calls[self.margin] = calls.get(self.margin, 0) + 1
            return object() if index <= found[self.margin] else None

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(vs, "PoseDetector", Fake)
    assert vs.choose_detect_margin([None] * 4, margins=(0.0, 0.25)) == chosen and list(calls) == tried


def test_person_centred_crops_keep_their_border(taichi_path):
    """Crops cut tight around the person, as taichi1.mp4's are, need the border (static MediaPipe
    found the person in 2 of 16 of its frames without it, 12 with it)."""
    with VideoReader(taichi_path) as video:
        assert probe_detect_margin(video) == DETECT_MARGIN
        assert video.position == 0 and video.read() is not None  # left at the start


def test_frames_too_small_to_hold_a_person_are_refused(tmp_path, karate_frames):
    tiny = write_clip(tmp_path / "tiny.mp4", [cv2.resize(f, (32, 32)) for f in karate_frames[:10]])
    assert_one_line_error(run("VideoSkeleton.py", tiny), tiny, "32x32", "too small")


def test_implausible_skeletons_are_not_believed():
    lm = np.zeros((33, 4), np.float32)
    lm[:, :2], lm[:, 3] = 0.5, 0.9
    assert plausible(lm)
    far = lm.copy()
    far[15, 0] = 3.5  # a wrist 2.5 frame widths to the right of the frame
    low = lm.copy()
    low[:, 3] = MIN_VISIBILITY / 2
    assert not plausible(far) and not plausible(low)


class FakePose:
    """Stands in for mp.solutions.pose.Pose: a person-like answer on even frames, on odd frames
    what MediaPipe answers on a frame showing nobody (joints far outside, barely visible)."""

    def __init__(self, **settings):
        self.calls = 0

    def process(self, rgb):
        self.calls += 1
        if self.calls == 1:  # the detector's warm-up frame
            return SimpleNamespace(pose_landmarks=None)
        odd = self.calls % 2 == 1
        x, visibility = (3.5, 0.05) if odd else (0.5, 0.9)
        points = [SimpleNamespace(x=x + 0.005 * i, y=0.3 + 0.01 * i, z=0.0, visibility=visibility) for i in range(33)]
        return SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=points))

    def close(self):
        pass


def test_implausible_detections_are_dropped_by_the_detector_and_the_extraction(clip, monkeypatch):
    import mediapipe as mp
    monkeypatch.setattr(mp.solutions.pose, "Pose", FakePose)
    with PoseDetector(tracking=True, margin=0) as detector:
        frame = np.zeros((128, 128, 3), np.uint8)
        found = [detector.detect(frame) for _ in range(6)]
    assert [ske is not None for ske in found] == [True, False] * 3 and detector.rejected == 3
    videoSke = VideoSkeleton(clip, progress=False, force=True)
    with VideoReader(clip) as video:
        frames = sum(1 for _ in video)
    assert list(videoSke.frame_index) == list(range(0, frames, 2))  # the person-like frames, and only those


# ---- outputs: checked before the work, never over an input, nothing half-written ----
def test_the_demo_refuses_to_write_over_its_source(clip):
    result = run("DanceDemo.py", "--source", clip, "--target", clip, "--gen-type", "nearest", "--output", clip)
    assert_one_line_error(result, clip, "is also an input")
    assert VideoReader(clip).frame_count == 60  # untouched


def test_a_track_is_never_written_over_its_video(clip):
    size = clip.stat().st_size
    assert_one_line_error(run("VideoSkeleton.py", clip, "--save-track", clip), "skeleton track must end in .npz")
    twin = clip.with_suffix(".npz")
    twin.symlink_to(clip.name)
    assert_one_line_error(run("VideoSkeleton.py", twin.resolve(), "--save-track", clip.with_suffix(".npz")))
    assert clip.stat().st_size == size


def test_read_only_outputs_fail_before_the_work(clip, read_only_dir, tmp_path):
    out = read_only_dir / "sub" / "demo.mp4"
    for result in (run("DanceDemo.py", "--source", clip, "--target", clip, "--gen-type", "nearest", "--output", out),
                   run("VideoSkeleton.py", clip, "--save-track", read_only_dir / "t.npz"),
                   run("GenNearest.py", clip, "--source", clip, "--output", read_only_dir / "m.png"),
                   run("evaluate.py", clip, "--cross", "--json", read_only_dir / "e.json"),
                   run("GenPix2Pix.py", clip, "--epochs", 1, "--out", read_only_dir / "clip_pix2pix.pth")):
        assert_one_line_error(result, read_only_dir, "cannot write it")
    # the cache folder itself read-only: refused before minutes of extraction
    result = run("VideoSkeleton.py", clip, env={"DANCE_CACHE": str(read_only_dir / "cache")})
    assert_one_line_error(result, read_only_dir, "cannot write it")
    assert not list(read_only_dir.iterdir())


def test_a_full_disk_is_a_clear_error_and_leaves_no_file(clip):
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny file system needs root")
    with mounted_tmpfs("size=40k") as full:
        result = run("DanceDemo.py", "--source", clip, "--target", clip, "--gen-type", "nearest",
                     "--output", full / "demo.mp4")
        assert_one_line_error(result, full / "demo.mp4", "disk")
        assert not list(full.iterdir())
        with pytest.raises(DanceError, match="disk is full"):
            with atomic_path(full / "big.bin") as tmp:
                tmp.write_bytes(bytes(100_000))
        assert not list(full.iterdir())


def test_image_and_figure_outputs_are_checked_first(clip, tmp_path):
    with pytest.raises(DanceError, match="must end in .png"):
        write_image(tmp_path / "grid.xyz", np.zeros((8, 8, 3), np.uint8))
    assert not list(tmp_path.glob("*grid*"))
    assert_one_line_error(run("evaluate.py", clip, "--cross", "--grid", tmp_path / "g.txt"), "must end in .png")
    assert_one_line_error(run("evaluate.py", clip, "--cross", "--json", tmp_path), "must end in .json")
    assert_one_line_error(run("evaluate.py", clip, "--cross", tmp_path / "missing.mp4"), "missing.mp4", "no such")


def test_killed_runs_leave_no_temporary_files_for_long(tmp_path):
    stale = tmp_path / ".model.999999999.tmp.pth"  # a pid no process has
    stale.write_bytes(b"half a checkpoint")
    mine = tmp_path / f".model.{os.getpid()}.tmp.pth"
    with atomic_path(tmp_path / "model.pth") as tmp:
        assert tmp == mine
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pth"]
    stale_video = tmp_path / ".demo.999999999.tmp.mp4"
    stale_video.write_bytes(b"x")
    with VideoWriter(tmp_path / "demo.mp4", 25) as out:
        out.write(np.zeros((64, 64, 3), np.uint8))
    assert not stale_video.exists()


# ---- arguments and environment ----
def test_a_frame_rate_of_almost_nothing_is_refused(clip):
    assert_one_line_error(run("DanceDemo.py", "--source", clip, "--target", clip, "--gen-type", "nearest",
                              "--every", 100000), "--every 100000", "use --every 25 or less")


def test_environment_and_argument_mistakes(clip, tmp_path):
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("x")
    assert_one_line_error(run("VideoSkeleton.py", clip, env={"DANCE_CACHE": str(not_a_folder)}), "is a file")
    assert_one_line_error(run("DanceDemo.py", "--source", clip, "--target", clip, "--gen-type", "nearest",
                              "--output", not_a_folder / "deeper" / "out.mp4"), f"{not_a_folder} is a file, not a folder")
    assert_one_line_error(run("GenNearest.py", clip, "--source", clip, "--count", 0), "--count must be at least 1")
    assert_one_line_error(run("GenVanillaNN.py", clip, "--device", "bogus", "--out", tmp_path / "m.pth"),
                          "not a device")
    assert_one_line_error(run("GenVanillaNN.py", clip, "--lr", "nan", "--out", tmp_path / "m.pth"), "lr")
    if not torch.cuda.is_available():
        assert_one_line_error(run("GenVanillaNN.py", clip, "--device", "cuda", "--out", tmp_path / "m.pth"),
                              "no CUDA GPU")
    assert_one_line_error(run("DanceDemo.py", "--source", clip, "--gen-type", "nearest", "--target", clip,
                              "--model", "models/taichi1_pix2pix.pth"), "--model is for the learned")
    too_big = run("VideoSkeleton.py", clip, "--size", 2048)  # the message names the setting that is wrong
    assert_one_line_error(too_big, "--size 2048")
    assert "--every" not in too_big.stderr
    assert_one_line_error(run("evaluate.py", clip, "--size", 8, "--json", tmp_path / "e.json",
                              "--grid", tmp_path / "g.png"), "--size 8", "64 to")


def test_a_track_with_a_missing_frame_is_a_clear_error(tmp_path):
    track = dict(np.load(Path(__file__).parent.parent / "data" / "karate1_track.npz"))
    track["skeletons"][5] = np.nan
    np.savez(tmp_path / "nan.npz", **track)
    assert_one_line_error(run("DanceDemo.py", "--source", tmp_path / "nan.npz", "--output", tmp_path / "o.mp4"),
                          "nan.npz", f"frame {int(track['frame_index'][5])}")


def test_edited_models_and_damaged_caches_are_clear_errors(clip, tmp_path):
    gen = GenVanillaNN(device="cpu")
    for field, value, needle in (("lr", "fast", "setting lr"), ("input", "video", "--input must be one of"),
                                 ("colour", 1, "no setting colour")):
        state = gen.state(training=False)
        state["config"] = {**state["config"], field: value}
        torch.save(state, tmp_path / "edited.pth")
        with pytest.raises(DanceError, match=needle):
            GenVanillaNN.load(tmp_path / "edited.pth")
    state = gen.state(training=False)
    state["history"] = "not a list"
    torch.save(state, tmp_path / "history.pth")
    with pytest.raises(DanceError, match="history"):
        GenVanillaNN.load(tmp_path / "history.pth")
    vs = VideoSkeleton(clip, every=6, progress=False)
    with np.load(vs.cache_file) as z:
        arrays = dict(z)
    arrays["jpeg"] = np.full_like(arrays["jpeg"], 7)  # same length, garbage bytes
    np.savez(vs.cache_file, **arrays)
    again = VideoSkeleton(clip, every=6, progress=False)
    with pytest.raises(DanceError, match="damaged"):
        again.readImage(0)


# ---- trainers: each target its own model, never another's ----
def test_trainers_write_each_target_its_own_model_and_never_another_targets(clip, tmp_path, monkeypatch):
    checkpoints = tmp_path / "checkpoints"
    monkeypatch.setenv("DANCE_CHECKPOINTS", str(checkpoints))
    models = tmp_path / "models"
    shipped = models / "taichi1_vanilla_nn_ske.pth"
    models.mkdir()
    shipped.write_bytes(Path("models/taichi1_vanilla_nn_ske.pth").read_bytes())
    before = shipped.read_bytes()
    # another target into the shipped model's file: refused before any training
    assert_one_line_error(run("GenVanillaNN.py", clip, "--epochs", 1, "--out", shipped), "holds a model of taichi1.mp4")
    # over its own input: refused
    assert_one_line_error(run("GenVanillaNN.py", clip, "--epochs", 1, "--out", clip), "must end in .pth")
    ok = run("GenVanillaNN.py", clip, "--epochs", 1, "--every", 2, "--out", models / "clip_vanilla_nn_ske.pth")
    assert ok.returncode == 0, ok.stderr
    assert shipped.read_bytes() == before
    # the same target again: only when asked
    assert_one_line_error(run("GenVanillaNN.py", clip, "--epochs", 1, "--out", models / "clip_vanilla_nn_ske.pth"),
                          "--replace")
    assert run("GenVanillaNN.py", clip, "--epochs", 1, "--every", 2, "--out", models / "clip_vanilla_nn_ske.pth",
               "--replace").returncode == 0
    # resuming with other settings, or a training of another video: refused
    ckpt = checkpoints / "clip_vanilla_nn_ske.pth"
    assert ckpt.exists()
    assert_one_line_error(run("GenVanillaNN.py", clip, "--epochs", 2, "--resume", "--lr", "0.001",
                              "--out", models / "clip_vanilla_nn_ske.pth"), "--lr 0.001 differs")
    state = torch.load(ckpt, weights_only=True)
    state["record"]["target"] = "someone.mp4"
    torch.save(state, ckpt)
    assert_one_line_error(run("GenVanillaNN.py", clip, "--epochs", 2, "--resume",
                              "--out", models / "clip_vanilla_nn_ske.pth"), "continues a training on someone.mp4")
    assert_one_line_error(run("GenVanillaNN.py", clip, "--input", "image", "--resume",
                              "--out", models / "clip_vanilla_nn_image.pth"), "no checkpoint to resume")


def test_a_target_too_short_to_split_is_a_clear_error(tmp_path, karate_frames):
    short = write_clip(tmp_path / "short.mp4", karate_frames[:6])
    assert_one_line_error(run("GenVanillaNN.py", short, "--epochs", 1, "--out", tmp_path / "m.pth"),
                          "short.mp4", "training needs at least")


def test_an_interrupted_training_resumes_to_the_same_weights(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "SAMPLES_DIR", tmp_path / "samples")
    target = VideoSkeleton(clip, every=2, progress=False)

    def trained(interrupt_at=None):
        gen = GenVanillaNN(device="cpu", batch_size=4)
        real, calls = gen.train_step, [0]

        def step(batch):
            calls[0] += 1
            if calls[0] == interrupt_at:
                raise KeyboardInterrupt
            return real(batch)

        gen.train_step = step
        ckpt = tmp_path / f"ckpt{interrupt_at}.pth"
        if interrupt_at:
            with pytest.raises(KeyboardInterrupt):
                gen.train(target, epochs=3, every=1, checkpoint=ckpt, progress=False)
            gen = GenVanillaNN.load(ckpt)
            assert gen.partial["step"] == 1  # stopped one step into its second epoch
        gen.train(target, epochs=3, every=1, checkpoint=ckpt, progress=False)
        return gen

    whole, resumed = trained(), trained(interrupt_at=6)  # epochs of 4 steps: step 2 of epoch 2
    for a, b in zip(whole.netG.state_dict().values(), resumed.netG.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_stops_a_training_cleanly_and_resume_continues(clip, tmp_path, monkeypatch, stop):
    """A real SIGINT (or SIGTERM: `kill`, `timeout`, a scheduler) to a real trainer: it finishes
    the step, saves, exits 128 + the signal; --resume goes on."""
    monkeypatch.setenv("DANCE_CHECKPOINTS", str(tmp_path / "checkpoints"))
    out = tmp_path / "models" / "clip_vanilla_nn_ske.pth"
    ckpt = tmp_path / "checkpoints" / out.name
    args = [sys.executable, str(ROOT / "GenVanillaNN.py"), str(clip), "--epochs", "400", "--every", "1",
            "--batch-size", "2", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(stop)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + stop, stderr
    assert "Traceback" not in stderr and "state saved to" in stderr and "--resume" in stderr
    state = torch.load(ckpt, weights_only=True)
    assert 1 <= state["epoch"] < 400 and not out.exists()
    done = state["epoch"] + 1
    result = run("GenVanillaNN.py", clip, "--epochs", done, "--every", 1, "--batch-size", 2, "--out", out, "--resume")
    assert result.returncode == 0, result.stderr
    assert torch.load(out, weights_only=True)["epoch"] == done


def test_a_hang_up_during_extraction_saves_the_progress_and_the_rerun_resumes(karate_path, tmp_path):
    """SIGHUP (the terminal closed) is Ctrl-C too: the frames done are kept, the rerun goes on."""
    video = tmp_path / "karate.mp4"
    video.symlink_to(karate_path.resolve())
    proc = subprocess.Popen([sys.executable, str(ROOT / "VideoSkeleton.py"), str(video)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal)
    said = read_until(proc, rb"(\| *\d\d+/\d+|: *\d\d+frame)")  # ten frames or more done
    proc.send_signal(signal.SIGHUP)
    stderr = said + proc.communicate(timeout=60)[1]
    assert proc.returncode == 128 + signal.SIGHUP, stderr.decode(errors="replace")
    assert b"stopped by SIGHUP" in stderr and b"run again to resume" in stderr and b"Traceback" not in stderr
    rerun = run("VideoSkeleton.py", video)
    assert rerun.returncode == 0 and "resuming" in rerun.stderr, rerun.stderr


def test_file_names_that_are_not_utf8_work_as_inputs_and_outputs(clip, tmp_path):
    """A Latin-1 'café.mp4' (Python holds its name with a surrogate; OpenCV crashed on it)."""
    latin = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.mp4"))
    os.link(clip, latin)
    out = Path(os.fsdecode(bytes(tmp_path) + b"/d\xe9mo.mp4"))
    result = run("DanceDemo.py", "--source", latin, "--target", latin, "--gen-type", "nearest", "--every", "6",
                 "--output", out)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and out.exists()
    with VideoReader(out) as video:
        assert video.frame_count == 10
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == sorted(
        [clip.name, latin.name, out.name])  # no temporary left beside them


def test_a_model_found_by_its_targets_name_must_render_that_target(tmp_path):
    from generators import make_generator
    (tmp_path / "clip_pix2pix.pth").write_bytes(Path("models/taichi1_pix2pix.pth").read_bytes())
    with pytest.raises(DanceError, match="named for clip but renders taichi1.mp4"):
        make_generator("pix2pix", target="clip.mp4", models_dir=tmp_path)
    with pytest.raises(DanceError, match="no gan model of clip .*none there"):
        make_generator("gan", target="clip.mp4", models_dir=tmp_path)
