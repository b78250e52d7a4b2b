"""Harder driving clips, made from the footage at hand: other people's videos turned (a leaning
body), mirrored, and at half size in a frame twice as large (a dancer far from the camera).

The project's own cross-person clips are tai-chi-like and stand upright in the middle of
the frame; the poses people dance do not. Turning a whole clip by 20 or 35 degrees gives
every pose of it a lean the target never made (the figure keeps its proportions; the frame
grows to hold the turned picture, black around it, as a turned phone clip would look);
mirroring swaps left and right; half size tests a small, low-resolution person. Each clip is
written once, as H.264, into the cache folder (derived from footage that is never
committed), named by the source's content, and reused while that is unchanged.

    path = make_clip("data/karate1.mp4", "turned+35")   # cache/hard/karate1-<digest>-turned+35.mp4
    python hard_clips.py karate1.mp4 --variant turned+35 --out output/turned.mp4
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from caches import cache_dir, file_digest
from files import check_file, check_output
from project import DanceError, cli_main, data_path
from VideoReader import VideoReader, scan
from VideoWriter import VideoWriter

VARIANTS = ("turned+20", "turned-20", "turned+35", "turned-35", "mirrored", "half-size")
HALF = 0.5   # the half-size clip: the picture at this scale, centred in a frame of the source's size


def transform(frame, variant):
    """One frame (H, W, 3) BGR uint8 as the variant shows it. turned+A: turned A degrees
    clockwise (turned-A: anticlockwise) in a frame just large enough to hold it; mirrored:
    left and right swapped; half-size: half the size, centred in a grey frame of the source's size."""
    h, w = frame.shape[:2]
    if variant == "mirrored":
        return cv2.flip(frame, 1)
    if variant == "half-size":
        small = cv2.resize(frame, (max(1, round(w * HALF)), max(1, round(h * HALF))), interpolation=cv2.INTER_AREA)
        out = np.full_like(frame, 114)
        y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
        out[y:y + small.shape[0], x:x + small.shape[1]] = small
        return out
    if variant.startswith("turned"):
        angle = float(variant[len("turned"):])
        a = np.radians(angle)
        side_w = int(np.ceil(abs(w * np.cos(a)) + abs(h * np.sin(a)))) // 2 * 2  # even sides, for H.264
        side_h = int(np.ceil(abs(w * np.sin(a)) + abs(h * np.cos(a)))) // 2 * 2
        m = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)  # OpenCV's angle is anticlockwise
        m[:, 2] += ((side_w - w) / 2, (side_h - h) / 2)
        return cv2.warpAffine(frame, m, (side_w, side_h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    raise DanceError(f"unknown hard clip variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def clip_path(source, variant):
    """Where the variant of `source` is cached: cache/hard/<stem>-<content digest>-<variant>.mp4."""
    return cache_dir() / "hard" / f"{Path(source).stem}-{file_digest(source)[:12]}-{variant}.mp4"


def make_clip(source, variant, out=None, progress=False):
    """The variant of video `source` (see `transform`), written to `out` (default: its cached
    place, `clip_path`, reused when there), at the source's frame rate, each frame at its time, with its sound."""
    if variant not in VARIANTS:
        transform(np.zeros((8, 8, 3), np.uint8), variant)  # the one-line error for an unknown name
    source = Path(source)
    check_file(source)
    path = Path(out) if out else clip_path(source, variant)
    if out is None and path.exists():
        return path
    survey = scan(source)  # counted and timed: a stream may not know its length, a phone's rate varies
    with VideoReader(source) as video, VideoWriter(path, survey.fps, inputs=[source], audio=source,
                                                   cache=out is None) as writer:
        for _, frame in tqdm(video, total=survey.count, disable=not progress, unit="frame",
                             desc=f"{source.name} {variant}"):
            writer.write(transform(frame, variant), video.time)  # at its own time: in step with the sound
    return path


def main():
    parser = argparse.ArgumentParser(description="Make a harder driving clip from a video: turned, mirrored, "
                                                 "or at half size.")
    parser.add_argument("video", help="source video (a bare name is looked up in the data folder)")
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument("--out", required=True, help="the clip to write (.mp4)")
    args = parser.parse_args()
    video = data_path(args.video)
    check_output(args.out, (".mp4",), "video", inputs=[video])
    print(f"wrote {make_clip(video, args.variant, args.out, progress=True)}")
    return 0


if __name__ == "__main__":
    cli_main(main)
