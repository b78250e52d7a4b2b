"""What the page's lists offer: the generators of the table, the targets each can render,
and the path a target's name stands for. The page names targets only by these names, so no
path but the data folder's and models/'s is reachable from it (web_inputs does the same for
videos)."""
from pathlib import Path

from DanceDemo import DEFAULT_TARGET
from generators import TABLE, available_models, find
from project import DanceError, data_dir
from web_inputs import videos


def generator_choices(learned_only=False):
    """(label, name) for each generator of the table: its number and name (the description below it)."""
    return [(f"{row.number} {row.name}", row.name) for row in TABLE if row.learned or not learned_only]


def describe(gen):
    """What a generator is, in the table's words, and what it needs."""
    row = find(gen)
    return f"{row.description}; " + (f"a model per target (models/<target>_{row.name}.pth)" if row.learned
                                     else "searches the target's video, no model")


def targets(gen):
    """The targets a generator can render: for nearest neighbour, every video; for a learned
    one, every target with its model in models/ (the shipped taichi1 first)."""
    row = find(gen)
    if not row.learned:
        names = sorted({Path(n).stem for n in videos()})
    else:
        names = sorted(name[:-len(f"_{row.name}.pth")] for name in available_models(row))
    first = Path(DEFAULT_TARGET).stem
    return sorted(names, key=lambda n: (n != first, n))


def target_path(gen, target):
    """The video path DanceDemo is given for a target the page lists (`targets`): its video
    where there is one (nearest neighbour searches it; a model is checked against it), else
    a name in the data folder whose stem finds the model (models/<target>_<name>.pth)."""
    if target not in targets(gen):
        raise DanceError(f"{target}: not a target of {find(gen).name}; pick one from the list")
    found = sorted(path for name, path in videos().items() if Path(name).stem == target)
    return min(found, key=lambda p: p.suffix != ".mp4") if found else data_dir() / f"{target}.mp4"


def pick(value, choices):
    """`value` when it is still one of `choices` (labels and values, or values), else the first."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    return value if value in values else (values or [None])[0]


def evaluation_targets():
    """Every target an evaluation can be run for: any with a learned model, any video."""
    return sorted({t for row in TABLE if row.learned for t in targets(row.name)}
                  | {Path(n).stem for n in videos()}, key=lambda n: (n != Path(DEFAULT_TARGET).stem, n))
