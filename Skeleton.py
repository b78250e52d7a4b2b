"""A person's pose as MediaPipe Pose sees it, and the detector that finds it.

A `Skeleton` holds MediaPipe's 33 landmarks as a (33, 4) float32 array of
x, y, z, visibility. x and y are normalised to the image the skeleton lives in
([0, 1] across its width and height), exactly as MediaPipe returns them; z is
MediaPipe's depth, on the same scale as x. The generators use a reduced form:
13 joints (nose, shoulders, elbows, wrists, hips, knees, ankles), flattened to
a 26-vector (x0, y0, x1, y1, ...).

`PoseDetector` wraps `mp.solutions.pose.Pose`. It feeds MediaPipe RGB, adds a
replicated border before detection (on tight person crops the detector misses
many frames without one) and maps the landmarks back to the original image.
"""
import contextlib
import logging
import os
import sys
import tempfile

import cv2
import numpy as np

from project import DanceError

log = logging.getLogger("dance")

NUM_LANDMARKS = 33
# MediaPipe indices of the 13 joints the generators use, in the order of the 26-vector.
REDUCED_IDS = np.array([0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
REDUCED_NAMES = ("nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                 "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                 "right_knee", "left_ankle", "right_ankle")
REDUCED_DIM = 2 * len(REDUCED_IDS)  # 26

# How a person is framed, everywhere in the project (datasets, demo, evaluation). Every model
# records the crop margin it was trained with, and the demo crops its source with that margin.
CROP_MARGIN = 0.2       # room around the person's box, as a fraction of its larger side, each side
DETECT_MARGIN = 0.25    # replicated border added before detection, as a fraction of the frame's larger side,
                        # where it helps (tight crops; see VideoSkeleton.choose_detect_margin)
# What a detection must look like to be believed. MediaPipe always answers something on a
# frame too small or too blurred to show anyone: on a 32x32 clip, "skeletons" whose joints
# reach 3 frame widths outside it with a mean visibility of 0.08-0.10. Real people in this
# project's footage: mean visibility of the 13 joints 0.59 at the lowest (taichi1, 3,000
# frames), 0.74 (taichi2), 0.82 (karate1), no joint outside the frame.
MIN_VISIBILITY = 0.3    # mean MediaPipe visibility of the 13 reduced joints
MAX_OUTSIDE = 1.0       # how far a joint may lie outside the frame, in frame widths / heights
MIN_FRAME_SIDE = 64     # pixels: smaller frames cannot show a person MediaPipe can find
# Following one person when several are in view (PoseDetector, tracking mode). MediaPipe Pose
# finds one person; when it loses the one it follows it re-detects and may come back on another.
JUMP = 0.5              # a skeleton whose torso centre lies this many body sizes (box side) from the
JUMP_PER_CALL = 0.05    # followed person's last one, plus this much per frame since (they move), at
JUMP_MAX = 1.0          # most this many, is someone else
FOLLOW_CALLS = 50       # frames the followed person may be missing before another one is followed
OTHERS_EVERY = 25       # frames between checks for another person in view (the followed one blanked)
BLANK_GROW = 0.15       # a person blanked out is their skeleton's box grown by this share each side
WARM_UP_SIDE = 64       # the blank frame a detector starts its inference engine on

# Bones between reduced joints (indices into REDUCED_IDS) and the side they belong to.
# MediaPipe's "left" is the person's left, which appears on the right of a facing person.
BONES = (
    (1, 3, "left"), (3, 5, "left"), (7, 9, "left"), (9, 11, "left"), (1, 7, "left"),
    (2, 4, "right"), (4, 6, "right"), (8, 10, "right"), (10, 12, "right"), (2, 8, "right"),
    (1, 2, "centre"), (7, 8, "centre"),
)
SIDE_COLOURS = {"left": (0, 165, 255), "right": (255, 128, 0), "centre": (80, 220, 80)}  # BGR
JOINT_COLOUR = (255, 255, 255)


class Skeleton:
    """33 MediaPipe landmarks, normalised to the image they were found in.

    The method names `boundingBox`, `crop`, `distance` and `draw` follow the course
    code this toolkit grew from, so that its exercises still read naturally.
    """

    def __init__(self, landmarks):
        landmarks = np.asarray(landmarks, dtype=np.float32)
        if landmarks.shape != (NUM_LANDMARKS, 4):
            raise ValueError(f"a Skeleton needs ({NUM_LANDMARKS}, 4) landmarks, got {landmarks.shape}")
        self.landmarks = landmarks.copy()

    # ---- construction and conversions ---------------------------------------------
    @classmethod
    def from_image(cls, image, detector=None):
        """The skeleton of the person in a BGR image, or None if MediaPipe finds nobody.
        Pass a `PoseDetector` to reuse one across calls (creating one takes time)."""
        if detector is not None:
            return detector.detect(image)
        with PoseDetector(tracking=False) as det:
            return det.detect(image)

    @classmethod
    def from_array(cls, array):
        """Rebuild from `to_array()` (33x4 or 132 values) or from a reduced 26-vector.

        A reduced vector restores the 13 joints with visibility 1; the other
        landmarks are unknown and stored as NaN, which every method here ignores.
        """
        array = np.asarray(array, dtype=np.float32)
        if array.size == NUM_LANDMARKS * 4:
            return cls(array.reshape(NUM_LANDMARKS, 4))
        if array.size == REDUCED_DIM:
            landmarks = np.full((NUM_LANDMARKS, 4), np.nan, dtype=np.float32)
            landmarks[REDUCED_IDS, :2] = array.reshape(-1, 2)
            landmarks[REDUCED_IDS, 2] = 0.0
            landmarks[REDUCED_IDS, 3] = 1.0
            return cls(landmarks)
        raise ValueError(f"cannot build a Skeleton from an array of shape {array.shape}: "
                         f"expected {NUM_LANDMARKS * 4} or {REDUCED_DIM} values")

    def to_array(self):
        """The full (33, 4) landmark array (a copy)."""
        return self.landmarks.copy()

    def reduced(self):
        """The 13 generator joints as a (13, 2) array of x, y."""
        return self.landmarks[REDUCED_IDS, :2].copy()

    def vector(self):
        """The reduced skeleton as the 26-vector the generators take."""
        return self.reduced().reshape(-1)

    def __array__(self, dtype=None, copy=None):
        # np.asarray(ske) gives the 26-vector, as in the course code.
        vec = self.vector()
        return vec if dtype is None else vec.astype(dtype)

    def __repr__(self):
        x0, y0, x1, y1 = self.boundingBox()
        return f"Skeleton(box=({x0:.2f}, {y0:.2f}, {x1:.2f}, {y1:.2f}))"

    # ---- geometry ----------------------------------------------------------------
    def boundingBox(self):
        """(xmin, ymin, xmax, ymax) over all known landmarks, in normalised coordinates."""
        xy = self.landmarks[:, :2]
        xy = xy[~np.isnan(xy).any(axis=1)]
        return (float(xy[:, 0].min()), float(xy[:, 1].min()),
                float(xy[:, 0].max()), float(xy[:, 1].max()))

    def crop(self, x, y, w, h):
        """The skeleton seen from inside the box (x, y, w, h), all normalised to the
        current image: what was at (x, y) moves to (0, 0) and (x+w, y+h) to (1, 1).
        z keeps its ratio to x. Returns a new Skeleton."""
        out = self.landmarks.copy()
        out[:, 0] = (out[:, 0] - x) / w
        out[:, 1] = (out[:, 1] - y) / h
        out[:, 2] = out[:, 2] / w
        return Skeleton(out)

    def distance(self, other):
        """Mean Euclidean distance between the 13 reduced joints of two skeletons.

        A metric (zero to itself, symmetric, triangle inequality) in the units of
        the normalised coordinates, so only comparable within one image frame."""
        return float(np.linalg.norm(self.reduced() - other.reduced(), axis=1).mean())

    # ---- drawing -----------------------------------------------------------------
    def draw(self, image, thickness=None):
        """Draw the stick figure onto `image` (BGR, any size) in place, and return it.

        The person's left limbs are orange, right limbs blue, the torso's cross
        bars green, so a mirrored pose is visible at a glance."""
        h, w = image.shape[:2]
        if thickness is None:
            thickness = max(1, round(min(h, w) / 64))
        pts = self.reduced() * np.array([w, h], dtype=np.float32)
        ok = ~np.isnan(pts).any(axis=1)
        pix = np.where(ok[:, None], pts, 0).round().astype(int)
        for a, b, side in BONES:
            if ok[a] and ok[b]:
                cv2.line(image, tuple(pix[a]), tuple(pix[b]), SIDE_COLOURS[side], thickness, cv2.LINE_AA)
        if ok[0] and ok[1] and ok[2]:  # neck: nose to the middle of the shoulders
            neck = tuple(((pts[1] + pts[2]) / 2).round().astype(int))
            cv2.line(image, tuple(pix[0]), neck, SIDE_COLOURS["centre"], thickness, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(image, tuple(pix[j]), thickness + 1, JOINT_COLOUR, -1, cv2.LINE_AA)
        return image


def reduced_vectors(skeletons):
    """(N, 26) float32 reduced vectors from a batch of skeletons given either as
    reduced vectors (N, 26) or as full landmark arrays (N, 33, 4): what every
    generator's `generate_batch` accepts."""
    arr = np.asarray(skeletons, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[1:] == (NUM_LANDMARKS, 4):
        return arr[:, REDUCED_IDS, :2].reshape(len(arr), 2 * len(REDUCED_IDS))
    return arr.reshape(len(arr), -1)


def full_landmarks(skeletons):
    """(N, 33, 4) landmark arrays from reduced vectors (N, 26) or landmark arrays;
    landmarks a reduced vector does not know are NaN (see `Skeleton.from_array`)."""
    arr = np.asarray(skeletons, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[1:] == (NUM_LANDMARKS, 4):
        return arr
    return np.stack([Skeleton.from_array(v).landmarks for v in arr.reshape(len(arr), -1)]) if len(arr) \
        else np.zeros((0, NUM_LANDMARKS, 4), np.float32)


def square_box(ske, image_size, margin=CROP_MARGIN):
    """The square around a person, in pixels: (x0, y0, side).

    Its side is the larger side of the skeleton's bounding box grown by `margin`
    on each side, so the person fits whatever their pose; it is centred on the
    box and may reach outside the image (`crop_square` pads)."""
    w, h = image_size
    x0, y0, x1, y1 = ske.boundingBox()
    bw, bh = (x1 - x0) * w, (y1 - y0) * h
    side = max(bw, bh) * (1 + 2 * margin)
    side = max(side, 8.0)  # a degenerate box (one visible point) still gets a usable crop
    cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
    return cx - side / 2, cy - side / 2, side


def crop_square(image, box, size):
    """Cut the square `box` (x0, y0, side in pixels) out of `image` and resize it to
    size x size. Parts outside the image are filled by replicating its border, so the
    crop never slices out of bounds and the aspect ratio is never distorted."""
    x0, y0, side = box
    scale = size / side
    # One affine warp does the translation, scale and padding in a single resample.
    m = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], dtype=np.float32)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def crop_skeleton(ske, image_size, margin=CROP_MARGIN):
    """`ske` seen from inside its square box (see `square_box`): (skeleton in crop
    coordinates, box). The skeleton half of `crop_person`, for when there is no image."""
    w, h = image_size
    box = square_box(ske, image_size, margin)
    x0, y0, side = box
    return ske.crop(x0 / w, y0 / h, side / w, side / h), box


def crop_person(image, ske, size, margin=CROP_MARGIN):
    """Square crop of `image` around `ske`: (crop, skeleton in crop coordinates, box)."""
    h, w = image.shape[:2]
    cropped, box = crop_skeleton(ske, (w, h), margin)
    return crop_square(image, box, size), cropped, box


@contextlib.contextmanager
def quiet_stderr():
    """Silence C++ logging written straight to file descriptor 2 (TFLite's and glog's
    start-up banners). What was written is replayed if the block fails, so a real
    error message is never lost."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # no real stderr (e.g. some IDEs)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def plausible(landmarks):
    """Whether landmarks (33, 4), normalised to their frame, look like a person in it: the
    13 joints visible enough on average and none far outside the frame (see MIN_VISIBILITY)."""
    joints = np.asarray(landmarks, np.float32)[REDUCED_IDS]
    outside = np.maximum(-joints[:, :2], joints[:, :2] - 1).max()
    return bool(joints[:, 3].mean() >= MIN_VISIBILITY and outside <= MAX_OUTSIDE)


def body_box(landmarks, shape):
    """(centre x, centre y, side) in pixels of an image of `shape` (h, w, ...): the torso's
    centre (shoulders and hips) and the larger side of the box of all the known landmarks."""
    h, w = shape[:2]
    pts = np.asarray(landmarks, np.float32)[:, :2] * (w, h)
    known = pts[np.isfinite(pts).all(axis=1)]
    torso = pts[[11, 12, 23, 24]]
    centre = np.nanmean(torso, axis=0) if np.isfinite(torso).all(axis=1).any() else known.mean(axis=0)
    return float(centre[0]), float(centre[1]), float(max((known.max(axis=0) - known.min(axis=0)).max(), 1.0))


def blank_out(image, landmarks):
    """A copy of `image` (BGR) with the person of `landmarks` (33, 4, normalised to it) covered:
    their skeleton's box grown by BLANK_GROW each side, filled with the image's median colour."""
    h, w = image.shape[:2]
    pts = np.asarray(landmarks, np.float32)[:, :2] * (w, h)
    pts = pts[np.isfinite(pts).all(axis=1)]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    gx, gy = BLANK_GROW * (x1 - x0), BLANK_GROW * (y1 - y0)
    x0, x1 = int(np.clip(x0 - gx, 0, w)), int(np.clip(x1 + gx, 0, w))
    y0, y1 = int(np.clip(y0 - gy, 0, h)), int(np.clip(y1 + gy, 0, h))
    out = image.copy()
    out[y0:y1, x0:x1] = np.median(image.reshape(-1, image.shape[2]), axis=0).astype(image.dtype)
    return out


def check_frame_size(size, name):
    """A DanceError unless frames of `size` (w, h) are large enough to find a person in."""
    if min(size) < MIN_FRAME_SIDE:
        raise DanceError(f"{name}: its frames are {size[0]}x{size[1]} pixels, too small to find a person in "
                         f"(at least {MIN_FRAME_SIDE} on each side); use a larger video")


class QuietSolution:
    """A MediaPipe solution (its graph in `self._solution`), closed with its C++ banners
    silenced (quiet_stderr) and usable as a context manager; subclasses start it likewise."""

    def close(self):
        with quiet_stderr():
            self._solution.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PoseDetector(QuietSolution):
    """MediaPipe Pose (`mp.solutions.pose`, model_complexity=1, the one model that
    ships inside the mediapipe==0.10.21 wheel) returning `Skeleton`s.

    tracking=True keeps MediaPipe in video mode: landmarks from one frame seed the
    next, which is faster and steadier on consecutive frames. Use tracking=False
    for independent images. `margin` is the width of the replicated border added
    on each side, as a fraction of the frame's larger side.
    """

    def __init__(self, tracking=True, margin=DETECT_MARGIN, min_confidence=0.5):
        self.rejected = 0  # detections dropped as implausible (see `plausible`)
        self.tracking = tracking
        # Following one person (tracking mode): where they were, how many frames ago; frames in
        # which another person was seen, the first of them, and times another was taken up.
        self._followed, self._since, self._calls, self._static = None, 0, 0, None
        self.others, self.first_other, self.switches = 0, None, []
        self._min_confidence = min_confidence
        # The inference engine prints banners from a worker thread while the graph starts (at
        # the first frame it sees). Start it on a blank frame inside one quiet window, so that no
        # half banner lands later in front of a message of ours.
        with quiet_stderr():
            import mediapipe as mp
            self._solution = mp.solutions.pose.Pose(
                static_image_mode=not tracking, model_complexity=1,
                min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence)
            self._solution.process(np.zeros((WARM_UP_SIDE, WARM_UP_SIDE, 3), np.uint8))  # nobody: no state kept
        self.margin = margin

    def detect(self, image):
        """The skeleton of the person in `image` (BGR uint8), or None if none is found or what
        MediaPipe found is not `plausible` (counted in `rejected`).

        In tracking mode it follows one person: the first one found. A skeleton that appears
        far from where that person just was (JUMP) is someone else; it is blanked out and the
        frame searched again, and if the followed person is not found there, no skeleton is
        returned, until they have been missing FOLLOW_CALLS frames (then the one found is
        followed, listed in `switches`). Every OTHERS_EVERY frames the followed person is blanked
        and the frame searched for another one; frames where one was seen: `others`."""
        self._calls += 1
        lm = self._landmarks(self._solution, image)
        if not self.tracking:
            return None if lm is None else Skeleton(lm)
        if lm is not None and self._followed is not None and self._jumped(lm, image.shape):
            self._saw_other()
            blanked = blank_out(image, lm)
            lm = self._landmarks(self._solution, blanked)  # the tracker is left on the person followed
            lm = self._landmarks(self._solution, blanked) if lm is None else lm
            if lm is not None and self._jumped(lm, image.shape):
                lm = None
            if lm is None and self._since >= FOLLOW_CALLS:  # long gone: follow the one found, and say so
                lm = self._landmarks(self._solution, image)
                if lm is not None:
                    self.switches.append(self._calls)
        elif lm is not None and self._calls % OTHERS_EVERY == 0 and \
                self._landmarks(self._static_solution(), blank_out(image, lm), count=False) is not None:
            self._saw_other()
        if lm is None:
            self._since += 1
            return None
        self._followed, self._since = body_box(lm, image.shape), 1
        return Skeleton(lm)

    def _landmarks(self, solution, image, count=True):
        """MediaPipe's landmarks (33, 4) of the person in `image`, normalised to it, or None;
        implausible ones are counted in `rejected` (unless `count` is False: a check)."""
        h, w = image.shape[:2]
        m = int(round(self.margin * max(h, w)))
        padded = cv2.copyMakeBorder(image, m, m, m, m, cv2.BORDER_REPLICATE) if m else image
        result = solution.process(cv2.cvtColor(padded, cv2.COLOR_BGR2RGB))
        if result.pose_landmarks is None:
            return None
        lm = np.array([[p.x, p.y, p.z, p.visibility] for p in result.pose_landmarks.landmark],
                      dtype=np.float32)
        # Back from the padded frame to the original one.
        ph, pw = padded.shape[:2]
        lm[:, 0] = (lm[:, 0] * pw - m) / w
        lm[:, 1] = (lm[:, 1] * ph - m) / h
        lm[:, 2] = lm[:, 2] * pw / w
        if not plausible(lm):
            self.rejected += count
            return None
        return lm

    def _jumped(self, lm, shape):
        """Whether landmarks `lm` lie too far from the followed person to be them (JUMP)."""
        (x, y, _), (fx, fy, side) = body_box(lm, shape), self._followed
        return np.hypot(x - fx, y - fy) > side * min(JUMP + JUMP_PER_CALL * (self._since - 1), JUMP_MAX)

    def _saw_other(self):
        self.others += 1
        if self.first_other is None:
            self.first_other = self._calls
            log.warning("more than one person in view (frame %d processed): following the one found first",
                        self._calls)

    def _static_solution(self):
        """A second MediaPipe Pose, on independent images, for the checks for another person."""
        if self._static is None:
            with quiet_stderr():
                import mediapipe as mp
                self._static = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                                      min_detection_confidence=self._min_confidence)
        return self._static

    def close(self):
        super().close()
        if self._static is not None:
            with quiet_stderr():
                self._static.close()
            self._static = None
        if self.others:
            log.warning("another person was seen in %d of %d frames processed (checked every %d frames and "
                        "wherever the skeleton jumped)%s", self.others, self._calls, OTHERS_EVERY,
                        f"; after the person followed was lost for {FOLLOW_CALLS}+ frames, another was followed "
                        f"from frame {', '.join(map(str, self.switches))}" if self.switches
                        else "; the person found first was followed throughout")
            self.others = 0  # said once
