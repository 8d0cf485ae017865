"""Make a result fit Discord's upload limit: never a failed upload.

Decoding and re-encoding a large result takes seconds of CPU, which must never
run on the bot's event loop (commands would go unacknowledged, the gateway
heartbeat would stall): :func:`fit_off_loop` runs :func:`fit` in a small
thread pool (Pillow releases the GIL while it codes). The pool's size bounds
how many decoded images exist at once, so a burst of results queues instead
of exhausting memory.
"""

from __future__ import annotations

import asyncio
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

# Each downscale step keeps this fraction of the width and height.
_STEP = 0.8
# Images re-encoded at once, per bot process (a 4000x3000 RGBA decode is 48 MB).
FIT_THREADS = 2

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(FIT_THREADS, thread_name_prefix="erogaki-fit")
        return _pool


async def fit_off_loop(png: bytes, limit: int) -> Fitted:
    """:func:`fit`, in the bounded pool."""
    if len(png) <= limit:
        return Fitted(png, "png", None)  # nothing to do: no thread hop
    return await asyncio.get_running_loop().run_in_executor(_executor(), fit, png, limit)


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
    """Sizes as people read them: 25 MiB, 2.5 MiB, 195 KiB (never rounded to a wrong whole)."""
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"
