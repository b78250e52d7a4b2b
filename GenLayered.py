"""The layered generator (GEN_TYPE 7): the target's person and background apart, each body
part moved from the training frame that shows that part best, selected and touched up by a
network trained pix2pixHD-style.

It keeps the warp generator's idea (GenWarp: the target's own pixels moved part by part
along the skeleton; Balakrishnan et al., CVPR 2018; Siarohin et al., CVPR 2018) and changes
what the warp generator's frames showed as wrong in poses the target never made:
  person and    every reference frame comes with its person mask (masks.py); a part moves
  background    only the person's pixels of its capsule, and the frame is composed over the
                reference's background with the person removed (a "plate": the person's
                pixels filled from the background around them, `fill_holes`), as Liquid
                Warping GAN (Liu et al., ICCV 2019) separates them. So no pixel is ever an
                empty composite's grey, and no background travels with an arm.
  references    for each part, the bank frame whose bone matches the asked bone best
  per part      (direction and foreshortening, in torso lengths; head and torso also facing
                the same way), with a pull towards the frame of the nearest whole pose, so
                that a raised arm comes from a frame with a raised arm wherever the target
                ever raised one. Parts are laid in depth order (parts.py). Besides this
                composite, a second candidate moves every part of that nearest whole pose.
  fusion        a U-Net reads the pose map, both candidates with their coverage, and the
                plate; its output is, pixel by pixel, a softmax selection among candidate 1,
                candidate 2 and its own painting, plus a residual bounded by `residual` (for
                shading and cloth). A selection prior (references.painting_loss, as GenWarp's)
                charges it for painting where a moved part lands.
  training      pairs for poses the target never made: a share (`augment`) of the training
                frames is turned by up to `max_rotation` degrees and/or mirrored together
                with its skeleton and re-cropped (augment.py), a true pair for a leaning or
                mirrored pose; references are never within `train_gap` frames of the asked
                one and are drawn from near to far, so the network learns to hold big moves.
  over time     references are kept from frame to frame unless another is better by
                `hysteresis` (in the matching cost's units), so a part's source does not
                pop; `reset()` forgets them at a cut.

    python GenLayered.py [VIDEO] --epochs N [--every K] [--resume]
"""
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from adversarial import RecipeSettings
from augment import turn_and_mirror
from masks import person_masks
from nets import UNet, images_to_tensor
from part_boxes import draw_part_masks, mask_boxes, move_parts_boxed
from parts import PARTS, WARP_CHUNK, bone_ends, move_parts, part_weights, torso_length
from project import DanceError, cli_main
from references import SHUNNED, Bank, BankGenerator, draw_near_to_far, near_in_time, turned_away, whole_pose_costs
from Skeleton import landmark_array
from trainer_cli import train_main
from training_settings import setting, with_default



@dataclass(frozen=True)
class LayeredSettings(RecipeSettings):
    """GenLayered's settings: the recipe's, at the dataset's crop size, and its layers'."""
    image_size: int = with_default(RecipeSettings, "image_size", 128)  # the crop size: no upsampling at inference
    bank_size: int = setting(256, 1, 65536, flag="training frames kept in the model as references (default: "
                             "{default:g})")  # with their masks
    train_gap: int = setting(30, 0, 10**6)  # in training, no reference within this many frames of the asked one
    painting_weight: float = setting(50.0, 0, 1e4, flag="weight of the prior against painting where moved parts "
                                     "land (default: {default:g})")  # of painting_loss; negative: a reward
    residual: float = setting(0.2, 0, 1)  # most the network adds to a selected pixel ([-1, 1]); more ignores the choice
    augment: float = setting(0.5, 0, 1, flag="share of the training frames turned and/or mirrored "
                             "(default: {default:g})")  # a share of the frames
    max_rotation: float = setting(35.0, 0, 90, flag="largest turn of a training frame, degrees "
                                  "(default: {default:g})")  # either way: beyond 90, a person stands on their head
    hysteresis: float = setting(0.1, 0, 100, flag="how much better another reference must match to replace the "
                                "last (default: {default:g})")  # a cost difference: beyond 100, never replaced


CANDIDATES = 2        # the per-part composite and the nearest whole pose's
PER_CANDIDATE = 4     # input channels per candidate: its image (3), its coverage (1); the plate adds 3
PART_DRAW = 6         # training draws each part's reference among its PART_DRAW best matches ...
PART_FAR = 2.0        # ... its rank as u**PART_FAR of that
WHOLE_PULL = 0.5      # a part's matching cost: its bone's mismatch + this x the whole pose's distance
LOW_VISIBILITY = 1.0  # added to a part's cost where the reference barely shows it (weight 0)
MASK_GROW = 2         # pixels the person's outline is grown by before it is filled from around it
TORSO, HEAD = [part.kind for part in PARTS].index("torso"), [part.kind for part in PARTS].index("head")


def fill_holes(images, known):
    """Each image's unknown pixels filled from the known ones around them (pull-push: averages
    of the known pixels over ever larger squares, brought back down): images (N, C, S, S),
    known (N, 1, S, S) in [0, 1] -> (N, C, S, S); known pixels stay as they were."""
    levels, weights = [images * known], [known]
    while levels[-1].shape[-1] > 1:
        levels.append(F.avg_pool2d(levels[-1], 2, ceil_mode=True))
        weights.append(F.avg_pool2d(weights[-1], 2, ceil_mode=True))
    filled = levels[-1] / weights[-1].clamp_min(1e-6)
    for colour, weight in zip(reversed(levels[:-1]), reversed(weights[:-1])):
        up = F.interpolate(filled, size=colour.shape[-2:], mode="bilinear", align_corners=False)
        w = weight.clamp(0, 1) if weight is known else (weight * 4).clamp(0, 1)  # coarse levels: mostly known
        filled = torch.where(weight > 0, colour / weight.clamp_min(1e-6), up) * w + up * (1 - w)
    return images * known + filled * (1 - known)


def part_descriptors(landmarks):
    """What a part's reference must match, per part, in torso lengths: (N, P, 6). Limbs: the
    bone (2, zeros after); the torso: spine, shoulder line, hip line; the head: neck to head,
    ear to ear. NaN where unknown."""
    lm = landmark_array(landmarks)
    ends = bone_ends(lm)
    size = torso_length(lm)[:, None, None]
    out = np.zeros((len(lm), len(PARTS), 6))
    out[:, :, :2] = (ends[:, :, 1] - ends[:, :, 0]) / size
    for part, (a, b), (c, d) in ((TORSO, (11, 12), (23, 24)), (HEAD, (7, 8), (7, 8))):
        out[:, part, 2:4] = 2 * (lm[:, a, :2] - lm[:, b, :2]) / size[:, 0]
        out[:, part, 4:6] = 2 * (lm[:, c, :2] - lm[:, d, :2]) / size[:, 0] if part == TORSO else 0.0
    return out


class LayeredFusion(nn.Module):
    """The fusion network: pose map + per candidate (image, coverage) + the plate -> a softmax
    selection, pixel by pixel, among the candidates and an image of its own, plus a bounded residual."""

    def __init__(self, pose_channels, base, levels, residual):
        super().__init__()
        self.residual = residual
        self.unet = UNet(pose_channels + CANDIDATES * PER_CANDIDATE + 3, base, levels,
                         out_channels=3 + CANDIDATES + 1 + 3, tanh=False)

    def forward(self, batch, with_weights=False):
        """The image (B, 3, S, S); with_weights=True: (image, weights (B, CANDIDATES + 1, S, S),
        its own painting last): training's call, through forward so that DDP sees it."""
        cands = batch["candidates"]                                     # (B, K, 3, S, S)
        x = torch.cat([batch["pose"], cands.flatten(1, 2), batch["cover"].flatten(1, 2), batch["plate"]], dim=1)
        out = self.unet(x)
        painted = torch.tanh(out[:, :3])
        weights = torch.softmax(out[:, 3:4 + CANDIDATES], dim=1)
        sources = torch.cat([cands, painted[:, None]], dim=1)
        image = (weights[:, :, None] * sources).sum(dim=1) + self.residual * torch.tanh(out[:, 4 + CANDIDATES:])
        image = image.clamp(-1.0, 1.0)
        return (image, weights) if with_weights else image


class LayeredBank(Bank):
    """GenWarp's bank of reference frames plus each frame's person mask, masks (M, 1, S, S)
    uint8, 255 = person; from them, each frame's plate (its background with the person filled
    in from around them), its part masks and what the part search reads."""

    def _index(self):
        if not hasattr(self, "masks"):  # the first call, from Bank.__init__
            self.register_buffer("masks", torch.zeros((0, 1, self.size, self.size), dtype=torch.uint8))
        super()._index()
        if len(self.masks) != len(self.images):
            raise ValueError("a damaged reference bank: masks and frames differ in number")
        self.descriptors = part_descriptors(self.skeletons)  # (M, P, 6)
        self.visible = part_weights(self.skeletons)            # (M, P)
        # Plates and part masks are drawn for each frame when first asked for (`drawn`), not
        # here: a demo asks for a fraction of the frames (a live one draws them all in warm_up).
        m, s = len(self.images), self.size
        self._plates = torch.zeros((m, 3, s, s))
        self._part_masks = torch.zeros((m, len(PARTS), s, s), dtype=torch.uint8)
        self._part_boxes = np.zeros((m, len(PARTS), 4), np.int64)
        self._ready = np.zeros(m, bool)

    def drawn(self, rows=None):
        """(plates (M, 3, S, S) float in [-1, 1], part masks (M, P, S, S) uint8 (255 = 1), their
        boxes (M, P, 4), part_boxes.mask_boxes), the frames `rows` (None: all) drawn; a frame's
        are drawn once, at its first use (256 frames: 0.6 s)."""
        rows = np.arange(len(self._ready)) if rows is None else np.asarray(rows)
        todo = np.unique(rows[~self._ready[rows]])
        if len(todo):
            person = self.masks[todo].float().div(255.0)
            grown = F.max_pool2d(person, 2 * MASK_GROW + 1, 1, MASK_GROW)
            self._plates[todo] = fill_holes(self.images[todo].float().div(127.5).sub(1.0), (grown < 0.5).float())
            # Each part's mask: its capsule times the person's outline (uint8: 1/255 steps).
            masks = draw_part_masks(self.skeletons[todo], person, self.size)
            self._part_masks[todo], self._part_boxes[todo] = masks, mask_boxes(masks)
            self._ready[todo] = True
        return self._plates, self._part_masks, self._part_boxes

    def _store(self, videoSke, picks):
        super()._store(videoSke, picks)
        masks = person_masks(videoSke)[picks]
        self.masks = torch.from_numpy(np.stack([cv2.resize(m, (self.size, self.size), interpolation=cv2.INTER_AREA)
                                                for m in masks]) if masks.shape[1] != self.size else masks)[:, None]

    def _load_from_state_dict(self, state, prefix, *args, **kwargs):
        if prefix + "masks" in state:
            self.masks = torch.empty_like(state[prefix + "masks"])
        super()._load_from_state_dict(state, prefix, *args, **kwargs)
        if not (self.masks.dtype == torch.uint8 and self.masks.shape == (len(self.images), 1, self.size, self.size)):
            raise ValueError("a damaged reference bank: its person masks do not fit its frames")


class GenLayered(BankGenerator):
    """The target's person moved part by part from its best-matching frames over its own
    background, selected and touched up by a U-Net."""

    kind = "GenLayered"
    name = "layered"
    settings = LayeredSettings
    bank_class = LayeredBank
    keeps_state = True  # its references, kept from frame to frame (hysteresis)
    # Its network's picture is, pixel by pixel, a selection among float32 candidates: bfloat16's
    # rounding in the U-Net moves a selection weight, not the candidates, and the pictures stay
    # within one grey level of float32's: one level off on 2.1% of the values of the demo's pictures
    # of karate1, the rest the same (its upsampling in bfloat16 too since the sub-pixel rewrite,
    # subpixel.py; 1.2% before: docs/speed.md; tests/test_pipeline.py checks it on a short clip).
    # pix2pix, which paints every pixel, moves by up to 3 and stays float32.
    inference_precision = "bf16"

    def build(self):
        self.previous = None                       # the references of the last frame (hysteresis)
        super().build()

    def build_generator(self):
        return LayeredFusion(self.render_poses.channels, self.config["g_base"], self.unet_levels,
                             self.config["residual"])

    def reset(self):
        self.previous = None

    def warm_up(self):
        """Also every reference's plate and part masks drawn now (0.6 s), not at their first use:
        a live camera's frames would wait for them."""
        super().warm_up()
        self.bank.drawn()

    # -- references --
    def costs(self, landmarks, frames=None):
        """How well each bank frame serves each asked pose (N, 33, 4): (whole (N, M), parts (N, M, P)),
        lower is better; with `frames` (training), frames within train_gap of them are shunned."""
        bank = self.bank
        if not len(bank):
            raise DanceError(f"this {self.kind} has no reference frames: train it (python GenLayered.py TARGET.mp4)")
        whole = whole_pose_costs(landmarks, bank)
        mismatch = np.linalg.norm(part_descriptors(landmarks)[:, None] - bank.descriptors[None], axis=-1)
        parts = np.nan_to_num(mismatch, nan=SHUNNED) + LOW_VISIBILITY * (1 - bank.visible[None]) \
            + WHOLE_PULL * whole[..., None]
        parts[..., [TORSO, HEAD]] += turned_away(landmarks, bank)[..., None]
        if frames is not None:
            near = near_in_time(bank, frames, self.config["train_gap"])
            whole, parts = whole + near, parts + near[..., None]
        return whole, parts

    def references(self, landmarks, frames=None, rng=None):
        """Bank rows of each asked pose's references: (whole (N,), parts (N, P)). At inference
        (rng None) the best, kept from the previous frame within `hysteresis`; in training
        (rng given) drawn from near to far, none within train_gap of `frames`."""
        whole, parts = self.costs(landmarks, frames)
        if rng is not None:
            w = draw_near_to_far(whole, rng, 1)
            ranks = (rng.random(parts.shape[::2]) ** PART_FAR * min(PART_DRAW, parts.shape[1])).astype(np.int64)
            p = np.take_along_axis(np.argsort(parts, axis=1, kind="stable"), ranks[:, None], 1)[:, 0]
            return w[:, 0], p
        cost = np.concatenate([whole[..., None], parts], axis=-1)   # (N, M, 1 + P)
        picks = np.empty((len(cost), cost.shape[-1]), np.int64)
        for i, c in enumerate(cost):
            best = c.argmin(axis=0)
            if self.previous is not None:
                kept = c[self.previous, np.arange(len(best))] <= c[best, np.arange(len(best))] + self.config["hysteresis"]
                best = np.where(kept, self.previous, best)
            picks[i] = self.previous = best
        return picks[:, 0], picks[:, 1:]

    def candidates(self, landmarks, whole, parts, boxed=False):
        """(candidates (N, K, 3, S, S), their coverage (N, K, 1, S, S), the plate (N, 3, S, S)) for
        asked poses (N, 33, 4) and their references: the per-part composite and the whole pose's,
        each laid over the whole pose's plate. boxed=True (inference, on a CPU): each part
        moved only where it lands (part_boxes.py: the same within float rounding, 3x faster for
        one pose); else every part over the whole frame, batched (training, a GPU)."""
        bank, device, p = self.bank, self.device, len(PARTS)
        rows = np.concatenate([parts, np.repeat(whole[:, None], p, axis=1)])  # (2N, P): both candidates' references
        asked = np.concatenate([landmarks, landmarks])
        plates, part_masks, part_boxes = bank.drawn(rows)   # the whole poses' rows among them
        plate = plates[whole].to(device)
        if boxed and torch.device(device).type == "cpu":
            composite, cover = move_parts_boxed(bank.images, part_masks, part_boxes, rows, asked,
                                                bank.skeletons, torch.cat([plate, plate]))
            composite, cover = (x.view(CANDIDATES, len(whole), *x.shape[1:]).transpose(0, 1) for x in (composite, cover))
            return composite, cover, plate
        out = []
        for i in range(0, len(rows), WARP_CHUNK):
            r = rows[i:i + WARP_CHUNK]
            images = bank.images[r].to(device).float().div(127.5).sub(1.0)                # (n, P, 3, S, S)
            masks = part_masks[r, np.arange(p)].to(device).float().div(255.0)             # (n, P, S, S)
            out.append(move_parts(images, masks, asked[i:i + WARP_CHUNK], bank.skeletons[r]))
        composite, cover = (torch.cat(x).view(CANDIDATES, len(whole), *x[0].shape[1:]).transpose(0, 1)
                            for x in zip(*out))                                          # (N, K, C, S, S)
        return composite + (1 - cover) * plate[:, None], cover, plate

    def complete(self, batch, rng=None):
        """The batch with its candidates, their coverage and the plate (see `candidates`); in
        training (rng given), a share of its frames first turned and/or mirrored with their
        skeletons (augment.py), its pose maps drawn again for them."""
        landmarks = landmark_array(batch["skeleton"].numpy())
        if rng is not None and self.config["augment"] > 0:
            batch, landmarks = self.augment(batch, landmarks, rng)
        frames = batch["frame"].numpy() if rng is not None else None
        whole, parts = self.references(landmarks, frames, rng)
        cands, cover, plate = self.candidates(landmarks, whole, parts, boxed=rng is None)
        return {**batch, "candidates": cands, "cover": cover, "plate": plate}

    def augment(self, batch, landmarks, rng):
        n, c = len(landmarks), self.config
        chosen = rng.random(n) < c["augment"]
        angles = np.where(chosen, rng.uniform(-c["max_rotation"], c["max_rotation"], n), 0.0)
        mirrored = chosen & (rng.random(n) < 0.5)
        if not chosen.any():
            return batch, landmarks
        image, turned = turn_and_mirror(batch["image"], landmarks, angles, mirrored)
        landmarks = np.where(chosen[:, None, None], turned, landmarks)
        image = torch.where(torch.from_numpy(chosen).to(image.device)[:, None, None, None], image, batch["image"])
        pose = images_to_tensor(self.render_poses(landmarks, c["image_size"])).to(image.device)
        return {**batch, "image": image, "pose": pose, "skeleton": torch.from_numpy(landmarks)}, landmarks


def main():
    return train_main(GenLayered)


if __name__ == "__main__":
    cli_main(main)
