"""The protocols of evaluate.py, each one function that drives every generator and returns its
figures (plain dicts, as the JSON holds them) and, where it has them, its pictures. They share
one `Bench`: the target, the test frames and the generators, set up once (see `bench`).

The generators come from the table and the demo's own protocols (its speed, its live path)
need the demo: both are entry points' business, so those parts stay in evaluate.py."""
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
from tqdm import tqdm

from hard_clips import VARIANTS, make_clip
from metrics import appearance, by_quartile, detections, fidelity, flicker, novelty_quartiles
from Motion import crop_landmarks, drive_track, video_pose_stats
from nets import resize_all
from panels import PANEL, panel_transform, place_crop
from poses import EDIT_FAMILIES, PoseIndex, unseen_poses
from Skeleton import CROP_MARGIN, Skeleton, reduced_vectors
from pose_detector import PoseDetector
from project import data_path, evenly_spaced
from VideoSkeleton import PROBE_FRAMES, VideoSkeleton, choose_detect_margin

# Border added before static re-detection. Extraction's 25% (DETECT_MARGIN) suits tracking mode, but
# on independent 128x128 crops it is too tight: on every 3rd held-out real frame of taichi1.mp4,
# static MediaPipe found a person in 11% with no border, 33% at 10%, 62% at 25%, 95% at 50%.
REDETECT_MARGIN = 0.5
SPEED_FRAMES = 200      # frames timed for generate() speed
SPEED_BATCH = 64        # the batch of the batched speed
OUTPUT_BATCH = 128      # skeletons per generate_batch() call when making a row's frames
PLACED_EVERY = 3        # the placed protocol re-detects every 3rd test frame (at 256 px it costs the most)
PLACED_MARGINS = (0.0, 0.25, 0.5)  # its border: the one that finds the most real frames (see placed_detector)
HARD_VARIANTS = VARIANTS  # the harder driving clips made of each cross-person clip (hard_clips.py)
HARD_EVERY = 2          # every 2nd frame of each harder clip is driven (12 clips: the frames add up)
HARDEST = 8             # poses in the picture of the most novel ones
NOVELTY_EDGES = (25, 50, 75)  # percentiles of the held-out novelty: the quartile edges
SEED = 0

log = logging.getLogger("dance")


class Driven(NamedTuple):
    """One row of the held-out table: its frames (N, S, S, 3), the skeletons that drove them
    (N, 33, 4), and the generator that made them (None for the real frames)."""
    frames: np.ndarray
    skeletons: np.ndarray
    maker: Optional[object]


@dataclass
class Bench:
    """What every protocol works on: the target (`videoSke`, its training frames `train_idx`),
    the test video and its frames `test_idx` (their skeletons and real crops, `size` pixels a
    side), the generators by name with their model files, the static `detector`, and the target's
    training poses as a `index` for novelty."""
    videoSke: VideoSkeleton
    train_idx: np.ndarray
    test: VideoSkeleton
    test_idx: np.ndarray
    source_name: str
    size: int
    skeletons: np.ndarray
    real: np.ndarray
    gens: dict
    model_files: dict
    detector: PoseDetector
    index: PoseIndex


def bench(target, test_video, max_frames, size, load_generators, progress=True):
    """The `Bench` of an evaluation: `target` split into training and held-out frames (or, with
    `test_video`, all of it trains and the other video is tested whole), the first `max_frames`
    test frames (contiguous, so consecutive-frame flicker means something; None: all), and the
    generators `load_generators(target's VideoSkeleton, training frames)` returns as (name ->
    Generator, name -> model file). Crops are `size` pixels a side."""
    videoSke = VideoSkeleton(target, size=size, progress=progress)
    train_idx, test_idx = videoSke.split()
    if test_video:
        test = VideoSkeleton(test_video, size=videoSke.size, progress=progress)
        test_idx, source_name = np.arange(len(test)), Path(test_video).name
        train_idx = np.arange(len(videoSke))
    else:
        test, source_name = videoSke, f"{videoSke.filename.name} (held-out split)"
    if max_frames:
        test_idx = test_idx[:max_frames]
    skeletons, real = test.skeletons[test_idx], test.images()[test_idx]
    gens, model_files = load_generators(videoSke, train_idx)
    return Bench(videoSke, train_idx, test, test_idx, source_name, videoSke.size, skeletons, real, gens,
                 model_files, PoseDetector(tracking=False, margin=REDETECT_MARGIN),
                 PoseIndex(videoSke.skeletons[train_idx]))


def outputs(gen, skeletons, size, batch=OUTPUT_BATCH, independent=False):
    """Generated frames for `skeletons` (N, 33, 4), in order, resized to size x size (uint8 BGR):
    the frames of a sequence, or with independent=True unrelated poses (edits), which a
    generator that keeps state from frame to frame (GenLayered) makes each afresh."""
    if independent and gen.keeps_state:
        out = []
        for skeleton in skeletons:
            gen.reset()
            out.append(gen.generate_batch(skeleton[None]))
    else:
        gen.reset()  # a generator that keeps state from frame to frame starts this sequence afresh
        out = [gen.generate_batch(skeletons[s:s + batch]) for s in range(0, len(skeletons), batch)]
    return resize_all(np.concatenate(out), size) if out else np.zeros((0, size, size, 3), np.uint8)


def drive(videoSke, idx, smoother, target=None):
    """The skeletons the demo would feed a generator for frames `idx` of a video: smoothed over
    time with `smoother`, normalised into `target`'s frame when it is given (a VideoSkeleton),
    in crop coordinates (N, 33, 4)."""
    stats = None if target is None else (video_pose_stats(videoSke), video_pose_stats(target))
    return drive_track(videoSke.frame_landmarks()[idx], videoSke.frame_index[idx], videoSke.frame_size,
                       videoSke.fps, smoother, CROP_MARGIN, stats)


def score(frames, real, skeletons, real_flicker, detector):
    """Every figure of one row: appearance against `real`, pose fidelity against `skeletons`
    (what drove the generator), flicker."""
    vectors = reduced_vectors(skeletons)
    per_frame = [appearance(f, r, v) for f, r, v in zip(frames, real, vectors)]
    row = {k: float(np.mean([p[k] for p in per_frame])) for k in per_frame[0]}
    found, errors = detections(frames, skeletons, detector)
    row.update(fidelity(found, errors))
    row["flicker"] = flicker(frames)
    row["flicker_ratio"] = row["flicker"] / real_flicker
    return row, (found, errors)


def held_out_rows(b, smoothed, smoothers):
    """The rows of the held-out table: the real frames, every generator driven by the test
    skeletons, and the `smoothed` generator (when scored) driven by them smoothed with each of
    `smoothers`, as the demo drives it: name -> Driven."""
    rows = {"real": Driven(b.real, b.skeletons, None)}
    for name, gen in b.gens.items():
        rows[name] = Driven(outputs(gen, b.skeletons, b.size), b.skeletons, gen)
    if smoothed in b.gens:
        for smoother in smoothers:
            driver = drive(b.test, b.test_idx, smoother)
            rows[f"{smoothed}+{smoother}"] = Driven(outputs(b.gens[smoothed], driver, b.size), driver, b.gens[smoothed])
    return rows


def held_out(b, driven, progress=True):
    """Self-reenactment on the test frames: each row of `driven` scored against the real frames.
    Returns (name -> figures, name -> (found, errors) per test frame)."""
    rows, per_frame, real_flicker = {}, {}, flicker(b.real)
    for name, d in tqdm(driven.items(), desc="scoring", disable=not progress):
        row, per_frame[name] = score(d.frames, b.real, d.skeletons, real_flicker, b.detector)
        row["native_size"] = b.size if d.maker is None else d.maker.config["image_size"]
        if row["native_size"] > b.size:
            log.warning("%s: its frames are %d pixels a side, scored here shrunk to --size %d", name,
                        row["native_size"], b.size)
        rows[name] = row
    return rows, per_frame


def speed(gen, skeletons, count=SPEED_FRAMES, batch=SPEED_BATCH):
    """generate() frames per second, one at a time and in batches of `batch`."""
    skes = [Skeleton(v) for v in skeletons[:count]]
    gen.generate(skes[0])  # warm-up
    t0 = time.perf_counter()
    for s in skes:
        gen.generate(s)
    single = len(skes) / (time.perf_counter() - t0)
    v = np.asarray(skeletons[:count], np.float32)
    gen.generate_batch(v[:batch])
    t0 = time.perf_counter()
    for s in range(0, len(v), batch):
        gen.generate_batch(v[s:s + batch])
    return {"single_fps": single, "batch_fps": len(v) / (time.perf_counter() - t0), "batch": batch}


def novelty(b, per_frame):
    """Each held-out pose's distance to the nearest training pose of the target (position and
    scale normalised away, as nearest neighbour does), its quartile edges (applied to every other
    set), and the rows of `per_frame` per quartile. Returns (figures, held-out novelty (N,))."""
    held = b.index.novelty(b.skeletons)
    edges = np.percentile(held, NOVELTY_EDGES)
    quartile = novelty_quartiles(held, edges)
    return {"edges": [float(e) for e in edges], "held_out_median": float(np.median(held)),
            "rows": {name: {"held_out": by_quartile(*found_errors, quartile)}
                     for name, found_errors in per_frame.items()}, "clips": {}}, held


def hardest_of(nov, driven, frames_by_gen, count=HARDEST):
    """The `count` most novel poses of a set: [(novelty, driving skeleton, {generator: frame})]."""
    return [(float(nov[i]), driven[i], {n: f[i] for n, f in frames_by_gen.items()}) for i in np.argsort(-nov)[:count]]


def unseen(b, edges, edit_bases):
    """Held-out skeletons edited into poses the target never made (bone lengths kept), re-cropped
    as the demo crops; no ground truth image, so pose fidelity only. Returns (figures, the grid's
    (skeletons, {generator: frames}): one pose of each family, `hardest_of` candidates)."""
    edited, families = unseen_poses(b.skeletons, edit_bases, SEED)
    edited = np.stack([crop_landmarks(lm, (b.size, b.size), CROP_MARGIN)[0] for lm in edited])
    families, edit_novelty = np.array(families), b.index.novelty(edited)
    figures = {"settings": {"bases": edit_bases, "families": list(EDIT_FAMILIES), "poses": int(len(edited)),
                            "seed": SEED},
               "novelty_median": float(np.median(edit_novelty)),
               "beyond_held_out_q3": float(np.mean(edit_novelty > edges[2])), "rows": {}}
    frames = {}
    for name, gen in b.gens.items():
        frames[name] = outputs(gen, edited, b.size, independent=True)
        found, errors = detections(frames[name], edited, b.detector)
        figures["rows"][name] = {**fidelity(found, errors),
                                 "families": {f: fidelity(found, errors, families == f) for f in EDIT_FAMILIES}}
    # one pose of each family, each edited from another base skeleton
    n = len(EDIT_FAMILIES)
    picks = [k * n + k for k in range(min(n, len(edited) // n))]
    grid = (edited[picks], {name: f[picks] for name, f in frames.items()})
    return figures, grid, hardest_of(edit_novelty, edited, frames)


def placed_panels(frames, skeletons, boxes, frame_size, panel=PANEL):
    """The placed protocol's pictures: each crop (N, S, S, 3) placed into its target's frame
    exactly as the demo's right panel places it (panels.place_crop, `panel` pixels), with the
    driving skeletons mapped into the panel: (panels, skeletons normalised to the panel)."""
    panels, targets = [], []
    for crop, lm, box in zip(frames, skeletons, boxes):
        panels.append(place_crop(crop, box, frame_size, panel))
        scale, dx, dy = panel_transform(box, frame_size, panel)
        mapped = np.asarray(lm, np.float32).copy()
        mapped[:, 0], mapped[:, 1] = (mapped[:, 0] * scale + dx) / panel, (mapped[:, 1] * scale + dy) / panel
        targets.append(mapped)
    return panels, np.stack(targets)


def placed_detector(real_panels):
    """The static detector of the placed protocol, one for every row: its border is the one of
    PLACED_MARGINS that finds the person in most of the real frames' panels (as extraction
    chooses its border): a tight target frame needs one, a large frame with a small person not."""
    margin = choose_detect_margin([real_panels[i] for i in evenly_spaced(len(real_panels), PROBE_FRAMES)],
                                  PLACED_MARGINS)
    return PoseDetector(tracking=False, margin=margin), margin


def placed(frames, skeletons, boxes, frame_size, detector, panel=PANEL):
    """`detections` of the placed protocol: joint errors in panel pixels."""
    return detections(*placed_panels(frames, skeletons, boxes, frame_size, panel), detector)


def at_panel_size(b, driven):
    """At the size people watch: every PLACED_EVERY-th test frame of the real row and of each
    generator's row of `driven` placed into the target's frame as the demo's right panel places
    it, and re-detected there by one detector. Returns the figures."""
    sub = np.arange(0, len(b.test_idx), PLACED_EVERY)
    boxes, frame_size = b.test.boxes[b.test_idx][sub], b.test.frame_size
    real_placed = placed_panels(b.real[sub], b.skeletons[sub], boxes, frame_size)  # chooses the border too
    detector, margin = placed_detector(real_placed[0])
    with detector:
        rows = {"real": fidelity(*detections(*real_placed, detector))}
        rows.update({name: fidelity(*placed(driven[name].frames[sub], driven[name].skeletons[sub], boxes,
                                            frame_size, detector)) for name in b.gens})
    return {"settings": {"panel": PANEL, "every": PLACED_EVERY, "frames": int(len(sub)),
                         "redetect_margin": margin, "frame_size": list(frame_size)}, "rows": rows}


def drive_clips(b, clips, edges, smoother, every=1, max_frames=None, progress=True):
    """Other people's clips ((label, path) pairs) driving every generator as the demo drives them
    (`smoother`-smoothed, normalised into the target's frame, cropped), scored on pose fidelity
    against the driving skeleton. Returns {"tables": label -> generator -> fidelity, "novelty":
    label -> its pose novelty (median, quartile shares by `edges`), "pooled": generator ->
    [(found, errors, novelty) per clip], "hardest": `hardest_of` candidates of every clip}."""
    out = {"tables": {}, "novelty": {}, "pooled": {name: [] for name in b.gens}, "hardest": []}
    for label, path in clips:
        src = VideoSkeleton(path, every=every, size=b.size, progress=progress)
        idx = np.arange(len(src))[:max_frames] if max_frames else np.arange(len(src))
        driven = drive(src, idx, smoother, target=b.videoSke)
        nov = b.index.novelty(driven)
        q = novelty_quartiles(nov, edges)
        out["novelty"][label] = {"median": float(np.median(nov)),
                                 "quartile_shares": [float(np.mean(q == k)) for k in range(4)]}
        table, frames_by_gen = {}, {}
        for name, gen in b.gens.items():
            frames_by_gen[name] = outputs(gen, driven, b.size)
            found, errors = detections(frames_by_gen[name], driven, b.detector)
            table[name] = fidelity(found, errors)
            out["pooled"][name].append((found, errors, nov))
        out["tables"][label] = table
        out["hardest"] += hardest_of(nov, driven, frames_by_gen)
    return out


def cross_clips(cross):
    """(label, path) of the cross-person videos `cross` that are here; the others are skipped, said."""
    for c in cross or ():
        if not data_path(c).exists():
            log.warning("skipping cross-person %s: not found", data_path(c))
    return [(data_path(c).name, data_path(c)) for c in cross or () if data_path(c).exists()]


def hard_clips(found_cross, progress=True):
    """The harder driving clips made of each cross-person clip: turned, mirrored, at half size."""
    return [(f"{path.stem} {variant}", make_clip(path, variant, progress=progress))
            for _, path in found_cross for variant in HARD_VARIANTS]
