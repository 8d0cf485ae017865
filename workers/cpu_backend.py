"""The model-free ``cpu`` backend: classical image processing in numpy and
OpenCV. It runs anywhere and needs no weights; it is the default for local
runs and tests, and is honestly lower quality than the real models
(``bench/quality.py`` measures it)."""

from __future__ import annotations

from workers import imageops
from workers.backend import Image, Mask

# Bars found on JPEG inputs have a ringing fringe one or two pixels wide that
# inpainting would otherwise smear back in.
BAR_GROW_PX = 2


class CpuHentai:
    name = "cpu"

    def detect_bars(self, rgb: Image) -> Mask:
        return imageops.detect_bars(rgb, grow=BAR_GROW_PX)

    def restore_mosaic(self, rgb: Image) -> tuple[Image, Mask]:
        mask, grid = imageops.detect_mosaic(rgb)
        if grid is None or not mask.any():
            return rgb, mask
        return imageops.restore_mosaic(rgb, mask, grid), mask


class CpuDeepCreamPy:
    name = "cpu"

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        return imageops.inpaint(rgb, mask)
