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

    python DanceDemo.py --source data/karate1.mp4 --gen-type pix2pix
    python DanceDemo.py --source data/karate1.mp4 --target data/taichi1.mp4 --gen-type nearest
    python DanceDemo.py --source 0                        # the camera
"""
import argparse
import functools
import logging
import time
from pathlib import Path
from typing import NamedTuple, Optional

import cv2
import numpy as np
from tqdm import tqdm

from display import combine_images, has_display
from files import check_file, check_output, opencv_text
from generators import GEN_TYPE  # noqa: F401  (the course code imports GEN_TYPE from here)
from generators import DEFAULT, describe, find, make_generator
from live import LiveCapture, Meter, live_kind
from Motion import TRAVEL_ROOM, Calibration, normalised_box, travel_share, video_pose_stats
from pose_detector import PoseDetector, check_frame_size
from project import PROJECT_DIR, DanceError, cli_main, data_path
from Skeleton import Skeleton, crop_person, crop_square
from smoothing import SMOOTHERS, smooth_stream
from VideoReader import VideoReader, scan
from VideoSkeleton import PROBE_FRAMES, VideoSkeleton, choose_detect_margin, probe_detect_margin
from VideoWriter import VideoWriter, check_fps

DEFAULT_SOURCE = "karate1.mp4"
DEFAULT_TARGET = "taichi1.mp4"
EMBEDDED_TRACK = PROJECT_DIR / "data" / "karate1_track.npz"  # skeletons only: the demo runs without videos
PANEL = 256             # side of each half of the side-by-side picture, in pixels
SKIP_SECONDS = 3        # how far `n` jumps ahead in the window
DEFAULT_SMOOTHER = "median"   # see Motion.py and the README's measurements
LIVE_SMOOTHER = "one_euro"    # causal: a live picture that waits for frames to come is late
CALIBRATION_SECONDS = 2.0     # live --normalise on: where the source stands, from its first seconds
NORMALISE_CHOICES = ("auto", "on", "off")
# What a skeleton track may say, read back (it sets how many frames the demo writes, and how fast):
TRACK_MAX_FRAMES = 1_000_000  # processed frames: over 9 hours at 30 fps, longer than any video here
TRACK_MAX_EVERY = 10_000      # a track of every 10,000th frame holds a pose every 5 minutes: none to follow
TRACK_FPS = (1.0, 1000.0)     # frames per second, as VideoReader accepts a video's

log = logging.getLogger("dance")


def label(image, text, org=(6, 18), colour=(255, 255, 255), scale=0.5):
    """Write a small caption (in the top-left corner by default), legible on any background:
    a black outline under the coloured letters."""
    text = opencv_text(text)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
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
    again = "write the track again with VideoSkeleton.py VIDEO --save-track FILE.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            track = {k: z[k] for k in ("skeletons", "frame_index", "every", "frames_read", "fps")}
        skeletons, index = track["skeletons"], track["frame_index"]
        if skeletons.ndim != 3 or skeletons.shape[1:] != (33, 4) or index.shape != (len(skeletons),):
            raise ValueError("arrays of the wrong shape")
        kinds = {"skeletons": "f", "frame_index": "iu", "every": "iu", "frames_read": "iu", "fps": "iuf"}
        wrong = [k for k, kind in kinds.items() if track[k].dtype.kind not in kind
                 or (k in ("every", "frames_read", "fps") and track[k].shape != ())]
        if wrong:
            raise DanceError(f"{path}: its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not "
                             f"{'a number' if len(wrong) == 1 else 'numbers'} of the right kind; {again}")
    except DanceError:
        raise
    except Exception as e:
        raise DanceError(f"{path}: not a skeleton track ({type(e).__name__}); "
                         f"write one with VideoSkeleton.py VIDEO --save-track FILE.npz") from None
    every, frames_read, fps = int(track["every"]), int(track["frames_read"]), float(track["fps"])
    for name, value, low, high in (("every", every, 1, TRACK_MAX_EVERY),
                                   ("frames_read", frames_read, len(skeletons), TRACK_MAX_FRAMES),
                                   ("fps", fps, *TRACK_FPS)):
        if not low <= value <= high:  # NaN fails too
            raise DanceError(f"{path}: its {name} {value} is not between {low:g} and {high:g}; {again}")
    bad = np.flatnonzero(~np.isfinite(skeletons[:, :, :2]).all(axis=(1, 2)))
    if len(bad) or np.any(np.diff(index) <= 0) or (len(index) and not 0 <= index[0] <= index[-1] < frames_read * every):
        where = f"frame {int(index[bad[0]])} holds no finite skeleton" if len(bad) else \
            "its frame numbers are damaged"
        raise DanceError(f"{path}: {where}; {again}")
    return track


class SourceFrame(NamedTuple):
    """One frame of a source, as the demo passes it along with its skeleton."""
    caption: str
    image: np.ndarray                # BGR uint8, the whole frame
    captured: Optional[float] = None  # live: time.monotonic() when it was captured
    time: Optional[float] = None     # a video: its display time in the video (seconds), where it is shown


class VideoSource:
    """Source frames from a video, each with the source's skeleton found live, in the
    coordinates of the whole frame (None where nobody is found)."""

    normalisable = True  # the skeletons say where in the frame the person stands
    live = False

    def __init__(self, path, every, panel):
        self.path, self.every, self.panel = Path(path), every, panel
        self.name, self.stem, self.sound = str(self.path), self.path.stem, self.path
        with VideoReader(self.path) as probe:  # a bad source fails now, before any long work
            check_frame_size(probe.size, self.path)
            self.frame_size = probe.size
            # One pass through it first: its frames counted and timed (a stream may not know), and
            # a sample on which the detection border is chosen (a border where it helps: tight crops).
            survey = scan(self.path, PROBE_FRAMES)
            self.detect_margin = probe_detect_margin(probe, survey=survey)
        # The output's rate: the source's usual rate (a phone's variable rate: its densest stretches,
        # so no frame need be left out); each frame is placed at its own time (see VideoWriter).
        self.fps = check_fps(survey.fps, every, self.path)
        self.total = -(-survey.count // every)
        self._video = None

    def __iter__(self):
        """Yield (SourceFrame, landmarks (33, 4) or None) per processed frame."""
        with VideoReader(self.path) as self._video, PoseDetector(tracking=True, margin=self.detect_margin) as det:
            for index, frame in self._video:
                ske = det.detect(frame)
                yield SourceFrame(f"source {index}", frame, time=self._video.time), \
                    None if ske is None else ske.landmarks
                self._video.skip(self.every - 1)

    def skip(self, seconds):
        if self._video is not None:
            self._video.skip(int(seconds * self.fps * self.every))


class TrackSource:
    """Source skeletons from a track file, shown as stick figures on black. A track holds
    crop coordinates only, so each "frame" is a black square the skeleton is already
    centred in; frames of the original video where nobody was found come back as None."""

    normalisable = False  # a track does not say where in its frame the person stood
    live = False

    def __init__(self, path, every, panel):
        self.path, self.panel = Path(path), panel
        self.name, self.stem, self.sound = str(self.path), self.path.stem, None  # a track has no sound
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
            yield SourceFrame(f"track {self._frame}", blank), by_frame.get(self._frame)
            self._frame += self.step

    def skip(self, seconds):
        self._frame += int(seconds * self.fps) * self.step


class LiveSource:
    """Source frames from a live capture (a camera, a stream, or a file played in real time;
    see live.py): the newest frame whenever the demo is ready, the ones in between dropped.
    The detection border is chosen on the first frame alone (causal)."""

    normalisable = False  # no whole video to measure: DanceDemo calibrates on the first seconds
    live = True

    def __init__(self, spec, panel):
        self.capture = LiveCapture(spec)
        try:
            check_frame_size(self.capture.size, self.capture.name)
        except DanceError:
            self.capture.close()
            raise
        self.path = Path(spec) if self.capture.kind == "file" else None
        self.fps, self.frame_size, self.panel = self.capture.fps, self.capture.size, panel
        self.name, self.stem = self.capture.name, self.capture.stem
        self.sound, self.total = None, None  # live: no sound, no end known

    def __iter__(self):
        margin = choose_detect_margin([self.capture.first])
        with self.capture, PoseDetector(tracking=True, margin=margin) as det:
            for frame in self.capture:
                ske = det.detect(frame.image)
                yield (SourceFrame(f"live {frame.seq}", frame.image, frame.captured),
                       None if ske is None else ske.landmarks)

    def skip(self, seconds):
        pass  # a live source cannot skip ahead


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
                 smooth=None, normalise="auto", live=False):
        self.row = find(gen_type)
        if every < 1:
            raise DanceError(f"--every must be at least 1 (got {every})")
        if smooth is not None and smooth not in SMOOTHERS:
            raise DanceError(f"unknown --smooth {smooth!r}; choose one of {', '.join(SMOOTHERS)}")
        if normalise not in NORMALISE_CHOICES:
            raise DanceError(f"unknown --normalise {normalise!r}; choose one of {', '.join(NORMALISE_CHOICES)}")
        self.source_path = Path(source)
        is_track = self.source_path.suffix.lower() == ".npz"
        if live or live_kind(source):
            if is_track:
                raise DanceError(f"{source}: a skeleton track cannot be played live; play a video with --live")
            if every != 1:
                raise DanceError(f"--every {every}: a live source takes every frame it has time for "
                                 f"and drops the rest; leave --every out")
            self.source = LiveSource(source, panel)
        else:
            self.source = (TrackSource if is_track else VideoSource)(self.source_path, every, panel)
        self.live = self.source.live
        self.smooth = smooth or (LIVE_SMOOTHER if self.live else DEFAULT_SMOOTHER)
        self.panel, self.fps = panel, self.source.fps
        # The target's person: a learned generator's model is models/<target>_<name>.pth
        self.generator = make_generator(self.row, data_path(target or DEFAULT_TARGET), model)
        self.target_name = self.generator.target_name
        # The source is cropped as the generator's training crops were (the model records how).
        self.crop_margin = self.generator.config["crop_margin"]
        self.stats, self.normalise = {}, normalise
        # Live, where the source stands is measured on its first seconds (whole-video stats need the future).
        self.calibration = Calibration(self.source.frame_size, max(1, round(CALIBRATION_SECONDS * self.fps))) \
            if self.live and normalise == "on" else None

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
        target_stats = self.generator.config["target_stats"]
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
        return None if source is None else (source, self.generator.config["target_stats"])

    def place(self, generated, box, landmarks, norm):
        """The right panel with normalisation `norm` (source stats, target stats): the generated
        crop standing in the target's frame where the normalised skeleton stands (see `place_crop`)."""
        source, target = norm
        return place_crop(generated, normalised_box(box, landmarks, source, target), target["frame_size"], self.panel)

    def frames(self):
        """Yield (side-by-side picture, SourceFrame) per processed source frame."""
        # One-Euro follows the real spacing of the frames: a live one's capture, a video's own times.
        time_of = (lambda frame: frame.captured) if self.live else (lambda frame: frame.time)
        for frame, lm in smooth_stream(self.source, self.smooth, self.fps, time_of=time_of):
            self.stats["frames"] += 1
            caption = f"{self.target_name} ({self.row.name})"
            if lm is None:
                self.stats["missing"] += 1
                self.generator.reset()  # a generator that keeps state starts afresh after a gap
                left = label(placeholder(frame.image, self.panel), frame.caption)
                right = placeholder(np.zeros_like(left), self.panel)
            else:
                crop, cropped, box = crop_person(frame.image, Skeleton(lm), self.panel, self.crop_margin)
                left = label(cropped.draw(crop), frame.caption)
                generated = self.generator.generate(cropped)
                norm = self.normalisation(lm)
                if norm:
                    right = self.place(generated, box, lm, norm)
                else:
                    right = cv2.resize(generated, (self.panel, self.panel), interpolation=cv2.INTER_LINEAR)
                    if self.calibration is not None:
                        caption += " calibrating"
            yield combine_images(left, label(right, caption)), frame

    def live_frames(self, meter):
        """`frames()` of a live source, each picture marked with the frame rate, the latency
        from capture to now and the frames dropped so far, as it is handed on to be shown."""
        for picture, frame in self.frames():
            meter.shown(frame.captured)
            status(picture, f"{meter.fps:4.1f} fps  latency {meter.latency * 1000:4.0f} ms  "
                            f"dropped {self.source.capture.dropped}")
            yield picture, frame

    def default_output(self):
        live = "live_" if self.live else ""
        return PROJECT_DIR / "output" / f"{live}{self.source.stem}_to_{self.target_name}_{self.row.name}.mp4"

    def draw(self, output=None):
        """Play in a window, or write `output` (an .mp4) when given or when there is no display.
        Returns a summary dict (frames, missing, output, fps; live: captured, dropped, latency).
        Live, Ctrl-C (or `q` in the window) ends the session and keeps the recording."""
        self.stats = {"frames": 0, "missing": 0, "output": None}
        meter = Meter()
        pictures = self.live_frames(meter) if self.live else self.frames()
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
        if self.live:
            capture = self.source.capture
            self.stats.update(captured=capture.captured, dropped=capture.dropped,
                              stopped_early=capture.stopped_early, **meter.summary())
        return self.stats

    def _write(self, pictures, output):
        """Write the pictures to `output`, each at its time: a video's frame where the source shows
        it (a variable-rate source stays with its sound), a live session as it was shown (each
        picture held until the next one came), at the source's frame rate."""
        inputs = tuple(p for p in (self.source.path,) if p is not None)
        with VideoWriter(output, self.fps, inputs=inputs, audio=self.source.sound) as writer:
            progress = tqdm(total=self.source.total, unit="frame", desc="live" if self.live else "demo",
                            dynamic_ncols=True)
            try:
                for picture, frame in pictures:
                    writer.write(picture, time.monotonic() if self.live else frame.time)
                    progress.update()
            except KeyboardInterrupt:
                if not self.live:
                    raise
                log.info("stopped: keeping the recording of what was shown")
            finally:
                progress.close()
            if self.stats["frames"] == self.stats["missing"]:
                raise DanceError(f"{self.source.name}: no person found in any of its "
                                 f"{self.stats['frames']} frames processed; nothing written")

    def _show(self, pictures):
        delay = 1 if self.live else max(1, int(1000 / self.fps))  # live frames come at their own pace
        try:
            for picture, _ in pictures:
                cv2.imshow("DanceDemo", picture)
                key = cv2.waitKey(delay) & 0xFF
                if key == ord("q"):
                    break
                if key == ord("n"):
                    self.source.skip(SKIP_SECONDS)
        except KeyboardInterrupt:
            if not self.live:
                raise
        finally:
            cv2.destroyAllWindows()


def status(image, text):
    """Write a status line along the bottom edge (the live figures), in yellow."""
    return label(image, text, (6, image.shape[0] - 8), (0, 255, 255), 0.45)


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
        print(f"live: {s['captured']} frames captured, {s['dropped']} dropped (no time for them), latency "
              f"capture to display {s['latency_ms'] or 0:.0f} ms median, {s['latency_p90_ms'] or 0:.0f} ms "
              f"90th percentile{gone}")
    return 0


if __name__ == "__main__":
    cli_main(main)
