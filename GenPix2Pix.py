"""A pix2pix-class generator (GEN_TYPE 5): a rich pose map in, the target person out, at 128x128.

The recipe of pix2pix / pix2pixHD (Isola et al. 2017, Wang et al. 2018), the one
*Everybody Dance Now* builds on, sized for a 2-core CPU:
  pose map     all 33 MediaPipe landmarks drawn on black (poses.pose_maps): each limb and
               side its own colour, the torso filled, face, hands and feet, joints marked.
  generator    a five-level U-Net (nets.UNet), 128x128 in and out.
  critic       two PatchGANs (nets.MultiscaleDiscriminator), at 128x128 and at 64x64, each
               seeing pose map and image together (6 channels): "is this patch a real patch
               of the target in this pose?", at two scales of detail.
  losses       least-squares GAN, plus feature matching (the L1 distance between the
               critic's inner features of the real and the generated frame, which
               steadies training and rewards real texture), plus L1 to the real frame.
  EMA          inference uses an exponential moving average of the generator's
               weights, which is smoother across training steps and across frames;
               after each epoch its batch-norm statistics are recomputed for its own
               weights (training.recalibrate_batch_norm).
No perceptual (VGG) loss: no pretrained network may be downloaded here.

The paper's temporal model (each frame also conditioned on the previous generated one,
with a critic on pairs of frames) was tried and not kept: see the README; its code is
in commit 6f74a36.

    python GenPix2Pix.py [VIDEO] --epochs N [--every K] [--resume]
"""
import copy

import numpy as np
import torch

from nets import MultiscaleDiscriminator, UNet, feature_matching_loss, lsgan_loss, weights_init
from poses import pose_maps
from training import (LearnedGenerator, adam, calibration_batches, ema_decay, ema_update, recalibrate_batch_norm,
                      step, train_main)
from VideoReader import cli_main

DEFAULTS = {
    "image_size": 128,    # the crop size of the dataset: no upsampling at inference
    "batch_size": 8,
    "l1_weight": 100.0,   # pix2pix's weight on the pixel term
    "fm_weight": 10.0,    # pix2pixHD's weight on feature matching
    "ema_decay": 0.999,
    "g_base": 32,         # generator channels at the first level (doubling down to 256)
    "d_base": 32,         # critic channels at its first layer
    "d_scales": 2,        # critics at full and half resolution
}
CALIBRATION_BATCH = 32    # frames per forward pass when the EMA generator's batch norm is recalibrated


# ---- losses: pure functions of the critic's outputs --------------------------------------
def d_losses(real_outputs, fake_outputs):
    real, fake = lsgan_loss(real_outputs, True), lsgan_loss(fake_outputs, False)
    return {"d_real": real, "d_fake": fake, "d": 0.5 * (real + fake)}


def g_losses(fake_outputs, real_outputs, fake, real, l1_weight, fm_weight):
    adv = lsgan_loss(fake_outputs, True)
    fm = feature_matching_loss(fake_outputs, real_outputs)
    l1 = (fake - real).abs().mean()
    return {"g_adv": adv, "fm": fm, "l1": l1, "g": adv + fm_weight * fm + l1_weight * l1}


# ---- the generator ---------------------------------------------------------------------
class GenPix2Pix(LearnedGenerator):
    """Pose map -> image of the target, trained pix2pixHD-style; inference with the EMA weights."""

    kind = "GenPix2Pix"
    name = "pix2pix"
    defaults = DEFAULTS
    net_inputs = ("pose",)
    render_poses = staticmethod(pose_maps)
    shipped = ("netG_ema",)                           # the model file: the averaged generator alone
    resumable = ("netG", "optG", "netD", "optD")

    def build(self):
        c = self.config
        levels = int(np.log2(c["image_size"])) - 2  # down to 4x4
        self.netG = UNet(3, c["g_base"], levels).to(self.device)
        self.optG = adam(self.netG.parameters(), c["lr"])
        self.netG.apply(weights_init)
        self.netG_ema = copy.deepcopy(self.netG).eval().requires_grad_(False)
        self.netD = MultiscaleDiscriminator(6, c["d_base"], c["d_scales"]).to(self.device)
        self.netD.apply(weights_init)
        self.optD = adam(self.netD.parameters(), c["lr"])
        self.ema_updates = 0  # for the average's warm-up (training.ema_decay)

    @property
    def inference_net(self):
        return self.netG_ema

    def train_step(self, batch):
        self.netG.train()
        self.netD.train()
        pose, real = batch["pose"], batch["image"]
        fake = self.netG(batch)
        real_out = self.netD(torch.cat([pose, real], 1))

        # Generator: fool the critics at every scale, match their features, stay near the frame.
        g = g_losses(self.netD(torch.cat([pose, fake], 1)), real_out, fake, real,
                     self.config["l1_weight"], self.config["fm_weight"])
        step(self.optG, g["g"], inputs=list(self.netG.parameters()))  # the critic's gradients are not wanted here
        self.ema_updates += 1
        ema_update(self.netG_ema, self.netG, ema_decay(self.config["ema_decay"], self.ema_updates))

        # Critic: real pairs up, generated pairs down (no gradient into the generator).
        d = d_losses(real_out, self.netD(torch.cat([pose, fake.detach()], 1)))
        step(self.optD, d["d"])
        losses = {k: v.item() for k, v in {**g, **d}.items() if k != "g"}
        losses["l1"] /= 2  # [0, 1] pixel units, like val_l1
        return losses

    def end_epoch(self, data):
        """After each epoch: give the EMA generator batch-norm statistics of its own, from a
        fixed spread of training frames."""
        recalibrate_batch_norm(self.netG_ema, calibration_batches(data, CALIBRATION_BATCH, self.device))

    def state(self, training=True):
        state = super().state(training)
        if training:
            state["ema_updates"] = self.ema_updates
        return state

    def load_state(self, state):
        super().load_state(state)
        self.ema_updates = int(state.get("ema_updates", 0))
        if "netG" not in state:  # a model file: training would go on from the averaged weights
            self.netG.load_state_dict(state["netG_ema"])


def main():
    def extra(parser):
        parser.add_argument("--l1-weight", type=float, default=DEFAULTS["l1_weight"], help="weight of the L1 term")
        parser.add_argument("--fm-weight", type=float, default=DEFAULTS["fm_weight"],
                            help="weight of feature matching")
    return train_main(GenPix2Pix, extra)


if __name__ == "__main__":
    cli_main(main)
