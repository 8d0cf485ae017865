"""Model-free image operations of the workers' "cpu" backend.

Censor-bar detection and green masking (the input DeepCreamPy expects), mosaic grid
estimation, detection and restoration, inpainting, and synthetic test scenes. Images are
RGB ``uint8`` arrays of shape (H, W, 3); masks are ``bool`` arrays of shape (H, W).
"""

from workers.imageops.bars import detect_bars
from workers.imageops.green import green_mask, paint_green, painted_mask
from workers.imageops.inpaint import inpaint
from workers.imageops.mosaic import MosaicGrid, detect_mosaic, estimate_grid, restore_mosaic

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
