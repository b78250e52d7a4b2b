"""The demo's picture: two square panels side by side, the captions written on them, and the
geometry that places a generated crop in the target's letterboxed frame. Shared by the demo
and by evaluate.py's placed protocol, which re-detects the person exactly where the demo shows it.
Images are BGR uint8; boxes are (x0, y0, side) in frame pixels; frame sizes (w, h)."""
import cv2
import numpy as np

from Skeleton import crop_square
from files import opencv_text

PANEL = 256             # side of each half of the side-by-side picture, in pixels
CAPTION_AT = (6, 18)    # a caption's baseline origin in the top-left corner, pixels
STATUS_FROM_BOTTOM = 8  # the status line's baseline, pixels above the bottom edge
PLACEHOLDER_DIMMING = 0.35  # a frame with no person is shown this bright, behind the red words
WHITE, BLACK, RED, YELLOW = (255, 255, 255), (0, 0, 0), (0, 0, 255), (0, 255, 255)


def label(image, text, org=CAPTION_AT, colour=WHITE, scale=0.5):
    """Write a small caption (in the top-left corner by default), legible on any background:
    a black outline under the coloured letters."""
    text = opencv_text(text)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, BLACK, 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    return image


def status(image, text):
    """Write a status line along the bottom edge (the live figures), in yellow."""
    return label(image, text, (CAPTION_AT[0], image.shape[0] - STATUS_FROM_BOTTOM), YELLOW, 0.45)


def placeholder(frame, size):
    """A clearly marked panel for a source frame with no person: the frame, letterboxed
    and darkened, inside a red border, with the words NO PERSON FOUND."""
    h, w = frame.shape[:2]
    side = max(h, w)
    panel = (crop_square(frame, ((w - side) / 2, (h - side) / 2, side), size) * PLACEHOLDER_DIMMING).astype(np.uint8)
    cv2.rectangle(panel, (0, 0), (size - 1, size - 1), RED, max(2, size // 64))
    text, font, scale = "NO PERSON FOUND", cv2.FONT_HERSHEY_SIMPLEX, size / 400
    (tw, th), _ = cv2.getTextSize(text, font, scale, 2)
    cv2.putText(panel, text, ((size - tw) // 2, (size + th) // 2), font, scale, RED, 2, cv2.LINE_AA)
    return panel


def letterbox(frame_size, panel):
    """(k, ox, oy): a frame of `frame_size` (w, h) shown in a panel x panel square is scaled by
    k and shifted by (ox, oy), black bars filling the rest."""
    tw, th = frame_size
    k = panel / max(tw, th)
    return k, (panel - k * tw) / 2, (panel - k * th) / 2


def panel_transform(box, frame_size, panel):
    """(scale, dx, dy) taking a crop's own coordinates ([0, 1] across the crop whose square is
    `box` = x0, y0, side in the pixels of a frame of `frame_size`) to the pixels of a panel
    showing that frame letterboxed into panel x panel."""
    x0, y0, side = box
    k, ox, oy = letterbox(frame_size, panel)
    return k * side, k * x0 + ox, k * y0 + oy


def place_crop(crop, box, frame_size, panel):
    """A frame of `frame_size` (w, h), letterboxed into a panel x panel square, with `crop`
    standing in its square `box` (x0, y0, side, frame pixels): what the demo's right panel
    shows. Beyond the crop its edge pixels are extended; outside the frame is black."""
    scale, dx, dy = panel_transform(box, frame_size, panel)
    a = scale / crop.shape[0]
    m = np.array([[a, 0, dx], [0, a, dy]], np.float32)
    out = cv2.warpAffine(crop, m, (panel, panel), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    (tw, th), (k, ox, oy) = frame_size, letterbox(frame_size, panel)
    mask = np.zeros(out.shape[:2], bool)
    mask[int(round(oy)):int(round(oy + k * th)), int(round(ox)):int(round(ox + k * tw))] = True
    out[~mask] = 0  # letterbox bars: outside the target's frame
    return out
