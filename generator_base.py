"""What every generator is: the one interface the demo, the evaluation and the tests use.

A generator turns a skeleton (in the coordinates of a person-centred crop) into an image
of its target person in that pose:

    image  = gen.generate(ske)               # a Skeleton -> (S, S, 3) BGR uint8
    images = gen.generate_batch(skeletons)   # (N, 33, 4) or (N, 26) -> (N, S, S, 3) BGR uint8
    gen.reset()                              # a cut in the source: forget any state kept between frames
    gen.config                               # a JSON-able dict that describes it, at least:
        target        the target video's file name (whose person it renders)
        image_size    S, the side of the images it makes
        crop_margin   the margin of the crops it was made from (Skeleton.square_box); the demo
                      crops its source the same way
        crop_size     the side, in pixels, of the target's crops it was made from
        target_stats  where the target stands in its frame (Motion.pose_stats), for the demo's
                      pose normalisation

A generator with `keeps_state` (GenLayered: which reference frames it used) treats the
frames of successive calls, and the rows of a batch, as one sequence in time, until reset().

Learned generators (learned_generator.LearnedGenerator) add `train`, `save` and the class method
`load`; their model files are named after the target and the generator, as
models/<target>_<name>.pth (models/taichi1_pix2pix.pth), so that each target has its own.
The generator table (generators.py) numbers them all and says how each is made.
"""
import numbers

import numpy as np

from Motion import check_pose_stats
from project import DanceError
from VideoSkeleton import MAX_SIZE, MIN_SIZE

# The config entries every generator that knows its target has (see the module docstring).
TARGET_KEYS = ("target", "image_size", "crop_margin", "crop_size", "target_stats")


class Generator:
    """The base of every generator: subclasses set `config` and implement `generate_batch`."""

    name = None     # its name in the generator table, in --gen-type and in its model files' names
    learned = False  # True: trained, and loaded from a model file (learned_generator.LearnedGenerator)
    config = {}
    defaults = {}   # its settings with their defaults (a learned generator's; none here)
    keeps_state = False  # True: a frame depends on the frames before it in the same sequence (see reset)

    def generate_batch(self, skeletons):
        """Skeletons in crop coordinates, (N, 33, 4) or (N, 26) -> (N, S, S, 3) BGR uint8 images."""
        raise NotImplementedError

    def generate(self, ske):
        """The target in the pose of `ske` (a Skeleton in crop coordinates): BGR uint8, S x S."""
        return self.generate_batch(np.asarray(ske.landmarks)[None])[0]

    @classmethod
    def model_name(cls, config):
        """Its name for `config` (a class may serve several rows of the table, by a setting)."""
        return cls.name

    def reset(self):
        """Forget whatever is kept from frame to frame (called at a gap or a cut in the source,
        and before each sequence an evaluation scores). Frame-by-frame generators keep nothing."""

    @property
    def target_name(self):
        """The target's name, for captions and file names: its video's stem."""
        return str(self.config.get("target", "target")).rsplit(".", 1)[0]


def finite_number(value):
    """A real, finite number (not a bool, not NaN or inf): what a numeric setting must be."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))


def check_config(config, where):
    """Raise a DanceError naming `where` unless `config` says, with values of the right kind,
    whose person it renders and how that person was framed (TARGET_KEYS)."""
    missing = [k for k in TARGET_KEYS if k not in config]
    if missing:
        raise DanceError(f"{where}: does not record {', '.join(missing)}; it was not made by this "
                         f"version of the project: train it again")
    if not (isinstance(config["target"], str) and finite_number(config["crop_margin"]) and 0 <= config["crop_margin"] < 2
            and all(isinstance(config[k], int) and not isinstance(config[k], bool) and MIN_SIZE <= config[k] <= MAX_SIZE
                    for k in ("image_size", "crop_size"))):
        raise DanceError(f"{where}: its target, crop or size settings are damaged "
                         f"(target {config['target']!r}, crop margin {config['crop_margin']!r}, image size "
                         f"{config['image_size']!r}, crop size {config['crop_size']!r}): train it again")
    try:
        check_pose_stats(config["target_stats"])
    except ValueError as e:
        raise DanceError(f"{where}: its record of where the target stands is damaged ({e}): train it again") from None
