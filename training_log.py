"""A trainer's progress, read back from its log as the web page shows it: the epochs done
with their held-out L1 beside nearest neighbour's, how far the current epoch is, and the
time left.

It reads what training.fit already prints (one `epoch N: key value ...` line per epoch,
tqdm's `epoch N/M: ..% | i/n [elapsed<left]` bar, `resuming ... from epoch N`), so the
trainers need no second channel for the page: the log a terminal shows is the record.
"""
import re
from typing import NamedTuple

EPOCH_LINE = re.compile(r"^epoch (\d+): (.*)$", re.MULTILINE)
PAIR = re.compile(r"(\w+) (-?(?:\d+\.?\d*(?:e-?\d+)?|nan|inf))")
BAR = re.compile(r"epoch (\d+)/(\d+):\s*(\d+)%\|[^|\n]*\|\s*(\d+)/(\d+) \[([\d:]+)<([\d:?]+)")
RESUMED = re.compile(r"resuming \S+ from epoch (\d+)")
EPOCHS_FLAG = re.compile(r"--epochs[ =](\d+)")


class Progress(NamedTuple):
    epochs: list        # one dict per epoch logged: epoch, val_l1, nearest_val_l1, seconds, losses
    epoch_total: int    # the epochs to reach (from the bar or the command), or None
    current: tuple      # (epoch, step, steps) of the bar shown last, or None
    seconds_left: float  # an estimate of the time to the end, or None

    @property
    def done(self):
        return self.epochs[-1]["epoch"] if self.epochs else 0


def seconds(clock):
    """'01:02:03' or '02:03' as seconds; None for tqdm's '?'."""
    if "?" in clock:
        return None
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return total


def epochs_logged(text):
    """The `epoch N: ...` records of a log, the last of each epoch kept (a resumed run logs on)."""
    records = {}
    for match in EPOCH_LINE.finditer(text):
        values = {k: float(v) for k, v in PAIR.findall(match.group(2))}
        records[int(match.group(1))] = {"epoch": int(match.group(1)), **values}
    return [records[k] for k in sorted(records)]


def progress(text, command=()):
    """The Progress of a training whose log is `text` and command `command` (a list)."""
    epochs = epochs_logged(text)
    bars = BAR.findall(text)
    flag = EPOCHS_FLAG.search(" ".join(map(str, command)))
    total = int(bars[-1][1]) if bars else int(flag.group(1)) if flag else None
    current = None
    if bars:
        epoch, _, _, step, steps, _, _ = bars[-1]
        current = (int(epoch), int(step), int(steps))
        if epochs and epochs[-1]["epoch"] >= current[0]:  # that epoch ended after its bar
            current = None
    return Progress(epochs, total, current, time_left(epochs, bars, total))


def time_left(epochs, bars, total):
    """Seconds to the end: the current epoch's left (tqdm's estimate) plus the epochs after it
    at the mean time an epoch took (from the records; the bar's pace when none ended yet)."""
    if total is None:
        return None
    done = epochs[-1]["epoch"] if epochs else 0
    per_epoch = None
    timed = [e["seconds"] for e in epochs if "seconds" in e]
    if timed:
        per_epoch = sum(timed) / len(timed)
    left_now = 0.0
    if bars and int(bars[-1][0]) > done:
        epoch, _, _, step, steps, elapsed, left = bars[-1]
        spent, remaining = seconds(elapsed), seconds(left)
        if per_epoch is None and spent is not None and int(step):
            per_epoch = spent * int(steps) / int(step)
        left_now = remaining if remaining is not None else (per_epoch or 0) * (1 - int(step) / max(int(steps), 1))
        done += 1
    if per_epoch is None:
        return None
    return left_now + per_epoch * max(0, total - done)
