"""The settings every learned generator shares (TrainingSettings: one commented field each,
with its default, range and trainer flag) and the check a value passes, read from a flag or
from a model file. Each generator's module subclasses TrainingSettings with its own. What a
model was trained on is not a setting: it is its record (provenance.py)."""
from dataclasses import dataclass, field, fields

from generator_base import finite_number
from project import DanceError
from VideoSkeleton import HELD_OUT, MAX_SIZE, MIN_SIZE


def setting(default, low=None, high=None, open_range=False, flag=None, choices=None):
    """A field of a settings dataclass: its `default` (whose type is the setting's: whole
    number, finite number or text), its range (`low` to `high`, both allowed, or neither with
    `open_range`; None: any value of its type) and, where the trainers have a flag for it,
    that flag's help (`flag`, "{default}" standing for the default; "": a flag without help)
    and its `choices`."""
    meta = {}
    if low is not None:
        meta["range"] = (low, high, "open") if open_range else (low, high)
    if flag is not None:
        meta["flag"] = flag
    if choices is not None:
        meta["choices"] = choices
    return field(default=default, metadata=meta)


def with_default(settings, name, default):
    """The field `name` of the settings dataclass `settings` with another default, its range
    and flag kept (a generator that trains in smaller batches, say)."""
    return field(default=default, metadata=settings.__dataclass_fields__[name].metadata)


# A value read from a model file or given as a flag outside its range is refused (a negative
# seed crashes numpy's generator; a batch of 10**9 frames exhausts the memory before the first step).
@dataclass(frozen=True)
class TrainingSettings:
    """The settings every learned generator has; each generator's settings subclass this one.
    The trainers' flags (types, defaults, help), the range checks and the `config` a model file
    records are derived from the fields (`settings_defaults`, `settings_ranges`, `setting_flags`)."""
    image_size: int = setting(64, MIN_SIZE, MAX_SIZE)  # side of the images it makes (the crops are resized to it)
    batch_size: int = setting(32, 1, 4096, flag="frames per step (default: {default})")  # per rank under torchrun
    lr: float = setting(2e-4, 0, 1, open_range=True, flag="learning rate (default: {default})")  # Adam's step size
    held_out: float = setting(HELD_OUT, 0, 1, open_range=True)  # the final share of the frames, by time: never trained on
    seed: int = setting(0, 0, 2**32 - 1, flag="")  # of the weights' initialisation and the epochs' order


def settings_defaults(settings):
    """{name: default} of a settings dataclass, the shared settings first."""
    return {f.name: f.default for f in fields(settings)}


def settings_ranges(settings):
    """{name: (low, high[, "open"])} of the numeric settings of a settings dataclass that have a range."""
    return {f.name: f.metadata["range"] for f in fields(settings) if "range" in f.metadata}


def setting_flags(settings, shared=True):
    """The settings that have a trainer flag: (name, type, default, help, choices) each; the
    shared ones (TrainingSettings') with `shared`, else the generator's own."""
    shared_names = {f.name for f in fields(TrainingSettings)}
    return [(f.name, type(f.default), f.default, f.metadata["flag"].format(default=f.default) or None,
             f.metadata.get("choices")) for f in fields(settings)
            if "flag" in f.metadata and (f.name in shared_names) == shared]


TRAINING_DEFAULTS = settings_defaults(TrainingSettings)
TRAINING_RANGES = settings_ranges(TrainingSettings)
EPOCHS = 10
MAX_EPOCHS = 100_000      # --epochs beyond this is a typing slip (an epoch of 12,000 frames takes minutes)
TRAIN_EVERY = 2           # train on every k-th frame of the training split (neighbours are near-duplicates)
MIN_TRAIN_FRAMES = 8      # a target needs at least this many training frames with a person ...
MIN_HELD_OUT = 2          # ... and this many held out, to be trained and validated at all
# How far into an epoch a training is: steps of this rank, and frames of the epoch's order done
# (counted in frames: a run resumed under another world size goes on from the same frame).
NO_PROGRESS = {"step": 0, "samples": 0, "sums": {}, "seconds": 0.0}


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
