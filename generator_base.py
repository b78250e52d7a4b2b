"""What every generator is: the one interface the demo, the evaluation and the tests use.

A generator turns a skeleton (in the coordinates of a person-centred crop) into an image
of its target person in that pose:

    image  = gen.generate(ske)               # a Skeleton -> (S, S, 3) BGR uint8
    images = gen.generate_batch(skeletons)   # (N, 33, 4), (N, 26) or Skeletons -> (N, S, S, 3) BGR uint8
    gen.reset()                              # a cut in the source: forget any state kept between frames
    gen.prepare()                            # a first frame's one-time costs paid now (a runtime's compile)
    gen.warm_up()                            # and whatever a live camera's first frames must not wait for
    gen.config                               # its settings, a JSON-able dict: at least image_size (S)
    gen.record                               # what it was made from, a JSON-able dict (provenance.py):
        target        the target video's file name (whose person it renders)
        crop_margin   the margin of the crops it was made from (Skeleton.square_box); the demo
                      crops its source the same way
        crop_size     the side, in pixels, of the target's crops it was made from
        target_stats  where the target stands in its frame (Motion.pose_stats), for the demo's
                      pose normalisation

`generate_batch` takes skeletons in any of the forms users hold them and converts them once
(Skeleton.full_landmarks) to the one format everything past it takes: (N, 33, 4) float32
landmarks, handed to the subclass's `make_images`.

A generator with `keeps_state` (GenLayered: which reference frames it used) treats the
frames of successive calls, and the rows of a batch, as one sequence in time, until reset().

Learned generators (learned_generator.LearnedGenerator) add `train`, `save` and the class method
`load`; their model files are named after the target and the generator, as
models/<target>_<name>.pth (models/taichi1_pix2pix.pth), so that each target has its own.
The generator table (generators.py) numbers them all and says how each is made.
"""
import numbers

import numpy as np

from Skeleton import STANDING, full_landmarks


class Generator:
    """The base of every generator: subclasses set `config` and `record` and implement `make_images`."""

    name = None     # its name in the generator table, in --gen-type and in its model files' names
    learned = False  # True: trained, and loaded from a model file (learned_generator.LearnedGenerator)
    config = {}
    record = {}
    defaults = {}   # its settings with their defaults (a learned generator's; none here)
    keeps_state = False  # True: a frame depends on the frames before it in the same sequence (see reset)

    def generate_batch(self, skeletons):
        """Skeletons in crop coordinates -> (N, S, S, 3) BGR uint8 images: landmark arrays
        (N, 33, 4), reduced 26-vectors (N, 26) or a sequence of Skeletons, converted once."""
        return self.make_images(full_landmarks(skeletons))

    def make_images(self, landmarks):
        """(N, 33, 4) float32 landmarks in crop coordinates -> (N, S, S, 3) BGR uint8 images."""
        raise NotImplementedError

    def generate(self, ske):
        """The target in the pose of `ske` (a Skeleton in crop coordinates): BGR uint8, S x S."""
        return self.generate_batch(np.asarray(ske.landmarks)[None])[0]

    def prepare(self):
        """Pay a first frame's one-time costs now (an inference runtime's export and compile, run
        once; buffers allocated) on a standing pose (Skeleton.STANDING), then forget it (`reset`).
        The demo does it while its source is opened (measured: the layered generator's first frame
        0.28-0.34 s with OpenVINO, the next 8-11 ms; pix2pix's 0.13-0.34 s)."""
        self.generate_batch(STANDING[None])
        self.reset()

    def warm_up(self):
        """`prepare`, and whatever else a live camera's first frames must not wait for (GenLayered:
        its whole bank drawn). A live demo calls it before its camera starts, so that no frame is
        dropped to them."""
        self.prepare()

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
        return str(self.record.get("target", "target")).rsplit(".", 1)[0]


def finite_number(value):
    """A real, finite number (not a bool, not NaN or inf): what a numeric setting must be."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))
