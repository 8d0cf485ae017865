"""The model-free ``cpu`` backend: classical image processing in numpy and
OpenCV. It runs anywhere and needs no weights; it is the default for local
runs and tests, and is honestly lower quality than the real models
(``bench/quality.py`` measures it)."""

from __future__ import annotations

import cv2
import numpy as np

from workers import imageops
from workers.backend import Image, Mask

# Bars found on JPEG inputs have a ringing fringe one or two pixels wide that
# inpainting would otherwise smear back in.
BAR_GROW_PX = 2
# Cells of the mosaic grid a patch must cut through, not cover, to be a bar in auto mode.
_CROSSED_CELLS = 4


def _grow(mask: Mask, px: int) -> Mask:
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    out: Mask = cv2.dilate(mask.astype(np.uint8), disc).astype(bool)
    return out


def _not_cells(bars: Mask, mosaic: Mask, grid: imageops.MosaicGrid) -> Mask:
    """``bars`` less the "bars" that are runs of mosaic cells.

    Equal neighbouring mosaic cells make a flat, straight-edged patch that can pass for
    a bar, but it lies inside the mosaic and covers each cell of the grid wholly or not
    at all. A real bar's edges cross cells wherever they fall, so it is kept in every
    other case, even when it lies on, crosses or fuses with the mosaic: missing a bar
    leaves it on the picture, while taking a few cells for one only inpaints what would
    have been restored.
    """
    h, w = bars.shape
    b = grid.block
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bars.astype(np.uint8), connectivity=8)
    out = bars.copy()
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        comp = labels[y : y + bh, x : x + bw] == k
        if np.count_nonzero(comp & mosaic[y : y + bh, x : x + bw]) < 0.9 * area:
            continue
        ys, xs = np.nonzero(comp)
        cy, cx = (ys + y - grid.phase_y) // b, (xs + x - grid.phase_x) // b
        cells, count = np.unique(np.stack([cy, cx]), axis=1, return_counts=True)
        # Each touched cell's area inside the picture (border cells are cut).
        x0 = np.maximum(cells[1] * b + grid.phase_x, 0)
        x1 = np.minimum(cells[1] * b + grid.phase_x + b, w)
        y0 = np.maximum(cells[0] * b + grid.phase_y, 0)
        y1 = np.minimum(cells[0] * b + grid.phase_y + b, h)
        share = count / ((x1 - x0) * (y1 - y0))
        # A colour-grown rim may nick a neighbouring cell or two; a bar's edges cut
        # through a row of them.
        crossed = np.count_nonzero((share > 0.2) & (share < 0.8))
        if crossed < _CROSSED_CELLS:
            out[labels == k] = False
    return out


def _confirmed(bars: Mask, again: Mask) -> Mask:
    """The components of ``bars`` that ``again`` mostly finds too."""
    n, labels = cv2.connectedComponents(bars.astype(np.uint8), connectivity=8)
    total = np.bincount(labels.ravel(), minlength=n)
    seen = np.bincount(labels[again], minlength=n)
    keep = seen * 2 >= total
    keep[0] = False
    out: Mask = keep[labels]
    return out


class CpuHentai:
    name = "cpu"

    def detect_bars(self, rgb: Image) -> Mask:
        return imageops.detect_bars(rgb, grow=BAR_GROW_PX)

    def restore_mosaic(self, rgb: Image) -> tuple[Image, Mask]:
        mask, grid = imageops.detect_mosaic(rgb)
        if grid is None or not mask.any():
            return rgb, mask
        return imageops.restore_mosaic(rgb, mask, grid), mask

    def auto(self, rgb: Image) -> tuple[Image, Mask, Mask]:
        mosaic, grid = imageops.detect_mosaic(rgb)
        bars = imageops.detect_bars(rgb)
        if grid is None or not mosaic.any():
            return rgb, mosaic, _grow(bars, BAR_GROW_PX) if bars.any() else bars
        bars = _not_cells(bars, mosaic, grid)
        if bars.any():
            # A bar over the mosaic is inpainted, not restored as mosaic.
            mosaic = mosaic & ~_grow(bars, BAR_GROW_PX)
        restored = imageops.restore_mosaic(rgb, mosaic, grid) if mosaic.any() else rgb
        if bars.any():
            # The mosaic's straight edge can cut a flat patch of the drawing into a bar's
            # shape; with the mosaic restored the patch runs on, and only real bars are
            # still bars.
            bars = _confirmed(bars, imageops.detect_bars(restored))
            bars = _grow(bars, BAR_GROW_PX)
        return restored, mosaic, bars


class CpuDeepCreamPy:
    name = "cpu"

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        return imageops.inpaint(rgb, mask)
