"""The workers' PNG encoder: 8-bit RGB and RGBA, one row filter per picture, fast deflate.

Pillow spends most of its PNG encode trying five row filters on every row, and zlib's
level 1 is the rest. Here one filter serves the whole picture, applied as a single numpy
subtraction: ``none`` for flat-coloured drawings (their colours repeat exactly, which
LZ77 matching likes), ``up`` for photographs, scans and JPEG-decoded pictures (smooth
changes become small numbers), ``sub`` for pictures smooth along their rows only.
ISA-L's deflate (``isal``) then compresses 4-8x faster than zlib's level 1, with files
as small or smaller on drawings and photographs. On a few pictures (grey screentone
through JPEG) ISA-L's files would be 15-30 % larger than Pillow's: those get
libdeflate, half zlib's time for files as small. The filter and the deflate are chosen
from trials on a sample of the picture's rows, which cost a tenth to a quarter of the
encode; a file far from what the sample foretold is planned again on a denser sample
(the smaller file kept), and a tiny file has every filter tried on the whole picture.
``bench/png.py`` measures all this against Pillow and OpenCV.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import NamedTuple

import cv2
import deflate
import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray
from PIL import Image

__all__ = ["ISAL", "LIBDEFLATE", "Deflate", "Plan", "encode", "plan"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NONE, _SUB, _UP = 0, 1, 2
_FILTERS = {"none": _NONE, "up": _UP, "sub": _SUB}
_DECODE_COST = {"none": 1.0, "up": 1.01, "sub": 1.02}
# The sample the choices are made on: bands of rows spread over the picture, which is
# its own sample when it has no more rows than they.
_SAMPLE_BANDS, _SAMPLE_ROWS = 8, 8
# A picture whose file is this far from what its sample foretold (either way) was not
# like its sample: a photograph in the rows between flat bands, say. It is planned again
# on a dense sample, rows in 4s every 64 (a sixteenth of the picture), and the smaller
# of the two files kept. On bench/png.py's pictures the sample foretold the file within
# 0.78-1.14x; on pictures built to mislead it, 0.17x (drawing between photographed
# bands) to 190x (noise between flat bands).
_MISLED = 2.0
_DENSE_EVERY, _DENSE_ROWS = 64, 4
# A file at most this fraction of the picture's bytes is tiny (a gradient, one colour).
_TINY = 64
# ISA-L's file may be this much larger than Pillow's before libdeflate is used instead:
# the workers allow 10 %, and the estimate from a sample is off by up to 5 %.
_TOLERANCE = 1.05
# Past this much larger than zlib's sample on "up", ISA-L's file is taken as too large
# without asking Pillow (on the pictures measured it was then 1.08-1.34x Pillow's).
_CLEARLY_WORSE = 1.15
# Several IDAT chunks rather than one of many megabytes: a streaming reader that checks
# each chunk's CRC before using it need not hold the whole picture's data.
_IDAT_BYTES = 1 << 18
# The filtered rows ISA-L is given at a time.
_STRIP_BYTES = 1 << 20
# The spec's limit on width and height (IHDR holds them in 31 bits).
_MAX_SIDE = (1 << 31) - 1


def encode(
    pixels: NDArray[np.uint8],
    alpha: NDArray[np.uint8] | None = None,
    text: Mapping[str, str] | None = None,
) -> bytes:
    """A PNG of ``pixels`` (height x width x 3 RGB or x 4 RGBA), with ``alpha``
    (height x width) as its alpha channel if given, and ``text`` as tEXt chunks right
    after the header (keywords and values in Latin-1)."""
    # Text first: a bad keyword is refused before the picture's work is done.
    texts = [_text(key, value) for key, value in (text or {}).items()]
    rows = _Scanlines(pixels, alpha)
    channels = rows.channels
    data = _idat(rows, channels)[1]

    h, w = pixels.shape[:2]
    colour_type = 6 if channels == 4 else 2
    parts = [_SIGNATURE, *_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))]
    for body in texts:
        parts += _chunk(b"tEXt", body)
    view = memoryview(data)
    for start in range(0, len(view), _IDAT_BYTES):
        parts += _chunk(b"IDAT", view[start : start + _IDAT_BYTES])
    parts += _chunk(b"IEND", b"")
    return b"".join(parts)


class _Scanlines:
    """The picture as PNG scanlines without their filter byte, height x (width *
    channels), made a strip at a time where they are not the picture's own memory: a
    view of a larger array, or RGB with its alpha apart, is never copied whole."""

    def __init__(self, pixels: NDArray[np.uint8], alpha: NDArray[np.uint8] | None) -> None:
        if not isinstance(pixels, np.ndarray) or (
            alpha is not None and not isinstance(alpha, np.ndarray)
        ):
            raise TypeError("pixels and alpha are numpy arrays")
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
            raise ValueError(
                f"expected uint8 height x width x 3 or 4, got {pixels.dtype} {pixels.shape}"
            )
        h, w, channels = pixels.shape
        if h == 0 or w == 0:
            raise ValueError("a PNG has at least one pixel")
        if max(h, w) > _MAX_SIDE:
            raise ValueError(f"a PNG is at most {_MAX_SIDE} pixels wide and high, got {w}x{h}")
        if alpha is not None and (
            channels != 3 or alpha.shape != (h, w) or alpha.dtype != np.uint8
        ):
            raise ValueError("alpha goes with RGB pixels and has their height and width")
        self._pixels, self._alpha = pixels, alpha
        self.channels = 4 if alpha is not None else channels
        self.shape = (h, w * self.channels)

    def __getitem__(self, rows: slice) -> NDArray[np.uint8]:
        pixels = self._pixels[rows]
        n = pixels.shape[0]
        if self._alpha is None:
            return np.ascontiguousarray(pixels).reshape(n, -1)
        # OpenCV interleaves the alpha channel 8x faster than numpy's strided assignment.
        rgba = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2RGBA)
        rgba = cv2.insertChannel(np.ascontiguousarray(self._alpha[rows]), rgba, 3)
        return np.asarray(rgba, np.uint8).reshape(n, -1)


def _idat(rows: _Scanlines, channels: int) -> tuple[Plan, bytes | bytearray]:
    """The plan for ``rows`` and their zlib stream."""
    h = rows.shape[0]
    small = h <= _SAMPLE_BANDS * _SAMPLE_ROWS
    # A small picture is its own sample.
    starts, band_rows = ([0], h) if small else (_band_starts(h), _SAMPLE_ROWS)
    chosen, foretold = _plan(rows, channels, starts, band_rows)
    data = _compress(rows, _FILTERS[chosen.filter], chosen.deflate)
    size = h * (1 + rows.shape[1])
    ratio = len(data) / (foretold * size)
    if small:
        return chosen, data
    tiny = len(data) <= size // _TINY
    if tiny and chosen.deflate is ISAL:
        # So compressible that each band's first row, not the picture, decided the
        # trials (a horizontal gradient: "sub" won the sample, "up" makes a file 0.6x
        # the size); ISA-L on such data is quick, so the other filters are tried on
        # the whole picture. (On long runs of zeros ISA-L's file can still be 1.3x
        # Pillow's, a few KiB more; libdeflate, tried too, cost 2-4x the encode.)
        for name, filter_type in _FILTERS.items():
            if name != chosen.filter:
                other = _compress(rows, filter_type, ISAL)
                if len(other) < len(data):
                    chosen, data = Plan(name, ISAL), other
        return chosen, data
    # Smaller than foretold matters less when the file is small anyway.
    if ratio <= _MISLED and (tiny or ratio >= 1 / _MISLED):
        return chosen, data
    starts = list(range(0, h - _DENSE_ROWS + 1, _DENSE_EVERY))
    second = _plan(rows, channels, starts, _DENSE_ROWS)[0]
    if second == chosen:
        return chosen, data
    other = _compress(rows, _FILTERS[second.filter], second.deflate)
    return (second, other) if len(other) < len(data) else (chosen, data)


def _compress(rows: _Scanlines, filter_type: int, with_: Deflate) -> bytes:
    """The zlib stream of ``rows`` filtered with ``filter_type``. ISA-L takes them a
    strip at a time (the same bytes as at once), so that no filtered copy of the whole
    picture is made; libdeflate has no streaming interface."""
    h = rows.shape[0]
    if with_ is not ISAL:
        return bytes(with_.compress(_filtered_rows(rows, 0, h, filter_type)))
    step = max(1, _STRIP_BYTES // rows.shape[1])
    stream = isal_zlib.compressobj(_ISAL_LEVEL)
    pieces = [
        stream.compress(_filtered_rows(rows, top, min(top + step, h), filter_type).data)
        for top in range(0, h, step)
    ]
    pieces.append(stream.flush())
    return b"".join(pieces)


def _filtered_rows(rows: _Scanlines, top: int, end: int, filter_type: int) -> NDArray[np.uint8]:
    """Rows ``top`` to ``end`` filtered as they are in the whole picture (against the
    row above ``top``)."""
    above = max(top - 1, 0)
    return _filtered(rows[above:end], filter_type, rows.channels)[top - above :]


def _filtered(rows: NDArray[np.uint8], filter_type: int, channels: int) -> NDArray[np.uint8]:
    """The scanlines as deflate's input: each row's filter byte, then the filtered row."""
    h = rows.shape[0]
    out = np.empty((h, 1 + rows.shape[1]), np.uint8)
    out[:, 0] = filter_type
    if filter_type == _NONE:
        out[:, 1:] = rows
    elif filter_type == _SUB:
        # "sub": each byte minus the same channel's byte one pixel to the left; the
        # first pixel is taken against zeros.
        out[:, 1 : 1 + channels] = rows[:, :channels]
        np.subtract(rows[:, channels:], rows[:, :-channels], out=out[:, 1 + channels :])
    else:
        # "up": each byte minus the one above it, modulo 256; the first row is taken
        # against a row of zeros, so it stays as it is.
        out[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out


class Deflate(NamedTuple):
    name: str
    compress: Callable[[NDArray[np.uint8]], bytes | bytearray]


# ISA-L's level 2 costs a few per cent more time than its level 1 and makes files up to
# 10 % smaller (fine grey textures); both are several times faster than zlib's level 1.
_ISAL_LEVEL = 2
ISAL = Deflate("isal", lambda data: isal_zlib.compress(data.data, _ISAL_LEVEL))
# libdeflate's level 2 searches harder (hash chains): about half zlib level 1's time,
# files as small. For the few pictures where ISA-L's quick search does badly.
LIBDEFLATE = Deflate("libdeflate", lambda data: deflate.zlib_compress(data.data, 2))
# What Pillow and OpenCV use at level 1: the yardstick, never the encoder.
_ZLIB = Deflate("zlib", lambda data: zlib.compress(data.data, 1))


class Plan(NamedTuple):
    filter: str  # "none" or "up"
    deflate: Deflate


def plan(pixels: NDArray[np.uint8], alpha: NDArray[np.uint8] | None = None) -> Plan:
    """The filter and the deflate :func:`encode` uses for this picture (found by
    encoding it)."""
    rows = _Scanlines(pixels, alpha)
    return _idat(rows, rows.channels)[0]


def _plan(rows: _Scanlines, channels: int, starts: list[int], band_rows: int) -> tuple[Plan, float]:
    """The filter and the deflate for ``rows``, from trials on bands of ``band_rows``
    rows from each of ``starts``, and the compressed size per input byte the sample
    foretells."""
    trials = {
        name: _filtered_bands(rows, filter_type, channels, starts, band_rows)
        for name, filter_type in _FILTERS.items()
    }
    sizes = {name: len(ISAL.compress(data)) for name, data in trials.items()}
    # Unfiltering costs the reader: "none" is kept unless a filter saves 1 %, "up"
    # unless "sub" (a reader's slowest here) saves 1 % more (noise: all within 0.1 %).
    chosen = min(sizes, key=lambda name: sizes[name] * _DECODE_COST[name])
    isal_size = sizes[chosen]
    foretold = isal_size / trials[chosen].size
    # zlib on "up" comes within about 10 % of Pillow's file (0.90-1.11x on the
    # drawings and photographs measured), in half Pillow's time; on pictures "sub"
    # suits, Pillow's rows are mostly "sub" too.
    zlib_size = len(_ZLIB.compress(trials["sub" if chosen == "sub" else "up"]))
    if isal_size <= zlib_size:
        return Plan(chosen, ISAL), foretold
    # ISA-L loses to zlib (by 15-30 % on grey screentone through JPEG, whose repeats are
    # short). What matters is how far it is from Pillow's file: far enough already, or
    # else Pillow, asked to write the sample, tells. Most pictures never get here.
    if isal_size > _CLEARLY_WORSE * zlib_size:
        return Plan(chosen, LIBDEFLATE), foretold
    sample = np.concatenate([rows[s : s + band_rows] for s in starts])
    if isal_size <= _TOLERANCE * _pillow_size(sample, channels):
        return Plan(chosen, ISAL), foretold
    return Plan(chosen, LIBDEFLATE), foretold


def _pillow_size(rows: NDArray[np.uint8], channels: int) -> int:
    out = io.BytesIO()
    pixels = rows.reshape(rows.shape[0], -1, channels)
    Image.fromarray(pixels).save(out, "PNG", compress_level=1)
    return out.tell()


def _band_starts(h: int) -> list[int]:
    last = h - _SAMPLE_ROWS
    return [i * last // (_SAMPLE_BANDS - 1) for i in range(_SAMPLE_BANDS)]


def _filtered_bands(
    rows: _Scanlines, filter_type: int, channels: int, starts: list[int], band_rows: int
) -> NDArray[np.uint8]:
    """Each band filtered as it is in the whole picture (against the row above it)."""
    if band_rows >= rows.shape[0]:
        return _filtered_rows(rows, 0, rows.shape[0], filter_type)
    bands = [_filtered_rows(rows, s, s + band_rows, filter_type) for s in starts]
    return np.concatenate(bands)


# libpng (and so OpenCV) drops a text chunk larger than this by default
# (PNG_USER_CHUNK_MALLOC_MAX), with an "out of memory" warning: a longer value would
# be written and then lost to such readers.
_TEXT_BYTES = 8_000_000


def _text(key: object, value: object) -> bytes:
    # The PNG spec: a keyword of 1-79 printable Latin-1 characters (32-126 and 161-255)
    # with no leading, trailing or consecutive spaces; a value of Latin-1 without NUL.
    # pngcheck and strict readers reject anything else, so it is refused here rather
    # than written.
    if not isinstance(key, str) or not isinstance(value, str):
        raise TypeError(f"PNG text keywords and values are str, got {type(key)} and {type(value)}")
    if not (
        1 <= len(key) <= 79
        and all(32 <= ord(c) <= 126 or 161 <= ord(c) <= 255 for c in key)
        and key == key.strip(" ")
        and "  " not in key
    ):
        raise ValueError(
            f"not a PNG text keyword (1-79 printable Latin-1 characters, single inner "
            f"spaces only): {key!r}"
        )
    try:
        body = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"the value of PNG text {key!r} is not Latin-1") from None
    if b"\x00" in body:
        raise ValueError(f"the value of PNG text {key!r} contains NUL")
    if len(key) + 1 + len(body) > _TEXT_BYTES:
        raise ValueError(f"the value of PNG text {key!r} is over {_TEXT_BYTES} bytes")
    return key.encode("latin-1") + b"\x00" + body


def _chunk(kind: bytes, body: bytes | memoryview) -> list[bytes | memoryview]:
    crc = isal_zlib.crc32(body, isal_zlib.crc32(kind))
    return [struct.pack(">I", len(body)) + kind, body, struct.pack(">I", crc)]
