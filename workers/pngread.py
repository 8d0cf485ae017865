"""A fast PNG reader for the pictures it can decode exactly, else a word that Pillow must.

The workers' inputs are mostly PNGs written by workers/png.py (hent-AI's hand-off to
DeepCreamPy, the bot's next hop): 8-bit RGB or RGBA, one row filter per picture. Pillow
inflates them with zlib and unfilters them row by row; here libdeflate inflates the
whole stream at once into a buffer of the picture's exact size (2-4x faster than zlib,
faster than ISA-L's inflate too), and the 'none', 'sub' and 'up' filters are undone with
wide numpy additions that wrap modulo 256, as PNG's arithmetic does. Files whose first
rows mix filters come from adaptive writers (Pillow, libpng), which use 'avg' and
'paeth' anywhere: those are inflated by ISA-L 32 rows at a time and handed to Pillow at
the first such row, so looking costs them a fraction of a millisecond.

:func:`read` answers only where its answer is the one ``erogaki_common.images.decode``
(then ``pipeline._split``) would give, bit for bit: anything else returns ``None`` and
the caller takes the Pillow path, which then gives the picture or the error. So the
reader never raises on a bad file, and a damaged one ends in exactly the ProcessingError
it always did. It declines:

- colour types other than RGB and RGBA, bit depths other than 8, interlacing: Pillow
  converts those, and they are rare; tall narrow pictures (rows under 256 bytes and
  over 256 of them), where a numpy step per row would cost more than Pillow;
- any chunk besides IHDR, IDAT, IEND, tEXt, pHYs and tIME: iCCP, sRGB, gAMA, cHRM, cICP
  (colour conversion or its meta), PLTE, tRNS (transparency), eXIf (orientation), acTL
  (animation); zTXt and iTXt too, because Pillow's handling of them can fail (bad
  compressed text, text memory limit) and XMP in iTXt can carry an orientation;
- a tEXt whose keyword Pillow reads back as one of its own info keys ("exif", "Raw
  profile type exif", "XML:com.adobe.xmp", "icc_profile", "interlace", ...): Pillow
  stores tEXt values in the same dict, where they would rotate, convert or break the
  picture;
- rows filtered 'avg' or 'paeth' (each byte depends on the one just decoded to its left:
  no wide arithmetic undoes them; Pillow's and libpng's adaptive filtering uses them);
- anything out of order or damaged: a CRC mismatch in any chunk, a chunk running past
  the end, no IEND, IDAT chunks not in one run, a stream that does not inflate to
  exactly the picture's size, an unknown filter byte. Pillow is more lenient in places
  (it checks CRCs only before the first IDAT and stops inflating once it has every
  row): such files get its answer, whatever it is.

CRCs are all checked, because ISA-L's CRC-32 costs about 0.02 ms per MiB: far below
anything else here, and a damaged file is then never read as a picture. The pixel
limits are checked on IHDR before anything is inflated, and the inflate cannot write
past the picture's size, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import struct
import zlib
from typing import cast

import cv2
import deflate
import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray
from PIL import Image, PngImagePlugin

from erogaki_common.images import MIN_SIDE, Limits

__all__ = ["read"]

Pixels = NDArray[np.uint8]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NONE, _SUB, _UP = 0, 1, 2
_CHANNELS = {2: 3, 6: 4}  # colour type -> channels
# Chunks that leave the pixels as they are, in Pillow's reading too.
_PASSIVE = frozenset({b"tEXt", b"pHYs", b"tIME"})
# tEXt keywords that land in Pillow's image.info as keys Pillow (or our decode) reads:
# orientation (exif, the two text forms of EXIF and XMP), the colour profile, and the
# keys that steer the PNG decoder and APNG frames. Pillow's own info keys are all here,
# so a new use of one in Pillow is covered too.
_PILLOW_KEYS = frozenset(
    b"exif,Raw profile type exif,XML:com.adobe.xmp,xmp,icc_profile,interlace,bbox,"
    b"default_image,disposal,blend,duration,loop,transparency,dpi,aspect,gamma,srgb,"
    b"chromaticity,cicp".split(b",")
)
# The first rows' filters are looked at before the whole stream is inflated.
_PEEK_ROWS, _PEEK_BYTES = 32, 1 << 17
# Below this many bytes, a row (or a column of 'sub' rows) is too short for one numpy
# addition per row to beat Pillow's row-by-row C (each addition costs about 1 us).
_WIDE_BYTES = 256
# Rows inflated at a time where every row's filter is looked at as it comes.
_WATCH_ROWS = 32
# isal's stubs declare its exception as an instance of Exception, not a class.
_ISAL_ERROR = cast(type[Exception], isal_zlib.error)
# More chunks than any sane PNG has: a file made of tiny chunks is left to Pillow
# rather than parsed twice.
_MAX_CHUNKS = 4096


def read(data: bytes, limits: Limits) -> tuple[Pixels, Pixels | None] | None:
    """The picture in ``data`` as ``pipeline._split`` returns it (RGB, height x width x
    3, and the alpha plane or None), or None where only the Pillow path may answer."""
    layout = _layout(data, limits)
    if layout is None:
        return None
    width, height, channels, idat = layout
    stride = width * channels
    expected = height * (1 + stride)
    ahead = _filters_ahead(idat[0] if len(idat) == 1 else b"".join(idat[:4]), stride)
    if ahead is None or max(ahead, default=0) > _UP:
        return None
    if len(set(ahead)) > 1:
        # Several filters in the first rows: an adaptive writer (Pillow, libpng), whose
        # 'avg' and 'paeth' rows may start anywhere. Inflated a chunk at a time and
        # looked at as it comes, so such a file goes to Pillow early.
        raw = _inflate_watching(idat, expected, stride)
    else:
        raw = _inflate(idat, expected)
    if raw is None:
        return None
    scanlines = np.frombuffer(raw, np.uint8).reshape(height, 1 + stride)
    rows = _unfilter(scanlines[:, 1:], scanlines[:, 0], channels)
    if rows is None:
        return None
    pixels = rows.reshape(height, width, channels)
    if channels == 3:
        return pixels, None
    # As pipeline._split splits Pillow's RGBA: OpenCV copies the planes out faster than
    # numpy's strided copy.
    rgb = np.asarray(cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB), np.uint8)
    return rgb, np.asarray(cv2.extractChannel(pixels, 3), np.uint8)


def _filters_ahead(start: bytes | memoryview, stride: int) -> bytes | None:
    """The filters of the first rows, inflated from the stream's first bytes (a few
    hundredths of a millisecond), or None if those bytes do not inflate. A picture
    with 'avg' or 'paeth' rows among them goes to Pillow before anything else is
    inflated; one filter throughout is workers/png.py's way."""
    try:
        head = zlib.decompressobj().decompress(start[:_PEEK_BYTES], _PEEK_ROWS * (1 + stride))
    except zlib.error:
        return None
    return bytes(head[:: 1 + stride])


def _inflate(idat: list[memoryview], expected: int) -> bytearray | None:
    """The stream inflated at once by libdeflate, which writes into a buffer of exactly
    ``expected`` bytes and fails where the stream would need more: nothing past the
    picture is ever allocated."""
    try:
        raw = deflate.zlib_decompress(idat[0] if len(idat) == 1 else b"".join(idat), expected)
    except deflate.DeflateError:
        return None
    return raw if len(raw) == expected else None


def _inflate_watching(idat: list[memoryview], expected: int, stride: int) -> bytearray | None:
    """The stream inflated a few rows at a time with ISA-L (2x zlib's speed; libdeflate
    has no streaming), or None as soon as a row is filtered 'avg' or 'paeth', the
    stream is damaged, or it holds more or less than the picture."""
    out = bytearray(expected)
    inflater = isal_zlib.decompressobj()
    row = 1 + stride
    step = _WATCH_ROWS * row
    done = taken = 0
    data: bytes | memoryview = b""
    try:
        while True:
            if not data and taken < len(idat):
                data, taken = idat[taken], taken + 1
            # At most one byte past the picture: enough to tell that there is more.
            piece = inflater.decompress(data, min(step, expected - done + 1))
            data = inflater.unconsumed_tail
            if done + len(piece) > expected:
                return None
            if max(piece[-done % row :: row], default=0) > _UP:
                return None
            out[done : done + len(piece)] = piece
            done += len(piece)
            if inflater.eof:
                break
            if not piece and not data and taken == len(idat):
                return None  # the stream ends before its end
    except _ISAL_ERROR:
        return None
    return out if done == expected else None


def _layout(data: bytes, limits: Limits) -> tuple[int, int, int, list[memoryview]] | None:
    """Width, height, channels and the IDAT chunks' bodies of a PNG the fast path can
    read."""
    if len(data) > limits.max_bytes or not data.startswith(_SIGNATURE):
        return None
    view = memoryview(data)
    end = len(data)
    pos = len(_SIGNATURE)
    header: tuple[int, int, int] | None = None
    idat: list[memoryview] = []
    idat_over = False
    text_bytes = 0
    for _ in range(_MAX_CHUNKS):
        if pos + 12 > end:
            return None
        length, kind = struct.unpack_from(">I4s", data, pos)
        body_end = pos + 8 + length
        if body_end + 4 > end:
            return None
        (crc,) = struct.unpack_from(">I", data, body_end)
        if isal_zlib.crc32(view[pos + 4 : body_end]) != crc:
            return None
        body = view[pos + 8 : body_end]
        pos = body_end + 4
        if header is None:
            if kind != b"IHDR":
                return None
            header = _header(body, limits)
            if header is None:
                return None
        elif kind == b"IDAT":
            if idat_over:
                return None
            idat.append(body)
        elif kind == b"IEND":
            if not idat:
                return None
            return (*header, idat)
        elif kind in _PASSIVE:
            idat_over = bool(idat)
            if kind == b"pHYs" and length != 9:
                return None
            if kind == b"tEXt":
                keyword = bytes(body[:80]).split(b"\0", 1)[0]
                text_bytes += length
                if keyword in _PILLOW_KEYS or text_bytes > PngImagePlugin.MAX_TEXT_MEMORY:
                    return None
        else:
            return None
    return None


def _header(body: memoryview, limits: Limits) -> tuple[int, int, int] | None:
    """Width, height and channels from IHDR, if the fast path reads such a picture
    and the Pillow path would not refuse it on its size."""
    if len(body) != 13:
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body
    )
    channels = _CHANNELS.get(colour)
    if channels is None or depth != 8 or compression or filtering or interlace:
        return None
    pixels = width * height
    bomb = Image.MAX_IMAGE_PIXELS
    # The refusals (too many pixels, too small, Pillow's own bomb check) are the
    # Pillow path's to make, with its messages.
    if pixels > limits.max_pixels or min(width, height) < MIN_SIDE:
        return None
    if bomb is not None and pixels > 2 * bomb:
        return None
    return width, height, channels


def _unfilter(filtered: Pixels, types: Pixels, channels: int) -> Pixels | None:
    """The scanlines with their 'none', 'sub' and 'up' filters undone (height x
    width * channels, contiguous), or None if a row has another filter."""
    height, stride = filtered.shape
    if stride < _WIDE_BYTES and height > _WIDE_BYTES:
        # 'up' rows take a Python step each: on a tall, narrow picture those steps
        # would cost more than Pillow's whole decode.
        return None
    kinds = set(np.unique(types).tolist())
    if not kinds <= {_NONE, _SUB, _UP}:
        return None
    out = np.empty((height, stride), np.uint8)
    # 'none' and 'sub' rows stand on their own; 'up' rows then follow in order, each
    # from the finished row above it.
    if kinds == {_NONE}:
        np.copyto(out, filtered)
        return out
    if _NONE in kinds:
        plain = types == _NONE
        out[plain] = filtered[plain]
    if _SUB in kinds:
        sub = np.flatnonzero(types == _SUB)
        every = len(sub) == height
        block = filtered if every else filtered[sub]
        done = _undo_sub(block, channels)
        if every:
            out = done
        else:
            out[sub] = done
    if _UP in kinds:
        add = np.add
        for i in np.flatnonzero(types == _UP).tolist():
            if i == 0:
                # The first row is 'up' from a row of zeros: as it is.
                out[0] = filtered[0]
            else:
                add(out[i - 1], filtered[i], out=out[i])
    return out


def _undo_sub(rows: Pixels, channels: int) -> Pixels:
    """'sub' rows undone: each byte plus the finished byte one pixel to its left, a
    running sum along the row. Done on the transposed picture, where a pixel column is
    one contiguous row and each step is one wide addition (numpy's cumsum along the
    row runs one byte at a time, 3-4x slower), unless the rows are too few for the
    additions to outweigh a Python step per column."""
    n, stride = rows.shape
    width = stride // channels
    if n * channels < _WIDE_BYTES:
        by_pixel = rows.reshape(n, width, channels)
        return np.cumsum(by_pixel, axis=1, dtype=np.uint8).reshape(n, stride)
    columns = np.asarray(cv2.transpose(rows.reshape(n, width, channels)), np.uint8)
    flat = columns.reshape(width, n * channels)
    add = np.add
    for j in range(1, width):
        add(flat[j - 1], flat[j], out=flat[j])
    back = np.asarray(cv2.transpose(columns.reshape(width, n, channels)), np.uint8)
    return back.reshape(n, stride)
