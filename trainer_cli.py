"""The trainers' command line: every learned generator's module runs `train_main` with
its class, to parse, check every input and output, build or resume, train and save."""
import argparse
import contextlib
import logging
import os
import time

import torch
import torch.distributed as dist

from checkpoints import CHECKPOINT_DIR, _another_video, check_owners, model_path
from data_parallel import distributed, main_rank_first, ranks, start_ranks
from provenance import MAX_EVERY
from training_settings import (EPOCHS, MAX_EPOCHS, TRAIN_EVERY, TRAINING_DEFAULTS, check_settings,
                               setting_flags)
from files import OutputClaim, check_file, check_output
from project import DanceError, data_path
from VideoSkeleton import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, VideoSkeleton
from caches import file_digest

log = logging.getLogger("dance")


def train_main(gen_class):
    """The command line of a trainer: parse, check every input and output, build or resume
    the generator, train, save. Its flags for settings are derived from the generator's
    settings dataclass (training_settings.setting_flags)."""
    settings = {**TRAINING_DEFAULTS, **gen_class.defaults}
    parser = trainer_parser(gen_class)
    args = parser.parse_args()
    where = ranks()
    logging.basicConfig(level=logging.INFO if where.main else logging.WARNING, format="%(message)s")
    options = checked_options(gen_class, settings, args)
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


def add_setting_flags(parser, flags):
    """A flag for each setting of `flags` (training_settings.setting_flags): --batch-size for
    batch_size, of the setting's type, default and choices."""
    for name, kind, default, text, choices in flags:
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text,
                            **({"choices": choices} if choices else {}))


def trainer_parser(gen_class):
    """The argument parser of `gen_class`'s trainer: the flags every trainer has, those of
    the shared settings among them, then those of the generator's own settings."""
    parser = argparse.ArgumentParser(
        description=f"Train {gen_class.kind} on a target video: {gen_class.__doc__.strip().splitlines()[0]} "
                    f"The model goes to models/<target>_<name>.pth.")
    parser.add_argument("video", nargs="?", default="taichi1.mp4", help="target video (default: taichi1.mp4)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"total epochs to reach (default: {EPOCHS})")
    parser.add_argument("--every", type=int, default=TRAIN_EVERY,
                        help=f"train on every k-th training frame (default: {TRAIN_EVERY})")
    add_setting_flags(parser, setting_flags(gen_class.settings, shared=True))
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
    add_setting_flags(parser, setting_flags(gen_class.settings, shared=False))
    return parser


def checked_options(gen_class, settings, args):
    """The generator's settings the parsed `args` give (image_size from --size where the
    network is sized from the crops), each checked; a DanceError naming the first out of range."""
    for flag, value, low, high in (("epochs", args.epochs, 1, MAX_EPOCHS), ("every", args.every, 1, MAX_EVERY),
                                   ("size", args.size, MIN_SIZE, MAX_SIZE)):
        if not low <= value <= high:
            raise DanceError(f"--{flag} {value}: must lie between {low} and {high}")
    options = {name: getattr(args, name) for name, *_ in setting_flags(gen_class.settings, shared=True)
               + setting_flags(gen_class.settings, shared=False)}
    if gen_class.image_at_crop_size:
        if args.size < 16 or args.size & (args.size - 1):
            raise DanceError(f"--size {args.size}: {gen_class.kind}'s U-Net halves the image down to 4x4, so the "
                             f"size must be a power of two (64, 128, 256, 512)")
        options["image_size"] = args.size
    check_settings(settings, {**settings, **options}, gen_class.setting_ranges())
    return options


def _train(gen_class, args, options, parser, video, digest, out, checkpoint, device):
    """train_main's work once its inputs are checked: build or resume, train, report."""
    every = args.every
    if args.resume:
        if not checkpoint.exists():
            raise DanceError(f"{checkpoint}: no checkpoint to resume (the state an interrupted training of "
                             f"{out.name} leaves there); drop --resume to start one")
        gen = gen_class.load(checkpoint, device=device)
        if gen.record.get("target") not in (None, video.name):
            raise DanceError(f"{checkpoint}: continues a training on {gen.record['target']}, not on {video.name}; "
                             f"drop --resume to start one")
        if gen.record.get("target_digest") != digest:
            raise DanceError(f"{checkpoint}: continues a training on {_another_video(gen.record, video)}; train "
                             f"this video with another --out (its own checkpoint), or without --resume")
        changed = {k: v for k, v in options.items() if k != "image_size" and v != parser.get_default(k)
                   and gen.config.get(k) != v}
        if args.size != parser.get_default("size") and args.size != gen.record.get("crop_size"):
            changed["size"] = args.size
        # --every picks the training frames, and an interrupted epoch's progress counts them
        every = gen.record.get("train_every", args.every)
        if args.every != parser.get_default("every") and args.every != every:
            changed["every"] = args.every
        if changed:
            had = {**gen.config, "size": gen.record.get("crop_size"), "every": every}
            raise DanceError("--resume goes on with the checkpoint's settings; "
                             + ", ".join(f"--{k.replace('_', '-')} {v} differs from its {had.get(k)}"
                                         for k, v in changed.items())
                             + "; drop them, or drop --resume")
        log.info("resuming %s from epoch %d", checkpoint, gen.epoch)
    else:
        gen = gen_class(device=device, **options)
    size = gen.record.get("crop_size", args.size) if args.resume else args.size
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
