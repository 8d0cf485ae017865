"""Settings, the error JSON and image decoding: the pure parts of erogaki_common."""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from erogaki_common.errors import ConfigError, ErrorInfo, ErrorName
from erogaki_common.images import ImageError, Limits, decode, encode_png, sniff_format
from erogaki_common.keys import keyevent_channel
from erogaki_common.settings import parse_settings, redis_db_from_url
from erogaki_common.submit import missing_flags

# --- settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("redis://localhost:6379", 0),
        ("redis://localhost:6379/0", 0),
        ("redis://:secret@cache.internal:6380/7", 7),
        ("rediss://user:pw@managed.example.com:6380/12", 12),
        ("redis://localhost?db=3", 3),
        ("unix:///run/redis.sock?db=4", 4),
    ],
)
def test_db_index_comes_from_the_url(url: str, db: int) -> None:
    assert redis_db_from_url(url) == db
    assert parse_settings({"REDIS_URL": url}).redis_db == db


def test_keyevent_channel_names_the_db() -> None:
    assert keyevent_channel(7) == "__keyevent@7__:set"


def test_defaults() -> None:
    settings = parse_settings({})
    assert settings.redis_url == "redis://localhost:6379/0" and not settings.redis_url_set
    assert settings.backend == "cpu"
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.job_timeout == 300.0


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://localhost/two"}, "REDIS_URL"),
        ({"EROGAKI_BACKEND": "gpu"}, "EROGAKI_BACKEND"),
        ({"EROGAKI_JOB_TIMEOUT": "soon"}, "EROGAKI_JOB_TIMEOUT"),
        ({"EROGAKI_JOB_TIMEOUT": "-1"}, "EROGAKI_JOB_TIMEOUT"),
        ({"EROGAKI_MAX_IMAGE_BYTES": "1.5"}, "EROGAKI_MAX_IMAGE_BYTES"),
        ({"EROGAKI_MAX_ATTEMPTS": "0"}, "EROGAKI_MAX_ATTEMPTS"),
        ({"DISCORD_API_BASE": "discord.com/api"}, "DISCORD_API_BASE"),
    ],
)
def test_bad_values_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        parse_settings(env)


@pytest.mark.parametrize(
    ("flags", "missing"), [("", "E$"), ("AKE", ""), ("Kl", "E$"), ("E", "$"), ("K$", "E")]
)
def test_notification_flags_are_only_added(flags: str, missing: str) -> None:
    assert missing_flags(flags) == missing


# --- the error JSON --------------------------------------------------------------


def test_error_json_round_trip() -> None:
    info = ErrorInfo("DeepCreamPy-erogaki-wrapper", "gpu-1", ErrorName.NO_MASKED_REGIONS_FOUND, "x")
    data = json.loads(info.to_json())
    assert data == {
        "component": "DeepCreamPy-erogaki-wrapper",
        "instance": "gpu-1",
        "name": "NoMaskedRegionsFound",
        "description": "x",
    }
    assert ErrorInfo.from_json(info.to_json()) == info


@pytest.mark.parametrize(
    ("raw", "description"),
    [
        (b"\xff\xfe not json", "not json"),
        (b"Segmentation fault", "Segmentation fault"),
        (b"[1, 2]", "[1, 2]"),
        (b'{"name": "CudaOOM"}', "The worker reported CudaOOM."),
        (b'{"description": 42}', "42"),
        (b"", "The worker reported an error it did not describe."),
    ],
)
def test_malformed_foreign_errors_stay_readable(raw: bytes, description: str) -> None:
    info = ErrorInfo.from_json(raw)
    assert info.name is ErrorName.UNKNOWN
    assert description in info.description
    assert info.format()  # renders without raising


def test_unknown_name_is_kept_for_display() -> None:
    info = ErrorInfo.from_json(b'{"component":"c","instance":"i","name":"Oops","description":"d"}')
    assert info.name is ErrorName.UNKNOWN and info.raw_name == "Oops"
    assert info.format().startswith("Oops: d")


def test_overlong_descriptions_are_cut() -> None:
    info = ErrorInfo.from_json(json.dumps({"description": "x" * 10_000}).encode())
    assert len(info.description) <= 300


# --- images ----------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    rgb = np.stack([x, x[::-1], np.full_like(x, 90)], axis=-1)
    return Image.fromarray(rgb).convert(mode)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_formats_are_sniffed_from_bytes(fmt: str) -> None:
    data = encode(gradient(), fmt)
    assert sniff_format(data) == fmt
    assert decode(data).size == (64, 48)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"", ErrorName.INVALID_IMAGE),
        (b"<!DOCTYPE html><html></html>", ErrorName.INVALID_IMAGE),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, ErrorName.INVALID_IMAGE),
    ],
)
def test_garbage_is_refused(data: bytes, name: ErrorName) -> None:
    with pytest.raises(ImageError) as caught:
        decode(data)
    assert caught.value.name is name


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused(fmt: str) -> None:
    data = encode(gradient(size=(256, 256)), fmt)
    with pytest.raises(ImageError, match="damaged or truncated"):
        decode(data[: len(data) // 2])


def _png_with_rows(width: int, height: int, rows: bytes, interlace: int = 0) -> bytes:
    """A well-formed RGB PNG (CRCs right, IEND present) around the given filtered rows."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("kept", [1, 32, 63])
def test_png_whose_pixel_stream_ends_on_a_row_boundary_is_refused(kept: int) -> None:
    # Pillow decodes such a file without complaint and leaves the missing rows
    # black: a worker would answer half a picture as a success.
    pixels = np.random.default_rng(kept).integers(1, 255, (64, 64, 3), dtype=np.uint8)
    rows = b"".join(b"\0" + pixels[y].tobytes() for y in range(64))
    assert np.array_equal(np.asarray(decode(_png_with_rows(64, 64, rows))), pixels)
    with pytest.raises(ImageError, match="damaged or truncated"):
        decode(_png_with_rows(64, 64, rows[: kept * (1 + 64 * 3)]))


def test_interlaced_and_low_bit_pngs_still_decode_whole() -> None:
    # The completeness check counts Adam7 passes and sub-byte rows exactly: an
    # off-by-one there would refuse good files.
    for image, options in [
        (gradient(size=(61, 37)), {"interlace": 1}),
        (gradient(size=(61, 37)).convert("1"), {}),
        (
            gradient(size=(61, 37)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4),
            {"bits": 2},
        ),
        (gradient(size=(9, 13)).convert("L"), {"interlace": 1}),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, "PNG", **options)
        assert decode(buffer.getvalue()).size == image.size


def test_byte_limit_checked_before_decoding() -> None:
    data = encode(gradient(), "PNG")
    with pytest.raises(ImageError) as caught:
        decode(data, Limits(max_bytes=len(data) - 1))
    assert caught.value.name is ErrorName.IMAGE_TOO_LARGE


def test_decompression_bomb_is_refused_without_decoding() -> None:
    # 30000x30000 one-bit pixels: a few KiB on disk, 2.7 GB as RGB.
    bomb = encode(Image.new("1", (30000, 30000)), "PNG")
    assert len(bomb) < 200_000
    started = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        decode(bomb)
    assert caught.value.name is ErrorName.IMAGE_DIMENSIONS_TOO_LARGE
    assert time.perf_counter() - started < 1.0  # refused from the header alone


def test_tiny_images_are_refused() -> None:
    with pytest.raises(ImageError) as caught:
        decode(encode(Image.new("RGB", (1, 1)), "PNG"))
    assert caught.value.name is ErrorName.IMAGE_TOO_SMALL


def test_exif_orientation_is_applied() -> None:
    image = gradient(size=(64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode(encode(image, "JPEG", exif=exif.tobytes()))
    assert decoded.size == (32, 64)


def test_alpha_is_kept() -> None:
    rgba = gradient("RGBA")
    rgba.putalpha(128)
    decoded = decode(encode(rgba, "PNG"))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((3, 3))[3] == 128  # type: ignore[index]


@pytest.mark.parametrize(
    ("mode", "expected"), [("L", "RGB"), ("P", "RGB"), ("LA", "RGBA"), ("1", "RGB")]
)
def test_other_modes_become_8_bit_rgb(mode: str, expected: str) -> None:
    assert decode(encode(gradient(mode), "PNG")).mode == expected


def test_16_bit_png_is_scaled_not_clipped() -> None:
    values = np.full((16, 16), 40000, dtype=np.uint16)
    decoded = decode(encode(Image.fromarray(values), "PNG"))
    assert decoded.mode == "RGB"
    assert abs(decoded.getpixel((0, 0))[0] - 40000 / 257) <= 1  # type: ignore[index]


def test_cmyk_jpeg_becomes_rgb() -> None:
    decoded = decode(encode(gradient("CMYK"), "JPEG"))
    assert decoded.mode == "RGB"


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    decoded = decode(buf.getvalue())
    r, _, b = decoded.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
    assert r > 200 and b < 50


def test_png_output_round_trips_pixels() -> None:
    image = gradient("RGBA")
    assert np.array_equal(np.asarray(decode(encode_png(image))), np.asarray(image))


# --- secrets never shown ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/0", "redis://***@cache:6379/0"),
        (
            "rediss://user:s3cret@managed.example.com:6380/2",
            "rediss://***@managed.example.com:6380/2",
        ),
        ("redis://cache:6379/0?password=s3cret", "redis://cache:6379/0?password=***"),
        ("redis://cache/0?db=1&password=s3cret&x=1", "redis://cache/0?db=1&password=***&x=1"),
        ("unix:///run/redis.sock?db=4&password=s3cret", "unix:///run/redis.sock?db=4&password=***"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://a:p@ss@cache:6379", "redis://***@cache:6379"),
    ],
)
def test_safe_url_hides_every_credential(url: str, shown: str) -> None:
    from erogaki_common.redis_io import safe_url

    assert safe_url(url) == shown
    assert "s3cret" not in safe_url(url)


# --- odd inputs at the edges ------------------------------------------------------


def test_one_byte_over_the_limit_reads_as_over() -> None:
    from erogaki_common.images import check_bytes

    limit = 25 * 1024 * 1024
    data = b"\x89PNG\r\n\x1a\n" + bytes(limit + 1 - 8)
    with pytest.raises(ImageError) as caught:
        check_bytes(data, Limits(max_bytes=limit))
    text = caught.value.description
    size, _, rest = text.partition(";")
    # Whatever the units, the two numbers shown must differ.
    assert re.sub(r"\D", "", size) != re.sub(r"\D", "", rest.split("(")[0]), text
    assert "26,214,401" in text


def test_avif_is_accepted() -> None:
    buf = io.BytesIO()
    picture = Image.new("RGB", (64, 48), (30, 120, 200))
    picture.paste((250, 250, 0), (10, 10, 40, 30))
    picture.save(buf, "AVIF", quality=90)
    data = buf.getvalue()
    assert sniff_format(data) == "AVIF"
    decoded = decode(data)
    assert decoded.size == (64, 48) and decoded.mode == "RGB"
    # Lossy, but the yellow block is still where it was.
    r, g, b = decoded.getpixel((25, 20))  # type: ignore[misc]
    assert r > 200 and g > 200 and b < 60


def _p3_profile() -> bytes:
    """A Display P3 ICC profile (v2, matrix and gamma 2.2), built here byte by byte."""
    import struct

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    def curve(gamma: float) -> bytes:
        return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)

    name = b"Display P3 (drawn)\0"
    tags = [
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(name)) + name + bytes(78)),
        (b"cprt", b"text" + bytes(4) + b"none\0"),
        (b"wtpt", xyz(0.964203, 1.0, 0.824905)),
        # The P3 primaries, adapted to D50 as ICC wants them.
        (b"rXYZ", xyz(0.515102, 0.241196, -0.001053)),
        (b"gXYZ", xyz(0.291965, 0.692236, 0.041885)),
        (b"bXYZ", xyz(0.157153, 0.066574, 0.784378)),
        (b"rTRC", curve(2.2)),
        (b"gTRC", curve(2.2)),
        (b"bTRC", curve(2.2)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = data = b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", offset + len(data)) + bytes(4) + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ " + bytes(12) + b"acsp" + bytes(28)
        + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48)
    )  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + data


def test_a_display_p3_picture_keeps_its_colours() -> None:
    from PIL import ImageCms

    p3 = _p3_profile()
    picture = Image.new("RGBA", (16, 16), (200, 100, 50, 255))
    picture.paste((0, 255, 0, 128), (0, 0, 8, 8))
    buf = io.BytesIO()
    picture.save(buf, "PNG", icc_profile=p3)
    decoded = decode(buf.getvalue())
    # The same colour in sRGB, as a colour-managed viewer shows the input.
    profile = ImageCms.ImageCmsProfile(io.BytesIO(p3))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    expected = ImageCms.profileToProfile(Image.new("RGB", (1, 1), (200, 100, 50)), profile, srgb)
    assert expected is not None
    r, g, b, a = decoded.getpixel((12, 12))  # type: ignore[misc]
    assert abs(r - 216) <= 2 and abs(g - 93) <= 2 and abs(b - 24) <= 2  # not the raw 200,100,50
    assert (r, g, b) == expected.getpixel((0, 0))
    assert a == 255
    # Pure green, the mask colour, and the alpha channel come through unchanged.
    assert decoded.getpixel((2, 2)) == (0, 255, 0, 128)


def test_an_srgb_profile_changes_nothing() -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 100, 50)).save(buf, "PNG", icc_profile=srgb)
    assert decode(buf.getvalue()).getpixel((3, 3)) == (200, 100, 50)
