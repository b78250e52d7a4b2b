"""The seed's GAN (GEN_TYPE 4): GenVanillaNN's skeleton-vector generator, trained
against a DCGAN discriminator, with an L1 term that ties each image to its pose.

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
import torch
import torch.nn as nn
import torch.nn.functional as F

from GenVanillaNN import GenVanillaNN, train_main
from VideoReader import cli_main

MODEL_FILE = "DanceGenGAN.pth"
L1_WEIGHT = 100.0   # pix2pix's weight: the adversarial term sharpens, L1 keeps the pose
CRITICS = ("pose", "image")


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


def weights_init(m):
    """DCGAN's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class GenGAN(GenVanillaNN):
    """GenVanillaNN's vector generator plus a (conditional) DCGAN discriminator.

    Same interface: generate(ske), train(), save(), load(); only training differs."""

    kind = "GenGAN"

    def __init__(self, device=None, critic="pose", l1_weight=L1_WEIGHT, **config):
        config.pop("input", None)  # the seed's GAN generator always takes the 26-vector
        super().__init__(input="ske", device=device, critic=critic, l1_weight=l1_weight, **config)
        self.netG.apply(weights_init)
        self.netD = Discriminator(6 if critic == "pose" else 3).to(self.device)
        self.netD.apply(weights_init)
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=self.config["lr"], betas=(0.5, 0.999))

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
        self.optD.zero_grad(set_to_none=True)
        loss_d.backward()
        self.optD.step()

        # Generator: fool the updated discriminator, and stay close to the real frame.
        losses = g_loss(self.netD(self._critic_input(fake, batch)), fake, real, self.config["l1_weight"])
        self.optG.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optG.step()
        return {"d": loss_d.item(), "g_adv": losses["adv"].item(), "l1": losses["l1"].item() / 2}  # [0, 1] units

    def state(self, training=True):
        state = super().state(training)
        if training:  # the critic is only needed to go on training; the shipped model stays small
            state.update(netD=self.netD.state_dict(), optD=self.optD.state_dict())
        return state

    def load_state(self, state):
        super().load_state(state)
        if "netD" in state:
            self.netD.load_state_dict(state["netD"])
            self.optD.load_state_dict(state["optD"])


def main():
    return train_main(GenGAN, "Train GenGAN (GEN_TYPE 4) on a target video.",
                      lambda opts: MODEL_FILE,
                      lambda p: p.add_argument("--critic", choices=CRITICS, default="pose",
                                               help="what the discriminator sees: pose and image "
                                                    "(conditional, default) or the image alone"))


if __name__ == "__main__":
    cli_main(main)
