"""The pure-green mask of DeepCreamPy's input: painting it, and reading it back.

Users paint bars green by hand, with soft brushes, and post JPEGs; reading the mask
forgives that (``green_mask``), while ``paint_green`` writes exact (0, 255, 0).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]

GREEN = (0, 255, 0)


def green_mask(rgb: Image, tolerance: int = 0) -> Mask:
    """Pixels of pure green (0, 255, 0), each channel within ``tolerance``."""
    if tolerance <= 0:
        r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
        out: Mask = (r == 0) & (g == 255) & (b == 0)
        return out
    lo = np.array([0, 255 - tolerance, 0], np.uint8)
    hi = np.array([tolerance, 255, tolerance], np.uint8)
    in_range = cv2.inRange(np.ascontiguousarray(rgb), lo, hi)
    res: Mask = in_range.astype(bool)
    return res


def paint_green(rgb: Image, mask: Mask) -> Image:
    """A copy of ``rgb`` with the masked pixels set to pure green."""
    out = rgb.copy()
    out[mask] = GREEN
    return out


# How a pixel's green stands above its red and blue: 255 for pure green, about 0 for
# greys, below 0 for skin and pinks.
#
# Paint: nearly pure green. JPEG at quality 75 keeps the inside of a painted area above
# these; drawn greens (foliage, neon hair) stay below them.
_PAINT_GREENNESS = 205
_PAINT_G = 225
# How far past the paint a soft brush's falloff, JPEG's ringing and its 2x2 colour
# subsampling reach, in px.
_EDGE_PX = 10
_REACHES = (_EDGE_PX, _EDGE_PX + 4, _EDGE_PX + 8)
# A pixel near the paint joins the mask when it is at least this much paint, blended
# over the colour just beyond the edge.
_MIN_ALPHA = 0.12
# How far (RGB distance) a blend may stray from the line between its background and green:
# JPEG's noise, and a background that is not quite the nearest colour beyond the edge.
_MAX_OFF = 90.0
_RIM_PX = 2
_RIM_GREENNESS = 30
# Green over ink: red and blue stay near black.
_INK_RB = 40


def _greenness(rgb: Image) -> NDArray[np.int16]:
    c = rgb.astype(np.int16)
    out: NDArray[np.int16] = c[:, :, 1] - np.maximum(c[:, :, 0], c[:, :, 2])
    return out


def _disc(radius: int) -> NDArray[np.uint8]:
    return np.asarray(
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)), np.uint8
    )


def _blends(px: NDArray[np.float32], bg: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Which of the colours ``px`` read as paint green blended over the colours ``bg``
    with a noticeable share."""
    towards = np.array(GREEN, np.float32) - bg
    alpha = ((px - bg) * towards).sum(axis=-1) / np.maximum((towards * towards).sum(axis=-1), 1.0)
    # A blend lies on the line from its background to green; a dark stroke beside the
    # paint, tinted by JPEG, projects onto it too, but far off the line.
    off = px - (bg + np.clip(alpha, 0.0, 1.0)[..., None] * towards)
    out: NDArray[np.bool_] = (alpha >= _MIN_ALPHA) & ((off * off).sum(axis=-1) <= _MAX_OFF**2)
    return out


def painted_mask(rgb: Image) -> Mask:
    """The regions a person (or hent-AI) painted green, forgiving how it was painted.

    Exact (0, 255, 0) is what DeepCreamPy asks for, but brushes have soft edges and
    JPEG shifts colours. Nearly pure green is paint. Each pixel within a few px of it is
    read as a blend of paint green over the colour just beyond the edge (the nearest
    pixel further out) and joins the mask when its share of paint is noticeable; a
    drawn green beside the paint is its own background, so it never does.
    """
    h, w = rgb.shape[:2]
    gn = _greenness(rgb)
    paint = ((gn >= _PAINT_GREENNESS) & (rgb[:, :, 1] >= _PAINT_G)).astype(np.uint8)
    # Specks of nearly pure green that JPEG makes of drawn greens are not paint.
    paint = np.asarray(cv2.morphologyEx(paint, cv2.MORPH_OPEN, _disc(1)), np.uint8)
    x, y, bw, bh = cv2.boundingRect(paint)
    if bw == 0:
        return np.zeros((h, w), bool)
    # Work in the window around the paint: the cost follows the painted area.
    m = max(_REACHES) + 2
    y0, y1 = max(y - m, 0), min(y + bh + m, h)
    x0, x1 = max(x - m, 0), min(x + bw + m, w)
    win = rgb[y0:y1, x0:x1].astype(np.float32)
    core_w = paint[y0:y1, x0:x1]
    band = np.asarray(cv2.dilate(core_w, _disc(_EDGE_PX)), np.uint8)
    # Only the rim around the paint is in question; the work is done on its pixels alone.
    rim_y, rim_x = np.nonzero((band > 0) & (core_w == 0))
    px = win[rim_y, rim_x]
    # Ink lines are thinner than the band, so the colour just beyond the edge may be a
    # stroke's rather than what lies under the blend: blends over colours a little
    # further out, and over ink, are tried too.
    rb = np.maximum(px[:, 0], px[:, 2])
    ok = (rb <= _INK_RB) & (px[:, 1] - rb >= _MIN_ALPHA * 255)
    for reach in _REACHES:
        ring = band if reach == _EDGE_PX else np.asarray(cv2.dilate(core_w, _disc(reach)), np.uint8)
        beyond = ring == 0
        if not beyond.any():
            continue
        # The colour of the nearest pixel beyond the ring, for every pixel.
        _, nearest = cv2.distanceTransformWithLabels(
            ring, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
        )
        outside = win[beyond]
        bg = outside[np.clip(nearest[rim_y, rim_x] - 1, 0, len(outside) - 1)]
        ok |= _blends(px, bg)
    blend = core_w > 0
    blend[rim_y[ok], rim_x[ok]] = True
    # Only blends that reach the paint through other blends: a green leaf in the band,
    # cut off from the paint by its outline, stays.
    k, lab = cv2.connectedComponents(blend.astype(np.uint8), connectivity=8)
    touching = np.zeros(k, bool)
    touching[np.unique(lab[core_w > 0])] = True
    touching[0] = False
    found = touching[lab].astype(np.uint8)
    # The last pixels of a rim, wherever the colour beyond was misread: still greenish and
    # right beside the mask.
    rim = np.asarray(cv2.dilate(found, _disc(_RIM_PX)), np.uint8) > 0
    rim &= gn[y0:y1, x0:x1] >= _RIM_GREENNESS
    out = np.zeros((h, w), bool)
    out[y0:y1, x0:x1] = (found > 0) | rim
    return out
