"""What every learned generator shares: its base class, the dataset, checkpoints, the
training loop and the trainers' command line.

A learned generator (GenVanillaNN, GenGAN, GenPix2Pix, ...) subclasses `LearnedGenerator`
and supplies its networks (`build`), one optimisation step (`train_step`) and which of its
networks make images (`inference_net`). Everything else is here, once:

    gen = GenPix2Pix(batch_size=8)                        # config: defaults, then these
    gen.train(VideoSkeleton("data/taichi1.mp4"), epochs=16, checkpoint="checkpoints/p.pth", out="models/p.pth")
    image = GenPix2Pix.load("models/p.pth").generate(ske)

`fit` trains on the target's training split only (VideoSkeleton.split: the final 15% of
the frames, by time, are held out), logs the held-out L1 after every epoch beside nearest
neighbour's on the same frames, saves the full training state every epoch and on Ctrl-C
(for --resume), a sample grid to output/samples/, and at the end the model alone.
"""
import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from generator import Generator, finite_number
from Motion import video_pose_stats
from nets import bgr_to_rgb_chw, images_to_tensor, pick_device, resize_all, rgb_chw_to_bgr, tensor_to_images
from poses import PoseIndex, pose_images
from Skeleton import reduced_vectors
from VideoReader import (PROJECT_DIR, DanceError, atomic_path, check_file, check_output, data_path, evenly_spaced,
                         write_image)
from VideoSkeleton import HELD_OUT, VideoSkeleton

# ---- defaults: the settings every learned generator has (each one's module adds its own) ----
TRAINING_DEFAULTS = {
    "image_size": 64,     # side of the images the generator makes (the crops are resized to it)
    "batch_size": 32,
    "lr": 2e-4,
    "held_out": HELD_OUT,  # the final fraction of the target's frames, by time, never trained on
    "seed": 0,
}
EPOCHS = 10
TRAIN_EVERY = 2           # train on every k-th frame of the training split (neighbours are near-duplicates)
ADAM_BETAS = (0.5, 0.999)  # DCGAN's and pix2pix's: a short memory of the gradient suits adversarial games
SAMPLE_ROWS = 8           # held-out poses in each epoch's sample grid
CALIBRATION_FRAMES = 512  # training frames whose batch-norm statistics an EMA generator is given
MIN_TRAIN_FRAMES = 8      # a target needs at least this many training frames with a person ...
MIN_HELD_OUT = 2          # ... and this many held out, to be trained and validated at all
NO_PROGRESS = {"step": 0, "sums": {}, "seconds": 0.0}  # how far into an epoch a training is
# What `fit` records about the target in the config, beside the settings above.
RECORDED_KEYS = ("target", "target_frames", "train_frames", "train_every", "target_stats", "crop_margin",
                 "crop_size")

# ---- folders ----
MODELS_DIR = PROJECT_DIR / "models"           # what the demo loads: weights + config, small
CHECKPOINT_DIR = Path(os.environ.get("DANCE_CHECKPOINTS") or PROJECT_DIR / "checkpoints")  # for --resume (git-ignored)
SAMPLES_DIR = PROJECT_DIR / "output" / "samples"

log = logging.getLogger("dance")


def adam(parameters, lr):
    """The optimiser of every network here: Adam with ADAM_BETAS."""
    return torch.optim.Adam(parameters, lr=lr, betas=ADAM_BETAS)


def step(optimiser, loss, inputs=None):
    """One gradient step of `optimiser` on `loss`; `inputs`: the only tensors that get
    gradients (a generator's parameters, when its loss runs through a critic)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward(inputs=inputs)
    optimiser.step()


# ---- data ------------------------------------------------------------------------------
class PoseDataset:
    """Frames of a VideoSkeleton as tensors kept in memory: skeletons (N, 33, 4) float,
    vectors (N, 26) float, images (N, 3, S, S) RGB uint8, poses (N, C, S, S) uint8: the
    skeletons as the generator sees them, drawn by `render` (skeletons, size) -> (N, S, S, C)."""

    def __init__(self, videoSke, indices, size, render=pose_images):
        self.indices = np.asarray(indices)
        self.skeletons = videoSke.skeletons[self.indices]
        crops = resize_all(videoSke.images()[self.indices], size)
        self.vectors = torch.from_numpy(reduced_vectors(self.skeletons))
        self.images = bgr_to_rgb_chw(crops).contiguous()  # contiguous: batches index along N
        self.poses = bgr_to_rgb_chw(render(self.skeletons, size)).contiguous()

    def __len__(self):
        return len(self.indices)

    def batch(self, idx, device):
        """A batch as float tensors on `device`: vector (B, 26), image and pose in [-1, 1]; and
        on the CPU the skeletons (B, 33, 4) and their frame numbers (B,)."""
        to_float = lambda t: t[idx].to(device).float().div(127.5).sub(1.0)  # noqa: E731
        return {"vector": self.vectors[idx].to(device), "image": to_float(self.images), "pose": to_float(self.poses),
                "skeleton": torch.from_numpy(self.skeletons[np.asarray(idx)]),
                "frame": torch.from_numpy(self.indices[np.asarray(idx)])}

    def batches(self, batch_size, device, generator=None, skip=0):
        """Shuffled mini-batches over the whole set (the last, smaller one included), less the
        first `skip` of them (already trained on before an interruption)."""
        order = torch.randperm(len(self), generator=generator)
        for start in range(skip * batch_size, len(self), batch_size):
            yield self.batch(order[start:start + batch_size], device)


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
    if not isinstance(state, dict) or "kind" not in state or not isinstance(state.get("config"), dict):
        raise DanceError(f"{path}: not a checkpoint of this project")
    if state["kind"] != kind:
        raise DanceError(f"{path}: holds a {state['kind']} model, not a {kind}; pick the matching file")
    return state


def model_path(target, name, models_dir=MODELS_DIR):
    """Where a target's model of a generator lives: models/<target>_<name>.pth (each target its
    own files, so that training on one person never writes over another's model)."""
    return Path(models_dir) / f"{Path(target).stem}_{name}.pth"


def check_settings(defaults, config):
    """Each setting of the kind its default is (a whole number, a finite number, a string),
    and the shared ones in range; a DanceError naming the first that is not."""
    for key, default in defaults.items():
        value = config[key]
        if isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = finite_number(value)
        if not ok:
            kind = "text" if isinstance(default, str) else "a whole number" if isinstance(default, int) else \
                "a finite number"
            raise DanceError(f"setting {key} = {value!r} must be {kind} (default {default!r})")
    for key, low, high in (("lr", 0, 1), ("held_out", 0, 1)):
        if not low < config[key] < high:
            raise DanceError(f"setting {key} = {config[key]!r} must lie between {low} and {high}")
    for key in ("batch_size", "image_size"):
        if config[key] < 1:
            raise DanceError(f"setting {key} = {config[key]!r} must be at least 1")


# ---- the base class --------------------------------------------------------------------
class LearnedGenerator(Generator):
    """A generator with networks trained on one target: `generate`, `generate_batch`, `reset`,
    `config` (Generator), plus `train`, `save` and `load`.

    Subclasses set:
      kind         the name written into its files (a file says which class it holds)
      name         its name in the generator table (or `model_name(config)` when it depends
                   on a setting): its model file is models/<target>_<name>.pth
      defaults     its own settings with their defaults (TRAINING_DEFAULTS come first)
      net_inputs   what its generator network reads of a batch: "vector" and/or "pose"
      shipped      attributes (networks) a model file holds, enough to generate
      resumable    attributes a training checkpoint holds besides (optimisers, critics)
      render_poses how a skeleton is drawn for its networks (poses.pose_images or pose_maps)
    and implement `build` (create the networks and optimisers), `train_step`, and, when
    the network that makes the images is not netG, `inference_net`.
    """

    kind = "LearnedGenerator"
    learned = True
    defaults = {}
    net_inputs = ("vector",)
    shipped = ("netG",)
    resumable = ("optG",)
    render_poses = staticmethod(pose_images)

    def __init__(self, device=None, **config):
        settings = {**TRAINING_DEFAULTS, **self.defaults}
        unknown = set(config) - set(settings) - set(RECORDED_KEYS)
        if unknown:
            raise DanceError(f"{self.kind} has no setting {', '.join(sorted(unknown))}; "
                             f"its settings are {', '.join(settings)}")
        self.config = {**settings, **config}
        check_settings(settings, self.config)
        self.device = pick_device(device)
        torch.manual_seed(self.config["seed"])
        self.build()
        self.epoch, self.history, self.partial = 0, [], dict(NO_PROGRESS)

    def build(self):
        """Create the networks and optimisers this config describes (netG and optG at least)."""
        raise NotImplementedError

    @property
    def inference_net(self):
        """The network that makes the images at inference."""
        return self.netG

    # -- inference --
    @torch.no_grad()
    def generate_batch(self, skeletons):
        """Skeletons in crop coordinates, (N, 33, 4) or (N, 26) -> (N, S, S, 3) BGR uint8 images."""
        net = self.inference_net.eval()
        batch = {"skeleton": torch.from_numpy(np.asarray(skeletons, dtype=np.float32))}  # as given: (N, 33, 4) or (N, 26)
        if "vector" in self.net_inputs:
            batch["vector"] = torch.from_numpy(reduced_vectors(skeletons)).to(self.device)
        if "pose" in self.net_inputs:
            batch["pose"] = images_to_tensor(self.render_poses(skeletons, self.config["image_size"])).to(self.device)
        return tensor_to_images(net(self.complete(batch)))

    def complete(self, batch, rng=None):
        """The batch with whatever the generator network reads beyond a dataset's fields
        (GenWarp: its reference frames, moved to the asked poses); `rng` draws what training
        draws (None at inference: deterministic). Most networks need nothing more."""
        return batch

    # -- training --
    def train_step(self, batch):
        """One optimisation step on a batch (PoseDataset.batch); returns the losses as floats."""
        raise NotImplementedError

    def end_epoch(self, data):
        """Called after each epoch with the training set, before validation (a hook)."""

    def train(self, videoSke, epochs=EPOCHS, every=TRAIN_EVERY, checkpoint=None, out=None, progress=True):
        """Train on the target's training split up to `epochs` epochs in all; see `fit`."""
        return fit(self, videoSke, epochs, every, checkpoint, out, progress)

    # -- persistence --
    def state(self, training=True):
        """Everything to rebuild this generator (and, with training=True, to resume training)."""
        names = self.shipped + (self.resumable if training else ())
        state = {"kind": self.kind, "config": self.config, "epoch": self.epoch, "history": self.history,
                 **{name: getattr(self, name).state_dict() for name in names}}
        if training:
            state["partial"] = self.partial  # how far into the next epoch it got
        return state

    def load_state(self, state):
        for name in self.shipped:
            getattr(self, name).load_state_dict(state[name])
        for name in self.resumable:
            if name in state:
                getattr(self, name).load_state_dict(state[name])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        partial = state.get("partial", NO_PROGRESS)
        self.partial = {"step": int(partial["step"]), "sums": {str(k): float(v) for k, v in partial["sums"].items()},
                        "seconds": float(partial["seconds"])}

    def save(self, path, training=False):
        """Write a checkpoint: the shipped networks and the config (and, with training=True,
        everything needed to go on training)."""
        save_checkpoint(path, self.state(training))

    @classmethod
    def load(cls, path, device=None):
        state = load_checkpoint(path, cls.kind)
        try:
            gen = cls(device=device, **state["config"])
        except DanceError as e:
            raise DanceError(f"{path}: {e}") from None
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise DanceError(f"{path}: its config does not describe a {cls.kind} ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120]}); train it again") from None
        try:
            gen.load_state(state)
            if not (isinstance(state["history"], list) and all(isinstance(h, dict) for h in state["history"])
                    and isinstance(state["epoch"], int) and state["epoch"] >= 0):
                raise ValueError("a damaged epoch count or training history")
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as e:
            raise DanceError(f"{path}: its weights or history do not fit the model its config describes "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:120]}); train it again") from None
        return gen


# ---- exponential moving average of a generator (pix2pixHD, StyleGAN) ---------------------
def ema_decay(decay, updates):
    """The decay of the `updates`-th update: min(decay, (1 + n) / (10 + n)). Early in training
    the average then follows the network instead of holding on to its random start (with 0.999
    from the first step, 384 steps leave 68% of the average at the initial weights: a
    few-minute training of a new target scored a held-out L1 of 0.155, twice nearest
    neighbour's); from about 9,000 updates on it is `decay` itself."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


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


def calibration_batches(data, batch_size, device, count=CALIBRATION_FRAMES):
    """Batches of `count` training frames spread evenly over `data`, for `recalibrate_batch_norm`."""
    picks = torch.from_numpy(evenly_spaced(len(data), count))
    return (data.batch(picks[s:s + batch_size], device) for s in range(0, len(picks), batch_size))


# ---- pictures and scores ---------------------------------------------------------------------
def comparison_grid(skeletons, columns, rows=SAMPLE_ROWS, cell=128):
    """A picture for eyes: `rows` poses spread over `skeletons` ((N, 26) or (N, 33, 4)), each
    row the drawn skeleton then every named column's image of that pose, under a header of
    the names. `columns` maps a name to images (N, H, W, 3) BGR uint8, one per skeleton."""
    picks = evenly_spaced(len(skeletons), rows)
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


def sample_grid(gen, data, count=SAMPLE_ROWS):
    """Held-out samples during training: drawn pose | real frame | generated."""
    picks = evenly_spaced(len(data), count)
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


def nearest_neighbour(videoSke, indices, size):
    """The baseline every trainer logs: for skeletons, the target's frame (among `indices`)
    with the closest pose (GenNearest's rule), resized to size x size."""
    index = PoseIndex(videoSke.vectors()[indices], labels=indices)
    return lambda skeletons: resize_all(videoSke.images()[index.nearest(skeletons)], size)


# ---- the training loop -------------------------------------------------------------------
class StopRequest:
    """Ctrl-C during training asks the loop to stop after the current step, so that the state
    it saves is a whole number of steps and --resume continues exactly where it stopped
    (a second Ctrl-C stops at once, saving nothing more)."""

    def __enter__(self):
        self.requested = False
        self._previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.info("stopping after this step (Ctrl-C again to stop at once)")

    def __exit__(self, *exc):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)


def check_split(videoSke, held_out, every):
    """(all training indices, held-out indices) of a target, or a DanceError when it has too few
    frames with a person to train on and to validate on."""
    train_idx, val_idx = videoSke.split(held_out)
    if len(val_idx) < MIN_HELD_OUT or len(train_idx[::every]) < MIN_TRAIN_FRAMES:
        raise DanceError(f"{videoSke.filename}: {len(videoSke)} frames with a person, {len(train_idx[::every])} to "
                         f"train on (--every {every}) and {len(val_idx)} held out; training needs at least "
                         f"{MIN_TRAIN_FRAMES} and {MIN_HELD_OUT}: use a longer video or a smaller --every")
    return train_idx, val_idx


def fit(gen, videoSke, epochs, every, checkpoint, out, progress=True):
    """Train `gen` on the target's training split until it has done `epochs` epochs.

    The final `held_out` fraction of the frames (by time) is never trained on: the
    validation L1 on it is logged each epoch, next to nearest neighbour's on the same
    frames. After each epoch the full state goes to `checkpoint` (for --resume) and a
    sample grid to output/samples/; at the end the model goes to `out`. Ctrl-C stops
    after the current step and saves the state, with how far the epoch got: the data
    order of each epoch is fixed by the seed and the epoch, so a resumed run takes the
    same steps as one that was never interrupted."""
    size = gen.config["image_size"]
    full_train_idx, val_idx = check_split(videoSke, gen.config["held_out"], every)
    train_idx = full_train_idx[::every]
    gen.config.update(target=str(videoSke.filename.name), target_frames=len(videoSke),
                      train_frames=len(train_idx), train_every=every,
                      # where the target stands in its frame, for the demo's pose normalisation
                      target_stats=video_pose_stats(videoSke),
                      # how its crops were cut: the demo cuts its source's crops the same way
                      crop_margin=videoSke.settings["crop_margin"], crop_size=videoSke.size)
    log.info("%s on %s: %d training frames (every %d of the first %d), %d held-out frames, device %s",
             gen.kind, videoSke.filename.name, len(train_idx), every, len(videoSke) - len(val_idx),
             len(val_idx), gen.device)
    train = PoseDataset(videoSke, train_idx, size, gen.render_poses)
    val = PoseDataset(videoSke, val_idx, size, gen.render_poses)
    nn_l1 = validation_l1(nearest_neighbour(videoSke, full_train_idx, size), val)
    log.info("held-out L1 of nearest neighbour (the baseline to beat): %.4f", nn_l1)

    stem = Path(out).stem if out else gen.kind
    batch_size = gen.config["batch_size"]

    def stop(message):
        if checkpoint:
            save_checkpoint(checkpoint, gen.state(training=True))
            log.info("%s during epoch %d (after %d steps): state saved to %s; rerun with --resume to "
                     "continue", message, gen.epoch + 1, gen.partial["step"], checkpoint)

    with StopRequest() as request:
        try:
            while gen.epoch < epochs:
                part = gen.partial  # a resumed epoch starts where the interrupted one stopped
                t0, sums, steps = time.perf_counter() - part["seconds"], dict(part["sums"]), part["step"]
                order = torch.Generator().manual_seed(gen.config["seed"] + gen.epoch)
                bar = tqdm(train.batches(batch_size, gen.device, order, skip=steps),
                           initial=steps, total=-(-len(train) // batch_size), disable=not progress,
                           desc=f"epoch {gen.epoch + 1}/{epochs}", unit="batch", dynamic_ncols=True, leave=False)
                for batch in bar:
                    losses = gen.train_step(batch)
                    steps += 1
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    gen.partial = {"step": steps, "sums": dict(sums), "seconds": time.perf_counter() - t0}
                    bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                    if request.requested:
                        bar.close()
                        stop("stopped")
                        raise KeyboardInterrupt
                bar.close()
                gen.end_epoch(train)
                gen.epoch += 1
                gen.partial = dict(NO_PROGRESS)
                record = {"epoch": gen.epoch, **{k: v / max(steps, 1) for k, v in sums.items()},
                          "val_l1": validation_l1(gen.generate_batch, val), "nearest_val_l1": nn_l1,
                          "seconds": time.perf_counter() - t0}
                gen.history.append(record)
                log.info("epoch %d: %s", gen.epoch, "  ".join(
                    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k != "epoch"))
                if checkpoint:
                    save_checkpoint(checkpoint, gen.state(training=True))
                write_image(SAMPLES_DIR / f"{stem}_epoch{gen.epoch:03d}.png", sample_grid(gen, val))
                if request.requested:
                    log.info("stopped after epoch %d%s", gen.epoch,
                             f": state saved to {checkpoint}; rerun with --resume to continue" if checkpoint else "")
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not request.requested:  # raised elsewhere (not by our handler): save what is whole
                stop("interrupted")
            raise
    if out:
        gen.save(out)
        log.info("saved %s (epoch %d)", out, gen.epoch)
    return gen.history


# ---- the trainers' command line ------------------------------------------------------------
def model_target(path):
    """The target video named in a model file's config, or None when it is no readable model."""
    try:
        config = torch.load(path, map_location="cpu", weights_only=True).get("config", {})
        return config.get("target")
    except Exception:
        return None


def train_main(gen_class, extra_args=None):
    """The command line of a trainer: parse, check every input and output, build or resume
    the generator, train, save. `extra_args(parser)` adds the generator's own options (each
    a key of its defaults)."""
    settings = {**TRAINING_DEFAULTS, **gen_class.defaults}
    parser = argparse.ArgumentParser(
        description=f"Train {gen_class.kind} on a target video: {gen_class.__doc__.strip().splitlines()[0]} "
                    f"The model goes to models/<target>_<name>.pth.")
    parser.add_argument("video", nargs="?", default="taichi1.mp4", help="target video (default: taichi1.mp4)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"total epochs to reach (default: {EPOCHS})")
    parser.add_argument("--every", type=int, default=TRAIN_EVERY,
                        help=f"train on every k-th training frame (default: {TRAIN_EVERY})")
    parser.add_argument("--batch-size", type=int, default=settings["batch_size"],
                        help=f"frames per step (default: {settings['batch_size']})")
    parser.add_argument("--lr", type=float, default=settings["lr"], help=f"learning rate (default: {settings['lr']})")
    parser.add_argument("--seed", type=int, default=settings["seed"])
    parser.add_argument("--out", help="where to write the trained model (default: models/<target>_<name>.pth)")
    parser.add_argument("--replace", action="store_true",
                        help="write over a model of the same target already at the output path")
    parser.add_argument("--resume", action="store_true",
                        help="continue from checkpoints/<model file name> (its settings apply)")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when present)")
    if extra_args:
        extra_args(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.epochs < 1 or args.every < 1 or args.batch_size < 1:
        raise DanceError("--epochs, --every and --batch-size must be at least 1")
    options = {k: v for k, v in vars(args).items() if k not in
               ("video", "epochs", "every", "out", "replace", "resume", "device")}
    check_settings(settings, {**settings, **options})
    video = data_path(args.video)
    check_file(video)
    name = gen_class.model_name({**settings, **options})
    out = check_output(args.out or model_path(video, name), (".pth",), "model", inputs=(video,))
    checkpoint = check_output(CHECKPOINT_DIR / out.name, (".pth",), "checkpoint", inputs=(video, out))
    if out.exists():  # never write over another target's model; over this target's only when asked
        owner = model_target(out)
        if owner != video.name:
            raise DanceError(f"{out}: holds {'a model of ' + owner if owner else 'something that is not a model'}, "
                             f"not of {video.name}; write this one elsewhere (--out)")
        if not (args.replace or args.resume):
            raise DanceError(f"{out}: a model of {video.name} is already there; pass --replace to write over "
                             f"it, or --out FILE to keep both")
    torch.set_num_threads(os.cpu_count() or 1)
    if args.resume:
        if not checkpoint.exists():
            raise DanceError(f"{checkpoint}: no checkpoint to resume (the state an interrupted training of "
                             f"{out.name} leaves there); drop --resume to start one")
        gen = gen_class.load(checkpoint, device=args.device)
        if gen.config.get("target") not in (None, video.name):
            raise DanceError(f"{checkpoint}: continues a training on {gen.config['target']}, not on {video.name}; "
                             f"drop --resume to start one")
        changed = {k: v for k, v in options.items() if v != parser.get_default(k) and gen.config.get(k) != v}
        if changed:
            raise DanceError("--resume goes on with the checkpoint's settings; "
                             + ", ".join(f"--{k.replace('_', '-')} {v} differs from its {gen.config.get(k)}"
                                         for k, v in changed.items()) + "; drop them, or drop --resume")
        log.info("resuming %s from epoch %d", checkpoint, gen.epoch)
    else:
        gen = gen_class(device=args.device, **options)
    videoSke = VideoSkeleton(video)
    t0 = time.perf_counter()
    gen.train(videoSke, epochs=args.epochs, every=args.every, checkpoint=checkpoint, out=out)
    last = gen.history[-1] if gen.history else {}
    print(f"wrote {out}: {gen.epoch} epochs in {time.perf_counter() - t0:.0f} s this run, "
          f"held-out L1 {last.get('val_l1', float('nan')):.4f} (nearest neighbour "
          f"{last.get('nearest_val_l1', float('nan')):.4f})")
    return 0
