"""Image input checks and decoding, PNG output.

Inputs are PNG, JPEG, WebP, GIF (first frame) or AVIF (which Discord
accepts); the format is sniffed from the bytes, never trusted from a name or
content type. Byte and pixel limits are
checked before any pixel is decoded, so a decompression bomb costs nothing.
Decoded images are 8-bit RGB, or RGBA when the input has transparency; EXIF
orientation is applied, and pixels tagged with another RGB colour profile
(Display P3 from phones, Adobe RGB) are converted to sRGB: the PNG written
carries no profile, so viewers read it as sRGB. Output is always PNG: the
green mask that hent-AI hands to DeepCreamPy only survives lossless formats.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

from erogaki_common.errors import ErrorName, ProcessingError

# The smallest side the workers accept: below this nothing can be detected.
MIN_SIDE = 8


class ImageError(ProcessingError):
    """The input image is unusable; ``name`` says why."""

    name = ErrorName.INVALID_IMAGE


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000


def sniff_format(data: bytes) -> str | None:
    """The image format from its magic bytes, or None if it is not one we take."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    # ISO BMFF: a leading `ftyp` box whose brands name AVIF (still or sequence).
    if data[4:8] == b"ftyp" and (b"avif" in data[8:32] or b"avis" in data[8:32]):
        return "AVIF"
    return None


# The formats named in messages, in the words users know them by.
FORMATS_TEXT = "PNG, JPEG, WebP, GIF or AVIF"


def _sizes(size: int, limit: int) -> tuple[str, str]:
    """Both sizes in MiB, or in bytes where one decimal would show them equal."""
    mib = 1024 * 1024
    shown = f"{size / mib:.1f} MiB", f"{limit / mib:.1f} MiB"
    if shown[0] != shown[1]:
        return shown
    return f"{size:,} bytes", f"{limit:,} bytes ({shown[1]})"


def check_bytes(data: bytes, limits: Limits) -> str:
    """Cheap checks a submitter runs before queueing: size and format. Returns the format."""
    if not data:
        raise ImageError("The file is empty.", ErrorName.INVALID_IMAGE)
    if len(data) > limits.max_bytes:
        size, limit = _sizes(len(data), limits.max_bytes)
        raise ImageError(f"The image is {size}; the limit is {limit}.", ErrorName.IMAGE_TOO_LARGE)
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError(f"The file is not a {FORMATS_TEXT} image.", ErrorName.INVALID_IMAGE)
    return fmt


def decode(data: bytes, limits: Limits = Limits()) -> Image.Image:
    """Decode ``data`` into an RGB or RGBA image, checking every limit first."""
    fmt = check_bytes(data, limits)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's bomb warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageError(
                    f"The image is {width}x{height} pixels; the limit is "
                    f"{limits.max_pixels / 1e6:.0f} megapixels.",
                    ErrorName.IMAGE_DIMENSIONS_TOO_LARGE,
                )
            if min(width, height) < MIN_SIDE:
                raise ImageError(
                    f"The image is {width}x{height} pixels; both sides must be at least "
                    f"{MIN_SIDE}.",
                    ErrorName.IMAGE_TOO_SMALL,
                )
            image.seek(0)  # animated GIF/WebP: the first frame
            image.load()
            if fmt == "PNG" and not _png_rows_complete(data):
                # Pillow stops quietly where the pixel stream stops on a row
                # boundary and leaves the rest black: refuse, don't answer half a picture.
                raise ValueError("PNG pixel data ends early")
            icc = image.info.get("icc_profile")
            return _to_srgb(_to_8bit(ImageOps.exif_transpose(image)), icc)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(
            "The image's dimensions are too large to decode safely.",
            ErrorName.IMAGE_DIMENSIONS_TOO_LARGE,
        ) from None
    except Exception:
        # Truncated files, bad chunks, unsupported modes: Pillow raises many types.
        raise ImageError(
            f"The {fmt} file is damaged or truncated and cannot be decoded.",
            ErrorName.INVALID_IMAGE,
        ) from None


# Channels per PNG colour type (grey, RGB, palette, grey+alpha, RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7 passes: (x start, y start, x step, y step).
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def _png_rows_complete(data: bytes) -> bool:
    """Whether the first frame's compressed pixel data holds every row.

    Inflates the IDAT stream once, counting bytes without keeping them (a few
    ms per megapixel). An unparseable file answers True: Pillow has judged it.
    """
    try:
        width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
        bits = _PNG_CHANNELS[colour] * depth
    except (struct.error, KeyError):
        return True
    passes = _ADAM7 if interlace == 1 else ((0, 0, 1, 1),)
    expected = 0
    for x0, y0, dx, dy in passes:
        cols, rows = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if cols > 0 and rows > 0:
            expected += rows * (1 + (cols * bits + 7) // 8)
    inflater = zlib.decompressobj()
    got, pos = 0, 8
    view = memoryview(data)
    while pos + 8 <= len(data) and got < expected:
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            # 16 KiB of input at a time (no copies of the rest), inflated at most
            # 1 MiB at a time and no further than the rows need: 16 KiB of a zlib
            # bomb would be 16 MiB, for a picture that may need a few KiB.
            end = min(pos + 8 + length, len(data))
            try:
                for at in range(pos + 8, end, 1 << 14):
                    piece: bytes | memoryview = view[at : min(at + (1 << 14), end)]
                    while piece and got < expected and not inflater.eof:
                        got += len(inflater.decompress(piece, min(expected - got, 1 << 20)))
                        piece = inflater.unconsumed_tail
                    if got >= expected or inflater.eof:
                        break
            except zlib.error:
                return False
        elif kind == b"IEND" or inflater.eof:
            break
        pos += 12 + length
    return got >= expected


def _to_8bit(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping at 255.
        return image.point(lambda v: v / 257).convert("L").convert("RGB")
    if mode == "P":
        has_alpha = "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode in ("LA", "PA", "La", "RGBa"):
        return image.convert("RGBA")
    # L, 1, CMYK, YCbCr, LAB, HSV, F
    return image.convert("RGB")


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """``image`` in sRGB. Keeping another profile's raw values in an untagged
    PNG would shift every colour (a Display P3 picture turns dull); pure green
    (0,255,0), the mask colour, stays pure green either way."""
    if not icc or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != "RGB":
            return image  # a grey or CMYK profile no longer fits converted pixels
        if "srgb" in ImageCms.getProfileDescription(profile).lower():
            return image
        converted = ImageCms.profileToProfile(image.convert("RGB"), profile, _SRGB)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: the raw values are the best guess left
    assert converted is not None
    if image.mode == "RGBA":
        converted.putalpha(image.getchannel("A"))
    return converted


def encode_png(image: Image.Image, compress_level: int = 1) -> bytes:
    """PNG bytes; level 1 because workers pay the encode on every job and
    the bytes only cross a LAN to Redis."""
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=compress_level)
    return out.getvalue()
