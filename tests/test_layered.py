"""The layered generator: person masks and their cache, background plates, references per
part, training pairs turned and mirrored, and that it learns, saves and renders any pose
(GenLayered.py, masks.py, augment.py, parts.capsule_masks / move_parts, part_boxes.py)."""
import copy
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from conftest import assert_holds_any_pose
import GenLayered as layered
import masks as masks_module
from augment import turn_and_mirror
from protocols import outputs
from GenLayered import GenLayered, fill_holes, part_descriptors
from masks import mask_files, person_masks
from nets import images_to_tensor
from part_boxes import draw_part_masks
from parts import PARTS, capsule_masks, move_parts, warp_parts
from poses import MIRROR, edit_pose, pose_maps
from test_warp import SIZE, smooth_images, training_batch
from project import DanceError
from VideoSkeleton import VideoSkeleton


FOREARMS = [i for i, part in enumerate(PARTS) if part.name.endswith("forearm")]


def drawn_masks(skeletons, size=SIZE):
    """Person masks for fake targets: the skeleton's limbs drawn thick, 255 on 0."""
    out = np.zeros((len(skeletons), size, size), np.uint8)
    for m, lm in zip(out, skeletons):
        pts = (np.nan_to_num(lm[:, :2]) * size).astype(np.int32)
        for a, b in ((11, 13), (13, 15), (12, 14), (14, 16), (11, 12), (23, 24), (11, 23), (12, 24), (23, 25),
                     (25, 27), (24, 26), (26, 28), (0, 11), (0, 12)):
            cv2.line(m, tuple(pts[a]), tuple(pts[b]), 255, max(2, size // 12))
    return out


@pytest.fixture
def fake_masks(monkeypatch):
    """Bank.fill on a fake target reads drawn masks instead of running the segmenter."""
    monkeypatch.setattr(layered, "person_masks", lambda target: drawn_masks(target.skeletons))


def make_gen(poses, **config):
    gen = GenLayered(device="cpu", image_size=SIZE, batch_size=4, bank_size=48, g_base=8, d_base=8, d_scales=1,
                     train_gap=5, **config)
    target = SimpleNamespace(skeletons=poses, images=lambda: smooth_images(len(poses), SIZE, seed=1))
    gen.bank.fill(target, np.arange(len(poses)), gen.config["bank_size"])
    return gen


# ---- person masks ---------------------------------------------------------------------------
def test_masks_are_cached_validated_and_resumed_like_the_skeletons(clip, monkeypatch):
    target = VideoSkeleton(clip, every=6, progress=False)
    first = person_masks(target, progress=False)
    assert first.shape == (len(target), target.size, target.size) and first.dtype == np.uint8
    # The person is where the skeleton is: the mask is high inside its box and low far from it.
    for mask, lm in zip(first, target.skeletons):
        x0, y0 = (np.nanmin(lm[:, :2], axis=0) * target.size).astype(int).clip(0)
        x1, y1 = (np.nanmax(lm[:, :2], axis=0) * target.size).astype(int)
        inside = mask[y0:y1, x0:x1].mean()
        assert inside > 2 * (mask.sum() - mask[y0:y1, x0:x1].sum()) / max(1, mask.size - mask[y0:y1, x0:x1].size)
    cache, partial = mask_files(target)
    assert cache.exists() and not partial.exists()

    class Refused:
        def __init__(self):
            raise AssertionError("the segmenter ran although the cache is valid")
    monkeypatch.setattr(masks_module, "Segmenter", Refused)
    np.testing.assert_array_equal(person_masks(target, progress=False), first)  # read back, not recomputed
    monkeypatch.undo()

    # Interrupted after 3 crops: those are kept, and the next run computes only the rest.
    calls = []
    real_segment = masks_module.Segmenter.segment

    def interrupted(self, image):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real_segment(self, image)
    cache.unlink()
    monkeypatch.setattr(masks_module.Segmenter, "segment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        person_masks(target, progress=False)
    assert partial.exists() and not cache.exists()
    calls.clear()
    monkeypatch.setattr(masks_module.Segmenter, "segment", lambda self, image: (calls.append(1), real_segment(self, image))[1])
    np.testing.assert_array_equal(person_masks(target, progress=False), first)
    assert len(calls) == len(target) - 3 and cache.exists() and not partial.exists()

    # Another segmenter's cache is rebuilt; a damaged one is a one-line error naming it.
    monkeypatch.setattr(masks_module, "SEGMENTER", "another one")
    calls.clear()
    person_masks(target, progress=False)
    assert len(calls) == len(target)
    cache.write_bytes(b"not an npz")
    with pytest.raises(DanceError, match="mask cache is damaged"):
        person_masks(target, progress=False)


# ---- plates, part masks, candidates --------------------------------------------------------
def test_a_plate_keeps_the_background_and_fills_the_person_from_around_them():
    image = torch.zeros(1, 3, 32, 32)
    image[:, 0, :, :16], image[:, 1, :, 16:] = 0.8, -0.6    # two colours, left and right
    known = torch.ones(1, 1, 32, 32)
    known[..., 8:24, 10:22] = 0                           # the person, across the boundary
    plate = fill_holes(image, known)
    assert torch.equal(plate[known.expand_as(plate) > 0], image[known.expand_as(image) > 0])
    assert plate[0, 0, 16, 11] > 0.5 and plate[0, 1, 16, 20] < -0.3  # each side filled with its own colour
    assert torch.isfinite(plate).all() and plate.abs().max() <= 0.8 + 1e-6


def test_part_masks_drawn_once_and_moved_match_the_masks_drawn_per_move(poses):
    """The same masks, sampled (bilinear) rather than drawn exactly: equal on a pose moved to
    itself, within the resampling of their soft edges otherwise (at 128 px: edges a few px wide)."""
    images = images_to_tensor(smooth_images(4, 128))
    p = len(PARTS)
    for asked, refs, tolerance in ((poses[:4], poses[:4], 1e-6), (poses[40:44], poses[:4], 5e-3)):
        composite, cover = warp_parts(images, asked, refs)
        moved, moved_cover = move_parts(images[:, None].expand(-1, p, -1, -1, -1), capsule_masks(refs, 128), asked,
                                        np.repeat(refs[:, None], p, axis=1))
        assert (moved_cover - cover).abs().mean() < tolerance and (moved - composite).abs().mean() < tolerance


def test_part_masks_drawn_in_their_boxes_equal_the_capsules_drawn_over_the_whole_frame(poses):
    """The bank's part masks (part_boxes.draw_part_masks: each capsule drawn only inside its box, times
    the person's outline) against capsule_masks over the whole frame: within one step of 1/255,
    for poses the target never made and one with a hand unknown; and none is empty."""
    rng = np.random.default_rng(5)
    hidden = poses[20].copy()
    hidden[[15, 17, 19, 21]] = np.nan
    refs = np.stack([poses[0], poses[33], edit_pose(poses[10], "arms_up", rng)[0], hidden]).astype(np.float32)
    person = torch.from_numpy(drawn_masks(refs, 128)[:, None] / 255.0).float()
    want = (capsule_masks(refs, 128) * person).mul(255.0).round()
    got = draw_part_masks(refs, person, 128)
    assert got.dtype == torch.uint8 and got.shape == want.shape
    assert (got.float() - want).abs().max() <= 1 and (got.float() - want).abs().mean() < 1e-4
    assert (got.flatten(2).amax(-1) > 0).float().mean() > 0.8   # drawn, not left empty


def test_a_banks_frames_drawn_at_their_first_use_equal_the_whole_bank_drawn_at_once(poses, fake_masks):
    """Plates and part masks are drawn per reference when first asked for (a demo asks for a
    fraction of them): the same as all drawn at once, the others not drawn yet."""
    gen = make_gen(poses)
    at_once = copy.deepcopy(gen.bank).drawn()
    gen.bank.drawn([3, 5])
    lazy = gen.bank.drawn(np.array([[5, 7], [0, 3]]))
    asked = [0, 3, 5, 7]
    for a, b in zip(lazy, at_once):
        a, b = (torch.as_tensor(x)[asked] for x in (a, b))
        assert torch.equal(a, b) and a.float().abs().sum() > 0
    assert gen.bank._ready.sum() == len(asked) and not lazy[1][1].any()


def test_a_part_reference_matches_the_asked_bone_better_than_the_nearest_whole_pose(poses, fake_masks):
    gen = make_gen(poses, hysteresis=0.0)
    rng = np.random.default_rng(0)
    asked = np.stack([edit_pose(lm, "arms_up", rng)[0] for lm in poses[::9]])
    whole, parts = gen.references(asked)
    gen.reset()
    again = gen.references(asked)
    np.testing.assert_array_equal(whole, again[0])      # deterministic
    np.testing.assert_array_equal(parts, again[1])
    want = part_descriptors(asked)[:, FOREARMS, :2]
    bank = gen.bank.descriptors[:, FOREARMS, :2]
    by_part = np.linalg.norm(want - bank[parts[:, FOREARMS], np.arange(len(FOREARMS))], axis=-1)
    by_whole = np.linalg.norm(want - bank[whole][:, :], axis=-1)
    assert (by_part <= by_whole + 1e-9).mean() > 0.9 and by_part.mean() < 0.7 * by_whole.mean()


def test_references_are_kept_from_frame_to_frame_until_another_is_better_by_the_margin(poses, fake_masks):
    steady = make_gen(poses, hysteresis=100.0)  # nothing is ever better by that much
    whole, parts = steady.references(poses[:30])
    assert (whole == whole[0]).all() and (parts == parts[0]).all()
    steady.reset()  # a cut: chosen afresh
    free = make_gen(poses, hysteresis=0.0)
    np.testing.assert_array_equal(steady.references(poses[20:21])[1], free.references(poses[20:21])[1])
    free_whole, _ = free.references(poses[:30])
    assert len(set(free_whole)) > 3
    free.warm_up()   # a standing pose generated before a live camera starts, then forgotten
    assert free.previous is None and free.bank._ready.all()


def test_unrelated_poses_are_each_generated_afresh_and_a_sequence_carries_its_references(poses, fake_masks):
    """evaluate.outputs, the evaluation's and validate.py's caller: edits (independent=True)
    do not depend on their order; the frames of a sequence do (hysteresis)."""
    gen = make_gen(poses, hysteresis=100.0)
    asked = poses[::12]
    independent = outputs(gen, asked, SIZE, independent=True)
    reversed_order = outputs(gen, asked[::-1], SIZE, independent=True)[::-1]
    np.testing.assert_array_equal(independent, reversed_order)
    np.testing.assert_array_equal(independent[3], outputs(gen, asked[3:4], SIZE)[0])
    sequence = outputs(gen, asked, SIZE)   # every frame keeps the first frame's references
    assert not np.array_equal(sequence[1:], independent[1:])


def test_no_output_pixel_comes_from_an_empty_composite_or_a_fill(poses, fake_masks):
    gen = make_gen(poses)
    asked, _ = edit_pose(poses[10], "arms_up", np.random.default_rng(0))  # the arms leave gaps where they were
    whole, parts = gen.references(asked[None])
    cands, cover, plate = gen.candidates(asked[None], whole, parts)
    assert (cover < 0.01).float().mean() > 0.3          # much of the crop is no moved part ...
    gap = (cover < 1e-6).expand_as(cands)
    torch.testing.assert_close(cands[gap], plate[:, None].expand_as(cands)[gap])  # ... there the plate shows
    bank = gen.bank.images.float().div(127.5).sub(1.0)
    assert (cands != 0).all() and (cands.amin() >= bank.amin() - 1e-5) and (cands.amax() <= bank.amax() + 1e-5)
    out = gen.generate_batch(asked[None])
    assert out.std() > 5  # a picture, not a flat fill


def test_parts_moved_in_their_boxes_equal_parts_moved_over_the_whole_frame(poses, fake_masks):
    """Inference's part moves (part_boxes.py: each part sampled only where it lands) against
    training's (every part over the whole frame): the same candidates and coverage within float
    rounding, for poses the target never made (arms up, turned, mirrored, one part unknown)."""
    gen = make_gen(poses)
    rng = np.random.default_rng(3)
    asked = [edit_pose(poses[10], "arms_up", rng)[0], poses[47]]
    _, turned = turn_and_mirror(torch.zeros(2, 3, SIZE, SIZE), poses[[5, 30]], [40.0, -25.0], [False, True])
    hidden = poses[20].copy()
    hidden[[15, 17, 19, 21]] = np.nan                    # the left hand unknown
    asked = np.stack(asked + list(turned) + [hidden]).astype(np.float32)
    for one in asked:
        whole, parts = gen.references(one[None])
        full = gen.candidates(one[None], whole, parts)
        boxed = gen.candidates(one[None], whole, parts, boxed=True)
        for a, b in zip(full, boxed):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
        assert 0.02 < full[1].mean() < 0.98                # parts landed, and not everywhere


# ---- training pairs turned and mirrored ----------------------------------------------------------
def test_a_frame_and_its_skeleton_turned_and_mirrored_together_stay_aligned(poses):
    lm = poses[[10, 60]]
    joints = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
    # One channel per joint, a small blob where that joint is: what lands where tells which joint it was.
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    image = np.stack([np.stack([np.exp(-((xx - 64 * pose[j, 0]) ** 2 + (yy - 64 * pose[j, 1]) ** 2) / 4.0)
                                for j in joints]) for pose in lm]).astype(np.float32)
    out, turned = turn_and_mirror(torch.from_numpy(image), lm, [30.0, -20.0], [False, True])
    checked = 0
    for k, mirrored in enumerate((False, True)):
        for i in joints:
            drawn = MIRROR[i] if mirrored else i    # mirroring swaps the sides: the new left wrist was the right one
            x, y = (turned[k, i, :2] * 64).astype(int)
            if 0 <= x < 64 and 0 <= y < 64:
                assert joints[int(out[k, :, y, x].argmax())] == drawn and out[k, :, y, x].max() > 0.3, (k, i)
                checked += 1
    assert checked >= 20
    # the new crop is cut by the crop rule: the turned skeleton fills it as a source's would
    span = np.nanmax(turned[..., :2], axis=1) - np.nanmin(turned[..., :2], axis=1)
    assert np.allclose(span.max(axis=1), 1 / 1.4, atol=0.02)


def test_training_turns_and_mirrors_a_share_of_its_frames(poses, fake_masks):
    gen = make_gen(poses, augment=1.0)
    batch = training_batch(poses, np.arange(0, 160, 40))
    done = gen.complete(batch, np.random.default_rng(0))
    assert not np.allclose(done["skeleton"].numpy(), batch["skeleton"].numpy())
    assert not torch.equal(done["image"], batch["image"]) and not torch.equal(done["pose"], batch["pose"])
    torch.testing.assert_close(done["pose"], images_to_tensor(pose_maps(done["skeleton"].numpy(), SIZE)))
    plain = make_gen(poses, augment=0.0).complete(batch, np.random.default_rng(0))
    assert torch.equal(plain["image"], batch["image"]) and torch.equal(plain["pose"], batch["pose"])


# ---- learning, saving, any pose ---------------------------------------------------------------
def test_the_generator_overfits_a_tiny_set(poses, fake_masks):
    gen = make_gen(poses, lr=3e-3, augment=0.0)
    batch = training_batch(poses, np.arange(0, 160, 40))
    first = gen.train_step(batch)["l1"]
    for _ in range(60):
        last = gen.train_step(batch)["l1"]
    assert last < first / 2, (first, last)


def test_saved_and_loaded_it_generates_identically_and_holds_any_pose(poses, fake_masks, tmp_path):
    gen = make_gen(poses)
    for _ in range(2):
        gen.train_step(training_batch(poses, np.arange(0, 160, 40)))
    gen.save(tmp_path / "l.pth")
    again = GenLayered.load(tmp_path / "l.pth")
    assert len(again.bank) == 48 and torch.equal(again.bank.masks, gen.bank.masks)
    gen.reset()
    np.testing.assert_array_equal(again.generate_batch(poses[:5]), gen.generate_batch(poses[:5]))
    assert_holds_any_pose(again, poses, SIZE)


def test_damaged_masks_in_a_model_are_a_clear_error(poses, fake_masks, tmp_path):
    state = make_gen(poses).state(training=False)
    state["bank"]["masks"] = state["bank"]["masks"][:-1]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(DanceError, match="bad.pth"):
        GenLayered.load(tmp_path / "bad.pth")
    with pytest.raises(DanceError, match="no reference frames"):
        GenLayered(device="cpu", image_size=SIZE).generate_batch(poses[:1])
