"""Censor-bar masks: the exact green of DeepCreamPy's input, and detection of solid bars."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]

# Largest 3x3 colour range a pixel may have and still count as "flat"; JPEG q=75 keeps the
# inside of a solid fill well under this, while anti-aliased outlines and texture exceed it.
_FLAT_RANGE = 16
# A bar is one colour: the spread of its inside pixels stays at JPEG-noise level.
_MAX_STD = 7.0
# Fraction of its minimum-area rectangle a candidate must fill; an ellipse fills pi/4.
_MIN_FILL = 0.9
_MIN_CONTRAST = 30.0
_MAX_AREA_FRAC = 0.2
_MARGIN = 12
_MEDIAN = 5
_SAME_COLOUR = 24.0
_MAX_SAME_RING = 0.3
# How far past the flat core's rectangle the colour-grown bar may reach, in px.
_GROW = 3.0


_ELLIPSE5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_ELLIPSE7 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))


def _u8(a: object) -> NDArray[np.uint8]:
    """OpenCV's results typed as what they are for uint8 inputs."""
    return np.asarray(a, np.uint8)


def _square(size: int) -> NDArray[np.uint8]:
    return np.ones((size, size), np.uint8)


def _fill_holes(region: NDArray[np.uint8]) -> NDArray[np.uint8]:
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return filled


def _flat_map(rgb: Image) -> NDArray[np.uint8]:
    """255 where the 3x3 neighbourhood's colour range is small, else 0."""
    src = cv2.medianBlur(rgb, _MEDIAN) if _MEDIAN > 1 else rgb
    grad = cv2.morphologyEx(src, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    rng = np.maximum(np.maximum(grad[:, :, 0], grad[:, :, 1]), grad[:, :, 2])
    flat: NDArray[np.uint8] = ((rng <= _FLAT_RANGE) * np.uint8(255)).astype(np.uint8)
    return flat


def _examine(
    rgb: Image, labels: NDArray[np.int32], k: int, stat: NDArray[np.int32], min_area: int
) -> tuple[NDArray[np.uint8], int, int] | str:
    """The bar grown from flat component ``k`` with its ROI offset, or why it is not one."""
    h, w = rgb.shape[:2]
    x, y, bw, bh, area = (int(v) for v in stat)
    if area < min_area or area > _MAX_AREA_FRAC * h * w:
        return "area"
    # Flat background bands and borders reach across the picture; bars do not.
    if (x == 0) + (y == 0) + (x + bw == w) + (y + bh == h) >= 2:
        return "borders"
    if min(bw, bh) < 4:
        return "thin"
    m = _MARGIN
    x0, y0 = max(x - m, 0), max(y - m, 0)
    x1, y1 = min(x + bw + m, w), min(y + bh + m, h)
    comp = (labels[y0:y1, x0:x1] == k).astype(np.uint8)
    # Outlines of the bar's colour touching it leak into the component as thin arms.
    comp = _u8(cv2.morphologyEx(comp, cv2.MORPH_OPEN, _ELLIPSE5))
    if np.count_nonzero(comp) < min_area:
        return "opened away"
    roi = rgb[y0:y1, x0:x1].astype(np.float32)
    pix = roi[comp.astype(bool)]
    colour = np.median(pix, axis=0)
    if float(pix.std(axis=0).max()) > _MAX_STD:
        return "not one colour"
    core_rect = _rect_of(comp)
    if core_rect is None:
        return "empty"
    # JPEG gnaws ragged notches into the flat core, so its own fill test is loose; the strict
    # one runs on the colour-grown region below.
    (_, _), (cw, ch), _ = core_rect
    if np.count_nonzero(comp) < (_MIN_FILL - 0.15) * (cw + 1.0) * (ch + 1.0):
        return "core not rectangular"
    dist = np.sqrt(((roi - colour) ** 2).sum(axis=2))
    ring = _u8(cv2.dilate(comp, _square(15))) & ~_u8(cv2.dilate(comp, _square(9)))
    ring_d = dist[ring.astype(bool)]
    if ring_d.size == 0:
        return "no ring"
    contrast = float(np.median(ring_d))
    if contrast < _MIN_CONTRAST:
        return "low contrast"
    # A patch of a larger area fenced off by outlines has its own colour again just past
    # the fence; a bar's colour does not continue beyond it.
    outer = _u8(cv2.dilate(comp, _square(25))) & ~_u8(cv2.dilate(comp, _square(13)))
    outer_d = dist[outer.astype(bool)]
    same = float(np.count_nonzero(outer_d < _SAME_COLOUR)) / max(outer_d.size, 1)
    if same > _MAX_SAME_RING:
        return f"colour continues outside {same:.2f}"
    # The flat test eats the bar's rim; win it back by colour, cutting at half contrast so
    # the boundary lands where a blurred (JPEG) edge crosses its midpoint. The core's
    # rectangle bounds the growth, so touching strokes of the same colour add only slivers.
    coloured = (dist < 0.5 * contrast).astype(np.uint8)
    near = _u8(cv2.dilate(comp, _ELLIPSE7)) & _box_mask(comp.shape, core_rect, _GROW)
    region = (coloured & near) | comp
    num, lab = cv2.connectedComponents(region, connectivity=4)
    if num > 2:
        seed = lab[comp.astype(bool)]
        region = (lab == np.bincount(seed[seed > 0]).argmax()).astype(np.uint8)
    region = _fill_holes(region)
    # A bar is a rectangle filled with its colour; an ellipse fills only pi/4 of its box.
    # The denominator is the whole rectangle, even where it leaves the picture: a shape cut
    # by the border (a clipped ellipse) must not pass as the rectangle it is clipped into.
    box = _box_mask(comp.shape, core_rect, 1.0)
    inside = float(np.count_nonzero(region & box)) / ((cw + 3.0) * (ch + 3.0))
    if inside < _MIN_FILL:
        return f"box not filled {inside:.3f}"
    return region, x0, y0


Rect = tuple[tuple[float, float], tuple[float, float], float]


def _rect_of(region: NDArray[np.uint8]) -> Rect | None:
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    (cx, cy), (rw, rh), ang = cv2.minAreaRect(max(contours, key=cv2.contourArea))
    return (cx, cy), (rw, rh), ang


def _box_mask(shape: tuple[int, ...], rect: Rect | None, grow: float) -> NDArray[np.uint8]:
    """Filled ``rect`` widened by ``grow`` px per side; edge pixels under the outline count."""
    box = np.zeros(shape[:2], np.uint8)
    if rect is None:
        return box
    (cx, cy), (rw, rh), ang = rect
    corners = cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), ang))
    cv2.fillPoly(box, [np.round(corners * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return box


def detect_bars(rgb: Image, grow: int = 0) -> Mask:
    """Mask of solid censor bars: flat, single-coloured, filled (rotated) rectangles.

    Flat regions are split into connected components; a component is a bar when it is one
    colour, fills its minimum-area rectangle, contrasts with its surroundings, and is not
    background-sized (bars do not span the picture). ``grow`` dilates the result, useful to
    swallow JPEG fringes before inpainting.
    """
    h, w = rgb.shape[:2]
    flat = _flat_map(rgb)
    _, labels_m, stats_m, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    labels = np.asarray(labels_m, np.int32)
    stats = np.asarray(stats_m, np.int32)
    min_area = max(48, int(2e-4 * h * w))
    out = np.zeros((h, w), np.uint8)
    for k in np.nonzero(stats[:, cv2.CC_STAT_AREA] >= min_area)[0]:
        if k == 0:
            continue
        found = _examine(rgb, labels, int(k), stats[k], min_area)
        if isinstance(found, str):
            continue
        region, x0, y0 = found
        rh, rw = region.shape
        out[y0 : y0 + rh, x0 : x0 + rw] |= region
    if grow > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        out = _u8(cv2.dilate(out, disc))
    res: Mask = out.astype(bool)
    return res
