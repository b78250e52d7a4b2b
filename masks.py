"""Person masks of a target's crops: which pixels are the person, which are the background.

A generator that moves the target's own pixels must move the person alone: a part cut out
with its background carries that background along (a caption travelling with an arm, a ring
of grass around a moved head), and where the person leaves, the background has to come from
somewhere real. MediaPipe's selfie segmentation (`mp.solutions.selfie_segmentation`, the
general model, inside the pinned mediapipe==0.10.21 wheel: nothing downloaded) gives, for
each crop, the probability that a pixel belongs to a person; on taichi1's 128x128 crops it
outlines the whole body, feet and sleeves included, in about 5 ms a crop. (The pose model's
own segmentation, `Pose(enable_segmentation=True)`, was tried too: no better outline here,
slower, and in static mode it drops frames where it finds no pose.)

The masks of a VideoSkeleton are cached beside its skeleton cache, under the same rules: one
plain .npz (PNG bytes and a JSON header, no pickle), written atomically, valid while the
video's content, the crops' settings and the segmenter are unchanged (rebuilt otherwise);
an interrupted computation (Ctrl-C) is kept as a partial cache that the next run resumes.

    masks = person_masks(VideoSkeleton("data/taichi1.mp4"))   # (N, S, S) uint8, 255 = person
"""
import hashlib
import json
import logging

import cv2
import numpy as np
from tqdm import tqdm

from caches import save_npz_atomic
from files import check_output
from project import DanceError
from quiet_mediapipe import QuietSolution, quiet_stderr

SEGMENTER = "mediapipe selfie_segmentation, model 0"  # recorded in the cache: another one rebuilds it
MASK_VERSION = 1        # bump when the masks change, so old caches are rebuilt

log = logging.getLogger("dance")


class Segmenter(QuietSolution):
    """MediaPipe's selfie segmentation: `segment(image)` (H, W, 3) BGR uint8 -> (H, W) uint8,
    255 where a person is certain, 0 where the background is."""

    def __init__(self):
        with quiet_stderr():  # its inference engine prints start-up banners (see pose_detector.PoseDetector)
            import mediapipe as mp
            self._solution = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            self._solution.process(np.zeros((64, 64, 3), np.uint8))

    def segment(self, image):
        mask = self._solution.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).segmentation_mask
        return np.clip(np.asarray(mask) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def mask_files(videoSke):
    """(cache file, partial file) of a VideoSkeleton's masks, beside its skeleton cache."""
    stem = videoSke.cache_file.stem
    return videoSke.cache_file.with_name(f"{stem}.masks.npz"), videoSke.cache_file.with_name(f"{stem}.masks.partial.npz")


def mask_identity(videoSke):
    """What a mask cache must have been made from: the video's content, the crops' settings and
    which crops (their frame numbers), and the segmenter."""
    frames = hashlib.sha256(np.ascontiguousarray(videoSke.frame_index, np.int64).tobytes()).hexdigest()
    return {"version": MASK_VERSION, "segmenter": SEGMENTER, "digest": videoSke.meta["digest"],
            "settings": videoSke.settings, "crops": len(videoSke), "frames": frames}


def _read(path, identity):
    """(meta, list of PNG byte arrays) of a mask cache; a DanceError when it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            data, offsets = z["png"], z["png_offsets"]
        if not isinstance(meta, dict) or offsets.ndim != 1 or offsets[-1] != len(data) or \
                len(offsets) - 1 > identity["crops"]:
            raise ValueError("inconsistent arrays")
    except Exception as e:
        raise DanceError(f"{path}: the mask cache is damaged ({type(e).__name__}: {e}); delete it to "
                         f"rebuild it") from None
    return meta, [data[offsets[k]:offsets[k + 1]] for k in range(len(offsets) - 1)]


def _write(path, identity, pngs):
    lengths = np.array([len(p) for p in pngs], np.int64)
    save_npz_atomic(path, meta=np.array(json.dumps(identity)),
                    png=np.concatenate(pngs).astype(np.uint8) if pngs else np.zeros(0, np.uint8),
                    png_offsets=np.concatenate([[0], np.cumsum(lengths)]))


def _decode(pngs, size, path):
    masks = np.empty((len(pngs), size, size), np.uint8)
    for k, png in enumerate(pngs):
        mask = cv2.imdecode(png, cv2.IMREAD_GRAYSCALE)
        if mask is None or mask.shape != (size, size):
            raise DanceError(f"{path}: mask {k} in the mask cache is damaged; delete the file to rebuild it")
        masks[k] = mask
    return masks


def person_masks(videoSke, progress=True):
    """The person mask of every crop of `videoSke`: (N, S, S) uint8, 255 = person. Read from its
    cache when that matches this video, these crops and this segmenter; computed otherwise
    (resuming a partial cache that does), with a progress bar."""
    cache, partial = mask_files(videoSke)
    identity = mask_identity(videoSke)
    if cache.exists():
        meta, pngs = _read(cache, identity)
        if meta == identity and len(pngs) == identity["crops"]:
            return _decode(pngs, videoSke.size, cache)
        log.info("%s was made from other crops or by another segmenter: computing the masks again", cache)
    check_output(cache, (".npz",), "mask cache", cache=True)  # a folder we cannot write fails now, not in minutes
    pngs = []
    if partial.exists():
        try:
            meta, pngs = _read(partial, identity)
            if meta != identity:
                pngs = []
        except DanceError as e:  # a damaged partial file only costs the work it held
            log.warning("ignoring %s", e)
            pngs = []
        if pngs:
            log.info("resuming the masks of %s from crop %d", videoSke.filename.name, len(pngs))
    images = videoSke.images()
    bar = tqdm(total=len(images), initial=len(pngs), unit="crop", disable=not progress, dynamic_ncols=True,
               desc=f"person masks {videoSke.filename.name}")
    try:
        with Segmenter() as segmenter:
            for k in range(len(pngs), len(images)):
                pngs.append(cv2.imencode(".png", segmenter.segment(images[k]))[1])
                bar.update(1)
    except KeyboardInterrupt:
        bar.close()
        _write(partial, identity, pngs)
        log.info("interrupted after %d of %d masks; saved to %s; run again to resume", len(pngs), len(images),
                 partial)
        raise
    bar.close()
    _write(cache, identity, pngs)
    partial.unlink(missing_ok=True)
    return _decode(pngs, videoSke.size, cache)
