"""Outside review of erogaki_common: the PNG row check (synthetic bytes only). The
submitter under a Redis that refuses writes is tested in tests/test_dispatch_hot_path.py."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from erogaki_common.images import ImageError, _png_rows_complete, decode

# --- the PNG row check -----------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, idats: list[bytes], depth: int = 8, colour: int = 2) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = b"".join(_chunk(b"IDAT", part) for part in idats)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + body + _chunk(b"IEND", b"")


def test_row_check_of_a_small_picture_with_a_zlib_bomb_inflates_only_its_rows() -> None:
    # 64x48 RGB needs 9264 bytes; its IDAT inflates to 20 MB of zeros (19 KB on the
    # wire). The check inflated a whole 16 KiB piece of input at once: 16 MB of
    # output held and about 40 ms of CPU per upload, for rows it never needed.
    data = _png(64, 48, [zlib.compress(bytes(20_000_000), 9)])
    assert decode(data).size == (64, 48)  # Pillow reads its rows and stops
    tracemalloc.start()
    try:
        assert _png_rows_complete(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_row_check_takes_legitimate_files_and_refuses_a_row_short_stream() -> None:
    rng = np.random.default_rng(0)
    rows = [b"\0" + rng.integers(0, 256, 64 * 3, np.uint8).tobytes() for _ in range(48)]
    whole = zlib.compress(b"".join(rows))
    # One IDAT, split at odd places with empty ones between, a byte each, extra
    # bytes after the stream: all complete.
    bytewise = [whole[i : i + 1] for i in range(len(whole))]
    odd = [b"", whole[:1], b"", whole[1:7], whole[7:], b""]
    for parts in ([whole], odd, bytewise, [whole + b"trailing"]):
        data = _png(64, 48, parts)
        assert _png_rows_complete(data)
        assert decode(data).size == (64, 48)
    # A whole zlib stream of 47 rows, or 47 rows and a second stream: refused.
    two = [zlib.compress(b"".join(rows[:40])), zlib.compress(b"".join(rows[40:]))]
    for parts in ([zlib.compress(b"".join(rows[:47]))], two):
        with pytest.raises(ImageError):
            decode(_png(64, 48, parts))
    # Pillow's own files of every mode it writes.
    picture = Image.fromarray(rng.integers(0, 256, (37, 53, 4), np.uint8), "RGBA")
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        out = io.BytesIO()
        picture.convert(mode).save(out, "PNG")
        assert _png_rows_complete(out.getvalue()), mode
