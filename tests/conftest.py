"""Shared fixtures: the real footage (from $DANCE_DATA or data/), short clips cut from it,
and a private cache folder so tests never touch the project's own cache."""
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from VideoReader import VideoReader, data_dir  # noqa: E402


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


@pytest.fixture(scope="session")
def karate_path():
    path = data_dir() / "karate1.mp4"
    if not path.exists():
        message = f"{path} not found: set DANCE_DATA to the folder holding the videos"
        if os.environ.get("DANCE_REQUIRE_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def karate_frames(karate_path):
    """Frames 100-159 of karate1.mp4: a person in most of them, none in some (a turn)."""
    return read_frames(karate_path, 100, 160)


@pytest.fixture
def clip(tmp_path, karate_frames):
    """A fresh 60-frame clip of karate1.mp4 for each test (tests may modify it)."""
    return write_clip(tmp_path / "clip.mp4", karate_frames)


@pytest.fixture
def empty_scene(tmp_path):
    """A video in which no person is ever found: smooth coloured noise."""
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 5)
              for _ in range(10)]
    return write_clip(tmp_path / "empty_scene.mp4", frames)
