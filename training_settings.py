"""The settings every learned generator shares, with their defaults and ranges, and the
facts `fit` records about a target beside them: the checks a value passes, read from a
flag or from a model file. Each generator's module adds its own settings and ranges."""
import re

from generator_base import finite_number
from Motion import check_pose_stats
from VideoReader import DanceError
from VideoSkeleton import HELD_OUT, MAX_SIZE, MIN_SIZE

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
MIN_TRAIN_FRAMES = 8      # a target needs at least this many training frames with a person ...
MIN_HELD_OUT = 2          # ... and this many held out, to be trained and validated at all
# How far into an epoch a training is: steps of this rank, and frames of the epoch's order done
# (counted in frames: a run resumed under another world size goes on from the same frame).
NO_PROGRESS = {"step": 0, "samples": 0, "sums": {}, "seconds": 0.0}
# What `fit` records about the target in the config, beside the settings above.
RECORDED_KEYS = ("target", "target_digest", "target_frames", "train_frames", "train_every", "target_stats",
                 "crop_margin", "crop_size", "trained_with")


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

