"""Figures of evaluate.py on images and detections: appearance (L1, PSNR, SSIM), flicker,
pose fidelity (MediaPipe's detection and joint error against the driving skeleton), and
those figures split by pose novelty. Images are uint8 BGR or float in [0, 1], (H, W, 3)."""
import cv2
import numpy as np

from Skeleton import reduced_vectors

BOX_MARGIN = 0.1        # person box: the real skeleton's box grown by this fraction of the crop, each side
NOVELTY_BINS = (0.2, 0.3)  # beyond the fourth quartile: poses this far from any the target made
QUARTILES = 4
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al.'s constants, for data range 1


def l1(a, b):
    """Mean absolute difference of two float images in [0, 1]."""
    return float(np.abs(a - b).mean())


def psnr(a, b):
    """Peak signal-to-noise ratio in dB of two float images in [0, 1]; inf when identical."""
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def ssim(a, b, sigma=1.5, size=11):
    """Mean SSIM (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
    data range 1, averaged over the RGB channels; borders the window cannot cover are left out."""
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
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
    joints against `skeletons` (the driving ones, in the images' normalised coordinates, (N, 33,
    4)), NaN where nobody was found)."""
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


def novelty_quartiles(novelty, edges):
    """The quartile (0-3) of each pose's novelty, by the held-out set's quartile `edges`."""
    return np.searchsorted(edges, novelty, side="right")


def by_quartile(found, errors, quartile):
    """`fidelity` per novelty quartile: a list of four rows."""
    return [fidelity(found, errors, quartile == q) for q in range(QUARTILES)]


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
