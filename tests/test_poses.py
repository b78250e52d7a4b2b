"""Poses the target never made: edits that keep every bone, and how novel a pose is."""
import hashlib

import numpy as np
import pytest

from conftest import ROOT
from poses import ARMS, BONES_33, EDIT_FAMILIES, LEGS, MIRROR, RENDERERS, PoseIndex, edit_pose, unseen_poses
from VideoSkeleton import VideoSkeleton

ARM_JOINTS = {i for root, mid, end, tips in ARMS.values() for i in (mid, end, *tips)}
HAND_JOINTS = {i for root, mid, end, tips in ARMS.values() for i in (end, *tips)}
LEG_JOINTS = {side: {mid, end, *tips} for side, (root, mid, end, tips) in LEGS.items()}
# What each family may move: the joints it names (and those below them), nothing else.
NAMED = {"arms_up": ARM_JOINTS, "arms_out": ARM_JOINTS, "arms_v": ARM_JOINTS, "elbows_bent": HAND_JOINTS,
         "knee_lift": LEG_JOINTS, "kick": LEG_JOINTS, "low_stance": LEG_JOINTS["left"] | LEG_JOINTS["right"],
         "lean": set(range(33)), "mirror": set(range(33)), "lunge": LEG_JOINTS["left"] | LEG_JOINTS["right"],
         "torso_lean_left": set(range(33)), "torso_lean_right": set(range(33)), "bend": set(range(33)),
         "crouch": LEG_JOINTS["left"] | LEG_JOINTS["right"], "one_leg": LEG_JOINTS["left"] | LEG_JOINTS["right"],
         "jump": LEG_JOINTS["left"] | LEG_JOINTS["right"] | ARM_JOINTS, "arms_crossed": ARM_JOINTS}


@pytest.fixture(scope="module")
def real_skeletons(karate_frames, tmp_path_factory):
    from conftest import write_clip
    clip = write_clip(tmp_path_factory.mktemp("poses") / "clip.mp4", karate_frames)
    return VideoSkeleton(clip, every=4, progress=False).skeletons


def length(lm, a, b):
    return np.linalg.norm(lm[a, :2] - lm[b, :2])


@pytest.mark.parametrize("family", EDIT_FAMILIES)
def test_each_edit_keeps_every_bone_and_moves_only_the_joints_it_names(real_skeletons, family):
    rng = np.random.default_rng(1)
    for lm in real_skeletons[::3]:
        edited, moved = edit_pose(lm, family, rng)
        for a, b in BONES_33:
            want = length(lm, MIRROR[a], MIRROR[b]) if family == "mirror" else length(lm, a, b)
            assert abs(length(edited, a, b) - want) < 1e-6, (family, a, b)
        allowed = NAMED[family]
        if isinstance(allowed, dict):  # one leg: either side, never both
            allowed = next(joints for joints in allowed.values() if set(moved) <= joints)
        assert set(moved) <= allowed
        still = [i for i in range(33) if i not in moved]
        np.testing.assert_array_equal(edited[still], lm[still])
        assert not np.allclose(edited[moved, :2], lm[moved, :2])  # it did move what it names


def test_edits_go_where_their_names_say():
    lm = np.zeros((33, 4), np.float32)
    lm[:, 3] = 1
    for i, xy in {11: (0.6, 0.3), 12: (0.4, 0.3), 13: (0.62, 0.45), 14: (0.38, 0.45), 15: (0.63, 0.6),
                  16: (0.37, 0.6), 23: (0.56, 0.6), 24: (0.44, 0.6), 25: (0.57, 0.75), 26: (0.43, 0.75),
                  27: (0.57, 0.9), 28: (0.43, 0.9)}.items():
        lm[i, :2] = xy
    rng = np.random.default_rng(0)
    up, _ = edit_pose(lm, "arms_up", rng)
    assert up[15, 1] < up[11, 1] - 0.2 and up[16, 1] < up[12, 1] - 0.2      # wrists well above the shoulders
    out, _ = edit_pose(lm, "arms_out", rng)
    assert out[15, 0] > 0.85 and out[16, 0] < 0.15 and abs(out[15, 1] - 0.3) < 0.06  # straight out sideways
    lean, _ = edit_pose(lm, "torso_lean_left", rng)
    tilt = np.degrees(np.arctan2(*(lean[[11, 12], :2].mean(0) - lean[[23, 24], :2].mean(0))[::-1])) + 90
    assert 20 < tilt < 40                                                    # the spine 30 degrees off upright
    np.testing.assert_allclose(lean[[27, 28], 1] - lean[[25, 26], 1], lm[[27, 28], 1] - lm[[25, 26], 1], atol=1e-6)
    crossed, _ = edit_pose(lm, "arms_crossed", rng)
    assert crossed[15, 1] < 0.3 - 0.15 and crossed[16, 1] < 0.3 - 0.15        # both wrists well above the shoulders ...
    assert crossed[15, 0] < crossed[16, 0]                                   # ... each past the other
    crouch, _ = edit_pose(lm, "crouch", rng)
    assert crouch[25, 1] < lm[25, 1] - 0.05 and crouch[26, 1] < lm[26, 1] - 0.05  # both knees up
    mirror, _ = edit_pose(lm, "mirror", rng)
    np.testing.assert_allclose(mirror[11, :2], (1 - lm[12, 0], lm[12, 1]))  # the left shoulder where the right was


def test_families_added_later_leave_the_first_families_poses_as_they_were(real_skeletons):
    from poses import FIRST_FAMILIES
    rng = np.random.default_rng(5)  # the single stream of the first nine families, as it was drawn before
    picks = np.linspace(0, len(real_skeletons) - 1, 3).round().astype(int)
    before = [edit_pose(real_skeletons[i], f, rng)[0] for i in picks for f in FIRST_FAMILIES]
    now, families = unseen_poses(real_skeletons, 3, seed=5)
    np.testing.assert_array_equal(np.stack(before), now[[f in FIRST_FAMILIES for f in families]])


def test_the_unseen_set_is_fixed_by_its_seed(real_skeletons):
    a, fa = unseen_poses(real_skeletons, 4, seed=3)
    b, fb = unseen_poses(real_skeletons, 4, seed=3)
    c, _ = unseen_poses(real_skeletons, 4, seed=4)
    assert len(a) == 4 * len(EDIT_FAMILIES) and fa == fb
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_novelty_is_zero_on_the_bank_and_grows_with_the_edit(real_skeletons):
    index = PoseIndex(real_skeletons)
    assert np.allclose(index.novelty(real_skeletons), 0, atol=1e-6)
    moved = real_skeletons.copy()
    moved[:, :, :2] = moved[:, :, :2] * 0.5 + 0.2  # same poses, elsewhere and smaller
    assert np.allclose(index.novelty(moved), 0, atol=1e-5)
    rng = np.random.default_rng(0)
    edited = np.stack([edit_pose(lm, "arms_up", rng)[0] for lm in real_skeletons])
    assert (index.novelty(edited) > 0.05).mean() > 0.8


# What each version of each pose renderer draws: the sha256 of its pictures of PINNED_POSES at
# 64x64. A model records the renderer version its networks saw (provenance.check_renderer), so a
# change to what a renderer draws must come with a new version (and its digest here): then the
# models trained on the old drawing are refused, not silently fed pictures they never saw.
RENDERER_DIGESTS = {
    ("pose_images", 1): "5b94ab23d135fd9b602ad953b01698c47fb0941588f43be504d9e606b62c142e",
    ("pose_maps", 1): "091016a19ac762f3fc758b7622e6ac055bd404a359518908dd7bf9cccb2a7af9",
}


def pinned_poses():
    """Nine real poses (the shipped skeleton track's, every 20th), one with a wrist unknown."""
    lm = np.load(ROOT / "data" / "karate1_track.npz")["skeletons"][::20].astype(np.float32)
    lm[1, 15] = np.nan
    return lm


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_each_pose_renderer_version_draws_what_it_drew(name):
    renderer = RENDERERS[name]
    pictures = renderer(pinned_poses(), 64)
    assert pictures.shape == (9, 64, 64, renderer.channels) and pictures.dtype == np.uint8
    assert hashlib.sha256(pictures.tobytes()).hexdigest() == RENDERER_DIGESTS[(name, renderer.version)], \
        f"{name} draws other pictures than its version {renderer.version} did: bump its version (poses.py)"
