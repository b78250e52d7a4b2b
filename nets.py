"""The networks' building blocks, and the one crossing between images and tensors.

Conventions: networks see RGB in [-1, 1], (N, 3, H, W); OpenCV images are BGR uint8,
(N, H, W, 3). `images_to_tensor` and `tensor_to_images` (and their uint8 halves) are the
only crossings. A network's forward takes a dict of tensors (a batch: "vector", "pose",
...) so that generators with different inputs share one training loop.

Blocks, from the seed and from pix2pix / pix2pixHD:
  GenNNSkeToImage          the seed's generator: a 26-vector through ConvTranspose layers
  UNet                     pix2pix's generator: encoder-decoder with skip connections
  PatchDiscriminator       pix2pix's 70x70 PatchGAN, returning every layer (feature matching)
  MultiscaleDiscriminator  pix2pixHD's critic: PatchGANs at several scales
and the losses they are trained with, as pure functions of the critics' outputs.

Data parallelism (torchrun: `distribute`, `unwrap`, the global batch norm) is
data_parallel.py's.
"""
import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from project import DanceError


def pick_device(name=None):
    """CUDA when present, else the CPU; or the device named ("cpu", "cuda", "cuda:1")."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DanceError(f"--device {name!r} is not a device; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DanceError(f"--device {name}: no CUDA GPU is visible to PyTorch here; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DanceError(f"--device {name}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s) here "
                         f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); use one of those or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DanceError(f"--device {name}: Apple's MPS is not available to PyTorch here; use cpu")
    if device.type not in ("cpu", "cuda", "mps"):  # meta holds no data; others are untested here
        raise DanceError(f"--device {name}: {device.type} devices cannot run this project; use cpu or cuda")
    return device


# ---- images <-> tensors ----------------------------------------------------------------
def bgr_to_rgb_chw(images):
    """(N, H, W, 3) BGR uint8 array -> (N, 3, H, W) RGB uint8 tensor (a permuted view)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(images)[..., ::-1])).permute(0, 3, 1, 2)


def rgb_chw_to_bgr(tensor):
    """(N, 3, H, W) RGB uint8 tensor -> (N, H, W, 3) BGR uint8 array."""
    return np.ascontiguousarray(tensor.permute(0, 2, 3, 1).cpu().numpy()[..., ::-1])


def images_to_tensor(images):
    """(N, H, W, 3) BGR uint8 -> (N, 3, H, W) RGB float in [-1, 1]."""
    return bgr_to_rgb_chw(images).float().div(127.5).sub(1.0)


def tensor_to_images(tensor):
    """(N, 3, H, W) RGB in [-1, 1] -> (N, H, W, 3) BGR uint8."""
    return rgb_chw_to_bgr(tensor.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte())


def resize_all(images, size):
    """Resize a stack of square images to size x size: area averaging when shrinking, bilinear when growing."""
    if len(images) == 0 or images.shape[1] == size:
        return images
    interpolation = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(im, (size, size), interpolation=interpolation) for im in images])


# ---- generators ------------------------------------------------------------------------
def weights_init(m):
    """DCGAN's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def up(cin, cout, last=False):
    """ConvTranspose doubling the size, then BatchNorm + ReLU, or Tanh for the last layer."""
    conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=last)
    return nn.Sequential(conv, nn.Tanh()) if last else nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(True))


class GenNNSkeToImage(nn.Module):
    """The seed's generator: batch["vector"] (B, 26) -> (B, 3, 64, 64) image in [-1, 1]."""

    def __init__(self, in_features=26):
        super().__init__()
        self.model = nn.Sequential(
            nn.ConvTranspose2d(in_features, 128, 4, 1, 0, bias=False), nn.BatchNorm2d(128), nn.ReLU(True),  # 4x4
            up(128, 64), up(64, 32), up(32, 16),   # 8, 16, 32
            up(16, 3, last=True))                  # 64x64

    def forward(self, batch):
        z = batch["vector"]
        return self.model(z.view(z.shape[0], -1, 1, 1))


class UNet(nn.Module):
    """Image-to-image U-Net (pix2pix's generator), batch["pose"] -> image: `levels` stride-2
    convolutions down to size / 2**levels, as many ConvTranspose layers back up, each decoder
    level concatenated with the encoder level of the same size, so fine positions (where a
    limb is) reach the output directly while the bottleneck sees the whole figure. The input
    is batch["pose"] or a tensor; the output an image in [-1, 1] (tanh), or with tanh=False
    `out_channels` raw maps (a generator that makes more than an image of them)."""

    def __init__(self, in_channels=3, base=32, levels=4, max_channels=256, out_channels=3, tanh=True):
        super().__init__()
        c = [min(base * 2 ** i, max_channels) for i in range(levels)]
        self.down = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_channels, c[0], 4, 2, 1), nn.LeakyReLU(0.2, True)),
            *[nn.Sequential(nn.Conv2d(c[i], c[i + 1], 4, 2, 1, bias=False), nn.BatchNorm2d(c[i + 1]),
                            nn.LeakyReLU(0.2, True)) for i in range(levels - 1)]])
        self.up = nn.ModuleList([up(c[-1], c[-2])] + [up(2 * c[i], c[i - 1]) for i in range(levels - 2, 0, -1)])
        self.out = up(2 * c[0], out_channels, last=True) if tanh else \
            nn.Sequential(nn.ConvTranspose2d(2 * c[0], out_channels, 4, 2, 1))

    def forward(self, batch):
        x, skips = batch["pose"] if isinstance(batch, dict) else batch, []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for layer, skip in zip(self.up, reversed(skips[:-1])):
            x = torch.cat([layer(x), skip], dim=1)
        return self.out(x)


# ---- critics ---------------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """pix2pix's 70x70 PatchGAN (three stride-2 layers, then two stride-1): one real/fake
    score per overlapping patch. Returns the output of every layer, for feature matching."""

    def __init__(self, in_channels=6, base=32):
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

    def __init__(self, in_channels=6, base=32, scales=2):
        super().__init__()
        self.critics = nn.ModuleList([PatchDiscriminator(in_channels, base) for _ in range(scales)])

    def forward(self, x):
        outputs = []
        for k, critic in enumerate(self.critics):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(critic(x))
        return outputs  # [scale][layer] feature maps; [scale][-1] are the patch scores


# ---- losses: pure functions of the critics' outputs -------------------------------------
def lsgan_loss(outputs, real):
    """Least-squares GAN loss (Mao et al. 2017), averaged over scales: patch scores pulled to 1
    for `real`, to 0 otherwise. `outputs` as MultiscaleDiscriminator returns them."""
    target = 1.0 if real else 0.0
    return sum(F.mse_loss(o[-1], torch.full_like(o[-1], target)) for o in outputs) / len(outputs)


def feature_matching_loss(fake_outputs, real_outputs):
    """Mean L1 distance between the critic's inner features on generated and real frames
    (pix2pixHD), averaged over scales and layers; the real side is a constant target."""
    terms = [F.l1_loss(f, r.detach()) for fo, ro in zip(fake_outputs, real_outputs) for f, r in zip(fo[:-1], ro[:-1])]
    return sum(terms) / len(terms)
