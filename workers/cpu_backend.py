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


def _outside(bars: Mask, mosaic: Mask, margin: int) -> Mask:
    """``bars`` less the "bars" that are mosaic cells.

    A run of equal mosaic cells is a flat, straight-edged patch that can pass for a bar;
    a bar found mostly within one cell of the mosaic is taken for one.
    """
    if not bars.any():
        return bars
    size = 2 * margin + 1
    near = cv2.dilate(mosaic.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)
    n, labels = cv2.connectedComponents(bars.astype(np.uint8), connectivity=8)
    total = np.bincount(labels.ravel(), minlength=n)
    inside = np.bincount(labels[near], minlength=n)
    keep = inside * 2 < total
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
        bars = self.detect_bars(rgb)
        if grid is None or not mosaic.any():
            return rgb, mosaic, bars
        restored = imageops.restore_mosaic(rgb, mosaic, grid)
        return restored, mosaic, _outside(bars, mosaic, grid.block + BAR_GROW_PX)


class CpuDeepCreamPy:
    name = "cpu"

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        return imageops.inpaint(rgb, mask)
