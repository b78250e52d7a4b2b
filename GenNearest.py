"""Nearest-neighbour generator (GEN_TYPE 1): answer a pose with the target frame whose pose
is closest.

It makes no new image, only picks one, so its frames are always sharp and
realistic but can only show poses the target actually held. It is the baseline
every learned generator has to beat.

Poses are compared after normalising away position and scale (poses.PoseIndex: each
skeleton is centred on the mean of its 13 joints and divided by their RMS spread), so a
source standing elsewhere in its frame, or smaller, still finds the target frame with the
same pose.

    python GenNearest.py [TARGET_VIDEO] [--source VIDEO]   # writes a few matches to output/
"""
import argparse

import cv2
import numpy as np

from generator_base import Generator
from nearest_frames import nearest_frames
from files import IMAGE_SUFFIXES, check_output, write_image
from project import DanceError, cli_main, data_path, evenly_spaced
from provenance import target_record
from Skeleton import full_landmarks
from VideoSkeleton import VideoSkeleton
from display import combine_images


class GenNearest(Generator):
    """Nearest neighbour over a target `VideoSkeleton` (the course code's `GenNeirest`).

    `indices` restricts the search to some of the target's frames (the training
    split, so that an evaluation never hands back the very frame it is scored on).
    """

    name = "nearest"

    def __init__(self, videoSkeTgt, indices=None):
        self.videoSkeletonTarget = videoSkeTgt
        self.indices = np.arange(len(videoSkeTgt)) if indices is None else np.asarray(indices)
        if len(self.indices) == 0:
            raise DanceError(f"{videoSkeTgt.filename}: no target frames to search")
        self.find = nearest_frames(videoSkeTgt, self.indices)
        self.config = {"image_size": videoSkeTgt.size, "frames": len(self.indices)}
        self.record = target_record(videoSkeTgt)

    def nearest(self, skes):
        """Indices (into the target VideoSkeleton) of the closest frame for each of `skes`
        (Skeletons, (N, 33, 4) landmarks or (N, 26) vectors)."""
        return self.find(full_landmarks(skes))

    def generate(self, ske):
        """The target frame (BGR uint8, size x size) whose pose is closest to `ske`."""
        return self.videoSkeletonTarget.readImage(self.nearest([ske])[0])

    def make_images(self, landmarks):
        """(N, 33, 4) landmarks -> their nearest target frames, (N, size, size, 3) BGR uint8."""
        return self.videoSkeletonTarget.images()[self.find(landmarks)]


GenNeirest = GenNearest  # the course code's name


def main():
    parser = argparse.ArgumentParser(description="Show nearest-neighbour matches of a source's poses in a target.")
    parser.add_argument("target", nargs="?", default="taichi1.mp4", help="target video (default: taichi1.mp4)")
    parser.add_argument("--source", default="karate1.mp4", help="source video (default: karate1.mp4)")
    parser.add_argument("--count", type=int, default=8, help="how many source poses to show")
    parser.add_argument("--output", default="output/nearest_matches.png", help="image to write")
    args = parser.parse_args()
    if args.count < 1:
        raise DanceError(f"--count must be at least 1 (got {args.count})")
    target_path, source_path = data_path(args.target), data_path(args.source)
    check_output(args.output, IMAGE_SUFFIXES, "image", inputs=(target_path, source_path))
    target = VideoSkeleton(target_path)
    source = VideoSkeleton(source_path)
    gen = GenNearest(target)
    picks = evenly_spaced(len(source), args.count)
    matches = gen.nearest([source.ske[i] for i in picks])
    rows = []
    for i, j in zip(picks, matches):
        src = cv2.resize(source.ske[i].draw(source.readImage(i).copy()), (target.size, target.size))
        rows.append(combine_images(src, target.ske[j].draw(target.readImage(j).copy())))
    write_image(args.output, np.concatenate(rows, axis=0))
    print(f"wrote {args.output}: {len(rows)} source poses (left) and their nearest target frames (right)")
    return 0


if __name__ == "__main__":
    cli_main(main)
