"""Training pairs for poses the target never made: a frame and its skeleton turned or mirrored
together, then cut again as the demo cuts its crops.

A target's video holds the poses it held, upright and facing the way it faced. Turning a
training frame by an angle, together with its skeleton, gives a true pair (image, pose) for
a leaning pose the target never made; mirroring it gives one for the mirrored pose (the
landmarks' sides swapped, as a mirror swaps them). Each new pair is then re-cropped by the
crop rule every source frame meets in the demo (Skeleton.square_box: the skeleton's box plus
a margin), so that a turned person fills the crop as a leaning source would.

    images, landmarks = turn_and_mirror(images, landmarks, angles, mirrored)

Images are torch (N, C, S, S) (any value range: pixels are resampled bilinearly, the border
reflected); landmarks numpy (N, 33, 4) in crop coordinates. Angles in degrees, positive
clockwise on screen (image y grows downwards).
"""
import numpy as np
import torch
import torch.nn.functional as F

from Motion import crop_landmarks
from poses import MIRROR
from Skeleton import CROP_MARGIN

CENTRE = (11, 12, 23, 24)  # the frame turns about the middle of the shoulders and hips


def turn_landmarks(landmarks, angles, mirrored):
    """Landmarks (N, 33, 4) turned by `angles` (N,) degrees about the torso's centre, then
    mirrored about it where `mirrored` (N,) is True (sides swapped): (landmarks, centres (N, 2))."""
    lm = np.asarray(landmarks, np.float32).copy()
    centre = np.nanmean(lm[:, list(CENTRE), :2], axis=1)
    a = np.radians(np.asarray(angles, np.float64))
    rot = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], -2)  # (N, 2, 2)
    lm[:, :, :2] = (centre[:, None] + np.einsum("nij,nkj->nki", rot, lm[:, :, :2] - centre[:, None])).astype(np.float32)
    flip = np.asarray(mirrored, bool)
    lm[flip, :, 0] = 2 * centre[flip, None, 0] - lm[flip, :, 0]
    lm[flip] = lm[flip][:, list(MIRROR)]
    return lm, centre


def turn_and_mirror(images, landmarks, angles, mirrored, margin=CROP_MARGIN):
    """Each image and its skeleton turned by its angle and mirrored where asked (see
    `turn_landmarks`), then re-cropped around the new skeleton by the crop rule: (images
    (N, C, S, S) like `images`, landmarks (N, 33, 4) in the new crops' coordinates)."""
    n, s = images.shape[0], images.shape[-1]
    turned, centre = turn_landmarks(landmarks, angles, mirrored)
    cropped, boxes = zip(*(crop_landmarks(lm, (s, s), margin) for lm in turned))
    boxes = np.asarray(boxes, np.float64) / s  # (x0, y0, side) as fractions of the old crop
    # The backward map of each pixel of the new crop to the old one, in [0, 1] coordinates:
    # new crop -> turned frame (the box), unmirror about the centre, unturn about it.
    a = np.radians(np.asarray(angles, np.float64))
    unturn = np.stack([np.stack([np.cos(a), np.sin(a)], -1), np.stack([-np.sin(a), np.cos(a)], -1)], -2)
    flip = np.where(np.asarray(mirrored, bool), -1.0, 1.0)
    theta = np.zeros((n, 2, 3))
    for i in range(n):
        mirror = np.diag([flip[i], 1.0])
        shift = np.array([centre[i, 0] * (1 - flip[i]), 0.0])               # q -> mirror @ q + shift
        linear = unturn[i] @ mirror * boxes[i, 2]                           # p_old = linear @ p_new + offset
        offset = centre[i] + unturn[i] @ (mirror @ boxes[i, :2] + shift - centre[i])
        # grid coordinates g = 2p - 1 on both sides
        theta[i, :, :2] = linear
        theta[i, :, 2] = linear @ np.ones(2) + 2 * offset - 1
    grid = F.affine_grid(torch.from_numpy(theta).to(images), (n, images.shape[1], s, s), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out, np.stack(cropped).astype(np.float32)
