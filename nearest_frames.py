"""Nearest neighbour's rule, in one place: GenNearest generates with it, and every trainer
logs the held-out L1 of the same rule as the baseline to beat (held_out.nearest_neighbour)."""
from poses import PoseIndex


def nearest_frames(videoSke, indices):
    """GenNearest's rule over the target frames `indices` of `videoSke`: a function from
    (N, 33, 4) landmarks (crop coordinates) to the frame numbers (N,), among
    `indices`, whose poses are closest once position and scale are normalised away
    (poses.PoseIndex)."""
    return PoseIndex(videoSke.skeletons[indices], labels=indices).nearest
