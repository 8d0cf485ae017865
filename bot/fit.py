"""Make a result fit Discord's upload limit: never a failed upload.

Decoding and re-encoding a large result takes seconds of CPU, which must never
run on the bot's event loop (commands would go unacknowledged, the gateway
heartbeat would stall): :func:`fit_off_loop` runs :func:`fit` in a small pool
of processes. Threads would not do: measured with two 1200x1200 re-encodings,
threads kept the loop waiting for the GIL up to 100-270 ms and took twice as
long, processes 10-35 ms. The pool's size bounds how many decoded images
exist at once, so a burst of results queues instead of exhausting memory.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from PIL import Image

# Each downscale step keeps this fraction of the width and height.
_STEP = 0.8
# Images re-encoded at once, per bot process (a 4000x3000 RGBA decode is 48 MB).
FIT_PROCESSES = 2

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # Not fork: the bot has threads (discord.py, redis), which fork would copy
            # mid-flight. forkserver starts clean children quickly where it exists.
            methods = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in methods else "spawn"
            _pool = ProcessPoolExecutor(
                FIT_PROCESSES, multiprocessing.get_context(method), initializer=_ignore_ctrl_c
            )
        return _pool


def _ignore_ctrl_c() -> None:
    # Ctrl-C reaches the whole process group; the bot decides when to stop, and
    # a child killed mid-way would break the pool for the results still due.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


async def fit_off_loop(png: bytes, limit: int) -> Fitted:
    """:func:`fit`, in the bounded pool of processes."""
    if len(png) <= limit:
        return Fitted(png, "png", None)  # nothing to do: no trip to the pool
    for attempt in range(2):
        # Creating the pool may start multiprocessing's helper process: off the loop too.
        pool = await asyncio.to_thread(_executor)
        try:
            # Submitting may start a process (the first time, the forkserver as
            # well): hundreds of milliseconds, so a thread does it, not the loop.
            future = await asyncio.to_thread(pool.submit, fit, png, limit)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # A child died (killed for memory?): a new pool, and one more try.
            _discard(pool)
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


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
