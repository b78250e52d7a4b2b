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

Data parallelism: every trainer runs unchanged under torchrun, which starts one process per
device and says in the environment which is which (RANK, WORLD_SIZE, LOCAL_RANK):

    torchrun --nproc_per_node=2 GenPix2Pix.py taichi1.mp4 --epochs 10

Each rank joins the process group (nccl on CUDA, gloo on the CPU), takes its own shard of
the training frames each epoch (`EpochOrder`, reseeded by the epoch: the shards of all ranks
together are the one-process epoch's frames), and its networks train wrapped in
DistributedDataParallel with batch norm computed over all ranks (nets.distribute), so
`--batch-size` is per rank and the global batch is batch size x world size. Rank 0 alone
validates, logs, draws samples, averages the EMA generator and writes checkpoints and the
model. Several machines: torchrun's own rendezvous (see the README). How far into an epoch
a training got is counted in frames, so that a run stopped under one world size resumes
under another from the same frame.

Identity: a model or checkpoint records its target's content (`target_digest`, the sha256
of the video file), not only its name. --resume refuses a checkpoint of another video of
the same name, and a trainer writes over a model of another (or an unrecorded) video only
with --replace-other-video, which no error message suggests for a model in models/ (the
shipped ones record no digest: they stay unless that is asked for by name). Each output
(model, checkpoint) is claimed for the run (VideoReader.OutputClaim): a second trainer
with the same --out stops at once.
"""
import argparse
import contextlib
import io
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from caches import file_digest
from files import IMAGE_SUFFIXES, OutputClaim, atomic_path, check_file, check_output, write_image
from generator import Generator, finite_number
from Motion import check_pose_stats, video_pose_stats
from nets import (bgr_to_rgb_chw, distribute, images_to_tensor, pick_device, resize_all, rgb_chw_to_bgr,
                  tensor_to_images, unwrap)
from poses import PoseIndex, pose_images
from project import PROJECT_DIR, DanceError, data_path, evenly_spaced, note_stop, stop_signals
from Skeleton import reduced_vectors
from VideoSkeleton import DEFAULT_SIZE, HELD_OUT, MAX_SIZE, MIN_SIZE, VideoSkeleton

# ---- defaults: the settings every learned generator has (each one's module adds its own) ----
TRAINING_DEFAULTS = {
    "image_size": 64,     # side of the images the generator makes (the crops are resized to it)
    "batch_size": 32,
    "lr": 2e-4,
    "held_out": HELD_OUT,  # the final fraction of the target's frames, by time, never trained on
    "seed": 0,
}
# The range of each: (low, high), both allowed, or (low, high, "open"): neither. A value read from a
# model file or given as a flag outside it is refused (a negative seed crashes numpy's generator;
# a batch of 10**9 frames exhausts the memory before the first step).
TRAINING_RANGES = {
    "image_size": (MIN_SIZE, MAX_SIZE),
    "batch_size": (1, 4096),
    "lr": (0, 1, "open"),
    "held_out": (0, 1, "open"),
    "seed": (0, 2**32 - 1),
}
EPOCHS = 10
MAX_EPOCHS = 100_000      # --epochs beyond this is a typing slip (an epoch of 12,000 frames takes minutes)
TRAIN_EVERY = 2           # train on every k-th frame of the training split (neighbours are near-duplicates)
MAX_EVERY = 10_000        # --every beyond this leaves no video enough frames to train on
MAX_FRAMES = 10**8        # a recorded frame count beyond this (a month at 30 fps) is damage, not a video
ADAM_BETAS = (0.5, 0.999)  # DCGAN's and pix2pix's: a short memory of the gradient suits adversarial games
SAMPLE_ROWS = 8           # held-out poses in each epoch's sample grid
CALIBRATION_FRAMES = 512  # training frames whose batch-norm statistics an EMA generator is given
MIN_TRAIN_FRAMES = 8      # a target needs at least this many training frames with a person ...
MIN_HELD_OUT = 2          # ... and this many held out, to be trained and validated at all
# How far into an epoch a training is: steps of this rank, and frames of the epoch's order done
# (counted in frames: a run resumed under another world size goes on from the same frame).
NO_PROGRESS = {"step": 0, "samples": 0, "sums": {}, "seconds": 0.0}
# What `fit` records about the target in the config, beside the settings above.
RECORDED_KEYS = ("target", "target_digest", "target_frames", "train_frames", "train_every", "target_stats",
                 "crop_margin", "crop_size", "trained_with")
BACKENDS = {"cuda": "nccl", "cpu": "gloo"}  # torch.distributed's backend for each kind of device

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


# ---- data parallelism (torchrun) -------------------------------------------------------------
class Ranks(NamedTuple):
    """This process's place in a torchrun job; a plain run is rank 0 of 1."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def main(self):
        return self.rank == 0


def ranks():
    """The Ranks torchrun's environment gives this process (RANK, WORLD_SIZE, LOCAL_RANK, ...)."""
    env = os.environ
    return Ranks(*(int(env.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0),
                                                    ("LOCAL_WORLD_SIZE", 1))))


def start_ranks(device_name=None):
    """Under torchrun: join the process group (nccl on CUDA, gloo on the CPU) and return this
    rank's device, a GPU of its own; otherwise the device `pick_device` chooses."""
    where, device = ranks(), pick_device(device_name)
    if where.world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", where.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group(BACKENDS.get(device.type, "gloo"))
    return device


def distributed():
    """Whether this process is one rank of several (a torchrun job whose group it has joined)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def agree(flag, device):
    """True on every rank when `flag` is True on any: all ranks stop at the same step."""
    if not distributed():
        return flag
    votes = torch.tensor([float(flag)], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes.item())


@contextlib.contextmanager
def main_rank_first():
    """Rank 0 runs the block first (building a cache, say), the other ranks after it, reading."""
    if distributed() and not ranks().main:
        dist.barrier()
    yield
    if distributed() and ranks().main:
        dist.barrier()


def amp_dtype(device, enabled=True):
    """The mixed precision training runs in: bfloat16 autocast on a CUDA GPU that supports it,
    else None (full precision: the CPU, or a GPU without bfloat16, where float16 would need a
    gradient scaler the GAN losses were never tuned with)."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


# ---- data ------------------------------------------------------------------------------
class PoseDataset:
    """Frames of a VideoSkeleton as tensors kept in memory: skeletons (N, 33, 4) float,
    vectors (N, 26) float, images (N, 3, S, S) RGB uint8, poses (N, C, S, S) uint8: the
    skeletons as the generator sees them, drawn by `render` (skeletons, size) -> (N, S, S, C).
    `keep_on` a GPU keeps the tensors there, uint8, so that a batch is indexed and converted
    on the GPU with no copy from the host (taichi1's training frames: 0.5 GB at 128x128)."""

    def __init__(self, videoSke, indices, size, render=pose_images, keep_on=None):
        self.indices = np.asarray(indices)
        self.skeletons = videoSke.skeletons[self.indices]
        crops = resize_all(videoSke.images()[self.indices], size)
        self.vectors = torch.from_numpy(reduced_vectors(self.skeletons))
        self.images = bgr_to_rgb_chw(crops).contiguous()  # contiguous: batches index along N
        self.poses = bgr_to_rgb_chw(render(self.skeletons, size)).contiguous()
        if keep_on is not None:
            self.vectors, self.images, self.poses = (t.to(keep_on) for t in (self.vectors, self.images, self.poses))

    def __len__(self):
        return len(self.indices)

    def batch(self, idx, device):
        """A batch as float tensors on `device`: vector (B, 26), image and pose in [-1, 1]; and
        on the CPU the skeletons (B, 33, 4) and their frame numbers (B,)."""
        to_float = lambda t: t[idx].to(device).float().div(127.5).sub(1.0)  # noqa: E731
        return {"vector": self.vectors[idx].to(device), "image": to_float(self.images), "pose": to_float(self.poses),
                "skeleton": torch.from_numpy(self.skeletons[np.asarray(idx)]),
                "frame": torch.from_numpy(self.indices[np.asarray(idx)])}

    def sampler(self, seed, where=Ranks()):
        """The frames `where` (a rank) trains on each epoch (`EpochOrder`, call set_epoch)."""
        return EpochOrder(len(self), seed, where)

    def batches(self, batch_size, device, sampler):
        """Mini-batches of the sampler's frames for this epoch (the last, smaller one included)."""
        order = torch.tensor(list(sampler), dtype=torch.int64)
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start:start + batch_size], device)


class EpochOrder:
    """The frames a rank trains on in an epoch, from any point of it. The epoch's order is a
    shuffle fixed by seed + epoch (torch.randperm, as DistributedSampler's); `done` frames of
    it were trained on before (an interrupted epoch); the rest is padded to a multiple of the
    world size with its own first frames, and rank r takes every N-th frame from the r-th.
    So one process sees the whole order; N ranks, step by step, use the rest in order: after
    k steps of batch B every rank has trained on its share of the first k x B x N frames of
    the rest, whatever N was before (`after`)."""

    def __init__(self, count, seed, where=Ranks()):
        self.count, self.seed, self.where = count, seed, where
        self.epoch, self.done = 0, 0

    def set_epoch(self, epoch, done=0):
        """Go to epoch `epoch`, `done` frames of its order already trained on."""
        if not 0 <= done <= self.count:
            raise ValueError(f"{done} frames done of an epoch of {self.count}")
        self.epoch, self.done = epoch, done

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        rest = torch.randperm(self.count, generator=g).tolist()[self.done:]
        world = self.where.world_size
        pad = -len(rest) % world
        if rest and pad:
            rest += (rest * -(-pad // len(rest)))[:pad]
        return iter(rest[self.where.rank::world])

    def __len__(self):
        return -(-(self.count - self.done) // self.where.world_size)

    def after(self, steps, batch_size):
        """Frames of the epoch's order done once every rank has taken `steps` more steps."""
        return min(self.count, self.done + steps * batch_size * self.where.world_size)


# ---- checkpoints -----------------------------------------------------------------------
def save_checkpoint(path, state):
    """torch.save atomically (see `atomic_path`): never a half-written checkpoint. It is
    serialised in memory first: torch.save writing to a full disk raises its own RuntimeError
    ("unexpected pos"), where a plain write raises the OSError that becomes one line."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())


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


def check_settings(defaults, config, ranges=TRAINING_RANGES):
    """Each setting of the kind its default is (a whole number, a finite number, a string),
    and each numeric one in its range (`ranges`: key -> (low, high[, "open"])); a DanceError
    naming the first that is not."""
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
    for key, (low, high, *bounds) in ranges.items():
        value = config[key]
        if not (low < value < high if bounds == ["open"] else low <= value <= high):
            which = "strictly between" if bounds == ["open"] else "between"
            raise DanceError(f"setting {key} (--{key.replace('_', '-')}) = {value!r} must lie {which} {low} and "
                             f"{high}")


def _whole(low, high):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


# What each fact `fit` records about the target must be, read back from a file: (test, in words).
RECORDED_CHECKS = {
    "target": (lambda v: isinstance(v, str) and v != "", "a file name"),
    "target_digest": (lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) is not None,
                      "a sha256 digest"),
    "target_frames": (_whole(0, MAX_FRAMES), f"a whole number of frames up to {MAX_FRAMES}"),
    "train_frames": (_whole(0, MAX_FRAMES), f"a whole number of frames up to {MAX_FRAMES}"),
    "train_every": (_whole(1, MAX_EVERY), f"a whole number from 1 to {MAX_EVERY}"),
    "target_stats": (lambda v: check_pose_stats(v) is v, "where the target stands (Motion.pose_stats)"),
    "crop_margin": (lambda v: finite_number(v) and 0 <= v < 2, "a margin from 0 to 2"),
    "crop_size": (_whole(MIN_SIZE, MAX_SIZE), f"a side of {MIN_SIZE} to {MAX_SIZE} pixels"),
    "trained_with": (lambda v: isinstance(v, dict) and all(_whole(1, 10**6)(v.get(k, 1)) for k in
                                                           ("world_size", "batch_per_rank", "global_batch")),
                     "how it was trained (world size, batch per rank)"),
}


def check_recorded(config):
    """Each fact about the target that `config` records (RECORDED_KEYS), of its kind and in
    range; a DanceError naming the first that is not."""
    for key, (ok, kind) in RECORDED_CHECKS.items():
        try:
            good = key not in config or ok(config[key])
        except ValueError as e:  # a check that says what is wrong (check_pose_stats)
            raise DanceError(f"its record {key} is damaged: {e}; train it again") from None
        if not good:
            raise DanceError(f"its record {key} = {config[key]!r} must be {kind}; train it again")
    if config.get("train_frames", 0) > config.get("target_frames", MAX_FRAMES):
        raise DanceError(f"its record of {config['train_frames']} training frames of a target of "
                         f"{config['target_frames']} is damaged; train it again")


# ---- the base class --------------------------------------------------------------------
class LearnedGenerator(Generator):
    """A generator with networks trained on one target: `generate`, `generate_batch`, `reset`,
    `config` (Generator), plus `train`, `save` and `load`.

    Subclasses set:
      kind         the name written into its files (a file says which class it holds)
      name         its name in the generator table (or `model_name(config)` when it depends
                   on a setting): its model file is models/<target>_<name>.pth
      defaults     its own settings with their defaults (TRAINING_DEFAULTS come first)
      ranges       the range of each of its numeric settings (TRAINING_RANGES come first)
      net_inputs   what its generator network reads of a batch: "vector" and/or "pose"
      shipped      attributes (networks) a model file holds, enough to generate
      resumable    attributes a training checkpoint holds besides (optimisers, critics)
      trained      the networks train_step runs, wrapped for data parallelism under torchrun
      render_poses how a skeleton is drawn for its networks (poses.pose_images or pose_maps)
    and implement `build` (create the networks and optimisers), `train_step`, and, when
    the network that makes the images is not netG, `inference_net`.
    """

    kind = "LearnedGenerator"
    learned = True
    image_at_crop_size = False  # True: --size sets image_size too (the network is sized from it)
    defaults = {}
    ranges = {}
    net_inputs = ("vector",)
    shipped = ("netG",)
    resumable = ("optG",)
    trained = ("netG",)
    render_poses = staticmethod(pose_images)

    def __init__(self, device=None, **config):
        settings = {**TRAINING_DEFAULTS, **self.defaults}
        unknown = set(config) - set(settings) - set(RECORDED_KEYS)
        if unknown:
            raise DanceError(f"{self.kind} has no setting {', '.join(sorted(unknown))}; "
                             f"its settings are {', '.join(settings)}")
        self.config = {**settings, **config}
        check_settings(settings, self.config, self.setting_ranges())
        check_recorded(self.config)
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        torch.manual_seed(self.config["seed"])
        self.build()
        self.epoch, self.history, self.partial = 0, [], dict(NO_PROGRESS)
        self.where = Ranks()  # which rank of a torchrun job trains it (see `distribute`)

    @classmethod
    def setting_ranges(cls):
        """The range of each numeric setting: the shared ones', then the class's own."""
        return {**TRAINING_RANGES, **cls.ranges}

    def distribute(self, sync_batch_norm=True):
        """Wrap the trained networks for data-parallel training (nets.distribute), as this rank."""
        self.where = ranks()
        for name in self.trained:
            setattr(self, name, distribute(getattr(self, name), self.device, sync_batch_norm))

    def build(self):
        """Create the networks and optimisers this config describes (netG and optG at least)."""
        raise NotImplementedError

    @property
    def inference_net(self):
        """The network that makes the images at inference."""
        return unwrap(self.netG)

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

    def train(self, videoSke, epochs=EPOCHS, every=TRAIN_EVERY, checkpoint=None, out=None, progress=True,
              amp=True):
        """Train on the target's training split up to `epochs` epochs in all; see `fit`."""
        return fit(self, videoSke, epochs, every, checkpoint, out, progress, amp)

    # -- persistence --
    def state(self, training=True):
        """Everything to rebuild this generator (and, with training=True, to resume training)."""
        names = self.shipped + (self.resumable if training else ())
        state = {"kind": self.kind, "config": self.config, "epoch": self.epoch, "history": self.history,
                 **{name: unwrap(getattr(self, name)).state_dict() for name in names}}
        if training:
            state["partial"] = self.partial  # how far into the next epoch it got
        return state

    def load_state(self, state):
        for name in self.shipped:
            unwrap(getattr(self, name)).load_state_dict(state[name])
        for name in self.resumable:
            if name in state:
                unwrap(getattr(self, name)).load_state_dict(state[name])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.partial = self.check_progress(state.get("partial", NO_PROGRESS))

    def check_progress(self, partial):
        """How far into an epoch a checkpoint got, each number of its kind and in range (a
        ValueError otherwise). One written before progress was counted in frames has steps
        alone: the frames those steps took under the world size it was trained with."""
        train_frames = self.config.get("train_frames", MAX_FRAMES)
        step = partial["step"]
        if "samples" not in partial and _whole(0, MAX_FRAMES)(step):
            ran = self.config.get("trained_with") or {}
            batch = ran.get("batch_per_rank", self.config["batch_size"])
            partial = {**partial, "samples": min(train_frames, step * batch * ran.get("world_size", 1))}
        samples, sums, seconds = partial["samples"], partial["sums"], partial["seconds"]
        if not (_whole(0, MAX_FRAMES)(step) and _whole(0, train_frames)(samples) and (samples > 0) == (step > 0)
                and finite_number(seconds) and seconds >= 0 and isinstance(sums, dict)
                and all(isinstance(k, str) and finite_number(v) for k, v in sums.items())):
            raise ValueError(f"a damaged record of progress into the epoch (step {step!r}, frames {samples!r} of "
                             f"{train_frames}, seconds {seconds!r})")
        return {"step": step, "samples": samples, "sums": dict(sums), "seconds": float(seconds)}

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
    """Ctrl-C (or SIGTERM, SIGHUP: VideoReader.STOP_SIGNALS) during training asks the loop to
    stop after the current step, so that the state it saves is a whole number of steps and
    --resume continues exactly where it stopped (a second one stops at once, saving nothing
    more). Under torchrun each rank hears Ctrl-C
    from the terminal and again from torchrun, which then sends SIGTERM: there every signal is
    a request, and the ranks agree on the step to stop after (`agree`)."""

    def __enter__(self):
        self.requested = False
        self.signals = stop_signals()
        self._previous = {s: signal.getsignal(s) for s in self.signals}
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        note_stop(signum)
        if self.requested and not distributed():
            raise KeyboardInterrupt
        if not self.requested:
            log.info("stopping after this step (Ctrl-C again to stop at once)")
        self.requested = True

    def __exit__(self, *exc):
        if threading.current_thread() is threading.main_thread():
            for s, handler in self._previous.items():
                signal.signal(s, handler)


def check_split(videoSke, held_out, every):
    """(all training indices, held-out indices) of a target, or a DanceError when it has too few
    frames with a person to train on and to validate on."""
    train_idx, val_idx = videoSke.split(held_out)
    if len(val_idx) < MIN_HELD_OUT or len(train_idx[::every]) < MIN_TRAIN_FRAMES:
        raise DanceError(f"{videoSke.filename}: {len(videoSke)} frames with a person, {len(train_idx[::every])} to "
                         f"train on (--every {every}) and {len(val_idx)} held out; training needs at least "
                         f"{MIN_TRAIN_FRAMES} and {MIN_HELD_OUT}: use a longer video or a smaller --every")
    return train_idx, val_idx


def fit(gen, videoSke, epochs, every, checkpoint, out, progress=True, amp=True):
    """Train `gen` on the target's training split until it has done `epochs` epochs.

    The final `held_out` fraction of the frames (by time) is never trained on: the
    validation L1 on it is logged each epoch, next to nearest neighbour's on the same
    frames. After each epoch the full state goes to `checkpoint` (for --resume) and a
    sample grid to output/samples/; at the end the model goes to `out`. Ctrl-C stops
    after the current step and saves the state, with how far the epoch got: the data
    order of each epoch is fixed by the seed and the epoch, so a resumed run takes the
    same steps as one that was never interrupted. Under torchrun (see the module
    docstring) each rank trains on its shard and rank 0 alone validates and writes;
    `amp` allows mixed precision on a GPU (`amp_dtype`). Every output (checkpoint, model,
    sample grids) is checked before the first step."""
    size = gen.config["image_size"]
    where = ranks() if distributed() else Ranks()
    full_train_idx, val_idx = check_split(videoSke, gen.config["held_out"], every)
    train_idx = full_train_idx[::every]
    precision = amp_dtype(gen.device, amp)
    batch_size = gen.config["batch_size"]
    stem = Path(out).stem if out else gen.kind
    if where.main:  # what rank 0 writes, checked now rather than after the first epoch
        for path, suffixes, what in ((checkpoint, (".pth",), "checkpoint"), (out, (".pth",), "model"),
                                     (SAMPLES_DIR / f"{stem}_epoch{gen.epoch + 1:03d}.png", IMAGE_SUFFIXES,
                                      "sample grid")):
            if path is not None:
                check_output(path, suffixes, what, inputs=(videoSke.filename,))
    digest, recorded = videoSke.meta["digest"], gen.config.get("target_digest")
    if (gen.epoch or gen.partial["step"]) and recorded != digest:  # it goes on learning only the person it began with
        raise DanceError(f"{videoSke.filename}: {gen.kind} was trained on "
                         + (f"another video named {gen.config.get('target')} (other content)" if recorded else
                            "a video whose content it does not record")
                         + "; train a new one on this video")
    if gen.partial["samples"] and gen.config.get("train_frames") != len(train_idx):
        raise DanceError(f"{videoSke.filename}: the training stopped {gen.partial['samples']} frames into an epoch of "
                         f"{gen.config.get('train_frames')} training frames, and this one has {len(train_idx)} "
                         f"(another --every, or --held-out): resume with the same, or start afresh")
    gen.config.update(target=str(videoSke.filename.name), target_digest=digest, target_frames=len(videoSke),
                      train_frames=len(train_idx), train_every=every,
                      # where the target stands in its frame, for the demo's pose normalisation
                      target_stats=video_pose_stats(videoSke),
                      # how its crops were cut: the demo cuts its source's crops the same way
                      crop_margin=videoSke.settings["crop_margin"], crop_size=videoSke.size,
                      # how it was trained: one process, or a torchrun job of world_size ranks
                      trained_with={"world_size": where.world_size, "batch_per_rank": batch_size,
                                    "global_batch": batch_size * where.world_size,
                                    "backend": dist.get_backend() if distributed() else None,
                                    "device": gen.device.type,
                                    "precision": str(precision or torch.float32).removeprefix("torch.")})
    log.info("%s on %s: %d training frames (every %d of the first %d), %d held-out frames, device %s%s",
             gen.kind, videoSke.filename.name, len(train_idx), every, len(videoSke) - len(val_idx),
             len(val_idx), gen.device, f", {where.world_size} ranks x batch {batch_size} = global batch "
             f"{batch_size * where.world_size}" if where.world_size > 1 else "")
    train = PoseDataset(videoSke, train_idx, size, gen.render_poses,
                        keep_on=gen.device if gen.device.type == "cuda" else None)
    sampler = train.sampler(gen.config["seed"], where)
    if where.main:  # validation and its baseline: rank 0's work alone
        val = PoseDataset(videoSke, val_idx, size, gen.render_poses)
        nn_l1 = validation_l1(nearest_neighbour(videoSke, full_train_idx, size), val)
        log.info("held-out L1 of nearest neighbour (the baseline to beat): %.4f", nn_l1)
    if where.world_size > 1:
        gen.distribute()

    def stop(message):
        if checkpoint and where.main:
            save_checkpoint(checkpoint, gen.state(training=True))
            log.info("%s during epoch %d (after %d steps, %d of its %d frames): state saved to %s; rerun with "
                     "--resume to continue", message, gen.epoch + 1, gen.partial["step"], gen.partial["samples"],
                     len(train), checkpoint)

    autocast = (lambda: torch.autocast(gen.device.type, dtype=precision)) if precision else contextlib.nullcontext
    with StopRequest() as request:
        try:
            while gen.epoch < epochs:
                part = gen.partial  # a resumed epoch starts where the interrupted one stopped, frame for frame
                t0, sums, steps = time.perf_counter() - part["seconds"], dict(part["sums"]), part["step"]
                sampler.set_epoch(gen.epoch, done=part["samples"])
                bar = tqdm(train.batches(batch_size, gen.device, sampler), initial=steps,
                           total=steps + -(-len(sampler) // batch_size), disable=not (progress and where.main),
                           desc=f"epoch {gen.epoch + 1}/{epochs}", unit="batch", dynamic_ncols=True, leave=False)
                for run_steps, batch in enumerate(bar, 1):
                    with autocast():
                        losses = gen.train_step(batch)
                    steps += 1
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    gen.partial = {"step": steps, "samples": sampler.after(run_steps, batch_size), "sums": dict(sums),
                                   "seconds": time.perf_counter() - t0}
                    bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                    request.requested = agree(request.requested, gen.device)
                    if request.requested:
                        bar.close()
                        stop("stopped")
                        raise KeyboardInterrupt
                bar.close()
                gen.epoch += 1
                gen.partial = dict(NO_PROGRESS)
                if where.main:
                    gen.end_epoch(train)
                    record = {"epoch": gen.epoch, **{k: v / max(steps, 1) for k, v in sums.items()},
                              "val_l1": validation_l1(gen.generate_batch, val), "nearest_val_l1": nn_l1,
                              "seconds": time.perf_counter() - t0}
                    gen.history.append(record)
                    log.info("epoch %d: %s", gen.epoch, "  ".join(
                        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in record.items() if k != "epoch"))
                    if checkpoint:
                        save_checkpoint(checkpoint, gen.state(training=True))
                    write_image(SAMPLES_DIR / f"{stem}_epoch{gen.epoch:03d}.png", sample_grid(gen, val))
                request.requested = agree(request.requested, gen.device)
                if request.requested:
                    log.info("stopped after epoch %d%s", gen.epoch,
                             f": state saved to {checkpoint}; rerun with --resume to continue" if checkpoint else "")
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not request.requested:  # raised elsewhere (not by our handler): save what is whole
                stop("interrupted")
            raise
    if out and where.main:
        gen.save(out)
        log.info("saved %s (epoch %d)", out, gen.epoch)
    return gen.history


# ---- the trainers' command line ------------------------------------------------------------
def model_config(path):
    """The config of a model or checkpoint file (a dict), or None when it is no readable model."""
    try:
        config = torch.load(path, map_location="cpu", weights_only=True).get("config")
        return config if isinstance(config, dict) else None
    except Exception:
        return None


def model_target(path):
    """The target video named in a model file's config, or None when it is no readable model."""
    return (model_config(path) or {}).get("target")


def _another_video(config, video):
    """Words for the video a model or checkpoint `config` was trained on, when its recorded
    content is not `video`'s (file_digest)."""
    if config.get("target_digest"):
        return f"another video named {config.get('target')} (its content differs from {video})"
    return (f"a video named {config.get('target')} whose content it does not record (made before contents were "
            f"recorded), so it cannot be told from {video}")


def check_owners(args, video, digest, out, checkpoint):
    """Refuse, before any work, to write over a model or checkpoint of another video: one of
    another name always (--out elsewhere); one of the same name but other (or unrecorded)
    content only with --replace-other-video, which the error names only outside models/
    (where the shipped models are: a model of taichi1 is never one option away from being
    replaced by someone else's). A model of this very video: with --replace (or --resume)."""
    if out.exists():
        config = model_config(out) or {}
        owner = config.get("target")
        if owner != video.name:
            raise DanceError(f"{out}: holds {'a model of ' + owner if owner else 'something that is not a model'}, "
                             f"not of {video.name}; write this one elsewhere (--out)")
        if config.get("target_digest") != digest:
            if not args.replace_other_video:
                shipped = out.resolve().is_relative_to(MODELS_DIR.resolve())
                raise DanceError(f"{out}: holds a model of {_another_video(config, video)}; write this one elsewhere "
                                 f"(--out FILE)"
                                 + ("" if shipped else ", or pass --replace-other-video to write over it"))
        elif not (args.replace or args.resume):
            raise DanceError(f"{out}: a model of {video.name} is already there; pass --replace to write over "
                             f"it, or --out FILE to keep both")
    # A fresh start writes over the checkpoint of its own video (one made before contents were
    # recorded, of this name, too: nothing tells it apart, and it is a by-product, not a model).
    if checkpoint.exists() and not args.resume and not args.replace_other_video:  # --resume: see _train
        config = model_config(checkpoint) or {}
        owner = config.get("target")
        if owner not in (None, video.name) or config.get("target_digest") not in (None, digest):
            raise DanceError(f"{checkpoint}: holds the training state of "
                             f"{_another_video(config, video) if owner == video.name else owner}; train this one "
                             f"with another --out (its checkpoint is named after it), or pass --replace-other-video "
                             f"to write over it")


def model_kind(path):
    """The generator class a model or checkpoint file says it holds ("GenWarp"), or None when
    it is no readable model."""
    try:
        kind = torch.load(path, map_location="cpu", weights_only=True).get("kind")
        return kind if isinstance(kind, str) else None
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
                        help="write over a model of the same target video (same content) already at the output path")
    parser.add_argument("--replace-other-video", action="store_true",
                        help="write over a model or checkpoint at the output path that was trained on another video "
                             "of the same name, or on one whose content it does not record (the shipped models)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from checkpoints/<model file name> (its settings apply)")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when present; under torchrun each rank its own GPU)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"side of the target's crops in pixels (default: {DEFAULT_SIZE}); the generators "
                             f"that render at crop size (pix2pix, warp) make images of this size")
    parser.add_argument("--full-precision", action="store_true",
                        help="train in float32 on a GPU too (default: bfloat16 autocast where the GPU has it)")
    if extra_args:
        extra_args(parser)
    args = parser.parse_args()
    where = ranks()
    logging.basicConfig(level=logging.INFO if where.main else logging.WARNING, format="%(message)s")
    for flag, value, low, high in (("epochs", args.epochs, 1, MAX_EPOCHS), ("every", args.every, 1, MAX_EVERY),
                                   ("size", args.size, MIN_SIZE, MAX_SIZE)):
        if not low <= value <= high:
            raise DanceError(f"--{flag} {value}: must lie between {low} and {high}")
    options = {k: v for k, v in vars(args).items() if k not in
               ("video", "epochs", "every", "out", "replace", "replace_other_video", "resume", "device", "size",
                "full_precision")}
    if gen_class.image_at_crop_size:
        if args.size < 16 or args.size & (args.size - 1):
            raise DanceError(f"--size {args.size}: {gen_class.kind}'s U-Net halves the image down to 4x4, so the "
                             f"size must be a power of two (64, 128, 256, 512)")
        options["image_size"] = args.size
    check_settings(settings, {**settings, **options}, gen_class.setting_ranges())
    video = data_path(args.video)
    check_file(video)
    name = gen_class.model_name({**settings, **options})
    out = check_output(args.out or model_path(video, name), (".pth",), "model", inputs=(video,))
    checkpoint = check_output(CHECKPOINT_DIR / out.name, (".pth",), "checkpoint", inputs=(video, out))
    digest = file_digest(video)  # who the model is of: the video's content, not its name
    with contextlib.ExitStack() as claims:
        if where.main:  # rank 0 writes both: held from now until written, a second trainer stops here
            claims.enter_context(OutputClaim(out, "model"))
            claims.enter_context(OutputClaim(checkpoint, "checkpoint"))
        check_owners(args, video, digest, out, checkpoint)
        # The CPU's cores shared between the ranks on this machine (torchrun would give each one thread).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // where.local_world_size))
        device = start_ranks(args.device)
        try:
            return _train(gen_class, args, options, parser, video, digest, out, checkpoint, device)
        finally:
            if distributed():
                dist.destroy_process_group()


def _train(gen_class, args, options, parser, video, digest, out, checkpoint, device):
    """train_main's work once its inputs are checked: build or resume, train, report."""
    every = args.every
    if args.resume:
        if not checkpoint.exists():
            raise DanceError(f"{checkpoint}: no checkpoint to resume (the state an interrupted training of "
                             f"{out.name} leaves there); drop --resume to start one")
        gen = gen_class.load(checkpoint, device=device)
        if gen.config.get("target") not in (None, video.name):
            raise DanceError(f"{checkpoint}: continues a training on {gen.config['target']}, not on {video.name}; "
                             f"drop --resume to start one")
        if gen.config.get("target_digest") != digest:
            raise DanceError(f"{checkpoint}: continues a training on {_another_video(gen.config, video)}; train "
                             f"this video with another --out (its own checkpoint), or without --resume")
        changed = {k: v for k, v in options.items() if k != "image_size" and v != parser.get_default(k)
                   and gen.config.get(k) != v}
        if args.size != parser.get_default("size") and args.size != gen.config.get("crop_size"):
            changed["size"] = args.size
        # --every picks the training frames, and an interrupted epoch's progress counts them
        every = gen.config.get("train_every", args.every)
        if args.every != parser.get_default("every") and args.every != every:
            changed["every"] = args.every
        if changed:
            recorded = {"size": "crop_size", "every": "train_every"}
            raise DanceError("--resume goes on with the checkpoint's settings; "
                             + ", ".join(f"--{k.replace('_', '-')} {v} differs from its "
                                         f"{gen.config.get(recorded.get(k, k))}" for k, v in changed.items())
                             + "; drop them, or drop --resume")
        log.info("resuming %s from epoch %d", checkpoint, gen.epoch)
    else:
        gen = gen_class(device=device, **options)
    size = gen.config.get("crop_size", args.size) if args.resume else args.size
    with main_rank_first():  # a new target's skeletons are extracted once, by rank 0, then read
        videoSke = VideoSkeleton(video, size=size, progress=ranks().main)
    t0 = time.perf_counter()
    gen.train(videoSke, epochs=args.epochs, every=every, checkpoint=checkpoint, out=out,
              amp=not args.full_precision)
    last = gen.history[-1] if gen.history else {}
    if ranks().main:
        print(f"wrote {out}: {gen.epoch} epochs in {time.perf_counter() - t0:.0f} s this run, "
              f"held-out L1 {last.get('val_l1', float('nan')):.4f} (nearest neighbour "
              f"{last.get('nearest_val_l1', float('nan')):.4f})")
    return 0
