"""How fast the demo runs, offline and live, and where its time goes: figures, not tests.

    python benchmark.py                     # karate1 offline; live at 640x360, 1280x720, 1920x1080
    python benchmark.py --tiny              # a few frames of each (what CI runs: figures, no speed asserted)
    python benchmark.py --generators layered --json output/benchmark.json

Every figure is measured on the path the demo takes now (the stages overlapped: the next frame
read and detected on a thread while this one is generated, pipeline.prefetch; the network run by
OpenVINO, runtime.py) and on the path it took before (one stage after the other, PyTorch), in
the same run, and printed as a ratio of the two, since timings on a shared machine vary from run
to run more than between the two paths (--levers: each lever alone too). Offline, the demo's
default generator's time is also printed as a ratio to pix2pix's (issue 23's target: 1.1x).

- Offline: `DanceDemo(karate1.mp4).draw(output=...)`, after a warm-up run on each path, each
  repeat running every generator on every path, taking turns to go first: wall seconds (median
  of --repeats, model loading included) and frames per second, and the milliseconds per frame
  of each stage (median and 90th percentile: read, detect, wait = the generating thread waiting
  for its next frame, smooth, crop, generate, compose, write).
- Live: the same video files played as a camera (`--live`: each frame released at its time,
  frames dropped when the demo is busy), for --seconds: frames shown of those captured,
  dropped, and the latency from capture to the picture made (median, p90). The HD clips are
  cut from taichi2.mp4 (960x720, 29.97 fps) scaled to 720 and 1080 rows and padded with black
  to 1280x720 and 1920x1080 (square pixels) at 30 fps, and kept in the cache folder.
- The machine's speed: MediaPipe alone tracking the first frames of karate1.mp4 (fixed work),
  at the start and at the end of the run, in ms per frame: a shared machine's speed moves
  between runs, and within one, more than most levers do.
"""
import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from caches import cache_dir
from DanceDemo import DanceDemo
from files import atomic_path, check_output
from generators import DEFAULT, TABLE, find
from project import DanceError, cli_main, data_path
from pipeline import StageClock
from pose_detector import PoseDetector
from report import finite
from VideoReader import VideoReader
from VideoWriter import ffmpeg

OFFLINE_SOURCE = "karate1.mp4"
LIVE_CLIPS = (("karate1.mp4", None, None), ("taichi2.mp4", (1280, 720), 30), ("taichi2.mp4", (1920, 1080), 30))
HD_START_S = 10            # the HD clips start here in taichi2.mp4 (past its title)
GENERATORS = ("nearest", "pix2pix", "layered")
TINY_SECONDS = 0.5         # --tiny: clips this long, one repeat
# The demo's path now (stages overlapped, the network run by OpenVINO) and before issue 23 (one
# stage after the other, PyTorch); --levers adds each lever alone (docs/speed.md).
PATHS = {"now": {"overlap": True, "runtime": "openvino"}, "before": {"overlap": False, "runtime": "torch"}}
LEVERS = {"now, PyTorch network": {"overlap": True, "runtime": "torch"},
          "now, onnxruntime": {"overlap": True, "runtime": "onnxruntime"},
          "openvino only": {"overlap": False, "runtime": "openvino"}}
STAGES = ("read", "detect", "wait", "smooth", "crop", "generate", "compose", "write")
TARGET_OFFLINE_RATIO = 1.1  # issue 23: the default generator's offline time within this of pix2pix's
SPEED_FRAMES = 60          # frames of the offline source MediaPipe tracks alone for the machine's speed (--tiny: 5)

log = logging.getLogger("dance")


def clip(video, size, fps, seconds, folder):
    """`video` cut to `seconds` (scaled to `size` (w, h) at `fps` when given) into `folder`,
    made once: the same clip for every path and every run."""
    name = f"{Path(video).stem}_{'x'.join(map(str, size)) + 'pad' if size else 'native'}_{fps or 'native'}fps_{seconds:g}s.mp4"
    out = folder / name
    if not out.exists():
        start = HD_START_S if size else 0
        # Scaled to fit the size asked and padded with black (taichi2: pillarboxed), square pixels:
        # frames really size[0] x size[1], as a camera gives them. (A plain scale=w:h keeps the
        # picture's shape through the pixel aspect ratio: a 4:3 video "at 1920x1080" is then shown,
        # and read, at 1440x1080.)
        scale = ["-vf", f"scale={size[0]}:{size[1]}:force_original_aspect_ratio=decrease,"
                        f"pad={size[0]}:{size[1]}:(ow-iw)/2:(oh-ih)/2,setsar=1",
                 "-r", str(fps)] if size else []
        tmp = out.with_name(f".{out.name}.part.mp4")
        done = subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-ss", str(start),
                               "-i", str(video), "-t", str(seconds), *scale, "-an", "-c:v", "libx264", "-crf", "18",
                               str(tmp)], capture_output=True, text=True)
        if done.returncode != 0:
            raise DanceError(f"{video}: could not be cut into a benchmark clip ({done.stderr.strip()[-200:]})")
        tmp.replace(out)
    return out


def live_clips(seconds, folder):
    """{name: path}: the clips of LIVE_CLIPS whose videos are in the data folder (`clip`)."""
    clips = {}
    for video, size, fps in LIVE_CLIPS:
        path = data_path(video)
        if path.exists():
            made = clip(path, size, fps, seconds, folder)
            clips[made.stem] = made
        else:
            log.warning("%s not found: its live clips are left out", path)
    return clips


def run_demo(source, gen, target, path, live):
    """One demo run into a temporary file: its summary (with "load_s": the seconds making the
    demo took, its model's loading included) and its wall seconds, loading included. `target`:
    the target video, or {generator name: target video} (None: the demo's default)."""
    if isinstance(target, dict):
        target = target.get(gen)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        demo = DanceDemo(source, gen, target=target, live=live, **path)
        load = time.perf_counter() - t0
        stats = demo.draw(output=Path(tmp) / "bench.mp4")
        return {**stats, "load_s": load}, time.perf_counter() - t0


def offline(source, gens, target, repeats, paths):
    """{gen: {path: {"seconds", "load_s", "fps", "frames", "stages_ms", "runs_s"}}}: the demo on a
    video, each generator on each path `repeats` times (the median run's figures; "runs_s": every
    run's seconds, in the order of the repeats). Each repeat runs every generator on every path,
    so the ratios between them are measured minutes apart at most, not a generator's whole series
    apart: this shared machine's speed drifts over minutes by more than most levers."""
    for gen in gens:
        for how in paths.values():   # a warm-up on each path: model read, caches filled, each runtime's first run
            run_demo(source, gen, target, how, live=False)
    runs = {(gen, path): [] for gen in gens for path in paths}
    for k in range(repeats):                                       # the runs take turns going first
        for gen, path in (list(runs) if k % 2 == 0 else list(runs)[::-1]):
            runs[gen, path].append(run_demo(source, gen, target, paths[path], live=False))
    out = {gen: {} for gen in gens}
    for (gen, path), done in runs.items():
        seconds = statistics.median(s for _, s in done)
        stats = min(done, key=lambda r: abs(r[1] - seconds))[0]   # the median run's stages
        out[gen][path] = {"seconds": seconds, "load_s": stats["load_s"], "fps": stats["frames"] / seconds,
                          "frames": stats["frames"], "stages_ms": stats["stages_ms"], "runs_s": [s for _, s in done]}
    return out


def live(clips, gens, target, paths):
    """{clip: {gen: {path: figures}}}: each clip played as a camera through the demo."""
    out = {}
    for name, source in clips.items():
        out[name] = {}
        for gen in gens:
            out[name][gen] = {}
            for path, how in paths.items():
                stats, _ = run_demo(source, gen, target, how, live=True)
                out[name][gen][path] = {
                    "captured": stats["captured"], "shown": stats["frames"], "dropped": stats["dropped"],
                    "shown_share": stats["frames"] / max(stats["captured"], 1), "latency_ms": stats["latency_ms"],
                    "latency_p90_ms": stats["latency_p90_ms"], "stages_ms": stats["stages_ms"]}
    return out


def ratio(new, old):
    return f"{new / old:.2f}x" if old else "-"


def print_offline(figures, tiny=False):
    """The offline table, the stages' table, and the default generator's ratio to pix2pix (with
    `tiny`, said to mean nothing: loading is most of a clip of half a second)."""
    print("\nPaths: now = the next frame detected while this one is generated, the network run by OpenVINO; "
          "before = one stage after the other, the network run by PyTorch")
    print("\nOffline: wall seconds (making the demo, its model's loading included, and playing it), of which "
          "loading; frames per second; ratio: time now / before")
    print(f"{'generator':<10} {'path':<17} {'seconds':>8} {'loading':>8} {'fps':>6} {'ratio':>7}")
    for gen, paths in figures.items():
        for path, f in paths.items():
            print(f"{gen:<10} {path:<17} {f['seconds']:>8.2f} {f['load_s']:>8.2f} {f['fps']:>6.1f} "
                  f"{ratio(f['seconds'], paths['before']['seconds']):>7}")
    if DEFAULT in figures and "pix2pix" in figures and DEFAULT != "pix2pix":
        now, base = figures[DEFAULT]["now"], figures["pix2pix"]["now"]
        each = sorted(a / b for a, b in zip(now["runs_s"], base["runs_s"]))
        spread = f"; repeat by repeat {each[0]:.2f}-{each[-1]:.2f}x" if len(each) > 1 else ""
        said = "--tiny: loading is most of each run, this ratio means nothing" if tiny else \
            f"target: at most {TARGET_OFFLINE_RATIO}x{spread}"
        print(f"{DEFAULT} / pix2pix, path now: {ratio(now['seconds'], base['seconds'])} ({said})")
    print("\nStages, ms per frame, median / p90 (read and detect: on their own thread when overlapped)")
    print(f"{'generator':<10} {'path':<17} " + " ".join(f"{stage:>13}" for stage in STAGES))
    for gen, paths in figures.items():
        for path, f in paths.items():
            stages = f["stages_ms"]
            print(f"{gen:<10} {path:<17} " + " ".join(f"{stages[k]['median_ms']:>6.1f}/{stages[k]['p90_ms']:<6.1f}"
                                                     if k in stages else f"{'-':>13}" for k in STAGES))


def print_live(figures):
    print("\nLive (a file played as a camera): shown/captured, dropped, latency median / p90 ms")
    print(f"{'clip':<30} {'generator':<10} {'path':<17} {'shown':>11} {'share':>6} {'dropped':>7} {'latency':>13} "
          f"{'share/before':>12} {'p90/before':>10}")
    for name, gens in figures.items():
        for gen, paths in gens.items():
            before = paths["before"]
            for path, f in paths.items():
                print(f"{name:<30} {gen:<10} {path:<17} {f['shown']:>5}/{f['captured']:<5} {f['shown_share']:>6.3f} "
                      f"{f['dropped']:>7} {f['latency_ms']:>6.0f}/{f['latency_p90_ms']:<6.0f} "
                      f"{ratio(f['shown_share'], before['shown_share']):>12} "
                      f"{ratio(f['latency_p90_ms'], before['latency_p90_ms']):>10}")


def machine():
    """What the figures were measured on."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()}


def machine_speed(source, frames):
    """The median milliseconds MediaPipe Pose takes to track one of the first `frames` frames of
    `source`, alone: the same work in every run, so it tells how fast the machine was."""
    with VideoReader(source) as video:
        images = [image for _, (_, image) in zip(range(frames), video)]
    clock = StageClock()
    with PoseDetector(tracking=True, margin=0) as detector:
        detector.warm_up(images[0])
        for image in images:
            with clock("detect"):
                detector.detect(image)
    return clock.summary()["detect"]["median_ms"]


def main():
    parser = argparse.ArgumentParser(description="How fast the demo runs, offline and live, per stage; "
                                                 "the demo's path now against the one before.")
    parser.add_argument("--generators", default=",".join(GENERATORS), help="comma-separated generator names "
                        f"(default: {','.join(GENERATORS)})")
    parser.add_argument("--target", default=None, help="the target video (default: the demo's, taichi1.mp4)")
    parser.add_argument("--live-generators", default=None, help="the generators of the live figures "
                        "(default: --generators)")
    parser.add_argument("--nearest-target", default=None,
                        help="the video nearest neighbour searches (default: the target; a short one is quicker)")
    parser.add_argument("--repeats", type=int, default=3, help="offline runs per path (the median is kept)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each live clip plays")
    parser.add_argument("--tiny", action="store_true", help=f"clips of {TINY_SECONDS} s, one repeat (CI)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument("--no-live", action="store_true", help="offline figures only")
    parser.add_argument("--levers", action="store_true", help="also each lever alone: the overlap, and the "
                        "network run by PyTorch, ONNX Runtime or OpenVINO")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    gens = [find(g).name for g in args.generators.split(",")]
    target = {"nearest": args.nearest_target or args.target}
    target.update({row.name: args.target for row in TABLE if row.name != "nearest"})
    if args.json is not None:
        check_output(args.json, (".json",), "figures")
    if args.repeats < 1 or args.seconds <= 0:
        raise DanceError("--repeats must be at least 1 and --seconds more than 0")
    seconds, repeats = (TINY_SECONDS, 1) if args.tiny else (args.seconds, args.repeats)
    paths = {**PATHS, **(LEVERS if args.levers else {})}
    folder = cache_dir() / "benchmark"
    folder.mkdir(parents=True, exist_ok=True)
    source = data_path(OFFLINE_SOURCE)
    if not source.exists():
        raise DanceError(f"{source}: not found; set DANCE_DATA to the folder holding the videos")
    offline_source = clip(source, None, None, seconds, folder) if args.tiny else source
    speed_frames = 5 if args.tiny else SPEED_FRAMES
    figures = {"machine": machine()}
    figures["machine"]["detect_alone_ms"] = {"start": machine_speed(source, speed_frames)}
    figures["offline"] = offline(offline_source, gens, target, repeats, paths)
    print_offline(figures["offline"], args.tiny)
    if not args.no_live:
        clips = live_clips(seconds, folder)
        live_gens = [find(g).name for g in args.live_generators.split(",")] if args.live_generators else gens
        figures["live"] = live(clips, live_gens, target, paths)
        print_live(figures["live"])
    speed = figures["machine"]["detect_alone_ms"]
    speed["end"] = machine_speed(source, speed_frames)
    print(f"\nmachine: {figures['machine']}")
    print(f"its speed: MediaPipe alone {speed['start']:.1f} ms a frame at the start, {speed['end']:.1f} ms at the end "
          "(the same work: a higher figure, a slower machine)")
    if args.json is not None:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(finite(figures), indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    cli_main(main)
