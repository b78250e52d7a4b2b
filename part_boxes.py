"""The layered generator's part moves for a few poses at a time (inference): each part sampled
only inside the box of the asked frame where it can land.

`parts.move_parts` moves every part over the whole frame: a 128x128 frame, two candidates of 14
parts, is 28 full-frame samplings, 40 ms of a frame's 80 on one core, though a forearm covers a
few percent of the frame and a part hidden in its reference (weight 0) none. Here each part's
mask box in its reference (its nonzero pixels, found once when the bank loads: `mask_boxes`)
is mapped back through the part's move, giving the box of asked pixels whose sampling points
fall within a pixel of it; only those are sampled, with the same bilinear `grid_sample`, and
laid from the farthest part to the nearest with the "over" operator
    composite <- m * part + (1 - m) * composite,   coverage <- m + (1 - m) * coverage,
which is `parts.lay_over`'s front-to-back product unrolled. Outside its box a part's mask is
exactly 0, so the result equals `move_parts` + `lay_over` up to float rounding (tested:
tests/test_layered.py). Parts of weight 0 are skipped. `draw_part_masks` draws the bank's
part masks the same way, each capsule only inside its box.
"""
import numpy as np
import torch
import torch.nn.functional as F

from parts import PARTS, capsules, depth_order, part_moves

NO_BOX = (0, 0, 0, 0)
MIN_DET = 1e-9  # a part's move whose matrix is this near singular gets the whole frame as its box


def mask_boxes(masks):
    """Boxes of the nonzero pixels of masks (..., S, S): (..., 4) int64 x0, y0, x1, y1 in pixels,
    the ends exclusive; NO_BOX where a mask is all zero."""
    rows, cols = masks.amax(dim=-1) > 0, masks.amax(dim=-2) > 0             # (..., S) each
    s = masks.shape[-1]
    index = torch.arange(s)

    def span(hit):
        first = torch.where(hit, index, s).amin(dim=-1)
        last = torch.where(hit, index, -1).amax(dim=-1) + 1
        return first, last

    x0, x1 = span(cols)
    y0, y1 = span(rows)
    boxes = torch.stack([x0, y0, x1, y1], dim=-1)
    return torch.where((x1 > x0)[..., None], boxes, torch.tensor(NO_BOX)).numpy()


def draw_part_masks(landmarks, person, size):
    """Every part's mask in each reference, drawn only inside its capsule's box: landmarks
    (N, 33, 4) and the person's masks (N, 1, S, S) float in [0, 1] -> (N, P, S, S) uint8, 255 = 1:
    `parts.capsule_masks` times `person`, within one step of 1/255 (float rounding). A capsule
    covers a few percent of the frame: a bank of 256 frames is drawn in 0.13 s instead of 2.4."""
    ends, radii, edge, weight = capsules(landmarks)
    n, p = weight.shape
    centres = ((2.0 * np.arange(size) + 1.0) / size - 1.0).astype(np.float32)  # pixel centres, grid units
    # Each capsule's box, in pixels (ends exclusive): its segment's box, grown by where the mask is nonzero.
    reach = (radii + edge[:, None] / 2)[..., None]
    lo = np.clip(np.floor(((ends.min(axis=2) - reach + 1) * size - 1) / 2), 0, size).astype(np.int64)
    hi = np.clip(np.ceil(((ends.max(axis=2) + reach + 1) * size - 1) / 2) + 1, 0, size).astype(np.int64)
    person = person.numpy() if torch.is_tensor(person) else person
    out = np.zeros((n, p, size, size), np.uint8)
    for i in range(n):
        for q in range(p):
            (x0, y0), (x1, y1) = lo[i, q], hi[i, q]
            if weight[i, q] <= 0 or x1 <= x0 or y1 <= y0:
                continue
            (ax, ay), (bx, by) = ends[i, q]
            abx, aby = bx - ax, by - ay
            px, py = centres[None, x0:x1] - ax, centres[y0:y1, None] - ay
            t = np.clip((px * abx + py * aby) / max(abx * abx + aby * aby, 1e-12), 0.0, 1.0)
            dist = np.sqrt((px - t * abx) ** 2 + (py - t * aby) ** 2)
            mask = np.clip((radii[i, q] - dist) / edge[i] + 0.5, 0.0, 1.0) * weight[i, q]
            out[i, q, y0:y1, x0:x1] = np.round(mask * person[i, 0, y0:y1, x0:x1] * 255.0)
    return torch.from_numpy(out)


def landing_boxes(theta, boxes, size):
    """The boxes of the asked frame (..., 4: x0, y0, x1, y1, ends exclusive, clipped to the frame)
    whose pixel centres, moved by theta (..., 2, 3) (asked grid -> reference grid), land within
    one pixel of the reference's boxes (..., 4): outside them bilinear sampling reads only zero
    mask. The whole frame where a map is near singular; NO_BOX where a reference box is empty."""
    # The inverse of the map x -> A x + t is y -> A^-1 (y - t), A^-1 in closed form (2x2): no
    # LAPACK call, whose BLAS threads would spin on the core detection runs on.
    theta = theta.astype(np.float64)
    a, b, c, d, t = theta[..., 0, 0], theta[..., 0, 1], theta[..., 1, 0], theta[..., 1, 1], theta[..., :, 2]
    det = a * d - b * c
    singular = np.abs(det) < MIN_DET                       # these get the whole frame, below
    inverse = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / np.where(singular, 1.0, det)[..., None, None]
    x0, y0, x1, y1 = np.moveaxis(boxes.astype(np.float64), -1, 0)
    corners = np.stack([np.stack([x, y], -1) for x in (x0 - 1, x1) for y in (y0 - 1, y1)], -2)  # (..., 4, 2) pixels
    grid = (2.0 * corners + 1.0) / size - 1.0                                       # -> grid (align_corners=False)
    back = np.einsum("...ij,...kj->...ki", inverse, grid - t[..., None, :])
    pixels = ((back + 1.0) * size - 1.0) / 2.0                                      # the asked frame's pixels
    lo = np.clip(np.floor(pixels.min(axis=-2)), 0, size).astype(np.int64)
    hi = np.clip(np.ceil(pixels.max(axis=-2)) + 1, 0, size).astype(np.int64)
    out = np.concatenate([lo, hi], axis=-1)
    out[singular] = (0, 0, size, size)
    empty = (x1 <= x0) | (out[..., 2] <= out[..., 0]) | (out[..., 3] <= out[..., 1])
    out[empty] = NO_BOX
    return out


def move_parts_boxed(images, part_masks, boxes, rows, asked, ref_landmarks, plates):
    """`parts.move_parts` + `lay_over` over `plates`, part by part inside its landing box (CPU).

    images (M, C, S, S) uint8 (0..255 read as -1..1) and part_masks (M, P, S, S) uint8 (255 = 1):
    the bank's frames and their parts' masks; boxes (M, P, 4): `mask_boxes(part_masks)`; rows
    (N, P): the bank frame each part of each asked pose comes from; asked (N, 33, 4);
    ref_landmarks (M, 33, 4) the bank's; plates (N, C, S, S) float: what the parts are laid
    over. Returns (the composite over the plate (N, C, S, S), the parts' coverage (N, 1, S, S) in
    [0, 1]). Each part reads only its mask's box in the reference, one pixel wider: bilinear
    sampling with a nonzero mask weight reads no pixel beyond it. A part that identical asked
    poses take from the same reference (the layered generator's two candidates share about a
    third of their parts) is sampled once."""
    n, p, s = len(rows), len(PARTS), images.shape[-1]
    theta, weight = part_moves(asked, ref_landmarks, rows)                     # (N, P, 2, 3), (N, P)
    source_boxes = boxes[rows, np.arange(p)]                                   # (N, P, 4)
    land = landing_boxes(theta, source_boxes, s)                               # (N, P, 4)
    order = depth_order(asked)                                                 # farthest first
    images, part_masks = images.numpy(), part_masks.numpy()
    c = images.shape[1]
    # The composite and its coverage as one stack of C + 1 channels: "over" lays a part's colours
    # and a coverage of 1 with the same mask m, layer <- layer + m (part - layer).
    layers = np.zeros((n, c + 1, s, s), np.float32)
    layers[:, :c] = plates.numpy()
    # Pixel centres as (x, y, 1) rows: a part's sampling points are one product with its move.
    centres = ((2.0 * np.arange(s) + 1.0) / s - 1.0).astype(np.float32)       # grid units
    homogeneous = np.stack([*np.meshgrid(centres, centres, indexing="xy"), np.ones((s, s), np.float32)], -1)
    # Python numbers for the loop's bookkeeping: indexing numpy arrays element by element costs
    # more than the sampling for the smaller parts (28 parts a frame).
    theta_, weight_, rows_, land_, source_ = (x.tolist() for x in (theta.astype(np.float64), weight, rows, land,
                                                                    source_boxes))
    # Only identical asked poses can share a move: they are laid one after another, and what they
    # sampled is forgotten before the next pose (the layered generator's two candidates: pairs).
    same_pose = {}
    for i in range(n):
        same_pose.setdefault(np.asarray(asked[i]).tobytes(), []).append(i)
    for twins in same_pose.values():
        moved_before = {}
        for i in twins:
            for q in order[i].tolist():
                r, (x0, y0, x1, y1), w = rows_[i][q], land_[i][q], weight_[i][q]
                if w <= 0 or x1 <= x0:
                    continue
                key = (r, q, x0, y0, x1, y1, *theta_[i][q][0], *theta_[i][q][1])
                part = moved_before.get(key)
                if part is None:
                    part = moved_before[key] = _sample_part(images[r], part_masks[r, q], source_[i][q],
                                                            theta_[i][q], homogeneous[y0:y1, x0:x1], s)
                colours, mask = part
                m = mask * np.float32(w)
                region = layers[i, :, y0:y1, x0:x1]
                change = colours - region
                change *= m
                region += change                                               # "over": m part + (1 - m) region
    composite, cover = np.ascontiguousarray(layers[:, :c]), np.ascontiguousarray(layers[:, c:])
    return torch.from_numpy(composite), torch.from_numpy(cover)


_IMAGE_VALUES = np.arange(256, dtype=np.uint8) * np.float32(1 / 127.5) - np.float32(1.0)   # uint8 -> [-1, 1]
_MASK_VALUES = np.arange(256, dtype=np.uint8) * np.float32(1 / 255.0)                      # uint8 -> [0, 1]


def _sample_part(image, mask, box, theta, points, s):
    """One part moved: (its colours with a last channel of ones (C + 1, h, w), its mask (1, h, w)),
    sampled at `points` (h, w, 3) (pixel centres (x, y, 1) of the asked frame's landing box, grid
    units) through `theta` (2 x 3, asked -> reference grid) from the box (x0, y0, x1, y1) of its
    reference `image` (C, S, S) uint8 and part `mask` (S, S) uint8, one pixel wider."""
    u0, v0, u1, v1 = box
    u0, v0, u1, v1 = max(u0 - 1, 0), max(v0 - 1, 0), min(u1 + 1, s), min(v1 + 1, s)
    # The move into the widened box's own grid coordinates (-1 and 1 at its edges).
    (a, b, e), (c, d, f) = theta
    kx, ky = s / (u1 - u0), s / (v1 - v0)
    to_box = np.array([[a * kx, c * ky], [b * kx, d * ky], [((e + 1.0) * s - 2.0 * u0) / (u1 - u0) - 1.0,
                                                           ((f + 1.0) * s - 2.0 * v0) / (v1 - v0) - 1.0]], np.float32)
    grid = points @ to_box                                                    # (h, w, 2)
    channels = image.shape[0]
    source = np.empty((1, channels + 1, v1 - v0, u1 - u0), np.float32)
    np.take(_IMAGE_VALUES, image[:, v0:v1, u0:u1], out=source[0, :-1])
    np.take(_MASK_VALUES, mask[v0:v1, u0:u1], out=source[0, -1])
    moved = F.grid_sample(torch.from_numpy(source), torch.from_numpy(grid[None]), mode="bilinear",
                          padding_mode="zeros", align_corners=False)[0].numpy()
    mask = moved[-1:].copy()
    moved[-1] = 1.0
    return moved, mask
