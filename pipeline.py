"""The demo's pipeline plumbing: the time each stage takes, and a stage run ahead on a thread.

`StageClock` keeps, per named stage (read, detect, smooth, generate, compose, write/show), the
seconds each frame spent in it, so the next bottleneck is visible (benchmark.py prints them).
It costs two `perf_counter` calls a stage and frame, so the demo always keeps one.

`prefetch` runs an iterator on a thread of its own, `depth` items ahead: while the demo
generates frame n, the source reads and detects frame n+1 (two cores, two stages). Items come
out in the order they went in; an error on the thread is raised where the item would have
come; closing the consumer stops the thread. MediaPipe and PyTorch both leave Python's lock
while they compute, so the two stages really run at once. `generating_threads` is how many
threads the generating stage's network and tensor work may take then: the cores detection
does not run on.
"""
import contextlib
import math
import os
import queue
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

MS = 1000.0
_END = object()           # the thread's last word: the iterator ended
STOP_POLL_S = 0.1         # how often a waiting producer looks whether the consumer has gone
JOIN_TIMEOUT_S = 5.0      # closing waits this long for the thread (a live read returns within a frame)
CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"   # a container's CPU quota: "<quota> <period>" or "max <period>"
_threads_lock = threading.Lock()           # torch_threads: how many are inside, and the count before the first
_threads_held = {"inside": 0, "before": None}


class StageClock:
    """Seconds per frame in each named stage.

        clock = StageClock()
        with clock("detect"):
            ske = detector.detect(frame)
        for item in clock.timed(reader, "read"):   # each next() timed
            ...
        clock.summary()   # {"detect": {"median_ms": .., "p90_ms": .., "frames": ..}, ...}
    """

    def __init__(self):
        self.seconds = defaultdict(list)
        self.total = defaultdict(float)   # all the time counted under each stage, an iterator's last pull too

    @contextlib.contextmanager
    def __call__(self, stage):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._count(stage, time.perf_counter() - t0)

    def _count(self, stage, seconds):
        self.seconds[stage].append(seconds)
        self.total[stage] += seconds

    def timed(self, iterable, stage, inner=None):
        """`iterable`'s items, the time each took to come counted under `stage`; with `inner`, a
        stage timed within (the items `iterable` itself waits for), less the time counted there
        meanwhile: the smoother's own time, not the wait for the frames it smooths. The pull that
        finds the end counts in `total` only: it brings no frame."""
        it = iter(iterable)
        while True:
            t0, before = time.perf_counter(), self.total.get(inner, 0.0)
            try:
                item = next(it)
            except StopIteration:
                self.total[stage] += time.perf_counter() - t0
                return
            self._count(stage, time.perf_counter() - t0 - (self.total.get(inner, 0.0) - before))
            yield item

    def clear(self):
        """Forget every time kept: a new run starts its figures afresh."""
        self.seconds.clear()
        self.total.clear()

    def summary(self):
        """{stage: {"median_ms", "p90_ms", "frames"}} in the order the stages first ran (those
        that timed a frame)."""
        out = {}
        for stage, seconds in list(self.seconds.items()):
            if not seconds:
                continue
            ms = np.asarray(seconds) * MS
            out[stage] = {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
                          "frames": len(ms)}
        return out


def usable_cores():
    """The CPU cores this process may run on: its affinity where the system says (else all), at
    most its control group's CPU quota (a container limited to 2 CPUs may see 16)."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    try:
        quota, period = Path(CGROUP_CPU_MAX).read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass   # no cgroup v2 quota here
    return cores


def generating_threads():
    """Threads for the generating stage while detection runs on a thread of its own (`prefetch`):
    every core but detection's, at least one. On two cores that is one: with two, the network's
    second thread fights detection for its core and both stages slow down (measured on this
    project's 2-core CPU, layered live at 1080p: 0.81-0.88 of the frames shown with two threads,
    0.95-0.97 with one)."""
    return max(1, usable_cores() - 1)


@contextlib.contextmanager
def torch_threads(count):
    """PyTorch's intra-op thread count set to `count` inside (None: left alone), put back when the
    last of the demos inside leaves: the count is the process's, and the web page runs several
    demos at once, each on a thread of its own."""
    if count is None:
        yield
        return
    with _threads_lock:
        if not _threads_held["inside"]:
            _threads_held["before"] = torch.get_num_threads()
        _threads_held["inside"] += 1
        torch.set_num_threads(count)
    try:
        yield
    finally:
        with _threads_lock:
            _threads_held["inside"] -= 1
            if not _threads_held["inside"]:
                torch.set_num_threads(_threads_held["before"])


@contextlib.contextmanager
def held_logs(logger):
    """The records `logger` gets from this thread inside, held back instead of written: yields
    their list, for the caller to hand on (`logger.handle`) once it knows they apply (the demo's
    notes on its generator, made beside a source that may turn out bad: then only its error shows)."""
    held, me = [], threading.get_ident()

    def hold(record):
        if record.thread != me:
            return True
        held.append(record)
        return False

    logger.addFilter(hold)
    try:
        yield held
    finally:
        logger.removeFilter(hold)


def prefetch(iterable, depth=1):
    """Yield `iterable`'s items, produced on a thread of their own up to `depth` ahead.

    The thread asks for the next item only when there is room for it (`depth` items not yet
    taken): a live source is then asked for its newest frame when the demo has taken the last
    one, not a frame ahead, so a picture is at most one frame's processing later than without
    the thread, while the detection of one frame and the generation of the one before run at
    once. The order is kept; an exception raised by the iterator is raised here, where its
    item would have come; when this generator is closed (the consumer stopped early), the
    thread stops before its next item and closes the iterator on its own thread."""
    items, room, stop = queue.SimpleQueue(), threading.Semaphore(depth), threading.Event()

    def run():
        it = iter(iterable)
        try:
            while True:
                while not room.acquire(timeout=STOP_POLL_S):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(it, _END)
                items.put((item, None))
                if item is _END:
                    return
        except BaseException as e:  # handed to the consumer, raised there
            items.put((_END, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            room.release()
            yield item
    finally:
        stop.set()
        thread.join(JOIN_TIMEOUT_S)
