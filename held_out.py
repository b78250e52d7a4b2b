"""Pictures and scores of a generator on held-out frames: the comparison grid, each
epoch's sample grid, the validation L1, and the nearest-neighbour baseline it is logged
beside."""
import cv2
import numpy as np

from nearest_frames import nearest_frames
from nets import resize_all, rgb_chw_to_bgr
from poses import pose_images
from project import evenly_spaced

SAMPLE_ROWS = 8           # held-out poses in each epoch's sample grid


def comparison_grid(skeletons, columns, rows=SAMPLE_ROWS, cell=128):
    """A picture for eyes: `rows` poses spread over `skeletons` ((N, 33, 4)), each
    row the drawn skeleton then every named column's image of that pose, under a header of
    the names. `columns` maps a name to images (N, H, W, 3) BGR uint8, one per skeleton."""
    picks = evenly_spaced(len(skeletons), rows)
    named = {"skeleton": pose_images(np.asarray(skeletons)[picks], cell),
             **{name: np.asarray(images)[picks] for name, images in columns.items()}}
    header = []
    for name in named:
        h = np.zeros((24, cell, 3), np.uint8)
        cv2.putText(h, name, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        header.append(h)
    body = [np.concatenate([cv2.resize(images[r], (cell, cell), interpolation=cv2.INTER_LINEAR)
                            for images in named.values()], axis=1) for r in range(len(picks))]
    return np.concatenate([np.concatenate(header, axis=1)] + body, axis=0)


def sample_grid(gen, data, count=SAMPLE_ROWS):
    """Held-out samples during training: drawn pose | real frame | generated."""
    picks = evenly_spaced(len(data), count)
    skeletons = data.skeletons[picks]
    real = rgb_chw_to_bgr(data.images[picks])
    return comparison_grid(skeletons, {"real": real, "generated": gen.generate_batch(skeletons)}, rows=len(picks))


def validation_l1(generate_batch, data, batch_size=256):
    """Mean absolute pixel error, in [0, 1] units, of a generator on a dataset."""
    total = 0.0
    for start in range(0, len(data), batch_size):
        fake = generate_batch(data.skeletons[start:start + batch_size]).astype(np.float32)
        real = rgb_chw_to_bgr(data.images[start:start + batch_size]).astype(np.float32)
        total += np.abs(fake - real).sum() / 255.0
    return float(total / (len(data) * data.images[0].numel()))  # a plain float: checkpoints hold no numpy


def nearest_neighbour(videoSke, indices, size):
    """The baseline every trainer logs: for skeletons, the target's frame (among `indices`)
    with the closest pose (GenNearest's rule), resized to size x size."""
    nearest = nearest_frames(videoSke, indices)
    return lambda skeletons: resize_all(videoSke.images()[nearest(skeletons)], size)
