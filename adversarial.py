"""The adversarial recipe of pix2pix / pix2pixHD (Isola et al. 2017, Wang et al. 2018), the one
*Everybody Dance Now* builds on, shared by the generators trained with it (GenPix2Pix, GenWarp):
  critic       two PatchGANs (nets.MultiscaleDiscriminator), at full and at half size, each
               seeing pose map and image together (6 channels): "is this patch a real patch
               of the target in this pose?", at two scales of detail.
  losses       least-squares GAN, plus feature matching (the L1 distance between the
               critic's inner features of the real and the generated frame, which
               steadies training and rewards real texture), plus L1 to the real frame;
               pure functions of the critic's outputs, returned as a named dict.
  EMA          inference uses an exponential moving average of the generator's weights,
               smoother across training steps and across frames; after each epoch its
               batch-norm statistics are recomputed for its own weights.
A generator on this recipe supplies its network (`build_generator`, reading a batch and
returning an image in [-1, 1]) and, when the network reads more than the dataset gives,
`complete` (LearnedGenerator). No perceptual (VGG) loss: no pretrained network may be
downloaded here.
"""
import copy
from dataclasses import dataclass

import numpy as np
import torch

from data_parallel import unwrap
from ema import calibration_batches, ema_decay, ema_update, recalibrate_batch_norm
from learned_generator import LearnedGenerator
from nets import MultiscaleDiscriminator, feature_matching_loss, lsgan_loss, weights_init
from optimisers import AdamOf, step
from training_settings import TrainingSettings, setting, with_default


@dataclass(frozen=True)
class RecipeSettings(TrainingSettings):
    """The settings of every generator trained with the recipe above (pix2pixHD's). Each range
    keeps a value meaningful: a negative weight turns a penalty into a reward, a decay of 1
    freezes the average at its random start."""
    batch_size: int = with_default(TrainingSettings, "batch_size", 8)  # frames per step (the shared default: 32)
    l1_weight: float = setting(100.0, 0, 1e4, flag="weight of the L1 term")  # pix2pix's, on the pixel term
    fm_weight: float = setting(10.0, 0, 1e4, flag="weight of feature matching")  # pix2pixHD's weight on feature matching
    ema_decay: float = setting(0.999, 0, 1, open_range=True)  # of the generator's moving average (ema.ema_decay)
    g_base: int = setting(32, 1, 512)  # generator channels at the first level (doubling down to 256)
    d_base: int = setting(32, 1, 512)  # critic channels at its first layer
    d_scales: int = setting(2, 1, 4)  # critics at full and half size (four take 128 pixels to 16)


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


def split_outputs(outputs, n):
    """A critic's outputs ([scale][layer] maps) on a batch of 2n pairs -> those of its first n
    pairs and of its last n."""
    return ([[f[:n] for f in scale] for scale in outputs], [[f[n:] for f in scale] for scale in outputs])


# ---- the generator base ------------------------------------------------------------------
class AdversarialGenerator(LearnedGenerator):
    """A learned generator trained with the recipe above; its model file holds the EMA
    generator alone."""

    settings = RecipeSettings
    net_inputs = ("pose",)
    shipped = ("netG_ema",)
    resumable = ("netG", "optG", "netD", "optD")
    trained = ("netG", "netD")
    optD = AdamOf("netD")
    image_at_crop_size = True

    def build_generator(self):
        """The generator network (an nn.Module: a batch in, (B, 3, S, S) in [-1, 1] out)."""
        raise NotImplementedError

    @property
    def unet_levels(self):
        """The levels of a U-Net that goes down to 4x4 at this image size."""
        return int(np.log2(self.config["image_size"])) - 2

    def build(self):
        c = self.config
        self.netG = self.build_generator().to(self.device)
        self.netG.apply(weights_init)
        self.netG_ema = copy.deepcopy(self.netG).eval().requires_grad_(False)
        self.netD = MultiscaleDiscriminator(self.render_poses.channels + 3, c["d_base"], c["d_scales"]).to(self.device)
        self.netD.apply(weights_init)
        self.ema_updates = 0  # for the average's warm-up (ema.ema_decay)

    @property
    def inference_net(self):
        return self.netG_ema

    def forward_train(self, batch):
        """The training network's image for a batch, and the generator's own loss terms (a dict
        of tensors, each weighted by its `<name>_weight` setting; none here)."""
        return self.netG(batch), {}

    def train_step(self, batch):
        self.netG.train()
        self.netD.train()
        # What the batch needs beyond the dataset, drawn reproducibly (a resumed run draws the
        # same; under torchrun each rank draws its own).
        key = [self.config["seed"], self.epoch, self.partial["step"]] + ([self.where.rank] if self.where.rank else [])
        batch = self.complete(batch, np.random.default_rng(key))
        pose, real = batch["pose"], batch["image"]
        fake, own = self.forward_train(batch)
        # The critic on real and generated pairs in one pass: its instance norm sees each frame
        # alone, so this is two passes' result, and under torchrun one forward per backward.
        real_out, fake_out = split_outputs(self.netD(torch.cat([torch.cat([pose, real], 1),
                                                                torch.cat([pose, fake.detach()], 1)])), len(real))

        # Generator: fool the critics at every scale, match their features, stay near the frame
        # (plus the generator's own terms, each with its `<name>_weight` setting). The critic
        # runs unwrapped here: its weights do not learn from this step.
        g = g_losses(unwrap(self.netD)(torch.cat([pose, fake], 1)), real_out, fake, real,
                     self.config["l1_weight"], self.config["fm_weight"])
        g.update(own)
        g["g"] = g["g"] + sum(self.config[f"{name}_weight"] * value for name, value in own.items())
        step(self.optG, g["g"], inputs=list(self.netG.parameters()))  # the critic's gradients are not wanted here
        if self.where.main:  # the average is rank 0's to keep (it validates and writes the model)
            self.ema_updates += 1
            ema_update(self.netG_ema, unwrap(self.netG), ema_decay(self.config["ema_decay"], self.ema_updates))

        # Critic: real pairs up, generated pairs down (no gradient into the generator).
        d = d_losses(real_out, fake_out)
        step(self.optD, d["d"])
        losses = {k: v.item() for k, v in {**g, **d}.items() if k != "g"}
        losses["l1"] /= 2  # [0, 1] pixel units, like val_l1
        return losses

    def end_epoch(self, data):
        """After each epoch: give the EMA generator batch-norm statistics of its own, from a
        fixed spread of training frames."""
        batches = calibration_batches(data, CALIBRATION_BATCH, self.device)
        recalibrate_batch_norm(self.netG_ema, (self.complete(batch) for batch in batches))

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
