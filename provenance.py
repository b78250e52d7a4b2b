"""What a generator was made from and how: its record, kept apart from its settings.

A generator's `config` holds its settings (training_settings: what a person chooses); its
`record` holds the facts about what it was made from, written by the code and never chosen:

    target          the target video's file name (whose person it renders)
    target_digest   the sha256 of that file's content (caches.file_digest): another video of
                    the same name is told apart
    target_frames   the target's frames with a person; train_frames of them trained on, every
    train_every     train_every-th of the training split
    target_stats    where the target stands in its frame (Motion.pose_stats), for the demo's
                    pose normalisation
    crop_margin     how its crops were cut (Skeleton.square_box: the demo crops its source the
    crop_size       same way) and their side in pixels
    trained_with    {world_size, batch_per_rank, global_batch}: how it was trained (torchrun)
    pose_renderer   {name, version, channels}: how its networks saw skeletons (poses.PoseRenderer)

Every generator that knows its target records TARGET_KEYS (nearest neighbour too). A model
file keeps its record beside the config, under "record"; `check_record` runs on every load,
and `check_renderer` refuses a model whose networks saw skeletons drawn otherwise than this
program draws them. Files written before the record was kept apart hold it inside "config":
`split_config` parts them.
"""
import re

from generator_base import finite_number
from Motion import check_pose_stats, video_pose_stats
from project import DanceError
from VideoSkeleton import MAX_SIZE, MIN_SIZE

MAX_FRAMES = 10**8        # a recorded frame count beyond this (a month at 30 fps) is damage, not a video
MAX_EVERY = 10_000        # a training on every k-th frame beyond this had no frames to train on
TARGET_KEYS = ("target", "crop_margin", "crop_size", "target_stats")  # what every generator records
# Files written before renderers were versioned were all drawn by version 1 of theirs: versions
# began at 1, with the renderers as they were then.
UNVERSIONED_RENDERER = 1


def whole(low, high):
    """A test: a whole number (not a bool) from `low` to `high`."""
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _renderer(v):
    return (isinstance(v, dict) and set(v) == {"name", "version", "channels"} and isinstance(v["name"], str)
            and whole(1, 10**6)(v["version"]) and whole(1, 64)(v["channels"]))


# What each entry of a record must be, read back from a file: (test, in words).
RECORD_CHECKS = {
    "target": (lambda v: isinstance(v, str) and v != "", "a file name"),
    "target_digest": (lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) is not None,
                      "a sha256 digest"),
    "target_frames": (whole(0, MAX_FRAMES), f"a whole number of frames up to {MAX_FRAMES}"),
    "train_frames": (whole(0, MAX_FRAMES), f"a whole number of frames up to {MAX_FRAMES}"),
    "train_every": (whole(1, MAX_EVERY), f"a whole number from 1 to {MAX_EVERY}"),
    "target_stats": (lambda v: check_pose_stats(v) is v, "where the target stands (Motion.pose_stats)"),
    "crop_margin": (lambda v: finite_number(v) and 0 <= v < 2, "a margin from 0 to 2"),
    "crop_size": (whole(MIN_SIZE, MAX_SIZE), f"a side of {MIN_SIZE} to {MAX_SIZE} pixels"),
    "trained_with": (lambda v: isinstance(v, dict) and all(whole(1, 10**6)(v.get(k, 1)) for k in
                                                           ("world_size", "batch_per_rank", "global_batch")),
                     "how it was trained (world size, batch per rank)"),
    "pose_renderer": (_renderer, "a pose renderer's name, version and channels"),
}
RECORD_KEYS = tuple(RECORD_CHECKS)


def target_record(videoSke):
    """What every generator made from the target `videoSke` (a VideoSkeleton) records of it."""
    return {"target": str(videoSke.filename.name), "crop_margin": videoSke.settings["crop_margin"],
            "crop_size": videoSke.size, "target_stats": video_pose_stats(videoSke)}


def check_record(record, required=()):
    """`record` (a dict) holds the `required` keys, no unknown one, and each entry of its kind
    and in range (RECORD_CHECKS); a DanceError naming the first that is not ("...: train it
    again", the caller puts the file's name in front)."""
    if not isinstance(record, dict):
        raise DanceError("its record of what it was made from is damaged; train it again")
    missing = [k for k in required if k not in record]
    if missing:
        raise DanceError(f"does not record {', '.join(missing)}; it was not made by this version of the project: "
                         f"train it again")
    unknown = sorted(set(record) - set(RECORD_KEYS))
    if unknown:
        raise DanceError(f"its record holds {', '.join(map(str, unknown))}, which this version of the project does "
                         f"not know; train it again")
    for key, (ok, kind) in RECORD_CHECKS.items():
        try:
            good = key not in record or ok(record[key])
        except ValueError as e:  # a check that says what is wrong (check_pose_stats)
            raise DanceError(f"its record {key} is damaged: {e}; train it again") from None
        if not good:
            raise DanceError(f"its record {key} = {record[key]!r} must be {kind}; train it again")
    if record.get("train_frames", 0) > record.get("target_frames", MAX_FRAMES):
        raise DanceError(f"its record of {record['train_frames']} training frames of a target of "
                         f"{record['target_frames']} is damaged; train it again")
    return record


def check_renderer(record, renderer):
    """Refuse (DanceError) a model whose networks were trained on skeletons drawn by another
    renderer, or another version of it, than `renderer` (a poses.PoseRenderer): its pictures
    would silently come out wrong. A record without one predates versions (UNVERSIONED_RENDERER)."""
    recorded = record.get("pose_renderer") or {**renderer.record, "version": UNVERSIONED_RENDERER}
    if recorded != renderer.record:
        raise DanceError(f"its networks saw skeletons drawn by {recorded['name']} version {recorded['version']} "
                         f"({recorded['channels']} channels); this program draws them with {renderer.name} version "
                         f"{renderer.version} ({renderer.channels} channels): train it again, or use the version "
                         f"of the project it was made with")


def split_config(config):
    """(settings, record) of a model file's `config` written before the record was kept
    apart, when both lived in one dict."""
    settings = {k: v for k, v in config.items() if k not in RECORD_KEYS}
    return settings, {k: v for k, v in config.items() if k in RECORD_KEYS}
