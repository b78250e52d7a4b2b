"""The source's skeletons between the detector and the generator: mapped into the target's
space (the global pose normalisation of Everybody Dance Now), after smoothing.py has smoothed
them over time.

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

import cv2
import numpy as np

from files import IMAGE_SUFFIXES, check_output, opencv_text, write_image
from project import cli_main, data_path, evenly_spaced
from Skeleton import Skeleton, crop_skeleton
from smoothing import smooth_track
from VideoSkeleton import VideoSkeleton

# ---- defaults ----
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
