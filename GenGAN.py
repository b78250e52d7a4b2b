"""The seed's GAN (GEN_TYPE 4): the seed's skeleton-vector generator (nets.GenNNSkeToImage),
trained against a DCGAN discriminator, with an L1 term that ties each image to its pose.

The discriminator is conditional: it sees the image together with the skeleton
drawn on a 3x64x64 canvas (6 input channels), so it judges "is this a real frame
of the target *in this pose*", not only "is this a real frame". An unconditional
critic (--critic image) can be satisfied by any realistic frame, whatever the pose;
then only the L1 term enforces the pose.

Losses (pure functions below), as in DCGAN and pix2pix:
  D: BCE(D(real), 1) + BCE(D(fake), 0)
  G: BCE(D(fake), 1) + l1_weight * |fake - real|

    python GenGAN.py [VIDEO] --epochs N [--resume] [--critic pose|image]
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from data_parallel import unwrap
from learned_generator import LearnedGenerator
from nets import GenNNSkeToImage, weights_init
from optimisers import AdamOf, step
from trainer_cli import train_main
from training_settings import TrainingSettings, setting
from project import DanceError, cli_main

L1_WEIGHT = 100.0   # pix2pix's weight: the adversarial term sharpens, L1 keeps the pose
CRITICS = ("pose", "image")


@dataclass(frozen=True)
class GANSettings(TrainingSettings):
    """GenGAN's settings: the shared ones, its critic and its L1 weight."""
    critic: str = setting("pose", choices=CRITICS, flag="what the discriminator sees: pose and image (conditional, "
                          "default) or the image alone")  # an unconditional critic leaves the pose to the L1 term
    l1_weight: float = setting(L1_WEIGHT, 0, 1e4)  # negative: a reward for straying from the real frame


class Discriminator(nn.Module):
    """The seed's DCGAN critic on 64x64 images; returns one logit per image
    (the seed's final Sigmoid is folded into the loss, which is more stable)."""

    def __init__(self, in_channels=6):
        super().__init__()

        def down(cin, cout):
            return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]

        self.model = nn.Sequential(
            nn.Conv2d(in_channels, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),  # 32x32
            *down(64, 128), *down(128, 256), *down(256, 512),                        # 16, 8, 4
            nn.Conv2d(512, 1, 4, 1, 0, bias=False))                                  # 1x1

    def forward(self, x):
        return self.model(x).view(-1)


def d_loss(real_logits, fake_logits):
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def g_loss(fake_logits, fake, real, l1_weight):
    adv = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    l1 = (fake - real).abs().mean()
    return {"adv": adv, "l1": l1, "total": adv + l1_weight * l1}


class GenGAN(LearnedGenerator):
    """The seed's vector generator against a (conditional) DCGAN discriminator, plus L1.

    Generates like GenVanillaNN --input ske (the critic is only needed to go on training,
    so the model file holds the generator alone)."""

    kind = "GenGAN"
    name = "gan"
    settings = GANSettings
    resumable = ("optG", "netD", "optD")
    trained = ("netG", "netD")
    optD = AdamOf("netD")

    def build(self):
        if self.config["critic"] not in CRITICS:
            raise DanceError(f"--critic must be one of {', '.join(CRITICS)} (got {self.config['critic']!r})")
        self.netG = GenNNSkeToImage().to(self.device)
        self.netG.apply(weights_init)
        sees = self.render_poses.channels + 3 if self.config["critic"] == "pose" else 3  # (pose +) RGB image
        self.netD = Discriminator(sees).to(self.device)
        self.netD.apply(weights_init)

    def _critic_input(self, image, batch):
        return torch.cat([image, batch["pose"]], dim=1) if self.config["critic"] == "pose" else image

    def train_step(self, batch):
        self.netG.train()
        self.netD.train()
        real = batch["image"]
        fake = self.netG(batch)

        # Discriminator: real frames up, generated ones down (no gradient into G here).
        loss_d = d_loss(self.netD(self._critic_input(real, batch)),
                        self.netD(self._critic_input(fake.detach(), batch)))
        step(self.optD, loss_d)

        # Generator: fool the updated discriminator, and stay close to the real frame. The critic
        # runs unwrapped (under torchrun) and gets no gradient: its weights do not learn here.
        losses = g_loss(unwrap(self.netD)(self._critic_input(fake, batch)), fake, real, self.config["l1_weight"])
        step(self.optG, losses["total"], inputs=list(self.netG.parameters()))
        return {"d": loss_d.item(), "g_adv": losses["adv"].item(), "l1": losses["l1"].item() / 2}  # [0, 1] units


def main():
    return train_main(GenGAN)


if __name__ == "__main__":
    cli_main(main)
