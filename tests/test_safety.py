"""Issue 21's kinds of fault: a name taken for an identity (9), two processes on one file (10),
numbers read back from files (12), outputs that fail after the work (13). Each gives the right
result or one clear line and exit 2, before the work. (Resuming under another world size, 6:
tests/test_distributed.py.)"""
import gc
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import training as T
from caches import save_npz_atomic
from conftest import ROOT, assert_one_line_error, run, write_clip
from DanceDemo import DanceDemo
from files import OutputClaim, atomic_path, check_output, temporary_name
from generators import TABLE, make_generator
from GenVanillaNN import GenVanillaNN
from GenWarp import GenWarp
from poses import STICK_FIGURES
from project import DanceError
from training_settings import TRAINING_DEFAULTS
from VideoSkeleton import VideoSkeleton
from VideoWriter import VideoWriter

TRACK = ROOT / "data" / "karate1_track.npz"
SHIPPED = ROOT / "models" / "taichi1_vanilla_nn_ske.pth"


@pytest.fixture
def two_of_a_name(tmp_path, karate_frames):
    """Two different people's videos (the clip, and the clip mirrored) both named me.mp4."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    return (write_clip(a / "me.mp4", karate_frames),
            write_clip(b / "me.mp4", [cv2.flip(f, 1) for f in karate_frames]))


def trained(video, out, checkpoint=None, samples=None):
    """GenVanillaNN trained one quick epoch on `video` through the class: its model at `out`."""
    T.SAMPLES_DIR = samples or Path(out).parent / "samples"
    gen = GenVanillaNN(device="cpu", batch_size=8)
    gen.train(VideoSkeleton(video, progress=False), epochs=1, every=4, checkpoint=checkpoint, out=out,
              progress=False)
    return gen


@pytest.fixture(autouse=True)
def samples_stay_put(monkeypatch):
    monkeypatch.setattr(T, "SAMPLES_DIR", T.SAMPLES_DIR)  # tests that set it get it back


# ---- 9: a name is not an identity ----
def test_a_video_of_the_same_name_is_another_person_to_resume_and_replace(two_of_a_name, tmp_path, monkeypatch):
    a, b = two_of_a_name
    checkpoints = tmp_path / "checkpoints"
    monkeypatch.setenv("DANCE_CHECKPOINTS", str(checkpoints))
    out = tmp_path / "models" / "me_vanilla_nn_ske.pth"
    trained(a, out, checkpoint=checkpoints / out.name)
    model, state = out.read_bytes(), (checkpoints / out.name).read_bytes()
    assert torch.load(out, weights_only=True)["record"]["target_digest"] == VideoSkeleton(a).meta["digest"]
    quick = ("--epochs", 2, "--every", 4, "--batch-size", 8)
    # resuming a's training with b (another --out of the same name: the same checkpoint)
    assert_one_line_error(run("GenVanillaNN.py", b, *quick, "--resume", "--out", tmp_path / "other" / out.name),
                          "continues a training on another video named me.mp4", "its content differs")
    # writing over a's model with b's: not with --replace, not by starting afresh over its checkpoint
    assert_one_line_error(run("GenVanillaNN.py", b, *quick, "--replace", "--out", out),
                          "holds a model of another video named me.mp4", "--replace-other-video")
    assert_one_line_error(run("GenVanillaNN.py", b, *quick, "--out", tmp_path / "other" / out.name),
                          "holds the training state of another video named me.mp4")
    assert out.read_bytes() == model and (checkpoints / out.name).read_bytes() == state
    # the explicit, named choice writes over it
    result = run("GenVanillaNN.py", b, "--epochs", 1, "--every", 4, "--batch-size", 8, "--out", out,
                 "--replace-other-video")
    assert result.returncode == 0, result.stderr[-2000:]
    assert torch.load(out, weights_only=True)["record"]["target_digest"] == VideoSkeleton(b).meta["digest"]
    assert not list(out.parent.glob(".*claim"))  # the claims are gone with the run


def test_a_shipped_model_is_never_one_suggested_flag_away_from_someone_else(clip, tmp_path):
    """models/taichi1_*.pth record no content: another taichi1.mp4 with --replace is refused, and
    the error does not offer the flag that would do it."""
    other = shutil.copy(clip, tmp_path / "taichi1.mp4")
    before = SHIPPED.read_bytes()
    result = run("GenVanillaNN.py", other, "--epochs", 1, "--replace", "--out", SHIPPED,
                 env={"DANCE_CHECKPOINTS": str(tmp_path / "checkpoints")})
    assert_one_line_error(result, "whose content it does not record", "--out FILE")
    assert "--replace-other-video" not in result.stderr and SHIPPED.read_bytes() == before


def test_the_demo_refuses_a_model_found_by_name_that_is_of_another_video(two_of_a_name, tmp_path):
    a, b = two_of_a_name
    models = tmp_path / "models"
    trained(a, models / "me_vanilla_nn_ske.pth")
    assert make_generator("vanilla_nn_ske", target=a, models_dir=models).record["target"] == "me.mp4"
    with pytest.raises(DanceError, match="model of another video named me.mp4"):
        make_generator("vanilla_nn_ske", target=b, models_dir=models)
    with pytest.raises(DanceError, match="model of another video named me.mp4"):
        make_generator("vanilla_nn_ske", target=VideoSkeleton(b, progress=False), models_dir=models)
    # the shipped models record no content: still found by name
    assert make_generator("vanilla_nn_ske", target=b.with_name("taichi1.mp4")).target_name == "taichi1"


def test_a_model_goes_on_training_only_on_its_own_video(two_of_a_name, tmp_path):
    a, b = two_of_a_name
    gen = trained(a, tmp_path / "a.pth")
    with pytest.raises(DanceError, match="another video named me.mp4"):
        gen.train(VideoSkeleton(b, progress=False), epochs=2, every=4, progress=False)


# ---- 10: two processes, one file ----
def test_a_second_trainer_with_the_same_out_stops_at_once(clip, tmp_path):
    out = tmp_path / "clip_vanilla_nn_ske.pth"
    with OutputClaim(out, "model"):  # a first trainer, at work
        result = run("GenVanillaNN.py", clip, "--epochs", 1, "--out", out,
                     env={"DANCE_CHECKPOINTS": str(tmp_path / "checkpoints")})
    assert_one_line_error(result, out, "another command is writing this model now")
    assert not out.exists()
    with OutputClaim(tmp_path / "checkpoints" / out.name, "checkpoint"):  # or only its checkpoint
        result = run("GenVanillaNN.py", clip, "--epochs", 1, "--out", out,
                     env={"DANCE_CHECKPOINTS": str(tmp_path / "checkpoints")})
    assert_one_line_error(result, "another command is writing this checkpoint now")


def test_a_claim_is_exclusive_and_ends_with_its_holder(tmp_path):
    out = tmp_path / "demo.mp4"
    with VideoWriter(out, 25) as first:
        with pytest.raises(DanceError, match="another command is writing this video"):
            VideoWriter(out, 25)
        first.write(np.zeros((64, 64, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mp4"]  # no claim left
    VideoWriter(out, 25).close()  # free again
    # a holder killed with SIGKILL leaves its claim file, but not its lock
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from files import OutputClaim; " \
           f"OutputClaim({str(out)!r}).acquire(); import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert os.spawnv(os.P_WAIT, sys.executable, [sys.executable, "-c", code]) != 0
    assert (tmp_path / ".demo.mp4.claim").exists()
    with OutputClaim(out):
        pass


def test_outputs_that_are_caches_or_devices_are_refused(clip, tmp_path):
    vs = VideoSkeleton(clip, progress=False)
    cache = vs.cache_file.read_bytes()
    result = run("VideoSkeleton.py", clip, "--save-track", vs.cache_file)
    assert_one_line_error(result, vs.cache_file, "is in the cache folder")
    assert vs.cache_file.read_bytes() == cache and len(VideoSkeleton(clip, progress=False)) == len(vs)
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    with pytest.raises(DanceError, match="not a regular file"):
        check_output(fifo, (".npz",), "skeleton track")


# ---- 12: numbers read from files are validated like flags ----
@pytest.mark.parametrize("field, value, needle", [
    ("frames_read", 10**12, "frames_read 1000000000000 is not between"),
    ("fps", "fast", "fps is not a number"),
    ("fps", float("nan"), "fps nan is not between"),
    ("every", 0, "every 0 is not between"),
    ("skeletons", np.zeros((168, 33, 4), np.int64), "skeletons is not a number"),
])
def test_a_track_with_numbers_out_of_range_is_a_clear_error(tmp_path, clip, field, value, needle):
    track = dict(np.load(TRACK))
    track[field] = np.array(value)
    np.savez(tmp_path / "bad.npz", **track)
    with pytest.raises(DanceError, match=needle):
        DanceDemo(tmp_path / "bad.npz", "nearest", target=clip)


def test_a_track_claiming_a_trillion_frames_is_refused_by_the_demo(tmp_path, clip):
    track = dict(np.load(TRACK))
    track["frames_read"] = np.array(10**12)
    np.savez(tmp_path / "big.npz", **track)
    result = run("DanceDemo.py", "--source", tmp_path / "big.npz", "--target", clip, "--gen-type", "nearest",
                 "--output", tmp_path / "o.mp4")
    assert_one_line_error(result, "big.npz", "frames_read")
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("edit, needle", [
    (lambda s: s.clear(), "do not have exactly"),
    (lambda s: s.update(frame_size=[0, 0]), "frame size [0, 0]"),
    (lambda s: s.update(near_height=float("nan")), "near_height nan"),
    (lambda s: s.update(far="96"), "far '96'"),
])
def test_a_model_whose_record_of_the_target_is_damaged_is_a_clear_error(tmp_path, edit, needle):
    state = torch.load(SHIPPED, weights_only=True)
    edit(state["config"]["target_stats"])
    torch.save(state, tmp_path / "edited.pth")
    with pytest.raises(DanceError, match=f"edited.pth: its record target_stats is damaged: .*{re.escape(needle)}"):
        make_generator("vanilla_nn_ske", model=tmp_path / "edited.pth")


def test_the_demo_refuses_a_nan_height_it_used_to_render_as_flat_panels(tmp_path, clip):
    state = torch.load(SHIPPED, weights_only=True)
    state["config"]["target_stats"]["far_height"] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    result = run("DanceDemo.py", "--source", clip, "--gen-type", "vanilla_nn_ske", "--model", tmp_path / "nan.pth",
                 "--every", 6, "--output", tmp_path / "o.mp4")
    assert_one_line_error(result, "nan.pth", "far_height nan")


@pytest.mark.parametrize("key, value, needle", [
    ("target_frames", -1, "target_frames = -1"), ("train_every", 0, "train_every = 0"),
    ("crop_size", 10**6, "crop_size = 1000000"), ("target_digest", 7, "target_digest = 7"),
    ("trained_with", {"world_size": 0}, "trained_with"),
])
def test_every_recorded_fact_of_a_model_has_a_type_and_a_range(tmp_path, key, value, needle):
    state = torch.load(SHIPPED, weights_only=True)
    state["config"][key] = value
    torch.save(state, tmp_path / "edited.pth")
    with pytest.raises(DanceError, match=f"edited.pth: its record {re.escape(needle)}"):
        GenVanillaNN.load(tmp_path / "edited.pth")


def test_a_model_keeps_its_record_apart_from_its_settings_and_is_refused_by_another_renderer(clip, tmp_path):
    out = tmp_path / "models" / "clip_vanilla_nn_ske.pth"
    trained(clip, out)
    state = torch.load(out, weights_only=True)
    assert set(state["config"]) == set(TRAINING_DEFAULTS) | set(GenVanillaNN.defaults)  # settings only
    assert state["record"]["target"] == "clip.mp4" and state["record"]["trained_with"]["world_size"] == 1
    assert state["record"]["pose_renderer"] == STICK_FIGURES.record == {"name": "pose_images", "version": 1,
                                                                       "channels": 3}
    state["record"]["pose_renderer"] = {**STICK_FIGURES.record, "version": 2}  # drawn by a later program
    torch.save(state, tmp_path / "later.pth")
    assert_one_line_error(run("DanceDemo.py", "--source", clip, "--gen-type", "vanilla_nn_ske", "--model",
                              tmp_path / "later.pth", "--every", 6, "--output", tmp_path / "o.mp4"),
                          "later.pth", "pose_images version 2", "train it again")
    legacy = GenVanillaNN.load(SHIPPED)  # written when the record lived inside the config: parted on load
    assert legacy.record["target"] == "taichi1.mp4" and "target" not in legacy.config


def test_a_checkpoints_progress_is_checked_and_an_old_one_counted_in_frames(tmp_path):
    gen = GenVanillaNN(device="cpu", batch_size=4)
    gen.record.update(train_frames=32, trained_with={"world_size": 2, "batch_per_rank": 4, "global_batch": 8})
    for partial, needle in (({"step": 2, "samples": 33, "sums": {}, "seconds": 1.0}, "frames 33 of 32"),
                            ({"step": -1, "samples": 0, "sums": {}, "seconds": 1.0}, "step -1"),
                            ({"step": 1, "samples": 4, "sums": {"l1": float("nan")}, "seconds": 1.0}, "progress"),
                            ({"step": 1, "samples": 4, "sums": {}, "seconds": "soon"}, "seconds 'soon'")):
        state = gen.state(training=True)
        state["partial"] = partial
        torch.save(state, tmp_path / "ckpt.pth")
        with pytest.raises(DanceError, match=f"ckpt.pth: .*{needle}"):
            GenVanillaNN.load(tmp_path / "ckpt.pth")
    state = gen.state(training=True)
    state["partial"] = {"step": 3, "sums": {"l1": 0.5}, "seconds": 2.0}  # before progress was counted in frames
    torch.save(state, tmp_path / "old.pth")
    assert GenVanillaNN.load(tmp_path / "old.pth").partial["samples"] == 3 * 4 * 2  # steps x batch x its 2 ranks


def test_every_numeric_setting_of_every_learned_generator_has_a_range():
    for row in TABLE:
        if row.learned:
            settings = {**TRAINING_DEFAULTS, **row.cls.defaults}
            numeric = {k for k, v in settings.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            assert numeric <= set(row.cls.setting_ranges()), (row.name, numeric - set(row.cls.setting_ranges()))


def test_numeric_settings_and_flags_out_of_range_are_refused(clip, tmp_path):
    for config, needle in (({"painting_weight": -5.0}, "painting_weight"), ({"seed": -1}, "seed"),
                           ({"ema_decay": 1.0}, "ema_decay"), ({"references": 0}, "references")):
        with pytest.raises(DanceError, match=f"setting {needle} .* must lie"):
            GenWarp(device="cpu", **config)
    assert_one_line_error(run("GenWarp.py", clip, "--painting-weight", -5, "--out", tmp_path / "w.pth"),
                          "--painting-weight", "between 0 and")
    assert_one_line_error(run("GenVanillaNN.py", clip, "--epochs", 10**9, "--out", tmp_path / "v.pth"),
                          "--epochs 1000000000")


def test_a_cache_with_numbers_out_of_range_is_damaged(clip):
    vs = VideoSkeleton(clip, every=6, progress=False)
    for key, value in (("frames_read", -3), ("video_fps", "fast"), ("video_size", [0, 360])):
        with np.load(vs.cache_file) as z:
            arrays = dict(z)
        meta = json.loads(str(arrays["meta"]))
        meta[key] = value
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(vs.cache_file, **arrays)
        with pytest.raises(DanceError, match="skeleton cache is damaged"):
            VideoSkeleton(clip, every=6, progress=False)
        vs = VideoSkeleton(clip, every=6, force=True, progress=False)


# ---- 13: every output checked before the work, every failed write one line ----
def test_an_unwritable_sample_folder_fails_before_the_first_step(clip, tmp_path, monkeypatch):
    blocker = tmp_path / "output"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setattr(T, "SAMPLES_DIR", blocker / "samples")
    gen = GenVanillaNN(device="cpu", batch_size=8)
    steps = []
    gen.train_step = lambda batch: steps.append(1) or {"l1": 0.0}
    with pytest.raises(DanceError, match="samples.*cannot write it"):
        gen.train(VideoSkeleton(clip, progress=False), epochs=1, every=4, out=tmp_path / "m.pth", progress=False)
    assert not steps and not (tmp_path / "m.pth").exists()


def full_disk_under(path):
    """Make the temporary file `atomic_path` writes `path` under a link to /dev/full: every
    write to it fails with ENOSPC, as on a full disk."""
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full here")
    temporary_name(Path(path)).symlink_to("/dev/full")


def test_a_full_disk_while_saving_a_model_is_one_line_and_no_file(tmp_path):
    out = tmp_path / "m.pth"
    full_disk_under(out)
    with pytest.raises(DanceError, match="m.pth: cannot write it: the disk is full"):
        GenVanillaNN(device="cpu").save(out)
    assert not list(tmp_path.iterdir())


def test_a_full_disk_while_saving_a_track_or_cache_is_one_line_and_nothing_more(clip, tmp_path, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    vs = VideoSkeleton(clip, every=6, progress=False)
    for path, write in ((tmp_path / "t.npz", vs.save_track),
                        (tmp_path / "c.npz", lambda p: save_npz_atomic(p, a=np.zeros(100_000)))):
        full_disk_under(path)
        with pytest.raises(DanceError, match="cannot write it: the disk is full"):
            write(path)
        gc.collect()
    assert not unraisable and not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob(".*tmp*"))


def test_a_write_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DanceError, match="is a file, not a folder"):
        with atomic_path(tmp_path / "file" / "sub" / "m.pth") as tmp:
            tmp.write_bytes(b"x")


def test_a_damaged_sound_track_costs_the_sound_not_the_video(tmp_path, caplog):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    out = tmp_path / "demo.mp4"
    with caplog.at_level(logging.WARNING, logger="dance"):
        with VideoWriter(out, 25, audio=bad) as writer:
            for i in range(10):
                writer.write(np.full((64, 64, 3), 20 * i, np.uint8))
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    video.release()
    assert "the sound of" in caplog.text and "without sound" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "demo.mp4"]


def test_a_full_disk_while_adding_the_sound_is_still_an_error(tmp_path, karate_path, monkeypatch):
    monkeypatch.setattr(VideoWriter, "_add_sound", lambda self: self._log.write(b"No space left on device\n") or 1)
    with pytest.raises(DanceError, match="disk is full"):
        with VideoWriter(tmp_path / "demo.mp4", 25, audio=karate_path) as writer:
            writer.write(np.zeros((64, 64, 3), np.uint8))
    assert not list(tmp_path.iterdir())
