"""The pure-green mask of DeepCreamPy's input: painting it, and reading it back.

Users paint bars green by hand, with soft brushes, and post JPEGs; reading the mask
forgives that (``green_mask``), while ``paint_green`` writes exact (0, 255, 0).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]

GREEN = (0, 255, 0)


def green_mask(rgb: Image, tolerance: int = 0) -> Mask:
    """Pixels of pure green (0, 255, 0), each channel within ``tolerance``."""
    if tolerance <= 0:
        r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
        out: Mask = (r == 0) & (g == 255) & (b == 0)
        return out
    lo = np.array([0, 255 - tolerance, 0], np.uint8)
    hi = np.array([tolerance, 255, tolerance], np.uint8)
    in_range = cv2.inRange(np.ascontiguousarray(rgb), lo, hi)
    res: Mask = in_range.astype(bool)
    return res


def paint_green(rgb: Image, mask: Mask) -> Image:
    """A copy of ``rgb`` with the masked pixels set to pure green."""
    out = rgb.copy()
    out[mask] = GREEN
    return out
