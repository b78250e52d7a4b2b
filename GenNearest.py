"""Nearest-neighbour generator: answer a pose with the target frame whose pose is closest.

It makes no new image, only picks one, so its frames are always sharp and
realistic but can only show poses the target actually held. It is the baseline
every learned generator has to beat.

Poses are compared after normalising away position and scale (each skeleton is
centred on the mean of its 13 joints and divided by their RMS spread, as in
Procrustes analysis without rotation), so a source standing elsewhere in its
frame, or smaller, still finds the target frame with the same pose.

    python GenNearest.py [TARGET_VIDEO] [--source VIDEO]   # writes a few matches to images/
"""
import argparse
from pathlib import Path

import numpy as np

from Skeleton import reduced_vectors
from VideoReader import DanceError, cli_main, data_path
from VideoSkeleton import VideoSkeleton, combine_images


def normalise_poses(vectors):
    """(..., 26) reduced skeletons -> (..., 13, 2) poses centred on their mean joint
    and scaled to unit RMS distance from it."""
    pts = np.asarray(vectors, dtype=np.float32).reshape(*np.shape(vectors)[:-1], -1, 2)
    centred = pts - pts.mean(axis=-2, keepdims=True)
    spread = np.sqrt((centred ** 2).sum(axis=-1).mean(axis=-1))[..., None, None]
    return centred / np.maximum(spread, 1e-6)


def pose_distances(query, bank):
    """Mean Euclidean joint distance between normalised poses: (Q, 13, 2) x (M, 13, 2) -> (Q, M)."""
    diff = query[:, None, :, :] - bank[None, :, :, :]
    return np.sqrt((diff ** 2).sum(axis=-1)).mean(axis=-1)


class GenNeirest:
    """Nearest neighbour over a target `VideoSkeleton` (the course code's name; also `GenNearest`).

    `indices` restricts the search to some of the target's frames (the training
    split, so that an evaluation never hands back the very frame it is scored on).
    """

    def __init__(self, videoSkeTgt, indices=None):
        self.videoSkeletonTarget = videoSkeTgt
        self.indices = np.arange(len(videoSkeTgt)) if indices is None else np.asarray(indices)
        if len(self.indices) == 0:
            raise DanceError(f"{videoSkeTgt.filename}: no target frames to search")
        self._bank = normalise_poses(videoSkeTgt.vectors()[self.indices])  # (M, 13, 2)

    def nearest(self, skes):
        """Indices (into the target VideoSkeleton) of the closest frame for each skeleton."""
        query = normalise_poses(np.stack([np.asarray(s, dtype=np.float32) for s in skes]))
        chunk = max(1, 2_000_000 // len(self._bank))  # queries at a time: ~100 MB of differences at most
        best = [pose_distances(query[i:i + chunk], self._bank).argmin(axis=1)
                for i in range(0, len(query), chunk)]
        return self.indices[np.concatenate(best)]

    def generate(self, ske):
        """The target frame (BGR uint8, size x size) whose pose is closest to `ske`."""
        return self.videoSkeletonTarget.readImage(self.nearest([ske])[0])

    def generate_batch(self, skeletons):
        """Skeletons (N, 26) or (N, 33, 4) -> their nearest target frames, (N, size, size, 3) BGR uint8."""
        return self.videoSkeletonTarget.images()[self.nearest(reduced_vectors(skeletons))]


GenNearest = GenNeirest


def main():
    parser = argparse.ArgumentParser(description="Show nearest-neighbour matches of a source's poses in a target.")
    parser.add_argument("target", nargs="?", default="taichi1.mp4", help="target video (default: taichi1.mp4)")
    parser.add_argument("--source", default="karate1.mp4", help="source video (default: karate1.mp4)")
    parser.add_argument("--count", type=int, default=8, help="how many source poses to show")
    parser.add_argument("--output", default="output/nearest_matches.png", help="image to write")
    args = parser.parse_args()
    import cv2
    target = VideoSkeleton(data_path(args.target))
    source = VideoSkeleton(data_path(args.source))
    gen = GenNearest(target)
    picks = np.linspace(0, len(source) - 1, min(args.count, len(source))).round().astype(int)
    matches = gen.nearest([source.ske[i] for i in picks])
    rows = []
    for i, j in zip(picks, matches):
        src = cv2.resize(source.ske[i].draw(source.readImage(i).copy()), (target.size, target.size))
        rows.append(combine_images(src, target.ske[j].draw(target.readImage(j).copy())))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.output, np.concatenate(rows, axis=0))
    print(f"wrote {args.output}: {len(rows)} source poses (left) and their nearest target frames (right)")
    return 0


if __name__ == "__main__":
    cli_main(main)
