"""Bytes in, bytes out: one function per queue, shared by every backend.

Each decodes with the input limits, runs the backend on RGB, puts the alpha
channel back, and encodes PNG. Each step's seconds go into ``timings`` for
the job's log line.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import cv2
import numpy as np
from numpy.typing import NDArray

from erogaki_common.errors import ErrorName, ProcessingError
from erogaki_common.images import Limits, decode
from workers import png, pngread
from workers.backend import DeepCreamPyBackend, HentaiBackend, Image, Mask
from workers.imageops import green_mask, paint_green, painted_mask
from workers.imageops.green import paint_green_into

# A picture's alpha plane, None when it has none.
Alpha = NDArray[np.uint8] | None

Timings = dict[str, float]

# Inpainting fills from what is left: with less than this share of the picture
# unpainted there is nothing to fill from, and the answer is an error.
MIN_KNOWN_SHARE = 0.02


@contextmanager
def _timed(timings: Timings, step: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = time.perf_counter() - start


def _split(data: bytes, limits: Limits) -> tuple[Image, Alpha]:
    """The input as RGB and its alpha plane (None if it has none), with the input
    limits: PNGs that workers/pngread.py reads exactly (8-bit RGB or RGBA, rows
    filtered 'none', 'sub' or 'up', as workers/png.py writes them) without Pillow, in a
    fraction of its time; everything else, damaged files included, as Pillow reads it."""
    fast = pngread.read(data, limits)
    if fast is not None:
        return fast
    return _split_pillow(data, limits)


def _split_pillow(data: bytes, limits: Limits) -> tuple[Image, Alpha]:
    image = decode(data, limits)
    pixels = np.asarray(image)
    if image.mode == "RGBA":
        # OpenCV copies the planes out 20x faster than numpy's strided copy.
        rgb = np.asarray(cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB), np.uint8)
        return rgb, np.asarray(cv2.extractChannel(pixels, 3), np.uint8)
    return pixels, None


def encode_png(rgb: Image, alpha: Alpha = None, text: dict[str, str] | None = None) -> bytes:
    """The worker's PNG of ``rgb`` (and ``alpha``): workers/png.py, several times faster
    than Pillow's and OpenCV's encoders for files as small (bench/png.py)."""
    return png.encode(rgb, alpha, text)


def _run(
    data: bytes,
    limits: Limits,
    timings: Timings,
    step: str,
    work: Callable[[Image, Alpha], Image],
    exact: Callable[[], bool] = lambda: False,
) -> bytes:
    with _timed(timings, "decode"):
        rgb, alpha = _split(data, limits)
    with _timed(timings, step):
        out = work(rgb, alpha)
    with _timed(timings, "encode"):
        return encode_png(out, alpha, _EXACT_TEXT if exact() else None)


# hent-AI's hand-off says in the PNG itself that its green is exact, so DeepCreamPy reads
# it exactly: a vivid green of the drawing is never taken for paint. A tEXt chunk, which
# other readers ignore, right after IHDR, where Pillow finds it before the pixel data.
_EXACT_TEXT = {"erogaki-mask": "exact"}
_EXACT_CHUNK_DATA = b"erogaki-mask\x00exact"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_END = len(_PNG_SIGNATURE) + 8 + 13 + 4


def mark_exact(data: bytes) -> bytes:
    """``data`` (a PNG) with the chunk that says its green regions are painted exactly
    (for PNGs not written by encode_png, which writes it itself)."""
    chunk = b"tEXt" + _EXACT_CHUNK_DATA
    crc = zlib.crc32(chunk).to_bytes(4, "big")
    block = len(_EXACT_CHUNK_DATA).to_bytes(4, "big") + chunk + crc
    return data[:_IHDR_END] + block + data[_IHDR_END:]


def is_marked_exact(data: bytes) -> bool:
    return data.startswith(_PNG_SIGNATURE) and (
        data[_IHDR_END + 8 : _IHDR_END + 8 + len(_EXACT_CHUNK_DATA)] == _EXACT_CHUNK_DATA
    )


def mask_bars(data: bytes, backend: HentaiBackend, limits: Limits, timings: Timings) -> bytes:
    """hent-AI ``bar``: the PNG with every censor bar painted pure green."""

    def work(rgb: Image, alpha: Alpha) -> Image:
        mask = backend.detect_bars(rgb)
        if not mask.any():
            raise ProcessingError(
                "No censor bars were found in the image.", ErrorName.NO_CENSORED_REGIONS_FOUND
            )
        return paint_bars(rgb, mask, rgb)

    return _run(data, limits, timings, "detect", work, exact=lambda: True)


def restore_mosaic(data: bytes, backend: HentaiBackend, limits: Limits, timings: Timings) -> bytes:
    """hent-AI ``mosaic``: the decensored PNG."""

    def work(rgb: Image, alpha: Alpha) -> Image:
        restored, mask = backend.restore_mosaic(rgb)
        if not mask.any():
            raise ProcessingError(
                "No mosaic was found in the image.", ErrorName.NO_CENSORED_REGIONS_FOUND
            )
        return restored

    return _run(data, limits, timings, "restore", work)


def auto(
    data: bytes, backend: HentaiBackend, limits: Limits, timings: Timings
) -> tuple[bytes, bool]:
    """hent-AI ``auto``: the PNG with any mosaic restored and any bars painted green, and
    whether bars were found (then the job goes on to inpainting)."""
    found_bars = False

    def work(rgb: Image, alpha: Alpha) -> Image:
        nonlocal found_bars
        restored, mosaic, bars = backend.auto(rgb)
        found_bars = bool(bars.any())
        if not found_bars and not mosaic.any():
            raise ProcessingError(
                "No censor bars or mosaic were found in the image.",
                ErrorName.NO_CENSORED_REGIONS_FOUND,
            )
        return paint_bars(restored, bars, rgb) if found_bars else restored

    out = _run(data, limits, timings, "detect", work, exact=lambda: found_bars)
    return out, found_bars


def inpaint_green(
    data: bytes, backend: DeepCreamPyBackend, limits: Limits, timings: Timings
) -> bytes:
    """DeepCreamPy ``bar``: the PNG with its green regions inpainted.

    Green painted by hent-AI is exact and read exactly; green painted by a person is
    read forgivingly (``painted_mask``).
    """
    exact = is_marked_exact(data)

    def work(rgb: Image, alpha: Alpha) -> Image:
        return backend.inpaint(rgb, read_mask(rgb, exact, alpha))

    return _run(data, limits, timings, "inpaint", work)


def read_mask(rgb: Image, exact: bool, alpha: Alpha = None) -> Mask:
    """The green regions DeepCreamPy fills: exact green for hent-AI's hand-off, paint
    read forgivingly for a person's (never where ``alpha`` is 0: an editor may keep any
    colour under transparent pixels); ``ProcessingError`` when there is none, or nothing
    is left to fill it from."""
    mask = green_mask(rgb) if exact else painted_mask(rgb, alpha)
    painted = np.count_nonzero(mask)
    if not painted:
        raise ProcessingError(
            "The image has no regions painted green (0,255,0) to fill in. "
            "Paint the bars green, or use bar mode without --masked.",
            ErrorName.NO_MASKED_REGIONS_FOUND,
        )
    if mask.size - painted < MIN_KNOWN_SHARE * mask.size:
        raise ProcessingError(
            "Nearly the whole image is painted green, so nothing is left to fill it "
            "from. Paint only the censored areas.",
            ErrorName.MASK_COVERS_IMAGE,
        )
    return mask


def paint_bars(picture: Image, bars: Mask, decoded: Image) -> Image:
    """``picture`` with ``bars`` painted pure green, in place where it is this job's own
    array (the decoded one, or a backend's new one), else in a copy."""
    mine = picture.flags.writeable and (
        picture is decoded or not np.may_share_memory(picture, decoded)
    )
    return paint_green_into(picture, bars) if mine else paint_green(picture, bars)
