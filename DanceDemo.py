"""Dance transfer demo: the target person performing the source person's motion.

For each frame of the source video, MediaPipe finds the source's skeleton, it is
cut to a square around the person (the same crop the target's dataset uses), and
a generator turns that skeleton into an image of the target person. The source
with its skeleton drawn and the generated target are shown side by side: in a
window when there is a display (`q` quits, `n` skips ahead), otherwise, or with
--output, written to an mp4.

    python DanceDemo.py --source data/karate1.mp4 --target data/taichi1.mp4 --gen-type nearest
"""
import argparse
import logging
import time
from enum import IntEnum
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from GenNearest import GenNearest
from Skeleton import PoseDetector, crop_person, crop_square
from VideoReader import PROJECT_DIR, DanceError, VideoReader, VideoWriter, check_file, cli_main, data_path
from VideoSkeleton import CROP_MARGIN, DEFAULT_SIZE, DETECT_MARGIN, VideoSkeleton, combine_images, has_display

DEFAULT_SOURCE = "karate1.mp4"
DEFAULT_TARGET = "taichi1.mp4"
PANEL = 256             # side of each half of the side-by-side picture, in pixels
SKIP_SECONDS = 3        # how far `n` jumps ahead in the window


class GEN_TYPE(IntEnum):
    """The generators, numbered as in the course code."""
    NEAREST = 1
    VANILLA_NN_SKE = 2
    VANILLA_NN_Image = 3
    GAN = 4


# GEN_TYPE -> generator class, each built from the target's VideoSkeleton and exposing generate(ske).
GENERATORS = {GEN_TYPE.NEAREST: GenNearest}


def parse_gen_type(value):
    """A GEN_TYPE from a number (1-4), a name (any case) or a GEN_TYPE; DanceError otherwise."""
    if isinstance(value, GEN_TYPE):
        return value
    text = str(value).strip()
    names = {t.name.lower(): t for t in GEN_TYPE}
    if text.isdigit() and int(text) in GEN_TYPE._value2member_map_:
        return GEN_TYPE(int(text))
    if text.lower() in names:
        return names[text.lower()]
    choices = ", ".join(f"{t.value}={t.name.lower()}" for t in GEN_TYPE)
    raise DanceError(f"unknown --gen-type {text!r}; choose one of {choices}")


def require_available(gen_type):
    """The GEN_TYPE, if this version has its generator; DanceError otherwise."""
    gen_type = parse_gen_type(gen_type)
    if gen_type not in GENERATORS:
        raise DanceError(f"--gen-type {gen_type.value} ({gen_type.name}) is not available yet; "
                         f"use --gen-type nearest")
    return gen_type


def make_generator(gen_type, target):
    """The generator of `gen_type` for a target VideoSkeleton."""
    return GENERATORS[require_available(gen_type)](target)


def label(image, text):
    """Write a small caption in the top-left corner, legible on any background."""
    org = (6, 18)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def placeholder(frame, size):
    """A clearly marked panel for a source frame with no person: the frame, letterboxed
    and darkened, inside a red border, with the words NO PERSON FOUND."""
    h, w = frame.shape[:2]
    side = max(h, w)
    box = ((w - side) / 2, (h - side) / 2, side)  # the whole frame, centred in a square
    panel = (crop_square(frame, box, size) * 0.35).astype(np.uint8)
    cv2.rectangle(panel, (0, 0), (size - 1, size - 1), (0, 0, 255), max(2, size // 64))
    text, font, scale = "NO PERSON FOUND", cv2.FONT_HERSHEY_SIMPLEX, size / 400
    (tw, th), _ = cv2.getTextSize(text, font, scale, 2)
    cv2.putText(panel, text, ((size - tw) // 2, (size + th) // 2), font, scale, (0, 0, 255), 2, cv2.LINE_AA)
    return panel


class DanceDemo:
    """Source video in, side-by-side frames of source and generated target out.

        demo = DanceDemo("data/karate1.mp4", GEN_TYPE.NEAREST, target="data/taichi1.mp4")
        demo.draw(output="output/demo.mp4")   # or demo.draw() for a window
    """

    def __init__(self, source, gen_type=GEN_TYPE.NEAREST, target=DEFAULT_TARGET, every=1,
                 size=DEFAULT_SIZE, panel=PANEL):
        self.gen_type = require_available(gen_type)  # fail before the (long) target extraction
        self.source = Path(source)
        with VideoReader(self.source) as probe:  # a bad source fails now, not after the target
            self.fps = probe.fps / every
        self.every, self.panel = int(every), int(panel)
        self.target = VideoSkeleton(target, size=size)
        self.generator = make_generator(self.gen_type, self.target)
        self.stats = {}

    def frames(self, video):
        """Yield one side-by-side picture per processed source frame."""
        name = self.gen_type.name.lower()
        with PoseDetector(tracking=True, margin=DETECT_MARGIN) as detector:
            for index, frame in video:
                ske = detector.detect(frame)
                if ske is None:
                    self.stats["missing"] += 1
                    left = placeholder(frame, self.panel)
                    right = placeholder(np.zeros_like(frame), self.panel)
                else:
                    crop, cropped, _ = crop_person(frame, ske, self.panel, CROP_MARGIN)
                    left = cropped.draw(crop)
                    right = cv2.resize(self.generator.generate(cropped), (self.panel, self.panel),
                                       interpolation=cv2.INTER_LINEAR)
                self.stats["frames"] += 1
                yield combine_images(label(left, f"source {index}"), label(right, f"target ({name})"))
                video.skip(self.every - 1)

    def draw(self, output=None):
        """Play in a window, or write `output` (an .mp4) when given or when there is no display.
        Returns a summary dict (frames, missing, output, fps)."""
        self.stats = {"frames": 0, "missing": 0, "output": None}
        t0 = time.perf_counter()
        with VideoReader(self.source) as video:
            total = -(-video.frame_count // self.every) if video.frame_count else None
            if output is None and has_display():
                self._show(video)
            else:
                if output is None:
                    output = PROJECT_DIR / "output" / (
                        f"{self.source.stem}_to_{self.target.filename.stem}_{self.gen_type.name.lower()}.mp4")
                with VideoWriter(output, self.fps) as writer:
                    for picture in tqdm(self.frames(video), total=total, unit="frame", desc="demo",
                                        dynamic_ncols=True):
                        writer.write(picture)
                    if self.stats["frames"] == self.stats["missing"]:
                        raise DanceError(f"{self.source}: no person found in any of its "
                                         f"{self.stats['frames']} frames processed; nothing written")
                self.stats["output"] = str(output)
        self.stats["fps"] = self.stats["frames"] / max(time.perf_counter() - t0, 1e-9)
        return self.stats

    def _show(self, video):
        delay = max(1, int(1000 / self.fps))
        for picture in self.frames(video):
            cv2.imshow("DanceDemo", picture)
            key = cv2.waitKey(delay) & 0xFF
            if key == ord("q"):
                break
            if key == ord("n"):
                video.skip(int(SKIP_SECONDS * self.fps * self.every))
        cv2.destroyAllWindows()


def main():
    parser = argparse.ArgumentParser(
        description="Make the target person perform the source person's motion.",
        epilog="Generator types: " + ", ".join(f"{t.value}={t.name.lower()}" for t in GEN_TYPE))
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"video of the motion (default: {DEFAULT_SOURCE})")
    parser.add_argument("--target", default=DEFAULT_TARGET, help=f"video of the person (default: {DEFAULT_TARGET})")
    parser.add_argument("--gen-type", default="nearest", help="generator, by number or name (default: nearest)")
    parser.add_argument("--output", help="write the side-by-side video to this .mp4 instead of showing it")
    parser.add_argument("--every", type=int, default=1, help="use every k-th source frame")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.every < 1:
        raise DanceError(f"--every must be at least 1 (got {args.every})")
    if args.output is not None and Path(args.output).suffix.lower() != ".mp4":
        raise DanceError(f"{args.output}: the output must be an .mp4 file")

    source = data_path(args.source)
    check_file(source)
    demo = DanceDemo(source, args.gen_type, target=data_path(args.target), every=args.every)
    s = demo.draw(args.output)
    where = f"wrote {s['output']}" if s["output"] else "played"
    print(f"{where}: {s['frames']} frames, {s['missing']} with no person found (marked), "
          f"{s['fps']:.1f} frames/s")
    return 0


if __name__ == "__main__":
    cli_main(main)
