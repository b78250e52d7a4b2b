"""evaluate.py: metrics on known inputs, and a tiny end-to-end run."""
import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

import metrics
import protocols
import report
from conftest import ROOT
from generators import DEFAULT, TABLE
from hard_clips import VARIANTS
from pose_detector import PoseDetector
from poses import EDIT_FAMILIES
from VideoSkeleton import VideoSkeleton


def smooth_image(seed=0, size=64, sigma=3):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), sigma)


def test_identical_images_score_perfectly():
    a = smooth_image().astype(np.float32) / 255
    assert metrics.l1(a, a) == 0 and metrics.psnr(a, a) == float("inf")
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-9)


def test_noise_lowers_ssim_and_psnr_by_the_expected_amount():
    a = smooth_image().astype(np.float32) / 255
    rng = np.random.default_rng(1)
    small = np.clip(a + rng.normal(0, 0.02, a.shape), 0, 1)
    large = np.clip(a + rng.normal(0, 0.10, a.shape), 0, 1)
    assert metrics.psnr(a, small) == pytest.approx(34, abs=1.0)   # 20 log10(1 / 0.02) = 34 dB
    assert metrics.psnr(a, large) == pytest.approx(20, abs=1.0)   # 20 log10(1 / 0.1) = 20 dB
    assert 1 > metrics.ssim(a, small) > metrics.ssim(a, large) > 0
    assert metrics.l1(a, large) == pytest.approx(0.08, abs=0.01)  # E|N(0, 0.1)| = 0.1 * sqrt(2 / pi)


def test_a_constant_offset_costs_l1_exactly_and_shift_hurts_ssim():
    a = smooth_image().astype(np.float32) / 255 * 0.5
    assert metrics.l1(a, a + 0.1) == pytest.approx(0.1, abs=1e-6)
    b = smooth_image(sigma=1).astype(np.float32) / 255
    shifted = np.roll(b, 3, axis=1)
    assert metrics.ssim(b, shifted) < 0.5 < metrics.ssim(b, np.roll(b, 1, axis=1)) < 1


def test_flicker_of_a_still_and_a_changing_sequence():
    still = np.repeat(smooth_image()[None], 5, axis=0)
    assert metrics.flicker(still) == 0
    ramp = np.stack([np.full((8, 8, 3), 10 * i, np.uint8) for i in range(5)])
    assert metrics.flicker(ramp) == pytest.approx(10 / 255)


def test_person_box_grows_and_clips():
    vec = np.tile([0.5, 0.5], 13).astype(np.float32)
    vec[:2] = (0.0, 0.1)
    x0, y0, x1, y1 = metrics.person_box(vec, 100, margin=0.1)
    assert (x0, y0) == (0, 0) and x1 == 60 and y1 == 60


def test_placing_a_real_crop_in_its_frame_reproduces_its_detection(clip):
    """The placed protocol, on real frames: the crop put back where it was cut from, at the
    panel's size, is found with its own skeleton."""
    vs = VideoSkeleton(clip, every=6, progress=False)
    with PoseDetector(tracking=False, margin=protocols.REDETECT_MARGIN) as det:
        crop_found, _ = metrics.detections(vs.images(), vs.skeletons, det)
    panels = protocols.placed_panels(vs.images(), vs.skeletons, vs.boxes, vs.frame_size)[0]
    det, margin = protocols.placed_detector(panels)
    with det:
        found, errors = protocols.placed(vs.images(), vs.skeletons, vs.boxes, vs.frame_size, det)
    assert found.mean() >= crop_found.mean() - 0.1 and found.mean() > 0.6
    assert np.nanmedian(errors) < 6  # panel pixels (256), where the crop's person is about 100 px tall


def test_novelty_quartiles_split_by_the_edges():
    q = metrics.novelty_quartiles(np.array([0.0, 0.1, 0.25, 0.3, 0.9]), np.array([0.1, 0.2, 0.3]))
    assert list(q) == [0, 1, 2, 3, 3]
    found, errors = np.array([True, False, True, True]), np.array([2.0, np.nan, 4.0, 6.0])
    rows = metrics.by_quartile(found, errors, np.array([0, 0, 1, 3]))
    assert rows[0] == {"detection_rate": 0.5, "joint_error_px": 2.0, "frames": 2} and rows[2]["frames"] == 0


def test_a_blank_image_is_never_detected():
    with PoseDetector(tracking=False) as det:
        r = metrics.pose_fidelity([np.zeros((128, 128, 3), np.uint8)] * 3, np.zeros((3, 33, 4), np.float32), det)
    assert r["detection_rate"] == 0 and np.isnan(r["joint_error_px"]) and r["frames"] == 3


def test_end_to_end_on_a_short_clip(clip, clip_models, tmp_path):
    out_json, out_grid = tmp_path / "e.json", tmp_path / "g.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), str(clip), "--max-frames", "10", "--edit-bases", "2", "--cross", str(clip),
         "--demo-source", str(clip), "--models-dir", str(clip_models), "--json", str(out_json), "--grid", str(out_grid)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "| real |" in result.stdout and "| nearest |" in result.stdout
    def strict(constant):
        raise ValueError(f"{constant} in the JSON")  # NaN and Infinity are not JSON

    data = json.loads(out_json.read_text(), parse_constant=strict)
    assert set(data) == {"settings", "rows", "cross", "hard", "novelty", "unseen", "placed", "summary", "live"}
    live = data["live"]["rows"]
    assert list(live) == ["+0 ms", "+100 ms"] and all(r["captured"] == 60 for r in live.values())
    # Slowed on purpose by 100 ms a frame (under 10 fps from a 25 fps clip): frames are dropped, never
    # queued, so a shown frame waited at most one frame's work and took one: its median age is about
    # 1.5 frames' work however loaded the machine is (a queue: ages grow with every frame, ~5 here).
    # The median, not the 90th percentile: about ten frames are shown, the first after a warm-up.
    slowed = live["+100 ms"]
    assert slowed["dropped"] >= 10 and slowed["latency_ms"] < 2.5 * 1000 / slowed["fps"], slowed
    assert data["settings"]["test_frames"] > 0
    names = [row.name for row in TABLE]
    for name in ["real", *names, f"{DEFAULT}+median", f"{DEFAULT}+one_euro"]:
        row = data["rows"][name]
        for key in ("l1", "psnr", "ssim", "box_l1", "box_psnr", "box_ssim", "detection_rate",
                    "joint_error_px", "flicker", "flicker_ratio", "native_size"):
            assert key in row, (name, key)
        if name != "real" and "+" not in name:
            assert {"single_fps", "batch_fps", "demo_fps"} <= set(row)
    assert data["rows"]["real"]["l1"] == 0 and data["rows"]["nearest"]["l1"] > 0
    assert list(data["cross"][clip.name]) == names
    assert set(data["settings"]["models"]) == {row.name for row in TABLE if row.learned}  # the clip's own models
    # what users do: poses the target never made, and frames at the size people watch
    assert set(data["unseen"]["rows"]) == set(names) and data["unseen"]["settings"]["poses"] == 2 * len(EDIT_FAMILIES)
    assert set(data["unseen"]["rows"][DEFAULT]["families"]) == set(EDIT_FAMILIES)
    assert set(data["novelty"]["rows"]) == {"real", *names} and len(data["novelty"]["edges"]) == 3
    assert all(len(r["held_out"]) == 4 for r in data["novelty"]["rows"].values())
    assert len(data["novelty"]["rows"]["nearest"]["cross"]) == 4 and clip.name in data["novelty"]["clips"]
    # the harder clips made of the cross-person one: every variant scored, novelty beside detection
    assert list(data["hard"]["clips"]) == [f"clip {v}" for v in VARIANTS]
    assert all(list(t) == names for t in data["hard"]["clips"].values())
    turned, plain = data["hard"]["novelty"]["clip turned+35"]["median"], data["novelty"]["clips"][clip.name]["median"]
    assert turned > plain  # a turned clip holds poses farther from the target's
    for name in names:
        row = data["novelty"]["rows"][name]
        assert len(row["hard"]) == 4 and len(row["hard_beyond"]) == len(row["cross_beyond"]) == 2
        assert data["summary"][name]["hard"]["frames"] == sum(t[name]["frames"] for t in data["hard"]["clips"].values())
    assert "Harder driving clips" in result.stdout and "| clip turned-35 |" in result.stdout
    assert "Beyond the fourth quartile" in result.stdout
    assert set(data["placed"]["rows"]) == {"real", *names}
    assert set(data["summary"]) == set(names)
    assert out_grid.exists() and out_grid.with_name("g_unseen.png").exists() and out_grid.with_name("g_hardest.png").exists()
    assert_tables_are_whole(result.stdout)


def assert_tables_are_whole(markdown):
    """Every Markdown table: its `---|` line and each of its rows as wide as its header."""
    for block in re.split(r"\n(?!\|)", markdown):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:
            widths = {line.count(" | ") + 1 for line in [rows[0], *rows[2:]]} | {rows[1].count("---|")}
            assert len(widths) == 1, rows[:3]


def test_a_table_is_built_from_its_column_list():
    lines = report.table(["a", "b", "c"], [["1", "2", "3"]])
    assert lines == ["| a | b | c |", "|---|---|---|", "| 1 | 2 | 3 |"]
    assert len(report.COLUMNS) == len({title for title, _ in report.COLUMNS})  # one line per figure


def test_a_separate_test_video_is_scored_whole(clip, tmp_path, private_cache):
    out_json = tmp_path / "e.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), str(clip), "--test-video", str(clip), "--max-frames", "0", "--edit-bases", "2",
         "--cross", "--demo-source", "", "--json", str(out_json), "--grid", str(tmp_path / "g.png")],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "skipping pix2pix: no " in result.stderr and "clip_pix2pix.pth" in result.stderr  # no model of clip
    data = json.loads(out_json.read_text())
    (cache,) = private_cache.glob("clip-*.npz")
    assert data["settings"]["test"] == "clip.mp4" and data["cross"] == {}
    assert data["settings"]["test_frames"] == len(np.load(cache)["frame_index"])  # every frame with a pose
    # the target is also the test video, so nearest neighbour finds every frame itself
    assert data["rows"]["nearest"]["l1"] == 0
