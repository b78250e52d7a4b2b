"""A video turned into a dataset: person-centred square crops and their skeletons.

For every k-th frame of a video, MediaPipe Pose finds the person (in tracking
mode, with a replicated border around the frame where that helps: see
`choose_detect_margin`); the frame is cut to a square
around them (padded where it leaves the image, never stretched), resized to
size x size, and kept with its skeleton in crop coordinates and the index of the
frame it came from. Frames with nobody in them are left out.

The result is cached in the project's cache folder ($DANCE_CACHE, else cache/)
as one plain .npz (JPEG bytes, float arrays and a JSON header; no pickle),
written atomically. It is reused while the video's content and the settings are
unchanged, and rebuilt otherwise. An interrupted extraction (Ctrl-C) is saved
as a partial cache and resumed by the next run.

    python VideoSkeleton.py data/taichi1.mp4 --every 1 --size 128 [--force] [--show]
"""
import argparse
import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from caches import cache_dir, check_cache, file_digest, save_npz_atomic
from display import combine_images, has_display
from files import IMAGE_SUFFIXES, OutputClaim, check_file, check_output, write_image
from pose_detector import DETECT_MARGIN, PoseDetector, check_frame_size
from project import PROJECT_DIR, DanceError, cli_main, data_path, evenly_spaced
from Skeleton import CROP_MARGIN, REDUCED_IDS, Skeleton, crop_person
from VideoReader import VideoReader, scan

DEFAULT_EVERY = 1       # process every k-th frame
DEFAULT_SIZE = 128      # side of the square crops, in pixels
MIN_SIZE, MAX_SIZE = 8, 1024  # crops larger than this would not fit in memory for a long video
JPEG_QUALITY = 95
HELD_OUT = 0.15         # the final 15% of the frames, by time, are never trained on (see split())
CACHE_VERSION = 3       # bump when the extraction changes, so old caches are rebuilt (3: streams read
                        # once from the start, never seeking; pixels stretched to their display shape;
                        # implausible detections dropped; one person followed). Not bumped for the
                        # blank's fill colour from a grid of pixels (1ae76d7): it is read only on frames
                        # where someone else was seen, and an old cache's detections stay valid ones
RESUME_WARM_UP = 50      # processed frames before a resume point run through the tracker again (results
                         # discarded) so that it resumes in the state an uninterrupted run had (README)
PROBE_FRAMES = 16       # frames spread over a video on which the detection border is chosen

log = logging.getLogger("dance")


def choose_detect_margin(frames, margins=(0.0, DETECT_MARGIN)):
    """The detection border (one of `margins`: 0 or DETECT_MARGIN) for a video, from a sample of
    its frames: the one with which static MediaPipe finds a person in more of them; the first
    (no border) on a tie.

    Why it depends on the video: the border helps when the person fills the frame (tight
    crops such as taichi1.mp4's, 128x128: tracking found 87% of 600 frames with no border,
    100% with 25%) and hurts when they are small in a large frame (karate1.mp4 padded into
    a 1080x1920 portrait frame: 58% of 50 frames with no border, 0% with 25%)."""
    counts = []
    with PoseDetector(tracking=False) as det:   # one graph: on independent images the margin is all that changes
        for margin in margins:
            det.margin = margin
            counts.append(sum(det.detect(frame) is not None for frame in frames))
            if counts[-1] == len(frames):   # found in every frame: no later margin can win (a tie keeps the first)
                break
    return margins[int(np.argmax(counts))]


def probe_detect_margin(video, count=PROBE_FRAMES, survey=None):
    """`choose_detect_margin` on `count` frames spread over an open VideoReader, read by a
    pass of their own from the start (`scan`: no seeking, which a stream without an index
    cannot do right), so the reader is left where it was; `survey`: that pass, when made already."""
    survey = scan(video.filename, count) if survey is None else survey
    return choose_detect_margin([frame for _, frame in survey.samples])


def split_indices(count, held_out=HELD_OUT):
    """Training and held-out indices of `count` frames in time order: the last `held_out` fraction is held out."""
    n_val = int(round(count * held_out))
    return np.arange(count - n_val), np.arange(count - n_val, count)


class VideoSkeleton:
    """Crops and skeletons of one video (the course code's `VideoSkeleton`).

    Attributes, for the N frames where a person was found:
      ske          list of N Skeletons, in crop coordinates ([0, 1] across the crop)
      skeletons    (N, 33, 4) float32, the same as an array
      frame_index  (N,) int, the frame of the video each crop came from
      boxes        (N, 3) float32, each crop's square in the video frame: x0, y0, side (pixels)
      frames_read  how many frames were processed (every k-th frame of the video)
    `readImage(i)` decodes one crop (BGR uint8, size x size); `images()` all of them.
    """

    def __init__(self, filename, every=DEFAULT_EVERY, size=DEFAULT_SIZE, force=False, progress=True):
        if every < 1:
            raise DanceError(f"--every {every}: must be at least 1 (1: every frame)")
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise DanceError(f"--size {size}: the crops must be {MIN_SIZE} to {MAX_SIZE} pixels a side")
        self.filename = Path(filename)
        self.every, self.size = int(every), int(size)
        check_file(self.filename)
        self.settings = {"version": CACHE_VERSION, "every": self.every, "size": self.size,
                         "crop_margin": CROP_MARGIN, "detect_margin": "chosen per video"}
        digest = file_digest(self.filename)
        path_tag = hashlib.sha256(os.fsencode(self.filename.resolve())).hexdigest()[:8]  # any name the OS holds
        self.cache_file = cache_dir() / f"{self.filename.stem}-{path_tag}-every{self.every}-size{self.size}.npz"
        self.partial_file = self.cache_file.with_name(self.cache_file.stem + ".partial.npz")
        self._images = None

        if force:
            self.partial_file.unlink(missing_ok=True)
        elif self.cache_file.exists():
            meta = self._load(self.cache_file)
            if meta["digest"] == digest and meta["settings"] == self.settings:
                self.loaded_from_cache = True
                return
            log.info("%s changed since %s was written: extracting again", self.filename, self.cache_file)
        self._extract(digest, progress)
        self.loaded_from_cache = False

    # ---- extraction ------------------------------------------------------------------
    def _extract(self, digest, progress):
        # a folder we cannot write fails now, not in minutes
        check_output(self.cache_file, (".npz",), "skeleton cache", cache=True)
        video = VideoReader(self.filename)
        check_frame_size(video.size, self.filename)
        state = self._resume_state(digest)
        skeletons, boxes, index, jpegs = state["lists"]
        start = state["next_frame"]
        total = video.frame_count  # for the progress bar: the container's estimate, or what a first pass counted
        if start:
            self.detect_margin = state["detect_margin"]
            log.info("resuming %s from frame %d (%d skeletons so far)", self.filename, start, len(index))
        else:
            survey = scan(self.filename, PROBE_FRAMES)
            self.detect_margin, total = probe_detect_margin(video, survey=survey), survey.count
        t0, frames_read, next_frame = time.perf_counter(), state["frames_read"], start
        detector = PoseDetector(tracking=True, margin=self.detect_margin)
        if start:
            self._warm_up(video, detector, start)
        bar = tqdm(total=total or None, initial=start, unit="frame", disable=not progress,
                   desc=f"skeletons {self.filename.name}", dynamic_ncols=True)
        try:
            for i, frame in video:
                ske = detector.detect(frame)
                if ske is not None:
                    crop, cropped, box = crop_person(frame, ske, self.size, CROP_MARGIN)
                    skeletons.append(cropped.landmarks)
                    boxes.append(box)
                    index.append(i)
                    jpegs.append(cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1])
                frames_read, next_frame = frames_read + 1, i + self.every  # frame i is done
                bar.update(1 + video.skip(self.every - 1))
                bar.set_postfix(found=len(index), refresh=False)
        except KeyboardInterrupt:
            bar.close()
            self._write(self.partial_file, digest, skeletons, boxes, index, jpegs, frames_read,
                        video, next_frame=next_frame)
            log.info("interrupted after %d frames; saved to %s; run again to resume", next_frame,
                     self.partial_file)
            raise
        finally:
            detector.close()
            video.release()
        bar.close()
        if detector.rejected:
            log.info("%s: %d detections rejected as implausible (joints far outside the frame or barely "
                     "visible)", self.filename.name, detector.rejected)
        elapsed = time.perf_counter() - t0
        new_frames = frames_read - state["frames_read"]
        self.extraction_fps = new_frames / elapsed if elapsed > 0 else 0.0
        if not index:
            self.partial_file.unlink(missing_ok=True)
            raise DanceError(f"{self.filename}: no person found in any of the {frames_read} frames processed; "
                             f"use a video showing one person, whole and clearly visible")
        self._write(self.cache_file, digest, skeletons, boxes, index, jpegs, frames_read, video)
        self.partial_file.unlink(missing_ok=True)
        self._load(self.cache_file)

    def _warm_up(self, video, detector, start):
        """Rebuild the tracker's state (where the person was, its smoothing) on the processed frames
        before frame `start` (results discarded), leaving `video` at `start`: a resumed run goes on
        as an uninterrupted one would."""
        warm = min(RESUME_WARM_UP, start // self.every)
        video.skip(start - warm * self.every)  # forwards, frame by frame: exact on any stream
        for _ in range(warm):
            frame = video.read()
            if frame is not None:
                detector.detect(frame)
            video.skip(self.every - 1)

    def _resume_state(self, digest):
        """What a previous interrupted run saved, if it is for this video and these settings."""
        empty = {"lists": ([], [], [], []), "next_frame": 0, "frames_read": 0, "detect_margin": None}
        if not self.partial_file.exists():
            return empty
        try:
            with np.load(self.partial_file, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta["digest"] != digest or meta["settings"] != self.settings:
                    return empty
                if not all(isinstance(meta[k], int) and meta[k] >= 0 for k in ("next_frame", "frames_read")):
                    raise ValueError(f"next frame {meta['next_frame']!r}, frames read {meta['frames_read']!r}")
                offsets = z["jpeg_offsets"]
                data = z["jpeg"]
                jpegs = [data[offsets[k]:offsets[k + 1]] for k in range(len(offsets) - 1)]
                lists = (list(z["skeletons"]), list(z["boxes"]), list(z["frame_index"]), jpegs)
                return {"lists": lists, "next_frame": meta["next_frame"], "frames_read": meta["frames_read"],
                        "detect_margin": float(meta["detect_margin"])}
        except Exception as e:  # a damaged partial file only costs the work it held
            log.warning("ignoring unreadable partial cache %s (%s)", self.partial_file, e)
            return empty

    def _write(self, path, digest, skeletons, boxes, index, jpegs, frames_read, video, next_frame=None):
        lengths = np.array([len(j) for j in jpegs], dtype=np.int64)
        meta = {"video": str(self.filename), "digest": digest, "settings": self.settings,
                "frames_read": frames_read, "video_fps": video.fps, "video_size": list(video.size),
                "video_frames": video.frame_count, "next_frame": next_frame, "detect_margin": self.detect_margin,
                "extraction_fps": getattr(self, "extraction_fps", None)}
        save_npz_atomic(
            path, meta=np.array(json.dumps(meta)),
            skeletons=np.array(skeletons, dtype=np.float32).reshape(-1, 33, 4),
            boxes=np.array(boxes, dtype=np.float32).reshape(-1, 3),
            frame_index=np.array(index, dtype=np.int64),
            jpeg=np.concatenate(jpegs).astype(np.uint8) if jpegs else np.zeros(0, np.uint8),
            jpeg_offsets=np.concatenate([[0], np.cumsum(lengths)]))

    # ---- cache -----------------------------------------------------------------------
    def _load(self, path):
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                skeletons = z["skeletons"].astype(np.float32)
                boxes, index = z["boxes"], z["frame_index"]
                jpeg, offsets = z["jpeg"], z["jpeg_offsets"]
            n = len(index)
            if skeletons.shape != (n, 33, 4) or boxes.shape != (n, 3) or offsets.shape != (n + 1,) \
                    or offsets[-1] != len(jpeg) or "digest" not in meta or "settings" not in meta:
                raise ValueError("inconsistent arrays")
            check_cache(meta, skeletons, boxes, index)
        except Exception as e:
            raise DanceError(f"{path}: the skeleton cache is damaged ({type(e).__name__}: {e}); "
                             f"delete it or rerun with --force to rebuild it") from None
        self.meta = meta
        self.skeletons, self.boxes, self.frame_index = skeletons, boxes, index
        self._jpeg, self._offsets = jpeg, offsets
        self.ske = [Skeleton(s) for s in skeletons]
        self.frames_read = meta["frames_read"]
        self.extraction_fps = meta.get("extraction_fps")
        self.detect_margin = meta.get("detect_margin")
        return meta

    # ---- access ----------------------------------------------------------------------
    def skeCount(self):
        return len(self.ske)

    def __len__(self):
        return len(self.ske)

    @property
    def fps(self):
        """Frame rate of the processed frames (the video's rate divided by `every`)."""
        return self.meta["video_fps"] / self.every

    def split(self, held_out=HELD_OUT):
        """(train, held-out) indices: the final `held_out` fraction of the frames, by time,
        is held out. Every trainer and the evaluation use this one split, so no model is
        ever scored on a frame it learned from."""
        return split_indices(len(self), held_out)

    def vectors(self):
        """(N, 26) float32: the reduced skeletons, as the generators take them."""
        return self.skeletons[:, REDUCED_IDS, :2].reshape(len(self), -1).copy()

    @property
    def frame_size(self):
        """(width, height) of the video's frames, in pixels."""
        return tuple(self.meta["video_size"])

    def frame_landmarks(self):
        """(N, 33, 4) float32: the skeletons in the coordinates of the whole video frame
        (normalised to its width and height), undoing each crop: where the person stood."""
        w, h = self.frame_size
        x0, y0, side = self.boxes[:, 0, None], self.boxes[:, 1, None], self.boxes[:, 2, None]
        out = self.skeletons.copy()
        out[:, :, 0] = (out[:, :, 0] * side + x0) / w
        out[:, :, 1] = (out[:, :, 1] * side + y0) / h
        out[:, :, 2] = out[:, :, 2] * side / w
        return out

    def readImage(self, i):
        """Crop i, BGR uint8 (size, size, 3)."""
        if self._images is not None:
            return self._images[i]
        image = cv2.imdecode(self._jpeg[self._offsets[i]:self._offsets[i + 1]], cv2.IMREAD_COLOR)
        if image is None or image.shape != (self.size, self.size, 3):
            raise DanceError(f"{self.cache_file}: crop {i} in the skeleton cache is damaged; "
                             f"rerun with --force to rebuild it")
        return image

    def images(self):
        """All crops as one (N, size, size, 3) uint8 array, decoded once and kept."""
        if self._images is None:
            self._images = np.stack([self.readImage(i) for i in range(len(self))]) if len(self) else \
                np.zeros((0, self.size, self.size, 3), np.uint8)
        return self._images

    def __repr__(self):
        return f"VideoSkeleton({self.filename}, {len(self)} skeletons / {self.frames_read} frames, size {self.size})"

    def save_track(self, path):
        """Write the skeletons alone (numbers, no image) as a small .npz that DanceDemo can
        play as a source: the skeletons in crop coordinates, their frame indices, the rate."""
        save_npz_atomic(path, skeletons=self.skeletons, frame_index=self.frame_index,
                        every=np.array(self.every), frames_read=np.array(self.frames_read),
                        fps=np.array(self.fps), video=np.array(self.filename.name))

    def contact_sheet(self, count=36, columns=6):
        """A grid of `count` crops spread over the video, each with its skeleton drawn."""
        picks = evenly_spaced(len(self), count)
        tiles = [self.ske[i].draw(self.readImage(i).copy()) for i in picks]
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
        rows = [combine_images(*tiles[r:r + columns]) for r in range(0, len(tiles), columns)]
        return np.concatenate(rows, axis=0)

    def draw(self, delay_ms=30):
        """Play the crops with their skeletons in a window (`q` quits)."""
        for i in range(len(self)):
            im = self.readImage(i)
            cv2.imshow("VideoSkeleton", combine_images(im, self.ske[i].draw(im.copy())))
            if cv2.waitKey(delay_ms) & 0xFF == ord("q"):
                break
        cv2.destroyAllWindows()


def main():
    parser = argparse.ArgumentParser(description="Extract and cache the skeletons and person crops of a video.")
    parser.add_argument("video", help="video file (a bare name is looked up in the data folder)")
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY, help="process every k-th frame")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="side of the square crops in pixels")
    parser.add_argument("--force", action="store_true", help="extract again even if a valid cache exists")
    parser.add_argument("--save-track", metavar="FILE.npz",
                        help="also write the skeletons alone (no image) for DanceDemo --source FILE.npz")
    parser.add_argument("--show", action="store_true",
                        help="play the crops with their skeletons (without a display: save a contact sheet)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    video = data_path(args.video)
    claims = contextlib.ExitStack()
    if args.save_track:  # checked, and held against a second command, before the extraction's minutes
        claims.enter_context(OutputClaim(check_output(args.save_track, (".npz",), "skeleton track", inputs=(video,)),
                                         "skeleton track"))
    sheet = PROJECT_DIR / "output" / f"{Path(args.video).stem}_skeletons.jpg"
    if args.show and not has_display():
        check_output(sheet, IMAGE_SUFFIXES, "contact sheet", inputs=(video,))
    with claims:
        return _report(args, video, sheet)


def _report(args, video, sheet):
    """main's work once its outputs are checked: extract (or load), report, write."""
    vs = VideoSkeleton(video, every=args.every, size=args.size, force=args.force)
    found = len(vs)
    rate = f"{vs.extraction_fps:.1f} frames/s" if vs.extraction_fps else "n/a"
    source = "loaded from cache" if vs.loaded_from_cache else "extracted"
    print(f"{vs.filename}: {source} {vs.cache_file} (detection border {vs.detect_margin:g})\n"
          f"frames read: {vs.frames_read}, skeletons found: {found} ({100 * found / vs.frames_read:.2f}%), "
          f"extraction speed: {rate}")
    if args.save_track:
        vs.save_track(args.save_track)
        print(f"wrote the skeleton track {args.save_track}")
    if args.show:
        if has_display():
            vs.draw()
        else:
            out = write_image(sheet, vs.contact_sheet())
            print(f"no display: wrote a contact sheet to {out}")
    return 0


if __name__ == "__main__":
    cli_main(main)
