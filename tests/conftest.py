"""Shared fixtures: the real footage (from $DANCE_DATA or data/), short clips cut from it,
and a private cache folder so tests never touch the project's own cache."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from project import data_dir  # noqa: E402
from runtime import EXPORTER_NOTES  # noqa: E402
from Skeleton import reduced_vectors  # noqa: E402
from VideoReader import VideoReader  # noqa: E402


def pytest_configure(config):
    """The ONNX exporter's deprecation notes silenced here as runtime.py silences them for the
    demo: pytest sets the warning filters afresh around each test."""
    for note, module in EXPORTER_NOTES:
        config.addinivalue_line("filterwarnings", f"ignore:{note}:DeprecationWarning:{module}")

def run(script, *args, env=None, cwd=ROOT):
    """Run one of the project's scripts as a user would: (completed process with text output)."""
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=None if env is None else {**os.environ, **env})


def as_in_a_terminal():
    """`preexec_fn` for a child that is sent a stop signal: SIGINT, SIGTERM and SIGHUP at their
    defaults, as a terminal's child gets them. A suite started in the background (`&`, `nohup`)
    passes ignored SIGINT / SIGHUP on, and the product rightly keeps a parent's SIG_IGN."""
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, signal.SIG_DFL)


def read_until(proc, pattern):
    """What a running process (Popen with stderr=PIPE, bytes) has written to stderr, read until
    the regular expression `pattern` (bytes) matches it; fails if the process ends first."""
    said = b""
    while not re.search(pattern, said):
        chunk = proc.stderr.read1(4096)
        assert chunk, said.decode(errors="replace")[-3000:]
        said += chunk
    return said


def assert_one_line_error(result, *needles):
    """Exit 2 and one error line, last on stderr; a progress bar may come before it, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and lines[-1].startswith("error: "), result.stderr
    assert sum("error" in line.lower() for line in lines) == 1, result.stderr
    for needle in needles:
        assert str(needle) in lines[-1], (needle, lines[-1])


def assert_holds_any_pose(gen, poses, size):
    """`gen` renders (size, size) BGR uint8 frames for poses with missing landmarks: NaN (a
    wrist, a whole leg, the shoulders to the wrists), barely visible ones, reduced 26-vectors,
    and a skeleton with nothing known at all; poses (>= 4, 33, 4) in crop coordinates."""
    broken = poses[:4].copy()
    broken[0, 15] = np.nan
    broken[1, [23, 25, 27, 29, 31]] = np.nan
    broken[2, :, 3] = 0.01
    broken[3, 11:17] = np.nan
    nothing = np.full((1, 33, 4), np.nan, np.float32)
    for asked in (broken, reduced_vectors(poses[:3]), nothing):
        out = gen.generate_batch(asked)
        assert out.dtype == np.uint8 and out.shape == (len(asked), size, size, 3)


def write_clip(path, frames, fps=25.0):
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        out.write(f)
    out.release()
    return path


def read_frames(path, start, stop):
    with VideoReader(path) as video:
        return [f for i, f in video if start <= i < stop]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DANCE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def footage(name):
    """A video of the data folder; skipped when it is not there, failed in CI (DANCE_REQUIRE_DATA)."""
    path = data_dir() / name
    if not path.exists():
        message = f"{path} not found: set DANCE_DATA to the folder holding the videos"
        if os.environ.get("DANCE_REQUIRE_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def karate_path():
    return footage("karate1.mp4")


@pytest.fixture(scope="session")
def taichi_path():
    """The default target: 12,000 frames of person-centred 128x128 crops."""
    return footage("taichi1.mp4")


@pytest.fixture(scope="session")
def karate_frames(karate_path):
    """Frames 100-159 of karate1.mp4: a person in most of them, none in some (a turn)."""
    return read_frames(karate_path, 100, 160)


@pytest.fixture
def clip(tmp_path, karate_frames):
    """A fresh 60-frame clip of karate1.mp4 for each test (tests may modify it)."""
    return write_clip(tmp_path / "clip.mp4", karate_frames)


@pytest.fixture(scope="session")
def clip_models(karate_frames, tmp_path_factory):
    """A models folder holding one model of every learned generator of the table, each
    trained for one epoch on the 60-frame clip (named clip.mp4): a target of our own."""
    import training
    from checkpoints import model_path
    from generators import TABLE
    from VideoSkeleton import VideoSkeleton
    root = tmp_path_factory.mktemp("clip_models")
    saved = os.environ.get("DANCE_CACHE"), training.SAMPLES_DIR
    os.environ["DANCE_CACHE"], training.SAMPLES_DIR = str(root / "cache"), root / "samples"
    try:
        target = VideoSkeleton(write_clip(root / "clip.mp4", karate_frames), progress=False)
        for row in TABLE:
            if row.learned:
                gen = row.cls(device="cpu", **row.config)
                gen.train(target, epochs=1, every=2, out=model_path(target.filename, row.name, root / "models"),
                          progress=False)
    finally:
        training.SAMPLES_DIR = saved[1]
        if saved[0] is None:
            os.environ.pop("DANCE_CACHE")
        else:
            os.environ["DANCE_CACHE"] = saved[0]
    return root / "models"


@pytest.fixture
def empty_scene(tmp_path):
    """A video in which no person is ever found: smooth coloured noise."""
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 5)
              for _ in range(10)]
    return write_clip(tmp_path / "empty_scene.mp4", frames)


@pytest.fixture(scope="module")
def poses():
    """Real skeletons (karate1's shipped track), centred in a square crop: (168, 33, 4)."""
    with np.load(ROOT / "data" / "karate1_track.npz") as z:
        lm = z["skeletons"].copy()
    lm[..., 1] = (lm[..., 1] - 0.5) * 360 / 640 + 0.5  # the track's 640x360 frame made square
    centre = lm[:, :, :2].mean(axis=1, keepdims=True)
    lm[:, :, :2] = 0.5 + 1.6 * (lm[:, :, :2] - centre)   # person-sized in the crop
    return lm
