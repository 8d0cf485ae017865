"""Model-free image operations of the workers' "cpu" backend.

Censor-bar detection and green masking (the input DeepCreamPy expects), mosaic grid
estimation, detection and restoration, inpainting, and synthetic test scenes. Images are
RGB ``uint8`` arrays of shape (H, W, 3); masks are ``bool`` arrays of shape (H, W).
"""

import cv2
import numpy as np

from workers.imageops import bars, edgebars
from workers.imageops.edgebars import Image, Mask
from workers.imageops.green import green_mask, paint_green, painted_mask
from workers.imageops.inpaint import inpaint
from workers.imageops.mosaic import MosaicGrid, detect_mosaic, estimate_grid, restore_mosaic


def detect_bars(rgb: Image, grow: int = 0) -> Mask:
    """Mask of solid censor bars: the union of two detectors that fail differently.

    :func:`bars.detect_bars` finds flat single-colour regions and judges their shape (it
    takes compound bars, bars cut by the picture's edge, bars over hatching);
    :func:`edgebars.detect_edge_bars` finds pairs of long straight parallel edges with one
    colour between them (thin bars, bars touching a mass of their colour, bars crossing at
    any angle, rimmed bars). ``grow`` dilates the result by that many pixels, useful to
    swallow JPEG fringes before inpainting.
    """
    found = bars.detect_bars(rgb) | edgebars.detect_edge_bars(rgb)
    if grow > 0 and found.any():
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        grown: Mask = np.asarray(cv2.dilate(found.astype(np.uint8), disc), np.uint8).astype(bool)
        return grown
    return found


__all__ = [
    "MosaicGrid",
    "detect_bars",
    "detect_mosaic",
    "estimate_grid",
    "green_mask",
    "inpaint",
    "paint_green",
    "painted_mask",
    "restore_mosaic",
]
