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


def _grow(mask: Mask, px: int) -> Mask:
    if px > 4:
        # A wide disc costs dilate its area per pixel; a distance transform costs little.
        dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
        far: Mask = dist <= px
        return far
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    out: Mask = cv2.dilate(mask.astype(np.uint8), disc).astype(bool)
    return out


def _confirmed(bars: Mask, again: Mask, near: Mask) -> Mask:
    """The components of ``bars`` that lie mostly away from ``near``, or that ``again``
    mostly finds too."""
    n, labels = cv2.connectedComponents(bars.astype(np.uint8), connectivity=8)
    total = np.bincount(labels.ravel(), minlength=n)
    seen = np.bincount(labels[again], minlength=n)
    close = np.bincount(labels[near], minlength=n)
    keep = (seen * 2 >= total) | (close * 2 < total)
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
        restored = imageops.restore_mosaic(rgb, mosaic, grid)
        if not bars.any():
            return restored, mosaic, bars
        # Near the mosaic, "bars" may be runs of equal cells, or flat patches of the
        # drawing that the mosaic's straight edge cuts into a bar's shape. With the
        # mosaic restored both are gone, and what is still a bar there is one.
        near = _grow(mosaic, 2 * grid.block)
        if (bars & near).any():
            bars = _confirmed(bars, imageops.detect_bars(restored), near)
        if not bars.any():
            return restored, mosaic, bars
        bars = _grow(bars, BAR_GROW_PX)
        if (bars & mosaic).any():
            # A bar over the mosaic is inpainted, not restored as mosaic.
            mosaic = mosaic & ~bars
            restored = imageops.restore_mosaic(rgb, mosaic, grid)
        return restored, mosaic, bars


class CpuDeepCreamPy:
    name = "cpu"

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        return imageops.inpaint(rgb, mask)
