"""The warp generator (GEN_TYPE 6): the target's own pixels, moved part by part to the asked
pose, then fused and repaired by a network trained pix2pixHD-style.

Where a forearm goes is given by the skeleton; only what rigid moves cannot explain has to be
learned (Balakrishnan et al., *Synthesizing Images of Humans in Unseen Poses*, CVPR 2018;
Siarohin et al., *Deformable GANs*, CVPR 2018). So, for each asked pose:
  references  two frames of the target from a bank of its training frames (farthest-point
              sampled over its poses, kept in the model file): the nearest pose facing the
              same way (front or back, from the shoulders' order), and the nearest pose from
              another moment (at least `reference_gap` frames away), which shows the person
              in other light, other folds, other occlusions.
  warp        each reference cut into 14 parts and each part moved by the affine map of its
              bone onto the asked bone (parts.py), laid over each other by depth: a
              composite of real pixels in the asked pose, with its coverage.
  fusion      a U-Net reads the pose map, the two composites, their coverage and the two
              references as they are (for the background), and outputs an image plus one
              weight map per source: the final frame is, pixel by pixel, a softmax blend of
              composite 1, composite 2 and its own image. Where a warped part is right the
              network only has to point at it; it paints what no part shows (seams, cloth
              that does not move rigidly, what the references hide).
  training    adversarial.py's recipe (critics on pose map + image, LSGAN + feature matching
              + L1, EMA), plus a selection prior (references.painting_loss): the network is charged
              for painting where a moved part lands. Without it, L1 against the target's own
              frames teaches it to paint them pix2pix-style and to ignore the moved parts,
              and its frames melt in poses the target never made (measured on taichi1: after
              2 epochs without it, edited unseen poses were detected in 39% of the frames;
              200 more steps with the prior at weight 10: 50%, at weight 50: 69%). Each
              training frame gets references that are *not* its neighbours: at least
              `train_gap` frames away in time, and its pose rank among the bank drawn from
              near to far (rank = u^FAR_DRAW of the nearest half), so the network learns to
              repair big moves, not to copy a near-duplicate.
A pose with missing landmarks still renders: parts whose bones are unknown are left out and
the network paints them from the pose map.

    python GenWarp.py [VIDEO] --epochs N [--every K] [--resume]
"""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from adversarial import RecipeSettings
from nets import UNet
from parts import warp_parts
from project import DanceError, cli_main
from references import BankGenerator, draw_near_to_far, near_in_time, whole_pose_costs
from Skeleton import landmark_array
from trainer_cli import train_main
from training_settings import setting, with_default



@dataclass(frozen=True)
class WarpSettings(RecipeSettings):
    """GenWarp's settings: the recipe's, at the dataset's crop size, and its references'."""
    image_size: int = with_default(RecipeSettings, "image_size", 128)  # the crop size: no upsampling at inference
    references: int = setting(2, 1, 8)  # reference frames per asked pose; each adds SOURCE_CHANNELS to the input
    bank_size: int = setting(256, 1, 65536, flag="training frames kept in the model as references (default: "
                             "{default})")  # 12.6 MB at 128x128
    reference_gap: int = setting(150, 0, 10**6)  # frames between the two references (5 s at 30 fps): another moment
    train_gap: int = setting(30, 0, 10**6)  # in training, no reference within this many frames of the asked one
    painting_weight: float = setting(50.0, 0, 1e4, flag="weight of the prior against painting where moved parts "
                                     "land (default: {default:g})")  # of painting_loss; negative: a reward


SOURCE_CHANNELS = 7   # per reference: composite (3), its coverage (1), the reference as it is (3)


class WarpFusion(nn.Module):
    """The fusion network: pose map + per reference (composite, coverage, reference) ->
    a softmax blend, pixel by pixel, of the composites and an image of its own."""

    def __init__(self, pose_channels, references, base, levels):
        super().__init__()
        self.unet = UNet(pose_channels + SOURCE_CHANNELS * references, base, levels, out_channels=3 + references + 1,
                         tanh=False)

    def forward(self, batch, with_weights=False):
        """The image; with_weights=True: (image, weights), see `blend` (training's call, through
        forward so that DistributedDataParallel sees it)."""
        image, weights = self.blend(batch)
        return (image, weights) if with_weights else image

    def blend(self, batch):
        """(the image (B, 3, S, S), the weight of each source (B, K + 1, S, S), its own image last)."""
        warped = batch["warped"]                                        # (B, K, 3, S, S)
        x = torch.cat([batch["pose"], warped.flatten(1, 2), batch["cover"].flatten(1, 2),
                       batch["refs"].flatten(1, 2)], dim=1)
        out = self.unet(x)
        painted = torch.tanh(out[:, :3])
        weights = torch.softmax(out[:, 3:], dim=1)                      # (B, K + 1, S, S)
        sources = torch.cat([warped, painted[:, None]], dim=1)          # (B, K + 1, 3, S, S)
        return (weights[:, :, None] * sources).sum(dim=1), weights


class GenWarp(BankGenerator):
    """The target's own pixels moved part by part to the asked pose, fused and repaired by a U-Net."""

    kind = "GenWarp"
    name = "warp"
    settings = WarpSettings

    def build_generator(self):
        return WarpFusion(self.render_poses.channels, self.config["references"], self.config["g_base"],
                          self.unet_levels)

    # -- references --
    def references(self, landmarks, frames=None, rng=None):
        """Bank rows of the references of each asked pose (N, 33, 4): (N, K). At inference
        (rng None) the nearest pose facing the same way, then the nearest from another moment;
        in training (rng given) poses drawn from near to far, none within train_gap of
        `frames`, the asked frames' numbers."""
        bank, k = self.bank, self.config["references"]
        if not len(bank):
            raise DanceError(f"this {self.kind} has no reference frames: train it (python GenWarp.py TARGET.mp4)")
        dist = whole_pose_costs(landmarks, bank)
        if frames is not None:
            dist += near_in_time(bank, frames, self.config["train_gap"])
        if rng is not None:
            return draw_near_to_far(dist, rng, k)
        picks = np.empty((len(dist), k), np.int64)
        for j in range(k):
            picks[:, j] = dist.argmin(axis=1)
            dist = dist + near_in_time(bank, bank.frames[picks[:, j]], self.config["reference_gap"])
        return picks

    def complete(self, batch, rng=None):
        """Add the references (B, K, 3, S, S), their parts moved to the asked poses and laid
        over each other ("warped", same shape) and where those land ("cover", (B, K, 1, S, S))."""
        landmarks = landmark_array(batch["skeleton"].numpy())
        b, k, s = len(landmarks), self.config["references"], self.config["image_size"]
        picks = self.references(landmarks, batch["frame"].numpy() if rng is not None else None, rng).reshape(-1)
        refs = self.bank.images[picks].to(self.device).float().div(127.5).sub(1.0)
        warped, cover = warp_parts(refs, np.repeat(landmarks, k, axis=0), self.bank.skeletons[picks])
        return {**batch, "refs": refs.view(b, k, 3, s, s), "warped": warped.view(b, k, 3, s, s),
                "cover": cover.view(b, k, 1, s, s)}


def main():
    return train_main(GenWarp)


if __name__ == "__main__":
    cli_main(main)
