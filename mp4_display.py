"""The display matrix of an mp4 or mov: whether a player mirrors its frames.

A front camera or an editor's "flip" stores the frames as the sensor saw them and says, in the
video track's header, how to show them. OpenCV applies the turns of that matrix but reads a
mirroring one as a turn; `mirrored_display` reads the matrix itself (ISO/IEC 14496-12, 8.3.2)
so that `VideoReader` can show such frames as a player does.
"""
import os

import numpy as np


def _mp4_boxes(f, end):
    """(type, start of its content, end) of each ISO base media box from f's position to `end`."""
    while f.tell() + 8 <= end:
        start = f.tell()
        size, kind = int.from_bytes(f.read(4), "big"), f.read(4)
        header = 8
        if size == 1:
            size, header = int.from_bytes(f.read(8), "big"), 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            return
        yield kind, start + header, start + size
        f.seek(start + size)


def _video_track_matrix(f, end):
    """The display matrix (a, b, c, d of the 3x3, as signed numbers) of the first video track
    under a box ending at `end`, or None."""
    for kind, content, stop in list(_mp4_boxes(f, end)):
        if kind == b"moov":
            f.seek(content)
            return _video_track_matrix(f, stop)
        if kind == b"trak":
            f.seek(content)
            matrix = handler = None
            for sub, sub_content, sub_stop in list(_mp4_boxes(f, stop)):
                if sub == b"tkhd":
                    f.seek(sub_content)
                    version = f.read(1)[0]
                    f.seek(sub_content + (4 + 32 if version == 1 else 4 + 20) + 16)  # past times, ids, layer...
                    m = [int.from_bytes(f.read(4), "big", signed=True) for _ in range(5)]
                    matrix = (m[0], m[1], m[3], m[4])
                elif sub == b"mdia":
                    f.seek(sub_content)
                    for leaf, leaf_content, _ in list(_mp4_boxes(f, sub_stop)):
                        if leaf == b"hdlr":
                            f.seek(leaf_content + 8)
                            handler = f.read(4)
            if handler == b"vide" and matrix is not None:
                return matrix
    return None


def mirrored_display(path):
    """How to show the frames of an mp4 or mov whose display matrix mirrors them (a front
    camera's or an editor's "flip"): (transpose, mirror left-right, upside down), applied in
    that order to the frames as stored; None when it does not mirror, or is no such file (OpenCV
    applies the turns of a matrix, but reads a mirroring one as a turn). The matrix is the
    track header's (ISO/IEC 14496-12, 8.3.2): a display point is (a x + c y, b x + d y)."""
    try:
        with open(path, "rb") as f:
            if f.read(12)[4:8] not in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
                return None
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(0)
            matrix = _video_track_matrix(f, end)
    except (OSError, IndexError):
        return None
    if matrix is None:
        return None
    a, b, c, d = (int(np.sign(v)) for v in matrix)
    if a * d - b * c >= 0 or (a * b != 0 or c * d != 0):  # no mirror, or not a multiple of 90 degrees
        return None
    if a == 0:  # x' = c y, y' = b x: the axes swapped, then each reversed where negative
        return True, c < 0, b < 0
    return False, a < 0, d < 0
