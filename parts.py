"""Body parts and how they move from one pose to another: the geometry of the warp generator.

A person is cut into 14 parts: the torso, the head, and on each side the upper arm, forearm,
hand, thigh, shin and foot. Each part has a *bone*, two points made from MediaPipe landmarks
(each end the mean of a few of them). To show a reference frame of the target in an asked
pose, each part of the reference is moved on its own (Balakrishnan et al., CVPR 2018;
Siarohin et al., Deformable GANs, CVPR 2018):
  limbs   the affine map that puts the reference bone exactly onto the asked bone: turned,
          stretched along the bone (a limb pointing at the camera looks shorter), and scaled
          across it only by the change in body size (its thickness does not foreshorten);
  head    turned with the neck (mid-shoulders to the head's centre) and scaled with the body,
          its centre put on the asked one (a head does not stretch when it nods);
  torso   the least-squares affine map of shoulders and hips (four points), or the limb rule
          on its mid-hip to mid-shoulder bone when the four are nearly on a line (side view).
Each part's pixels come with a soft mask: a capsule around the reference bone, its radius in
torso lengths, weighted down where the reference's landmarks are barely visible (hidden
behind something), drawn in the reference's coordinates and moved with the part.

Maps go backwards, as `torch.nn.functional.grid_sample` wants them: from the asked frame's
coordinates to the reference's, in grid coordinates (-1 at the left/top edge of the image,
+1 at the right/bottom; a landmark u in [0, 1] is 2u - 1). The parts are laid over each
other from the farthest to the nearest (MediaPipe's z), so an arm in front of the body hides
it. The geometry is numpy (a few microseconds a pose); the warping is torch, batched.
"""
import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from Skeleton import landmark_array


@dataclass(frozen=True)
class Part:
    name: str
    start: tuple            # landmarks averaged into the bone's first end
    end: tuple              # ... and into its second
    radius: float           # the mask's half-width, in torso lengths
    kind: str = "limb"      # "limb", "head" (turned and scaled, not stretched) or "torso" (four-point affine)
    extend: tuple = ()      # (a, b, f): when `end` is unknown, b + f (b - a): a hand along its forearm
    priority: int = 0       # front-to-back order when the pose has no depth (higher: nearer)


PARTS = (
    Part("torso", (23, 24), (11, 12), 0.45, "torso", priority=0),
    Part("head", (11, 12), (0, 7, 8), 0.38, "head", priority=2),
    Part("left_thigh", (23,), (25,), 0.24, priority=1), Part("right_thigh", (24,), (26,), 0.24, priority=1),
    Part("left_shin", (25,), (27,), 0.17, priority=1), Part("right_shin", (26,), (28,), 0.17, priority=1),
    Part("left_foot", (27,), (29, 31), 0.13, priority=1), Part("right_foot", (28,), (30, 32), 0.13, priority=1),
    Part("left_upper_arm", (11,), (13,), 0.17, priority=3), Part("right_upper_arm", (12,), (14,), 0.17, priority=3),
    Part("left_forearm", (13,), (15,), 0.14, priority=4), Part("right_forearm", (14,), (16,), 0.14, priority=4),
    Part("left_hand", (15,), (17, 19), 0.15, extend=(13, 15, 0.35), priority=5),
    Part("right_hand", (16,), (18, 20), 0.15, extend=(14, 16, 0.35), priority=5),
)
TORSO_POINTS = (11, 12, 24, 23)     # shoulders and hips, for the torso's affine map
MIN_BONE = 1e-3                     # grid units (1/16 pixel at 128): a shorter bone has no direction
MIN_TORSO_SPREAD = 0.2              # below this ratio of the torso points' singular values: a line (side view)
EDGE = 0.08                         # the masks' soft edge, in torso lengths
VISIBLE = (0.2, 0.7)                # a reference part's weight rises from 0 to 1 across this visibility
TORSO_BEHIND = 0.1                  # the torso's surface lies behind its joints' depth
FULL_TRUST_STRETCH = 1.5            # a limb stretched up to this much is trusted fully ...
MAX_STRETCH = 2.5                   # ... and from this much on not at all
WARP_CHUNK = 16                     # pose pairs warped at once (14 moved copies of each in memory)


# ---- geometry (numpy) ------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _members(sets, landmarks):
    """(len(sets), landmarks) read-only: row k is 1 at the ids of sets[k] (a tuple of tuples)."""
    members = np.zeros((len(sets), landmarks))
    for k, ids in enumerate(sets):
        members[k, list(ids)] = 1.0
    members.flags.writeable = False
    return members


def _mean_points(lm, *sets):
    """Means of the finite landmarks of each id set, for each pose: (N, 33, 4) -> (N, len(sets), 2)
    grid coordinates (NaN where none of a set is known); one set -> (N, 2)."""
    members = _members(tuple(map(tuple, sets)), lm.shape[1])   # made once: a dozen calls a frame
    pts = 2.0 * lm[..., :2].astype(np.float64) - 1.0
    ok = np.isfinite(pts).all(axis=-1)                                             # (N, 33)
    count = (ok @ members.T)[..., None]                                            # (N, K, 1)
    total = members @ np.where(ok[..., None], pts, 0.0)                          # (N, K, 2); einsum: 15x slower
    means = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return means[:, 0] if len(sets) == 1 else means


# Every id set bone_ends averages, in one list (one matrix product for all of them).
_START, _END = slice(0, len(PARTS)), slice(len(PARTS), 2 * len(PARTS))
_BONE_SETS = [part.start for part in PARTS] + [part.end for part in PARTS] \
    + [(part.extend or (0, 0))[i:i + 1] for part in PARTS for i in (0, 1)]


def bone_ends(landmarks):
    """Each part's bone: (N, 33, 4) landmarks -> (N, P, 2, 2) ends in grid coordinates (NaN where unknown)."""
    lm = landmark_array(landmarks)
    means = _mean_points(lm, *_BONE_SETS)
    start, end = means[:, _START], means[:, _END]
    pa, pb = means[:, 2 * len(PARTS)::2], means[:, 2 * len(PARTS) + 1::2]            # the extend's landmarks a, b
    f = np.array([part.extend[2] if part.extend else np.nan for part in PARTS])[None, :, None]
    extended = np.isfinite(f) & ~np.isfinite(end)                                    # a hand along its forearm
    end = np.where(extended, pb + np.nan_to_num(f) * (pb - pa), end)
    return np.stack([start, end], axis=2)


def torso_length(landmarks):
    """Mid-shoulders to mid-hips, in grid units: the body's size, (N,) (NaN where unknown)."""
    lm = landmark_array(landmarks)
    return np.linalg.norm(_mean_points(lm, (11, 12)) - _mean_points(lm, (23, 24)), axis=-1)


def facing(landmarks):
    """Which way each person faces: the left shoulder's x minus the right's, in torso lengths
    (N,). Positive: towards the camera (their left shoulder on the image's right); negative:
    away; near 0: side on."""
    lm = landmark_array(landmarks)
    return (lm[:, 11, 0] - lm[:, 12, 0]) * 2.0 / torso_length(lm)


def _perp(v):
    return np.stack([-v[..., 1], v[..., 0]], axis=-1)


def bone_affine(p_a, p_b, q_a, q_b, width, rigid=False):
    """The affine maps (..., 2, 3) taking bone p_a -> p_b onto bone q_a -> q_b, and whether
    each is defined (both bones longer than MIN_BONE, every point finite).

    rigid=False (limbs): p_a -> q_a and p_b -> q_b exactly; along the bone the scale is the
    ratio of the bones' lengths, across it `width`. rigid=True (the head): turned by the
    angle between the bones, scaled by `width` both ways, p_b -> q_b."""
    dp, dq = p_b - p_a, q_b - q_a
    lp, lq = np.linalg.norm(dp, axis=-1), np.linalg.norm(dq, axis=-1)
    valid = (lp > MIN_BONE) & (lq > MIN_BONE) & np.isfinite(width) & (width > 0)
    lp, lq = np.where(valid, lp, 1.0), np.where(valid, lq, 1.0)
    e1, f1 = dp / lp[..., None], dq / lq[..., None]
    along = width if rigid else lq / lp
    m = (along[..., None, None] * f1[..., :, None] * e1[..., None, :]
         + width[..., None, None] * _perp(f1)[..., :, None] * _perp(e1)[..., None, :])
    anchor_p, anchor_q = (p_b, q_b) if rigid else (p_a, q_a)
    t = anchor_q - np.einsum("...ij,...j->...i", m, anchor_p)
    theta = np.concatenate([m, t[..., None]], axis=-1)
    valid &= np.isfinite(theta).all(axis=(-1, -2))
    return np.where(valid[..., None, None], theta, 0.0), valid


def torso_affine(p, q):
    """Least-squares affine maps (N, 2, 3) from four points p (N, 4, 2) onto q (N, 4, 2), and
    whether each is well posed: the points of p, and those of q, spread in two directions (a
    torso seen side on is nearly a line: a map onto it would squash the asked torso into a
    streak of the reference), all finite."""
    ok = np.isfinite(p).all(axis=(1, 2)) & np.isfinite(q).all(axis=(1, 2))
    p, q = np.where(ok[:, None, None], p, 0.0), np.where(ok[:, None, None], q, 0.0)
    for points in (p, q):
        spread = np.linalg.svd(points - points.mean(axis=1, keepdims=True), compute_uv=False)  # (N, 2)
        ok &= spread[:, 1] > MIN_TORSO_SPREAD * np.maximum(spread[:, 0], 1e-9)
    design = np.concatenate([p, np.ones_like(p[..., :1])], axis=-1)  # (N, 4, 3)
    a = np.linalg.pinv(design) @ q                                     # (N, 3, 2)
    return np.where(ok[:, None, None], a.transpose(0, 2, 1), 0.0), ok


def part_transforms(asked, refs):
    """For each pose pair (asked[i], refs[i]), (N, 33, 4) each: the maps from the asked frame
    to the reference, per part, (N, P, 2, 3); whether each is defined (N, P); each part's mask
    as a capsule in the reference, its ends (N, P, 2, 2) and radius (N, P), grid units; and how
    far each moved part can be trusted (N, P) in [0, 1]: 0 for a limb stretched MAX_STRETCH
    times or more."""
    asked, refs = landmark_array(asked), landmark_array(refs)
    pa, qa = bone_ends(asked), bone_ends(refs)
    size_p, size_q = torso_length(asked), torso_length(refs)
    width = (size_q / size_p)[:, None].repeat(len(PARTS), axis=1)  # the body's change of size
    rigid = np.array([part.kind == "head" for part in PARTS])
    theta, valid = bone_affine(pa[..., 0, :], pa[..., 1, :], qa[..., 0, :], qa[..., 1, :], width)
    head, head_ok = bone_affine(pa[..., 0, :], pa[..., 1, :], qa[..., 0, :], qa[..., 1, :], width, rigid=True)
    theta, valid = np.where(rigid[:, None, None], head, theta), np.where(rigid, head_ok, valid)
    t = [part.kind for part in PARTS].index("torso")
    four, four_ok = torso_affine(2.0 * asked[:, TORSO_POINTS, :2] - 1.0, 2.0 * refs[:, TORSO_POINTS, :2] - 1.0)
    theta[:, t] = np.where(four_ok[:, None, None], four, theta[:, t])
    valid[:, t] |= four_ok
    # A limb foreshortened in the reference (pointing at its camera) and long in the asked pose
    # would be smeared along the asked bone: trust it less the more it must be stretched.
    stretch = np.linalg.norm(pa[..., 1, :] - pa[..., 0, :], axis=-1) * width \
        / np.maximum(np.linalg.norm(qa[..., 1, :] - qa[..., 0, :], axis=-1), MIN_BONE)
    limb = np.array([part.kind == "limb" for part in PARTS])
    trust = np.where(limb, np.clip((MAX_STRETCH - np.nan_to_num(stretch)) / (MAX_STRETCH - FULL_TRUST_STRETCH),
                                   0.0, 1.0), 1.0)
    segments = qa.copy()
    segments[:, rigid, 0] = segments[:, rigid, 1]  # the head's mask: a disc around its centre
    radii = np.array([part.radius for part in PARTS])[None] * size_q[:, None]
    valid &= np.isfinite(segments).all(axis=(-1, -2)) & np.isfinite(radii)
    return theta.astype(np.float32), valid, np.nan_to_num(segments).astype(np.float32), \
        np.nan_to_num(radii).astype(np.float32), trust.astype(np.float32)


def part_weights(refs):
    """How far each part of each reference can be trusted, from its landmarks' visibility:
    (N, 33, 4) -> (N, P) in [0, 1]; 1 where the visibility is unknown (NaN)."""
    lm = landmark_array(refs)
    low, high = VISIBLE
    weights = np.ones((len(lm), len(PARTS)), np.float32)
    for p, part in enumerate(PARTS):
        vis = lm[:, list(part.start + part.end), 3]
        least = np.where(np.isfinite(vis), vis, 1.0).min(axis=1)
        weights[:, p] = np.clip((least - low) / (high - low), 0.0, 1.0)
    return weights


def depth_order(asked):
    """The parts of each asked pose from the farthest to the nearest: (N, P) indices. By the
    mean MediaPipe depth (z) of each part's landmarks, the torso a little behind; by each
    part's fixed priority when the pose has no depth."""
    lm = landmark_array(asked)
    depth = np.stack([lm[:, list(part.start + part.end), 2].mean(axis=1) for part in PARTS], axis=1)
    depth += np.array([TORSO_BEHIND if part.kind == "torso" else 0.0 for part in PARTS])
    fixed = -np.array([part.priority for part in PARTS], np.float64)
    depth = np.where(np.isfinite(depth).all(axis=1, keepdims=True), depth, fixed[None])
    return np.argsort(-depth, axis=1, kind="stable")


# ---- warping (torch) ---------------------------------------------------------------------------
def segment_distance(points, ends):
    """Distance from points (N, P, H, W, 2) to segments (N, P, 2, 2): (N, P, H, W)."""
    a, b = ends[:, :, None, None, 0], ends[:, :, None, None, 1]
    ab = b - a
    t = ((points - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)
    return (points - a - t.clamp(0, 1)[..., None] * ab).norm(dim=-1)


def warp_parts(refs, asked, ref_landmarks):
    """Every part of each reference image moved to its asked pose, and laid over each other.

    refs: (N, C, S, S) float images; asked, ref_landmarks: (N, 33, 4) arrays. Returns the
    composite (N, C, S, S) (zero where no part lands) and its coverage (N, 1, S, S) in [0, 1].
    Done WARP_CHUNK pairs at a time: every part of every pair is in memory at once."""
    asked, ref_landmarks = landmark_array(asked), landmark_array(ref_landmarks)
    done = [_warp_parts(refs[i:i + WARP_CHUNK], asked[i:i + WARP_CHUNK], ref_landmarks[i:i + WARP_CHUNK])
            for i in range(0, len(refs), WARP_CHUNK)]
    return torch.cat([d[0] for d in done]), torch.cat([d[1] for d in done])


def _warp_parts(refs, asked, ref_landmarks):
    n, c, s = refs.shape[0], refs.shape[1], refs.shape[-1]
    device = refs.device
    theta, valid, segments, radii, trust = part_transforms(asked, ref_landmarks)
    weights = part_weights(ref_landmarks) * valid * trust
    p = len(PARTS)
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    grid = F.affine_grid(to(theta).view(n * p, 2, 3), (n * p, c, s, s), align_corners=False).view(n, p, s, s, 2)
    # One sampling per reference for all its parts: their grids stacked into one tall grid.
    moved = F.grid_sample(refs, grid.view(n, p * s, s, 2), mode="bilinear", padding_mode="zeros",
                          align_corners=False).view(n, c, p, s, s)
    inside = (grid.abs() <= 1).all(dim=-1)
    edge = to(np.nan_to_num(EDGE * torso_length(ref_landmarks)).astype(np.float32))[:, None, None, None]
    # A linear ramp across the soft edge: exactly 0 outside it (a sigmoid would leave tiny,
    # denormal values everywhere, slow to compute with).
    masks = ((to(radii)[..., None, None] - segment_distance(grid, to(segments))) / edge.clamp_min(1e-6) + 0.5)
    masks = masks.clamp(0.0, 1.0) * inside * to(weights)[..., None, None]            # (N, P, S, S)
    return lay_over(masks, moved, asked)


def capsule_masks(landmarks, size):
    """Every part's mask in the frame of its own pose, before any move: (N, 33, 4) landmarks ->
    (N, P, size, size) float32 in [0, 1]: the capsule around the part's bone (a disc for the
    head) with its soft edge, weighted by the part's visibility (`part_weights`); 0 where the
    part is unknown. Sampled with a part's pixels (`move_parts`), it is the mask `warp_parts`
    draws around the moved bone, computed once per reference instead of once per move. Over the
    whole frame: the reference `part_boxes.draw_part_masks` (each capsule only inside its box,
    what the layered bank draws) is tested against."""
    ends, radii, edge, weight = capsules(landmarks)
    centres = (2.0 * np.arange(size) + 1.0) / size - 1.0  # pixel centres in grid coordinates
    points = torch.from_numpy(np.stack(np.meshgrid(centres, centres, indexing="xy"), -1).astype(np.float32))
    dist = segment_distance(points[None, None], torch.from_numpy(ends))
    masks = (torch.from_numpy(radii)[..., None, None] - dist) / torch.from_numpy(edge)[:, None, None, None] + 0.5
    return masks.clamp(0.0, 1.0) * torch.from_numpy(weight)[..., None, None]


def capsules(landmarks):
    """Each part's mask as a capsule in the frame of its own pose, (N, 33, 4) landmarks ->
    its segment's ends (N, P, 2, 2) and radius (N, P), grid units; the soft edge's width (N,),
    grid units; the part's weight (N, P) (`part_weights`, 0 where the part is unknown): all
    float32, with no NaN."""
    lm = landmark_array(landmarks)
    ends = bone_ends(lm)
    rigid = np.array([part.kind == "head" for part in PARTS])
    ends[:, rigid, 0] = ends[:, rigid, 1]   # the head's mask: a disc around its centre
    size_q = torso_length(lm)
    radii = np.array([part.radius for part in PARTS])[None] * size_q[:, None]
    valid = np.isfinite(ends).all(axis=(-1, -2)) & np.isfinite(radii)
    edge = np.maximum(np.nan_to_num(EDGE * size_q), 1e-6)
    return (np.nan_to_num(ends).astype(np.float32), np.nan_to_num(radii).astype(np.float32),
            edge.astype(np.float32), (part_weights(lm) * valid).astype(np.float32))


def part_moves(asked, landmarks, rows):
    """Each part q of asked pose i moved from reference rows[i, q]: asked (N, 33, 4), the
    references' landmarks (M, 33, 4), rows (N, P) -> (the maps asked -> reference (N, P, 2, 3)
    float32, how far each moved part counts (N, P) float32: 0 where its map is undefined, less
    where it is stretched). Each distinct (pose, reference) pair is solved once."""
    n, p = rows.shape
    pairs, inverse = np.unique(np.stack([np.repeat(np.arange(n), p), rows.ravel()], axis=1), axis=0,
                               return_inverse=True)
    theta, valid, _, _, trust = part_transforms(landmark_array(asked)[pairs[:, 0]], landmark_array(landmarks)[pairs[:, 1]])
    pick = (inverse.reshape(n, p), np.arange(p))
    return theta[pick], (valid * trust)[pick].astype(np.float32)


def move_parts(refs, masks, asked, ref_landmarks):
    """`warp_parts` for references whose part masks are already drawn (`capsule_masks` times the
    person's outline; the layered bank draws them with part_boxes.draw_part_masks): each part p
    of pose i cut from refs[i, p] (N, P, C, S, S) with its mask masks[i, p] (N, P, S, S), moved
    to asked[i] (N, 33, 4) from ref_landmarks[i, p] (N, P, 33, 4), and laid over the others.
    Returns (composite (N, C, S, S), coverage (N, 1, S, S))."""
    n, p, c, s = refs.shape[0], len(PARTS), refs.shape[2], refs.shape[-1]
    theta, weight = part_moves(asked, np.reshape(ref_landmarks, (n * p, -1, 4)), np.arange(n * p).reshape(n, p))
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(refs.device)  # noqa: E731
    grid = F.affine_grid(to(theta).view(n * p, 2, 3), (n * p, c + 1, s, s), align_corners=False)
    moved = F.grid_sample(torch.cat([refs, masks[:, :, None].to(refs.dtype)], dim=2).view(n * p, c + 1, s, s), grid,
                          mode="bilinear", padding_mode="zeros", align_corners=False).view(n, p, c + 1, s, s)
    shown = moved[:, :, -1] * to(weight)[..., None, None]
    return lay_over(shown, moved[:, :, :-1].transpose(1, 2), asked)


def lay_over(masks, moved, asked):
    """Moved parts laid over each other from the farthest to the nearest (by the asked pose's
    depth, `depth_order`): masks (N, P, S, S) and parts (N, C, P, S, S) -> (composite (N, C, S, S),
    coverage (N, 1, S, S))."""
    s = masks.shape[-1]
    near_first = torch.from_numpy(depth_order(asked)[:, ::-1].copy()).to(masks.device)[..., None, None]
    near_first = near_first.expand(-1, -1, s, s)
    # Laid over each other from the farthest to the nearest ("over", front to back): part k
    # shows with weight m_k times the product of (1 - m_j) over the parts j nearer than it.
    masks = masks.gather(1, near_first)
    through = torch.cumprod(1.0 - masks, dim=1)                                    # light left behind each part
    shown = masks * torch.cat([torch.ones_like(through[:, :1]), through[:, :-1]], dim=1)
    shown = torch.empty_like(shown).scatter_(1, near_first, shown)                 # back in PARTS order
    composite = (shown[:, None] * moved).sum(dim=2)
    return composite, 1.0 - through[:, -1:]
