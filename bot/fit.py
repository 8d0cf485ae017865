"""Make a result fit Discord's upload limit: never a failed upload."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

# Each downscale step keeps this fraction of the width and height.
_STEP = 0.8


@dataclass(frozen=True, slots=True)
class Fitted:
    data: bytes
    extension: str  # "png" or "jpg"
    # What was done to make it fit, for the user; None when nothing was.
    note: str | None


def _png(image: Image.Image, level: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=level, optimize=level == 9)
    return out.getvalue()


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def fit(png: bytes, limit: int) -> Fitted:
    """``png`` unchanged if it fits ``limit`` bytes; else the best re-encoding
    that does: PNG at maximum compression, then JPEG (loses alpha), then JPEG
    downscaled step by step."""
    if len(png) <= limit:
        return Fitted(png, "png", None)
    image = Image.open(io.BytesIO(png))
    image.load()
    smaller = _png(image, 9)
    if len(smaller) <= limit:
        return Fitted(smaller, "png", "recompressed to fit Discord's upload limit")
    quality = 90
    data = _jpeg(image, quality)
    scale = 1.0
    while len(data) > limit:
        scale *= _STEP
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        if size == (1, 1) and len(data) > limit:
            break
        data = _jpeg(image.resize(size, Image.Resampling.LANCZOS), quality)
    if scale == 1.0:
        return Fitted(data, "jpg", f"sent as JPEG to fit the {human_size(limit)} upload limit")
    return Fitted(
        data,
        "jpg",
        f"sent as JPEG, downscaled to {scale:.0%} of its size, to fit the "
        f"{human_size(limit)} upload limit",
    )


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} MiB"
    return f"{n / 1024:.0f} KiB"
