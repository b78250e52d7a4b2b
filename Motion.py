"""The source's skeletons between the detector and the generator: smoothed over time,
and mapped into the target's space (the global pose normalisation of Everybody Dance Now).

Temporal smoothing. A detector run frame by frame jitters by a pixel or two even when
the person is still, and a generator turns that jitter into flicker. Two filters:
  median     the paper's: each landmark's median over a centred window of a few
             frames. Robust to one-frame outliers, but it needs window // 2 frames of
             look-ahead, so a live demo shows its output that many frames late.
  one_euro   Casiez et al.'s One-Euro filter (CHI 2012): a low-pass filter whose cutoff
             rises with speed, so it is smooth when still and quick when moving; causal.
Both work on landmark arrays (T, 33, 4) in the coordinates of the source frame, before
cropping (a crop box that follows a jittery skeleton would jitter too).

Global pose normalisation. The source may stand farther from its camera, higher or lower
in its frame, or off-centre. The paper maps each source skeleton into the target's frame
with a scale and a translation interpolated between the target's "far" and "near" positions:
  a     = (source ankle y - source far) / (source near - source far), clamped to [0, 1]
  scale = target far height / source far height
          + a * (target near height / source near height - target far height / source far height)
  the ankle line moves to target far + a * (target near - target far), and the body's
  centre to the target's usual centre plus the scaled offset of the source from its own.
  Beyond the paper, the person is kept in view (`placement`): a source that travels wider
  than half the target's frame has its travel compressed, and a skeleton that would still
  cross an edge of the target's frame is shifted back inside it.
Near and far are the extreme ankle heights of a video (robust percentiles), heights the
tallest nose-to-ankle extents seen near them, all in pixels of each video's frame.

Where it acts in this toolkit: the generators see person-centred crops, cut by the same
rule for every video (the skeleton's box plus a margin), and a crop does not change when
the whole skeleton is scaled and moved. So the normalisation cannot change a generated
crop; it decides where in the target's frame the generated person stands (DanceDemo's
"target frame" panel; see `normalised_box`). images/normalisation.png shows it.
"""
import argparse
import warnings
from collections import deque

import cv2
import numpy as np

from files import IMAGE_SUFFIXES, check_output, opencv_text, write_image
from project import cli_main, data_path, evenly_spaced
from Skeleton import Skeleton, crop_skeleton
from VideoSkeleton import VideoSkeleton

# ---- defaults ----
SMOOTH_WINDOW = 5          # frames in the median's window (the paper: a few frames at 30 fps)
ONE_EURO_MIN_CUTOFF = 1.0  # Hz: the cutoff when still (lower: smoother, laggier)
ONE_EURO_BETA = 0.5        # how fast the cutoff rises with speed (in crop/frame units per second)
ONE_EURO_D_CUTOFF = 1.0    # Hz: cutoff of the speed estimate
FAR_NEAR_PERCENTILES = (5, 95)  # robust "farthest" and "nearest" ankle heights
TRAVEL_PERCENTILES = (2, 98)    # robust leftmost and rightmost hip positions: how far the person travels
TRAVEL_ROOM = 0.5          # the share of the target frame's width the source's travel may span after
                           # scaling; wider travel is compressed to it (a dancer crossing a wide stage)
BAND = 0.1                 # frames whose ankle is within this fraction of the near-far range count as near (far)
STATS_KEYS = ("frame_size", "far", "near", "far_height", "near_height", "centre_x")  # what pose_stats gives
TRAVEL_KEYS = ("left", "right")  # ... and since the travel rule (placement), where the hips go, leftmost and rightmost
MAX_FRAME_SIDE = 16384     # pixels: a recorded frame larger than this is damage, not a video
FRAME_SLACK = 1.0          # recorded positions may lie this many frame sides beyond the frame (feet cut off), no more

NOSE, LEFT_ANKLE, RIGHT_ANKLE, LEFT_HIP, RIGHT_HIP = 0, 27, 28, 23, 24


def ankle_y(points):
    """The height of the lower ankle (the foot on the ground) of skeletons (..., 33, >=2)."""
    return np.nanmax(np.asarray(points)[..., [LEFT_ANKLE, RIGHT_ANKLE], 1], axis=-1)


# ---- temporal smoothing ------------------------------------------------------------------
def _median(stack, axis, like):
    """NaN-ignoring median of `stack` along `axis`, NaN wherever `like` is NaN (a missing frame
    or landmark stays missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows (never seen nearby) are expected
        out = np.nanmedian(stack, axis=axis).astype(np.float32)
    out[np.isnan(like)] = np.nan
    return out


def median_smooth(track, window=SMOOTH_WINDOW):
    """Centred running median over time of a track (T, ...) of landmarks; NaN entries (frames
    with nobody, unknown landmarks) are ignored, and the window shrinks at the ends. A track
    that is constant over time comes back unchanged; a missing frame stays missing."""
    track = np.asarray(track, np.float32)
    half = window // 2
    padded = np.concatenate([np.full((half,) + track.shape[1:], np.nan, np.float32), track,
                             np.full((half,) + track.shape[1:], np.nan, np.float32)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)  # (T, ..., window)
    return _median(windows, -1, track)


class OneEuroFilter:
    """One-Euro filter on arrays (every element filtered independently), fed one sample at a time.

        f = OneEuroFilter(fps=30)
        smoothed = [f(x) for x in samples]     # f(None) for a gap resets it
        smoothed = [f(x, t) for t, x in ...]   # samples at times t (seconds): a live source
                                               # that drops frames is not evenly spaced
    """

    def __init__(self, fps, min_cutoff=ONE_EURO_MIN_CUTOFF, beta=ONE_EURO_BETA, d_cutoff=ONE_EURO_D_CUTOFF):
        self.period, self.min_cutoff, self.beta, self.d_cutoff = 1.0 / fps, min_cutoff, beta, d_cutoff
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x, t=None):
        if x is None:
            self.x = self.dx = self.t = None
            return None
        x = np.asarray(x, np.float64)
        dt = self.period if t is None or self.t is None or t <= self.t else t - self.t
        self.t = t
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.astype(np.float32)
        dx = (x - self.x) / dt
        self.dx = self.dx + self._alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + self._alpha(cutoff, dt) * (x - self.x)
        return self.x.astype(np.float32)


def one_euro_smooth(track, fps, **params):
    """A track (T, ...) through a fresh OneEuroFilter; all-NaN frames are gaps that reset it."""
    f, out = OneEuroFilter(fps, **params), np.full_like(np.asarray(track, np.float32), np.nan)
    for t, x in enumerate(np.asarray(track, np.float32)):
        y = f(None if np.isnan(x).all() else x)
        if y is not None:
            out[t] = y
    return out


SMOOTHERS = ("median", "one_euro", "none")


def smooth_track(track, method, fps=30.0, window=SMOOTH_WINDOW):
    """Smooth a landmark track (T, 33, 4) over time with `method` (one of SMOOTHERS)."""
    if method == "median":
        return median_smooth(track, window)
    if method == "one_euro":
        return one_euro_smooth(track, fps)
    if method == "none":
        return np.asarray(track, np.float32)
    raise ValueError(f"unknown smoother {method!r}; choose one of {', '.join(SMOOTHERS)}")


def smooth_stream(items, method, fps=30.0, window=SMOOTH_WINDOW, time_of=None):
    """Smooth a live stream of (payload, landmarks (33, 4) or None) pairs, yielding the same
    pairs with smoothed landmarks. "median" needs the frames after each one, so it yields
    each pair window // 2 pairs late (and the last ones when the stream ends); it gives what
    `median_smooth` gives on the whole track. None (nobody found) passes through unchanged.
    `time_of(payload)`, when given, is the pair's time in seconds: One-Euro then follows the
    real spacing of a stream that drops frames, instead of assuming 1 / fps."""
    if method == "none":
        yield from items
        return
    if method == "one_euro":
        f = OneEuroFilter(fps)
        for payload, lm in items:
            yield payload, f(lm, None if time_of is None else time_of(payload))
        return
    if method != "median":
        raise ValueError(f"unknown smoother {method!r}; choose one of {', '.join(SMOOTHERS)}")
    half, buf, next_pos = window // 2, deque(), 0   # buf: (position, payload, landmarks) still needed

    def emit(pos):
        _, payload, lm = buf[[p for p, _, _ in buf].index(pos)]
        if lm is None:
            return payload, None
        stack = np.stack([np.full_like(lm, np.nan) if x is None else x for p, _, x in buf if abs(p - pos) <= half])
        return payload, _median(stack, 0, lm)

    for pos, (payload, lm) in enumerate(items):
        buf.append((pos, payload, None if lm is None else np.asarray(lm, np.float32)))
        while buf[-1][0] - next_pos >= half:          # the next pair now has its whole window
            yield emit(next_pos)
            next_pos += 1
            while buf[0][0] < next_pos - half:
                buf.popleft()
    while buf and next_pos <= buf[-1][0]:             # the end: windows shrink
        yield emit(next_pos)
        next_pos += 1


class Calibration:
    """Where a live source's person stands (`pose_stats`), measured causally: from the first
    `count` skeletons seen, then fixed. A live source has no whole video to measure, so the
    normalisation waits for this window; `calibration(landmarks)` is None until then."""

    def __init__(self, frame_size, count):
        self.frame_size, self.count, self.seen, self.stats = frame_size, count, [], None

    def __call__(self, landmarks):
        if self.stats is None and landmarks is not None:
            self.seen.append(np.asarray(landmarks, np.float32))
            if len(self.seen) >= self.count:
                try:
                    self.stats = pose_stats(np.stack(self.seen), self.frame_size)
                except ValueError:  # nobody measurable in this window: measure the next one
                    self.seen = []
        return self.stats


def timeline(landmarks, frame_index):
    """Skeletons found at `frame_index` (sorted) spread on a timeline of every frame in
    between, with NaN where nobody was found: (frame_index[-1] - frame_index[0] + 1, ...)."""
    frame_index = np.asarray(frame_index)
    out = np.full((frame_index[-1] - frame_index[0] + 1,) + np.shape(landmarks)[1:], np.nan, np.float32)
    out[frame_index - frame_index[0]] = landmarks
    return out


# ---- frames and crops ----------------------------------------------------------------------
def crop_landmarks(landmarks, frame_size, margin):
    """Landmarks (33, 4) normalised to a frame of `frame_size` (w, h) -> the same landmarks in
    the coordinates of the person-centred crop `crop_person` would cut, and that crop's box."""
    cropped, box = crop_skeleton(Skeleton(landmarks), frame_size, margin)
    return cropped.landmarks, box


# ---- global pose normalisation -------------------------------------------------------------
def pose_stats(landmarks, frame_size):
    """Where a person stands in their video: near and far ankle heights, the body height near
    each, and the usual horizontal centre, in pixels. `landmarks` (T, 33, 4) are normalised to
    frames of `frame_size` (w, h)."""
    pts = np.asarray(landmarks, np.float32)[:, :, :2] * np.asarray(frame_size, np.float32)
    ankle = ankle_y(pts)
    height = ankle - pts[:, NOSE, 1]
    centre = np.nanmean(pts[:, [LEFT_HIP, RIGHT_HIP], 0], axis=1)
    ok = ~(np.isnan(ankle) | np.isnan(height) | np.isnan(centre))
    if not ok.any():
        raise ValueError("no skeleton with a nose, ankles and hips to measure")
    ankle, height, centre = ankle[ok], height[ok], centre[ok]
    far, near = np.percentile(ankle, FAR_NEAR_PERCENTILES)
    band = max(BAND * (near - far), 1.0)
    near_h = np.percentile(height[ankle >= near - band], 90)   # tallest (upright) heights seen there
    far_h = np.percentile(height[ankle <= far + band], 90)
    if min(near_h, far_h) <= 0:
        raise ValueError("the person is never seen upright (nose above ankles)")
    left, right = np.percentile(centre, TRAVEL_PERCENTILES)
    return {"frame_size": [float(v) for v in frame_size], "far": float(far), "near": float(near),
            "far_height": float(far_h), "near_height": float(near_h), "centre_x": float(np.median(centre)),
            "left": float(left), "right": float(right)}


def check_pose_stats(stats):
    """Raise a ValueError unless `stats` is what `pose_stats` makes: a frame size of two
    whole-pixel-sized sides, positions near the frame, heights above 0 (read back from a
    model file, an empty dict or a NaN height would crash the demo or place the generated
    person nowhere, a flat panel in every frame)."""
    if not isinstance(stats, dict) or not set(STATS_KEYS) <= set(stats) <= set(STATS_KEYS + TRAVEL_KEYS):
        raise ValueError(f"target stats {stats!r} do not have exactly {', '.join(STATS_KEYS)} "
                         f"(and, in newer models, {', '.join(TRAVEL_KEYS)})")
    size = stats["frame_size"]
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)  # noqa: E731
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(number(v) and 1 <= v <= MAX_FRAME_SIDE
                                                                        for v in size)):
        raise ValueError(f"target frame size {size!r} is not two sides of 1 to {MAX_FRAME_SIDE} pixels")
    w, h = size
    for key, side in (("far", h), ("near", h), ("centre_x", w)) + tuple((k, w) for k in TRAVEL_KEYS if k in stats):
        if not (number(stats[key]) and -FRAME_SLACK * side <= stats[key] <= (1 + FRAME_SLACK) * side):
            raise ValueError(f"target {key} {stats[key]!r} is not a position near its {w:g}x{h:g} frame")
    for key in ("far_height", "near_height"):
        if not (number(stats[key]) and 0 < stats[key] <= (1 + 2 * FRAME_SLACK) * h):
            raise ValueError(f"target {key} {stats[key]!r} is not a height above 0 in its {w:g}x{h:g} frame")
    if stats["far"] > stats["near"]:
        raise ValueError(f"target far {stats['far']!r} lies below its near {stats['near']!r}")
    return stats


def video_pose_stats(videoSke):
    """`pose_stats` of a whole video (a VideoSkeleton): where its person usually stands."""
    return pose_stats(videoSke.frame_landmarks(), videoSke.frame_size)


def normalisation(ankle, source, target):
    """The paper's per-frame scale, and the source and target anchor points (x, y) in pixels,
    for a source ankle height `ankle` (pixels); `source` and `target` are `pose_stats` dicts."""
    span = source["near"] - source["far"]
    a = 0.5 if span < 1.0 else float(np.clip((ankle - source["far"]) / span, 0.0, 1.0))
    scale = (target["far_height"] / source["far_height"]
             + a * (target["near_height"] / source["near_height"] - target["far_height"] / source["far_height"]))
    target_ankle = target["far"] + a * (target["near"] - target["far"])
    return scale, (source["centre_x"], ankle), (target["centre_x"], target_ankle)


def placement(landmarks, source, target):
    """(scale, source anchor, target anchor) taking one source skeleton (33, 4, normalised to the
    source's frame) into the target's frame as p -> (p - source anchor) * scale + target anchor,
    in pixels: the paper's `normalisation`, then two rules so the person stays in view wherever
    the source goes (its skeleton's box is always inside the target's frame):
      travel  a source whose hips travel (TRAVEL_PERCENTILES of `source`) wider than TRAVEL_ROOM
              of the target frame's width, once scaled, has its travel compressed to that;
      clamp   a skeleton that would still cross the frame's edge (a jump, a lunge at the side)
              is shifted back inside it (centred where it is larger than the frame)."""
    sw, sh = source["frame_size"]
    tw, th = target["frame_size"]
    pts = np.asarray(landmarks, np.float32)[:, :2] * (sw, sh)
    scale, (cx, ankle), (tx, ty) = normalisation(ankle_y(pts), source, target)
    hips = pts[[LEFT_HIP, RIGHT_HIP], 0]
    hip = float(np.nanmean(hips)) if np.isfinite(hips).any() else cx
    travel = (source.get("right", cx) - source.get("left", cx)) * scale
    squeeze = min(1.0, TRAVEL_ROOM * tw / travel) if travel > 0 else 1.0
    anchor = np.array([tx + (hip - cx) * scale * squeeze, ty])
    out = (pts - (hip, ankle)) * scale + anchor
    known = out[np.isfinite(out).all(axis=1)]
    if len(known):
        lo, hi = known.min(axis=0), known.max(axis=0)
        size = np.array([tw, th], np.float32)
        anchor += np.where(hi - lo > size, (size - lo - hi) / 2, np.maximum(-lo, 0) + np.minimum(size - hi, 0))
    return scale, (hip, ankle), tuple(anchor)


def travel_share(source, target):
    """How wide the source's travel (hips, TRAVEL_PERCENTILES) is once scaled into the target's
    frame, as a share of its width, at the near scale; `placement` compresses what exceeds
    TRAVEL_ROOM."""
    scale = target["near_height"] / source["near_height"]
    return (source.get("right", 0.0) - source.get("left", 0.0)) * scale / target["frame_size"][0]


def normalise(landmarks, source, target):
    """One source skeleton (33, 4), normalised to the source's frame, mapped into the target's
    frame (normalised to it): scaled by the paper's factor about the source's usual centre and
    ankle line, which land on the target's, and kept in view (`placement`). z is scaled with
    x; visibility is kept."""
    lm = np.asarray(landmarks, np.float32).copy()
    sw, sh = source["frame_size"]
    tw, th = target["frame_size"]
    pts = lm[:, :2] * (sw, sh)
    scale, (sx, sy), (tx, ty) = placement(landmarks, source, target)
    out = (pts - (sx, sy)) * scale + (tx, ty)
    lm[:, :2] = out / (tw, th)
    lm[:, 2] = lm[:, 2] * scale * sw / tw
    return lm


def normalised_box(box, landmarks, source, target):
    """Where a source crop's square `box` (x0, y0, side in source pixels) lands in the target's
    frame when the skeleton is normalised (`placement`): (x0, y0, side) in target pixels."""
    scale, (sx, sy), (tx, ty) = placement(landmarks, source, target)
    x0, y0, side = box
    return (x0 - sx) * scale + tx, (y0 - sy) * scale + ty, side * scale


# ---- everything between detector and generator, for a whole video ---------------------
def drive_track(landmarks, frame_index, frame_size, fps, smoother, margin, stats=None):
    """What the demo feeds a generator, for a whole video at once: skeletons found in frames
    `frame_index` (landmarks (N, 33, 4) normalised to frames of `frame_size`) smoothed over
    time (gaps included), mapped into the target's frame when `stats` = (source, target)
    pose_stats are given, and expressed in the coordinates of their person-centred crops.
    Returns (N, 33, 4)."""
    line = timeline(landmarks, frame_index)
    smooth = smooth_track(line, smoother, fps)[np.asarray(frame_index) - frame_index[0]]
    size = frame_size
    if stats is not None:
        smooth = np.stack([normalise(lm, *stats) for lm in smooth])
        size = stats[1]["frame_size"]
    return np.stack([crop_landmarks(lm, size, margin)[0] for lm in smooth])


# ---- the before/after picture --------------------------------------------------------------
def _panel(target_landmarks, target, drawn, title, height):
    """The target's frame (scaled to `height`) with a few of the target's own skeletons faded
    in grey, its far and near ankle lines, and the skeletons `drawn` (normalised to it)."""
    tw, th = target["frame_size"]
    w = int(round(height * tw / th))
    ghost = np.zeros((height, w, 3), np.uint8)
    for lm in target_landmarks:
        Skeleton(lm).draw(ghost, thickness=2)
    image = (cv2.cvtColor(cv2.cvtColor(ghost, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) * 0.35).astype(np.uint8)
    for name in ("far", "near"):
        y = int(round(target[name] / th * height))
        cv2.line(image, (0, y), (w - 1, y), (90, 90, 90), 1)
        cv2.putText(image, f"target {name}", (4, y - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (150, 150, 150), 1, cv2.LINE_AA)
    for lm in drawn:
        Skeleton(lm).draw(image, thickness=2)
    cv2.putText(image, opencv_text(title), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def normalisation_figure(sources, target, count=2, height=256):
    """One row per source: its skeletons at its far and near ankle heights placed in
    the target's frame as they are (before) and normalised (after), over the target's own
    skeletons. `sources` is a list of (name, landmarks, frame size), `target` one such triple."""
    t_name, t_lm, t_size = target
    t_stats = pose_stats(t_lm, t_size)
    ghosts = t_lm[np.argsort(ankle_y(t_lm))[evenly_spaced(len(t_lm), 3)]]
    rows = []
    for name, lm, size in sources:
        stats = pose_stats(lm, size)
        ankles = ankle_y(lm) * size[1]
        picks = [int(np.nanargmin(np.abs(ankles - y)))
                 for y in np.linspace(stats["far"], stats["near"], count)]
        before = [lm[i] for i in picks]   # the source's coordinates, taken as the target's
        after = [normalise(lm[i], stats, t_stats) for i in picks]
        rows.append(np.concatenate([
            _panel(ghosts, t_stats, before, f"{name} in {t_name}: before", height),
            np.full((height, 4, 3), 255, np.uint8),
            _panel(ghosts, t_stats, after, "after normalisation", height)], axis=1))
    sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for r in rows for x in (r, sep)][:-1], axis=0)


def main():
    parser = argparse.ArgumentParser(description="Draw the global pose normalisation: each source's "
                                                 "skeletons in the target's frame, before and after.")
    parser.add_argument("--sources", nargs="+", default=["karate1.mp4", "taichi2.mp4"], help="source videos")
    parser.add_argument("--target", default="taichi1.mp4", help="target video (default: taichi1.mp4)")
    parser.add_argument("--output", default="images/normalisation.png", help="image to write")
    args = parser.parse_args()
    paths = [data_path(v) for v in [args.target, *args.sources]]
    check_output(args.output, IMAGE_SUFFIXES, "image", inputs=paths)
    videos = [VideoSkeleton(p) for p in paths]
    triples = [(v.filename.stem, v.frame_landmarks(), v.frame_size) for v in videos]
    write_image(args.output, normalisation_figure(triples[1:], triples[0]))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    cli_main(main)
