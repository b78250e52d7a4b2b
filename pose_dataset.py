"""The training frames of a target as tensors (PoseDataset), the order a rank takes them
in each epoch (EpochOrder), and the split of a target into training and held-out frames."""
import numpy as np
import torch

from data_parallel import Ranks
from nets import bgr_to_rgb_chw, resize_all
from poses import STICK_FIGURES
from Skeleton import reduced_vectors
from training_settings import MIN_HELD_OUT, MIN_TRAIN_FRAMES
from project import DanceError


class PoseDataset:
    """Frames of a VideoSkeleton as tensors kept in memory: skeletons (N, 33, 4) float,
    vectors (N, 26) float, images (N, 3, S, S) RGB uint8, poses (N, C, S, S) uint8: the
    skeletons as the generator sees them, drawn by `render` (skeletons, size) -> (N, S, S, C).
    `keep_on` a GPU keeps the tensors there, uint8, so that a batch is indexed and converted
    on the GPU with no copy from the host (taichi1's training frames: 0.5 GB at 128x128)."""

    def __init__(self, videoSke, indices, size, render=STICK_FIGURES, keep_on=None):
        self.indices = np.asarray(indices)
        self.skeletons = videoSke.skeletons[self.indices]
        crops = resize_all(videoSke.images()[self.indices], size)
        self.vectors = torch.from_numpy(reduced_vectors(self.skeletons))
        self.images = bgr_to_rgb_chw(crops).contiguous()  # contiguous: batches index along N
        self.poses = bgr_to_rgb_chw(render(self.skeletons, size)).contiguous()
        if keep_on is not None:
            self.vectors, self.images, self.poses = (t.to(keep_on) for t in (self.vectors, self.images, self.poses))

    def __len__(self):
        return len(self.indices)

    def batch(self, idx, device):
        """A batch as float tensors on `device`: vector (B, 26), image and pose in [-1, 1]; and
        on the CPU the skeletons (B, 33, 4) and their frame numbers (B,)."""
        to_float = lambda t: t[idx].to(device).float().div(127.5).sub(1.0)  # noqa: E731
        return {"vector": self.vectors[idx].to(device), "image": to_float(self.images), "pose": to_float(self.poses),
                "skeleton": torch.from_numpy(self.skeletons[np.asarray(idx)]),
                "frame": torch.from_numpy(self.indices[np.asarray(idx)])}

    def sampler(self, seed, where=Ranks()):
        """The frames `where` (a rank) trains on each epoch (`EpochOrder`, call set_epoch)."""
        return EpochOrder(len(self), seed, where)

    def batches(self, batch_size, device, sampler):
        """Mini-batches of the sampler's frames for this epoch (the last, smaller one included)."""
        order = torch.tensor(list(sampler), dtype=torch.int64)
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start:start + batch_size], device)


class EpochOrder:
    """The frames a rank trains on in an epoch, from any point of it. The epoch's order is a
    shuffle fixed by seed + epoch (torch.randperm, as DistributedSampler's); `done` frames of
    it were trained on before (an interrupted epoch); the rest is padded to a multiple of the
    world size with its own first frames, and rank r takes every N-th frame from the r-th.
    So one process sees the whole order; N ranks, step by step, use the rest in order: after
    k steps of batch B every rank has trained on its share of the first k x B x N frames of
    the rest, whatever N was before (`after`)."""

    def __init__(self, count, seed, where=Ranks()):
        self.count, self.seed, self.where = count, seed, where
        self.epoch, self.done = 0, 0

    def set_epoch(self, epoch, done=0):
        """Go to epoch `epoch`, `done` frames of its order already trained on."""
        if not 0 <= done <= self.count:
            raise ValueError(f"{done} frames done of an epoch of {self.count}")
        self.epoch, self.done = epoch, done

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        rest = torch.randperm(self.count, generator=g).tolist()[self.done:]
        world = self.where.world_size
        pad = -len(rest) % world
        if rest and pad:
            rest += (rest * -(-pad // len(rest)))[:pad]
        return iter(rest[self.where.rank::world])

    def __len__(self):
        return -(-(self.count - self.done) // self.where.world_size)

    def after(self, steps, batch_size):
        """Frames of the epoch's order done once every rank has taken `steps` more steps."""
        return min(self.count, self.done + steps * batch_size * self.where.world_size)


def check_split(videoSke, held_out, every):
    """(all training indices, held-out indices) of a target, or a DanceError when it has too few
    frames with a person to train on and to validate on."""
    train_idx, val_idx = videoSke.split(held_out)
    if len(val_idx) < MIN_HELD_OUT or len(train_idx[::every]) < MIN_TRAIN_FRAMES:
        raise DanceError(f"{videoSke.filename}: {len(videoSke)} frames with a person, {len(train_idx[::every])} to "
                         f"train on (--every {every}) and {len(val_idx)} held out; training needs at least "
                         f"{MIN_TRAIN_FRAMES} and {MIN_HELD_OUT}: use a longer video or a smaller --every")
    return train_idx, val_idx
