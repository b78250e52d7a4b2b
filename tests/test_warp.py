"""The warp generator: its parts' geometry, its reference choice, and that it learns, saves
and renders any pose (GenWarp.py, parts.py)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import assert_holds_any_pose
from GenWarp import GenWarp
from nets import images_to_tensor, tensor_to_images
from parts import PARTS, bone_ends, facing, part_transforms, torso_length, warp_parts
from poses import edit_pose, pose_maps
from project import DanceError
from references import painting_loss

SIZE = 32  # tiny images: the geometry is size-free, the tests are quick


def apply(theta, point):
    return theta[:, :2] @ point + theta[:, 2]


def test_each_limb_transform_maps_the_asked_bone_onto_the_reference_bone(poses):
    asked, refs = poses[:40], poses[80:120]
    theta, valid, *_ = part_transforms(asked, refs)
    pa, qa = bone_ends(asked), bone_ends(refs)
    checked = 0
    for p, part in enumerate(PARTS):
        if part.kind != "limb":
            continue
        for i in np.flatnonzero(valid[:, p]):
            np.testing.assert_allclose(apply(theta[i, p], pa[i, p, 0]), qa[i, p, 0], atol=1e-5)
            np.testing.assert_allclose(apply(theta[i, p], pa[i, p, 1]), qa[i, p, 1], atol=1e-5)
            checked += 1
    assert checked > 0.9 * 40 * 12  # nearly every limb of real poses has a direction


def test_the_head_turns_and_scales_with_the_body_and_the_torso_fits_its_four_points(poses):
    asked = poses[:20]
    # References: the asked poses turned, scaled and moved as a whole (an exact similarity).
    a, scale = np.radians(25), 0.8
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    refs = asked.copy()
    refs[..., :2] = (asked[..., :2] - 0.5) @ rot.T + 0.52
    theta, valid, *_ = part_transforms(asked, refs)
    assert valid.all()
    g = lambda lm, ids: 2.0 * lm[:, ids, :2] - 1.0  # noqa: E731  grid coordinates
    for name, ids in (("head", [0, 7, 8]), ("torso", [11, 12, 23, 24])):
        p = [part.name for part in PARTS].index(name)
        for i in range(len(asked)):
            for src, dst in zip(g(asked, ids)[i], g(refs, ids)[i]):
                np.testing.assert_allclose(apply(theta[i, p], src), dst, atol=1e-4)
    # The head is not stretched when only the neck gets longer: its scale is the body's.
    longer = asked.copy()
    longer[:, [0, 2, 5, 7, 8], 1] -= 0.05
    theta, *_ = part_transforms(longer, asked)
    head = [part.name for part in PARTS].index("head")
    sv = np.linalg.svd(theta[:, head, :, :2], compute_uv=False)
    size = torso_length(asked) / torso_length(longer)
    np.testing.assert_allclose(sv, np.stack([size, size], axis=1), rtol=1e-4)


def smooth_images(n, size, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (n, size // 4, size // 4, 3), dtype=np.uint8)
    return small.repeat(4, axis=1).repeat(4, axis=2)


def test_warping_a_frame_to_its_own_pose_returns_it(poses):
    images = smooth_images(6, SIZE)
    refs = images_to_tensor(images)
    composite, cover = warp_parts(refs, poses[:6], poses[:6])
    assert (cover > 0.99).float().mean() > 0.05  # the person covers part of the crop
    # Every part samples the frame at its own pixel centres, so the layers are the frame
    # itself, laid over black by their masks: the composite is the frame times its coverage.
    diff = (composite - cover * refs).abs().max()
    assert diff < 1e-4, diff


def test_a_part_moves_with_its_bone(poses):
    """Raise the arms of a pose: the reference's forearm pixels land where the asked forearm is."""
    ref = poses[10].copy()
    asked, _ = edit_pose(ref, "arms_up", np.random.default_rng(0))
    image = np.zeros((1, SIZE, SIZE, 3), np.uint8)
    (x0, y0), (x1, y1) = np.array([ref[13, :2], ref[15, :2]]) * SIZE
    for t in np.linspace(0, 1, 20):  # paint the reference's left forearm white
        image[0, int(y0 + t * (y1 - y0)), int(x0 + t * (x1 - x0))] = 255
    composite, _ = warp_parts(images_to_tensor(image), asked[None], ref[None])
    out = tensor_to_images(composite)[0].max(axis=2)
    mid = ((asked[13, :2] + asked[15, :2]) / 2 * SIZE).astype(int)
    assert out[mid[1] - 1:mid[1] + 2, mid[0] - 1:mid[0] + 2].max() > 100


def fake_target(poses, size=SIZE):
    """What Bank.fill reads of a VideoSkeleton: skeletons and crops."""
    return SimpleNamespace(skeletons=poses, images=lambda: smooth_images(len(poses), size, seed=1))


def make_gen(poses, **config):
    gen = GenWarp(device="cpu", image_size=SIZE, batch_size=4, bank_size=48, g_base=8, d_base=8, d_scales=1, reference_gap=20,
                  train_gap=5, **config)
    gen.bank.fill(fake_target(poses), np.arange(len(poses)), gen.config["bank_size"])
    return gen


def test_reference_choice_is_deterministic_faces_the_same_way_and_spans_moments(poses):
    gen = make_gen(poses)
    asked = poses[::7]
    picks = gen.references(asked)
    np.testing.assert_array_equal(picks, gen.references(asked))
    frames = gen.bank.frames[picks]
    assert (np.abs(frames[:, 0] - frames[:, 1]) >= 20).all()  # the second from another moment
    turned = asked.copy()
    turned[..., 0] = 1.0 - turned[..., 0]  # the mirror image keeps the ids: the person turned round
    front = facing(asked) > 0.25
    chosen = gen.bank.facing[gen.references(turned)[:, 0]]
    assert (chosen[front] < 0.25).all()  # asked from the back: never a reference from the front
    # Training draws: reproducible for a seed, never near the asked frame in time, and not only the nearest.
    frames = np.arange(0, len(poses), 7)
    draws = [gen.references(asked, frames, np.random.default_rng(s)) for s in (3, 3, 4)]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert (np.abs(gen.bank.frames[draws[2]] - frames[:, None]) >= 5).all()
    assert (draws[2] != picks).any()


def training_batch(poses, idx):
    images = smooth_images(len(poses), SIZE, seed=1)[idx]
    return {"image": images_to_tensor(images), "pose": images_to_tensor(pose_maps(poses[idx], SIZE)),
            "skeleton": torch.from_numpy(poses[idx]), "frame": torch.from_numpy(np.asarray(idx))}


def test_the_generator_overfits_a_tiny_set(poses):
    gen = make_gen(poses, lr=3e-3)
    batch = training_batch(poses, np.arange(0, 160, 40))
    first = gen.train_step(batch)["l1"]
    for _ in range(60):
        last = gen.train_step(batch)["l1"]
    assert last < first / 2, (first, last)


def test_saved_and_loaded_it_generates_identically_and_holds_any_pose(poses, tmp_path):
    gen = make_gen(poses)
    for _ in range(2):
        gen.train_step(training_batch(poses, np.arange(0, 160, 40)))
    gen.save(tmp_path / "w.pth")
    again = GenWarp.load(tmp_path / "w.pth")
    assert len(again.bank) == 48
    np.testing.assert_array_equal(again.generate_batch(poses[:5]), gen.generate_batch(poses[:5]))
    assert_holds_any_pose(again, poses, SIZE)


def test_a_damaged_bank_is_a_clear_error(poses, tmp_path):
    gen = make_gen(poses)
    state = gen.state(training=False)
    state["bank"]["landmarks"] = state["bank"]["landmarks"][:-1]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(DanceError, match="bad.pth"):
        GenWarp.load(tmp_path / "bad.pth")
    state = gen.state(training=False)
    state["bank"]["images"] = state["bank"]["images"][:, :, :16, :16]  # references of another size
    torch.save(state, tmp_path / "small.pth")
    with pytest.raises(DanceError, match="small.pth"):
        GenWarp.load(tmp_path / "small.pth")
    with pytest.raises(DanceError, match="no reference frames"):
        GenWarp(device="cpu", image_size=SIZE).generate_batch(poses[:1])


def test_the_painting_prior_charges_painting_only_where_a_moved_part_lands():
    cover = torch.zeros(1, 2, 1, 4, 4)
    cover[0, 0, 0, :2] = 1.0                            # the first reference covers the top half
    painted = torch.zeros(1, 3, 4, 4)
    painted[:, 2] = 1.0                                 # all weight on the network's own image
    assert painting_loss(painted, cover).item() == pytest.approx(0.5)
    pointed = torch.zeros(1, 3, 4, 4)
    pointed[:, 0] = 1.0                                 # all weight on the first composite
    assert painting_loss(pointed, cover).item() == 0.0
