"""The interface every model backend implements, one per worker.

A backend sees decoded 8-bit RGB arrays only: decoding, limits, alpha and PNG
encoding are the pipeline's job (``workers.pipeline``), so the cpu and onnx
backends are interchangeable. Backends raise ``ProcessingError`` subclasses
for outcomes a user should hear about (nothing found, ...).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]  # (H, W, 3) RGB
Mask = NDArray[np.bool_]  # (H, W)


class HentaiBackend(Protocol):
    """Detection of censored regions (hent-AI's part)."""

    name: str

    def detect_bars(self, rgb: Image) -> Mask:
        """Pixels covered by censor bars (empty mask: none found)."""
        ...

    def restore_mosaic(self, rgb: Image) -> tuple[Image, Mask]:
        """The image with its mosaic restored, and the mosaic's mask
        (empty mask: none found, image unchanged)."""
        ...

    def auto(self, rgb: Image) -> tuple[Image, Mask, Mask]:
        """``auto`` mode, one detection pass for both kinds of censoring.

        Returns the image with any mosaic restored, the mosaic's mask, and the mask of
        censor bars found (in the returned image; the pipeline paints them green and hands
        the job on to inpainting). Empty masks: that kind was not found.
        """
        ...


class DeepCreamPyBackend(Protocol):
    """Inpainting of regions painted pure green (DeepCreamPy's part)."""

    name: str

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        """``rgb`` with the ``mask`` pixels filled; no other pixel changes."""
        ...
