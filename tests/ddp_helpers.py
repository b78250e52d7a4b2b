"""Run in processes of their own by tests/test_distributed.py: one training step of a learned
generator, as one rank of a gloo process group of `world` ranks or as a plain process."""
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

import training
from data_parallel import unwrap
from generators import find
from GenVanillaNN import GenVanillaNN
from VideoSkeleton import VideoSkeleton

BATCH = 4          # frames per rank; the one-process run takes them all
IMAGE_SIZE = 64


def global_batch(world, seed=0):
    """The frames of one step of all ranks together: pose and image in [-1, 1], 26-vectors."""
    g = torch.Generator().manual_seed(seed)
    n = BATCH * world
    return {"pose": torch.rand((n, 3, IMAGE_SIZE, IMAGE_SIZE), generator=g) * 2 - 1,
            "image": torch.rand((n, 3, IMAGE_SIZE, IMAGE_SIZE), generator=g) * 2 - 1,
            "vector": torch.rand((n, 26), generator=g)}


def one_step(rank, world, gen_type, port, out, sync_batch_norm=True):
    """Build the generator (the same weights on every rank: the seed), take this rank's share
    of the global batch (all of it in a plain process), train one step, and have rank 0 save
    the trained networks' weights to `out`."""
    torch.set_num_threads(1)
    row = find(gen_type)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
        dist.init_process_group("gloo")
    try:
        settings = {"image_size": IMAGE_SIZE} if row.cls.image_at_crop_size else {}
        gen = row.cls(device="cpu", **{**row.config, **settings, "batch_size": BATCH})
        if world > 1:
            gen.distribute(sync_batch_norm)
        batch = {k: v[rank * BATCH:(rank + 1) * BATCH] if world > 1 else v for k, v in global_batch(2).items()}
        gen.train_step(batch)
        if rank == 0:
            torch.save({name: unwrap(getattr(gen, name)).state_dict() for name in gen.trained}, out)
    finally:
        if world > 1:
            dist.destroy_process_group()


def train_one_epoch(rank, world, port, video, checkpoint, samples_dir, seen, stop_at=None):
    """One epoch of GenVanillaNN (batch BATCH) on `video`, as one rank of `world` (or a plain
    process), from `checkpoint` when it is there (the state an interrupted training left);
    with `stop_at`, Ctrl-C as step `stop_at` of this run begins (on every rank: they stop
    together). The frames each step trained on go to <seen>-<rank>.json."""
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
        dist.init_process_group("gloo")
    try:
        training.SAMPLES_DIR = Path(samples_dir)
        gen = GenVanillaNN.load(checkpoint) if Path(checkpoint).exists() else \
            GenVanillaNN(device="cpu", batch_size=BATCH)
        frames, real = [], gen.train_step

        def step(batch):
            if len(frames) + 1 == stop_at:
                raise KeyboardInterrupt
            frames.append(batch["frame"].tolist())
            return real(batch)

        gen.train_step = step
        try:
            gen.train(VideoSkeleton(video, progress=False), epochs=1, every=1, checkpoint=checkpoint, progress=False)
        except KeyboardInterrupt:
            pass
        Path(f"{seen}-{rank}.json").write_text(json.dumps(frames))
    finally:
        if world > 1:
            dist.destroy_process_group()
