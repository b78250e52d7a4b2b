"""The generator table: every generator, numbered, with how it is made.

The demo (`--gen-type`), the evaluation (one row per generator), the tests and every
`--help` read this table, so adding a generator is one class (a module beside the others,
subclassing generator.Generator or training.LearnedGenerator) plus one row here.

    gen = make_generator("pix2pix")                              # models/DanceGenPix2Pix.pth
    gen = make_generator(GEN_TYPE.NEAREST, target="data/taichi1.mp4")
"""
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from generator import check_config
from GenGAN import GenGAN
from GenNearest import GenNearest
from GenPix2Pix import GenPix2Pix
from GenVanillaNN import GenVanillaNN
from training import MODELS_DIR
from VideoReader import DanceError
from VideoSkeleton import VideoSkeleton


@dataclass(frozen=True)
class Row:
    number: int           # GEN_TYPE, as in the course code
    name: str             # what --gen-type and the evaluation's rows call it
    cls: type             # a Generator
    description: str
    config: dict = field(default_factory=dict)  # the settings its model must have (one class, two rows)

    @property
    def model_file(self):
        """Its model's file name in models/, or None when it is made from the target's video."""
        return self.cls.model_file({**self.cls.defaults, **self.config})

    @property
    def learned(self):
        return self.model_file is not None


TABLE = (
    Row(1, "nearest", GenNearest, "the target frame whose pose is closest"),
    Row(2, "vanilla_nn_ske", GenVanillaNN, "the seed's ConvTranspose stack from the 26-vector, 64x64",
        {"input": "ske"}),
    Row(3, "vanilla_nn_image", GenVanillaNN, "a small U-Net from the skeleton drawn at 64x64",
        {"input": "image"}),
    Row(4, "gan", GenGAN, "type 2's network against a conditional DCGAN critic, plus L1"),
    Row(5, "pix2pix", GenPix2Pix, "a U-Net from a rich pose map, 128x128, trained pix2pixHD-style"),
)
DEFAULT = "pix2pix"  # the demo's generator: the best one measured by evaluate.py (README)

# The numbers as an enum, named as in the course code (VANILLA_NN_Image is its spelling).
GEN_TYPE = IntEnum("GEN_TYPE", [(row.name.upper(), row.number) for row in TABLE]
                   + [("VANILLA_NN_Image", 3)])
ROWS = {GEN_TYPE(row.number): row for row in TABLE}


def find(value):
    """The row of a generator given by number (1-5), name (any case), GEN_TYPE or Row."""
    if isinstance(value, Row):
        return value
    text = str(value.value if isinstance(value, GEN_TYPE) else value).strip()
    for row in TABLE:
        if text == str(row.number) or text.lower() == row.name:
            return row
    raise DanceError(f"unknown --gen-type {text!r}; choose one of {choices()}")


def parse_gen_type(value):
    """The GEN_TYPE of a generator given by number, name or GEN_TYPE; DanceError otherwise."""
    return GEN_TYPE(find(value).number)


def choices():
    """'1=nearest, 2=vanilla_nn_ske, ...': for help texts and error messages."""
    return ", ".join(f"{row.number}={row.name}" for row in TABLE)


def describe():
    """One line per generator, for --help."""
    return "\n".join(f"  {row.number} {row.name:<17} {row.description}"
                     + (f" ({row.model_file})" if row.learned else " (from --target)") for row in TABLE)


def make_generator(gen_type, target=None, model=None, frames=None):
    """The generator of `gen_type`, checked to know its target and how that was framed.

    A learned generator is loaded from `model` (default: its file in models/) and renders the
    person it was trained on; `target` and `frames` are not used. Nearest neighbour is made
    from `target` (a video path or a VideoSkeleton), searching `frames` of it (default: all)."""
    row = find(gen_type)
    if not row.learned:
        if model is not None:
            raise DanceError(f"--model is for the learned generators; {row.name} is made from the target "
                             f"video (--target)")
        if target is None:
            raise DanceError(f"--gen-type {row.name} needs the target video (--target)")
        videoSke = target if isinstance(target, VideoSkeleton) else VideoSkeleton(target)
        gen = row.cls(videoSke, indices=frames)
    else:
        model = Path(model) if model is not None else MODELS_DIR / row.model_file
        gen = row.cls.load(model)
        for key, wanted in row.config.items():
            if gen.config.get(key) != wanted:
                raise DanceError(f"{model}: is a model of {key} '{gen.config.get(key)}', "
                                 f"but --gen-type {row.name} needs {key} '{wanted}'")
        check_config(gen.config, model)
    return gen
