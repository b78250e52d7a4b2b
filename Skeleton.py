"""A person's pose as MediaPipe Pose sees it, and the square crops around it.

A `Skeleton` holds MediaPipe's 33 landmarks as a (33, 4) float32 array of
x, y, z, visibility. x and y are normalised to the image the skeleton lives in
([0, 1] across its width and height), exactly as MediaPipe returns them; z is
MediaPipe's depth, on the same scale as x. The generators use a reduced form:
13 joints (nose, shoulders, elbows, wrists, hips, knees, ankles), flattened to
a 26-vector (x0, y0, x1, y1, ...).

The detector that finds skeletons in images is `pose_detector.PoseDetector`.
"""
import cv2
import numpy as np

NUM_LANDMARKS = 33
# MediaPipe indices of the 13 joints the generators use, in the order of the 26-vector.
REDUCED_IDS = np.array([0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
REDUCED_DIM = 2 * len(REDUCED_IDS)  # 26
TORSO_IDS = np.array([11, 12, 23, 24])  # MediaPipe's shoulders and hips: where a body's centre is
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 1, 2  # their places among the 13 reduced joints (the neck is drawn)

# How a person is framed, everywhere in the project (datasets, demo, evaluation). Every model
# records the crop margin it was trained with, and the demo crops its source with that margin.
CROP_MARGIN = 0.2       # room around the person's box, as a fraction of its larger side, each side

# A person standing upright facing the camera, arms down, in the middle of a crop: the 13 reduced
# joints' (x, y), normalised to the crop (the person's left on the right of the picture). The
# pose a generator is warmed up on before a live camera starts (Generator.warm_up).
STANDING = np.array([0.50, 0.18, 0.58, 0.30, 0.42, 0.30, 0.61, 0.44, 0.39, 0.44, 0.62, 0.57, 0.38, 0.57,
                     0.56, 0.58, 0.44, 0.58, 0.56, 0.74, 0.44, 0.74, 0.56, 0.90, 0.44, 0.90], np.float32)

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
        if ok[NOSE] and ok[LEFT_SHOULDER] and ok[RIGHT_SHOULDER]:  # neck: nose to the middle of the shoulders
            neck = tuple(((pts[LEFT_SHOULDER] + pts[RIGHT_SHOULDER]) / 2).round().astype(int))
            cv2.line(image, tuple(pix[NOSE]), neck, SIDE_COLOURS["centre"], thickness, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(image, tuple(pix[j]), thickness + 1, JOINT_COLOUR, -1, cv2.LINE_AA)
        return image


def full_landmarks(skeletons):
    """The one pose format inside the generators, from any a user passes: (N, 33, 4) float32
    landmark arrays from landmark arrays (N, 33, 4), flat ones (N, 132), reduced 26-vectors
    (N, 26) or a sequence of Skeletons. Landmarks a reduced vector does not know are NaN
    (see `Skeleton.from_array`). Called once, where skeletons come in (`Generator.generate_batch`);
    everything past it takes (N, 33, 4) only (`landmark_array`)."""
    if len(skeletons) and isinstance(skeletons[0], Skeleton):
        return np.stack([s.landmarks for s in skeletons])
    arr = np.asarray(skeletons, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[1:] == (NUM_LANDMARKS, 4):
        return arr
    return np.stack([Skeleton.from_array(v).landmarks for v in arr.reshape(len(arr), -1)]) if len(arr) \
        else np.zeros((0, NUM_LANDMARKS, 4), np.float32)


def landmark_array(landmarks):
    """`landmarks` as a float32 array, checked to be (N, 33, 4): what every function past
    `full_landmarks` takes. A ValueError for any other shape (a 26-vector that slipped past the
    boundary would otherwise be read as something else)."""
    arr = np.asarray(landmarks, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_LANDMARKS, 4):
        raise ValueError(f"expected landmarks of shape (N, {NUM_LANDMARKS}, 4), got {arr.shape}: convert skeletons "
                         f"once with Skeleton.full_landmarks")
    return arr


def reduced_vectors(landmarks):
    """(N, 33, 4) landmarks -> (N, 26) float32: the 13 reduced joints' x, y (the seed's vector)."""
    arr = landmark_array(landmarks)
    return arr[:, REDUCED_IDS, :2].reshape(len(arr), REDUCED_DIM)


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
