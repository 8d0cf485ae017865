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

Labels = NDArray[np.int32]


def bounds(mask: Mask, pad: int = 0) -> tuple[int, int, int, int] | None:
    """The mask's bounding box (x0, y0, x1, y1), grown by ``pad`` and cut to the picture;
    None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    h, w = mask.shape
    return (max(int(cols[0]) - pad, 0), max(int(rows[0]) - pad, 0),
            min(int(cols[-1]) + 1 + pad, w), min(int(rows[-1]) + 1 + pad, h))  # fmt: skip


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


class Components:
    """Connected regions of a mask: ``labels`` over the window ``box`` (x0, y0, x1, y1) of
    the picture, and each region's bounding box in the picture's coordinates."""

    def __init__(self, mask: Mask, connectivity: int) -> None:
        box = bounds(mask)
        self.box = box or (0, 0, 0, 0)
        x0, y0, x1, y1 = self.box
        part = np.ascontiguousarray(mask[y0:y1, x0:x1]).view(np.uint8)
        self.count = 1
        self.labels: Labels = np.zeros((0, 0), np.int32)
        self.stats: Labels = np.zeros((1, 5), np.int32)
        if box is not None:
            count, labels, stats, _ = cv2.connectedComponentsWithStats(
                part, connectivity=connectivity
            )
            self.count, self.labels, self.stats = int(count), np.asarray(labels), np.asarray(stats)

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
