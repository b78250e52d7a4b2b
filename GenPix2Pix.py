"""A pix2pix-class generator (GEN_TYPE 5): a rich pose map in, the target person out, at 128x128.

The recipe of pix2pix / pix2pixHD (Isola et al. 2017, Wang et al. 2018), the one
*Everybody Dance Now* builds on, sized for a 2-core CPU:
  pose map     all 33 MediaPipe landmarks drawn on black (poses.pose_maps): each limb and
               side its own colour, the torso filled, face, hands and feet, joints marked.
  generator    a five-level U-Net (nets.UNet), 128x128 in and out.
  training     adversarial.py: two PatchGAN critics (128x128 and 64x64), least-squares GAN
               plus feature matching plus L1 to the real frame, and an EMA of the
               generator's weights for inference.

The paper's temporal model (each frame also conditioned on the previous generated one,
with a critic on pairs of frames) was tried and not kept: see the README; its code is
in commit 6f74a36.

    python GenPix2Pix.py [VIDEO] --epochs N [--every K] [--resume]
"""
from dataclasses import dataclass

from adversarial import AdversarialGenerator, RecipeSettings
from nets import UNet
from poses import POSE_MAPS
from trainer_cli import train_main
from training_settings import with_default
from project import cli_main


@dataclass(frozen=True)
class Pix2PixSettings(RecipeSettings):
    """GenPix2Pix's settings: the recipe's, at the dataset's crop size."""
    image_size: int = with_default(RecipeSettings, "image_size", 128)  # the crop size: no upsampling at inference


class GenPix2Pix(AdversarialGenerator):
    """Pose map -> image of the target, trained pix2pixHD-style; inference with the EMA weights."""

    kind = "GenPix2Pix"
    name = "pix2pix"
    settings = Pix2PixSettings
    render_poses = POSE_MAPS

    def build_generator(self):
        return UNet(self.render_poses.channels, self.config["g_base"], self.unet_levels)


def main():
    return train_main(GenPix2Pix)


if __name__ == "__main__":
    cli_main(main)
