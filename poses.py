"""Poses as the generators see them: compared without position and scale, and drawn.

Comparing. Two people rarely stand at the same place in their frames or at the same size,
so poses are compared after normalising both away: each skeleton's 13 joints are centred
on their mean and divided by their RMS spread (Procrustes analysis without rotation), and
the distance between two poses is the mean distance between corresponding joints.
`PoseIndex` finds, for any pose, the nearest of a bank of poses (a target's frames): the
nearest-neighbour generator, and the baseline every trainer logs, are built on it.

Drawing. What a network sees of a pose is a picture of it, drawn the same way at training
and at inference:
  pose_images  the 13 reduced joints as a stick figure (Skeleton.draw), for the seed's
               networks (GenVanillaNN's U-Net input, GenGAN's critic);
  pose_maps    all 33 landmarks, each limb segment and side its own colour, the torso
               filled, face, hands and feet included (GenPix2Pix's input). Drawn without
               anti-aliasing, so it is deterministic.
Torch-free: a pure function of the landmarks.
"""
import warnings
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from Skeleton import REDUCED_IDS, Skeleton, landmark_array, reduced_vectors

SEARCH_CHUNK = 2_000_000  # (query, bank) pairs compared at once: ~100 MB of differences at most


# ---- comparing ---------------------------------------------------------------------------
def normalise_poses(landmarks):
    """(N, 33, 4) landmarks -> (N, 13, 2) poses of the 13 reduced joints, centred on their
    mean joint and scaled to unit RMS distance from it (over the joints that are known: a NaN
    joint stays NaN and is left out)."""
    vectors = reduced_vectors(landmarks)  # (N, 26), contiguous: the sums below in the order they always took
    pts = vectors.reshape(len(vectors), len(REDUCED_IDS), 2)
    mean = np.mean if np.isfinite(pts).all() else np.nanmean
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pose with no known joint: all NaN
        centred = pts - mean(pts, axis=-2, keepdims=True)
        spread = np.sqrt(mean((centred ** 2).sum(axis=-1), axis=-1))[..., None, None]
    return centred / np.maximum(spread, 1e-6)


def pose_distances(query, bank):
    """Mean Euclidean joint distance between normalised poses: (Q, 13, 2) x (M, 13, 2) -> (Q, M),
    over the joints both know (NaN where they share none)."""
    diff = query[:, None, :, :] - bank[None, :, :, :]
    joints = np.sqrt((diff ** 2).sum(axis=-1))
    if np.isfinite(joints).all():
        return joints.mean(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(joints, axis=-1)


def farthest_poses(landmarks, count):
    """Indices of `count` poses spread over all the poses a person made ((N, 33, 4) landmarks):
    farthest-point sampling in the normalised pose space, from the first pose, each next
    one the pose farthest from all chosen so far. Deterministic; rare poses get picked."""
    poses = normalise_poses(landmarks)
    count = min(count, len(poses))
    picks = [0]
    gap = pose_distances(poses[:1], poses)[0]
    while len(picks) < count:
        picks.append(int(np.nanargmax(gap)))
        gap = np.fmin(gap, pose_distances(poses[picks[-1]:picks[-1] + 1], poses)[0])
    return np.array(picks[:count], dtype=np.int64)


class PoseIndex:
    """A bank of poses to search: `nearest(skeletons)` gives, for each, the label of the
    closest pose in the bank (position and scale normalised away).

        index = PoseIndex(videoSke.skeletons[train_idx], labels=train_idx)
        frames = index.nearest(query_skeletons)      # frame numbers, from `labels`
    """

    def __init__(self, landmarks, labels=None):
        self.bank = normalise_poses(landmarks)  # (M, 13, 2)
        self.labels = np.arange(len(self.bank)) if labels is None else np.asarray(labels)
        if len(self.bank) == 0 or len(self.labels) != len(self.bank):
            raise ValueError(f"a pose index needs poses, one label each (got {len(self.bank)} poses, "
                             f"{len(self.labels)} labels)")

    def nearest(self, skeletons):
        """Labels of the closest bank pose for each of (N, 33, 4) landmarks."""
        return self.query(skeletons)[0]

    def novelty(self, skeletons):
        """How far each skeleton's pose is from the closest bank pose (mean joint distance, in
        units of the pose's RMS spread): 0 for a pose of the bank, larger for poses it never held."""
        return self.query(skeletons)[1]

    def query(self, skeletons):
        """(labels of the closest bank poses, their distances), one each per skeleton."""
        query = normalise_poses(skeletons)
        chunk = max(1, SEARCH_CHUNK // len(self.bank))
        best, dist = [], []
        for i in range(0, len(query), chunk):
            d = pose_distances(query[i:i + chunk], self.bank)
            best.append(d.argmin(axis=1))
            dist.append(d.min(axis=1))
        return self.labels[np.concatenate(best)], np.concatenate(dist)


# ---- drawing: the stick figure -------------------------------------------------------------
def pose_images(skeletons, size):
    """(N, 33, 4) landmarks in crop coordinates, their 13 reduced joints drawn as stick figures
    on black: (N, size, size, 3) BGR uint8."""
    vectors = reduced_vectors(skeletons)
    out = np.zeros((len(vectors), size, size, 3), np.uint8)
    for im, vec in zip(out, vectors):
        Skeleton.from_array(vec).draw(im, thickness=1)
    return out


# ---- drawing: the rich pose map ------------------------------------------------------------
# (landmark a, landmark b, BGR colour). MediaPipe's "left" is the person's left. Left limbs
# are warm, right limbs cool, each segment its own shade, so a network can tell an upper
# arm from a forearm and a left side from a right side (which way the person faces).
LIMBS = (
    (11, 13, (0, 80, 255)), (13, 15, (0, 160, 255)),                                  # left arm
    (15, 17, (0, 220, 255)), (15, 19, (0, 220, 255)), (15, 21, (0, 220, 255)), (17, 19, (0, 220, 255)),
    (12, 14, (255, 80, 0)), (14, 16, (255, 160, 0)),                                  # right arm
    (16, 18, (255, 220, 0)), (16, 20, (255, 220, 0)), (16, 22, (255, 220, 0)), (18, 20, (255, 220, 0)),
    (23, 25, (0, 0, 255)), (25, 27, (80, 0, 200)),                                    # left leg
    (27, 29, (160, 0, 200)), (29, 31, (160, 0, 200)), (27, 31, (160, 0, 200)),
    (24, 26, (255, 0, 0)), (26, 28, (200, 0, 80)),                                    # right leg
    (28, 30, (200, 0, 160)), (30, 32, (200, 0, 160)), (28, 32, (200, 0, 160)),
    (11, 12, (0, 255, 0)), (23, 24, (0, 160, 0)),                                     # shoulders, hips
    (0, 2, (0, 255, 255)), (2, 7, (0, 255, 255)),                                     # left eye, ear
    (0, 5, (255, 255, 0)), (5, 8, (255, 255, 0)),                                     # right eye, ear
    (9, 10, (255, 0, 255)),                                                           # mouth
)
TORSO = (11, 12, 24, 23)
TORSO_COLOUR = (70, 110, 70)
JOINTS = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)  # the 13 reduced joints, marked white
JOINT_COLOUR = (255, 255, 255)


def pose_map(landmarks, size):
    """One skeleton (33, 4) in crop coordinates drawn as a (size, size, 3) BGR uint8 pose map.
    Landmarks that are NaN (unknown, e.g. a skeleton rebuilt from a 26-vector) are left out."""
    image = np.zeros((size, size, 3), np.uint8)
    pts = np.asarray(landmarks, np.float32)[:, :2] * size
    ok = ~np.isnan(pts).any(axis=1)
    pix = np.where(ok[:, None], pts, 0).round().astype(np.int32)
    thickness = max(1, round(size / 64))
    if all(ok[list(TORSO)]):
        cv2.fillConvexPoly(image, pix[list(TORSO)], TORSO_COLOUR, cv2.LINE_8)
    for a, b, colour in LIMBS:
        if ok[a] and ok[b]:
            cv2.line(image, tuple(pix[a]), tuple(pix[b]), colour, thickness, cv2.LINE_8)
    for j in JOINTS:
        if ok[j]:
            cv2.circle(image, tuple(pix[j]), thickness, JOINT_COLOUR, -1, cv2.LINE_8)
    return image


def pose_maps(skeletons, size):
    """(N, 33, 4) landmarks -> (N, size, size, 3) BGR uint8 pose maps (landmarks that are
    NaN, as in a skeleton rebuilt from a 26-vector, left out)."""
    landmarks = landmark_array(skeletons)
    out = np.zeros((len(landmarks), size, size, 3), np.uint8)
    for k, lm in enumerate(landmarks):
        out[k] = pose_map(lm, size)
    return out


@dataclass(frozen=True)
class PoseRenderer:
    """How skeletons are drawn for a network: renderer(landmarks (N, 33, 4), size) ->
    (N, size, size, channels) uint8. A network's input width is read from `channels`, and a
    model records the renderer it was trained with (`record`) and is refused by a program whose
    renderer differs: bump `version` whenever what `draw` makes changes (tests/test_poses.py
    pins the pictures of each version, so that a change without a bump fails)."""
    name: str
    version: int
    channels: int
    draw: Callable

    def __call__(self, landmarks, size):
        return self.draw(landmarks, size)

    @property
    def record(self):
        """What a model file records of it: {"name", "version", "channels"}."""
        return {"name": self.name, "version": self.version, "channels": self.channels}


STICK_FIGURES = PoseRenderer("pose_images", 1, 3, pose_images)  # the seed's networks' input
POSE_MAPS = PoseRenderer("pose_maps", 1, 3, pose_maps)           # pix2pix's, warp's and layered's
RENDERERS = {r.name: r for r in (STICK_FIGURES, POSE_MAPS)}


# ---- unseen poses: edits of real skeletons that keep every bone's length -------------------
# Limb chains from the body outwards: (root, middle, end joint, the points that move with the
# end: hand points with the wrist, foot points with the ankle).
ARMS = {"left": (11, 13, 15, (17, 19, 21)), "right": (12, 14, 16, (18, 20, 22))}
LEGS = {"left": (23, 25, 27, (29, 31)), "right": (24, 26, 28, (30, 32))}
# Pairs of landmarks whose distance is a bone's length (limbs, hands, feet, the torso's sides).
BONES_33 = tuple((a, b) for chains in (ARMS, LEGS) for root, mid, end, tips in chains.values()
                 for a, b in ((root, mid), (mid, end), *((end, t) for t in tips))) \
    + ((11, 12), (23, 24), (11, 23), (12, 24))
# Each landmark's mirror twin (left <-> right), for the mirror image.
MIRROR = (0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23, 26, 25,
          28, 27, 30, 29, 32, 31)
UP, DOWN = np.array([0.0, -1.0]), np.array([0.0, 1.0])  # image y grows downwards
EDIT_JITTER = 10.0  # degrees: each edit's angles vary by up to this much, seeded


def _turn(vector, degrees):
    """A 2-vector rotated by `degrees` (positive: from +x towards +y, i.e. clockwise on screen)."""
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ vector


def _aim(lm, pivot, ids, direction):
    """Rotate landmarks `ids` rigidly about landmark `pivot` so that the bone pivot -> ids[0]
    points along `direction`. Distances among `ids` and to the pivot are kept."""
    bone = lm[ids[0], :2] - lm[pivot, :2]
    angle = np.arctan2(direction[1], direction[0]) - np.arctan2(bone[1], bone[0])
    c, s = np.cos(angle), np.sin(angle)
    d = lm[list(ids), :2] - lm[pivot, :2]
    lm[list(ids), :2] = lm[pivot, :2] + d @ np.array([[c, s], [-s, c]], np.float32)


def _outward(lm, side):
    """+1 or -1: the image x direction away from the body on `side` (from the other shoulder)."""
    this, other = ARMS[side][0], ARMS["right" if side == "left" else "left"][0]
    return 1.0 if lm[this, 0] >= lm[other, 0] else -1.0


def _arms(lm, direction_of, sides=("left", "right")):
    """Each arm straight along direction_of(side); returns the ids moved."""
    moved = []
    for side in sides:
        root, mid, end, tips = ARMS[side]
        direction = direction_of(side)
        _aim(lm, root, (mid, end, *tips), direction)
        _aim(lm, mid, (end, *tips), direction)
        moved += [mid, end, *tips]
    return moved


def _leg(lm, side, thigh, shin):
    root, mid, end, tips = LEGS[side]
    _aim(lm, root, (mid, end, *tips), thigh)
    _aim(lm, mid, (end, *tips), shin)
    return [mid, end, *tips]


def _bend(lm, degrees):
    """The body above the hips turned by `degrees` about the mid-hip (positive: clockwise on
    screen), the legs then aimed as they were (bones kept); returns the ids moved (all)."""
    legs = {side: (lm[mid, :2] - lm[root, :2], lm[end, :2] - lm[mid, :2])
            for side, (root, mid, end, tips) in LEGS.items()}
    pivot = lm[[23, 24], :2].mean(axis=0)
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    lm[:, :2] = pivot + (lm[:, :2] - pivot) @ np.array([[c, s], [-s, c]], np.float32)
    for side, (thigh, shin) in legs.items():
        _leg(lm, side, thigh, shin)
    return list(range(len(lm)))


ARM_FAMILIES = ("arms_up", "arms_out", "arms_v", "elbows_bent", "arms_crossed")  # the edits that move the arms only


def _edit_arms(lm, family, j, out):
    """`edit_pose` for a family of ARM_FAMILIES: `lm` (33, 4) edited in place, `j` the jitter in
    degrees, `out(side)` the side's outward direction (+1 or -1 in x); returns the ids moved."""
    if family == "arms_up":       # both arms straight up, a little apart
        moved = _arms(lm, lambda s: _turn(UP, out(s) * (15 + j)))
    elif family == "arms_out":    # both arms straight out sideways
        moved = _arms(lm, lambda s: _turn(np.array([out(s), 0.0]), j))
    elif family == "arms_v":      # both arms raised halfway, a V
        moved = _arms(lm, lambda s: _turn(np.array([out(s), 0.0]), -out(s) * (45 + j)))
    elif family == "elbows_bent":  # forearms at right angles to the upper arms, hands up
        moved = []
        for s in ("left", "right"):
            root, mid, end, tips = ARMS[s]
            upper = lm[mid, :2] - lm[root, :2]
            perp = min((_turn(upper, 90), _turn(upper, -90)), key=lambda v: v[1])  # the one pointing up
            _aim(lm, mid, (end, *tips), _turn(perp, j))
            moved += [end, *tips]
    elif family == "arms_crossed":  # both arms raised, the forearms crossed above the head
        moved = []
        for s in ("left", "right"):
            root, mid, end, tips = ARMS[s]
            _aim(lm, root, (mid, end, *tips), _turn(UP, out(s) * (10 + j / 2)))  # upper arms nearly upright
            _aim(lm, mid, (end, *tips), _turn(UP, -out(s) * 85))                 # forearms across, over the head
            moved += [mid, end, *tips]
    return moved


def edit_pose(landmarks, family, rng):
    """One real skeleton (33, 4) edited into a pose of `family` (see EDIT_FAMILIES), every bone
    kept at its length (rigid turns of limb chains about their joints; the whole body for a
    lean, the body above the hips for a torso lean or a bend, the legs then aimed as before;
    the mirror image swaps the sides). No edit moves the whole figure: a crop is cut around
    the person wherever they stand. Returns (edited landmarks, ids of those that moved)."""
    lm = np.asarray(landmarks, np.float32).copy()
    j = rng.uniform(-EDIT_JITTER, EDIT_JITTER)
    side = ("left", "right")[rng.integers(2)]
    out = lambda s: _outward(lm, s)  # noqa: E731
    if family in ARM_FAMILIES:
        moved = _edit_arms(lm, family, j, out)
    elif family == "knee_lift":   # one thigh raised towards horizontal, shin hanging
        moved = _leg(lm, side, _turn(np.array([out(side), 0.0]), out(side) * (20 + j)), DOWN)
    elif family == "kick":        # one leg straight out and up
        direction = _turn(np.array([out(side), 0.0]), -out(side) * (30 + j))
        moved = _leg(lm, side, direction, direction)
    elif family == "low_stance":  # both thighs spread, shins upright
        moved = [i for s in ("left", "right") for i in _leg(lm, s, _turn(DOWN, -out(s) * (45 + j)), DOWN)]
    elif family == "lean":        # the whole body tilted about the feet
        pivot = lm[[LEGS["left"][2], LEGS["right"][2]], :2].mean(axis=0)
        a = np.radians((15 + j) * (1 if side == "left" else -1))
        c, s = np.cos(a), np.sin(a)
        lm[:, :2] = pivot + (lm[:, :2] - pivot) @ np.array([[c, s], [-s, c]], np.float32)
        moved = list(range(len(lm)))
    elif family == "mirror":      # the mirror image: left and right swapped
        lm[:, 0] = 1.0 - lm[:, 0]
        lm = lm[list(MIRROR)]
        moved = list(range(len(lm)))
    elif family == "lunge":       # one knee bent deep, its thigh near level; the other leg stretched out
        other = "right" if side == "left" else "left"
        moved = _leg(lm, side, _turn(DOWN, -out(side) * (75 + j)), DOWN) \
            + _leg(lm, other, _turn(DOWN, -out(other) * (40 + j)), _turn(DOWN, -out(other) * (40 + j)))
    elif family in ("torso_lean_left", "torso_lean_right"):  # the upper body tilted 30 degrees over the hips
        moved = _bend(lm, (30 + j) * (1 if family == "torso_lean_left" else -1))
    elif family == "bend":        # the upper body bent far over to one side, the arms hanging
        moved = _bend(lm, (75 + j) * (1 if side == "left" else -1))
        moved += _arms(lm, lambda s: _turn(DOWN, out(s) * 5))
    elif family == "crouch":      # both knees bent out and up, the shins back in under them
        moved = [i for s in ("left", "right") for i in _leg(lm, s, _turn(DOWN, -out(s) * (75 + j)),
                                                            _turn(DOWN, out(s) * 15))]
    elif family == "one_leg":     # standing on one straight leg, the other knee up, its foot by the knee
        other = "right" if side == "left" else "left"
        moved = _leg(lm, other, DOWN, DOWN) + _leg(lm, side, _turn(DOWN, -out(side) * (80 + j)),
                                                   _turn(DOWN, out(side) * 40))
    elif family == "jump":        # in the air: both knees bent, feet tucked, arms flung up in a V
        moved = [i for s in ("left", "right") for i in _leg(lm, s, _turn(DOWN, -out(s) * (40 + j)),
                                                            _turn(DOWN, out(s) * 25))]
        moved += _arms(lm, lambda s: _turn(np.array([out(s), 0.0]), -out(s) * (55 + j)))
    else:
        raise ValueError(f"unknown pose edit {family!r}; choose one of {', '.join(EDIT_FAMILIES)}")
    return lm, sorted(set(moved))


# The first nine families draw from the seed's first stream, in this order, so that their poses
# stay the ones earlier evaluations scored; the families added later draw from a second stream.
FIRST_FAMILIES = ("arms_up", "arms_out", "arms_v", "elbows_bent", "knee_lift", "kick", "low_stance", "lean",
                  "mirror")
LATER_FAMILIES = ("lunge", "torso_lean_left", "torso_lean_right", "bend", "crouch", "one_leg", "jump",
                  "arms_crossed")
EDIT_FAMILIES = FIRST_FAMILIES + LATER_FAMILIES


def unseen_poses(skeletons, bases, seed=0):
    """A fixed, seeded set of edited poses: each of `bases` skeletons spread evenly over
    `skeletons` (N, 33, 4) edited into every family. Returns (landmarks (M, 33, 4), family of each)."""
    first, later = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    picks = np.linspace(0, len(skeletons) - 1, min(bases, len(skeletons))).round().astype(int)
    poses, families = [], []
    for i in picks:
        for family in EDIT_FAMILIES:
            poses.append(edit_pose(skeletons[i], family, first if family in FIRST_FAMILIES else later)[0])
            families.append(family)
    return np.stack(poses), families
