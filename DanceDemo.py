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

Or the source is live (see live.py): a camera (`--source 0`), a device path, a stream URL,
or a video file played in real time (`--live`). Live, every step is causal: frames the
demo has no time for are dropped, the smoother defaults to One-Euro (no delay; the median
runs 2 processed frames late), and there is no whole video to normalise with, so
normalisation is off unless asked for (`--normalise on`: measured on the first
CALIBRATION_SECONDS with a person). The picture shows frames per second and the latency
from capture to display; a recording (--output, or no display) is what the screen showed,
in real time.

The sources (video, skeleton track, live) are in sources.py, the panels' drawing and geometry
in panels.py (shared with evaluate.py).

    python DanceDemo.py --source data/karate1.mp4 --gen-type pix2pix
    python DanceDemo.py --source data/karate1.mp4 --target data/taichi1.mp4 --gen-type nearest
    python DanceDemo.py --source 0                        # the camera
"""
import argparse
import contextlib
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from display import combine_images, has_display
from files import check_output
from generators import GEN_TYPE  # noqa: F401  (the course code imports GEN_TYPE from here)
from generators import DEFAULT, describe, find, make_generator
from live import live_kind
from Motion import TRAVEL_ROOM, Calibration, normalised_box, travel_share, video_pose_stats
from panels import PANEL, label, place_crop, placeholder
from pipeline import generating_threads, held_logs, prefetch, torch_threads
from project import PROJECT_DIR, DanceError, cli_main, data_path
from runtime import DEFAULT_RUNTIME, chosen
from Skeleton import Skeleton, crop_person
from smoothing import SMOOTHERS, smooth_stream
from sources import DEFAULT_SMOOTHER, LIVE_SMOOTHER, detects, open_source
from VideoSkeleton import VideoSkeleton
from VideoWriter import VideoWriter

DEFAULT_SOURCE = "karate1.mp4"
DEFAULT_TARGET = "taichi1.mp4"
EMBEDDED_TRACK = PROJECT_DIR / "data" / "karate1_track.npz"  # skeletons only: the demo runs without videos
SKIP_SECONDS = 3        # how far `n` jumps ahead in the window
CALIBRATION_SECONDS = 2.0     # live --normalise on: where the source stands, from its first seconds
NORMALISE_CHOICES = ("auto", "on", "off")
# Frames read and detected ahead of the one generated. Live, one: a camera's newest frame is
# taken only when the last one was, so a picture is at most one frame's processing late. From
# a file nothing is late: detection runs ahead across the generator's slower frames instead of
# waiting for room (karate1, 2 cores: 4-5% less wall time for pix2pix and layered alike).
LIVE_AHEAD, FILE_AHEAD = 1, 4

log = logging.getLogger("dance")


def fresh_stats():
    """The summary's counts before any frame: frames processed, of them with no person, the output."""
    return {"frames": 0, "missing": 0, "output": None}


class DanceDemo:
    """Source video (or skeleton track, or live source) in, side-by-side frames of source and
    generated target out.

        demo = DanceDemo("data/karate1.mp4", "pix2pix")       # any --gen-type: number, name or GEN_TYPE
        demo.draw(output="output/demo.mp4")   # or demo.draw() for a window
        DanceDemo("0", "layered").draw()      # the camera, live

    Between detection and generation the source's skeletons are smoothed over time
    (`smooth`, see Motion.py) and, with normalisation, mapped into the target's frame:
    the right panel then shows the target's frame with the generated person standing
    where the normalised skeleton stands. `normalise="auto"` turns it on when the source
    is a video of someone other than the target and both videos' positions are known.
    """

    def __init__(self, source, gen_type=DEFAULT, target=None, model=None, every=1, panel=PANEL,
                 smooth=None, normalise="auto", live=False, overlap=True, runtime=DEFAULT_RUNTIME):
        self.row = find(gen_type)
        try:   # DANCE_RUNTIME's where set; one that does not exist said now, not at the first frame
            runtime = chosen(runtime)
        except ValueError as e:
            raise DanceError(str(e)) from None
        if every < 1:
            raise DanceError(f"--every must be at least 1 (got {every})")
        if smooth is not None and smooth not in SMOOTHERS:
            raise DanceError(f"unknown --smooth {smooth!r}; choose one of {', '.join(SMOOTHERS)}")
        if normalise not in NORMALISE_CHOICES:
            raise DanceError(f"unknown --normalise {normalise!r}; choose one of {', '.join(NORMALISE_CHOICES)}")
        # Overlapped, detection has a core of its own and the generator's threads the others (on two
        # cores, one each: pipeline.generating_threads), for the inference runtime here, PyTorch in frames().
        self.threads = min(torch.get_num_threads(), generating_threads()) if overlap and detects(source, live) else None
        # A learned generator is loaded, and its first frame's one-time costs paid (the runtime's
        # export and compile: 0.15-0.35 s), on a thread of their own while the source is opened: a
        # video's is probed for its detection margin, about 1 s of MediaPipe that leaves the other
        # core mostly free. Bounded work only: the others may extract the target's skeletons
        # (minutes, interruptible), made here after the source. A bad source is said first.
        with ThreadPoolExecutor(1, thread_name_prefix="generator") as pool:
            made = pool.submit(self._generator, target, model, runtime, beside=True) if self.row.learned else None
            self.source = open_source(source, every, panel, live)
        self.generator, notes = made.result() if made else self._generator(target, model, runtime)
        for note in notes:   # said once the source is known good (a bad one: its error alone)
            log.handle(note)
        self.target_name = self.generator.target_name
        self.source_path = Path(self.source.name)
        self.live = self.source.live
        # Reading and detecting the next frame on a thread of its own while this one is generated
        # (pipeline.prefetch): the same pictures, in the same order, sooner on two cores.
        self.overlap, self.clock = overlap, self.source.clock
        self.smooth = smooth or self.source.default_smoother
        self.panel, self.fps = panel, self.source.fps
        # The source is cropped as the generator's training crops were (the model records how).
        self.crop_margin = self.generator.record["crop_margin"]
        self.stats, self.normalise = fresh_stats(), normalise
        # A first frame's one-time costs paid before a camera starts, not by its first frames.
        if self.live:
            self.generator.warm_up()
        # Live, where the source stands is measured on its first seconds (whole-video stats need the future).
        self.calibration = Calibration(self.source.frame_size, max(1, round(CALIBRATION_SECONDS * self.fps))) \
            if self.live and normalise == "on" else None

    def _generator(self, target, model, runtime, beside=False):
        """The target's person (a learned generator's model: models/<target>_<name>.pth), run by
        `runtime` (runtime.py: OpenVINO, the layered network alone 3.7x PyTorch's speed on a CPU,
        pictures within a grey level; the demo, whose slowest stage is detection, 5-10%;
        "torch": PyTorch, the reference), its first frame's one-time costs paid: (generator, the
        log records made meanwhile, held back when `beside` the opening of the source, else said)."""
        with held_logs(log) if beside else contextlib.nullcontext([]) as notes:
            generator = make_generator(self.row, data_path(target or DEFAULT_TARGET), model)
            if hasattr(generator, "use_runtime"):
                generator.use_runtime(runtime, self.threads)
            generator.prepare()
        return generator, notes

    @functools.cached_property
    def norm(self):
        """(source stats, target stats) when normalisation applies, else None (see Motion.py).
        Measured on first use: it may extract the source's skeletons (minutes, once), which
        should come after the output was found writable."""
        mode = self.normalise
        if mode == "off" or (mode == "auto" and self.source.stem == self.target_name):
            return None
        if self.live:
            if mode == "auto":
                log.info("live source: pose normalisation off (no whole video to measure; --normalise on "
                         "measures the first %g s)", CALIBRATION_SECONDS)
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
        target_stats = self.generator.record["target_stats"]
        share = travel_share(source_stats, target_stats)
        if share > TRAVEL_ROOM:
            log.info("%s travels %.0f%% of the target's frame width: its travel is compressed to %.0f%% so "
                     "the person stays in view (Motion.placement)", self.source_path.name, 100 * share,
                     100 * TRAVEL_ROOM)
        return source_stats, target_stats

    def normalisation(self, landmarks):
        """(source stats, target stats) for this frame, or None: the crop alone."""
        if self.calibration is None:
            return self.norm
        source = self.calibration(landmarks)
        return None if source is None else (source, self.generator.record["target_stats"])

    def place(self, generated, box, landmarks, norm):
        """The right panel with normalisation `norm` (source stats, target stats): the generated
        crop standing in the target's frame where the normalised skeleton stands (see `place_crop`)."""
        source, target = norm
        return place_crop(generated, normalised_box(box, landmarks, source, target), target["frame_size"], self.panel)

    def frames(self):
        """Yield (side-by-side picture, SourceFrame) per processed source frame."""
        # One-Euro follows the real spacing of the frames: a live one's capture, a video's own times.
        clock = self.clock
        source = prefetch(self.source, LIVE_AHEAD if self.live else FILE_AHEAD) if self.overlap else self.source
        # "wait": for the next detected frame (overlapped: what detection has not finished yet);
        # "smooth": the smoother's own time, the wait inside it not counted again.
        smoothed = smooth_stream(clock.timed(source, "wait"), self.smooth, self.fps, time_of=self.source.time_of)
        with torch_threads(self.threads):
            yield from self._generated(clock.timed(smoothed, "smooth", inner="wait"))

    def _generated(self, frames):
        """(picture, frame) for each (SourceFrame, landmarks or None) of `frames`."""
        clock = self.clock
        for frame, lm in frames:
            self.stats["frames"] += 1
            caption = f"{self.target_name} ({self.row.name})"
            if lm is None:
                self.stats["missing"] += 1
                self.generator.reset()  # a generator that keeps state starts afresh after a gap
                with clock("compose"):
                    left = label(placeholder(frame.image, self.panel), frame.caption)
                    right = placeholder(np.zeros_like(left), self.panel)
                    picture = combine_images(left, label(right, caption))
            else:
                with clock("crop"):
                    crop, cropped, box = crop_person(frame.image, Skeleton(lm), self.panel, self.crop_margin)
                with clock("generate"):
                    generated = self.generator.generate(cropped)
                with clock("compose"):
                    left = label(cropped.draw(crop), frame.caption)
                    norm = self.normalisation(lm)
                    if norm:
                        right = self.place(generated, box, lm, norm)
                    else:
                        right = cv2.resize(generated, (self.panel, self.panel), interpolation=cv2.INTER_LINEAR)
                        caption += " calibrating" if self.calibration is not None else ""
                    picture = combine_images(left, label(right, caption))
            yield picture, frame

    def pictures(self):
        """`frames()`, each picture as the source hands it on to be shown (live: marked with the
        frame rate, the latency from capture to now and the frames dropped so far)."""
        for picture, frame in self.frames():
            yield self.source.shown(picture, frame), frame

    def default_output(self):
        prefix = self.source.output_prefix
        return PROJECT_DIR / "output" / f"{prefix}{self.source.stem}_to_{self.target_name}_{self.row.name}.mp4"

    def draw(self, output=None):
        """Play in a window, or write `output` (an .mp4) when given or when there is no display.
        Returns a summary dict (frames, missing, output, fps; live: captured, dropped, latency).
        Live, Ctrl-C (or `q` in the window) ends the session and keeps the recording."""
        self.stats = fresh_stats()
        self.clock.clear()       # each run's stages are its own,
        self.generator.reset()   # and its references chosen afresh
        pictures = self.pictures()
        t0 = time.perf_counter()
        try:
            if output is None and has_display():
                self._show(pictures)
            else:
                output = output or self.default_output()
                self._write(pictures, output)
                self.stats["output"] = str(output)
        finally:
            pictures.close()  # stops a live capture's thread
        self.stats["fps"] = self.stats["frames"] / max(time.perf_counter() - t0, 1e-9)
        self.stats["stages_ms"] = self.clock.summary()
        self.stats.update(self.source.summary())
        return self.stats

    def _write(self, pictures, output):
        """Write the pictures to `output`, each at its time: a video's frame where the source shows
        it (a variable-rate source stays with its sound), a live session as it was shown (each
        picture held until the next one came), at the source's frame rate."""
        inputs = tuple(p for p in (self.source.path,) if p is not None)
        with VideoWriter(output, self.fps, inputs=inputs, audio=self.source.sound) as writer:
            progress = tqdm(total=self.source.total, unit="frame", desc=self.source.progress_label,
                            dynamic_ncols=True)
            try:
                for picture, frame in pictures:
                    with self.clock("write"):
                        writer.write(picture, self.source.stamp(frame))
                    progress.update()
            except KeyboardInterrupt:
                self.source.interrupted(recording=True)  # a file's demo stops; live, the recording is kept
            finally:
                progress.close()
            if self.stats["frames"] == self.stats["missing"]:
                raise DanceError(f"{self.source.name}: no person found in any of its "
                                 f"{self.stats['frames']} frames processed; nothing written")

    def _show(self, pictures):
        delay = self.source.show_delay_ms()
        try:
            for picture, _ in pictures:
                with self.clock("show"):  # waitKey included: a window shows a file at its own pace
                    cv2.imshow("DanceDemo", picture)
                    key = cv2.waitKey(delay) & 0xFF
                if key == ord("q"):
                    break
                if key == ord("n"):
                    self.source.skip(SKIP_SECONDS)
        except KeyboardInterrupt:
            self.source.interrupted(recording=False)
        finally:
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
    parser.add_argument("--source", help=f"video of the motion, a skeleton track .npz, or a live source: a camera "
                                         f"index (0), a device (/dev/video0) or a stream URL (default: "
                                         f"{DEFAULT_SOURCE} in the data folder, else {EMBEDDED_TRACK.name})")
    parser.add_argument("--live", action="store_true",
                        help="play the --source video in real time, as a camera would deliver it: frames the "
                             "demo has no time for are dropped, fps and latency are shown")
    parser.add_argument("--target", help=f"video of the target person (default: {DEFAULT_TARGET}): nearest "
                                         f"neighbour searches it, a learned generator loads its model "
                                         f"models/<target>_<name>.pth")
    parser.add_argument("--gen-type", default=DEFAULT, help=f"generator, by number or name (default: {DEFAULT})")
    parser.add_argument("--model", help="model file of a learned generator (default: its file in models/)")
    parser.add_argument("--smooth", choices=SMOOTHERS,
                        help=f"smooth the source's skeletons over time (default: {DEFAULT_SMOOTHER}; "
                             f"live: {LIVE_SMOOTHER}, which adds no delay)")
    parser.add_argument("--normalise", choices=NORMALISE_CHOICES, default="auto",
                        help="map the source's position and size into the target's frame (default: auto, "
                             "on when the source is a video of someone other than the target; live: off, "
                             f"and on measures the first {CALIBRATION_SECONDS:g} s)")
    parser.add_argument("--output", help="write the side-by-side video to this .mp4 instead of showing it")
    parser.add_argument("--every", type=int, default=1, help="use every k-th source frame")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    live_source = live_kind(args.source)  # a camera, device or URL: not a file of the data folder
    if live_source:
        source = args.source
    else:
        source = data_path(args.source) if args.source else default_source()
    target = data_path(args.target or DEFAULT_TARGET)
    if args.output is not None:  # before any work: a good name, no input, a folder we can write
        inputs = (target, args.model) if live_source else (source, target, args.model)
        check_output(args.output, (".mp4",), "video", inputs=inputs)
    if source == EMBEDDED_TRACK:
        log.info("no %s in %s: playing the shipped skeleton track %s", DEFAULT_SOURCE,
                 data_path(DEFAULT_SOURCE).parent, EMBEDDED_TRACK.relative_to(PROJECT_DIR))
    row = find(args.gen_type)
    demo = DanceDemo(source, row, target=target, model=args.model, every=args.every,
                     smooth=args.smooth, normalise=args.normalise, live=args.live)
    if args.target and args.model and demo.target_name != Path(args.target).stem:
        log.warning("%s renders %s, not %s: with --model, the model decides the person", args.model,
                    demo.target_name, Path(args.target).stem)
    s = demo.draw(args.output)
    where = f"wrote {s['output']}" if s["output"] else "played"
    print(f"{where}: {s['frames']} frames, {s['missing']} with no person found (marked), "
          f"{s['fps']:.1f} frames/s")
    if demo.live:
        gone = "; the source stopped sending frames" if s["stopped_early"] else ""
        print(f"live: {s['frames']} frames shown of {s['captured']} captured, {s['dropped']} dropped (no time for "
              f"them), latency "
              f"capture to display {s['latency_ms'] or 0:.0f} ms median, {s['latency_p90_ms'] or 0:.0f} ms "
              f"90th percentile{gone}")
    return 0


if __name__ == "__main__":
    cli_main(main)
