"""Model and checkpoint files: where they live, writing and reading them safely, what a
file says it holds, and the refusal to write over a model or checkpoint of another video."""
import io
import os
from pathlib import Path

import torch

from files import atomic_path
from project import DanceError, PROJECT_DIR

MODELS_DIR = PROJECT_DIR / "models"           # what the demo loads: weights + config, small
CHECKPOINT_DIR = Path(os.environ.get("DANCE_CHECKPOINTS") or PROJECT_DIR / "checkpoints")  # for --resume (git-ignored)


def save_checkpoint(path, state):
    """torch.save atomically (see `atomic_path`): never a half-written checkpoint. It is
    serialised in memory first: torch.save writing to a full disk raises its own RuntimeError
    ("unexpected pos"), where a plain write raises the OSError that becomes one line."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())


def load_checkpoint(path, kind):
    """A checkpoint dict, loaded safely (weights_only) onto the CPU whatever device saved it."""
    path = Path(path)
    if not path.is_file():
        raise DanceError(f"{path}: no such model file; train one (python {kind}.py) or check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DanceError(f"{path}: not a readable checkpoint ({type(e).__name__}); "
                         f"it is damaged or not a model of this project: train it again") from None
    if not isinstance(state, dict) or "kind" not in state or not isinstance(state.get("config"), dict):
        raise DanceError(f"{path}: not a checkpoint of this project")
    if state["kind"] != kind:
        raise DanceError(f"{path}: holds a {state['kind']} model, not a {kind}; pick the matching file")
    return state


def model_path(target, name, models_dir=MODELS_DIR):
    """Where a target's model of a generator lives: models/<target>_<name>.pth (each target its
    own files, so that training on one person never writes over another's model)."""
    return Path(models_dir) / f"{Path(target).stem}_{name}.pth"


def model_record(path):
    """What a model or checkpoint file records of its target (provenance.py; a dict), or None
    when it is no readable model. A file written before the record was kept apart holds it
    in its config."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(state, dict):
        return None
    record = state.get("record") if "record" in state else state.get("config")
    return record if isinstance(record, dict) else None


def model_target(path):
    """The target video named in a model file's record, or None when it is no readable model."""
    return (model_record(path) or {}).get("target")


def _another_video(record, video):
    """Words for the video a model or checkpoint was trained on (its `record`), when its
    recorded content is not `video`'s (file_digest)."""
    if record.get("target_digest"):
        return f"another video named {record.get('target')} (its content differs from {video})"
    return (f"a video named {record.get('target')} whose content it does not record (made before contents were "
            f"recorded), so it cannot be told from {video}")


def check_owners(args, video, digest, out, checkpoint):
    """Refuse, before any work, to write over a model or checkpoint of another video: one of
    another name always (--out elsewhere); one of the same name but other (or unrecorded)
    content only with --replace-other-video, which the error names only outside models/
    (where the shipped models are: a model of taichi1 is never one option away from being
    replaced by someone else's). A model of this very video: with --replace (or --resume)."""
    if out.exists():
        record = model_record(out) or {}
        owner = record.get("target")
        if owner != video.name:
            raise DanceError(f"{out}: holds {'a model of ' + owner if owner else 'something that is not a model'}, "
                             f"not of {video.name}; write this one elsewhere (--out)")
        if record.get("target_digest") != digest:
            if not args.replace_other_video:
                shipped = out.resolve().is_relative_to(MODELS_DIR.resolve())
                raise DanceError(f"{out}: holds a model of {_another_video(record, video)}; write this one elsewhere "
                                 f"(--out FILE)"
                                 + ("" if shipped else ", or pass --replace-other-video to write over it"))
        elif not (args.replace or args.resume):
            raise DanceError(f"{out}: a model of {video.name} is already there; pass --replace to write over "
                             f"it, or --out FILE to keep both")
    # A fresh start writes over the checkpoint of its own video (one made before contents were
    # recorded, of this name, too: nothing tells it apart, and it is a by-product, not a model).
    if checkpoint.exists() and not args.resume and not args.replace_other_video:  # --resume: see _train
        record = model_record(checkpoint) or {}
        owner = record.get("target")
        if owner not in (None, video.name) or record.get("target_digest") not in (None, digest):
            raise DanceError(f"{checkpoint}: holds the training state of "
                             f"{_another_video(record, video) if owner == video.name else owner}; train this one "
                             f"with another --out (its checkpoint is named after it), or pass --replace-other-video "
                             f"to write over it")


def model_kind(path):
    """The generator class a model or checkpoint file says it holds ("GenWarp"), or None when
    it is no readable model."""
    try:
        kind = torch.load(path, map_location="cpu", weights_only=True).get("kind")
        return kind if isinstance(kind, str) else None
    except Exception:
        return None
