"""The pure-green mask of DeepCreamPy's input: painting it, and reading it back.

Users paint bars green by hand, with soft brushes, and post JPEGs; reading the mask
forgives that (``green_mask``), while ``paint_green`` writes exact (0, 255, 0).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]

GREEN = (0, 255, 0)


def _as_mask(levels: NDArray[np.uint8]) -> Mask:
    """OpenCV's 0/255 mask as ``bool``, in place (255 >> 7 is 1)."""
    np.right_shift(levels, 7, out=levels)
    out: Mask = levels.view(np.bool_)
    return out


def green_mask(rgb: Image, tolerance: int = 0) -> Mask:
    """Pixels of pure green (0, 255, 0), each channel within ``tolerance``."""
    t = max(tolerance, 0)
    lo = np.array([0, 255 - t, 0], np.uint8)
    hi = np.array([t, 255, t], np.uint8)
    # Red, green and blue only: an RGBA picture's alpha says nothing of the paint.
    rgb = np.ascontiguousarray(rgb[:, :, :3])
    return _as_mask(np.asarray(cv2.inRange(rgb, lo, hi), np.uint8))


def _flat_nonzero(levels: NDArray[np.uint8]) -> NDArray[np.intp]:
    """The flat indices of a 2-D uint8 array's nonzero pixels, in order (np.flatnonzero's
    answer: OpenCV finds them row by row, some four times faster)."""
    found = cv2.findNonZero(levels)
    if found is None:
        return np.zeros(0, np.intp)
    xy = found.reshape(-1, 2).astype(np.intp)
    out: NDArray[np.intp] = xy[:, 1] * levels.shape[1]
    out += xy[:, 0]
    return out


def bounds(mask: Mask | NDArray[np.uint8], pad: int = 0) -> tuple[int, int, int, int] | None:
    """The mask's bounding box (x0, y0, x1, y1), grown by ``pad`` and cut to the picture;
    None when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    h, w = mask.shape
    return (max(int(cols[0]) - pad, 0), max(int(rows[0]) - pad, 0),
            min(int(cols[-1]) + 1 + pad, w), min(int(rows[-1]) + 1 + pad, h))  # fmt: skip


def paint_green(rgb: Image, mask: Mask) -> Image:
    """A copy of ``rgb`` with the masked pixels set to pure green."""
    return paint_green_into(rgb.copy(), mask)


# Masks are painted in the squares of this many px that hold any of them, group by
# group of squares up to this many groups.
_PAINT_CELL = 32
_PAINT_PIECES = 64


def paint_green_into(rgb: Image, mask: Mask) -> Image:
    """``rgb`` itself, its masked pixels set to pure green. Only the boxes of the groups
    of 32 px squares that hold the mask are touched (a numpy boolean assignment would
    walk the whole picture, one box around bars far apart most of it)."""
    found = cells(mask.view(np.uint8), _PAINT_CELL)
    if not found.any():
        return rgb
    h, w = mask.shape
    c = _PAINT_CELL
    # OpenCV writes into a view only when its pixels are packed (a picture cut from an
    # RGBA array or one flipped is not: OpenCV refuses it).
    packed = rgb.strides[2] == rgb.itemsize and rgb.strides[1] == rgb.itemsize * rgb.shape[2]
    packed = packed and rgb.strides[0] > 0
    _, _, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    boxes = stats[1:, :4]
    if len(boxes) > _PAINT_PIECES:
        # Specks all over: one pass over their box costs less than a call per speck.
        cx0, cy0, cx1, cy1 = bounds(found) or (0, 0, 0, 0)
        boxes = np.array([[cx0, cy0, cx1 - cx0, cy1 - cy0]])
    for x, y, bw, bh in boxes:
        x0, y0 = int(x) * c, int(y) * c
        x1, y1 = min(int(x + bw) * c, w), min(int(y + bh) * c, h)
        part = rgb[y0:y1, x0:x1]
        if not packed or part.shape[:2] == (1, 1):
            # OpenCV takes a 1x1 picture for a scalar operand (a 1 px square at the
            # picture's corner, when its sides are 1 past a multiple of 32).
            part[mask[y0:y1, x0:x1]] = GREEN
            continue
        where = np.ascontiguousarray(mask[y0:y1, x0:x1]).view(np.uint8)
        # A scalar second operand (OpenCV's stubs only list arrays there).
        cv2.bitwise_and(part, (0.0, 0.0, 0.0, 0.0), dst=part, mask=where)  # type: ignore[call-overload]
        cv2.bitwise_or(part, (0.0, 255.0, 0.0, 0.0), dst=part, mask=where)  # type: ignore[call-overload]
    return rgb


def cells(mask: NDArray[np.uint8], cell: int) -> NDArray[np.uint8]:
    """Per ``cell`` px square (the last row and column of squares may be cut short), the
    largest value of ``mask`` in it: which squares hold any of the mask, in one cheap
    pass."""
    h, w = mask.shape
    hh, ww = h - h % cell, w - w % cell
    rows = np.empty((-(-h // cell), w), np.uint8)
    if hh:
        rows[: hh // cell] = mask[:hh].reshape(hh // cell, cell, w).max(axis=1)
    if hh < h:
        rows[-1] = mask[hh:].max(axis=0)
    out = np.empty((rows.shape[0], -(-w // cell)), np.uint8)
    if ww:
        out[:, : ww // cell] = rows[:, :ww].reshape(rows.shape[0], ww // cell, cell).max(axis=2)
    if ww < w:
        out[:, -1] = rows[:, ww:].max(axis=1)
    return out


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


# Every pixel the reading of a window looks at lies within this many px of its paint
# (three rounds of 12 px rims, chamfer distances being up to 5 % short, then look-ups
# 25.5 px further out: about 63 px); a window is cut to its paint's box grown by this.
_REACH_PX = 72
# ... and when the first round finds no feather (one rim, its tail and the last pixels
# beside it: about 23 px), by this.
_FIRST_REACH_PX = 32
# Candidates for paint: a superset of the paint test below (green >= 225 and 205 above
# red and blue leaves red and blue <= 50), found by one cheap pass over the picture.
_CANDIDATE_LO = np.array([0, _PAINT_G, 0], np.uint8)
_CANDIDATE_HI = np.array([255 - _PAINT_GREENNESS, 255, 255 - _PAINT_GREENNESS], np.uint8)
# A pixel 8-adjacent to the paint is at most this far from it in the chamfer distance
# OpenCV's 3x3 L2 mask measures (0.955 along an axis, 1.3693 diagonally); any other
# pixel is at least 1.91 away.
_ADJACENT = 1.5
_FLOAT0 = np.float32(0.0)
_FLOAT255 = np.float32(255.0)

Planes = tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]


class _Colours:
    """A window's colours, looked up in the whole (contiguous) picture: the pixels read
    are a few rings around the paint, far fewer than the window's."""

    def __init__(self, rgb: Image, y0: int, x0: int, shows: Mask | None = None) -> None:
        self.pixels = rgb.reshape(-1, 3)
        self.stride = rgb.shape[1]
        self.origin = y0 * self.stride + x0
        # Which pixels of the whole picture show (alpha above 0), when it has alpha.
        self.shows = None if shows is None else shows.reshape(-1)

    def showing(self, at: NDArray[np.intp], w: int) -> NDArray[np.bool_]:
        """Whether the window pixels at flat indices ``at`` (window ``w`` px wide) show."""
        assert self.shows is not None
        ys, xs = np.divmod(at, w)
        ys *= self.stride
        ys += xs
        ys += self.origin
        out: NDArray[np.bool_] = self.shows.take(ys)
        return out

    def planes(self, ys: NDArray[np.intp], xs: NDArray[np.intp]) -> Planes:
        """The colours at window pixels (``ys``, ``xs``) as float32 (red, green, blue)."""
        at = ys * self.stride + xs
        at += self.origin
        rgb = np.ascontiguousarray(self.pixels.take(at, axis=0).T, np.float32)
        return rgb[0], rgb[1], rgb[2]


def _shares(px: Planes, bg: Planes) -> tuple[NDArray[np.float32], Planes, NDArray[np.float32]]:
    """The share of paint green in each colour of ``px`` over the colour ``bg`` (the
    projection onto the line from ``bg`` to green), that line's step, and its squared
    length."""
    pr, pg, pb = px
    br, bgg, bb = bg
    tr, tg, tb = _FLOAT0 - br, _FLOAT255 - bgg, _FLOAT0 - bb
    tt = tr * tr + tg * tg + tb * tb
    alpha = ((pr - br) * tr + (pg - bgg) * tg + (pb - bb) * tb) / np.maximum(tt, 1.0)
    return alpha, (tr, tg, tb), tt


def _blends(
    px: Planes, bg: Planes, min_alpha: float | NDArray[np.float32] = _MIN_ALPHA
) -> NDArray[np.bool_]:
    """Which of the colours ``px`` read as paint green blended over the colours ``bg``
    with a noticeable share. Channel by channel, in the order numpy sums a last axis of
    three ((r + g) + b), so that every float is the one the per-pixel form gave."""
    pr, pg, pb = px
    br, bgg, bb = bg
    alpha, (tr, tg, tb), tt = _shares(px, bg)
    # A blend lies on the line from its background to green; a dark stroke beside the
    # paint, tinted by JPEG, projects onto it too, but far off the line.
    a = np.clip(alpha, 0.0, 1.0)
    o_r, o_g, o_b = pr - (br + a * tr), pg - (bgg + a * tg), pb - (bb + a * tb)
    # The step towards green must also outweigh the step off the line: texture and
    # shading beside a hard edge move a colour a little in every direction.
    along2 = alpha * alpha * tt
    off2 = o_r * o_r + o_g * o_g + o_b * o_b
    out: NDArray[np.bool_] = (
        (alpha >= min_alpha) & (off2 <= _MAX_OFF**2) & (off2 <= _ALONG * along2 + _NOISE**2)
    )
    return out


def _windows(held: NDArray[np.uint8], h: int, w: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) around each cluster of paint (``held``: the cells of _CLUSTER_PX
    px that hold paint, in an h x w picture; joined when they touch)."""
    cell = _CLUSTER_PX
    occupied = np.asarray(cv2.dilate(held, np.ones((3, 3), np.uint8)), np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(occupied, connectivity=8)
    return [
        (int(y) * cell, min(int(y + bh) * cell, h), int(x) * cell, min(int(x + bw) * cell, w))
        for x, y, bw, bh, _ in stats[1:]
    ]


def _away(
    flat: NDArray[np.float32], h: int, w: int, ys: NDArray[np.intp], xs: NDArray[np.intp]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Unit direction away from the paint at pixels (``ys``, ``xs``): up the gradient of the
    distance field ``flat`` (an h x w field, flat), by central differences."""
    up_y = flat[np.minimum(ys + 1, h - 1) * w + xs] - flat[np.maximum(ys - 1, 0) * w + xs]
    up_x = flat[ys * w + np.minimum(xs + 1, w - 1)] - flat[ys * w + np.maximum(xs - 1, 0)]
    norm = np.maximum(np.hypot(up_y, up_x), 1e-3)
    return up_y / norm, up_x / norm


# Rim pixels read at once (see _read_rim).
_RIM_SLICE = 1 << 18


def _rim_blends(
    channels: _Colours,
    dist: NDArray[np.float32],
    rim: NDArray[np.intp],
    d: NDArray[np.float32],
    first: bool,
    edge_px: float,
    reaches: tuple[int, ...],
    min_alpha: float | None,
) -> NDArray[np.bool_]:
    """Which of the rim pixels ``rim`` (flat indices, at distances ``d`` from the
    paint) read as blends of paint."""
    h, w = dist.shape
    flat = dist.reshape(-1)
    rim_y, rim_x = np.divmod(rim, w)
    px = channels.planes(rim_y, rim_x)
    ok = np.zeros(len(d), bool)
    if first:
        rb = np.maximum(px[0], px[2])
        ok = (d <= _INK_PX) & (rb <= _INK_RB) & (px[1] - rb >= _MIN_ALPHA * 255)
    # Away from the paint is up the distance field: the colour under a blend is looked
    # up along that direction, just beyond each ring.
    up_y, up_x = _away(flat, h, w, rim_y, rim_x)
    for reach in reaches:
        # In the first round a look-up counts only for pixels up to 2 px past its reach:
        # the others are not looked up at all.
        some_only = first and min_alpha is None and reach + 2 < edge_px
        sel = np.flatnonzero(d <= reach + 2) if some_only else None
        dd, yy, xx, uy, ux = (
            (d, rim_y, rim_x, up_y, up_x)
            if sel is None
            else (d[sel], rim_y[sel], rim_x[sel], up_y[sel], up_x[sel])
        )
        step = np.maximum(reach + 1.5 - dd, 1.0)
        ty = np.clip(np.rint(yy + uy * step), 0, h - 1).astype(np.intp)
        tx = np.clip(np.rint(xx + ux * step), 0, w - 1).astype(np.intp)
        bg = channels.planes(ty, tx)
        if min_alpha is not None:
            ok |= _blends(px, bg, min_alpha)
        elif sel is not None:
            some = (px[0][sel], px[1][sel], px[2][sel])
            ok[sel] |= _blends(some, bg)
        elif first:
            ok |= _blends(px, bg)
        else:
            ok |= _blends(px, bg, _FEATHER_ALPHA)
    return ok


def _read_rim(
    channels: _Colours,
    core: NDArray[np.uint8],
    first: bool,
    edge_px: float = _EDGE_PX,
    reaches: tuple[int, ...] | None = None,
    min_alpha: float | None = None,
    dist: NDArray[np.float32] | None = None,
    frontier: NDArray[np.intp] | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.float32], NDArray[np.intp]]:
    """``core`` and the blends around it that reach it (one round), the distances from
    ``core`` of the pixels added, and of every pixel (``dist``, when given, is that of
    ``core``), and the pixels next to ``core`` (``frontier``, when given, are those).
    Pixels are addressed by flat index."""
    # Distance of every pixel from the paint: the rim and the rings beyond are its levels.
    if dist is None:
        dist = np.asarray(
            cv2.distanceTransform((core == 0).view(np.uint8), cv2.DIST_L2, 3), np.float32
        )
    flat = dist.reshape(-1)
    h, w = dist.shape
    if reaches is None:
        reaches = _REACHES if first else _FEATHER_REACHES
    # Outside the paint every distance is at least 0.955: the rim, (0, edge_px], is
    # [0.5, edge_px]. Rim pixels read so far are marked (zeroed lazily by the system:
    # only the pages they lie in are ever touched).
    edge = float(edge_px)
    seen = np.zeros(h * w, np.uint8)

    def read(at: NDArray[np.intp]) -> NDArray[np.bool_]:
        # Each rim pixel is read on its own, so a rim covering most of a large picture
        # (specks or a checkerboard of paint all over) is read a slice at a time: its
        # float temporaries, some 200 bytes a pixel, would otherwise all be held at once.
        seen[at] = 1
        d = flat[at]
        ok = np.empty(len(at), bool)
        for start in range(0, len(at), _RIM_SLICE):
            part = slice(start, start + _RIM_SLICE)
            ok[part] = _rim_blends(
                channels, dist, at[part], d[part], first, edge_px, reaches, min_alpha
            )
        if channels.shows is not None:
            # A pixel that does not show is no blend: whatever colour an editor kept
            # under it neither joins the mask nor carries it on to pixels beyond.
            ok &= channels.showing(at, w)
        return ok

    # Only blends that reach the paint through other blends join it: a green leaf beside
    # it, cut off by its outline, stays. So the rim is read outwards from the pixels next
    # to the paint, each step the unread rim pixels next to the blends the last one
    # found (a blend elsewhere would not join, so it is never read): what joins is what
    # reading the whole rim and keeping the blends 8-connected to the paint gave, and a
    # hard edge costs its outline only.
    if frontier is None or edge < _ADJACENT:
        frontier = _flat_nonzero(np.asarray(cv2.inRange(dist, 0.5, min(_ADJACENT, edge))))
    next_to = frontier
    kept: list[NDArray[np.intp]] = []
    steps = 0
    while frontier.size:
        new = frontier[read(frontier)]
        if not new.size:
            break
        kept.append(new)
        steps += 1
        if steps >= _MAX_STEPS:
            # A long winding trail of blends: the rest of the rim at once.
            rest = np.asarray(cv2.inRange(dist, 0.5, edge)).reshape(-1) & (seen == 0)
            return (*_join_all(core, kept, flat, np.flatnonzero(rest), read), next_to)
        frontier = _unread_neighbours(new, flat, seen, edge, h, w)
    if not kept:
        return core, np.zeros(0, np.float32), dist, next_to
    joined = np.concatenate(kept)
    found = core.copy()
    found.reshape(-1)[joined] = 1
    return found, flat[joined], dist, next_to


# Steps of reading a rim outwards after which the rest of it is read at once.
_MAX_STEPS = 32
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


def _unread_neighbours(
    at: NDArray[np.intp],
    flat: NDArray[np.float32],
    seen: NDArray[np.uint8],
    edge: float,
    h: int,
    w: int,
) -> NDArray[np.intp]:
    """The rim pixels (distance ``flat`` in [0.5, edge]) not ``seen`` yet that are
    8-adjacent to the flat indices ``at``, once each."""
    ys, xs = np.divmod(at, w)
    found = []
    for dy, dx in _NEIGHBOURS:
        yy, xx = ys + dy, xs + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        near = (yy * w + xx)[inside]
        d = flat[near]
        found.append(near[(seen[near] == 0) & (d >= 0.5) & (d <= edge)])
    out: NDArray[np.intp] = np.unique(np.concatenate(found))
    return out


def _join_all(
    core: NDArray[np.uint8],
    kept: list[NDArray[np.intp]],
    flat: NDArray[np.float32],
    rest: NDArray[np.intp],
    read: Callable[[NDArray[np.intp]], NDArray[np.bool_]],
) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.float32]]:
    """``_read_rim``'s answer from every blend of the rim: those found so far, and the
    ``rest`` (the rim pixels not read yet) read at once, kept when 8-connected to the
    paint through blends."""
    added = np.concatenate([*kept, rest[read(rest)]])
    blend = core.copy()
    blend.reshape(-1)[added] = 1
    # A group of blends holds paint exactly when one of its blends is next to the paint
    # (the path from any blend to the paint enters it from such a one).
    add_d = flat[added]
    k, lab = cv2.connectedComponents(blend, connectivity=8)
    labels = np.asarray(lab).reshape(-1).take(added)
    touching = np.zeros(k, bool)
    touching[labels[add_d < _ADJACENT]] = True
    keep = touching[labels]
    found = core.copy()
    found.reshape(-1)[added[keep]] = 1
    return found, add_d[keep], flat.reshape(core.shape)


def _read_window(
    rgb: Image,
    box: tuple[int, int, int, int],
    core: NDArray[np.uint8],
    rounds: int = _ROUNDS,
    shows: Mask | None = None,
) -> NDArray[np.bool_] | None:
    """The painted mask inside the window ``box`` (y0, y1, x0, x1) of the contiguous
    picture ``rgb``, whose paint there is ``core``; None when the paint is feathered and
    ``rounds`` is 1 (the window is then too small to read it). With ``shows`` (the
    whole picture's pixels that show), pixels that do not are never blends."""
    y0, y1, x0, x1 = box
    win = rgb[y0:y1, x0:x1]
    channels = _Colours(rgb, y0, x0, shows)
    found = np.ascontiguousarray(core)
    dist = None
    for round_ in range(_ROUNDS):
        before = found
        found, reached, dist, next_to = _read_rim(channels, found, first=round_ == 0)
        # A feather still going on at the edge of the rim takes another round; JPEG's
        # fringe and a hard edge are done in one.
        if round_ == 0:
            if reached.size == 0 or np.percentile(reached, 99) <= _FEATHER_PX:
                break
            if rounds == 1:
                return None
        elif reached.size == 0:
            break
    # The brush's faint tail right beside what was found: over strongly coloured paper
    # (pinks) even a tenth of green shows, and ringing does not reach back this close.
    # (Where the last round added nothing, the distances from what was found are the
    # ones it measured.)
    # (and the pixels next to it).
    same, near = (dist, next_to) if found is before else (None, None)
    found = _read_rim(channels, found, False, _TAIL_PX, _TAIL_REACHES, _TAIL_ALPHA, same, near)[0]
    return _with_last_pixels(win, found)


def _with_last_pixels(win: Image, found: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """``found`` and the last pixels of its rim, still greenish, right beside it."""
    rim = np.asarray(cv2.dilate(found, np.ones((2 * _RIM_PX + 1,) * 2, np.uint8)), np.uint8)
    at = cv2.findNonZero(np.asarray(cv2.subtract(rim, found)))
    out: NDArray[np.bool_] = found.view(np.bool_).copy()
    if at is None:
        return out
    xs, ys = at.reshape(-1, 2).T
    c = win[ys, xs].astype(np.int16)
    greenish = c[:, 1] - np.maximum(c[:, 0], c[:, 2]) >= _RIM_GREENNESS
    out[ys[greenish], xs[greenish]] = True
    return out


# Around paint with hard edges the reading stays within this many px of the paint's box:
# the pixels next to it, the distances of their neighbours, the last pixels of the rim.
_HARD_PX = 3
_SQUARE3 = np.ones((3, 3), np.uint8)
_SQUARE5 = np.ones((2 * _RIM_PX + 1,) * 2, np.uint8)
# The look-ups of the first round and of the tail round, each with the share of paint
# a blend must have: float32, as numpy compares a float32 array with a Python float.
_HARD_REACHES = np.array([[r + 1.5] for r in (*_REACHES, *_TAIL_REACHES)], np.float32)
_HARD_ALPHA = np.array([[_MIN_ALPHA]] * len(_REACHES) + [[_TAIL_ALPHA]], np.float32)


def _read_hard(
    rgb: Image,
    box: tuple[int, int, int, int],
    core: NDArray[np.uint8],
    paint_box: tuple[int, int, int, int],
) -> tuple[tuple[int, int, int, int], NDArray[np.bool_]] | None:
    """``_read_window``'s answer where no pixel next to the paint reads as a blend (hard
    edges), read in the paint's box (x0, y0, x1, y1 in the window) grown by _HARD_PX:
    that box (y0, y1, x0, x1 in the window) and the mask in it; None where a pixel next
    to the paint is greenish or a blend, to be read in the whole window.

    The answer is the same: with no blend next to the paint the first round adds
    nothing and ends the reading; the tail round reads the same pixels, also adding
    nothing; the last pixels of the rim lie within 2 px of the paint. The pixels next to
    the paint and their neighbours, whose distances each read uses, lie within 2 px of
    it, and their nearest paint within 2 px more (any paint 3 px away is at least 2.86
    px away, more than the 2.74 px of 2 px diagonally): the box's distance transform
    gives their distances as the window's did (OpenCV's 3x3 transform sums integer
    steps along the best path, which runs inside the box around the pixel and its
    nearest paint). Each read looks up its colours in window
    coordinates, clipped to the window, as the window's reading did; and a pixel that
    does not show is never a blend, so where none is, none showing is.
    """
    y0, y1, x0, x1 = box
    h, w = y1 - y0, x1 - x0
    cx0, cy0 = max(paint_box[0] - _HARD_PX, 0), max(paint_box[1] - _HARD_PX, 0)
    cx1, cy1 = min(paint_box[2] + _HARD_PX, w), min(paint_box[3] + _HARD_PX, h)
    part = np.ascontiguousarray(core[cy0:cy1, cx0:cx1])
    channels = _Colours(rgb, y0, x0)
    # The last pixels of the rim (within 2 px of the paint) that are greenish; one next
    # to the paint is a soft or JPEG'd edge, whose blends the window's reading finds
    # (this check costs little, a wasted distance transform more).
    out: NDArray[np.bool_] = part.view(np.bool_).copy()
    at = cv2.findNonZero(np.asarray(cv2.subtract(cv2.dilate(part, _SQUARE5), part)))
    if at is not None:
        xs, ys = at.reshape(-1, 2).T.astype(np.intp)
        r, g, b = channels.planes(ys + cy0, xs + cx0)
        greenish = g - np.maximum(r, b) >= _RIM_GREENNESS
        if greenish.any():
            ys, xs = ys[greenish], xs[greenish]
            near = np.asarray(cv2.dilate(part, _SQUARE3))
            if near[ys, xs].any():
                return None
            out[ys, xs] = True
    dist = np.asarray(cv2.distanceTransform((part == 0).view(np.uint8), cv2.DIST_L2, 3), np.float32)
    frontier = _flat_nonzero(np.asarray(cv2.inRange(dist, 0.5, _ADJACENT)))
    # A slice of the rim at a time, each pixel looked up once per reach.
    part_size = max(_RIM_SLICE // len(_HARD_REACHES), 1)
    for start in range(0, len(frontier), part_size):
        rim = frontier[start : start + part_size]
        if _any_blend(channels, dist, rim, (cy0, cx0, h, w)):
            return None
    return (cy0, cy1, cx0, cx1), out


def _any_blend(
    channels: _Colours,
    dist: NDArray[np.float32],
    rim: NDArray[np.intp],
    frame: tuple[int, int, int, int],
) -> bool:
    """Whether any of the pixels next to the paint ``rim`` (flat indices in ``dist``, the
    part of an h x w window at (y, x): ``frame`` (y, x, h, w)) reads as a blend in the
    first round or in the tail round. The floats are ``_rim_blends``'s (every look-up of
    the first round counts for these pixels, all within 2 px of its reach), the
    look-ups of all reaches made at once."""
    h, w = dist.shape
    flat = dist.reshape(-1)
    d = flat[rim]
    rim_y, rim_x = np.divmod(rim, w)
    up_y, up_x = _away(flat, h, w, rim_y, rim_x)
    rim_y += frame[0]
    rim_x += frame[1]
    px = channels.planes(rim_y, rim_x)
    rb = np.maximum(px[0], px[2])
    if ((d <= _INK_PX) & (rb <= _INK_RB) & (px[1] - rb >= _MIN_ALPHA * 255)).any():
        return True
    # One row per reach: (reach + 1.5) - d in float32, as _rim_blends has it.
    step = np.maximum(_HARD_REACHES - d, np.float32(1.0))
    ty = np.clip(np.rint(rim_y + up_y * step), 0, frame[2] - 1).astype(np.intp)
    tx = np.clip(np.rint(rim_x + up_x * step), 0, frame[3] - 1).astype(np.intp)
    bg = channels.planes(ty.reshape(-1), tx.reshape(-1))
    n = len(rim)
    rows = (bg[0].reshape(-1, n), bg[1].reshape(-1, n), bg[2].reshape(-1, n))
    # Few colours have the share of paint a blend needs: only those are read further.
    reach, at = np.nonzero(_shares(px, rows)[0] >= _HARD_ALPHA)
    if not len(at):
        return False
    some = (px[0][at], px[1][at], px[2][at])
    under = (rows[0][reach, at], rows[1][reach, at], rows[2][reach, at])
    return bool(_blends(some, under, _HARD_ALPHA[reach, 0]).any())


def _paint(rgb: Image, candidates: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The paint among ``candidates`` of ``rgb`` (a crop with a margin of 2 px where it is
    not the picture's edge): nearly pure green, less JPEG's specks, and exact green."""
    # (OpenCV splits a packed crop some three times faster than a view.)
    r, g, b = cv2.split(np.ascontiguousarray(rgb))
    gn = cv2.subtract(g, cv2.max(r, b))
    near = np.asarray((candidates > 0) & (gn >= _PAINT_GREENNESS), np.uint8)
    # Specks of nearly pure green that JPEG makes of drawn greens are not paint.
    # (An opening by a 2x2 square, anchored so that it shifts nothing.)
    two = np.ones((2, 2), np.uint8)
    paint = np.asarray(cv2.dilate(cv2.erode(near, two, anchor=(0, 0)), two, anchor=(1, 1)))
    # Exact green: green 255 over red and blue 0, the only way to 255 more green (the
    # difference is cut at 0 and 255).
    exact = np.asarray(cv2.threshold(gn, 254, 1, cv2.THRESH_BINARY)[1], np.uint8)
    out: NDArray[np.uint8] = np.bitwise_or(paint, exact)
    return out


def painted_mask(rgb: Image, alpha: NDArray[np.uint8] | None = None) -> Mask:
    """The regions a person painted green, forgiving how they were painted.

    Exact (0, 255, 0) is what DeepCreamPy asks for, but brushes have soft edges and
    JPEG shifts colours. Nearly pure green is paint. Each pixel near it is read as a
    blend of paint green over the colour beyond the edge (nearest pixels further out)
    or over ink, and joins the mask when its share of paint is noticeable and it
    reaches the paint through other such pixels; a drawn green beside the paint is its
    own background, so it does not. Exact green is always paint, even a single pixel.

    With the picture's ``alpha`` plane, fully transparent pixels are never paint (an
    editor may keep any colour under them, pure green included): they neither start nor
    join the mask.

    One pass over the picture finds candidates for paint; everything else is done around
    them, so the cost follows the painted area, not the picture.
    """
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    out = np.zeros((h, w), bool)
    candidates = np.asarray(cv2.inRange(rgb, _CANDIDATE_LO, _CANDIDATE_HI), np.uint8)
    opaque = None
    if alpha is not None:
        # Where any of the pixel shows (255, then 1 in place).
        shows = np.asarray(cv2.threshold(alpha, 0, 255, cv2.THRESH_BINARY)[1], np.uint8)
        cv2.bitwise_and(candidates, shows, dst=candidates)
        opaque = _as_mask(shows)
    cell = _CLUSTER_PX
    found = cells(candidates, cell)
    if not found.any():
        return out
    # Paint is read in crops around the candidates of each group of cells: their box
    # grown by the pixel the opening may add (paint lies there or nowhere), and 2 px
    # more for the opening to look 1 px around each of those pixels; the cells that
    # hold paint are noted as the crops are written, for the windows.
    paint = np.zeros((h, w), np.uint8)
    held = np.zeros_like(found)
    _, _, stats, _ = cv2.connectedComponentsWithStats(found, connectivity=8)
    for x, y, bw, bh, _ in stats[1:]:
        x0, y0 = int(x) * cell, int(y) * cell
        x1, y1 = min(int(x + bw) * cell, w), min(int(y + bh) * cell, h)
        tight = bounds(candidates[y0:y1, x0:x1], 1)
        if tight is None:
            continue
        px0, py0, px1, py1 = x0 + tight[0], y0 + tight[1], x0 + tight[2], y0 + tight[3]
        cx0, cy0, cx1, cy1 = max(px0 - 2, 0), max(py0 - 2, 0), min(px1 + 2, w), min(py1 + 2, h)
        part = _paint(rgb[cy0:cy1, cx0:cx1], candidates[cy0:cy1, cx0:cx1])
        if opaque is not None:
            # Exact green is paint even where it is no candidate: not where it is unseen.
            part &= opaque[cy0:cy1, cx0:cx1]
        paint[py0:py1, px0:px1] |= part[py0 - cy0 : py1 - cy0, px0 - cx0 : px1 - cx0]
        held[y : y + bh, x : x + bw] |= cells(paint[y0:y1, x0:x1], cell)
    m = _EDGE_PX + _RIM_PX + 1
    for y0, y1, x0, x1 in _windows(held, h, w):
        y0, y1, x0, x1 = max(y0 - m, 0), min(y1 + m, h), max(x0 - m, 0), min(x1 + m, w)
        box = bounds(paint[y0:y1, x0:x1])
        if box is None:
            continue
        # The window cut to what its reading can reach (the same pixels come out): first
        # to what one round reaches, then, for a feather, to what all of them do.
        for reach, rounds in ((_FIRST_REACH_PX, 1), (_REACH_PX, _ROUNDS)):
            wx0, wy0 = max(x0 + box[0] - reach, x0), max(y0 + box[1] - reach, y0)
            wx1, wy1 = min(x0 + box[2] + reach, x1), min(y0 + box[3] + reach, y1)
            box_ = (wy0, wy1, wx0, wx1)
            if rounds == 1:
                inner = (x0 + box[0] - wx0, y0 + box[1] - wy0, x0 + box[2] - wx0, y0 + box[3] - wy0)
                hard = _read_hard(rgb, box_, paint[wy0:wy1, wx0:wx1], inner)
                if hard is not None:
                    # Hard edges: read in the paint's box (the same pixels come out).
                    (hy0, hy1, hx0, hx1), in_box = hard
                    at = (slice(wy0 + hy0, wy0 + hy1), slice(wx0 + hx0, wx0 + hx1))
                    if opaque is not None:
                        in_box &= opaque[at]
                    out[at] |= in_box
                    break
            read = _read_window(rgb, box_, paint[wy0:wy1, wx0:wx1], rounds, opaque)
            if read is not None:
                if opaque is not None:
                    read &= opaque[wy0:wy1, wx0:wx1]
                out[wy0:wy1, wx0:wx1] |= read
                break
    return out
