"""Image helpers the tests share: arrays to PNG bytes and back."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

Pixels = NDArray[np.uint8]


def png(pixels: Pixels, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "PNG")
    return buf.getvalue()


def pixels_of(data: bytes) -> Pixels:
    return np.asarray(Image.open(io.BytesIO(data)))
