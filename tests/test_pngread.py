"""workers/pngread.py: the fast PNG reader gives exactly what the Pillow path gives, or
leaves the file to it; damaged files and bombs end as they did."""

from __future__ import annotations

import io
import itertools
import struct
import tracemalloc
import zlib
from collections.abc import Callable, Sequence
from functools import cache

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms
from skimage import data as skdata

from erogaki_common.errors import ErrorName, ProcessingError
from erogaki_common.images import ImageError, Limits
from workers import pipeline, png, pngread
from workers.imageops import drawn

Pixels = NDArray[np.uint8]
LIMITS = Limits()
SIGNATURE = b"\x89PNG\r\n\x1a\n"
NONE, SUB, UP, AVG, PAETH = range(5)
Outcome = tuple[object, ...]


def outcome(
    split: Callable[[bytes, Limits], tuple[Pixels, Pixels | None]],
    data: bytes,
    limits: Limits = LIMITS,
) -> Outcome:
    """What a split gives: the picture's arrays (dtype, shape, bytes) or the error's name."""
    try:
        rgb, alpha = split(data, limits)
    except ProcessingError as e:
        return ("error", e.name)
    assert rgb.flags.c_contiguous
    planes = (rgb,) if alpha is None else (rgb, alpha)
    return ("picture", *((p.dtype, p.shape, p.tobytes()) for p in planes))


def fast(data: bytes, limits: Limits = LIMITS) -> tuple[Pixels, Pixels | None]:
    got = pngread.read(data, limits)
    assert got is not None, "the fast path declined"
    return got


def same_as_pillow(data: bytes, limits: Limits = LIMITS) -> bool:
    """The pipeline's answer is the Pillow path's; returns whether the fast path read it."""
    expected = outcome(pipeline._split_pillow, data, limits)
    assert outcome(pipeline._split, data, limits) == expected
    return pngread.read(data, limits) is not None


# --- PNGs written here, with any filter per row, any chunks -------------------------


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def ihdr(w: int, h: int, colour: int = 2, depth: int = 8, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace))


def filtered(pixels: Pixels, filters: Sequence[int]) -> bytes:
    """Scanlines with the given filter on each row (cycled), every filter of the spec."""
    h, w, c = pixels.shape
    raw = pixels.reshape(h, w * c).astype(np.int16)
    above = np.vstack([np.zeros((1, w * c), np.int16), raw[:-1]])
    left = np.hstack([np.zeros((h, c), np.int16), raw[:, :-c]])
    corner = np.hstack([np.zeros((h, c), np.int16), above[:, :-c]])
    p = left + above - corner
    pa, pb, pc = abs(p - left), abs(p - above), abs(p - corner)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, corner))
    predictors = [0 * raw, left, above, (left + above) // 2, paeth]
    out = bytearray()
    for y in range(h):
        kind = filters[y % len(filters)]
        out.append(kind)
        out += ((raw[y] - predictors[kind][y]) % 256).astype(np.uint8).tobytes()
    return bytes(out)


def build(
    pixels: Pixels,
    filters: Sequence[int] = (UP,),
    *,
    before: Sequence[bytes] = (),
    after: Sequence[bytes] = (),
    stream: bytes | None = None,
    parts: int = 3,
) -> bytes:
    """A PNG of ``pixels`` (RGB or RGBA) with ``before`` / ``after`` chunks around its
    IDATs (``stream`` split over ``parts`` of them)."""
    h, w, c = pixels.shape
    data = zlib.compress(filtered(pixels, filters), 6) if stream is None else stream
    cut = [len(data) * i // parts for i in range(parts + 1)]
    idats = [chunk(b"IDAT", data[a:b]) for a, b in itertools.pairwise(cut)]
    body = [ihdr(w, h, 6 if c == 4 else 2), *before, *idats, *after, chunk(b"IEND", b"")]
    return SIGNATURE + b"".join(body)


def noise(h: int, w: int, c: int = 3, seed: int = 0) -> Pixels:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def text(key: bytes, value: bytes = b"v") -> bytes:
    return chunk(b"tEXt", key + b"\0" + value)


@cache
def art(size: int) -> Pixels:
    return drawn.draw_art(41, (size, size), "plain").image


@cache
def photo(size: int) -> Pixels:
    coffee: Pixels = skdata.coffee()  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(
        cv2.resize(coffee, (size, size), interpolation=cv2.INTER_AREA), np.uint8
    )


def soft_alpha(h: int, w: int) -> Pixels:
    yy, xx = np.mgrid[:h, :w]
    ring = np.clip(np.hypot(yy - h / 2, xx - w / 3) * 9 - 200, 0, 255)
    return np.asarray(ring, np.uint8)


# --- what workers/png.py writes ------------------------------------------------------

DEFLATES = {"isal": png.ISAL, "libdeflate": png.LIBDEFLATE, "zlib": png._ZLIB}


@pytest.mark.parametrize("filter_name", ["none", "up", "sub"])
@pytest.mark.parametrize("deflate_name", list(DEFLATES))
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("shape", [(37, 53), (8, 8), (64, 9), (9, 300)])
def test_the_encoders_pieces_are_read_exactly(
    filter_name: str, deflate_name: str, channels: int, shape: tuple[int, int]
) -> None:
    # workers/png.py's own filter and deflates, in its own file layout with a tEXt.
    h, w = shape
    pixels = noise(h, w, channels, seed=h * w)
    pixels[h // 3 :, : w // 2] = 40  # flat areas too: long runs, repeats
    rows = pixels.reshape(h, -1)
    scanlines = png._filtered(rows, png._FILTERS[filter_name], channels)
    stream = bytes(DEFLATES[deflate_name].compress(scanlines))
    data = build(pixels, stream=stream, before=[text(b"erogaki-mask", b"exact")])
    assert same_as_pillow(data)
    rgb, alpha = fast(data)
    assert np.array_equal(rgb, pixels[..., :3])
    assert (alpha is None) == (channels == 3)
    if alpha is not None:
        assert np.array_equal(alpha, pixels[..., 3])


@pytest.mark.parametrize("size", [64, 257, 512])
@pytest.mark.parametrize("picture", ["art", "photo"])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_encode_png_is_read_exactly(size: int, picture: str, with_alpha: bool) -> None:
    rgb = art(size) if picture == "art" else photo(size)
    alpha = soft_alpha(size, size) if with_alpha else None
    for marked in (False, True):
        data = pipeline.encode_png(rgb, alpha, pipeline._EXACT_TEXT if marked else None)
        assert same_as_pillow(data)
        assert pipeline.is_marked_exact(data) == marked
        got_rgb, got_alpha = fast(data)
        assert np.array_equal(got_rgb, rgb)
        if alpha is None:
            assert got_alpha is None
        else:
            assert got_alpha is not None and np.array_equal(got_alpha, alpha)


def test_what_workers_png_writes_on_a_sub_friendly_picture_is_read_exactly() -> None:
    # A horizontal ramp: every row the same, each pixel its left neighbour plus one.
    ramp = np.broadcast_to((np.arange(300) % 256).astype(np.uint8)[None, :, None], (40, 300, 3))
    ramp = np.ascontiguousarray(ramp + noise(40, 1, 3))
    data = png.encode(ramp)
    assert same_as_pillow(data)
    assert np.array_equal(fast(data)[0], ramp)


def test_one_pixel_and_too_small_pictures_go_to_pillow_and_are_refused() -> None:
    for h, w in [(1, 1), (7, 40), (40, 7)]:
        data = png.encode(noise(h, w))
        assert not same_as_pillow(data)
        with pytest.raises(ProcessingError) as refused:
            pipeline._split(data, LIMITS)
        assert refused.value.name == ErrorName.IMAGE_TOO_SMALL


@pytest.mark.parametrize(
    "filters",
    [(NONE,), (SUB,), (UP,), (NONE, UP, UP, SUB, UP), (UP, SUB), (SUB, SUB, NONE, UP)],
)
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("shape", [(33, 21), (130, 90)])
def test_rows_of_none_sub_and_up_in_any_order_are_read_exactly(
    filters: tuple[int, ...], channels: int, shape: tuple[int, int]
) -> None:
    # Few 'sub' rows are summed along the row, many on the transposed picture.
    pixels = noise(*shape, channels, seed=len(filters))
    data = build(pixels, filters)
    assert same_as_pillow(data)
    assert np.array_equal(fast(data)[0], pixels[..., :3])


@pytest.mark.parametrize("filters", [(AVG,), (PAETH,), (UP, UP, PAETH), (NONE, AVG)])
def test_avg_and_paeth_rows_go_to_pillow(filters: tuple[int, ...]) -> None:
    pixels = noise(20, 20)
    data = build(pixels, filters)
    assert not same_as_pillow(data)
    assert np.array_equal(pipeline._split(data, LIMITS)[0], pixels)


# --- other writers' PNGs ---------------------------------------------------------


def pillow_png(pixels: Pixels, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", **options)
    return out.getvalue()


def opencv_png(pixels: Pixels, *params: int) -> bytes:
    code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, buf = cv2.imencode(".png", cv2.cvtColor(pixels, code), list(params))
    assert ok
    return bytes(buf.tobytes())


@pytest.mark.parametrize("picture", ["art", "photo", "rgba"])
def test_pillows_and_opencvs_pngs_are_read_as_pillow_reads_them(picture: str) -> None:
    pixels = {
        "art": art(96),
        "photo": photo(96),
        "rgba": np.dstack([photo(96), soft_alpha(96, 96)]),
    }[picture]
    files = [pillow_png(pixels, compress_level=level) for level in (0, 1, 6, 9)]
    files.append(opencv_png(pixels))
    for level in (1, 6):
        files.append(opencv_png(pixels, cv2.IMWRITE_PNG_COMPRESSION, level))
    for data in files:
        same_as_pillow(data)
    # OpenCV with one of the filters read here: the fast path, exactly.
    for flt in (cv2.IMWRITE_PNG_FILTER_NONE, cv2.IMWRITE_PNG_FILTER_SUB, cv2.IMWRITE_PNG_FILTER_UP):
        data = opencv_png(pixels, cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, flt)
        assert same_as_pillow(data)
        assert np.array_equal(fast(data)[0], pixels[..., :3])


# --- what changes the pixels' meaning: Pillow's path -------------------------------


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()  # starts b"Exif\0\0"


def test_files_with_colour_meta_palette_depth_or_interlace_go_to_pillow() -> None:
    pixels = photo(48)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    p3 = Image.fromarray(pixels)
    files = {
        "iCCP": pillow_png(pixels, icc_profile=srgb),
        "gAMA": build(pixels, before=[chunk(b"gAMA", struct.pack(">I", 45455))]),
        "sRGB": build(pixels, before=[chunk(b"sRGB", b"\0")]),
        "cHRM": build(pixels, before=[chunk(b"cHRM", bytes(32))]),
        "tRNS": build(pixels, before=[chunk(b"tRNS", bytes(6))]),
        "palette": pillow_png(np.asarray(p3.convert("P")).astype(np.uint8)),
        "palette rgb": _save(p3.convert("P")),
        "grey": _save(p3.convert("L")),
        "grey alpha": _save(p3.convert("LA")),
        "16-bit grey": _save(Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)),
        "16-bit rgb": _sixteen_bit(pixels),
        "interlaced": _interlaced(pixels),
        "eXIf": build(pixels, after=[chunk(b"eXIf", exif_orientation(6)[6:])]),
        "zTXt": build(pixels, before=[chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"hi"))]),
        "iTXt": build(pixels, before=[chunk(b"iTXt", b"Comment\0\0\0\0\0hi")]),
        "private": build(pixels, before=[chunk(b"prVt", b"x")]),
        "APNG": _apng(pixels),
    }
    for name, data in files.items():
        assert not same_as_pillow(data), name
    # The interlaced builder is right: Pillow reads the picture back.
    assert np.array_equal(pipeline._split(files["interlaced"], LIMITS)[0], pixels)
    # Orientation in eXIf turns the picture (so the fast path must not read it).
    assert pipeline._split(files["eXIf"], LIMITS)[0].shape == (48, 48, 3)
    tall = build(noise(40, 24), after=[chunk(b"eXIf", exif_orientation(6)[6:])])
    assert not same_as_pillow(tall)
    assert pipeline._split(tall, LIMITS)[0].shape == (24, 40, 3)


def _save(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _sixteen_bit(pixels: Pixels) -> bytes:
    h, w, _ = pixels.shape
    wide = (pixels.astype(">u2") * 257).reshape(h, -1).view(np.uint8)
    lines = np.hstack([np.zeros((h, 1), np.uint8), wide]).tobytes()
    body = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(lines))
    return SIGNATURE + chunk(b"IHDR", body) + idat + chunk(b"IEND", b"")


def _interlaced(pixels: Pixels) -> bytes:
    h, w, _ = pixels.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]  # fmt: skip
    lines = b""
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.size:
            lines += filtered(np.ascontiguousarray(sub), (NONE,))
    body = SIGNATURE + ihdr(w, h, interlace=1)
    return body + chunk(b"IDAT", zlib.compress(lines)) + chunk(b"IEND", b"")


def _apng(pixels: Pixels) -> bytes:
    out = io.BytesIO()
    frames = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    return out.getvalue()


@pytest.mark.parametrize("keyword", sorted(pngread._PILLOW_KEYS))
def test_text_under_one_of_pillows_own_keys_goes_to_pillow(keyword: bytes) -> None:
    data = build(noise(24, 40), before=[text(keyword, b"1")])
    assert not same_as_pillow(data)


def test_text_carrying_an_orientation_would_turn_the_picture() -> None:
    # Why tEXt keywords are looked at: Pillow takes EXIF from "Raw profile type exif".
    hexed = exif_orientation(6).hex()
    raw_profile = f"\nexif\n{len(hexed) // 2:8d}\n{hexed}\n".encode()
    data = build(noise(40, 24), after=[text(b"Raw profile type exif", raw_profile)])
    assert not same_as_pillow(data)
    assert pipeline._split(data, LIMITS)[0].shape == (24, 40, 3)


def test_other_text_time_and_density_chunks_are_read_fast() -> None:
    pixels = noise(30, 30)
    before = [
        text(b"Software", b"x"),
        text(b"parameters", b"a cat"),
        text(b"Comment", b""),
        chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
        chunk(b"tIME", bytes(7)),
    ]
    data = build(pixels, before=before, after=[text(b"Title", b"t")])
    assert same_as_pillow(data)
    assert np.array_equal(fast(data)[0], pixels)


# --- damaged files: the Pillow path's answer, never a crash ----------------------------


def _with_crc(data: bytes, at: int, body: bytes) -> bytes:
    """``data`` with the chunk starting at ``at`` given ``body``, its CRC made right."""
    (length,) = struct.unpack_from(">I", data, at)
    kind = data[at + 4 : at + 8]
    return data[:at] + chunk(kind, body) + data[at + 12 + length :]


def _chunk_at(data: bytes, kind: bytes, nth: int = 0) -> int:
    at, seen = 8, 0
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        if data[at + 4 : at + 8] == kind:
            if seen == nth:
                return at
            seen += 1
        at += 12 + length
    raise AssertionError(kind)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1 :]


def _damaged() -> dict[str, bytes]:
    pixels = noise(32, 24)
    good = build(pixels, before=[text(b"Software", b"erogaki")])
    rows = filtered(pixels, (UP,))
    idat = _chunk_at(good, b"IDAT", 1)
    (idat_length,) = struct.unpack_from(">I", good, idat)
    body = good[idat + 8 : idat + 8 + idat_length]
    return {
        "bad IHDR CRC": flip(good, 8 + 8 + 13),
        "bad tEXt CRC": flip(good, _chunk_at(good, b"tEXt") + 8 + 16),
        "bad IDAT CRC": flip(good, idat + 8 + idat_length),
        "bad IEND CRC": flip(good, len(good) - 1),
        "bad zlib stream": _with_crc(good, idat, body[:10] + bytes(20) + body[30:]),
        "bad adler32": build(pixels, stream=_bad_adler(zlib.compress(rows))),
        "bad zlib header": build(pixels, stream=b"\x00\x00" + zlib.compress(rows)[2:]),
        "IDAT too short": build(pixels, stream=zlib.compress(rows[: len(rows) // 2])),
        "IDAT one byte short": build(pixels, stream=zlib.compress(rows[:-1])),
        "IDAT too long": build(pixels, stream=zlib.compress(rows + rows[:500])),
        "IDAT one row long": build(pixels, stream=zlib.compress(rows + rows[: 1 + 72])),
        "garbage after the stream": build(pixels, stream=zlib.compress(rows) + b"garbage"),
        "no IDAT": SIGNATURE + ihdr(24, 32) + chunk(b"IEND", b""),
        "empty IDAT": build(pixels, stream=b"", parts=1),
        "no IEND": good[:-12],
        "cut in IEND": good[:-6],
        "cut in IDAT": good[: idat + 40],
        "cut in IHDR": good[:20],
        "signature only": SIGNATURE,
        "trailing bytes after IEND": good + b"\0" * 40,
        "IDATs split by a chunk": good[:idat] + text(b"Comment") + good[idat:],
        "IHDR not first": SIGNATURE + text(b"Comment") + good[8:],
        "IHDR too long": _with_crc(good, 8, good[16:29] + b"\0"),
        "bad filter byte": build(pixels, stream=zlib.compress(b"\x07" + rows[1:])),
        "bad compression method": _with_crc(good, 8, good[16:26] + b"\x01\0\0"),
        "bad filter method": _with_crc(good, 8, good[16:27] + b"\x01\0"),
        "bad bit depth": _with_crc(good, 8, good[16:24] + b"\x07" + good[25:29]),
        "zero width": _with_crc(good, 8, b"\0\0\0\0" + good[20:29]),
        "short pHYs": build(pixels, before=[chunk(b"pHYs", b"\0" * 5)]),
        "not a chunk name": good[:33] + chunk(b"\x01\x02\x03\x04", b"") + good[33:],
    }


def _bad_adler(stream: bytes) -> bytes:
    return stream[:-1] + bytes([stream[-1] ^ 0xFF])


@pytest.mark.parametrize("case", list(_damaged()))
def test_damaged_files_end_as_they_do_on_the_pillow_path(case: str) -> None:
    data = _damaged()[case]
    # Bytes after the zlib stream or after IEND are not read by Pillow either; every
    # other damage is left to Pillow.
    lenient = case in ("trailing bytes after IEND", "garbage after the stream")
    assert same_as_pillow(data) == lenient


def test_damaged_files_that_pillow_refuses_are_refused_with_its_error() -> None:
    damaged = _damaged()
    refused = ["bad IHDR CRC", "bad tEXt CRC", "bad zlib stream", "bad adler32", "cut in IDAT",
               "IDAT one byte short", "cut in IHDR", "no IDAT", "bad filter byte",
               "IDATs split by a chunk"]  # fmt: skip
    for case in refused:
        with pytest.raises(ProcessingError) as error:
            pipeline._split(damaged[case], LIMITS)
        assert error.value.name == ErrorName.INVALID_IMAGE, case


@pytest.mark.parametrize("seed", range(8))
def test_random_damage_ends_as_on_the_pillow_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pixels = noise(20, 24, 3 + seed % 2, seed)
    good = png.encode(pixels[..., :3], pixels[..., 3] if seed % 2 else None, {"k": "v"})
    for _ in range(40):
        data = bytearray(good)
        for at in rng.integers(0, len(data), rng.integers(1, 4)):
            data[at] = rng.integers(0, 256)
        if rng.random() < 0.3:
            data = data[: rng.integers(8, len(data))]
        same_as_pillow(bytes(data))


# --- limits and bombs ------------------------------------------------------------------


def test_a_bomb_is_refused_before_anything_is_allocated() -> None:
    # 100000 x 100000 RGBA claimed, a few bytes of stream: 40 GB if believed.
    stream = zlib.compress(bytes(1 << 20), 9)
    bomb = SIGNATURE + ihdr(100_000, 100_000, 6) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
    tracemalloc.start()
    try:
        assert pngread.read(bomb, LIMITS) is None
        with pytest.raises(ProcessingError) as refused:
            pipeline._split(bomb, LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.name == ErrorName.IMAGE_DIMENSIONS_TOO_LARGE
    assert peak < 4 << 20


def test_a_stream_longer_than_its_picture_is_never_inflated_whole() -> None:
    # 1000 x 1000 claimed (3 MB), a stream of 200 MB of zeros: the fast path stops at
    # the picture's size; Pillow reads the picture and ignores the rest.
    stream = zlib.compress(bytes(200 << 20), 9)
    bomb = SIGNATURE + ihdr(1000, 1000) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
    tracemalloc.start()
    try:
        assert pngread.read(bomb, LIMITS) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * 1001 * 3001
    same_as_pillow(bomb)


def test_the_limits_are_the_pillow_paths() -> None:
    data = png.encode(noise(40, 50))
    assert same_as_pillow(data)
    for limits, name in [
        (Limits(max_pixels=1999), ErrorName.IMAGE_DIMENSIONS_TOO_LARGE),
        (Limits(max_bytes=len(data) - 1), ErrorName.IMAGE_TOO_LARGE),
    ]:
        assert not same_as_pillow(data, limits)
        with pytest.raises(ProcessingError) as refused:
            pipeline._split(data, limits)
        assert refused.value.name == name
    assert same_as_pillow(data, Limits(max_pixels=2000, max_bytes=len(data)))


def test_a_stream_that_ends_on_a_row_boundary_is_refused_on_both_paths() -> None:
    # Pillow alone would leave the rows the stream lacks black and call it a picture.
    with pytest.raises(ImageError, match="damaged or truncated"):
        pipeline._split(_damaged()["IDAT too short"], LIMITS)


def test_tall_narrow_pictures_go_to_pillow() -> None:
    # One Python step per row would cost more than Pillow's decode.
    for shape, read_fast in [((300, 80), False), ((300, 90), True), ((256, 8), True)]:
        pixels = noise(*shape)
        assert same_as_pillow(png.encode(pixels)) == read_fast, shape


def test_adaptively_filtered_files_are_watched_as_they_inflate() -> None:
    # Mixed filters in the first rows: inflated IDAT by IDAT (ISA-L), given up at the
    # first 'avg' or 'paeth' row, however late, or at any damage.
    pixels = noise(200, 100)
    mixed = (SUB, UP, NONE, UP)
    rows = filtered(pixels, mixed)
    late_paeth = filtered(pixels, mixed[:-1] * 50 + (PAETH,))
    stream = zlib.compress(rows)
    files = {
        "mixed": build(pixels, mixed, parts=7),
        "a paeth row at row 150": build(pixels, stream=zlib.compress(late_paeth), parts=7),
        "too short": build(pixels, stream=zlib.compress(rows[:-1]), parts=7),
        "too long": build(pixels, stream=zlib.compress(rows + rows[:301]), parts=7),
        "bad adler32": build(pixels, stream=_bad_adler(stream), parts=7),
        "bad stream": build(pixels, stream=stream[:3000] + bytes(50) + stream[3050:], parts=7),
    }
    assert same_as_pillow(files.pop("mixed"))
    for name, data in files.items():
        assert not same_as_pillow(data), name
