"""A pix2pix-class generator (GEN_TYPE 5): a rich pose map in, the target person out, at 128x128.

The recipe of pix2pix / pix2pixHD (Isola et al. 2017, Wang et al. 2018), the one
*Everybody Dance Now* builds on, sized for a 2-core CPU:
  pose map     all 33 MediaPipe landmarks drawn on black: each limb and side its own
               colour, the torso filled, face (eyes, ears, mouth), hands and feet
               included, joints marked. Deterministic, so training and inference agree.
  generator    a five-level U-Net (GenVanillaNN.UNet), 128x128 in and out.
  critic       two PatchGANs, at 128x128 and at 64x64, each seeing pose map and image
               together (6 channels): "is this patch a real patch of the target in
               this pose?", at two scales of detail.
  losses       least-squares GAN, plus feature matching (the L1 distance between the
               critic's inner features of the real and the generated frame, which
               steadies training and rewards real texture), plus L1 to the real frame.
  EMA          inference uses an exponential moving average of the generator's
               weights, which is smoother across training steps and across frames;
               after each epoch its batch-norm statistics are recomputed for its own
               weights (with the training network's, L1 on 150 held-out frames was
               0.083, not 0.053).
No perceptual (VGG) loss: no pretrained network may be downloaded here.

    python GenPix2Pix.py [VIDEO] --epochs N [--every K] [--resume]
"""
import copy

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from GenGAN import weights_init
from GenVanillaNN import GenVanillaNN, UNet, images_to_tensor, tensor_to_images, train_main
from Skeleton import full_landmarks
from VideoReader import cli_main

# ---- defaults, each overridable on the command line ----
MODEL_FILE = "DanceGenPix2Pix.pth"
IMAGE_SIZE = 128          # the crop size of the dataset: no upsampling at inference
BATCH_SIZE = 8
L1_WEIGHT = 100.0         # pix2pix's weight on the pixel term
FM_WEIGHT = 10.0          # pix2pixHD's weight on feature matching
EMA_DECAY = 0.999
G_BASE = 32               # generator channels at the first level (doubling down to 256)
D_BASE = 32               # critic channels at its first layer
D_SCALES = 2              # critics at full and half resolution

# ---- the pose map ----------------------------------------------------------------------
# (landmark a, landmark b, BGR colour). MediaPipe's "left" is the person's left. Left limbs
# are warm, right limbs cool, each segment its own shade, so the network can tell an upper
# arm from a forearm and a left side from a right side (which way the person faces).
LIMBS = (
    (11, 13, (0, 80, 255)), (13, 15, (0, 160, 255)),                                  # left arm
    (15, 17, (0, 220, 255)), (15, 19, (0, 220, 255)), (15, 21, (0, 220, 255)), (17, 19, (0, 220, 255)),
    (12, 14, (255, 80, 0)), (14, 16, (255, 160, 0)),                                  # right arm
    (16, 18, (255, 220, 0)), (16, 20, (255, 220, 0)), (16, 22, (255, 220, 0)), (18, 20, (255, 220, 0)),
    (23, 25, (0, 0, 255)), (25, 27, (80, 0, 200)),                                    # left leg
    (27, 29, (160, 0, 200)), (29, 31, (160, 0, 200)), (27, 31, (160, 0, 200)),
    (24, 26, (255, 0, 0)), (26, 28, (200, 0, 80)),                                    # right leg
    (28, 30, (200, 0, 160)), (30, 32, (200, 0, 160)), (28, 32, (200, 0, 160)),
    (11, 12, (0, 255, 0)), (23, 24, (0, 160, 0)),                                     # shoulders, hips
    (0, 2, (0, 255, 255)), (2, 7, (0, 255, 255)),                                     # left eye, ear
    (0, 5, (255, 255, 0)), (5, 8, (255, 255, 0)),                                     # right eye, ear
    (9, 10, (255, 0, 255)),                                                           # mouth
)
TORSO = (11, 12, 24, 23)
TORSO_COLOUR = (70, 110, 70)
JOINTS = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)  # the 13 reduced joints, marked white


def pose_map(landmarks, size):
    """One skeleton (33, 4) in crop coordinates drawn as a (size, size, 3) BGR uint8 pose map.
    Landmarks that are NaN (unknown, e.g. a skeleton rebuilt from a 26-vector) are left out."""
    image = np.zeros((size, size, 3), np.uint8)
    pts = np.asarray(landmarks, np.float32)[:, :2] * size
    ok = ~np.isnan(pts).any(axis=1)
    pix = np.where(ok[:, None], pts, 0).round().astype(np.int32)
    thickness = max(1, round(size / 64))
    if all(ok[list(TORSO)]):
        cv2.fillConvexPoly(image, pix[list(TORSO)], TORSO_COLOUR, cv2.LINE_8)
    for a, b, colour in LIMBS:
        if ok[a] and ok[b]:
            cv2.line(image, tuple(pix[a]), tuple(pix[b]), colour, thickness, cv2.LINE_8)
    for j in JOINTS:
        if ok[j]:
            cv2.circle(image, tuple(pix[j]), thickness, (255, 255, 255), -1, cv2.LINE_8)
    return image


def pose_maps(skeletons, size=IMAGE_SIZE):
    """Skeletons ((N, 33, 4), or reduced (N, 26): then only the 13 joints are drawn) ->
    (N, size, size, 3) BGR uint8 pose maps."""
    landmarks = full_landmarks(skeletons)
    out = np.zeros((len(landmarks), size, size, 3), np.uint8)
    for k, lm in enumerate(landmarks):
        out[k] = pose_map(lm, size)
    return out


# ---- the critic --------------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """pix2pix's 70x70 PatchGAN (three stride-2 layers, then two stride-1): one real/fake
    score per overlapping patch. Returns the output of every layer, for feature matching."""

    def __init__(self, in_channels=6, base=D_BASE):
        super().__init__()
        c = [base, base * 2, base * 4, base * 8]
        self.layers = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_channels, c[0], 4, 2, 1), nn.LeakyReLU(0.2, True)),
            *[nn.Sequential(nn.Conv2d(c[i], c[i + 1], 4, 1 if i == 2 else 2, 1), nn.InstanceNorm2d(c[i + 1]),
                            nn.LeakyReLU(0.2, True)) for i in range(3)],
            nn.Conv2d(c[3], 1, 4, 1, 1)])

    def forward(self, x):
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD's critic: the same PatchGAN design at several scales (each next one on
    the input average-pooled to half the size), so one judges texture and one the figure."""

    def __init__(self, in_channels=6, base=D_BASE, scales=D_SCALES):
        super().__init__()
        self.critics = nn.ModuleList([PatchDiscriminator(in_channels, base) for _ in range(scales)])

    def forward(self, x):
        outputs = []
        for k, critic in enumerate(self.critics):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(critic(x))
        return outputs  # [scale][layer] feature maps; [scale][-1] are the patch scores


# ---- losses: pure functions of the critic's outputs --------------------------------------
def lsgan_loss(outputs, real):
    """Least-squares GAN loss (Mao et al. 2017), averaged over scales: patch scores pulled to 1
    for `real`, to 0 otherwise."""
    target = 1.0 if real else 0.0
    return sum(F.mse_loss(o[-1], torch.full_like(o[-1], target)) for o in outputs) / len(outputs)


def feature_matching_loss(fake_outputs, real_outputs):
    """Mean L1 distance between the critic's inner features on generated and real frames,
    averaged over scales and layers; the real side is a constant target."""
    terms = [F.l1_loss(f, r.detach()) for fo, ro in zip(fake_outputs, real_outputs) for f, r in zip(fo[:-1], ro[:-1])]
    return sum(terms) / len(terms)


def d_losses(real_outputs, fake_outputs):
    real, fake = lsgan_loss(real_outputs, True), lsgan_loss(fake_outputs, False)
    return {"d_real": real, "d_fake": fake, "d": 0.5 * (real + fake)}


def g_losses(fake_outputs, real_outputs, fake, real, l1_weight=L1_WEIGHT, fm_weight=FM_WEIGHT):
    adv = lsgan_loss(fake_outputs, True)
    fm = feature_matching_loss(fake_outputs, real_outputs)
    l1 = (fake - real).abs().mean()
    return {"g_adv": adv, "fm": fm, "l1": l1, "g": adv + fm_weight * fm + l1_weight * l1}


@torch.no_grad()
def ema_update(ema, model, decay):
    """ema <- decay * ema + (1 - decay) * model, for the parameters. Batch-norm statistics
    are not averaged: they belong to one set of weights (see `recalibrate_batch_norm`)."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)


@torch.no_grad()
def recalibrate_batch_norm(net, batches):
    """Recompute a network's batch-norm statistics as the plain average over `batches`.
    Needed for averaged weights: the statistics the training network gathered describe
    its own activations, not the EMA network's; with them the EMA generator's L1 on 150
    held-out frames was 0.083 against 0.053 with statistics of its own (after 5 epochs)."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for batch in batches:
        net(batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


CALIBRATION_FRAMES = 512  # training frames whose batch-norm statistics the EMA generator uses


# ---- the generator ---------------------------------------------------------------------
class GenPix2Pix(GenVanillaNN):
    """Pose map -> image of the target, trained pix2pixHD-style; inference with the EMA weights.

    Same interface as every generator: generate(ske), train(), save(), load().
    """

    kind = "GenPix2Pix"
    render_poses = staticmethod(pose_maps)

    def __init__(self, device=None, l1_weight=L1_WEIGHT, fm_weight=FM_WEIGHT, ema_decay=EMA_DECAY,
                 g_base=G_BASE, d_base=D_BASE, d_scales=D_SCALES, temporal=False, **config):
        config.pop("input", None)
        config.setdefault("image_size", IMAGE_SIZE)
        config.setdefault("batch_size", BATCH_SIZE)
        super().__init__(input="image", device=device, l1_weight=l1_weight, fm_weight=fm_weight,
                         ema_decay=ema_decay, g_base=g_base, d_base=d_base, d_scales=d_scales,
                         temporal=temporal, **config)
        self.netG.apply(weights_init)
        self.netG_ema = copy.deepcopy(self.netG).eval().requires_grad_(False)
        self.netD = MultiscaleDiscriminator(6, d_base, d_scales).to(self.device)
        self.netD.apply(weights_init)
        critics = list(self.netD.parameters())
        if temporal:  # the paper's temporal critic: two consecutive poses and frames (12 channels)
            self.netD_t = MultiscaleDiscriminator(12, d_base, 1).to(self.device)
            self.netD_t.apply(weights_init)
            critics += list(self.netD_t.parameters())
        self.optD = torch.optim.Adam(critics, lr=self.config["lr"], betas=(0.5, 0.999))
        self._previous = None  # temporal: the last generated frame, the next one's extra input

    def build_generator(self):
        levels = int(np.log2(self.config["image_size"])) - 2  # down to 4x4
        return UNet(6 if self.config["temporal"] else 3, self.config["g_base"], levels)

    def reset(self):
        """Temporal model: forget the previous frame (call at a cut or a gap in the source)."""
        self._previous = None

    @torch.no_grad()
    def generate_batch(self, skeletons):
        """Skeletons in crop coordinates ((N, 33, 4), or (N, 26)) -> (N, 128, 128, 3) BGR uint8."""
        self.netG_ema.eval()
        pose = images_to_tensor(pose_maps(skeletons, self.config["image_size"])).to(self.device)
        if not self.config["temporal"]:
            return tensor_to_images(self.netG_ema({"pose": pose}))
        frames = []  # temporal: one at a time, in order, each seeing the frame generated before it
        for p in pose:
            previous = torch.zeros_like(p) if self._previous is None else self._previous
            self._previous = self.netG_ema({"pose": torch.cat([p, previous])[None]})[0]
            frames.append(self._previous)
        return tensor_to_images(torch.stack(frames)) if frames else tensor_to_images(pose[:0])

    def train_step(self, batch):
        self.netG.train()
        self.netD.train()
        pose, real = batch["pose"], batch["image"]
        temporal = self.config["temporal"]
        real_pair = fake_pair = None
        if temporal:
            # The paper's temporal conditioning: generate the previous frame (from nothing before
            # it), then this one from its pose and that generated frame. The critic judges both
            # frames; the temporal critic judges the pair (poses and frames) as a sequence.
            prev_pose, prev_real = batch["prev_pose"], batch["prev_image"]
            prev_fake = self.netG({"pose": torch.cat([prev_pose, torch.zeros_like(real)], 1)})
            fake = self.netG({"pose": torch.cat([pose, prev_fake], 1)})
            real_pair = torch.cat([prev_pose, pose, prev_real, real], 1)
            fake_pair = torch.cat([prev_pose, pose, prev_fake, fake], 1)
            pose, real, fake = (torch.cat(x) for x in ((prev_pose, pose), (prev_real, real), (prev_fake, fake)))
        else:
            fake = self.netG(batch)

        def critic(image, pair):  # every critic's outputs, in one list
            return self.netD(torch.cat([pose, image], 1)) + (self.netD_t(pair) if temporal else [])

        real_out = critic(real, real_pair)

        # Generator: fool the critics at every scale, match their features, stay near the frame.
        g = g_losses(critic(fake, fake_pair), real_out, fake, real, self.config["l1_weight"], self.config["fm_weight"])
        self.optG.zero_grad(set_to_none=True)
        g["g"].backward(inputs=list(self.netG.parameters()))  # the critic's gradients are not wanted here
        self.optG.step()
        ema_update(self.netG_ema, self.netG, self.config["ema_decay"])

        # Critic: real pairs up, generated pairs down (no gradient into the generator).
        d = d_losses(real_out, critic(fake.detach(), fake_pair.detach() if temporal else None))
        self.optD.zero_grad(set_to_none=True)
        d["d"].backward()
        self.optD.step()
        losses = {k: v.item() for k, v in {**g, **d}.items() if k not in ("g",)}
        losses["l1"] /= 2  # [0, 1] pixel units, like val_l1
        return losses

    def end_epoch(self, data):
        """After each epoch: give the EMA generator batch-norm statistics of its own, from a
        fixed spread of training frames."""
        picks = torch.linspace(0, len(data) - 1, min(CALIBRATION_FRAMES, len(data))).round().long()
        size = self.config["batch_size"] * 4
        batches = (data.batch(picks[s:s + size], self.device) for s in range(0, len(picks), size))
        if self.config["temporal"]:  # seen after their previous frame (the real one here)
            batches = ({"pose": torch.cat([b["pose"], b["prev_image"]], 1)} for b in batches)
        recalibrate_batch_norm(self.netG_ema, batches)
        self.reset()

    def state(self, training=True):
        # The shipped model holds the EMA weights only; training state holds everything.
        state = {"kind": self.kind, "config": self.config, "epoch": self.epoch, "history": self.history,
                 "netG_ema": self.netG_ema.state_dict()}
        if training:
            state.update(netG=self.netG.state_dict(), optG=self.optG.state_dict(),
                         netD=self.netD.state_dict(), optD=self.optD.state_dict())
            if self.config["temporal"]:
                state["netD_t"] = self.netD_t.state_dict()
        return state

    def load_state(self, state):
        self.netG_ema.load_state_dict(state["netG_ema"])
        self.netG.load_state_dict(state.get("netG", state["netG_ema"]))
        critics = (("netD_t", self.netD_t),) if self.config["temporal"] else ()
        for key, obj in (("optG", self.optG), ("netD", self.netD), *critics, ("optD", self.optD)):
            if key in state:
                obj.load_state_dict(state[key])
        self.epoch, self.history = state["epoch"], list(state["history"])


def main():
    def extra(parser):
        parser.set_defaults(batch_size=BATCH_SIZE)
        parser.add_argument("--l1-weight", type=float, default=L1_WEIGHT, help="weight of the L1 term")
        parser.add_argument("--fm-weight", type=float, default=FM_WEIGHT, help="weight of feature matching")
        parser.add_argument("--temporal", action="store_true",
                            help="condition each frame on the previous generated one, with a critic on "
                                 "pairs of frames (the paper's temporal model; see the README)")
    return train_main(GenPix2Pix, "Train GenPix2Pix (GEN_TYPE 5) on a target video.", lambda opts: MODEL_FILE, extra)


if __name__ == "__main__":
    cli_main(main)
