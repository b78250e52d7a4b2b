"""Reference frames of a target and how they are chosen: what the generators that move the
target's own pixels (GenWarp, GenLayered) share.

A `Bank` holds training frames of the target inside the model file (farthest-point sampled
over its poses, so rare poses are kept), with their skeletons and frame numbers. A reference
for an asked pose is ranked by its whole pose's distance (poses.pose_distances, position and
scale removed), plus a penalty when it faces the other way (front or back, from the
shoulders' order: parts.facing); in training, frames near the asked one in time are
shunned (they would be near-duplicates), and ranks are drawn from near to far.

`BankGenerator` is the base of those generators: the bank in the model file, filled from
the training split before the first epoch, and the selection prior (`painting_loss`) that
keeps their fusion network pointing at moved pixels rather than painting.
"""
import numpy as np
import torch
import torch.nn as nn

from adversarial import AdversarialGenerator
from nets import bgr_to_rgb_chw, resize_all
from parts import facing
from pose_dataset import check_split
from poses import POSE_MAPS, farthest_poses, normalise_poses, pose_distances
from Skeleton import NUM_LANDMARKS
from training_settings import EPOCHS, TRAIN_EVERY

SIDE_ON = 0.25        # |facing| below this (in torso lengths): side on, either way will do
MISMATCH = 1.0        # added to the pose distance of a reference facing the other way (poses differ by ~0.1)
SHUNNED = 10.0        # added to references that are too close in time: chosen only when nothing else is left
FAR_DRAW = 2.0        # training draws a reference's pose rank as u**FAR_DRAW of the nearest half of the bank
NEAREST_HALF = 0.5


def turned_away(landmarks, bank):
    """MISMATCH where a bank frame faces the other way from each asked pose (N, 33, 4), else 0: (N, M)."""
    asked = facing(landmarks)[:, None]
    return MISMATCH * ((np.abs(asked) > SIDE_ON) & (np.sign(asked) != np.sign(bank.facing)[None]))


def whole_pose_costs(landmarks, bank):
    """How well each bank frame's whole pose serves each asked pose (N, 33, 4): the pose
    distance (SHUNNED where unknown), plus MISMATCH where it faces the other way: (N, M)."""
    dist = pose_distances(normalise_poses(landmarks), bank.poses)
    dist = np.nan_to_num(dist, nan=SHUNNED)
    dist += turned_away(landmarks, bank)
    return dist


def near_in_time(bank, frames, gap):
    """SHUNNED where a bank frame is within `gap` frames of each of `frames` (N,), else 0: (N, M)."""
    return SHUNNED * (np.abs(bank.frames[None] - np.asarray(frames)[:, None]) < gap)


def draw_near_to_far(dist, rng, k):
    """Training's draws: for each row of `dist` (N, M), k bank rows whose ranks are drawn as
    u**FAR_DRAW of the nearest half of the usable ones (those not shunned): (N, k)."""
    order = np.argsort(dist, axis=1, kind="stable")
    usable = np.maximum((dist < SHUNNED).sum(axis=1), 1)
    span = np.maximum(1, (NEAREST_HALF * usable).astype(np.int64))
    ranks = (rng.random((len(dist), k)) ** FAR_DRAW * span[:, None]).astype(np.int64)
    return np.take_along_axis(order, ranks, axis=1)


class Bank(nn.Module):
    """Reference frames of the target, a module so that they travel in the model file with
    its weights: images (M, 3, S, S) RGB uint8, skeletons (M, 33, 4), frame numbers (M,)."""

    def __init__(self, size):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros((0, 3, size, size), dtype=torch.uint8))
        self.register_buffer("landmarks", torch.zeros((0, NUM_LANDMARKS, 4)))
        self.register_buffer("frame_numbers", torch.zeros(0, dtype=torch.int64))
        self._index()

    def __len__(self):
        return len(self.images)

    def fill(self, videoSke, indices, count):
        """The `count` frames of `indices` whose poses spread the widest (poses.farthest_poses)."""
        self._store(videoSke, np.asarray(indices)[farthest_poses(videoSke.skeletons[indices], count)])
        self._index()

    def _store(self, videoSke, picks):
        """Keep frames `picks` of `videoSke` (a subclass keeps more of each)."""
        self.images = bgr_to_rgb_chw(resize_all(videoSke.images()[picks], self.size)).contiguous()
        self.landmarks = torch.from_numpy(videoSke.skeletons[picks].astype(np.float32))
        self.frame_numbers = torch.from_numpy(picks.astype(np.int64))

    def _load_from_state_dict(self, state, prefix, *args, **kwargs):
        # Buffers of any length load (the bank's size is the file's); then their shapes are checked.
        for name in ("images", "landmarks", "frame_numbers"):
            if prefix + name in state:
                setattr(self, name, torch.empty_like(state[prefix + name]))
        super()._load_from_state_dict(state, prefix, *args, **kwargs)
        m, size = len(self.images), self.size
        if not (self.images.dtype == torch.uint8 and self.images.shape[1:] == (3, size, size)
                and self.landmarks.shape == (m, NUM_LANDMARKS, 4) and self.frame_numbers.shape == (m,)
                and bool(torch.isfinite(self.landmarks[:, :, :2]).all())):
            raise ValueError("a damaged reference bank")
        self._index()

    def _index(self):
        """What the reference search reads, in numpy."""
        self.skeletons = self.landmarks.numpy()
        self.frames = self.frame_numbers.numpy()
        self.poses = normalise_poses(self.skeletons)  # (M, 13, 2)
        self.facing = facing(self.skeletons)


def painting_loss(weights, cover):
    """The selection prior: the mean weight (B, K + 1, S, S), its painting last) a fusion
    network gives its own painting where a moved part lands (the most any candidate covers,
    cover (B, K, 1, S, S)). Without it, trained against L1, the network learns to paint the
    target's repertoire pix2pix-style, which melts in poses the target never made, rather
    than to point at the moved pixels, whose geometry holds in any pose."""
    return (weights[:, -1:] * cover.amax(dim=1)).mean()


class BankGenerator(AdversarialGenerator):
    """An adversarial generator (adversarial.py) whose network reads the target's own frames
    moved to the asked pose: a `bank` of them in its model file, and the selection prior in
    its training. Subclasses set `bank_class`, build the bank's network and `complete`
    batches with "cover" (where moved parts land); their network's forward takes
    with_weights=True and then also returns its per-pixel selection weights."""

    bank_class = Bank
    render_poses = POSE_MAPS
    shipped = AdversarialGenerator.shipped + ("bank",)

    def build(self):
        self.bank = self.bank_class(self.config["image_size"])  # empty until training fills it (or a model file)
        super().build()

    def forward_train(self, batch):
        image, weights = self.netG(batch, with_weights=True)  # through forward, so that DDP sees it
        return image, {"painting": painting_loss(weights, batch["cover"])}

    def train(self, videoSke, epochs=EPOCHS, every=TRAIN_EVERY, checkpoint=None, out=None, progress=True,
              amp=True):
        """Fill the bank from the training split (once: a resumed training keeps its bank), then train."""
        if not len(self.bank):
            train_idx, _ = check_split(videoSke, self.config["held_out"], every)
            self.bank.fill(videoSke, train_idx, self.config["bank_size"])
        return super().train(videoSke, epochs, every, checkpoint, out, progress, amp)
