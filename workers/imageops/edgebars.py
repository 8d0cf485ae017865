"""Censor bars found by their geometry: two long straight parallel edges a constant distance
apart, one flat colour between them.

A complement to :mod:`workers.imageops.bars`, which finds flat single-colour regions and
judges their shape: a region that merges with a same-colour mass (a black bar touching black
hair), a bar too thin for its downscaled search, or bars crossing at odd angles escape it.
Here the search starts from edges instead. Line segments are found on a downscaled copy
(LSD); pairs of nearly parallel segments a bar's thickness apart whose strip is one colour
and whose outsides differ from it are candidates. Each candidate is then followed at full
size in a frame rotated to its axis: along the axis while its cross-section keeps the colour
(through crossings and masses of the same colour), and judged column by column: the colour
spans exactly the bar's thickness, and both sides, a few pixels out, are something else. A
bar is the run of such columns, which must be at least three thicknesses long, one colour
(JPEG aside) and end squarely in some other colour at least at one end (not at the picture's
border): the gap between two rows of lettering, or a strip of a balloon, runs on into the
same colour instead; the gap between hatching lines has the same colour again just past a
thin line. A contrasting rim a few pixels wide around the bar is taken with it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]
F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

# Longer side (px) of the copy searched for edges; thin bars must keep a few pixels there.
SEARCH_SIZE = 1024
# Thinnest bar (px at full size) and thickest (share of the shorter side).
_MIN_THICK = 6.0
_MAX_THICK_FRAC = 0.15
# LSD's bound on the gradient's quantisation error (OpenCV's default 2.0).
_LSD_QUANT = 0.7
# Shortest segment (px on the search copy) taken into pairs.
_MIN_SEG = 6.0
# Pieces of one edge joined: within this many degrees, px off the line (search copy), and
# gap (px, or half the shorter piece if more).
_JOIN_ANGLE = 2.0
_JOIN_OFF = 1.5
_JOIN_GAP = 6.0
# Two edges of one bar are parallel within this many degrees.
_ANGLE_TOL = 3.0
# Strip screening on the search copy: share of the inside near its colour, and of each side's
# samples away from it.
_SCREEN_INNER = 0.8
_SCREEN_SIDE = 0.45
_SCREEN_NEAR = 20.0
_SCREEN_FAR = 24.0
# Shortest edge (px on the search copy) that seeds a strip on its own (:func:`_one_sided`).
_ONE_MIN_SEG = 24.0
# ... and the thinnest strip it seeds (px at full size): thinner, a band of shading along
# an outline passes for one wherever it runs straight for a while.
_ONE_MIN_THICK = 16.0
# Tolerance of the bar's colour: at least this (RGB distance), and this many times the
# 90th percentile of its spread at the seed.
_TOL_FLOOR = 10.0
_TOL_NOISE = 3.0
# A bar's colour differs from what is beside it by at least this much (RGB distance).
_MIN_CONTRAST = 18.0
# ... or, a near colour, at least this much and this many times the 90th percentile of
# its own noise at the seed; then both sides must differ along this share of the bar.
_LOW_CONTRAST = 9.0
_LOW_NOISE = 4.0
_LOW_BOTH = 0.8
# Full-size columns: share of the inner rows in the bar's colour for the column to be
# "covered"; share of each side band away from it.
_COVERED = 0.9
_SIDE = 0.7
# A bar is at least this many thicknesses long (its judged columns).
_MIN_ASPECT = 3.0
# ... or this many, a block whose two ends are square (a box).
_MIN_BOX_ASPECT = 1.5
# A box is at least this thick (px): smaller ones are glyphs of lettering and dots.
_MIN_BOX_THICK = 16.0
# Share of a bar's extent whose columns are judged bar-like (crossings and masses take
# the rest).
_MIN_GOOD = 0.5
# Share of those whose two sides both differ from the bar.
_MIN_BOTH = 0.5
# Spread of the colour inside (RGB distance from the median): JPEG q=80 stays under these.
_MAX_P75 = 7.0
_MAX_P95 = 16.0
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# Largest spread (5th to 95th percentile) of the brightness of the bar's columns (their
# medians): this, or this many times the spread within a column (JPEG's noise) plus one.
_MAX_STEP = 1.5
_STEP_NOISE = 2.5
# ... unless the spread is in colour only (JPEG's chroma): brightness's own limit.
_MAX_LUMA_P75 = 2.5
# Straightness of a bar's sides over its length (px): largest sag of a fitted parabola,
# scatter around it.
_MAX_SAG = 1.0
_MAX_SCATTER = 0.8
_MIN_INLIERS = 0.75
# An edge is sharp where the pixel 3 px past it is this many tolerances (and at least
# _SHARP_MIN) from the bar's colour; straightness is judged on the sharp columns when they
# are this share of all.
_SHARP = 2.5
_SHARP_MIN = 24.0
_MIN_SHARP = 0.4
# Widest contrasting rim taken with a bar (px).
_MAX_RIM = 6
# Rows of blend between a bar and its rim.
_RIM_BLEND = 2
# Thinnest bar (px) whose rim is looked for.
_MIN_RIMMED = 10.0


class _Cand(NamedTuple):
    cx: float  # centre of the strip (full-size px)
    cy: float
    ux: float  # unit axis
    uy: float
    thick: float  # full-size px
    half: float  # half the length seen between the edges (full-size px)
    score: float


class _Bar(NamedTuple):
    poly: NDArray[np.float32]  # 4 corners, full size
    # The same run on through another bar's overlap (None: it does not).
    grown: NDArray[np.float32] | None = None


# What a window too short for its bar answers.
_MORE = _Bar(np.zeros((0, 2), np.float32))


def _segments(gray: NDArray[np.uint8], quant: float = 2.0) -> F64:
    lsd = cv2.createLineSegmentDetector(cv2.LSD_REFINE_NONE, 0.8, 0.6, quant)
    found = lsd.detect(gray)[0]
    if found is None:
        return np.zeros((0, 4), np.float64)
    segs = np.asarray(found, np.float64).reshape(-1, 4)
    length = np.hypot(segs[:, 2] - segs[:, 0], segs[:, 3] - segs[:, 1])
    out: F64 = segs[length >= _MIN_SEG]
    return out


def _joined(segs: F64) -> F64:
    """Segments lying on one line with short gaps, joined end to end: a bar's edge is cut
    into pieces wherever what lies beside it turns lighter or darker than the bar (the
    gradient flips) or an ink line crosses it, and two sides cut in different places would
    overlap too little to pair. Only the joined lines (two or more pieces) are answered."""
    n = len(segs)
    if n < 2:
        return np.zeros((0, 4), np.float64)
    p1, p2 = segs[:, :2], segs[:, 2:]
    d = p2 - p1
    length = np.hypot(d[:, 0], d[:, 1])
    u = d / length[:, None]
    u = np.where((u[:, 0] < 0)[:, None] | ((u[:, 0] == 0) & (u[:, 1] < 0))[:, None], -u, u)
    theta = np.degrees(np.arctan2(u[:, 1], u[:, 0]))  # -90 .. 90
    order = np.argsort(theta)
    th = theta[order]
    hi = np.searchsorted(th, th + _JOIN_ANGLE, side="right")
    counts = np.maximum(hi - np.arange(n) - 1, 0)
    ii = np.repeat(np.arange(n), counts)
    if ii.size == 0:
        return np.zeros((0, 4), np.float64)
    starts = np.cumsum(counts) - counts
    jj = ii + 1 + (np.arange(ii.size) - np.repeat(starts, counts))
    a, b = order[ii], order[jj]
    ua = u[a]
    na = np.stack([-ua[:, 1], ua[:, 0]], 1)
    # b's endpoints off a's line, and the gap between them along it.
    off = np.maximum(np.abs(((p1[b] - p1[a]) * na).sum(1)), np.abs(((p2[b] - p1[a]) * na).sum(1)))
    ta = np.sort(np.stack([(p1[a] * ua).sum(1), (p2[a] * ua).sum(1)], 1), 1)
    tb = np.sort(np.stack([(p1[b] * ua).sum(1), (p2[b] * ua).sum(1)], 1), 1)
    gap = np.maximum(ta[:, 0], tb[:, 0]) - np.minimum(ta[:, 1], tb[:, 1])
    ok = (off <= _JOIN_OFF) & (gap <= np.maximum(_JOIN_GAP, 0.5 * np.minimum(length[a], length[b])))
    if not ok.any():
        return np.zeros((0, 4), np.float64)
    # Groups: connected components of the joinable pairs.
    parent = np.arange(n)

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = int(parent[k])
        return k

    for x, y in zip(a[ok].tolist(), b[ok].tolist(), strict=True):
        rx, ry = root(x), root(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    roots = np.array([root(k) for k in range(n)])
    out = []
    for r in np.unique(roots[np.bincount(roots, minlength=n)[roots] >= 2]):
        g = np.flatnonzero(roots == r)
        w = length[g]
        ug = (u[g] * w[:, None]).sum(0)
        ug /= np.hypot(ug[0], ug[1])
        pts = np.concatenate([p1[g], p2[g]])
        c = (((p1[g] + p2[g]) / 2) * w[:, None]).sum(0) / w.sum()
        t = (pts - c) @ ug
        out.append(np.concatenate([c + t.min() * ug, c + t.max() * ug]))
    return np.asarray(out, np.float64).reshape(-1, 4)


def _pairs(segs: F64, tmin: float, tmax: float) -> tuple[F64, F64, F64, F64, F64, F64]:
    """Pairs of near-parallel segments ``tmin``..``tmax`` apart that overlap along their
    axis: centre (x, y), axis (ux, uy), thickness and overlap, all on the search copy."""
    empty = np.zeros(0)
    if len(segs) < 2:
        return empty, empty, empty, empty, empty, empty
    p1, p2 = segs[:, :2], segs[:, 2:]
    d = p2 - p1
    length = np.hypot(d[:, 0], d[:, 1])
    d = d / length[:, None]
    theta = np.degrees(np.arctan2(d[:, 1], d[:, 0])) % 180.0
    order = np.argsort(theta)
    th = theta[order]
    # Wrap-around: segments near 180 degrees also meet those near 0.
    ext_idx = np.concatenate([order, order[th > 180.0 - _ANGLE_TOL]])
    ext_th = np.concatenate([th, th[th > 180.0 - _ANGLE_TOL] - 180.0])
    srt = np.argsort(ext_th, kind="stable")
    ext_idx, ext_th = ext_idx[srt], ext_th[srt]
    hi = np.searchsorted(ext_th, ext_th + _ANGLE_TOL, side="right")
    counts = hi - np.arange(len(ext_th)) - 1
    counts = np.maximum(counts, 0)
    ii = np.repeat(np.arange(len(ext_th)), counts)
    if ii.size == 0:
        return empty, empty, empty, empty, empty, empty
    starts = np.cumsum(counts) - counts
    jj = ii + 1 + (np.arange(ii.size) - np.repeat(starts, counts))
    a, b = ext_idx[ii], ext_idx[jj]
    keep = a != b
    a, b = a[keep], b[keep]
    da, db = d[a], d[b]
    flip = (da * db).sum(axis=1) < 0
    db = np.where(flip[:, None], -db, db)
    u = da * length[a, None] + db * length[b, None]
    u = u / np.hypot(u[:, 0], u[:, 1])[:, None]
    n = np.stack([-u[:, 1], u[:, 0]], axis=1)
    # Offsets of all four endpoints across the axis.
    ra1, ra2 = (n * p1[a]).sum(1), (n * p2[a]).sum(1)
    rb1, rb2 = (n * p1[b]).sum(1), (n * p2[b]).sum(1)
    ra, rb = (ra1 + ra2) / 2, (rb1 + rb2) / 2
    thick = np.abs(ra - rb)
    skew = np.maximum(np.abs(ra1 - ra2), np.abs(rb1 - rb2))
    # Along the axis.
    ta = np.sort(np.stack([(u * p1[a]).sum(1), (u * p2[a]).sum(1)], 1), 1)
    tb = np.sort(np.stack([(u * p1[b]).sum(1), (u * p2[b]).sum(1)], 1), 1)
    lo, hi2 = np.maximum(ta[:, 0], tb[:, 0]), np.minimum(ta[:, 1], tb[:, 1])
    over = hi2 - lo
    ok = (
        (thick >= tmin)
        & (thick <= tmax)
        & (skew <= np.maximum(1.5, 0.2 * thick))
        & (over >= np.maximum(0.8 * thick, 5.0))
    )
    u, n, ra, rb, thick, lo, hi2, over = (v[ok] for v in (u, n, ra, rb, thick, lo, hi2, over))
    mid_t, mid_r = (lo + hi2) / 2, (ra + rb) / 2
    cx = u[:, 0] * mid_t + n[:, 0] * mid_r
    cy = u[:, 1] * mid_t + n[:, 1] * mid_r
    return cx, cy, u[:, 0], u[:, 1], thick, over


def _one_sided(
    small: F32, segs: F64, tmin: float, tmax: float
) -> tuple[F64, F64, F64, F64, F64, F64]:
    """Strips seeded by one long edge whose partner LSD did not find (screentone or hatching
    along it, or ink touching it all the way): on each side of the edge, a flat colour is
    followed across until most samples leave it; where that is a bar's thickness away, the
    strip between is a candidate. As :func:`_pairs` answers, on the search copy."""
    empty = np.zeros(0)
    if len(segs) == 0:
        return empty, empty, empty, empty, empty, empty
    p1, p2 = segs[:, :2], segs[:, 2:]
    d = p2 - p1
    length = np.hypot(d[:, 0], d[:, 1])
    # Long enough to seed a bar three of its thinnest thicknesses long.
    long = length >= max(_ONE_MIN_SEG, _MIN_ASPECT * tmin)
    if not long.any():
        return empty, empty, empty, empty, empty, empty
    p1, d, length = p1[long], d[long], length[long]
    u = d / length[:, None]
    n = np.stack([-u[:, 1], u[:, 0]], axis=1)
    h, w = small.shape[:2]
    k = 8
    f = (np.arange(k) + 0.5) / k * 0.9 + 0.05  # along, share of the segment
    # Across, px: every pixel near the edge, then in steps of a tenth (a thickness is
    # judged within 30 % at full size).
    offs = [1.5, 2.5]
    while offs[-1] < tmax + 2:
        offs.append(offs[-1] + max(1.0, 0.1 * offs[-1]))
    across = np.asarray(offs, np.float64)
    base = p1[:, None, :] + (f[None, :, None] * length[:, None, None]) * u[:, None, :]
    small_u8 = np.ascontiguousarray(np.clip(small, 0, 255).astype(np.uint8))
    out: list[F64] = []
    for sign in (-1.0, 1.0):
        pts = base[:, :, None, :] + sign * across[None, None, :, None] * n[:, None, None, :]
        mx, my = pts[..., 0].astype(np.float32), pts[..., 1].astype(np.float32)
        flat_px = cv2.remap(
            small_u8, mx.reshape(-1, len(across)), my.reshape(-1, len(across)), cv2.INTER_NEAREST
        )
        px = np.asarray(flat_px, np.float32).reshape(len(p1), k, len(across), 3)
        gone_px = (mx < -0.5) | (mx > w - 0.5) | (my < -0.5) | (my > h - 0.5)
        colour = np.median(px[:, :, :2].reshape(len(px), -1, 3), axis=1)
        near = np.sqrt(((px - colour[:, None, None, :]) ** 2).sum(3)) <= _SCREEN_NEAR
        near &= ~gone_px
        share = near.mean(1)  # (N, D)
        flat = share[:, :2].min(1) >= _SCREEN_INNER
        # The first offset where most samples have left the colour: the far edge.
        gone = share < 0.5
        gone[:, -1] = True
        last = share <= 0.2
        first = np.argmax(gone, axis=1)
        thick = np.where(first > 0, (across[first] + across[np.maximum(first - 1, 0)]) / 2, 0.0)
        # Mean share over the offsets before it (the strip up to its far edge).
        cum = np.cumsum(share, axis=1)
        inside = cum[np.arange(len(share)), np.maximum(first - 1, 0)] / np.maximum(first, 1)
        # A bar's far side is straight and parallel: its samples leave the colour together
        # (within a step or two), where a fill bounded by curves thins out gradually.
        last[:, -1] = True
        sharp = np.argmax(last, axis=1) - np.argmax(share < _SCREEN_INNER, axis=1) <= 2
        ok = flat & sharp & (thick >= tmin) & (thick <= tmax) & (inside >= _SCREEN_INNER)
        ok &= length >= 0.8 * thick
        # The picture's border is no far side: a strip of background between a line and
        # the border is no bar's thickness (a bar cut by the border is found by its pair).
        beyond = gone_px.mean(1)[np.arange(len(share)), first]
        ok &= beyond < 0.5
        mid = p1 + 0.5 * length[:, None] * u
        c = mid + sign * (thick / 2)[:, None] * n
        out.append(np.concatenate([c, u, thick[:, None], length[:, None]], axis=1)[ok])
    res = np.concatenate(out)
    return res[:, 0], res[:, 1], res[:, 2], res[:, 3], res[:, 4], res[:, 5]


def _sample(img: F32, xs: F64, ys: F64) -> F32:
    """Nearest-pixel colours at (xs, ys), any shape; outside the picture: -1000."""
    h, w = img.shape[:2]
    xi, yi = np.rint(xs).astype(np.int64), np.rint(ys).astype(np.int64)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    out = img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)].astype(np.float32)
    out[~inside] = -1000.0
    return out


def _screen(small: F32, cx: F64, cy: F64, ux: F64, uy: F64, thick: F64, over: F64) -> Mask:
    """Cheap look at each candidate strip on the search copy: one colour inside, another
    on both sides."""
    k = 16
    f = (np.arange(k) + 0.5) / k - 0.5  # along, as a share of the overlap
    nx, ny = -uy, ux
    along = f[None, :] * over[:, None] * 0.9
    inner_v = np.stack([-0.25 * thick, 0 * thick, 0.25 * thick], 1)  # (N, 3)
    xs = (
        cx[:, None, None]
        + ux[:, None, None] * along[:, :, None]
        + nx[:, None, None] * inner_v[:, None, :]
    )
    ys = (
        cy[:, None, None]
        + uy[:, None, None] * along[:, :, None]
        + ny[:, None, None] * inner_v[:, None, :]
    )
    inner = _sample(small, xs, ys).reshape(len(cx), -1, 3)
    colour = np.median(inner, axis=1)
    spread = np.sqrt(((inner - colour[:, None, :]) ** 2).sum(2))
    near = spread <= _SCREEN_NEAR
    ok = near.mean(1) >= _SCREEN_INNER
    # A flat inside lets a near colour beside it count as different.
    far_at = np.clip(_LOW_NOISE * np.percentile(spread, 90, axis=1), _LOW_CONTRAST, _SCREEN_FAR)
    for sign in (-1.0, 1.0):
        off = sign * (thick / 2 + np.maximum(1.5, 0.2 * thick))
        sx = cx[:, None] + ux[:, None] * along + (nx * off)[:, None]
        sy = cy[:, None] + uy[:, None] * along + (ny * off)[:, None]
        side = _sample(small, sx, sy)
        far = np.sqrt(((side - colour[:, None, :]) ** 2).sum(2)) >= far_at[:, None]
        ok &= far.mean(1) >= _SCREEN_SIDE
    res: Mask = ok
    return res


def _candidates(rgb: Image) -> tuple[list[_Cand], float]:
    h, w = rgb.shape[:2]
    scale = min(1.0, SEARCH_SIZE / max(h, w))
    if scale < 1.0:
        size = (max(round(w * scale), 1), max(round(h * scale), 1))
        small = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
    else:
        small = rgb
    gray = np.asarray(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), np.uint8)
    # Light grey on pale skin differs in saturation more than in brightness.
    r, g, b = cv2.split(small)
    chroma = np.asarray(
        cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)), np.uint8
    )
    # Faint edges too (OpenCV's default bound on the gradient's quantisation error, 2, cut
    # to a third): a white bar over 248 paper differs by 7 grey levels. A search of its own,
    # as the finer one cuts and joins the strong edges differently.
    segs = np.concatenate([_segments(gray), _segments(chroma), _segments(gray, _LSD_QUANT)])
    segs = np.concatenate([segs, _joined(segs)])
    tmin = max(3.0, _MIN_THICK * scale) - 1.0
    tmax = _MAX_THICK_FRAC * min(h, w) * scale
    smallf = small.astype(np.float32)
    paired = _pairs(segs, tmin, tmax)
    one = _one_sided(smallf, segs, max(tmin, _ONE_MIN_THICK * scale), tmax)
    # Strips seeded by one edge come after all pairs, however long: a strip already looked
    # at is not judged again (find_edge_bars), and a pair measures its thickness better.
    cands: list[_Cand] = []
    for cx, cy, ux, uy, thick, over in (paired, one):
        if cx.size == 0:
            continue
        ok = _screen(smallf, cx, cy, ux, uy, thick, over)
        cands += [
            _Cand(
                float(cx[i] / scale),
                float(cy[i] / scale),
                float(ux[i]),
                float(uy[i]),
                float(thick[i] / scale),
                float(over[i] / scale / 2),
                float(over[i]),
            )
            for i in np.flatnonzero(ok)[np.argsort(-over[ok], kind="stable")]
        ]
    return cands, scale


def _runs_from_centre(inside: Mask, centre: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per column: how many rows above and below ``centre`` are inside without a break."""
    out = []
    for part in (inside[centre::-1], inside[centre:]):
        first_out = np.argmin(part, axis=0).astype(np.int64)
        first_out[part.all(axis=0)] = part.shape[0]
        out.append(first_out - 1)
    return out[0], out[1]


def _frame(rgb: Image, c: _Cand, t0: int, cols: int, half_rows: int) -> tuple[F32, F64]:
    """The picture resampled in the candidate's frame: column x, row y is the point
    centre + (x + t0) u + (y - half_rows) n; outside the picture -1000. Also the affine map
    from frame to picture coordinates."""
    h, w = rgb.shape[:2]
    ux, uy = c.ux, c.uy
    nx, ny = -uy, ux
    rows = 2 * half_rows + 1
    m = np.array(
        [
            [ux, nx, c.cx + t0 * ux - half_rows * nx],
            [uy, ny, c.cy + t0 * uy - half_rows * ny],
        ],
        np.float64,
    )
    frame = np.asarray(
        cv2.warpAffine(rgb, m, (cols, rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP),
        np.float32,
    )
    # Out of the picture, computed rather than marked: uint8 has no value to spare.
    xs = np.arange(cols, dtype=np.float32)[None, :]
    ys = np.arange(rows, dtype=np.float32)[:, None]
    sx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    sy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    out = (sx < -0.5) | (sx > w - 0.5) | (sy < -0.5) | (sy > h - 0.5)
    if out.any():
        frame[out] = -1000.0
    return frame, m


def _refine(rgb: Image, c: _Cand) -> _Bar | None:
    h, w = rgb.shape[:2]
    t = c.thick
    wb = int(np.clip(round(t / 2), 3, 10))
    pad = math.ceil(max(t * 0.25, 3.0)) + 2 + wb + _MAX_RIM + 2
    half_rows = math.ceil(t / 2) + pad
    # The axis line's extent inside the picture.
    tlo, thi = -1e9, 1e9
    for p, d, size in ((c.cx, c.ux, w), (c.cy, c.uy, h)):
        if abs(d) > 1e-9:
            a, b = (-0.5 - p) / d, (size - 0.5 - p) / d
            tlo, thi = max(tlo, min(a, b)), min(thi, max(a, b))
    t0, t1 = math.floor(tlo), math.ceil(thi)
    if t1 - t0 + 1 < _MIN_BOX_ASPECT * t:
        return None
    # First the seed alone (cheap), then the whole line through the picture.
    q0, q1 = max(t0, int(-c.half) - 2), min(t1, int(c.half) + 2)
    frame, m = _frame(rgb, c, q0, q1 - q0 + 1, half_rows)
    if _judge(frame, c, q0, half_rows, m, quick=True) is None:
        return None
    # Then a window around it, widened while the bar's colour runs on to its ends.
    reach = max(4.0 * t, 2.0 * c.half, 64.0)
    while True:
        w0, w1 = max(t0, int(-c.half - reach)), min(t1, int(c.half + reach))
        frame, m = _frame(rgb, c, w0, w1 - w0 + 1, half_rows)
        bar = _judge(frame, c, w0, half_rows, m, more=(w0 > t0, w1 < t1))
        if bar is not _MORE:
            return bar
        reach *= 2.5


def _judge(
    frame: F32,
    c: _Cand,
    t0: int,
    half_rows: int,
    m: F64,
    quick: bool = False,
    more: tuple[bool, bool] = (False, False),
) -> _Bar | None:
    _rows, cols = frame.shape[:2]
    outside = frame[:, :, 0] < -1.0
    t = c.thick
    ctr = half_rows
    s0, s1 = int(-t0 - c.half), int(-t0 + c.half) + 1
    s0, s1 = max(s0, 0), min(s1, cols)
    if s1 - s0 < 2:
        return None
    ri = max(0, int(t / 2 - max(1.5, 0.2 * t)))
    seed = frame[ctr - ri : ctr + ri + 1, s0:s1].reshape(-1, 3)
    if (seed < -1).any():
        return None
    colour = np.median(seed, axis=0)
    diff = frame - colour.astype(np.float32)
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    dist[outside] = 1000.0
    # Contrast beside the seed.
    offs = {round(t / 2 + 2), round(t / 2 + 3), round(t / 2 + max(2.0, 0.2 * t))}
    k_top = max(float(np.median(dist[ctr - o, s0:s1])) for o in offs)
    k_bot = max(float(np.median(dist[ctr + o, s0:s1])) for o in offs)
    contrast = min(k_top, k_bot)
    # A near colour (a light grey bar on white paper, pink on pink) passes where the
    # colour is flat to well under the contrast: the seed's own noise decides.
    noise = float(np.percentile(dist[ctr - ri : ctr + ri + 1, s0:s1], 90))
    low = contrast < _MIN_CONTRAST
    if low and contrast < max(_LOW_CONTRAST, _LOW_NOISE * noise):
        return None
    # What counts as the bar's colour: within half the contrast with its sides, but no
    # further from it than its own (JPEG) noise warrants: past the seed, a side of a near
    # colour (a dark bar over a night sky, a light one over pale skin) would otherwise pass
    # for more bar, and the bar for wider than it is there or running on past its end. The
    # noise is read out to 2 px from the edges, where JPEG's coarser chroma bleeds in.
    rn = max(ri, int(t / 2 - 2))
    # Pixels of another colour there (the candidate a little off the bar's middle: its rim)
    # are not noise.
    floor = min(_TOL_FLOOR, 0.5 * contrast)
    tol = float(np.clip(0.5 * contrast, floor, 40.0))
    strip = dist[ctr - rn : ctr + rn + 1, s0:s1]
    strip = strip[strip < tol]
    if strip.size:
        tol = min(tol, max(floor, _TOL_NOISE * float(np.percentile(strip, 90))))
    inside = dist < tol
    top, bot = _runs_from_centre(inside, ctr)
    # The edges seen from the seed: medians of the runs.
    st, sb = top[s0:s1], bot[s0:s1]
    et, eb = float(np.median(st)), float(np.median(sb))
    width = seen = et + eb + 1
    if abs(seen - t) > max(3.0, 0.3 * t):
        # JPEG rings a thin bar of a saturated colour a row or two deep on each side, past
        # the colour's tolerance (a 9 px red bar at q=92 kept 6 rows): the edges' middles,
        # where the colour is half-way to its sides, are what the edge pair measured.
        seen = float(np.median(_edge_pos(dist, ctr, top, -1)[0][s0:s1]))
        seen += float(np.median(_edge_pos(dist, ctr, bot, 1)[0][s0:s1]))
    if seen < _MIN_THICK or abs(seen - t) > max(3.0, 0.3 * t):
        return None
    tolw = max(1.5, 0.12 * width)
    good_w = (np.abs(top - et) <= tolw) & (np.abs(bot - eb) <= tolw)
    # Columns covered: the inner rows (between the seen edges) in the colour.
    mi = max(1, round(max(1.5, 0.15 * width)))
    a, b = int(ctr - et + mi), int(ctr + eb - mi)
    if b < a:
        a = b = ctr
    covered = np.count_nonzero(inside[a : b + 1], axis=0) >= _COVERED * (b + 1 - a)
    # A rim: a band of another colour a few pixels wide along both sides; what lies past
    # it may be the bar's colour again (a pink bar rimmed in black on pink skin). Thin
    # strips between lines (hatching) would look rimmed too, hence the least thickness.
    rim = 0
    if width >= _MIN_RIMMED:
        rim = _rim(frame, colour, tol, int(ctr - et), int(ctr + eb), covered & good_w)
    if rim and _repeats(inside, covered & good_w, int(ctr - et), int(ctr + eb), rim, width):
        return None
    if rim:
        wb, g = rim - 1, 1
    else:
        wb, g = int(np.clip(round(width * 0.75), 6, 12)), 2
    top_in = np.count_nonzero(inside[int(ctr - et) - g - wb : int(ctr - et) - g, :], axis=0)
    bot_in = np.count_nonzero(inside[int(ctr + eb) + g + 1 : int(ctr + eb) + g + wb + 1, :], axis=0)
    top_ok, bot_ok = top_in <= (1 - _SIDE) * wb, bot_in <= (1 - _SIDE) * wb
    # Where another bar of the colour crosses at a shallow angle, or a mass of it lies
    # alongside, one side is the colour for a while: one side suffices there, both must
    # differ along most of the bar.
    good = covered & good_w & (top_ok | bot_ok)
    both = good & top_ok & bot_ok
    if quick:
        return _Bar(np.zeros((0, 2), np.float32)) if good[s0:s1].mean() >= 0.4 else None
    # Follow the covered run from the seed (tiny gaps allowed).
    seed_col = (s0 + s1) // 2
    if not covered[seed_col]:
        near = np.flatnonzero(covered[s0:s1])
        if near.size == 0:
            return None
        seed_col = s0 + int(near[near.size // 2])
    gap = max(2, int(0.1 * width))
    lo = _reach(covered, seed_col, 0, -1, gap)
    hi = _reach(covered, seed_col, cols - 1, 1, gap)
    if (lo == 0 and more[0]) or (hi == cols - 1 and more[1]):
        return _MORE
    gidx = np.flatnonzero(good[lo : hi + 1])
    if gidx.size == 0:
        return None
    ga, gb = lo + int(gidx[0]), lo + int(gidx[-1])
    length = gb - ga + 1
    # A short block (under three thicknesses long) must be a box: both ends square in
    # another colour, and both sides differing along most of it.
    boxy = length < _MIN_ASPECT * width
    if boxy and (length < _MIN_BOX_ASPECT * width or width < _MIN_BOX_THICK):
        return None
    if gidx.size < _MIN_GOOD * length:
        return None
    strict = low or boxy
    if np.count_nonzero(both[ga : gb + 1]) < (_LOW_BOTH if strict else _MIN_BOTH) * gidx.size:
        return None
    # Straight sides a constant distance apart: a limb's lit side or a shadow bends away,
    # a tapered stroke narrows.
    if not _straight(dist, tol, ctr, top, bot, good, ga, gb, width):
        return None
    # One colour inside (over the judged columns).
    inner = dist[a : b + 1, ga : gb + 1][:, good[ga : gb + 1]]
    if np.percentile(inner, 95) > _MAX_P95:
        return None
    if np.percentile(inner, 75) > _MAX_P75:
        # JPEG keeps a saturated colour's chroma coarser (subsampled, quantised harder) than
        # its brightness: a thin bar of one is noisy in colour but flat in luma.
        sel = frame[a : b + 1, ga : gb + 1][:, good[ga : gb + 1]]
        luma = sel @ _LUMA
        if np.percentile(np.abs(luma - float(np.median(luma))), 75) > _MAX_LUMA_P75:
            return None
    # Nor steps along it: a run of like cells in a mosaic is as flat and as straight, but
    # its cells differ by a few levels, less than the colour's tolerance.
    lum = (frame[a : b + 1, ga : gb + 1] @ _LUMA)[:, good[ga : gb + 1]]
    lo_l, hi_l = np.percentile(np.median(lum, axis=0), (5, 95))
    p10, p90 = np.percentile(lum, (10, 90), axis=0)
    within = float(np.median(p90 - p10))
    if hi_l - lo_l > max(_MAX_STEP, _STEP_NOISE * within + 1.0):
        return None
    # Square ends in another colour (not the picture's border).
    endm = max(3, int(0.3 * width))

    def true_end(g_at: int, run_end: int, step: int) -> bool:
        if abs(g_at - run_end) > endm:
            return False
        beyond = run_end + step * 2
        if beyond < 0 or beyond >= cols:
            return False
        col = slice(a, b + 1)
        if outside[col, beyond].any():
            return False
        return bool(inside[col, beyond].mean() <= 0.2)

    ends = (true_end(ga, lo, -1), true_end(gb, hi, 1))
    if not (all(ends) if boxy else any(ends)):
        return None
    spans = [(lo - 0.5 if ends[0] else ga - 0.5, hi + 0.5 if ends[1] else gb + 0.5)]
    # Where another bar of the colour overlaps this one's other end (bars laid over each
    # other end to end, thicker or offset), the cross-section is wider there and no column
    # is judged; the bar still runs on while one of its edges stays in place with another
    # colour past it and its inner rows keep the colour. A mass of the colour (hair) that
    # swallows the bar has the colour past both edges instead. Only past a bar that
    # already ends squarely: the strip between a balloon's border and its lettering would
    # otherwise run on into the margins past the lettering; and only into another bar
    # found (find_edge_bars), or a limb's band runs on along its outline.
    half = covered & (((np.abs(top - et) <= tolw) & top_ok) | ((np.abs(bot - eb) <= tolw) & bot_ok))
    if not ends[0]:
        ga = _reach(half, ga, lo, -1, gap)
    if not ends[1]:
        gb = _reach(half, gb, hi, 1, gap)
    ends = (true_end(ga, lo, -1), true_end(gb, hi, 1))
    spans.append((lo - 0.5 if ends[0] else ga - 0.5, hi + 0.5 if ends[1] else gb + 0.5))
    # The sides where the colour is half-way to what lies past them (the edge's middle,
    # sub-pixel): the last pixel near the bar's colour lies up to a pixel inside that when
    # the colour's tolerance is tight.
    gcols = np.flatnonzero(good[ga : gb + 1]) + ga
    et_mid = float(np.median(_edge_pos(dist, ctr, top, -1)[0][gcols]))
    eb_mid = float(np.median(_edge_pos(dist, ctr, bot, 1)[0][gcols]))
    y0 = ctr - float(np.clip(et_mid, et + 0.5, et + 1.5))
    y1 = ctr + float(np.clip(eb_mid, eb + 0.5, eb + 1.5))
    y0, y1 = y0 - rim, y1 + rim
    polys = []
    for x0, x1 in spans:
        x0, x1 = x0 - rim, x1 + rim
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        polys.append((corners @ m[:, :2].T + m[:, 2]).astype(np.float32))
    return _Bar(polys[0], polys[1] if spans[1] != spans[0] else None)


def _reach(ok: Mask, start: int, stop: int, step: int, gap: int) -> int:
    """The last column of ``ok`` reached from ``start`` towards ``stop`` (at most), stepping
    over runs of up to ``gap`` columns that are not."""
    at = last = start
    while at != stop:
        at += step
        if ok[at]:
            last = at
        elif abs(at - last) > gap:
            break
    return last


def _edge_pos(dist: F32, ctr: int, run: NDArray[np.int64], sign: int) -> tuple[F64, F32]:
    """Sub-pixel offset from ``ctr`` of each column's edge: where the distance from the bar's
    colour crosses half that of the pixel 3 px outside (an anti-aliased edge's middle); and
    that pixel's distance (the edge's contrast)."""
    rows = dist.shape[0]
    cols = np.arange(dist.shape[1])
    base = run - 1
    prof = np.stack([dist[np.clip(ctr + sign * (base + k), 0, rows - 1), cols] for k in range(5)])
    half = 0.5 * prof[4]
    above = prof >= half[None, :]
    above[4] = True
    k = np.argmax(above, axis=0)  # first at or past half, >= 1 as prof[0] is inside
    k = np.maximum(k, 1)
    lo, hi = prof[k - 1, cols], prof[k, cols]
    frac = np.clip((half - lo) / np.maximum(hi - lo, 1e-3), 0.0, 1.0)
    pos: F64 = base + (k - 1) + frac.astype(np.float64)
    far: F32 = prof[4]
    return pos, far


def _straight(
    dist: F32,
    tol: float,
    ctr: int,
    top: NDArray[np.int64],
    bot: NDArray[np.int64],
    good: Mask,
    ga: int,
    gb: int,
    width: float,
) -> bool:
    x = np.flatnonzero(good[ga : gb + 1]) + ga
    if x.size < 6:
        return False
    et, ft = (v[x] for v in _edge_pos(dist, ctr, top, -1))
    eb, fb = (v[x] for v in _edge_pos(dist, ctr, bot, 1))
    # Where what lies beside the bar is near its colour, JPEG's noise moves the edge found by
    # a pixel or two (a grey bar over a lighter grey): judged where both edges are sharp,
    # when most are.
    sharp = (ft >= max(_SHARP * tol, _SHARP_MIN)) & (fb >= max(_SHARP * tol, _SHARP_MIN))
    if np.count_nonzero(sharp) >= max(6, _MIN_SHARP * x.size):
        x, et, eb = x[sharp], et[sharp], eb[sharp]
    xc = (x - x.mean()) / max(float(x.max() - x.min()), 1.0)  # -0.5 .. 0.5
    keep = np.ones(x.size, bool)
    for e in (et, eb):
        # Ink or another bar touching a side moves its edge in places: fitted twice, the
        # second time without the columns far off the first fit.
        fit = np.polyfit(xc, e, 2)
        res = np.abs(e - np.polyval(fit, xc))
        keep &= res <= max(1.0, 2.5 * float(np.median(res)))
    if keep.mean() < _MIN_INLIERS:
        return False
    xk = xc[keep]
    for e in (et[keep], eb[keep]):
        a2, a1, a0 = np.polyfit(xk, e, 2)
        res = e - (a2 * xk**2 + a1 * xk + a0)
        # Sag of the quadratic over the length, and scatter around it.
        if abs(a2) * 0.25 > _MAX_SAG or float(np.std(res)) > _MAX_SCATTER:
            return False
    # The thickness does not drift along the bar.
    s1 = np.polyfit(xk, et[keep] + eb[keep], 1)[0]
    return bool(abs(s1) <= max(1.2, 0.06 * width))


def _repeats(inside: Mask, cols: Mask, top: int, bot: int, rim: int, width: float) -> bool:
    """Whether past the rim on either side comes another strip of the bar's colour as wide
    as the bar, then another line: a gap between hatching lines, not a rimmed bar."""
    if cols.sum() < 8:
        return False
    rows = inside.shape[0]
    wd = round(width)
    for sign, edge in ((-1, top), (1, bot)):
        strip = [edge + sign * k for k in range(rim + 2, rim + wd - 1)]
        line = [edge + sign * k for k in range(rim + wd - 1, 2 * rim + wd + 2)]
        if min(strip + line) < 0 or max(strip + line) >= rows:
            continue
        share_strip = float(inside[strip][:, cols].mean())
        share_line = min(float(inside[r][cols].mean()) for r in line)
        if share_strip >= 0.6 and share_line <= 0.3:
            return True
    return False


def _rim(frame: F32, colour: F32, tol: float, top: int, bot: int, cols: Mask) -> int:
    """Width (px past the edge rows ``top`` and ``bot``) of a band of one colour, unlike
    the bar's, hugging both long sides over the columns ``cols``; 0 if there is none."""
    if cols.sum() < 8:
        return 0
    rows = frame.shape[0]

    def band(row: int) -> tuple[F32, float] | None:
        if row < 0 or row >= rows:
            return None
        px = frame[row][cols]
        if (px < -1).any():
            return None
        col = np.median(px, axis=0).astype(np.float32)
        share = float((np.sqrt(((px - col) ** 2).sum(1)) < 30.0).mean())
        return col, share

    def dist(a: F32, b: F32) -> float:
        return float(np.sqrt(((a - b) ** 2).sum()))

    widths = []
    colours = []
    for sign, edge in ((-1, top), (1, bot)):
        got: list[tuple[F32, float]] = []
        for k in range(1, _MAX_RIM + 3):
            one = band(edge + sign * k)
            if one is None:
                break
            got.append(one)
        # The rim's colour: the row of one colour farthest from the bar's. Blends of bar
        # and rim come before it (two rows where the edge falls between pixels, or where
        # the bar's axis is off by a fraction of a degree and the blend's phase drifts
        # along the bar), and may pass for a band of their own.
        flat = [k for k, (col, share) in enumerate(got) if share >= 0.8]
        if not flat:
            return 0
        kk = max(flat, key=lambda k: dist(got[k][0], colour))
        first = got[kk][0]
        if dist(first, colour) < 2 * tol:
            return 0
        k0 = k1 = kk
        while k0 > 0 and got[k0 - 1][1] >= 0.8 and dist(got[k0 - 1][0], first) <= 40.0:
            k0 -= 1
        while k1 + 1 < len(got) and got[k1 + 1][1] >= 0.8 and dist(got[k1 + 1][0], first) <= 40.0:
            k1 += 1
        wdt = k1 + 1
        if k0 > _RIM_BLEND or wdt > _MAX_RIM + 1 or wdt < 2:
            return 0
        # A rim ends where another colour begins (after a row of blend, at most). Where
        # the next two rows keep its colour and are only less flat (strokes crossing a
        # plain background at random), the "rim" is the background itself, and taking it
        # would paint a frame around the bar.
        past = got[k1 + 1 : k1 + 3]
        if len(past) == 2 and all(dist(col, first) <= 40.0 for col, _ in past):
            return 0
        widths.append(wdt)
        colours.append(first)
    if abs(widths[0] - widths[1]) > 1:
        return 0
    if float(np.sqrt(((colours[0] - colours[1]) ** 2).sum())) > 40.0:
        return 0
    return min(widths)


def _same_strip(c: _Cand, o: _Cand) -> bool:
    """Whether ``c`` lies on the strip already looked at from ``o`` (same line, overlapping
    seeds, like thickness): it would be judged the same."""
    if abs(c.ux * o.ux + c.uy * o.uy) < math.cos(math.radians(_ANGLE_TOL)):
        return False
    if abs(c.thick - o.thick) > 0.2 * o.thick + 1.0:
        return False
    dx, dy = c.cx - o.cx, c.cy - o.cy
    across = abs(-o.uy * dx + o.ux * dy)
    along = abs(o.ux * dx + o.uy * dy)
    return across <= max(2.0, 0.15 * o.thick) and along <= o.half


def find_edge_bars(rgb: Image) -> list[NDArray[np.float32]]:
    """The corners (4 x 2, full-size px) of each bar found."""
    cands, _ = _candidates(rgb)
    h, w = rgb.shape[:2]
    found: list[_Bar] = []
    done = np.zeros((h, w), np.uint8)
    seen: list[_Cand] = []
    for c in cands:
        xi, yi = round(c.cx), round(c.cy)
        if 0 <= xi < w and 0 <= yi < h and done[yi, xi]:
            continue
        if any(_same_strip(c, o) for o in seen):
            continue
        seen.append(c)
        bar = _refine(rgb, c)
        if bar is None:
            continue
        found.append(bar)
        cv2.fillPoly(done, [np.round(bar.poly * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    # A bar runs on through an overlap only where another bar found lies.
    out = []
    for i, bar in enumerate(found):
        grown = bar.grown
        if grown is not None and any(
            cv2.intersectConvexConvex(grown, o.grown if o.grown is not None else o.poly)[0] > 1.0
            for j, o in enumerate(found)
            if j != i
        ):
            out.append(grown)
        else:
            out.append(bar.poly)
    return out


def detect_edge_bars(rgb: Image, grow: int = 0) -> Mask:
    """Mask of the bars :func:`find_edge_bars` finds, dilated by ``grow`` px."""
    h, w = rgb.shape[:2]
    out = np.zeros((h, w), np.uint8)
    for poly in find_edge_bars(rgb):
        cv2.fillPoly(out, [np.round(poly * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    if grow > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        out = np.asarray(cv2.dilate(out, disc), np.uint8)
    res: Mask = out.astype(bool)
    return res
