"""The seed's direct generators: a network maps a pose straight to an image of the target.

Two inputs, two networks (GEN_TYPE 2 and 3 in DanceDemo):
  --input ske    GenNNSkeToImage: the 26-vector as a 26x1x1 tensor through five
                 ConvTranspose layers to a 3x64x64 image (the seed's design).
  --input image  GenNNSkeImToImage: the skeleton drawn as a 64x64 image, through a
                 small U-Net (an encoder-decoder whose skip connections carry the
                 limbs' positions straight to the decoder).
Both are trained with an L1 loss against the target's frames. This module also
holds what every learned generator shares: the tensors' colour convention, the
dataset, the held-out split, checkpoints and the training loop (GenGAN reuses them).

Conventions: networks see RGB in [-1, 1] (N, 3, H, W); OpenCV images are BGR uint8
(H, W, 3). `images_to_tensor` and `tensor_to_images` are the only crossings.

    python GenVanillaNN.py [VIDEO] --input ske|image --epochs N [--resume]
"""
import argparse
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from GenNearest import GenNearest
from Skeleton import Skeleton, reduced_vectors
from VideoReader import PROJECT_DIR, DanceError, atomic_path, cli_main, data_path
from VideoSkeleton import HELD_OUT, VideoSkeleton

# ---- defaults, each overridable on the command line ----
IMAGE_SIZE = 64           # the seed's networks make 64x64 images
BATCH_SIZE = 32
LEARNING_RATE = 2e-4
EPOCHS = 10
TRAIN_EVERY = 2           # train on every k-th frame of the training split (neighbours are near-duplicates)
SEED = 0
MODELS_DIR = PROJECT_DIR / "models"           # what the demo loads: weights + config, small
CHECKPOINT_DIR = PROJECT_DIR / "checkpoints"  # full training state for --resume (git-ignored)
SAMPLES_DIR = PROJECT_DIR / "output" / "samples"
MODEL_FILES = {"ske": "DanceGenVanillaFromSke.pth", "image": "DanceGenVanillaFromImage.pth"}

log = logging.getLogger("dance")


def pick_device(name=None):
    """CUDA when present, else the CPU (or the device named)."""
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


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


def pose_images(skeletons, size=IMAGE_SIZE):
    """Skeletons in crop coordinates ((N, 26) or (N, 33, 4)), their 13 joints drawn as stick
    figures on black: (N, size, size, 3) BGR uint8, the input of GenNNSkeImToImage and of
    GenGAN's critic."""
    vectors = reduced_vectors(skeletons)
    out = np.zeros((len(vectors), size, size, 3), np.uint8)
    for im, vec in zip(out, vectors):
        Skeleton.from_array(vec).draw(im, thickness=1)
    return out


# ---- data ------------------------------------------------------------------------------
class PoseDataset:
    """Frames of a VideoSkeleton as tensors kept in memory: skeletons (N, 33, 4) float,
    vectors (N, 26) float, images (N, 3, S, S) RGB uint8, poses (N, C, S, S) uint8: the
    skeletons as the generator sees them, drawn by `render` (skeletons, size) -> (N, S, S, C).
    With previous=True it also keeps the frame before each one (the previous cached frame;
    the first frame's is itself), for generators conditioned on the previous frame."""

    def __init__(self, videoSke, indices, size=IMAGE_SIZE, render=pose_images, previous=False):
        self.indices = np.asarray(indices)
        self.skeletons = videoSke.skeletons[self.indices]
        crops = resize_all(videoSke.images()[self.indices], size)
        self.vectors = torch.from_numpy(reduced_vectors(self.skeletons))
        self.images = bgr_to_rgb_chw(crops).contiguous()  # contiguous: batches index along N
        self.poses = bgr_to_rgb_chw(render(self.skeletons, size)).contiguous()
        self.previous = previous
        if previous:
            before = PoseDataset(videoSke, np.maximum(self.indices - 1, 0), size, render)
            self.prev_images, self.prev_poses = before.images, before.poses

    def __len__(self):
        return len(self.indices)

    def batch(self, idx, device):
        """A batch as float tensors on `device`: vector (B, 26), image and pose in [-1, 1]
        (and prev_image, prev_pose with previous=True)."""
        to_float = lambda t: t[idx].to(device).float().div(127.5).sub(1.0)  # noqa: E731
        batch = {"vector": self.vectors[idx].to(device), "image": to_float(self.images),
                 "pose": to_float(self.poses)}
        if self.previous:
            batch.update(prev_image=to_float(self.prev_images), prev_pose=to_float(self.prev_poses))
        return batch

    def batches(self, batch_size, device, generator=None):
        """Shuffled mini-batches over the whole set (the last, smaller one included)."""
        order = torch.randperm(len(self), generator=generator)
        for start in range(0, len(self), batch_size):
            yield self.batch(order[start:start + batch_size], device)


# ---- networks --------------------------------------------------------------------------
def up(cin, cout, last=False):
    """ConvTranspose doubling the size, then BatchNorm + ReLU, or Tanh for the last layer."""
    conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=last)
    return nn.Sequential(conv, nn.Tanh()) if last else nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(True))


class GenNNSkeToImage(nn.Module):
    """The seed's generator: 26-vector -> 3x64x64 image in [-1, 1]."""

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
    """Image-to-image U-Net (pix2pix's generator): `levels` stride-2 convolutions down to
    size / 2**levels, as many ConvTranspose layers back up, each decoder level concatenated
    with the encoder level of the same size, so fine positions (where a limb is) reach the
    output directly while the bottleneck sees the whole figure."""

    def __init__(self, in_channels=3, base=32, levels=4, max_channels=256):
        super().__init__()
        c = [min(base * 2 ** i, max_channels) for i in range(levels)]
        self.down = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_channels, c[0], 4, 2, 1), nn.LeakyReLU(0.2, True)),
            *[nn.Sequential(nn.Conv2d(c[i], c[i + 1], 4, 2, 1, bias=False), nn.BatchNorm2d(c[i + 1]),
                            nn.LeakyReLU(0.2, True)) for i in range(levels - 1)]])
        self.up = nn.ModuleList([up(c[-1], c[-2])] + [up(2 * c[i], c[i - 1]) for i in range(levels - 2, 0, -1)])
        self.out = up(2 * c[0], 3, last=True)

    def forward(self, batch):
        x, skips = batch["pose"], []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        for layer, skip in zip(self.up, reversed(skips[:-1])):
            x = torch.cat([layer(x), skip], dim=1)
        return self.out(x)


class GenNNSkeImToImage(UNet):
    """Drawn skeleton (3x64x64) -> image (3x64x64): a four-level U-Net (32 ... 256 channels)."""

    def __init__(self):
        super().__init__(in_channels=3, base=32, levels=4)


NETWORKS = {"ske": GenNNSkeToImage, "image": GenNNSkeImToImage}


# ---- checkpoints -----------------------------------------------------------------------
def save_checkpoint(path, state):
    """torch.save atomically (see `atomic_path`): never a half-written checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, kind):
    """A checkpoint dict, loaded safely (weights_only) onto the CPU whatever device saved it."""
    path = Path(path)
    if not path.is_file():
        raise DanceError(f"{path}: no such model file; train one (python {kind}.py) or check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DanceError(f"{path}: not a readable checkpoint ({type(e).__name__}); "
                         f"it is damaged or not a model of this project: train it again") from None
    if not isinstance(state, dict) or "kind" not in state or "config" not in state:
        raise DanceError(f"{path}: not a checkpoint of this project")
    if state["kind"] != kind:
        raise DanceError(f"{path}: holds a {state['kind']} model, not a {kind}; pick the matching file")
    return state


# ---- the generator ---------------------------------------------------------------------
class GenVanillaNN:
    """Pose -> image network, with the shared interface: generate(ske), train(), save(), load().

        gen = GenVanillaNN(input="ske")              # or input="image"
        gen.train(VideoSkeleton("data/taichi1.mp4"), epochs=10)
        gen.save("models/DanceGenVanillaFromSke.pth")
        image = GenVanillaNN.load("models/DanceGenVanillaFromSke.pth").generate(ske)
    """

    kind = "GenVanillaNN"
    render_poses = staticmethod(pose_images)  # skeletons -> what the network (or critic) sees of them

    def __init__(self, input="ske", device=None, **config):
        if input not in NETWORKS:
            raise DanceError(f"--input must be one of {', '.join(NETWORKS)} (got {input!r})")
        self.device = pick_device(device)
        self.config = {"input": input, "image_size": IMAGE_SIZE, "lr": LEARNING_RATE,
                       "batch_size": BATCH_SIZE, "held_out": HELD_OUT, "seed": SEED, **config}
        torch.manual_seed(self.config["seed"])
        self.netG = self.build_generator().to(self.device)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=self.config["lr"], betas=(0.5, 0.999))
        self.epoch, self.history = 0, []

    def build_generator(self):
        """The generator network this config describes (subclasses build their own)."""
        return NETWORKS[self.config["input"]]()

    # -- inference --
    @torch.no_grad()
    def generate_batch(self, skeletons):
        """Skeletons in crop coordinates, (N, 26) or (N, 33, 4) -> (N, 64, 64, 3) BGR uint8 images."""
        self.netG.eval()
        vectors = reduced_vectors(skeletons)
        batch = {"vector": torch.from_numpy(vectors).to(self.device)}
        if self.config["input"] == "image":
            batch["pose"] = images_to_tensor(pose_images(vectors, self.config["image_size"])).to(self.device)
        return tensor_to_images(self.netG(batch))

    def generate(self, ske):
        """The target in pose `ske` (a Skeleton in crop coordinates): BGR uint8, image_size square."""
        return self.generate_batch(ske.landmarks[None])[0]

    # -- training --
    def train_step(self, batch):
        """One optimisation step on a batch; returns the losses as a dict of floats."""
        self.netG.train()
        fake = self.netG(batch)
        loss = (fake - batch["image"]).abs().mean()
        self.optG.zero_grad(set_to_none=True)
        loss.backward()
        self.optG.step()
        return {"l1": loss.item() / 2}  # halved: [0, 1] pixel units, like val_l1

    def train(self, videoSke, epochs=EPOCHS, every=TRAIN_EVERY, checkpoint=None, out=None, progress=True):
        """Train on the first 85% of the target's frames (by time) up to `epochs` epochs in all;
        see `fit`."""
        return fit(self, videoSke, epochs, every, checkpoint, out, progress)

    def end_epoch(self, data):
        """Called after each epoch with the training set, before validation (a hook for subclasses)."""

    # -- persistence --
    def state(self, training=True):
        """Everything to rebuild this generator (and, with training=True, to resume training)."""
        state = {"kind": self.kind, "config": self.config, "epoch": self.epoch, "history": self.history,
                 "netG": self.netG.state_dict()}
        if training:
            state["optG"] = self.optG.state_dict()
        return state

    def load_state(self, state):
        self.netG.load_state_dict(state["netG"])
        if "optG" in state:
            self.optG.load_state_dict(state["optG"])
        self.epoch, self.history = state["epoch"], list(state["history"])

    def save(self, path, training=False):
        """Write a checkpoint: the weights and config (and the optimiser state with training=True)."""
        save_checkpoint(path, self.state(training))

    @classmethod
    def load(cls, path, device=None):
        state = load_checkpoint(path, cls.kind)
        gen = cls(device=device, **state["config"])
        try:
            gen.load_state(state)
        except (KeyError, RuntimeError) as e:
            raise DanceError(f"{path}: its weights do not fit the model its config describes ({e}); "
                             f"train it again") from None
        return gen


# ---- the training loop, shared by every learned generator ---------------------------------
def comparison_grid(skeletons, columns, rows=8, cell=128):
    """A picture for eyes: `rows` poses spread over `skeletons` ((N, 26) or (N, 33, 4)), each
    row the drawn skeleton then every named column's image of that pose, under a header of
    the names. `columns` maps a name to images (N, H, W, 3) BGR uint8, one per skeleton."""
    picks = np.linspace(0, len(skeletons) - 1, min(rows, len(skeletons))).round().astype(int)
    named = {"skeleton": pose_images(np.asarray(skeletons)[picks], cell),
             **{name: np.asarray(images)[picks] for name, images in columns.items()}}
    header = []
    for name in named:
        h = np.zeros((24, cell, 3), np.uint8)
        cv2.putText(h, name, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        header.append(h)
    body = [np.concatenate([cv2.resize(images[r], (cell, cell), interpolation=cv2.INTER_LINEAR)
                            for images in named.values()], axis=1) for r in range(len(picks))]
    return np.concatenate([np.concatenate(header, axis=1)] + body, axis=0)


def sample_grid(gen, data, count=8):
    """Held-out samples during training: drawn pose | real frame | generated."""
    picks = np.linspace(0, len(data) - 1, min(count, len(data))).round().astype(int)
    skeletons = data.skeletons[picks]
    real = rgb_chw_to_bgr(data.images[picks])
    return comparison_grid(skeletons, {"real": real, "generated": gen.generate_batch(skeletons)}, rows=len(picks))


def validation_l1(generate_batch, data, batch_size=256):
    """Mean absolute pixel error, in [0, 1] units, of a generator on a dataset."""
    total = 0.0
    for start in range(0, len(data), batch_size):
        fake = generate_batch(data.skeletons[start:start + batch_size]).astype(np.float32)
        real = rgb_chw_to_bgr(data.images[start:start + batch_size]).astype(np.float32)
        total += np.abs(fake - real).sum() / 255.0
    return float(total / (len(data) * data.images[0].numel()))  # a plain float: checkpoints hold no numpy


def fit(gen, videoSke, epochs, every, checkpoint, out, progress=True):
    """Train `gen` on the target's training split until it has done `epochs` epochs.

    The final `held_out` fraction of the frames (by time) is never trained on: the
    validation L1 on it is logged each epoch, next to nearest neighbour's on the same
    frames. After each epoch the full state goes to `checkpoint` (for --resume) and a
    sample grid to output/samples/; at the end the weights go to `out`. Ctrl-C saves
    the state and stops."""
    size = gen.config["image_size"]
    full_train_idx, val_idx = videoSke.split(gen.config["held_out"])
    train_idx = full_train_idx[::every]
    gen.config.update(target=str(videoSke.filename.name), target_frames=len(videoSke),
                      train_frames=len(train_idx), train_every=every,
                      # where the target stands in its frame, for the demo's pose normalisation
                      target_stats=videoSke.pose_stats())
    log.info("%s on %s: %d training frames (every %d of the first %d), %d held-out frames, device %s",
             gen.kind, videoSke.filename.name, len(train_idx), every, len(videoSke) - len(val_idx),
             len(val_idx), gen.device)
    train = PoseDataset(videoSke, train_idx, size, gen.render_poses, previous=gen.config.get("temporal", False))
    val = PoseDataset(videoSke, val_idx, size, gen.render_poses)
    nearest = GenNearest(videoSke, indices=full_train_idx)
    nn_l1 = validation_l1(lambda v: resize_all(nearest.generate_batch(v), size), val)
    log.info("held-out L1 of nearest neighbour (the baseline to beat): %.4f", nn_l1)

    rng = torch.Generator().manual_seed(gen.config["seed"] + gen.epoch)
    stem = Path(out).stem if out else gen.kind
    try:
        while gen.epoch < epochs:
            t0, sums, steps = time.perf_counter(), {}, 0
            bar = tqdm(train.batches(gen.config["batch_size"], gen.device, rng),
                       total=-(-len(train) // gen.config["batch_size"]), disable=not progress,
                       desc=f"epoch {gen.epoch + 1}/{epochs}", unit="batch", dynamic_ncols=True, leave=False)
            for batch in bar:
                losses = gen.train_step(batch)
                steps += 1
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
            bar.close()
            gen.end_epoch(train)
            gen.epoch += 1
            record = {"epoch": gen.epoch, **{k: v / max(steps, 1) for k, v in sums.items()},
                      "val_l1": validation_l1(gen.generate_batch, val), "nearest_val_l1": nn_l1,
                      "seconds": time.perf_counter() - t0}
            gen.history.append(record)
            log.info("epoch %d: %s", gen.epoch, "  ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k != "epoch"))
            if checkpoint:
                save_checkpoint(checkpoint, gen.state(training=True))
            SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(SAMPLES_DIR / f"{stem}_epoch{gen.epoch:03d}.png"), sample_grid(gen, val))
    except KeyboardInterrupt:
        if checkpoint:
            save_checkpoint(checkpoint, gen.state(training=True))
            log.info("interrupted during epoch %d: state saved to %s; rerun with --resume to continue",
                     gen.epoch + 1, checkpoint)
        raise
    if out:
        gen.save(out)
        log.info("saved %s (epoch %d)", out, gen.epoch)
    return gen.history


def train_main(gen_class, description, default_out, extra_args=None):
    """The command line of a trainer: parse, build or resume the generator, train, save."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("video", nargs="?", default="taichi1.mp4", help="target video (default: taichi1.mp4)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="total epochs to reach")
    parser.add_argument("--every", type=int, default=TRAIN_EVERY, help="train on every k-th training frame")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", help="where to write the trained model (default: models/<name>.pth)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from checkpoints/<name>.pth (its settings, not these, apply)")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when present)")
    if extra_args:
        extra_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.epochs < 1 or args.every < 1 or args.batch_size < 1:
        raise DanceError("--epochs, --every and --batch-size must be at least 1")
    options = {k: v for k, v in vars(args).items() if k not in
               ("video", "epochs", "every", "out", "resume", "device")}
    out = Path(args.out or MODELS_DIR / default_out(options))
    checkpoint = CHECKPOINT_DIR / out.name
    torch.set_num_threads(os.cpu_count() or 1)
    videoSke = VideoSkeleton(data_path(args.video))
    if args.resume:
        gen = gen_class.load(checkpoint, device=args.device)
        log.info("resuming %s from epoch %d", checkpoint, gen.epoch)
    else:
        gen = gen_class(device=args.device, **options)
    t0 = time.perf_counter()
    gen.train(videoSke, epochs=args.epochs, every=args.every, checkpoint=checkpoint, out=out)
    last = gen.history[-1] if gen.history else {}
    print(f"wrote {out}: {gen.epoch} epochs in {time.perf_counter() - t0:.0f} s this run, "
          f"held-out L1 {last.get('val_l1', float('nan')):.4f} (nearest neighbour "
          f"{last.get('nearest_val_l1', float('nan')):.4f})")
    return 0


def main():
    return train_main(GenVanillaNN, "Train GenVanillaNN (GEN_TYPE 2 or 3) on a target video.",
                      lambda opts: MODEL_FILES[opts["input"]],
                      lambda p: p.add_argument("--input", choices=list(NETWORKS), default="ske",
                                               help="the 26-vector (ske) or the drawn skeleton (image)"))


if __name__ == "__main__":
    cli_main(main)
