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
import cv2
import numpy as np

from Skeleton import Skeleton, full_landmarks, reduced_vectors

SEARCH_CHUNK = 2_000_000  # (query, bank) pairs compared at once: ~100 MB of differences at most


# ---- comparing ---------------------------------------------------------------------------
def normalise_poses(vectors):
    """(..., 26) reduced skeletons -> (..., 13, 2) poses centred on their mean joint
    and scaled to unit RMS distance from it."""
    pts = np.asarray(vectors, dtype=np.float32).reshape(*np.shape(vectors)[:-1], -1, 2)
    centred = pts - pts.mean(axis=-2, keepdims=True)
    spread = np.sqrt((centred ** 2).sum(axis=-1).mean(axis=-1))[..., None, None]
    return centred / np.maximum(spread, 1e-6)


def pose_distances(query, bank):
    """Mean Euclidean joint distance between normalised poses: (Q, 13, 2) x (M, 13, 2) -> (Q, M)."""
    diff = query[:, None, :, :] - bank[None, :, :, :]
    return np.sqrt((diff ** 2).sum(axis=-1)).mean(axis=-1)


class PoseIndex:
    """A bank of poses to search: `nearest(skeletons)` gives, for each, the label of the
    closest pose in the bank (position and scale normalised away).

        index = PoseIndex(videoSke.vectors()[train_idx], labels=train_idx)
        frames = index.nearest(query_skeletons)      # frame numbers, from `labels`
    """

    def __init__(self, vectors, labels=None):
        self.bank = normalise_poses(reduced_vectors(vectors))  # (M, 13, 2)
        self.labels = np.arange(len(self.bank)) if labels is None else np.asarray(labels)
        if len(self.bank) == 0 or len(self.labels) != len(self.bank):
            raise ValueError(f"a pose index needs poses, one label each (got {len(self.bank)} poses, "
                             f"{len(self.labels)} labels)")

    def nearest(self, skeletons):
        """Labels of the closest bank pose for skeletons given as (N, 26), (N, 33, 4) or a
        list of Skeletons / 26-vectors."""
        vectors = reduced_vectors(np.stack([np.asarray(s, dtype=np.float32) for s in skeletons]))
        query = normalise_poses(vectors)
        chunk = max(1, SEARCH_CHUNK // len(self.bank))
        best = [pose_distances(query[i:i + chunk], self.bank).argmin(axis=1) for i in range(0, len(query), chunk)]
        return self.labels[np.concatenate(best)]


# ---- drawing: the stick figure -------------------------------------------------------------
def pose_images(skeletons, size):
    """Skeletons in crop coordinates ((N, 26) or (N, 33, 4)), their 13 joints drawn as stick
    figures on black: (N, size, size, 3) BGR uint8."""
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
    """Skeletons ((N, 33, 4), or reduced (N, 26): then only the 13 joints are drawn) ->
    (N, size, size, 3) BGR uint8 pose maps."""
    landmarks = full_landmarks(skeletons)
    out = np.zeros((len(landmarks), size, size, 3), np.uint8)
    for k, lm in enumerate(landmarks):
        out[k] = pose_map(lm, size)
    return out
