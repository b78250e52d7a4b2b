"""Choose between models (epochs of one training, or trainings with other settings) on poses
the evaluation never scores, so that `evaluate.py`'s figures stay free of that choice.

The validation poses are edits (poses.unseen_poses: every family, every bone kept) of
skeletons from the target's *training* split, with seed 1; `evaluate.py` edits held-out
skeletons with seed 0. Each model's frames are re-detected as evaluate.py re-detects them
(static MediaPipe with its border) and scored against the edited skeleton: detection rate and
joint error, all together and per family; the last column is the worst family.

    python validate.py checkpoints/a.pth checkpoints/b.pth [--target taichi1.mp4] [--bases 30]
"""
import argparse
import logging

import numpy as np

from checkpoints import model_kind
from metrics import detections, fidelity
from protocols import REDETECT_MARGIN, outputs
from report import cell
from generators import TABLE
from Motion import crop_landmarks
from pose_detector import PoseDetector
from poses import EDIT_FAMILIES, unseen_poses
from Skeleton import CROP_MARGIN
from project import DanceError, cli_main, data_path
from VideoSkeleton import VideoSkeleton

VALIDATION_SEED = 1   # evaluate.py's edits use seed 0 on held-out skeletons
BASES = 30            # training-split skeletons edited into every family


def validation_poses(videoSke, bases=BASES, seed=VALIDATION_SEED):
    """(poses (M, 33, 4) in crop coordinates, family of each): training-split skeletons of
    `videoSke` edited into every family, re-cropped as the demo crops."""
    train_idx, _ = videoSke.split()
    edited, families = unseen_poses(videoSke.skeletons[train_idx], bases, seed)
    size = videoSke.size
    return np.stack([crop_landmarks(lm, (size, size), CROP_MARGIN)[0] for lm in edited]), np.array(families)


def load_model(path):
    """The generator in a model or checkpoint file, of whichever learned generator of the table it holds."""
    kinds = {row.cls.kind: row.cls for row in TABLE if row.learned}
    kind = model_kind(path)
    if kind not in kinds:
        raise DanceError(f"{path}: holds {kind or 'no model of this project'}, not one of {', '.join(kinds)}")
    return kinds[kind].load(path)


def validate(paths, target, bases=BASES):
    """{path: {"all": fidelity, "families": {family: fidelity}}} of each model on the validation poses."""
    videoSke = VideoSkeleton(target)
    poses, families = validation_poses(videoSke, bases)
    results = {}
    with PoseDetector(tracking=False, margin=REDETECT_MARGIN) as detector:
        for path in paths:
            gen = load_model(path)
            found, errors = detections(outputs(gen, poses, videoSke.size, independent=True), poses, detector)
            results[str(path)] = {"all": fidelity(found, errors),
                                  "families": {f: fidelity(found, errors, families == f) for f in EDIT_FAMILIES}}
    return results


def main():
    parser = argparse.ArgumentParser(description="Score models on validation poses evaluate.py never scores.")
    parser.add_argument("models", nargs="+", help="model or checkpoint files (.pth)")
    parser.add_argument("--target", default="taichi1.mp4", help="their target video (default: taichi1.mp4)")
    parser.add_argument("--bases", type=int, default=BASES, help=f"skeletons edited (default: {BASES})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.bases < 1:
        raise DanceError("--bases must be at least 1")
    results = validate(args.models, data_path(args.target), args.bases)
    print("| model | all | " + " | ".join(EDIT_FAMILIES) + " | worst family |")
    print("|---|---|" + "---|" * len(EDIT_FAMILIES) + "---|")
    for path, r in results.items():
        worst = min(EDIT_FAMILIES, key=lambda f: r["families"][f]["detection_rate"])
        print(f"| {path} | {cell(r['all'])} | " + " | ".join(cell(r["families"][f]) for f in EDIT_FAMILIES)
              + f" | {worst} {cell(r['families'][worst])} |")
    return 0


if __name__ == "__main__":
    cli_main(main)
