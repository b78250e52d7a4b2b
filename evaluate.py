"""Score every generator on footage it never trained on, against the real frames.

Self-reenactment: each real test frame's own skeleton drives each generator, and the
output is compared with that frame. Test footage is the held-out split of the target
(the final 15% of its cached frames, by time: no model trained on it, and nearest
neighbour may only pick from the training frames), or with --test-video a separate
video of the same person, used whole.

Per frame, then averaged:
  appearance  L1, PSNR and SSIM (11x11 Gaussian window, sigma 1.5, RGB in [0, 1]) on the
              whole crop and on the person's box (the real skeleton's box plus a margin);
              64x64 outputs are upsampled to the crop size first.
  pose        MediaPipe (static-image mode, with a border; see REDETECT_MARGIN) run on each output:
              detection rate, and mean error in pixels over the 13 joints against the
              skeleton that drove it. The real frames' row is the floor.
  temporal    mean absolute difference between consecutive outputs, beside the real frames'.
              The demo's generator (generators.DEFAULT) is also scored driven by skeletons
              smoothed over time with each smoother of Motion.py (rows "layered+median", ...).
  speed       generate() frames per second one at a time and batched; the whole demo
              pipeline's frames per second on a source clip.
  live        the demo's live path, with the source clip played in real time as a camera
              would deliver it (live.py's fake capture): frames per second shown, frames
              dropped, latency from capture to display; again with the generator slowed
              on purpose (LIVE_SLOWDOWNS), to show frames dropped rather than queued.
  cross       other people's videos drive the target's generators (no ground truth), as
              the demo drives them (smoothed, normalised into the target's frame, cropped):
              pose fidelity against the driving skeleton.
  hard        the same for harder clips made of each cross-person one (hard_clips.py):
              turned by +-20 and +-35 degrees (a leaning body), mirrored, and at half size
              in a frame of its size; every HARD_EVERY-th frame, novelty beside detection.

What users will do, which the held-out frames cannot show (they are the same session):
  novelty     each driving pose's distance to the nearest training pose of the target
              (poses.PoseIndex: nearest neighbour's position- and scale-free terms);
              detection and joint error per novelty quartile, the quartile edges fixed
              from the held-out poses and applied to the cross-person and harder ones; and
              beyond the fourth quartile, for poses of novelty > 0.2 and > 0.3 (NOVELTY_BINS).
  unseen      held-out skeletons edited into poses the target never made (poses.edit_pose:
              arms up, out, in a V, elbows bent, a knee lifted, a kick, a low stance, a lean,
              the mirror image, a lunge, the torso leant 30 degrees either way, a deep bend,
              a crouch, a one-leg balance, a jump, arms crossed overhead; every bone kept at
              its length; seeded), re-cropped as the demo crops: pose fidelity against the
              edited skeleton.
  placed      at the size people watch: each crop placed into the target's frame as the
              demo's right panel places it (256 px), re-detected there by one static
              detector for every row, whose border is the one that finds the most real frames.
  summary     per generator: held-out, most novel quartile, unseen edits, cross-person, placed.

Here: the protocols composed, the generators loaded, the demo's own protocols (speed, live) and
the command line; the other protocols are in protocols.py, the figures in metrics.py, the tables
in report.py.

Prints Markdown tables, writes every figure and the settings to JSON, and image grids: the
held-out one (--grid), and beside it *_unseen (one edited pose of each family) and *_hardest
(the most novel poses of all) with every generator's frame.

    python evaluate.py [VIDEO] [--test-video FILE] [--max-frames N] [--models-dir D] [--json F] [--grid F]
                       [--generators NAME ...] [--no-hard]
"""
import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from DanceDemo import DanceDemo
from generators import DEFAULT, TABLE, find, make_generator
from metrics import BOX_MARGIN, beyond, fidelity, pool_rows
from pipeline import StageClock
from smoothing import SMOOTHERS
from protocols import (HARD_EVERY, HARD_VARIANTS, HARDEST, REDETECT_MARGIN, SEED, at_panel_size, bench, cross_clips,
                       drive_clips, hard_clips, held_out, held_out_rows, novelty, speed, unseen)
from report import finite, markdown
from pose_detector import MIN_FRAME_SIDE
from sources import DEFAULT_SMOOTHER
from checkpoints import MODELS_DIR, model_path
from held_out import comparison_grid
from VideoReader import VideoReader
from files import IMAGE_SUFFIXES, atomic_path, check_output, write_image
from project import DanceError, cli_main, data_path
from VideoSkeleton import DEFAULT_SIZE, HELD_OUT, MAX_SIZE


# ---- defaults ----
DEFAULT_TARGET = "taichi1.mp4"
CROSS_SOURCES = ("karate1.mp4", "taichi2.mp4")
MAX_FRAMES = None       # test frames scored: all, or a contiguous run of this many from the start
SMOOTHED = DEFAULT       # the demo's generator, also scored driven by each smoother (rows "layered+median", ...)
EDIT_BASES = 30         # held-out skeletons edited into each of poses.EDIT_FAMILIES (17): 510 unseen poses
LIVE_SLOWDOWNS = (0.0, 0.1)  # seconds added to each generated frame in the live runs: none, and
                             # enough that generation cannot keep up with a 25-30 fps source
GRID_ROWS = 6
CELL = 128

log = logging.getLogger("dance")


def load_generators(videoSke, train_idx, models_dir=MODELS_DIR, names=None):
    """(name -> Generator, name -> model file), one per row of the generator table (or of
    those `names`): the learned ones from their files in `models_dir` (skipped when missing),
    those made from the target's video over its training frames `train_idx` only."""
    gens, files = {}, {}
    for row in TABLE:
        if names is not None and row.name not in names:
            continue
        path = model_path(videoSke.filename, row.name, models_dir) if row.learned else None
        if path is not None and not path.exists():
            log.warning("skipping %s: no %s", row.name, path)
            continue
        gen = make_generator(row, target=videoSke, frames=train_idx, models_dir=models_dir)
        if gen.record["crop_margin"] != videoSke.settings["crop_margin"]:
            log.warning("%s was made from crops with margin %s, the test frames are cut with %s: its "
                        "appearance figures compare differently framed pictures", row.name,
                        gen.record["crop_margin"], videoSke.settings["crop_margin"])
        gens[row.name] = gen
        if path is not None:
            files[row.name] = str(path)
    return gens, files


class Slowed:
    """A generator made slower on purpose (a pause before each frame): how the live path
    behaves when generation cannot keep up with the camera."""

    def __init__(self, generator, seconds):
        self.generator, self.seconds = generator, seconds

    def generate(self, skeleton):
        time.sleep(self.seconds)
        return self.generator.generate(skeleton)

    def reset(self):
        self.generator.reset()


def demo_speed(source, target, gens, model_files):
    """The whole demo pipeline's frames per second on `source`, per generator: name -> fps."""
    fps = {}
    for name in gens:
        with tempfile.TemporaryDirectory() as tmp:
            demo = DanceDemo(source, name, target=target, model=model_files.get(name))
            fps[name] = demo.draw(output=Path(tmp) / "demo.mp4")["fps"]
    return fps


def live_figures(source, target, name, model=None, slowdowns=LIVE_SLOWDOWNS):
    """The demo's live path on `source` played in real time, once per slowdown (seconds added
    to each generated frame): fps shown, frames captured and dropped, latency (ms)."""
    rows = {}
    for extra in slowdowns:
        demo = DanceDemo(source, name, target=target, model=model, live=True)
        if extra:
            demo.generator = Slowed(demo.generator, extra)
        with tempfile.TemporaryDirectory() as tmp:
            stats = demo.draw(output=Path(tmp) / "live.mp4")
        rows[f"+{1000 * extra:.0f} ms"] = {k: stats[k] for k in ("fps", "frames", "captured", "dropped",
                                                                  "latency_ms", "latency_p90_ms")}
    return {"source": Path(source).name, "source_fps": demo.fps, "generator": name, "smoother": demo.smooth,
            "rows": rows}


def settings(b, max_frames):
    """What was scored, how, and on which machine."""
    return {"target": str(b.videoSke.filename), "test": b.source_name, "test_frames": int(len(b.test_idx)),
            "frame_size": b.size, "held_out": HELD_OUT, "max_frames": max_frames, "box_margin": BOX_MARGIN,
            "redetect_margin": REDETECT_MARGIN, "smoothed": SMOOTHED if SMOOTHED in b.gens else None,
            "cross_smoother": DEFAULT_SMOOTHER, "models": b.model_files,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                        "device": "cuda" if torch.cuda.is_available() else "cpu"}}


def summary(gens, per_frame, nov, unseen_, placed_):
    """Per generator: held-out, most novel quartile, unseen edits, cross-person, harder, placed."""
    return {name: {
        "held_out": fidelity(*per_frame[name]), "novel_q4": nov["rows"][name]["held_out"][3],
        "unseen": {k: unseen_["rows"][name][k] for k in ("detection_rate", "joint_error_px", "frames")},
        "cross": nov["rows"][name].get("cross_all"), "hard": nov["rows"][name].get("hard_all"),
        "placed": placed_["rows"][name]} for name in gens}


def evaluate(target, test_video=None, max_frames=MAX_FRAMES, cross=CROSS_SOURCES, demo_source=None,
             models_dir=MODELS_DIR, smoothers=tuple(m for m in SMOOTHERS if m != "none"), progress=True,
             size=DEFAULT_SIZE, hard=True, names=None, edit_bases=EDIT_BASES):
    """(every figure as a dict (see the module docstring), the pictures: {"grid": (skeletons,
    name -> frames) of the held-out frames, "unseen": the same of one edited pose per family,
    "hardest": of the most novel poses, or None}). `size`: the side of the test crops (every
    generator's frames are resized to it); `hard`: also drive the harder clips made of the
    cross-person ones; `names`: score only these generators (default: every one); `edit_bases`:
    held-out skeletons edited into every family for the unseen poses."""
    torch.manual_seed(SEED)
    parts = StageClock()   # each part's seconds (the JSON's part_seconds)
    with parts("held_out"):
        b = bench(target, test_video, max_frames, size,
                  lambda videoSke, train_idx: load_generators(videoSke, train_idx, models_dir, names), progress)
        results = {"settings": settings(b, max_frames), "rows": {}, "cross": {}}
        driven = held_out_rows(b, SMOOTHED, smoothers)
        results["rows"], per_frame = held_out(b, driven, progress)
        for name, gen in b.gens.items():
            results["rows"][name].update(speed(gen, b.skeletons))
    pictures = {"grid": (b.skeletons, {k: d.frames for k, d in driven.items() if k == "real" or k in b.gens})}
    scored = ["real", *b.gens]  # the rows of the novelty table
    with parts("unseen"):
        nov, held_novelty = novelty(b, {name: per_frame[name] for name in scored})
        edges = nov["edges"]
        unseen_, pictures["unseen"], hardest = unseen(b, edges, edit_bases)
    with parts("placed"):
        results["placed"] = at_panel_size(b, driven)
    with parts("cross"):
        found_cross = cross_clips(cross)
        clips = drive_clips(b, found_cross, edges, DEFAULT_SMOOTHER, max_frames=max_frames, progress=progress)
        results["cross"], nov["clips"] = clips["tables"], clips["novelty"]
        pool_rows(nov["rows"], clips["pooled"], "cross", edges)
        hardest += clips["hardest"]
    with parts("hard"):
        clips = drive_clips(b, hard_clips(found_cross if hard else (), progress), edges, DEFAULT_SMOOTHER,
                            every=HARD_EVERY, max_frames=max_frames, progress=progress)
        results["hard"] = {"settings": {"variants": list(HARD_VARIANTS), "every": HARD_EVERY},
                           "clips": clips["tables"], "novelty": clips["novelty"]}
        pool_rows(nov["rows"], clips["pooled"], "hard", edges)
        hardest += clips["hardest"]
    for name in scored:  # beyond the fourth quartile, on the held-out frames
        nov["rows"][name]["held_out_beyond"] = beyond(*per_frame[name], held_novelty)
    b.detector.close()
    results["novelty"], results["unseen"] = nov, unseen_
    pictures["hardest"] = hardest_picture(hardest, b.gens)
    results["summary"] = summary(b.gens, per_frame, nov, results["unseen"], results["placed"])
    with parts("demo"):
        for name, fps in (demo_speed(demo_source, target, b.gens, b.model_files) if demo_source else {}).items():
            results["rows"][name]["demo_fps"] = fps
    with parts("live"):
        if demo_source and SMOOTHED in b.gens:
            results["live"] = live_figures(demo_source, target, SMOOTHED, b.model_files.get(SMOOTHED))
    results["settings"]["part_seconds"] = dict(parts.total)
    return results, pictures


def hardest_picture(candidates, gens, count=HARDEST):
    """The picture of the `count` most novel poses of `candidates` (see protocols.hardest_of):
    (skeletons, name -> frames), or None when there are none."""
    top = sorted(candidates, key=lambda h: -h[0])[:count]
    return (np.stack([h[1] for h in top]), {n: np.stack([h[2][n] for h in top]) for n in gens}) if top else None


def check_inputs(video, test_video, cross, demo_source):
    """(target, test video or None, the cross-person videos that are here, the demo's source or
    None when not given or not here), as paths; each opened, so a bad one fails now in one line
    (DanceError). A default cross-person clip (CROSS_SOURCES) that is not here is skipped."""
    found = []
    for name in cross:
        path = data_path(name)
        if not path.exists() and name in CROSS_SOURCES:  # a default clip that is not here: skipped
            log.warning("skipping cross-person %s: not found", path)
            continue
        VideoReader(path).release()  # opens it, or says in one line what is wrong with it
        found.append(path)
    demo = data_path(demo_source) if demo_source else None
    if demo is not None and demo.exists():
        VideoReader(demo).release()
    return (data_path(video), data_path(test_video) if test_video else None, found,
            demo if demo is not None and demo.exists() else None)


def main():
    parser = argparse.ArgumentParser(description="Score every generator on footage it never trained on.")
    parser.add_argument("video", nargs="?", default=DEFAULT_TARGET, help=f"target video (default: {DEFAULT_TARGET})")
    parser.add_argument("--test-video", help="a separate video of the same person, scored whole")
    parser.add_argument("--max-frames", type=int, default=MAX_FRAMES or 0,
                        help="score this many test frames, and this many of each cross-person video (0: all)")
    parser.add_argument("--cross", nargs="*", default=list(CROSS_SOURCES), help="other people's videos")
    parser.add_argument("--demo-source", default="karate1.mp4", help="clip for the demo pipeline's speed")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE,
                        help=f"side of the test crops in pixels (default: {DEFAULT_SIZE}; 256 for models trained "
                             f"with --size 256)")
    parser.add_argument("--models-dir", default=str(MODELS_DIR),
                        help="where the target's models are (models/<target>_<name>.pth; default: models/)")
    parser.add_argument("--no-hard", action="store_true",
                        help="skip the harder driving clips (the cross-person ones turned, mirrored, smaller)")
    parser.add_argument("--edit-bases", type=int, default=EDIT_BASES,
                        help=f"held-out skeletons edited into every family for the unseen poses (default: {EDIT_BASES})")
    parser.add_argument("--generators", nargs="+", metavar="NAME",
                        help="score only these generators of the table (default: all)")
    parser.add_argument("--json", default="output/evaluation.json", help="where to write every figure")
    parser.add_argument("--grid", default="images/evaluation_grid.png", help="where to write the image grid")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.max_frames < 0:
        raise DanceError("--max-frames must be 0 (all) or more")
    if args.edit_bases < 1:
        raise DanceError("--edit-bases must be at least 1")
    if not MIN_FRAME_SIDE <= args.size <= MAX_SIZE:
        raise DanceError(f"--size {args.size}: the test crops must be {MIN_FRAME_SIDE} to {MAX_SIZE} pixels a side "
                         f"(smaller ones show the detector no person; use the size the models were trained at)")
    names = [find(n).name for n in args.generators] if args.generators else None
    # Every input and output checked before the evaluation's minutes of work.
    video, test_video, cross, demo_source = check_inputs(args.video, args.test_video, args.cross, args.demo_source)
    inputs = [video, test_video, *cross]
    check_output(args.json, (".json",), "figures file", inputs)
    grid = check_output(args.grid, IMAGE_SUFFIXES, "image grid", inputs)
    unseen_grid, hardest_grid = (grid.with_name(f"{grid.stem}_{part}{grid.suffix}") for part in ("unseen", "hardest"))
    t0 = time.perf_counter()
    results, pictures = evaluate(video, test_video, args.max_frames or None, cross, demo_source,
                                 models_dir=args.models_dir, size=args.size, hard=not args.no_hard, names=names,
                                 edit_bases=args.edit_bases)
    results["settings"]["seconds"] = time.perf_counter() - t0
    print(markdown(results))
    with atomic_path(args.json) as tmp:
        tmp.write_text(json.dumps(finite(results), indent=2))
    write_image(args.grid, comparison_grid(*pictures["grid"], rows=GRID_ROWS, cell=CELL))
    for path, picture in ((unseen_grid, pictures["unseen"]), (hardest_grid, pictures["hardest"])):
        if picture is not None and len(picture[0]):
            write_image(path, comparison_grid(picture[0], picture[1], rows=len(picture[0]), cell=CELL))
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in results["settings"]["part_seconds"].items())
    print(f"\nwrote {args.json}, {args.grid}, {unseen_grid} and {hardest_grid} in "
          f"{results['settings']['seconds']:.0f} s ({parts})")
    return 0


if __name__ == "__main__":
    cli_main(main)
