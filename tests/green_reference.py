"""The forgiving green-mask reader as it was before it was made to work window by window
on the candidate pixels only (commit 9a0ace7): the oracle that tests/test_green_fast.py
holds the fast ``workers.imageops.green.painted_mask`` to, pixel for pixel.

Kept verbatim apart from this docstring and the names it imports; do not tune it.
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


# How a pixel's green stands above its red and blue: 255 for pure green, about 0 for
# greys, below 0 for skin and pinks.
#
# Paint: nearly pure green. JPEG at quality 75 keeps the inside of a painted area above
# these; drawn greens (foliage, neon hair) are rarely this pure.
_PAINT_GREENNESS = 205
_PAINT_G = 225
# How far past the paint one round of reading looks, in px (JPEG's ringing and its 2x2
# colour subsampling stay within it); and the distances beyond the paint at which the
# colour under a blend is looked up: near for pixels the feather barely tints, further
# out for strokes that run up to the paint. A wide feather takes more rounds, each
# starting from what the last one found.
_EDGE_PX = 12
_REACHES = (4, 8, 12)
_ROUNDS = 3
# A feather's tint fades slowly, so past the first round the colour under it is looked up
# further out.
_FEATHER_REACHES = (12, 24)
# A blend reaching this far past the paint in the first round is a feather, not an
# anti-aliased edge (about 6 px) or JPEG's fringe (about 3 px).
_FEATHER_PX = 7.5
# ... and its faint tail joins too: there is no JPEG fringe to mistake for it out there.
_FEATHER_ALPHA = 0.08
# A pixel near the paint joins the mask when it is at least this much paint, blended
# over the colour beyond the edge.
_MIN_ALPHA = 0.15
# How far (RGB distance) a blend may stray from the line between its background and green:
# JPEG's noise, and a background that is not quite the colour looked up.
_MAX_OFF = 70.0
_ALONG = 0.5
_NOISE = 12.0
# Green over ink: red and blue stay near black. Only this close to the paint, since a
# drawn dark green looks the same and ink lines are thin.
_INK_RB = 40
_INK_PX = 6
# The last pixels of a rim, wherever the colour beyond was misread: still greenish and
# right beside the mask.
_RIM_PX = 2
_TAIL_PX = 2.5
_TAIL_REACHES = (6,)
_TAIL_ALPHA = 0.06
_RIM_GREENNESS = 30
# Paint far enough apart is read window by window, so scattered dabs cost what their
# area costs, not the picture's.
_CLUSTER_PX = 64


def _greenness(rgb: Image) -> NDArray[np.int16]:
    c = rgb.astype(np.int16)
    out: NDArray[np.int16] = c[:, :, 1] - np.maximum(c[:, :, 0], c[:, :, 2])
    return out


def _blends(
    px: NDArray[np.float32], bg: NDArray[np.float32], min_alpha: float = _MIN_ALPHA
) -> NDArray[np.bool_]:
    """Which of the colours ``px`` read as paint green blended over the colours ``bg``
    with a noticeable share."""
    towards = np.array(GREEN, np.float32) - bg
    alpha = ((px - bg) * towards).sum(axis=-1) / np.maximum((towards * towards).sum(axis=-1), 1.0)
    # A blend lies on the line from its background to green; a dark stroke beside the
    # paint, tinted by JPEG, projects onto it too, but far off the line.
    off = px - (bg + np.clip(alpha, 0.0, 1.0)[..., None] * towards)
    # The step towards green must also outweigh the step off the line: texture and
    # shading beside a hard edge move a colour a little in every direction.
    along2 = alpha * alpha * (towards * towards).sum(axis=-1)
    off2 = (off * off).sum(axis=-1)
    out: NDArray[np.bool_] = (
        (alpha >= min_alpha) & (off2 <= _MAX_OFF**2) & (off2 <= _ALONG * along2 + _NOISE**2)
    )
    return out


def _windows(paint: NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) around each cluster of paint (cells of _CLUSTER_PX px that hold
    paint, joined when they touch)."""
    h, w = paint.shape
    cell = _CLUSTER_PX
    occupied = np.zeros(((h + cell - 1) // cell, (w + cell - 1) // cell), np.uint8)
    ys, xs = np.nonzero(paint)
    occupied[ys // cell, xs // cell] = 1
    occupied = np.asarray(cv2.dilate(occupied, np.ones((3, 3), np.uint8)), np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(occupied, connectivity=8)
    return [
        (int(y) * cell, min(int(y + bh) * cell, h), int(x) * cell, min(int(x + bw) * cell, w))
        for x, y, bw, bh, _ in stats[1:]
    ]


def _read_rim(
    win: NDArray[np.float32],
    core: NDArray[np.uint8],
    first: bool,
    edge_px: float = _EDGE_PX,
    reaches: tuple[int, ...] | None = None,
    min_alpha: float | None = None,
) -> NDArray[np.uint8]:
    """``core`` and the blends around it that reach it (one round)."""
    # Distance of every pixel from the paint: the rim and the rings beyond are its levels.
    dist = cv2.distanceTransform((core == 0).astype(np.uint8), cv2.DIST_L2, 3)
    rim_y, rim_x = np.nonzero((dist > 0) & (dist <= edge_px))
    px = win[rim_y, rim_x]
    d = dist[rim_y, rim_x]
    ok = np.zeros(len(px), bool)
    if first:
        rb = np.maximum(px[:, 0], px[:, 2])
        ok = (d <= _INK_PX) & (rb <= _INK_RB) & (px[:, 1] - rb >= _MIN_ALPHA * 255)
    # Away from the paint is up the distance field: the colour under a blend is looked
    # up along that direction, just beyond each ring.
    h, w = dist.shape
    up_y = dist[np.minimum(rim_y + 1, h - 1), rim_x] - dist[np.maximum(rim_y - 1, 0), rim_x]
    up_x = dist[rim_y, np.minimum(rim_x + 1, w - 1)] - dist[rim_y, np.maximum(rim_x - 1, 0)]
    norm = np.maximum(np.hypot(up_y, up_x), 1e-3)
    up_y, up_x = up_y / norm, up_x / norm
    if reaches is None:
        reaches = _REACHES if first else _FEATHER_REACHES
    for reach in reaches:
        step = np.maximum(reach + 1.5 - d, 1.0)
        ty = np.clip(np.rint(rim_y + up_y * step), 0, h - 1).astype(np.intp)
        tx = np.clip(np.rint(rim_x + up_x * step), 0, w - 1).astype(np.intp)
        bg = win[ty, tx]
        if min_alpha is not None:
            ok |= _blends(px, bg, min_alpha)
        elif first:
            ok |= _blends(px, bg) & (d <= reach + 2)
        else:
            ok |= _blends(px, bg, _FEATHER_ALPHA)
    blend = core.copy()
    blend[rim_y[ok], rim_x[ok]] = 1
    # Only blends that reach the paint through other blends: a green leaf beside it, cut
    # off by its outline, stays.
    k, lab = cv2.connectedComponents(blend, connectivity=8)
    touching = np.zeros(k, bool)
    touching[np.unique(lab[core > 0])] = True
    touching[0] = False
    found: NDArray[np.uint8] = touching[lab].astype(np.uint8)
    return found


def _read_window(win_u8: Image, core: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """The painted mask inside one window whose paint is ``core``."""
    win = win_u8.astype(np.float32)
    found = core
    for round_ in range(_ROUNDS):
        grown = _read_rim(win, found, first=round_ == 0)
        added = int(np.count_nonzero(grown)) - int(np.count_nonzero(found))
        found = grown
        # A feather still going on at the edge of the rim takes another round; JPEG's
        # fringe and a hard edge are done in one.
        if round_ == 0:
            edge = cv2.distanceTransform((core == 0).astype(np.uint8), cv2.DIST_L2, 3)
            reached = edge[(grown > 0) & (core == 0)]
            if reached.size == 0 or np.percentile(reached, 99) <= _FEATHER_PX:
                break
        elif added == 0:
            break
    # The brush's faint tail right beside what was found: over strongly coloured paper
    # (pinks) even a tenth of green shows, and ringing does not reach back this close.
    found = _read_rim(win, found, False, _TAIL_PX, _TAIL_REACHES, _TAIL_ALPHA)
    rim = np.asarray(cv2.dilate(found, np.ones((2 * _RIM_PX + 1,) * 2, np.uint8))) > 0
    out: NDArray[np.bool_] = (found > 0) | (rim & (_greenness(win_u8) >= _RIM_GREENNESS))
    return out


def painted_mask(rgb: Image) -> Mask:
    """The regions a person painted green, forgiving how they were painted.

    Exact (0, 255, 0) is what DeepCreamPy asks for, but brushes have soft edges and
    JPEG shifts colours. Nearly pure green is paint. Each pixel near it is read as a
    blend of paint green over the colour beyond the edge (nearest pixels further out)
    or over ink, and joins the mask when its share of paint is noticeable and it
    reaches the paint through other such pixels; a drawn green beside the paint is its
    own background, so it does not. Exact green is always paint, even a single pixel.
    """
    h, w = rgb.shape[:2]
    gn = _greenness(rgb)
    near = ((gn >= _PAINT_GREENNESS) & (rgb[:, :, 1] >= _PAINT_G)).astype(np.uint8)
    # Specks of nearly pure green that JPEG makes of drawn greens are not paint.
    # (An opening by a 2x2 square, anchored so that it shifts nothing.)
    two = np.ones((2, 2), np.uint8)
    paint = np.asarray(cv2.dilate(cv2.erode(near, two, anchor=(0, 0)), two, anchor=(1, 1)))
    paint = paint | green_mask(rgb).astype(np.uint8)
    out = np.zeros((h, w), bool)
    if not paint.any():
        return out
    m = _EDGE_PX + _RIM_PX + 1
    for y0, y1, x0, x1 in _windows(paint):
        y0, y1, x0, x1 = max(y0 - m, 0), min(y1 + m, h), max(x0 - m, 0), min(x1 + m, w)
        core = paint[y0:y1, x0:x1]
        if core.any():
            out[y0:y1, x0:x1] |= _read_window(rgb[y0:y1, x0:x1], core)
    return out
