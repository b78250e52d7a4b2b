"""What the web page shows, made from the project's own records: a target's skeletons and
its held-out split (VideoSkeleton), a training job's progress (its log, training_log), and
an evaluation's tables (the JSON evaluate.py writes, printed by report.py as the command
line prints them). Nothing here computes a figure of its own.
"""
import json
import time
from pathlib import Path

import cv2
import numpy as np

from display import combine_images
from project import DanceError, evenly_spaced
from report import held_out_table, summary_table
from training import SAMPLES_DIR
from training_log import progress
from VideoSkeleton import HELD_OUT, VideoSkeleton
from web_inputs import web_dir

SHEET_TILES = 24   # crops in the training part's contact sheet (6 a row)
HELD_TILES = 6     # crops in the held-out part's (one row)
TILE = 96          # pixels a side: the sheet fits a laptop's screen


def rgb(image):
    """A BGR picture (OpenCV's) as the RGB array a browser shows."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def sheet(videoSke, indices, columns=6):
    """Crops `indices` of a VideoSkeleton with their skeletons drawn, `columns` a row (BGR)."""
    tiles = [videoSke.ske[i].draw(cv2.resize(videoSke.readImage(i), (TILE, TILE))) for i in indices]
    tiles += [np.zeros((TILE, TILE, 3), np.uint8)] * (-len(tiles) % columns)
    return np.concatenate([combine_images(*tiles[r:r + columns]) for r in range(0, len(tiles), columns)])


def split_view(video):
    """(training part's sheet, held-out part's sheet, what the split is, in words) of a
    target video; its skeletons extracted as the trainers extract them (cached for them)."""
    videoSke = VideoSkeleton(video)
    train, held = videoSke.split()
    if len(train) < 2 or len(held) < 1:
        raise DanceError(f"{Path(video).name}: a person is found in only {len(videoSke)} frames; a target needs "
                         f"a few minutes of one person, whole in every frame")
    fps = videoSke.fps
    first_held = videoSke.frame_index[held[0]] / max(fps, 1e-9)
    text = (f"**{Path(video).name}**: a person found in {len(videoSke)} of {videoSke.frames_read} frames. "
            f"Training: the first {len(train)}; held out (never trained on, scored by the evaluation): the last "
            f"{len(held)} ({HELD_OUT:.0%}, from {first_held:.1f} s on).")
    return (rgb(sheet(videoSke, train[evenly_spaced(len(train), SHEET_TILES)])),
            rgb(sheet(videoSke, held[evenly_spaced(len(held), HELD_TILES)])), text)


def clock(seconds):
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def job_label(job):
    return f"{job['id']}  {job['title']}  [{job['state']}]"


def training_table(p):
    """Markdown: one row per epoch, its held-out L1 beside nearest neighbour's."""
    if not p.epochs:
        return ""
    rows = ["| epoch | held-out L1 | nearest neighbour's | seconds |", "|---|---|---|---|"]
    for e in p.epochs:
        rows.append(f"| {e['epoch']} | {e.get('val_l1', float('nan')):.4f} | "
                    f"{e.get('nearest_val_l1', float('nan')):.4f} | {e.get('seconds', float('nan')):.0f} |")
    return "\n".join(rows)


def job_view(job, log):
    """(Markdown of a job: its state, epochs, time left; the newest sample grid's path or None)."""
    lines = [f"**{job['title']}**: {job['state']}"]
    if job.get("error"):
        lines.append(f"error: {job['error']}")
    when = job.get("started") or job["created"]
    elapsed = (job.get("ended") or time.time()) - when
    lines.append(f"{'ran' if job.get('ended') else 'running for' if job['state'] == 'running' else 'queued for'} "
                 f"{clock(elapsed)}")
    grid = None
    if job["kind"] == "train":
        p = progress(log, job["command"])
        if job["state"] == "running":
            now = f"epoch {p.current[0]}/{p.epoch_total}: step {p.current[1]} of {p.current[2]}" if p.current \
                else f"{p.done} of {p.epoch_total} epochs done"
            lines.append(f"{now}; time left about {clock(p.seconds_left)}")
        else:
            lines.append(f"{p.done} of {p.epoch_total} epochs done")
        lines.append(training_table(p))
        grid = latest_sample(job.get("model"))
    return "\n\n".join(line for line in lines if line), grid


def latest_sample(model):
    """The newest held-out sample grid a training of `model` wrote (output/samples/), or None."""
    if not model:
        return None
    grids = sorted(SAMPLES_DIR.glob(f"{Path(model).stem}_epoch*.png"))
    return str(grids[-1]) if grids else None


def evaluation_files(target):
    """(JSON, held-out grid) the page's evaluation of `target` writes: output/web/evaluation/."""
    folder = web_dir() / "evaluation"
    return folder / f"{target}.json", folder / f"{target}_grid.png"


def evaluation_view(target, shipped_grids=()):
    """(Markdown of the evaluation's summary and held-out table for `target`, [(grid, caption)]):
    from the page's own run when there is one, else the shipped figures' grids (`shipped_grids`)."""
    figures, grid = evaluation_files(target)
    if not figures.exists():
        note = (f"No evaluation of **{target}** from this page yet: run one below.")
        if shipped_grids:
            note += " The grids below are the shipped ones (`python evaluate.py`, all figures in docs/evaluation.md)."
        return note, [(str(p), caption) for p, caption in shipped_grids if Path(p).exists()]
    try:
        results = json.loads(figures.read_text())
        text = "\n".join(summary_table(results) + ["", "Held-out frames:", ""] + held_out_table(results))
    except (ValueError, KeyError, TypeError) as e:
        raise DanceError(f"{figures}: not an evaluation's figures ({type(e).__name__}); run the evaluation "
                         f"again") from None
    s = results["settings"]
    text = (f"**{target}**: {s.get('test')}, {s.get('test_frames')} test frames, "
            f"{s.get('seconds', 0):.0f} s on {s['machine']['cpus']} CPUs ({figures.name}).\n" + text)
    grids = [(grid.with_name(f"{grid.stem}{part}{grid.suffix}"), caption) for part, caption in
             (("", "held-out frames"), ("_unseen", "unseen poses"), ("_hardest", "the hardest poses"))]
    return text, [(str(p), caption) for p, caption in grids if p.exists()]
