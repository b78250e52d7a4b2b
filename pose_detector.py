"""Finding a person's pose in an image with MediaPipe Pose, and following one person.

`PoseDetector` wraps `mp.solutions.pose.Pose`. It feeds MediaPipe RGB, adds a replicated border
before detection (on tight person crops the detector misses many frames without one) and maps
the landmarks back to the original image. What MediaPipe answers is believed only when it looks
like a person in the frame (`plausible`); in tracking mode the detector follows the first person
it finds and says when another one is in view.
"""
import logging

import cv2
import numpy as np

from project import DanceError
from quiet_mediapipe import QuietSolution, quiet_stderr
from Skeleton import REDUCED_IDS, TORSO_IDS, Skeleton

log = logging.getLogger("dance")

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
BLANK_SAMPLES = 128 * 128   # pixels, at most, whose median colour fills the blank (a grid of them: the
                            # median of a 1080p frame's 2 million took 60 ms, on the frame's path)
WARM_UP_SIDE = 64       # the blank frame a detector starts its inference engine on


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
    torso = pts[TORSO_IDS]
    centre = np.nanmean(torso, axis=0) if np.isfinite(torso).all(axis=1).any() else known.mean(axis=0)
    return float(centre[0]), float(centre[1]), float(max((known.max(axis=0) - known.min(axis=0)).max(), 1.0))


def blank_out(image, landmarks):
    """A copy of `image` (BGR) with the person of `landmarks` (33, 4, normalised to it) covered:
    their skeleton's box grown by BLANK_GROW each side, filled with the image's median colour
    (of every pixel up to BLANK_SAMPLES of them, else of an even grid of about that many)."""
    h, w = image.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / BLANK_SAMPLES))))
    pts = np.asarray(landmarks, np.float32)[:, :2] * (w, h)
    pts = pts[np.isfinite(pts).all(axis=1)]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    gx, gy = BLANK_GROW * (x1 - x0), BLANK_GROW * (y1 - y0)
    x0, x1 = int(np.clip(x0 - gx, 0, w)), int(np.clip(x1 + gx, 0, w))
    y0, y1 = int(np.clip(y0 - gy, 0, h)), int(np.clip(y1 + gy, 0, h))
    out = image.copy()
    out[y0:y1, x0:x1] = np.median(image[::step, ::step].reshape(-1, image.shape[2]), axis=0).astype(image.dtype)
    return out


def check_frame_size(size, name):
    """A DanceError unless frames of `size` (w, h) are large enough to find a person in."""
    if min(size) < MIN_FRAME_SIDE:
        raise DanceError(f"{name}: its frames are {size[0]}x{size[1]} pixels, too small to find a person in "
                         f"(at least {MIN_FRAME_SIDE} on each side); use a larger video")


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
        self._closed = False
        self._spoken = set()   # id() of the graphs that have found someone: their start-up notes are over
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

    def warm_up(self, image):
        """Start MediaPipe's models on `image` (BGR uint8), the first frame of what comes next: their
        one-time start (the landmark model loads at the first person seen; in tracking mode the
        second graph, for the checks for another person, at the first check) is then paid before
        a live capture starts, not by its frames (measured at 1080p: 9 frames dropped at the
        first check). MediaPipe's tracking is seeded by it (the next frame is that one); nothing
        is counted."""
        self._landmarks(self._solution, image, count=False)
        if self.tracking:
            self._landmarks(self._static_solution(), image, count=False)

    def _landmarks(self, solution, image, count=True):
        """MediaPipe's landmarks (33, 4) of the person in `image`, normalised to it, or None;
        implausible ones are counted in `rejected` (unless `count` is False: a check)."""
        h, w = image.shape[:2]
        m = int(round(self.margin * max(h, w)))
        padded = cv2.copyMakeBorder(image, m, m, m, m, cv2.BORDER_REPLICATE) if m else image
        rgb = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)
        if id(solution) in self._spoken:
            result = solution.process(rgb)
        else:  # its landmark model starts, and logs its notes, at the first person the graph sees
            with quiet_stderr():
                result = solution.process(rgb)
            if result.pose_landmarks is not None:
                self._spoken.add(id(solution))
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
        """Close MediaPipe's graphs and say, once, whether another person was seen; closing a
        closed detector does nothing."""
        if self._closed:
            return
        self._closed = True
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
