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

import cv2
import numpy as np
import torch
from tqdm import tqdm

from DanceDemo import DEFAULT_SMOOTHER, PANEL, DanceDemo, panel_transform, place_crop
from files import IMAGE_SUFFIXES, atomic_path, check_output, write_image
from generators import DEFAULT, TABLE, find, make_generator
from hard_clips import VARIANTS, make_clip
from Motion import crop_landmarks, drive_track, video_pose_stats
from nets import resize_all
from pose_detector import MIN_FRAME_SIDE, PoseDetector
from poses import EDIT_FAMILIES, PoseIndex, unseen_poses
from project import DanceError, cli_main, data_path, evenly_spaced
from Skeleton import CROP_MARGIN, Skeleton, reduced_vectors
from smoothing import SMOOTHERS
from checkpoints import MODELS_DIR, model_path
from held_out import comparison_grid
from VideoReader import VideoReader
from VideoSkeleton import DEFAULT_SIZE, HELD_OUT, MAX_SIZE, PROBE_FRAMES, VideoSkeleton, choose_detect_margin

# ---- defaults ----
DEFAULT_TARGET = "taichi1.mp4"
CROSS_SOURCES = ("karate1.mp4", "taichi2.mp4")
MAX_FRAMES = None       # test frames scored: all, or a contiguous run of this many from the start
BOX_MARGIN = 0.1        # person box: the real skeleton's box grown by this fraction of the crop, each side
# Border added before static re-detection. Extraction's 25% (DETECT_MARGIN) suits tracking mode, but
# on independent 128x128 crops it is too tight: on every 3rd held-out real frame of taichi1.mp4,
# static MediaPipe found a person in 11% with no border, 33% at 10%, 62% at 25%, 95% at 50%.
REDETECT_MARGIN = 0.5
SPEED_FRAMES = 200      # frames timed for generate() speed
SMOOTHED = DEFAULT       # the demo's generator, also scored driven by each smoother (rows "layered+median", ...)
EDIT_BASES = 30         # held-out skeletons edited into each of poses.EDIT_FAMILIES (17): 510 unseen poses
PLACED_EVERY = 3        # the placed protocol re-detects every 3rd test frame (at 256 px it costs the most)
PLACED_MARGINS = (0.0, 0.25, 0.5)  # its border: the one that finds the most real frames (see placed_detector)
LIVE_SLOWDOWNS = (0.0, 0.1)  # seconds added to each generated frame in the live runs: none, and
                             # enough that generation cannot keep up with a 25-30 fps source
HARD_VARIANTS = VARIANTS  # the harder driving clips made of each cross-person clip (hard_clips.py)
HARD_EVERY = 2          # every 2nd frame of each harder clip is driven (12 clips: the frames add up)
NOVELTY_BINS = (0.2, 0.3)  # beyond the fourth quartile: poses this far from any the target made
HARDEST = 8             # poses in the picture of the most novel ones
GRID_ROWS = 6
CELL = 128
SEED = 0

log = logging.getLogger("dance")


# ---- metrics on float images in [0, 1], (H, W, 3) ---------------------------------------------
def l1(a, b):
    return float(np.abs(a - b).mean())


def psnr(a, b):
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def ssim(a, b, sigma=1.5, size=11):
    """Mean SSIM (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
    data range 1, averaged over the RGB channels; borders the window cannot cover are left out."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda x: cv2.GaussianBlur(x, (size, size), sigma, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    pad = size // 2
    if min(a.shape[:2]) > 2 * pad:
        s = s[pad:-pad, pad:-pad]
    return float(s.mean())


def person_box(vector, size, margin=BOX_MARGIN):
    """(x0, y0, x1, y1) pixels of the 13 reduced joints' box grown by `margin` x size, clipped."""
    pts = np.asarray(vector, np.float32).reshape(-1, 2) * size
    m = margin * size
    x0, y0 = np.floor(pts.min(0) - m).astype(int).clip(0, size - 1)
    x1, y1 = np.ceil(pts.max(0) + m).astype(int).clip(1, size)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def appearance(fake, real, vector):
    """L1, PSNR, SSIM on the whole frame and on the person's box; uint8 BGR inputs of one size."""
    a, b = fake.astype(np.float32) / 255, real.astype(np.float32) / 255
    x0, y0, x1, y1 = person_box(vector, real.shape[0])
    ab, bb = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
    return {"l1": l1(a, b), "psnr": psnr(a, b), "ssim": ssim(a, b),
            "box_l1": l1(ab, bb), "box_psnr": psnr(ab, bb), "box_ssim": ssim(ab, bb)}


def flicker(frames):
    """Mean absolute difference between consecutive frames, pixels in [0, 1]."""
    f = np.asarray(frames, np.float32) / 255
    return float(np.abs(np.diff(f, axis=0)).mean()) if len(f) > 1 else float("nan")


def detections(images, skeletons, detector):
    """MediaPipe on each of `images`: (found (N,) bool, mean error in pixels over the 13 reduced
    joints against `skeletons` (the driving ones, in the images' normalised coordinates, (N, 26)
    or (N, 33, 4)), NaN where nobody was found)."""
    found, errors = np.zeros(len(images), bool), np.full(len(images), np.nan)
    for k, (im, vec) in enumerate(zip(images, reduced_vectors(skeletons))):
        ske = detector.detect(im)
        if ske is not None:
            size = np.array(im.shape[1::-1], np.float32)
            found[k] = True
            errors[k] = float(np.linalg.norm((ske.reduced() - vec.reshape(-1, 2)) * size, axis=1).mean())
    return found, errors


def fidelity(found, errors, where=None):
    """Detection rate and mean joint error (over the detected) of `detections`' results, on the
    frames `where` selects (a boolean mask; all by default)."""
    if where is not None:
        found, errors = found[where], errors[where]
    return {"detection_rate": float(found.mean()) if len(found) else float("nan"),
            "joint_error_px": float(np.mean(errors[found])) if found.any() else float("nan"),
            "frames": int(len(found))}


def pose_fidelity(images, skeletons, detector):
    """Detection rate of MediaPipe on `images`, and mean joint error in pixels against the
    driving `skeletons` over the detected ones (see `detections`)."""
    return fidelity(*detections(images, skeletons, detector))


# ---- what users do: poses the target never made, frames at the size people watch ------------
def novelty_quartiles(novelty, edges):
    """The quartile (0-3) of each pose's novelty, by the held-out set's quartile `edges`."""
    return np.searchsorted(edges, novelty, side="right")


def by_quartile(found, errors, quartile):
    """`fidelity` per novelty quartile: a list of four rows."""
    return [fidelity(found, errors, quartile == q) for q in range(4)]


def beyond(found, errors, novelty, bins=NOVELTY_BINS):
    """`fidelity` of the poses whose novelty exceeds each of `bins`: a list, one row per bin."""
    return [fidelity(found, errors, novelty > b) for b in bins]


def pool_rows(rows, pooled, key, edges):
    """Into each generator's novelty row, the figures of clips pooled under `key`: per quartile
    (`key`), beyond it (`key`_beyond) and all together (`key`_all)."""
    for name, parts in pooled.items():
        if parts:
            found, errors, nov = (np.concatenate(x) for x in zip(*parts))
            rows[name][key] = by_quartile(found, errors, novelty_quartiles(nov, edges))
            rows[name][f"{key}_beyond"] = beyond(found, errors, nov)
            rows[name][f"{key}_all"] = fidelity(found, errors)


def placed_panels(frames, skeletons, boxes, frame_size, panel=PANEL):
    """The second protocol's pictures: each crop (N, S, S, 3) placed into its target's frame
    exactly as the demo's right panel places it (DanceDemo.place_crop, `panel` pixels), with the
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


# ---- generators ----------------------------------------------------------------------------
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
        if gen.config["crop_margin"] != videoSke.settings["crop_margin"]:
            log.warning("%s was made from crops with margin %s, the test frames are cut with %s: its "
                        "appearance figures compare differently framed pictures", row.name,
                        gen.config["crop_margin"], videoSke.settings["crop_margin"])
        gens[row.name] = gen
        if path is not None:
            files[row.name] = str(path)
    return gens, files


def outputs(gen, skeletons, size, batch=128, independent=False):
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


def speed(gen, skeletons, count=SPEED_FRAMES, batch=64):
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


# ---- the evaluation ------------------------------------------------------------------------
def drive(videoSke, idx, smoother, target=None):
    """The skeletons the demo would feed a generator for frames `idx` of a video: smoothed over
    time with `smoother`, normalised into `target`'s frame when it is given (a VideoSkeleton),
    in crop coordinates (N, 33, 4)."""
    stats = None if target is None else (video_pose_stats(videoSke), video_pose_stats(target))
    return drive_track(videoSke.frame_landmarks()[idx], videoSke.frame_index[idx], videoSke.frame_size,
                       videoSke.fps, smoother, CROP_MARGIN, stats)


def drive_clips(clips, gens, target, index, edges, detector, every=1, max_frames=None, progress=True, keep=None):
    """Other people's clips ((label, path) pairs) driving every generator as the demo drives them
    (smoothed, normalised into `target`'s frame, cropped), scored on pose fidelity against the
    driving skeleton. Returns {"tables": label -> generator -> fidelity, "novelty": label -> its
    pose novelty (median, quartile shares by `edges`), "pooled": generator -> [(found, errors,
    novelty) per clip]}; `keep(novelty, driven, frames)` sees each clip's frames (the hardest)."""
    out = {"tables": {}, "novelty": {}, "pooled": {name: [] for name in gens}}
    size = target.size
    for label, path in clips:
        src = VideoSkeleton(path, every=every, size=size, progress=progress)
        idx = np.arange(len(src))[:max_frames] if max_frames else np.arange(len(src))
        driven = drive(src, idx, DEFAULT_SMOOTHER, target=target)
        nov = index.novelty(driven)
        q = novelty_quartiles(nov, edges)
        out["novelty"][label] = {"median": float(np.median(nov)), "quartile_shares": [float(np.mean(q == k))
                                                                                       for k in range(4)]}
        table, frames_by_gen = {}, {}
        for name, gen in gens.items():
            frames_by_gen[name] = outputs(gen, driven, size)
            found, errors = detections(frames_by_gen[name], driven, detector)
            table[name] = fidelity(found, errors)
            out["pooled"][name].append((found, errors, nov))
        out["tables"][label] = table
        if keep:
            keep(nov, driven, frames_by_gen)
    return out


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


def score(frames, real, skeletons, real_flicker, detector):
    """Every figure of one row: appearance against `real`, pose fidelity against `skeletons`
    (what drove the generator), flicker."""
    vectors = reduced_vectors(skeletons)
    per_frame = [appearance(f, r, v) for f, r, v in zip(frames, real, vectors)]
    row = {k: float(np.mean([p[k] for p in per_frame])) for k in per_frame[0]}
    found, errors = detections(frames, vectors, detector)
    row.update(fidelity(found, errors))
    row["flicker"] = flicker(frames)
    row["flicker_ratio"] = row["flicker"] / real_flicker
    return row, (found, errors)


def evaluate(target, test_video=None, max_frames=MAX_FRAMES, cross=CROSS_SOURCES, demo_source=None,
             models_dir=MODELS_DIR, smoothers=tuple(m for m in SMOOTHERS if m != "none"), progress=True,
             size=DEFAULT_SIZE, hard=True, names=None, edit_bases=EDIT_BASES):
    """Every figure, as a dict (see the module docstring); `size`: the side of the test crops
    (every generator's frames are resized to it); `hard`: also drive the harder clips made of
    the cross-person ones; `names`: score only these generators (default: every one);
    `edit_bases`: held-out skeletons edited into every family for the unseen poses."""
    torch.manual_seed(SEED)
    t0 = time.perf_counter()
    videoSke = VideoSkeleton(target, size=size, progress=progress)
    train_idx, test_idx = videoSke.split()
    if test_video:
        test = VideoSkeleton(test_video, size=videoSke.size, progress=progress)
        test_idx, source_name = np.arange(len(test)), Path(test_video).name
        train_idx = np.arange(len(videoSke))
    else:
        test, source_name = videoSke, f"{videoSke.filename.name} (held-out split)"
    if max_frames:
        test_idx = test_idx[:max_frames]  # contiguous, so consecutive-frame flicker means something
    size = videoSke.size
    skeletons, real = test.skeletons[test_idx], test.images()[test_idx]
    gens, model_files = load_generators(videoSke, train_idx, models_dir, names)

    results = {"settings": {
        "target": str(videoSke.filename), "test": source_name, "test_frames": int(len(test_idx)),
        "frame_size": size, "held_out": HELD_OUT, "max_frames": max_frames, "box_margin": BOX_MARGIN,
        "redetect_margin": REDETECT_MARGIN, "smoothed": SMOOTHED if SMOOTHED in gens else None,
        "cross_smoother": DEFAULT_SMOOTHER,
        "models": model_files,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "device": "cuda" if torch.cuda.is_available() else "cpu"}},
        "rows": {}, "cross": {}}
    detector = PoseDetector(tracking=False, margin=REDETECT_MARGIN)
    # Each row of the table: its frames, the skeletons that drove them, and the generator that made
    # them (None for the real frames); rows "<demo's generator>+X" are the same generator driven smoothed.
    rows, drivers, makers, real_flicker = {"real": real}, {"real": skeletons}, {"real": None}, flicker(real)
    for name, gen in gens.items():
        rows[name], drivers[name], makers[name] = outputs(gen, skeletons, size), skeletons, gen
    if SMOOTHED in gens:  # the same generator driven by smoothed skeletons, as the demo drives it
        for smoother in smoothers:
            name = f"{SMOOTHED}+{smoother}"
            drivers[name] = drive(test, test_idx, smoother)
            rows[name], makers[name] = outputs(gens[SMOOTHED], drivers[name], size), gens[SMOOTHED]
    per_frame = {}  # name -> (found, errors) on each test frame
    for name, frames in tqdm(rows.items(), desc="scoring", disable=not progress):
        row, per_frame[name] = score(frames, real, drivers[name], real_flicker, detector)
        row["native_size"] = size if makers[name] is None else makers[name].config["image_size"]
        if row["native_size"] > size:
            log.warning("%s: its frames are %d pixels a side, scored here shrunk to --size %d", name,
                        row["native_size"], size)
        if name in gens:
            row.update(speed(gens[name], skeletons))
        results["rows"][name] = row
    results["grid_frames"] = {k: v for k, v in rows.items() if k == "real" or k in gens}
    results["grid_skeletons"] = skeletons
    seconds = {"held_out": time.perf_counter() - t0}
    scored = ["real", *gens]  # the rows of the novelty table

    # Pose novelty: each driving pose's distance to the nearest training pose of the target,
    # position and scale normalised away as nearest neighbour does; quartile edges from the
    # held-out poses, applied to every other set.
    t = time.perf_counter()
    index = PoseIndex(videoSke.vectors()[train_idx])
    held_novelty = index.novelty(skeletons)
    edges = np.percentile(held_novelty, (25, 50, 75))
    held_q = novelty_quartiles(held_novelty, edges)
    novelty = {"edges": [float(e) for e in edges], "held_out_median": float(np.median(held_novelty)),
               "rows": {name: {"held_out": by_quartile(*per_frame[name], held_q)} for name in scored}, "clips": {}}
    hardest = []  # (novelty, driving skeleton, {generator: frame}) candidates for the picture

    def keep_hardest(nov, driven, frames_by_gen):
        for i in np.argsort(-nov)[:HARDEST]:
            hardest.append((float(nov[i]), driven[i], {n: f[i] for n, f in frames_by_gen.items()}))

    # Unseen poses: held-out skeletons edited into poses the target never made (bone lengths kept),
    # re-cropped as the demo crops; no ground truth image, so pose fidelity only.
    edited, families = unseen_poses(skeletons, edit_bases, SEED)
    edited = np.stack([crop_landmarks(lm, (size, size), CROP_MARGIN)[0] for lm in edited])
    families, edit_novelty = np.array(families), index.novelty(edited)
    unseen = {"settings": {"bases": edit_bases, "families": list(EDIT_FAMILIES), "poses": int(len(edited)),
                           "seed": SEED},
              "novelty_median": float(np.median(edit_novelty)),
              "beyond_held_out_q3": float(np.mean(edit_novelty > edges[2])), "rows": {}}
    edit_frames = {}
    for name, gen in gens.items():
        edit_frames[name] = outputs(gen, edited, size, independent=True)
        found, errors = detections(edit_frames[name], edited, detector)
        unseen["rows"][name] = {**fidelity(found, errors),
                                "families": {f: fidelity(found, errors, families == f) for f in EDIT_FAMILIES}}
    keep_hardest(edit_novelty, edited, edit_frames)
    # The grid: one pose of each family, each edited from another base skeleton.
    picks = [k * len(EDIT_FAMILIES) + k for k in range(min(len(EDIT_FAMILIES), len(edited) // len(EDIT_FAMILIES)))]
    results["unseen_grid"] = (edited[picks], {n: f[picks] for n, f in edit_frames.items()})
    seconds["unseen"] = time.perf_counter() - t

    # At the size people watch: each crop placed into the target's frame as the demo's right panel
    # places it, at the panel's size, and re-detected there.
    t = time.perf_counter()
    sub = np.arange(0, len(test_idx), PLACED_EVERY)
    boxes = test.boxes[test_idx][sub]
    real_placed = placed_panels(real[sub], skeletons[sub], boxes, test.frame_size)  # chooses the border too
    at_size, margin = placed_detector(real_placed[0])
    with at_size:
        placed_rows = {"real": fidelity(*detections(*real_placed, at_size))}
        placed_rows.update({name: fidelity(*placed(rows[name][sub], drivers[name][sub], boxes, test.frame_size,
                                                   at_size)) for name in gens})
    results["placed"] = {"settings": {"panel": PANEL, "every": PLACED_EVERY, "frames": int(len(sub)),
                                      "redetect_margin": margin, "frame_size": list(test.frame_size)},
                         "rows": placed_rows}
    seconds["placed"] = time.perf_counter() - t

    t = time.perf_counter()
    found_cross = [(data_path(c).name, data_path(c)) for c in cross or () if data_path(c).exists()]
    for c in cross or ():
        if not data_path(c).exists():
            log.warning("skipping cross-person %s: not found", data_path(c))
    clips = drive_clips(found_cross, gens, videoSke, index, edges, detector, max_frames=max_frames,
                        progress=progress, keep=keep_hardest)
    results["cross"], novelty["clips"] = clips["tables"], clips["novelty"]
    pool_rows(novelty["rows"], clips["pooled"], "cross", edges)
    seconds["cross"] = time.perf_counter() - t

    # Harder driving clips, made from the cross-person ones: turned, mirrored, at half size.
    t = time.perf_counter()
    made = [(f"{path.stem} {variant}", make_clip(path, variant, progress=progress))
            for _, path in (found_cross if hard else ()) for variant in HARD_VARIANTS]
    clips = drive_clips(made, gens, videoSke, index, edges, detector, every=HARD_EVERY, max_frames=max_frames,
                        progress=progress, keep=keep_hardest)
    results["hard"] = {"settings": {"variants": list(HARD_VARIANTS), "every": HARD_EVERY}, "clips": clips["tables"],
                       "novelty": clips["novelty"]}
    pool_rows(novelty["rows"], clips["pooled"], "hard", edges)
    seconds["hard"] = time.perf_counter() - t
    for name in scored:  # beyond the fourth quartile, on the held-out frames
        novelty["rows"][name]["held_out_beyond"] = beyond(*per_frame[name], held_novelty)
    detector.close()
    results["novelty"], results["unseen"] = novelty, unseen
    hardest.sort(key=lambda h: -h[0])
    top = hardest[:HARDEST]
    results["hardest_grid"] = (np.stack([h[1] for h in top]), {n: np.stack([h[2][n] for h in top]) for n in gens}) \
        if top else None
    results["summary"] = {name: {
        "held_out": fidelity(*per_frame[name]), "novel_q4": novelty["rows"][name]["held_out"][3],
        "unseen": {k: unseen["rows"][name][k] for k in ("detection_rate", "joint_error_px", "frames")},
        "cross": novelty["rows"][name].get("cross_all"), "hard": novelty["rows"][name].get("hard_all"),
        "placed": results["placed"]["rows"][name]}
        for name in gens}

    t = time.perf_counter()
    if demo_source:
        for name in gens:
            with tempfile.TemporaryDirectory() as tmp:
                demo = DanceDemo(demo_source, name, target=target, model=model_files.get(name))
                stats = demo.draw(output=Path(tmp) / "demo.mp4")
            results["rows"][name]["demo_fps"] = stats["fps"]
    seconds["demo"] = time.perf_counter() - t
    t = time.perf_counter()
    if demo_source and SMOOTHED in gens:
        results["live"] = live_figures(demo_source, target, SMOOTHED, model_files.get(SMOOTHED))
    seconds["live"] = time.perf_counter() - t
    results["settings"]["part_seconds"] = seconds
    return results


def finite(value):
    """The results with inf and nan as None, so the JSON is strict (PSNR of identical frames is inf)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def markdown(results):
    """The tables of a results dict, as Markdown."""
    s = results["settings"]
    smoothed = (f" Rows `{s['smoothed']}+X` are driven by the test skeletons smoothed over time with X (see "
                f"Motion.py); their pose error is against those smoothed skeletons.") if s["smoothed"] else ""
    lines = [f"Test footage: {s['test']}, {s['test_frames']} frames at {s['frame_size']}x{s['frame_size']}; "
             f"outputs smaller than that are upsampled (native size in the table).{smoothed}", "",
             "| generator | native | L1 | PSNR | SSIM | box L1 | box PSNR | box SSIM | detected | joint err (px) "
             "| flicker (real) | fps 1 / batch | demo fps |", "|---|" + "---|" * 12]
    real_flicker = results["rows"]["real"]["flicker"]
    for name, r in results["rows"].items():
        fps = f"{r['single_fps']:.0f} / {r['batch_fps']:.0f}" if "single_fps" in r else "-"
        demo = f"{r['demo_fps']:.1f}" if "demo_fps" in r else "-"
        lines.append(f"| {name} | {r['native_size']} | {r['l1']:.4f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r['box_l1']:.4f} | {r['box_psnr']:.2f} | {r['box_ssim']:.3f} | "
                     f"{100 * r['detection_rate']:.1f}% | {r['joint_error_px']:.2f} | "
                     f"{r['flicker']:.4f} ({r['flicker_ratio']:.2f}x of {real_flicker:.4f}) | {fps} | {demo} |")
    for source, table in results["cross"].items():
        nov = results["novelty"]["clips"][source]
        lines += ["", f"Cross-person: {source} drives the target ({next(iter(table.values()))['frames']} frames, "
                      f"as the demo drives it: {s['cross_smoother']}-smoothed, normalised, cropped); pose novelty: "
                      f"median {nov['median']:.3f}, {100 * nov['quartile_shares'][3]:.0f}% of its poses beyond the "
                      f"held-out third quartile", "",
                  "| generator | detected | joint err (px) |", "|---|---|---|"]
        lines += [f"| {n} | {pct(r)} | {r['joint_error_px']:.2f} |" for n, r in table.items()]
    hard = results.get("hard", {})
    if hard.get("clips"):
        names = list(next(iter(hard["clips"].values())))
        lines += ["", f"Harder driving clips: each cross-person clip turned by +-20 and +-35 degrees, mirrored, and at "
                      f"half size in a frame of its size (hard_clips.py), every {hard['settings']['every']}nd frame, "
                      f"driving the target as the demo drives it. Cells: detected / joint error (px); novelty: the "
                      f"clip's median pose novelty and its share beyond the held-out third quartile.", "",
                  "| clip | frames | novelty | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
        for clip, table in hard["clips"].items():
            nov = hard["novelty"][clip]
            lines.append(f"| {clip} | {next(iter(table.values()))['frames']} | {nov['median']:.3f} "
                         f"({100 * nov['quartile_shares'][3]:.0f}%) | " + " | ".join(cell(table[n]) for n in names) + " |")
    if "live" in results:
        live = results["live"]
        lines += ["", f"Live: {live['source']} played in real time ({live['source_fps']:g} fps) as a camera would "
                      f"deliver it, through the demo's live path ({live['generator']}, {live['smoother']} smoothing); "
                      f"each generated frame as it is, then slowed on purpose.", "",
                  "| generator slowed by | shown fps | frames shown / captured | dropped | latency median (ms) "
                  "| latency p90 (ms) |", "|---|---|---|---|---|---|"]
        lines += [f"| {k} | {r['fps']:.1f} | {r['frames']} / {r['captured']} | {r['dropped']} | "
                  f"{r['latency_ms']:.0f} | {r['latency_p90_ms']:.0f} |" for k, r in live["rows"].items()]
    return "\n".join(lines + [""] + what_users_do(results))


def pct(row):
    return f"{100 * row['detection_rate']:.1f}%"


def cell(row):
    """'detected / joint error' of a fidelity row, for the wide tables."""
    if row is None or not row["frames"]:
        return "-"
    return f"{pct(row)} / " + ("-" if np.isnan(row["joint_error_px"]) else f"{row['joint_error_px']:.1f}")


def what_users_do(results):
    """The tables of poses the target never made and of frames at the size people watch."""
    nov, unseen, placed_ = results["novelty"], results["unseen"], results["placed"]
    e1, e2, e3 = nov["edges"]
    lines = [f"Pose novelty: each driving pose's distance to the nearest training pose of the target (mean "
             f"joint distance, position and scale removed, in units of the pose's RMS spread). Quartile edges "
             f"from the held-out poses: {e1:.3f} / {e2:.3f} / {e3:.3f} (median {nov['held_out_median']:.3f}). "
             f"Cells: detected / joint error (px).", "",
             "| generator | held-out Q1 | Q2 | Q3 | Q4 (most novel) | cross-person Q1 | Q2 | Q3 | Q4 |",
             "|---|" + "---|" * 8]
    for name, r in nov["rows"].items():
        cross = r.get("cross") or [None] * 4
        lines.append(f"| {name} | " + " | ".join(cell(x) for x in r["held_out"] + cross) + " |")
    sets = [k for k in ("held_out", "cross", "hard") if any(f"{k}_beyond" in r for r in nov["rows"].values())]
    bins = " | ".join(f"{k.replace('_', '-')} > {b:g}" for k in sets for b in NOVELTY_BINS)
    lines += ["", "Beyond the fourth quartile: the poses of each set (held-out, cross-person, harder clips) whose "
                  "novelty exceeds the bin. Cells: detected / joint error (px) (of how many poses).", "",
              f"| generator | {bins} |", "|---|" + "---|" * (len(sets) * len(NOVELTY_BINS))]
    for name, r in nov["rows"].items():
        cells = [x for k in sets for x in (r.get(f"{k}_beyond") or [None] * len(NOVELTY_BINS))]
        lines.append(f"| {name} | " + " | ".join(f"{cell(x)} (of {x['frames']})" if x else "-" for x in cells) + " |")
    u = unseen["settings"]
    lines += ["", f"Unseen poses: {u['poses']} held-out skeletons edited (seed {u['seed']}, every bone's length kept) "
                  f"into poses the target never made; median novelty {unseen['novelty_median']:.3f}, "
                  f"{100 * unseen['beyond_held_out_q3']:.0f}% beyond the held-out third quartile. Pose fidelity "
                  f"against the edited skeleton; cells: detected / joint error (px).", "",
              "| generator | all | " + " | ".join(u["families"]) + " |", "|---|---|" + "---|" * len(u["families"])]
    for name, r in unseen["rows"].items():
        lines.append(f"| {name} | {cell(r)} | " + " | ".join(cell(r["families"][f]) for f in u["families"]) + " |")
    p = placed_["settings"]
    lines += ["", f"At the size people watch: one test frame in {p['every']}, its crop placed into the target's "
                  f"{p['frame_size'][0]}x{p['frame_size'][1]} frame as the demo's {p['panel']}x{p['panel']} right "
                  f"panel places it, re-detected there ({p['frames']} frames; one static detector for every row, "
                  f"its border {p['redetect_margin']:g}, the one of {', '.join(f'{m:g}' for m in PLACED_MARGINS)} "
                  f"that finds the most real frames); joint error in panel pixels.", "",
              "| generator | crop: detected / err (px of 128) | placed: detected / err (px of the panel) |",
              "|---|---|---|"]
    for name, r in placed_["rows"].items():
        lines.append(f"| {name} | {cell(results['rows'][name])} | {cell(r)} |")
    lines += ["", "Summary: detected / joint error (px) of each generator on what users will do.", "",
              "| generator | held-out | held-out, most novel quartile | unseen edits | cross-person (all clips) "
              "| harder clips (all) | placed |", "|---|---|---|---|---|---|---|"]
    for name, r in results["summary"].items():
        lines.append(f"| {name} | " + " | ".join(cell(r.get(k)) for k in ("held_out", "novel_q4", "unseen", "cross",
                                                                           "hard", "placed")) + " |")
    return lines


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
    video = data_path(args.video)
    test_video = data_path(args.test_video) if args.test_video else None
    inputs = [video, test_video]
    for name in args.cross:
        path = data_path(name)
        if not path.exists() and name in CROSS_SOURCES:  # a default clip that is not here: skipped
            log.warning("skipping cross-person %s: not found", path)
            continue
        VideoReader(path).release()  # opens it, or says in one line what is wrong with it
        inputs.append(path)
    demo_source = data_path(args.demo_source) if args.demo_source else None
    if demo_source is not None and demo_source.exists():
        VideoReader(demo_source).release()
    check_output(args.json, (".json",), "figures file", inputs)
    grid = check_output(args.grid, IMAGE_SUFFIXES, "image grid", inputs)
    unseen_grid, hardest_grid = (grid.with_name(f"{grid.stem}_{part}{grid.suffix}") for part in ("unseen", "hardest"))
    t0 = time.perf_counter()
    results = evaluate(video, test_video, args.max_frames or None, inputs[2:],
                       demo_source if demo_source and demo_source.exists() else None, models_dir=args.models_dir,
                       size=args.size, hard=not args.no_hard, names=names, edit_bases=args.edit_bases)
    rows, skeletons = results.pop("grid_frames"), results.pop("grid_skeletons")
    pictures = {unseen_grid: results.pop("unseen_grid"), hardest_grid: results.pop("hardest_grid")}
    results["settings"]["seconds"] = time.perf_counter() - t0
    print(markdown(results))
    with atomic_path(args.json) as tmp:
        tmp.write_text(json.dumps(finite(results), indent=2))
    write_image(args.grid, comparison_grid(skeletons, rows, rows=GRID_ROWS, cell=CELL))
    for path, picture in pictures.items():
        if picture is not None and len(picture[0]):
            write_image(path, comparison_grid(picture[0], picture[1], rows=len(picture[0]), cell=CELL))
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in results["settings"]["part_seconds"].items())
    print(f"\nwrote {args.json}, {args.grid}, {unseen_grid} and {hardest_grid} in "
          f"{results['settings']['seconds']:.0f} s ({parts})")
    return 0


if __name__ == "__main__":
    cli_main(main)
