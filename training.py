"""The training loop every learned generator shares (`fit`), with its mixed precision.

A learned generator (GenVanillaNN, GenGAN, GenPix2Pix, ...) subclasses `LearnedGenerator`
(learned_generator.py) and supplies its networks (`build`), one optimisation step
(`train_step`) and which of its networks make images (`inference_net`). The rest is shared,
in modules of their own: the settings (training_settings.py), the dataset and epoch order
(pose_dataset.py), model and checkpoint files (checkpoints.py), torchrun's ranks and the
agreed stop (data_parallel.py), held-out scores and sample grids (held_out.py), the EMA
generator (ema.py), and the trainers' command line (trainer_cli.py):

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
DistributedDataParallel with batch norm computed over all ranks (data_parallel.distribute), so
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
(model, checkpoint) is claimed for the run (files.OutputClaim): a second trainer
with the same --out stops at once.
"""
import contextlib
import logging
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
from tqdm import tqdm

from checkpoints import save_checkpoint
from data_parallel import Ranks, StopRequest, distributed, ranks
from held_out import nearest_neighbour, sample_grid, validation_l1
from provenance import target_record
from pose_dataset import EpochOrder, PoseDataset, check_split
from training_settings import NO_PROGRESS
from files import IMAGE_SUFFIXES, check_output, write_image
from project import DanceError, PROJECT_DIR


SAMPLES_DIR = PROJECT_DIR / "output" / "samples"

log = logging.getLogger("dance")


def amp_dtype(device, enabled=True):
    """The mixed precision training runs in: bfloat16 autocast on a CUDA GPU that supports it,
    else None (full precision: the CPU, or a GPU without bfloat16, where float16 would need a
    gradient scaler the GAN losses were never tuned with)."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


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
    run = prepare(gen, videoSke, epochs, every, checkpoint, out, progress, amp)
    with StopRequest() as request:
        try:
            while gen.epoch < epochs:
                tally = train_epoch(run, request)
                if tally is None:
                    save_stopped(run, "stopped")
                    raise KeyboardInterrupt
                if run.where.main:
                    end_epoch(run, tally)
                if request.agreed(gen.device):
                    log.info("stopped after epoch %d%s", gen.epoch,
                             f": state saved to {checkpoint}; rerun with --resume to continue" if checkpoint else "")
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not request.requested:  # raised elsewhere (not by our handler): save what is whole
                save_stopped(run, "interrupted")
            raise
    if out and run.where.main:
        gen.save(out)
        log.info("saved %s (epoch %d)", out, gen.epoch)
    return gen.history


class TrainingRun(NamedTuple):
    """What one call of `fit` trains with, once its inputs are checked."""
    gen: object                 # the LearnedGenerator being trained
    train: PoseDataset          # its training frames (every `every`-th of the training split)
    sampler: EpochOrder         # the order this rank takes them in, epoch by epoch
    val: object                 # the held-out frames (a PoseDataset), rank 0 only, else None
    nn_l1: object               # nearest neighbour's held-out L1 (float), rank 0 only, else None
    epochs: int                 # the epoch count to reach
    checkpoint: object          # where the training state goes (a Path), or None
    stem: str                   # the sample grids' file names start with it
    where: Ranks                # this process's rank
    precision: object           # autocast's dtype, or None: full precision
    progress: bool              # show a progress bar (rank 0)


def prepare(gen, videoSke, epochs, every, checkpoint, out, progress, amp):
    """Check `fit`'s inputs and outputs, record the target in `gen.record` and build the
    datasets: the TrainingRun, its generator wrapped for data parallelism under torchrun."""
    size = gen.config["image_size"]
    where = ranks() if distributed() else Ranks()
    full_train_idx, val_idx = check_split(videoSke, gen.config["held_out"], every)
    train_idx = full_train_idx[::every]
    precision = amp_dtype(gen.device, amp)
    stem = Path(out).stem if out else gen.kind
    if where.main:  # what rank 0 writes, checked now rather than after the first epoch
        for path, suffixes, what in ((checkpoint, (".pth",), "checkpoint"), (out, (".pth",), "model"),
                                     (SAMPLES_DIR / f"{stem}_epoch{gen.epoch + 1:03d}.png", IMAGE_SUFFIXES,
                                      "sample grid")):
            if path is not None:
                check_output(path, suffixes, what, inputs=(videoSke.filename,))
    check_continues(gen, videoSke, train_idx)
    record_target(gen, videoSke, train_idx, every, where, precision)
    batch_size = gen.config["batch_size"]
    log.info("%s on %s: %d training frames (every %d of the first %d), %d held-out frames, device %s%s",
             gen.kind, videoSke.filename.name, len(train_idx), every, len(videoSke) - len(val_idx),
             len(val_idx), gen.device, f", {where.world_size} ranks x batch {batch_size} = global batch "
             f"{batch_size * where.world_size}" if where.world_size > 1 else "")
    train = PoseDataset(videoSke, train_idx, size, gen.render_poses,
                        keep_on=gen.device if gen.device.type == "cuda" else None)
    val = nn_l1 = None
    if where.main:  # validation and its baseline: rank 0's work alone
        val = PoseDataset(videoSke, val_idx, size, gen.render_poses)
        nn_l1 = validation_l1(nearest_neighbour(videoSke, full_train_idx, size), val)
        log.info("held-out L1 of nearest neighbour (the baseline to beat): %.4f", nn_l1)
    if where.world_size > 1:
        gen.distribute()
    return TrainingRun(gen, train, train.sampler(gen.config["seed"], where), val, nn_l1, epochs, checkpoint, stem,
                       where, precision, progress)


def check_continues(gen, videoSke, train_idx):
    """A DanceError unless a generator that has trained already goes on with the person it
    began with, and an interrupted epoch with the same training frames."""
    digest, recorded = videoSke.meta["digest"], gen.record.get("target_digest")
    if (gen.epoch or gen.partial["step"]) and recorded != digest:  # it goes on learning only the person it began with
        raise DanceError(f"{videoSke.filename}: {gen.kind} was trained on "
                         + (f"another video named {gen.record.get('target')} (other content)" if recorded else
                            "a video whose content it does not record")
                         + "; train a new one on this video")
    if gen.partial["samples"] and gen.record.get("train_frames") != len(train_idx):
        raise DanceError(f"{videoSke.filename}: the training stopped {gen.partial['samples']} frames into an epoch of "
                         f"{gen.record.get('train_frames')} training frames, and this one has {len(train_idx)} "
                         f"(another --every, or --held-out): resume with the same, or start afresh")


def record_target(gen, videoSke, train_idx, every, where, precision):
    """Write into `gen.record` what it is trained on and how (provenance.py)."""
    batch_size = gen.config["batch_size"]
    gen.record = {**target_record(videoSke), "target_digest": videoSke.meta["digest"], "target_frames": len(videoSke),
                  "train_frames": len(train_idx), "train_every": every,
                  # how it was trained: one process, or a torchrun job of world_size ranks
                  "trained_with": {"world_size": where.world_size, "batch_per_rank": batch_size,
                                   "global_batch": batch_size * where.world_size,
                                   "backend": dist.get_backend() if distributed() else None,
                                   "device": gen.device.type,
                                   "precision": str(precision or torch.float32).removeprefix("torch.")},
                  # how its networks see a skeleton: a model is refused by a program that draws it otherwise
                  "pose_renderer": gen.render_poses.record}


def train_epoch(run, request):
    """The rest of the current epoch, step by step (a resumed one from where it stopped, frame
    for frame). Returns the epoch's tally (loss sums, steps, its start on time.perf_counter),
    or None when a stop was asked for (after a whole step; gen.partial says how far it got)."""
    gen, sampler, batch_size = run.gen, run.sampler, run.gen.config["batch_size"]
    part = gen.partial
    t0, sums, steps = time.perf_counter() - part["seconds"], dict(part["sums"]), part["step"]
    sampler.set_epoch(gen.epoch, done=part["samples"])
    bar = tqdm(run.train.batches(batch_size, gen.device, sampler), initial=steps,
               total=steps + -(-len(sampler) // batch_size), disable=not (run.progress and run.where.main),
               desc=f"epoch {gen.epoch + 1}/{run.epochs}", unit="batch", dynamic_ncols=True, leave=False)
    autocast = (lambda: torch.autocast(gen.device.type, dtype=run.precision)) if run.precision else \
        contextlib.nullcontext
    for run_steps, batch in enumerate(bar, 1):
        with autocast():
            losses = gen.train_step(batch)
        steps += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        gen.partial = {"step": steps, "samples": sampler.after(run_steps, batch_size), "sums": dict(sums),
                       "seconds": time.perf_counter() - t0}
        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        if request.agreed(gen.device):
            bar.close()
            return None
    bar.close()
    gen.epoch += 1
    gen.partial = dict(NO_PROGRESS)
    return {"sums": sums, "steps": steps, "t0": t0}


def end_epoch(run, tally):
    """Rank 0's work after an epoch: the generator's hook, the held-out L1 beside nearest
    neighbour's, the log line, the checkpoint and the sample grid."""
    gen, steps = run.gen, tally["steps"]
    gen.end_epoch(run.train)
    record = {"epoch": gen.epoch, **{k: v / max(steps, 1) for k, v in tally["sums"].items()},
              "val_l1": validation_l1(gen.generate_batch, run.val), "nearest_val_l1": run.nn_l1,
              "seconds": time.perf_counter() - tally["t0"]}
    gen.history.append(record)
    log.info("epoch %d: %s", gen.epoch, "  ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k != "epoch"))
    if run.checkpoint:
        save_checkpoint(run.checkpoint, gen.state(training=True))
    write_image(SAMPLES_DIR / f"{run.stem}_epoch{gen.epoch:03d}.png", sample_grid(gen, run.val))


def save_stopped(run, message):
    """Save the training state of an epoch stopped part-way (rank 0, when there is a
    checkpoint) and say how far it got."""
    gen = run.gen
    if run.checkpoint and run.where.main:
        save_checkpoint(run.checkpoint, gen.state(training=True))
        log.info("%s during epoch %d (after %d steps, %d of its %d frames): state saved to %s; rerun with "
                 "--resume to continue", message, gen.epoch + 1, gen.partial["step"], gen.partial["samples"],
                 len(run.train), run.checkpoint)
