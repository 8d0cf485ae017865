"""workers/png.py: PNG files that Pillow and OpenCV read back exactly, as small as Pillow's."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from functools import cache

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, PngImagePlugin
from skimage import data as skdata

from workers import pipeline, png
from workers.imageops import drawn

Pixels = NDArray[np.uint8]


def _pillow_reads(data: bytes) -> Pixels:
    image = Image.open(io.BytesIO(data))
    image.load()
    return np.asarray(image)


def _opencv_reads(data: bytes) -> Pixels:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert bgr is not None
    code = cv2.COLOR_BGRA2RGBA if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return np.asarray(cv2.cvtColor(bgr, code))


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        at += 12 + length
    assert at == len(data)
    return out


@cache
def _art(seed: int, size: int, theme: str = "plain") -> Pixels:
    return drawn.draw_art(seed, (size, size), theme).image


@cache
def _photo(size: int) -> Pixels:
    coffee: Pixels = skdata.coffee()  # type: ignore[no-untyped-call]
    resized = cv2.resize(coffee, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(resized)


def _jpeg(rgb: Pixels, quality: int) -> Pixels:
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)


def _pillow_png(rgb: Pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG", compress_level=1)
    return out.getvalue()


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize(
    "shape", [(1, 1), (1, 333), (257, 1), (3, 5), (67, 131), (129, 64), (601, 1023)]
)
def test_noise_reads_back_exactly(shape: tuple[int, int], channels: int) -> None:
    rng = np.random.default_rng(shape[0] * 7919 + shape[1] + channels)
    pixels = rng.integers(0, 256, (*shape, channels), dtype=np.uint8)
    data = png.encode(pixels)
    assert np.array_equal(_pillow_reads(data), pixels)
    assert np.array_equal(_opencv_reads(data), pixels)
    assert Image.open(io.BytesIO(data)).mode == ("RGBA" if channels == 4 else "RGB")


@pytest.mark.parametrize("picture", ["drawn", "drawn jpeg", "photo"])
def test_pictures_read_back_exactly_with_their_alpha(picture: str) -> None:
    rgb = {"drawn": _art(3, 640), "drawn jpeg": _jpeg(_art(3, 640), 85), "photo": _photo(640)}[
        picture
    ]
    # Odd sizes: one row and one column fewer.
    for pixels in (rgb, np.ascontiguousarray(rgb[:-1, 1:])):
        data = png.encode(pixels)
        assert np.array_equal(_pillow_reads(data), pixels)
        assert np.array_equal(_opencv_reads(data), pixels)
    # The workers hand the alpha channel over apart from the colours.
    alpha = np.linspace(0, 255, rgb.shape[1]).astype(np.uint8)[None, :].repeat(rgb.shape[0], 0)
    rgba = np.dstack([rgb, alpha])
    data = png.encode(rgb, alpha)
    assert data == png.encode(rgba)
    assert data == png.encode(rgba[..., :3], rgba[..., 3])  # strided views
    assert np.array_equal(_pillow_reads(data), rgba)
    assert np.array_equal(_opencv_reads(data), rgba)


def test_views_and_large_pictures_read_back_exactly() -> None:
    # A strided view (every other column) and a picture of many IDAT chunks.
    big = np.asarray(
        cv2.resize(_art(5, 640), (2900, 1700), interpolation=cv2.INTER_NEAREST), np.uint8
    )
    view = big[:, ::2]
    assert not view.flags.c_contiguous
    data = png.encode(view)
    assert np.array_equal(_pillow_reads(data), view)
    assert np.array_equal(_opencv_reads(data), view)
    noisy = np.random.default_rng(1).integers(0, 256, (1500, 1100, 3), dtype=np.uint8)
    data = png.encode(noisy)
    idat = [body for kind, body in _chunks(data) if kind == b"IDAT"]
    assert len(idat) > 10
    assert np.array_equal(_pillow_reads(data), noisy)


def test_file_layout() -> None:
    rgb = _art(3, 640)
    data = png.encode(rgb, text={"erogaki-mask": "exact", "Software": "erogaki"})
    chunks = _chunks(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[:3] == [b"IHDR", b"tEXt", b"tEXt"]
    assert kinds[-1] == b"IEND" and chunks[-1][1] == b""
    assert set(kinds[3:-1]) == {b"IDAT"}
    assert chunks[0][1] == struct.pack(">IIBBBBB", 640, 640, 8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    scanlines = np.frombuffer(raw, np.uint8).reshape(640, 1 + 640 * 3)
    # One filter for every row, the one the plan names.
    filter_type = {"none": 0, "up": 2}[png.plan(rgb).filter]
    assert set(scanlines[:, 0].tolist()) == {filter_type}
    image = Image.open(io.BytesIO(data))
    assert isinstance(image, PngImagePlugin.PngImageFile)
    assert image.text == {"erogaki-mask": "exact", "Software": "erogaki"}


def test_the_exact_mask_mark_is_found_in_either_way_of_writing_it() -> None:
    rgb = _art(3, 320)
    written = png.encode(rgb, text={"erogaki-mask": "exact"})
    added = pipeline.mark_exact(png.encode(rgb))
    assert written == added
    assert pipeline.is_marked_exact(written)
    assert not pipeline.is_marked_exact(png.encode(rgb))
    assert np.array_equal(_pillow_reads(added), rgb)
    assert np.array_equal(_opencv_reads(added), rgb)


def test_the_plan_fits_the_picture() -> None:
    # Flat colours repeat exactly: no filter, ISA-L.
    assert png.plan(_art(11, 768)) == png.Plan("none", png.ISAL)
    # Smooth photographs: "up", ISA-L.
    assert png.plan(_photo(768)) == png.Plan("up", png.ISAL)
    # Grey screentone through JPEG: ISA-L's files would be 15-30 % larger than Pillow's.
    manga = _jpeg(_art(14, 768, "manga"), 80)
    assert png.plan(manga).deflate == png.LIBDEFLATE


def test_isal_is_kept_where_it_loses_to_zlib_by_less_than_the_workers_allow() -> None:
    # Colour art through JPEG: ISA-L's file is a little larger than zlib's on "up"
    # (what OpenCV writes), which sends the choice to Pillow's size of the sample.
    rgb = _jpeg(_art(16, 768, "pastel"), 85)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    ok, opencv = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    assert ok
    assert png.plan(rgb) == png.Plan("up", png.ISAL)
    ours = len(png.encode(rgb))
    assert len(opencv) < ours <= 1.10 * len(_pillow_png(rgb))


def test_grey_screentone_with_alpha() -> None:
    rgb = _jpeg(_art(19, 768, "manga"), 80)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[100:300, 200:500] = 0
    rgba = np.dstack([rgb, alpha])
    data = png.encode(rgb, alpha)
    assert np.array_equal(_pillow_reads(data), rgba)
    assert len(data) <= 1.10 * len(_pillow_png(rgba))


@pytest.mark.parametrize(
    "picture",
    [
        "drawn 12",
        "drawn 13 pink",
        "drawn 14 manga",
        "drawn 12 jpeg 90",
        "manga 19 jpeg 80",
        "photo",
    ],
)
def test_files_are_no_more_than_a_tenth_larger_than_pillows(picture: str) -> None:
    rgb = {
        "drawn 12": _art(12, 768),
        "drawn 13 pink": _art(13, 768, "pink"),
        "drawn 14 manga": _art(14, 768, "manga"),
        "drawn 12 jpeg 90": _jpeg(_art(12, 768), 90),
        "manga 19 jpeg 80": _jpeg(_art(19, 768, "manga"), 80),
        "photo": _photo(768),
    }[picture]
    assert len(png.encode(rgb)) <= 1.10 * len(_pillow_png(rgb))


@pytest.mark.parametrize(
    ("pixels", "alpha", "text"),
    [
        (np.zeros((4, 4, 3), np.uint16), None, None),
        (np.zeros((4, 4), np.uint8), None, None),
        (np.zeros((4, 4, 2), np.uint8), None, None),
        (np.zeros((0, 4, 3), np.uint8), None, None),
        (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4), np.uint8), None),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), None),
        (np.zeros((4, 4, 3), np.uint8), None, {"": "empty keyword"}),
        (np.zeros((4, 4, 3), np.uint8), None, {" edge": "spaces"}),
        (np.zeros((4, 4, 3), np.uint8), None, {"k": "a\x00b"}),
        (np.zeros((4, 4, 3), np.uint8), None, {"x" * 80: "too long"}),
    ],
)
def test_what_it_refuses(pixels: Pixels, alpha: Pixels | None, text: dict[str, str] | None) -> None:
    with pytest.raises(ValueError):
        png.encode(pixels, alpha, text)


@pytest.mark.parametrize("key", ["a  b", "a\nb", "a\x01b", "a\xa0b", "\x7f", "日本", "tab\t"])
def test_keywords_pngcheck_would_reject_are_refused(key: str) -> None:
    # Consecutive spaces, control characters, Latin-1's no-break space and DEL are not
    # printable keyword characters: written, they made files that pngcheck rejects.
    with pytest.raises(ValueError, match="keyword"):
        png.encode(np.zeros((2, 2, 3), np.uint8), text={key: "x"})


def test_text_values_readers_would_lose_or_cannot_hold_are_refused() -> None:
    pixels = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="not Latin-1"):
        png.encode(pixels, text={"Comment": "日本"})
    # libpng (OpenCV) drops text chunks over 8 MB by default with an out-of-memory warning.
    with pytest.raises(ValueError, match="over"):
        png.encode(pixels, text={"Comment": "x" * 8_000_000})
    with pytest.raises(TypeError):
        png.encode(pixels, text={"Comment": 5})  # type: ignore[dict-item]
    # A value may carry newlines and any other Latin-1 character.
    data = png.encode(pixels, text={"Comment": "caf\xe9\nline two \xff"})
    image = Image.open(io.BytesIO(data))
    assert isinstance(image, PngImagePlugin.PngImageFile)
    assert image.text == {"Comment": "caf\xe9\nline two \xff"}


def test_what_is_not_an_array_or_too_wide_is_refused() -> None:
    with pytest.raises(TypeError):
        png.encode([[[1, 2, 3]]])  # type: ignore[arg-type]
    # IHDR holds width and height in 31 bits; refused before any copy (the view costs
    # no memory, a copy of it 6 GiB).
    too_wide = np.broadcast_to(np.uint8(0), (1, 1 << 31, 3))
    with pytest.raises(ValueError, match="at most"):
        png.encode(too_wide)


def _between_bands(inside: Pixels, outside: Pixels) -> Pixels:
    """``outside`` with the rows the plan's sample bands (and the rows above them) take
    from ``inside``: a picture built to mislead the sample."""
    out = outside.copy()
    for start in png._band_starts(out.shape[0]):
        out[max(start - 1, 0) : start + png._SAMPLE_ROWS] = inside[
            max(start - 1, 0) : start + png._SAMPLE_ROWS
        ]
    return out


@pytest.mark.parametrize(
    "picture", ["photo between flat bands", "screentone jpeg between drawn bands"]
)
def test_a_sample_unlike_the_picture_does_not_decide_its_file(picture: str) -> None:
    # Were the sample believed: "none" for the photograph (1.66x Pillow's file), ISA-L
    # for the JPEG'd screentone (1.26x).
    art, manga = _art(7, 768), _jpeg(_art(8, 768, "manga"), 80)
    flat = np.full_like(art, 90)
    pixels = {
        "photo between flat bands": _between_bands(flat, _photo(768)),
        "screentone jpeg between drawn bands": _between_bands(art, manga),
    }[picture]
    data = png.encode(pixels)
    assert len(data) <= 1.10 * len(_pillow_png(pixels))
    assert np.array_equal(_pillow_reads(data), pixels)


def test_rows_smooth_only_along_themselves_get_the_sub_filter() -> None:
    # Each row a line through a few random values, unlike the rows above it: only "sub"
    # (each byte against its left neighbour) makes them small; "up" and "none" made
    # files 2-5x Pillow's.
    rng = np.random.default_rng(4)
    knots = rng.integers(0, 256, (512, 6, 3), dtype=np.uint8)
    pixels = np.asarray(cv2.resize(knots, (512, 512), interpolation=cv2.INTER_LINEAR), np.uint8)
    data = png.encode(pixels)
    assert len(data) <= 1.10 * len(_pillow_png(pixels))
    assert png.plan(pixels).filter == "sub"
    raw = zlib.decompress(b"".join(body for kind, body in _chunks(data) if kind == b"IDAT"))
    assert set(np.frombuffer(raw, np.uint8).reshape(512, -1)[:, 0].tolist()) == {1}
    assert np.array_equal(_pillow_reads(data), pixels)
    assert np.array_equal(_opencv_reads(data), pixels)


@pytest.mark.parametrize("channels", [3, 4])
def test_gradients_stay_small(channels: int) -> None:
    # Files of a few KiB, where the sample's bands' first rows decide the trials: a
    # horizontal gradient sampled best with "sub" but is 0.6x the file with "up".
    x = np.linspace(0, 255, 768)
    ramp = np.stack([x, x[::-1], x / 2, 255 - x / 3][:channels], -1).astype(np.uint8)
    horizontal = np.ascontiguousarray(np.broadcast_to(ramp, (768, 768, channels)))
    for pixels in (horizontal, np.ascontiguousarray(horizontal.transpose(1, 0, 2))):
        data = png.encode(pixels)
        # Before, "sub" made the horizontal one 1.6x Pillow's file. ISA-L's own limit on
        # runs of zeros leaves up to 1.3x on files of 10 KiB: a few KiB allowed.
        assert len(data) <= 1.10 * len(_pillow_png(pixels)) + 4096
        assert np.array_equal(_pillow_reads(data), pixels)


@pytest.mark.parametrize("with_alpha", [False, True])
def test_no_copy_of_the_whole_picture_is_made(with_alpha: bool) -> None:
    # A view of a larger array, and RGB with its alpha apart (how the workers hand
    # results over), are taken a strip at a time: before, a contiguous copy, an RGBA
    # copy and a filtered copy of the whole picture were made (peak 2-3x the picture).
    big = np.asarray(
        cv2.resize(_photo(640), (2050, 2048), interpolation=cv2.INTER_LINEAR), np.uint8
    )
    pixels = big[:, 1:-1]
    assert not pixels.flags.c_contiguous
    alpha = np.full(pixels.shape[:2], 200, np.uint8) if with_alpha else None
    tracemalloc.start()
    try:
        data = png.encode(pixels, alpha)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    picture_bytes = pixels.shape[0] * pixels.shape[1] * (4 if with_alpha else 3)
    # Two copies of the file (the stream and the PNG around it) and a few strips.
    assert peak < 2 * len(data) + picture_bytes // 4, (peak, len(data), picture_bytes)
    expected = pixels if alpha is None else np.dstack([pixels, alpha])
    assert np.array_equal(_pillow_reads(data), expected)


@pytest.mark.parametrize("channels", [3, 4])
def test_noise_is_left_unfiltered(channels: int) -> None:
    # Every filter compresses noise within 0.1 % of the others; a filter the reader
    # must undo (Pillow decoded "sub" noise 1.2x slower) is not worth that.
    pixels = np.random.default_rng(9).integers(0, 256, (700, 500, channels), dtype=np.uint8)
    assert png.plan(pixels).filter == "none"
