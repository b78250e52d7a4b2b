"""Dance transfer demo: the target person performing the source person's motion.

For each frame of the source video, MediaPipe finds the source's skeleton; the
skeletons are smoothed over time (a median over 5 frames by default, so the output
runs 2 frames behind a live source; see Motion.py), cut to a square around the person
(the same crop the target's dataset uses), and a generator turns each into an image
of the target person. The source with its skeleton drawn and the generated target are
shown side by side: in a window when there is a display (`q` quits, `n` skips ahead),
otherwise, or with --output, written to an mp4.

When the source is someone else, the paper's global pose normalisation maps their
position and size into the target's frame, and the right half shows the target's
frame with the generated person standing there (--normalise off: the crop alone).

The source may also be a skeleton track (.npz, from `VideoSkeleton.py --save-track`):
then the left half shows the stick figure. With no videos at all the demo plays the
track shipped in data/, so a fresh clone runs out of the box.

    python DanceDemo.py --source data/karate1.mp4 --gen-type pix2pix
    python DanceDemo.py --source data/karate1.mp4 --target data/taichi1.mp4 --gen-type nearest
"""
import argparse
import functools
import logging
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from generators import GEN_TYPE  # noqa: F401  (the course code imports GEN_TYPE from here)
from generators import DEFAULT, describe, find, make_generator
from Motion import SMOOTHERS, normalised_box, smooth_stream, video_pose_stats
from Skeleton import PoseDetector, Skeleton, check_frame_size, crop_person, crop_square
from VideoReader import (PROJECT_DIR, DanceError, VideoReader, VideoWriter, check_file, check_fps, check_output,
                         cli_main, data_path)
from VideoSkeleton import VideoSkeleton, combine_images, has_display, probe_detect_margin

DEFAULT_SOURCE = "karate1.mp4"
DEFAULT_TARGET = "taichi1.mp4"
EMBEDDED_TRACK = PROJECT_DIR / "data" / "karate1_track.npz"  # skeletons only: the demo runs without videos
PANEL = 256             # side of each half of the side-by-side picture, in pixels
SKIP_SECONDS = 3        # how far `n` jumps ahead in the window
DEFAULT_SMOOTHER = "median"   # see Motion.py and the README's measurements
NORMALISE_CHOICES = ("auto", "on", "off")

log = logging.getLogger("dance")


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
    panel = (crop_square(frame, ((w - side) / 2, (h - side) / 2, side), size) * 0.35).astype(np.uint8)
    cv2.rectangle(panel, (0, 0), (size - 1, size - 1), (0, 0, 255), max(2, size // 64))
    text, font, scale = "NO PERSON FOUND", cv2.FONT_HERSHEY_SIMPLEX, size / 400
    (tw, th), _ = cv2.getTextSize(text, font, scale, 2)
    cv2.putText(panel, text, ((size - tw) // 2, (size + th) // 2), font, scale, (0, 0, 255), 2, cv2.LINE_AA)
    return panel


def letterbox(frame_size, panel):
    """(k, ox, oy): a frame of `frame_size` (w, h) shown in a panel x panel square is scaled by
    k and shifted by (ox, oy), black bars filling the rest."""
    tw, th = frame_size
    k = panel / max(tw, th)
    return k, (panel - k * tw) / 2, (panel - k * th) / 2


def panel_transform(box, frame_size, panel):
    """(scale, dx, dy) taking a crop's own coordinates ([0, 1] across the crop whose square is
    `box` = x0, y0, side in the pixels of a frame of `frame_size`) to the pixels of a panel
    showing that frame letterboxed into panel x panel."""
    x0, y0, side = box
    k, ox, oy = letterbox(frame_size, panel)
    return k * side, k * x0 + ox, k * y0 + oy


def place_crop(crop, box, frame_size, panel):
    """A frame of `frame_size` (w, h), letterboxed into a panel x panel square, with `crop`
    standing in its square `box` (x0, y0, side, frame pixels): what the demo's right panel
    shows. Beyond the crop its edge pixels are extended; outside the frame is black."""
    scale, dx, dy = panel_transform(box, frame_size, panel)
    a = scale / crop.shape[0]
    m = np.array([[a, 0, dx], [0, a, dy]], np.float32)
    out = cv2.warpAffine(crop, m, (panel, panel), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    (tw, th), (k, ox, oy) = frame_size, letterbox(frame_size, panel)
    mask = np.zeros(out.shape[:2], bool)
    mask[int(round(oy)):int(round(oy + k * th)), int(round(ox)):int(round(ox + k * tw))] = True
    out[~mask] = 0  # letterbox bars: outside the target's frame
    return out


def load_track(path):
    """A skeleton track written by `VideoSkeleton.py --save-track`: a dict of arrays."""
    check_file(path, "skeleton track")
    try:
        with np.load(path, allow_pickle=False) as z:
            track = {k: z[k] for k in ("skeletons", "frame_index", "every", "frames_read", "fps")}
        skeletons, index = track["skeletons"], track["frame_index"]
        if skeletons.ndim != 3 or skeletons.shape[1:] != (33, 4) or index.shape != (len(skeletons),):
            raise ValueError("arrays of the wrong shape")
    except Exception as e:
        raise DanceError(f"{path}: not a skeleton track ({type(e).__name__}); "
                         f"write one with VideoSkeleton.py VIDEO --save-track FILE.npz") from None
    bad = np.flatnonzero(~np.isfinite(skeletons[:, :, :2]).all(axis=(1, 2)))
    every, frames_read, fps = (float(track[k]) for k in ("every", "frames_read", "fps"))
    if len(bad) or not (every >= 1 and frames_read >= len(skeletons) and np.isfinite(fps) and fps > 0) \
            or np.any(np.diff(index) <= 0) or (len(index) and not 0 <= index[0] <= index[-1] < frames_read * every):
        where = f"frame {int(index[bad[0]])} holds no finite skeleton" if len(bad) else \
            "its frame numbers or rate are damaged"
        raise DanceError(f"{path}: {where}; write the track again with VideoSkeleton.py VIDEO --save-track FILE.npz")
    return track


class VideoSource:
    """Source frames from a video, each with the source's skeleton found live, in the
    coordinates of the whole frame (None where nobody is found)."""

    normalisable = True  # the skeletons say where in the frame the person stands

    def __init__(self, path, every, panel):
        self.path, self.every, self.panel = Path(path), every, panel
        with VideoReader(self.path) as probe:  # a bad source fails now, before any long work
            check_frame_size(probe.size, self.path)
            self.fps, count, self.frame_size = check_fps(probe.fps, every, self.path), probe.frame_count, probe.size
            self.detect_margin = probe_detect_margin(probe)  # a border where it helps (tight crops)
        self.total = -(-count // every) if count else None
        self._video = None

    def __iter__(self):
        """Yield ((index, frame), landmarks (33, 4) or None) per processed frame."""
        with VideoReader(self.path) as self._video, PoseDetector(tracking=True, margin=self.detect_margin) as det:
            for index, frame in self._video:
                ske = det.detect(frame)
                yield (f"source {index}", frame), None if ske is None else ske.landmarks
                self._video.skip(self.every - 1)

    def skip(self, seconds):
        if self._video is not None:
            self._video.skip(int(seconds * self.fps * self.every))


class TrackSource:
    """Source skeletons from a track file, shown as stick figures on black. A track holds
    crop coordinates only, so each "frame" is a black square the skeleton is already
    centred in; frames of the original video where nobody was found come back as None."""

    normalisable = False  # a track does not say where in its frame the person stood

    def __init__(self, path, every, panel):
        self.path, self.panel = Path(path), panel
        self.track = load_track(self.path)
        self.step = int(self.track["every"]) * every        # frames of the original video per output frame
        self.fps = check_fps(float(self.track["fps"]), every, self.path)
        self.total = -(-int(self.track["frames_read"]) // every)
        self.frame_size = (panel, panel)
        self._frame = 0

    def __iter__(self):
        by_frame = dict(zip(self.track["frame_index"].tolist(), self.track["skeletons"]))
        last = int(self.track["frames_read"]) * int(self.track["every"])
        self._frame = 0
        while self._frame < last:
            blank = np.zeros((self.panel, self.panel, 3), np.uint8)
            yield (f"track {self._frame}", blank), by_frame.get(self._frame)
            self._frame += self.step

    def skip(self, seconds):
        self._frame += int(seconds * self.fps) * self.step


class DanceDemo:
    """Source video (or skeleton track) in, side-by-side frames of source and generated target out.

        demo = DanceDemo("data/karate1.mp4", "pix2pix")       # any --gen-type: number, name or GEN_TYPE
        demo.draw(output="output/demo.mp4")   # or demo.draw() for a window

    Between detection and generation the source's skeletons are smoothed over time
    (`smooth`, see Motion.py) and, with normalisation, mapped into the target's frame:
    the right panel then shows the target's frame with the generated person standing
    where the normalised skeleton stands. `normalise="auto"` turns it on when the source
    is a video of someone other than the target and both videos' positions are known.
    """

    def __init__(self, source, gen_type=DEFAULT, target=None, model=None, every=1, panel=PANEL,
                 smooth=DEFAULT_SMOOTHER, normalise="auto"):
        self.row = find(gen_type)
        if every < 1:
            raise DanceError(f"--every must be at least 1 (got {every})")
        if smooth not in SMOOTHERS:
            raise DanceError(f"unknown --smooth {smooth!r}; choose one of {', '.join(SMOOTHERS)}")
        if normalise not in NORMALISE_CHOICES:
            raise DanceError(f"unknown --normalise {normalise!r}; choose one of {', '.join(NORMALISE_CHOICES)}")
        self.source_path = Path(source)
        is_track = self.source_path.suffix.lower() == ".npz"
        self.source = (TrackSource if is_track else VideoSource)(self.source_path, every, panel)
        self.panel, self.fps, self.smooth = panel, self.source.fps, smooth
        # The target's person: a learned generator's model is models/<target>_<name>.pth
        self.generator = make_generator(self.row, data_path(target or DEFAULT_TARGET), model)
        self.target_name = self.generator.target_name
        # The source is cropped as the generator's training crops were (the model records how).
        self.crop_margin = self.generator.config["crop_margin"]
        self.stats, self.normalise = {}, normalise

    @functools.cached_property
    def norm(self):
        """(source stats, target stats) when normalisation applies, else None (see Motion.py).
        Measured on first use: it may extract the source's skeletons (minutes, once), which
        should come after the output was found writable."""
        mode = self.normalise
        if mode == "off" or (mode == "auto" and self.source_path.stem == self.target_name):
            return None
        if not self.source.normalisable:
            (log.warning if mode == "on" else log.info)(
                "pose normalisation off: %s is a skeleton track, which does not say where its person stood",
                self.source_path.name)
            return None
        try:  # where the source stands over the whole video (its skeletons are extracted once, cached)
            source_stats = video_pose_stats(VideoSkeleton(self.source_path))
        except ValueError as e:
            (log.warning if mode == "on" else log.info)("pose normalisation off: %s", e)
            return None
        return source_stats, self.generator.config["target_stats"]

    def place(self, generated, box, landmarks):
        """The right panel with normalisation: the generated crop standing in the target's
        frame where the normalised skeleton stands (see `place_crop`)."""
        source, target = self.norm
        return place_crop(generated, normalised_box(box, landmarks, source, target), target["frame_size"], self.panel)

    def frames(self):
        """Yield one side-by-side picture per processed source frame."""
        for (caption, frame), lm in smooth_stream(self.source, self.smooth, self.fps):
            self.stats["frames"] += 1
            if lm is None:
                self.stats["missing"] += 1
                self.generator.reset()  # a generator that keeps state starts afresh after a gap
                left = label(placeholder(frame, self.panel), caption)
                right = placeholder(np.zeros_like(left), self.panel)
            else:
                crop, cropped, box = crop_person(frame, Skeleton(lm), self.panel, self.crop_margin)
                left = label(cropped.draw(crop), caption)
                generated = self.generator.generate(cropped)
                right = self.place(generated, box, lm) if self.norm else \
                    cv2.resize(generated, (self.panel, self.panel), interpolation=cv2.INTER_LINEAR)
            yield combine_images(left, label(right, f"{self.target_name} ({self.row.name})"))

    def default_output(self):
        return PROJECT_DIR / "output" / f"{self.source_path.stem}_to_{self.target_name}_{self.row.name}.mp4"

    def draw(self, output=None):
        """Play in a window, or write `output` (an .mp4) when given or when there is no display.
        Returns a summary dict (frames, missing, output, fps)."""
        self.stats = {"frames": 0, "missing": 0, "output": None}
        t0 = time.perf_counter()
        if output is None and has_display():
            self._show()
        else:
            output = output or self.default_output()
            sound = self.source_path if isinstance(self.source, VideoSource) else None  # a track has none
            with VideoWriter(output, self.fps, inputs=(self.source_path,), audio=sound) as writer:
                for picture in tqdm(self.frames(), total=self.source.total, unit="frame", desc="demo",
                                    dynamic_ncols=True):
                    writer.write(picture)
                if self.stats["frames"] == self.stats["missing"]:
                    raise DanceError(f"{self.source_path}: no person found in any of its "
                                     f"{self.stats['frames']} frames processed; nothing written")
            self.stats["output"] = str(output)
        self.stats["fps"] = self.stats["frames"] / max(time.perf_counter() - t0, 1e-9)
        return self.stats

    def _show(self):
        delay = max(1, int(1000 / self.fps))
        for picture in self.frames():
            cv2.imshow("DanceDemo", picture)
            key = cv2.waitKey(delay) & 0xFF
            if key == ord("q"):
                break
            if key == ord("n"):
                self.source.skip(SKIP_SECONDS)
        cv2.destroyAllWindows()


def default_source():
    """karate1.mp4 from the data folder when it is there, else the shipped skeleton track."""
    video = data_path(DEFAULT_SOURCE)
    return video if video.exists() else EMBEDDED_TRACK


def main():
    parser = argparse.ArgumentParser(
        description="Make the target person perform the source person's motion.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="generators (--gen-type, by number or name):\n" + describe())
    parser.add_argument("--source", help=f"video of the motion, or a skeleton track .npz (default: "
                                         f"{DEFAULT_SOURCE} in the data folder, else {EMBEDDED_TRACK.name})")
    parser.add_argument("--target", help=f"video of the target person (default: {DEFAULT_TARGET}): nearest "
                                         f"neighbour searches it, a learned generator loads its model "
                                         f"models/<target>_<name>.pth")
    parser.add_argument("--gen-type", default=DEFAULT, help=f"generator, by number or name (default: {DEFAULT})")
    parser.add_argument("--model", help="model file of a learned generator (default: its file in models/)")
    parser.add_argument("--smooth", choices=SMOOTHERS, default=DEFAULT_SMOOTHER,
                        help=f"smooth the source's skeletons over time (default: {DEFAULT_SMOOTHER})")
    parser.add_argument("--normalise", choices=NORMALISE_CHOICES, default="auto",
                        help="map the source's position and size into the target's frame (default: auto, "
                             "on when the source is a video of someone other than the target)")
    parser.add_argument("--output", help="write the side-by-side video to this .mp4 instead of showing it")
    parser.add_argument("--every", type=int, default=1, help="use every k-th source frame")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    source = data_path(args.source) if args.source else default_source()
    target = data_path(args.target or DEFAULT_TARGET)
    if args.output is not None:  # before any work: a good name, no input, a folder we can write
        check_output(args.output, (".mp4",), "video", inputs=(source, target, args.model))
    if source == EMBEDDED_TRACK:
        log.info("no %s in %s: playing the shipped skeleton track %s", DEFAULT_SOURCE,
                 data_path(DEFAULT_SOURCE).parent, EMBEDDED_TRACK.relative_to(PROJECT_DIR))
    row = find(args.gen_type)
    demo = DanceDemo(source, row, target=target, model=args.model, every=args.every,
                     smooth=args.smooth, normalise=args.normalise)
    if args.target and args.model and demo.target_name != Path(args.target).stem:
        log.warning("%s renders %s, not %s: with --model, the model decides the person", args.model,
                    demo.target_name, Path(args.target).stem)
    s = demo.draw(args.output)
    where = f"wrote {s['output']}" if s["output"] else "played"
    print(f"{where}: {s['frames']} frames, {s['missing']} with no person found (marked), "
          f"{s['fps']:.1f} frames/s")
    return 0


if __name__ == "__main__":
    cli_main(main)
