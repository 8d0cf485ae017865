"""Mask helpers whose cost follows the masked area, not the picture's size.

A GPU worker's own CPU work per job is what limits it (bench/onnx_speed.py), and
most censored regions are small parts of a large picture, so these work inside
the mask's bounding box.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.backend import Mask
from workers.imageops.green import bounds, cells

Labels = NDArray[np.int32]


def grow(mask: Mask, px: int) -> Mask:
    """The mask dilated by a disc of radius ``px``."""
    if px <= 0:
        return mask
    box = bounds(mask, px)
    if box is None:
        return mask
    x0, y0, x1, y1 = box
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    grown = np.zeros(mask.shape, bool)
    part = np.ascontiguousarray(mask[y0:y1, x0:x1]).view(np.uint8)
    grown[y0:y1, x0:x1] = cv2.dilate(part, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return grown


# Regions are labelled inside the CELL px squares that hold any of the mask (joined when
# they touch), so a few bars across a large picture cost what their own area costs.
CELL = 32
# Beyond this many separate groups of squares (specks all over), one labelling of the
# mask's box costs less than one per group; so it does when the groups' boxes together
# are as large as the mask's.
MAX_PIECES = 12


class Components:
    """Connected regions of a mask: ``labels`` over the window ``box`` (x0, y0, x1, y1) of
    the picture, and each region's bounding box (``stats``: x, y, w, h, area, relative to
    ``box``). Labels are numbered piece by piece, not in raster order."""

    def __init__(self, mask: Mask, connectivity: int) -> None:
        box = bounds(mask)
        self.box = box or (0, 0, 0, 0)
        self.count = 1
        self.labels: Labels = np.zeros((0, 0), np.int32)
        self.stats: Labels = np.zeros((1, 5), np.int32)
        if box is None:
            return
        x0, y0, x1, y1 = box
        part = mask[y0:y1, x0:x1].view(np.uint8)
        occupied = cells(part, CELL)
        pieces, cell_labels, cell_stats, _ = cv2.connectedComponentsWithStats(
            occupied, connectivity=8
        )
        h, w = part.shape
        # Pieces whose boxes together cover the mask's box (one piece filling it, nested
        # rings, long parallel strokes: each box holds the others) would label and copy
        # the same pixels several times over; one labelling of the box does it once.
        cx0, cy0 = cell_stats[1:, 0] * CELL, cell_stats[1:, 1] * CELL
        cx1 = np.minimum((cell_stats[1:, 0] + cell_stats[1:, 2]) * CELL, w)
        cy1 = np.minimum((cell_stats[1:, 1] + cell_stats[1:, 3]) * CELL, h)
        covered = int(((cx1 - cx0).astype(np.int64) * (cy1 - cy0)).sum())
        if pieces - 1 > MAX_PIECES or covered >= h * w:
            self.count, self.labels, self.stats = _label(np.ascontiguousarray(part), connectivity)
            return
        # Zeroed lazily by the system: only the pieces' squares are ever written.
        labels = np.zeros((h, w), np.int32)
        stats = [self.stats]
        count = 1
        for k in range(1, pieces):
            cx, cy, cw, ch = (int(v) for v in cell_stats[k, :4])
            px0, py0 = cx * CELL, cy * CELL
            px1, py1 = min((cx + cw) * CELL, w), min((cy + ch) * CELL, h)
            piece = np.ascontiguousarray(part[py0:py1, px0:px1])
            near = cell_labels[cy : cy + ch, cx : cx + cw]
            foreign = bool(((near != 0) & (near != k)).any())
            if foreign:
                # Another piece's squares lie in this one's box: keep only its own (in a
                # copy: the piece may be a view of the caller's mask).
                own = np.repeat(np.repeat((near == k).view(np.uint8), CELL, 0), CELL, 1)
                piece = piece & own[: py1 - py0, : px1 - px0]
            n, piece_labels, piece_stats = _label(piece, connectivity)
            if n == 1:
                continue
            inside = piece_labels > 0
            np.add(piece_labels, count - 1, out=piece_labels, where=inside)
            window = labels[py0:py1, px0:px1]
            if foreign:
                np.copyto(window, piece_labels, where=inside)
            else:
                window[...] = piece_labels
            piece_stats = piece_stats[1:].copy()
            piece_stats[:, 0] += px0
            piece_stats[:, 1] += py0
            stats.append(piece_stats)
            count += n - 1
        self.count, self.labels, self.stats = count, labels, np.concatenate(stats)

    def boxes(self) -> list[tuple[int, tuple[int, int, int, int]]]:
        """(label, (x0, y0, x1, y1)) of every region, in the picture's coordinates."""
        ox, oy = self.box[:2]
        out = []
        for label in range(1, self.count):
            x, y, bw, bh = (int(v) for v in self.stats[label, :4])
            out.append((label, (x + ox, y + oy, x + ox + bw, y + oy + bh)))
        return out

    def region(self, label: int, x0: int, y0: int, x1: int, y1: int) -> Mask:
        """Region ``label``'s pixels in the picture window [y0:y1, x0:x1] (which must lie
        within the mask's box)."""
        ox, oy = self.box[:2]
        found: Mask = self.labels[y0 - oy : y1 - oy, x0 - ox : x1 - ox] == label
        return found


def _label(part: NDArray[np.uint8], connectivity: int) -> tuple[int, Labels, Labels]:
    """OpenCV's connected components with stats. 16-bit labels where they cannot run
    out: OpenCV 5 computes 8-connected stats about 3x faster with them."""
    ltype = cv2.CV_16U if connectivity == 8 and cv2.countNonZero(part) < 65535 else cv2.CV_32S
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        part, connectivity=connectivity, ltype=ltype
    )
    return int(count), np.asarray(labels, np.int32), np.asarray(stats, np.int32)


def resize_window(
    image: NDArray[np.uint8], size: tuple[int, int], window: tuple[int, int, int, int]
) -> NDArray[np.uint8]:
    """``window`` (x0, y0, x1, y1) of ``image`` resized to ``size`` (h, w), computed for
    the window's pixels only: bicubic when enlarging, area averaging when shrinking, the
    same pixels as resizing the whole and cutting the window out."""
    h, w = size
    x0, y0, x1, y1 = window
    sh, sw = image.shape[:2]
    if (sh, sw) == (h, w):
        return image[y0:y1, x0:x1]
    if sh > h or sw > w:
        whole = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return np.asarray(whole, np.uint8)[y0:y1, x0:x1]
    fx, fy = sw / w, sh / h
    matrix = np.array([[fx, 0.0, (x0 + 0.5) * fx - 0.5], [0.0, fy, (y0 + 0.5) * fy - 0.5]])
    out = cv2.warpAffine(
        image, matrix, (x1 - x0, y1 - y0),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return np.asarray(out, np.uint8).reshape(y1 - y0, x1 - x0, *image.shape[2:])
