"""The generator table: every generator, numbered, with how it is made.

The demo (`--gen-type`), the evaluation (one row per generator), the tests and every
`--help` read this table, so adding a generator is one class (a module beside the others,
subclassing generator_base.Generator or learned_generator.LearnedGenerator) plus one row here.

    gen = make_generator("pix2pix", target="data/taichi1.mp4")   # models/taichi1_pix2pix.pth
    gen = make_generator(GEN_TYPE.NEAREST, target="data/taichi1.mp4")
"""
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from checkpoints import MODELS_DIR, model_path
from GenGAN import GenGAN
from GenLayered import GenLayered
from GenNearest import GenNearest
from GenPix2Pix import GenPix2Pix
from GenVanillaNN import GenVanillaNN
from GenWarp import GenWarp
from project import DanceError, data_path
from provenance import TARGET_KEYS, check_record
from VideoSkeleton import VideoSkeleton
from caches import file_digest


@dataclass(frozen=True)
class Row:
    number: int           # GEN_TYPE, as in the course code
    cls: type             # a generator_base.Generator
    description: str
    config: dict = field(default_factory=dict)  # the settings its model must have (one class, two rows)

    @property
    def name(self):
        """What --gen-type, the evaluation's rows and its model files call it."""
        return self.cls.model_name({**self.cls.defaults, **self.config})

    @property
    def learned(self):
        """Loaded from a model file (models/<target>_<name>.pth), rather than made from the target's video."""
        return self.cls.learned

    @property
    def trainer(self):
        """The command that trains it."""
        options = "".join(f" --{k} {v}" for k, v in self.config.items())
        return f"python {self.cls.__module__}.py TARGET.mp4{options}"


TABLE = (
    Row(1, GenNearest, "the target frame whose pose is closest"),
    Row(2, GenVanillaNN, "the seed's ConvTranspose stack from the 26-vector, 64x64", {"input": "ske"}),
    Row(3, GenVanillaNN, "a small U-Net from the skeleton drawn at 64x64", {"input": "image"}),
    Row(4, GenGAN, "type 2's network against a conditional DCGAN critic, plus L1"),
    Row(5, GenPix2Pix, "a U-Net from a rich pose map, 128x128, trained pix2pixHD-style"),
    Row(6, GenWarp, "the target's own pixels moved part by part to the pose, fused by a U-Net GAN, 128x128"),
    Row(7, GenLayered, "person and background apart, each part moved from the frame showing it best, "
                       "selected by a U-Net GAN, 128x128"),
)
DEFAULT = "layered"  # the demo's generator: the best one measured by evaluate.py on poses the target never made (README)

# The numbers as an enum, named as in the course code (VANILLA_NN_Image is its spelling).
GEN_TYPE = IntEnum("GEN_TYPE", [(row.name.upper(), row.number) for row in TABLE] + [("VANILLA_NN_Image", 3)])


def find(value):
    """The row of a generator given by number, name (any case), GEN_TYPE or Row."""
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
                     + (f" (models/<target>_{row.name}.pth)" if row.learned else " (from --target)")
                     for row in TABLE)


def available_models(row, models_dir=MODELS_DIR):
    """The model files of a learned generator in `models_dir`, one per target trained."""
    return sorted(p.name for p in Path(models_dir).glob(f"*_{row.name}.pth"))


def target_model(row, target, models_dir=MODELS_DIR):
    """(path, target name) of the model of a learned generator for `target` (a video path or
    VideoSkeleton): models/<target>_<name>.pth; a DanceError listing what is there when missing."""
    if target is None:
        raise DanceError(f"--gen-type {row.name} needs a target (--target) or a model file (--model)")
    video = target.filename if isinstance(target, VideoSkeleton) else Path(target)
    path = model_path(video, row.name, models_dir)
    if not path.exists():
        there = available_models(row, models_dir)
        # The video as the trainer finds it: by name in the data folder, else by its path.
        named = video.name if data_path(video.name).resolve() == video.resolve() else str(video)
        missing = "" if video.exists() else f" ({video} is not there either)"
        raise DanceError(f"no {row.name} model of {video.stem} in {models_dir} ("
                         + (f"there: {', '.join(there)}" if there else "none there")
                         + f"); train one with {row.trainer.replace('TARGET.mp4', named)}{missing}, or pass --model")
    return path, video.stem


def make_generator(gen_type, target=None, model=None, frames=None, models_dir=MODELS_DIR):
    """The generator of `gen_type` for the person of `target` (a video path or VideoSkeleton),
    checked to know its target and how that was framed.

    A learned generator is loaded from `model`, by default the target's model in `models_dir`
    (models/<target>_<name>.pth); with `model` given it renders whoever that model was trained
    on. Nearest neighbour is made from the target video, searching `frames` of it (default: all)."""
    row = find(gen_type)
    if not row.learned:
        if model is not None:
            raise DanceError(f"--model is for the learned generators; {row.name} is made from the target "
                             f"video (--target)")
        if target is None:
            raise DanceError(f"--gen-type {row.name} needs the target video (--target)")
        videoSke = target if isinstance(target, VideoSkeleton) else VideoSkeleton(target)
        return row.cls(videoSke, indices=frames)
    named_for = None  # the target whose name the model file was found by
    if model is None:
        model, named_for = target_model(row, target, models_dir)
    gen = row.cls.load(model)
    for key, wanted in row.config.items():
        if gen.config.get(key) != wanted:
            raise DanceError(f"{model}: is a model of {key} '{gen.config.get(key)}', "
                             f"but --gen-type {row.name} needs {key} '{wanted}'")
    try:
        check_record(gen.record, required=TARGET_KEYS)
    except DanceError as e:
        raise DanceError(f"{model}: {e}") from None
    if named_for is not None and gen.target_name != named_for:
        raise DanceError(f"{model}: is named for {named_for} but renders {gen.record['target']} "
                         f"(renamed?); give it its own name, or pass it with --model")
    if named_for is not None:
        check_same_video(gen, target, model)
    return gen


def check_same_video(gen, target, model):
    """A model found by its target's name must be of that very video: the content it records
    (target_digest, the video file's sha256) is the target's, when both are known (the shipped
    models record none; a fresh clone has the models and not the videos)."""
    recorded = gen.record.get("target_digest")
    if isinstance(target, VideoSkeleton):
        video, digest = target.filename, target.meta["digest"]
    else:
        video = Path(target)
        digest = file_digest(video) if recorded and video.is_file() else None
    if recorded and digest and recorded != digest:
        raise DanceError(f"{model}: is a model of another video named {video.name} (its content differs from "
                         f"{video}); train one on this video (--out elsewhere), or pass a model with --model")
