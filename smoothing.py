"""Skeletons smoothed over time.

Temporal smoothing. A detector run frame by frame jitters by a pixel or two even when
the person is still, and a generator turns that jitter into flicker. Two filters:
  median     the paper's: each landmark's median over a centred window of a few
             frames. Robust to one-frame outliers, but it needs window // 2 frames of
             look-ahead, so a live demo shows its output that many frames late.
  one_euro   Casiez et al.'s One-Euro filter (CHI 2012): a low-pass filter whose cutoff
             rises with speed, so it is smooth when still and quick when moving; causal.
Both work on landmark arrays (T, 33, 4) in the coordinates of the source frame, before
cropping (a crop box that follows a jittery skeleton would jitter too).
"""
import warnings
from collections import deque

import numpy as np

SMOOTH_WINDOW = 5          # frames in the median's window (the paper: a few frames at 30 fps)
ONE_EURO_MIN_CUTOFF = 1.0  # Hz: the cutoff when still (lower: smoother, laggier)
ONE_EURO_BETA = 0.5        # how fast the cutoff rises with speed (in crop/frame units per second)
ONE_EURO_D_CUTOFF = 1.0    # Hz: cutoff of the speed estimate


def _median(stack, axis, like):
    """NaN-ignoring median of `stack` along `axis`, NaN wherever `like` is NaN (a missing frame
    or landmark stays missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows (never seen nearby) are expected
        out = np.nanmedian(stack, axis=axis).astype(np.float32)
    out[np.isnan(like)] = np.nan
    return out


def median_smooth(track, window=SMOOTH_WINDOW):
    """Centred running median over time of a track (T, ...) of landmarks; NaN entries (frames
    with nobody, unknown landmarks) are ignored, and the window shrinks at the ends. A track
    that is constant over time comes back unchanged; a missing frame stays missing."""
    track = np.asarray(track, np.float32)
    half = window // 2
    padded = np.concatenate([np.full((half,) + track.shape[1:], np.nan, np.float32), track,
                             np.full((half,) + track.shape[1:], np.nan, np.float32)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)  # (T, ..., window)
    return _median(windows, -1, track)


class OneEuroFilter:
    """One-Euro filter on arrays (every element filtered independently), fed one sample at a time.

        f = OneEuroFilter(fps=30)
        smoothed = [f(x) for x in samples]     # f(None) for a gap resets it
        smoothed = [f(x, t) for t, x in ...]   # samples at times t (seconds): a live source
                                               # that drops frames is not evenly spaced
    """

    def __init__(self, fps, min_cutoff=ONE_EURO_MIN_CUTOFF, beta=ONE_EURO_BETA, d_cutoff=ONE_EURO_D_CUTOFF):
        self.period, self.min_cutoff, self.beta, self.d_cutoff = 1.0 / fps, min_cutoff, beta, d_cutoff
        self.x = self.dx = self.t = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x, t=None):
        if x is None:
            self.x = self.dx = self.t = None
            return None
        x = np.asarray(x, np.float64)
        dt = self.period if t is None or self.t is None or t <= self.t else t - self.t
        self.t = t
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.astype(np.float32)
        dx = (x - self.x) / dt
        self.dx = self.dx + self._alpha(self.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + self._alpha(cutoff, dt) * (x - self.x)
        return self.x.astype(np.float32)


def one_euro_smooth(track, fps, **params):
    """A track (T, ...) through a fresh OneEuroFilter; all-NaN frames are gaps that reset it."""
    f, out = OneEuroFilter(fps, **params), np.full_like(np.asarray(track, np.float32), np.nan)
    for t, x in enumerate(np.asarray(track, np.float32)):
        y = f(None if np.isnan(x).all() else x)
        if y is not None:
            out[t] = y
    return out


SMOOTHERS = ("median", "one_euro", "none")


def smooth_track(track, method, fps=30.0, window=SMOOTH_WINDOW):
    """Smooth a landmark track (T, 33, 4) over time with `method` (one of SMOOTHERS)."""
    if method == "median":
        return median_smooth(track, window)
    if method == "one_euro":
        return one_euro_smooth(track, fps)
    if method == "none":
        return np.asarray(track, np.float32)
    raise ValueError(f"unknown smoother {method!r}; choose one of {', '.join(SMOOTHERS)}")


def smooth_stream(items, method, fps=30.0, window=SMOOTH_WINDOW, time_of=None):
    """Smooth a live stream of (payload, landmarks (33, 4) or None) pairs, yielding the same
    pairs with smoothed landmarks. "median" needs the frames after each one, so it yields
    each pair window // 2 pairs late (and the last ones when the stream ends); it gives what
    `median_smooth` gives on the whole track. None (nobody found) passes through unchanged.
    `time_of(payload)`, when given, is the pair's time in seconds: One-Euro then follows the
    real spacing of a stream that drops frames, instead of assuming 1 / fps."""
    if method == "none":
        yield from items
        return
    if method == "one_euro":
        f = OneEuroFilter(fps)
        for payload, lm in items:
            yield payload, f(lm, None if time_of is None else time_of(payload))
        return
    if method != "median":
        raise ValueError(f"unknown smoother {method!r}; choose one of {', '.join(SMOOTHERS)}")
    half, buf, next_pos = window // 2, deque(), 0   # buf: (position, payload, landmarks) still needed

    def emit(pos):
        _, payload, lm = buf[[p for p, _, _ in buf].index(pos)]
        if lm is None:
            return payload, None
        stack = np.stack([np.full_like(lm, np.nan) if x is None else x for p, _, x in buf if abs(p - pos) <= half])
        return payload, _median(stack, 0, lm)

    for pos, (payload, lm) in enumerate(items):
        buf.append((pos, payload, None if lm is None else np.asarray(lm, np.float32)))
        while buf[-1][0] - next_pos >= half:          # the next pair now has its whole window
            yield emit(next_pos)
            next_pos += 1
            while buf[0][0] < next_pos - half:
                buf.popleft()
    while buf and next_pos <= buf[-1][0]:             # the end: windows shrink
        yield emit(next_pos)
        next_pos += 1
