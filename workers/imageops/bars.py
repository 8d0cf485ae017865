"""Detection of solid censor bars, single or compound (X, T, L, stacked, fused end to end)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]
U8 = NDArray[np.uint8]

# Largest 3x3 colour range a pixel may have and still count as "flat"; JPEG q=75 keeps the
# inside of a solid fill well under this, while anti-aliased outlines and texture exceed it.
_FLAT_RANGE = 16
_MEDIAN = 5
_MAX_AREA_FRAC = 0.2
_MARGIN = 24
# A bar's pixels sit this close (RGB distance) to its colour even after JPEG q=80; the flat
# map also joins smooth gradients and neighbouring fills of close colours, which this splits.
_CORE_DIST = 14.0
# Bars are cut out of their surroundings by colour alone: navy on a night sky is ~20 away.
_MIN_CONTRAST = 16.0
_MAX_STD = 5.0
_MAX_TEXTURE = 9.0
# A bar is a solid fill: its colour does not drift across it. A patch cut out of a sky's
# gradient by the colour test changes by up to twice _CORE_DIST along the gradient; JPEG
# adds noise, not a ramp.
_MAX_RAMP = 8.0
_SAME_COLOUR = 24.0
# A patch fenced off by outlines has its colour again past the fence; a bar's colour does
# not continue beyond it. Dense ink around a black bar is the same colour, hence the slack.
_MAX_SAME_RING = 0.4
# Fraction of its minimum-area rectangle a simple bar must fill; an ellipse fills pi/4.
_MIN_FILL = 0.9
_MIN_CORE_FILL = 0.85
# Compound bars: the share of the region the accepted strips must explain.
_MIN_EXPLAINED = 0.88
_MIN_EXPLAINED_ONE = 0.93
_MIN_THICK_FRAC = 0.02
# How far past the flat core's rectangle a plain bar may reach, in px.
_GROW = 3.0
# The longest strip of a compound bar, in thicknesses.
_MIN_ASPECT = 3.0
_MIN_COMPOUND_FRAC = 0.006
_MIN_SMALL_COMPOUND_FRAC = 0.003
# Widest gap between stacked parallel bars that still joins them into one block, in px.
_STACK_GAP = 13
# Share of its rectangle each bar's core fills in a stack taken as parallel boxes. The flat
# map eats 1.5-2.5 px of a bar's rim on each side, so a thin bar's core is ragged, and a
# speck on its side widens its rectangle by a pixel: a 16 px grey one (JPEG 95) filled 0.75
# less a pixel. Deciding which bars join a stack keeps 0.75: at 0.7 a row of lettering's
# glyphs joined into one bar (a speech balloon, JPEG 85), and cream fills fenced along a
# grey bar into another (base 41000 #08, JPEG 95).
_MIN_BOX_FILL = 0.7
# Traced to a pixel, a gently bowed side (a limb's shadow, a crescent) turns by less than
# this at each vertex; a bar's corners turn by 40 degrees and more, a JPEG notch sharply.
_GENTLE_TURN = 7.0
# A side bowed in a few longer steps (a limb's outline traced coarsely) turns by less than
# this at each, and by at least _BOW_TOTAL over the run.
_BOW_TURN = 12.0
_BOW_TOTAL = 15.0
# Share of a bar's area that may be holes in its colour (JPEG specks); lettering is more.
_MAX_HOLES = 0.02
# Edges within this many degrees of a pair of perpendicular directions count as its sides.
_PAIR_TOL = 7.0
# Share of a compound bar's outline (its cut by the picture's edge aside) that the sides of
# at most two rectangles must explain: ink touching the bar and JPEG notches take the rest.
_MIN_RECTILINEAR = 0.9
# Smallest compound bar (share of the picture) judged by its outline's sides alone.
_MIN_RECTILINEAR_FRAC = 0.006
# Sides of a kinked pair's outline this long (in thicknesses) are its bars' own; shorter
# pieces are notches at the joint and rounded corners.
_KINK_SIDE = 0.5
# Pictures larger than this (px, longer side) are searched downscaled: bars are large.
SEARCH_SIZE = 768
# Strips are examined with their thickness scaled to about this many pixels.
_NORM_THICK = 20.0
# Least share of a melted rim's far pixels on each side (darker, lighter) of the colour.
_MELT_SHARE = 0.25
# Rows along the picture's edge that a strip cut by it reaches.
_BORDER_BAND = 3
# A strip crossing the picture's edge at this angle or more is cut there, not lying on it.
_MIN_SLANT = 4.0
# A rectangle's corner rounded off, and a step between two bars fused end to end, in
# thicknesses: the most of an outline's pieces that need no side of their own.
_MAX_CORNER_CUT = 0.4
_MAX_JOG = 0.25
# Least length (in thicknesses) of an even stretch at one end of a run whose thickness
# drifts, to count as a strip: the arm of a bent fused pair.
_MIN_EVEN_END = 2.0

_ELLIPSE5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_ELLIPSE9 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))

Rect = tuple[tuple[float, float], tuple[float, float], float]


def _u8(a: object) -> U8:
    """OpenCV's results typed as what they are for uint8 inputs."""
    return np.asarray(a, np.uint8)


def _square(size: int) -> U8:
    return np.ones((size, size), np.uint8)


def _fill_holes(region: U8) -> U8:
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return filled


def _flat_map(src: Image) -> U8:
    """255 where the 3x3 neighbourhood's colour range of ``src`` (median-filtered) is small."""
    grad = cv2.morphologyEx(src, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    rng = np.maximum(np.maximum(grad[:, :, 0], grad[:, :, 1]), grad[:, :, 2])
    flat: U8 = ((rng <= _FLAT_RANGE) * np.uint8(255)).astype(np.uint8)
    return flat


def _dominant_colour(pix: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The most common colour of ``pix`` (N, 3): a bar is one exact colour, a gradient none."""
    q = (pix >> 3).astype(np.int32)
    code = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    top = int(np.bincount(code).argmax())
    sel = pix[code == top].astype(np.float32)
    colour: NDArray[np.float32] = np.median(sel, axis=0).astype(np.float32)
    return colour


def _rect_of(region: U8) -> Rect | None:
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    (cx, cy), (rw, rh), ang = cv2.minAreaRect(max(contours, key=cv2.contourArea))
    return (cx, cy), (rw, rh), ang


def _box_mask(shape: tuple[int, ...], rect: Rect, grow: float) -> U8:
    """Filled ``rect`` widened by ``grow`` px per side; edge pixels under the outline count."""
    box = np.zeros(shape[:2], np.uint8)
    (cx, cy), (rw, rh), ang = rect
    corners = cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), ang))
    cv2.fillPoly(box, [np.round(corners * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return box


def _filled_rect(core: U8, region: U8) -> U8 | None:
    """The region cut to ``core``'s minimum-area rectangle when it fills that rectangle, as
    one plain bar of any aspect does; else None.

    The rectangle comes from the flat core, so ink touching the bar (grown into the region
    by colour) neither stretches it nor counts. The denominator is the whole rectangle, even
    where it leaves the picture: a shape cut by the border (a clipped ellipse) must not pass
    as the rectangle it is clipped into.
    """
    rect = _rect_of(core)
    if rect is None:
        return None
    (_, _), (cw, ch), _ = rect
    # JPEG gnaws ragged notches into the flat core: close them before counting, and keep
    # the strict test for the colour-grown region.
    closed = _u8(cv2.morphologyEx(core, cv2.MORPH_CLOSE, _ELLIPSE5))
    if np.count_nonzero(closed) < _MIN_CORE_FILL * (cw + 1.0) * (ch + 1.0):
        return None
    box = _box_mask(region.shape, rect, 1.0)
    inside = float(np.count_nonzero(region & box))
    # The pixel of slack around the rectangle is no part of it: where the rectangle runs
    # along the picture's edge (a bar slid off it, a sliver of a few px left), that slack
    # lies outside the picture and cannot be filled.
    (cx, cy), _, ang = rect
    hgt, wid = region.shape
    pad = 4
    whole = int(
        np.count_nonzero(
            _box_mask((hgt + 2 * pad, wid + 2 * pad), ((cx + pad, cy + pad), (cw, ch), ang), 1.0)
        )
    )
    seen = float(np.count_nonzero(box)) / max(whole, 1)
    if inside < _MIN_FILL * (cw + 3.0) * (ch + 3.0) * seen:
        return None
    return region & _box_mask(region.shape, rect, _GROW)


def _thickness(region: U8) -> float:
    """Typical thickness: twice the distance-transform value along the medial ridges."""
    dist = cv2.distanceTransform(region, cv2.DIST_L2, 3)
    ridge = (dist >= cv2.dilate(dist, _square(3))) & (dist >= 1.5)
    if not ridge.any():
        return 0.0
    return 2.0 * float(np.median(dist[ridge]))


def _edge_angles(region: U8, thick: float) -> list[float]:
    """Directions (degrees) of the region's long straight edges, strongest first.

    A length-weighted histogram of the boundary's gradient direction: stubs of touching
    ink and JPEG notches add little, while each side of a bar adds its whole length.
    """
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 2.0)
    gx = cv2.Sobel(soft, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(soft, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    sel = mag > 0.05
    # Edge direction is normal to the gradient; a unit step sums to 8 across a Sobel edge.
    ang = (np.degrees(np.arctan2(gy[sel], gx[sel])) + 90.0) % 180.0
    wgt = mag[sel] / 8.0
    hist = np.bincount(ang.astype(np.int32) % 180, wgt, 180)
    smooth = np.zeros(180, np.float64)
    for k in range(-4, 5):
        smooth += np.roll(hist, k)
    out: list[float] = []
    while len(out) < 6:
        k = int(np.argmax(smooth))
        if smooth[k] < 1.2 * thick:
            break
        off = (ang - k + 90.0) % 180.0 - 90.0
        near = np.abs(off) <= 6.0
        out.append(k + float((off[near] * wgt[near]).sum() / max(wgt[near].sum(), 1e-6)))
        for j in range(-10, 11):
            smooth[(k + j) % 180] = 0.0
    return out


def _strips_at(
    region: U8, angle: float, thick: float
) -> tuple[U8, float, list[float], list[float], bool]:
    """Straight, constant-thickness strips of ``region`` running at ``angle`` degrees, the
    largest length-to-thickness ratio among them, their thicknesses, their directions, and
    whether one run of them steps in thickness or keeps it only at one end (two bars fused
    end to end, see ``_even_end``)."""
    h, w = region.shape
    diag = int(np.ceil(np.hypot(h, w))) + 4
    rot = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    rot[0, 2] += (diag - w) / 2.0
    rot[1, 2] += (diag - h) / 2.0
    turned = _u8(cv2.warpAffine(region, rot, (diag, diag), flags=cv2.INTER_NEAREST))
    # Only pieces that hold a long, fat horizontal box survive: other strips of an X or a T
    # crossing this one are too narrow for it and drop out.
    se_len, se_thick = max(5, round(1.5 * thick)), max(3, round(0.4 * thick))
    opened = _u8(cv2.morphologyEx(turned, cv2.MORPH_OPEN, np.ones((se_thick, se_len), np.uint8)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
    found = np.zeros_like(turned)
    best = 0.0
    widths: list[float] = []
    true_dirs: list[float] = []
    stepped = False
    tol = max(2.0, 0.1 * thick)
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        if area < thick * thick:
            continue
        piece = labels[y : y + bh, x : x + bw] == k
        cols = piece.any(axis=0)
        top = np.argmax(piece, axis=0)
        bottom = bh - 1 - np.argmax(piece[::-1], axis=0)
        left = np.nonzero(cols)[0]
        # Bars fused end to end sit on different pairs of lines (another thickness, an
        # offset): each pair is taken in turn, commonest first.
        for turn in range(3):
            if left.size < se_len:
                break
            xs = left
            pair = top[xs].astype(np.int64) * (bh + 1) + bottom[xs]
            mode = int(np.bincount(pair).argmax())
            t_line, b_line = float(mode // (bh + 1)), float(mode % (bh + 1))
            if b_line - t_line + 1.0 < se_thick:
                break
            runs, taken, strip_thick, slope = _runs_on_lines(xs, top, bottom, t_line, b_line, tol)
            left = np.setdiff1d(left, taken, assume_unique=True)
            for whole in runs:
                parts = _even_parts(whole, top, bottom, strip_thick, slope)
                # One part short of the run: the rest is another bar, as for a step.
                stepped = stepped or len(parts) > 1 or any(len(p[0]) < len(whole) for p in parts)
                # Two bars fused end to end along one line make one long strip.
                span = (int(whole[-1]) - int(whole[0]) + 1) / max([1.0] + [p[1] for p in parts])
                for run, part_thick, part_slope in parts:
                    s, e = int(run[0]), int(run[-1])
                    # Past the commonest pair, only a whole bar counts: short straight stubs
                    # line up anywhere near a junction.
                    if turn > 0 and e - s + 1 < _MIN_ASPECT * part_thick:
                        continue
                    best = max(best, span)
                    widths.append(part_thick)
                    # The fitted lines' slope tells the strip's own direction.
                    true_dirs.append((angle + float(np.degrees(np.arctan(part_slope)))) % 180.0)
                    found[y : y + bh, x + s : x + e + 1] |= piece[:, s : e + 1]
            if not taken.size:
                break
    back = cv2.invertAffineTransform(rot)
    strips = _u8(cv2.warpAffine(found, back, (w, h), flags=cv2.INTER_NEAREST))
    return strips, best, widths, true_dirs, stepped


def _even_parts(
    run: NDArray[np.intp],
    top: NDArray[np.intp],
    bottom: NDArray[np.intp],
    thick: float,
    slope: float,
) -> list[tuple[NDArray[np.intp], float, float]]:
    """``run`` (columns) as strips of constant thickness: (columns, thickness, slope) of the
    run itself, or of its two parts when its thickness steps once (two bars of different
    thicknesses fused end to end); [] for a wedge, whose thickness changes gradually."""
    thickness = (bottom - top)[run]
    third = max(len(run) // 3, 1)
    # A wedge's sides are straight too, but not parallel: compare the run's ends.
    taper = abs(float(np.median(thickness[:third]) - np.median(thickness[-third:])))
    if taper <= max(3.0, 0.15 * thick):
        return [(run, thick, slope)]
    return _stepped_parts(run, top, bottom, thick) or _even_end(run, top, bottom, thick)


def _fitted(
    part: NDArray[np.intp], top: NDArray[np.intp], bottom: NDArray[np.intp]
) -> tuple[NDArray[np.intp], float, float]:
    """``part`` as a strip: its columns, thickness and its lines' mean slope."""
    fit_t = np.polyfit(part, top[part], 1)
    fit_b = np.polyfit(part, bottom[part], 1)
    return part, float(np.median((bottom - top)[part])) + 1.0, float(fit_t[0] + fit_b[0]) / 2.0


def _stepped_parts(
    run: NDArray[np.intp], top: NDArray[np.intp], bottom: NDArray[np.intp], thick: float
) -> list[tuple[NDArray[np.intp], float, float]]:
    """The two even parts of ``run`` when its thickness steps once, else []."""
    thickness = (bottom - top)[run]
    # A step: the thickness jumps within a few columns and is even on both sides of it.
    smooth = np.convolve(thickness, np.ones(5) / 5.0, mode="same")
    k = 2 + int(np.argmax(np.abs(smooth[4:-2] - smooth[2:-4]))) if len(run) > 8 else 0
    out: list[tuple[NDArray[np.intp], float, float]] = []
    for part in (run[: k - 2], run[k + 3 :]) if k else ():
        if len(part) < max(5.0, 0.5 * thick):
            return []
        t = (bottom - top)[part]
        third = max(len(part) // 3, 1)
        part_thick = float(np.median(t)) + 1.0
        if abs(float(np.median(t[:third]) - np.median(t[-third:]))) > max(2.0, 0.1 * part_thick):
            return []
        out.append(_fitted(part, top, bottom))
    return out


def _even_end(
    run: NDArray[np.intp], top: NDArray[np.intp], bottom: NDArray[np.intp], thick: float
) -> list[tuple[NDArray[np.intp], float, float]]:
    """The part of ``run`` at one of its ends that keeps one thickness for at least
    ``_MIN_EVEN_END`` thicknesses, when the rest drifts off it: a bar whose line the other
    bar of a bent fused pair continues at a slight angle (its side on the same line, the
    other side drifting). [] when neither end is even that long: a wedge."""
    thickness = (bottom - top)[run]
    tol = max(2.0, 0.1 * thick)
    head = max(5, round(0.5 * thick))
    best: NDArray[np.intp] = run[:0]
    for seq, cols in ((thickness, run), (thickness[::-1], run[::-1])):
        ref = float(np.median(seq[:head]))
        off = np.abs(seq - ref) > tol
        n = int(np.argmax(off)) if off.any() else len(seq)
        if n > best.size:
            best = np.sort(cols[:n])
    if best.size < _MIN_EVEN_END * (
        float(np.median((bottom - top)[best])) + 1.0 if best.size else 1.0
    ):
        return []
    return [_fitted(best, top, bottom)]


def _runs_on_lines(
    xs: NDArray[np.intp],
    top: NDArray[np.intp],
    bottom: NDArray[np.intp],
    t_line: float,
    b_line: float,
    tol: float,
) -> tuple[list[NDArray[np.intp]], NDArray[np.intp], float, float]:
    """Runs of columns ``xs`` whose top and bottom lie on straight lines near ``t_line`` and
    ``b_line`` (the straight columns of each run), every column near the lines, the strip's
    thickness and the lines' mean slope."""
    near = (np.abs(top[xs] - t_line) <= 3 * tol) & (np.abs(bottom[xs] - b_line) <= 3 * tol)
    if np.count_nonzero(near) < 2:
        return [], xs[near], 0.0, 0.0
    # The edges' angle is known to a degree or two; a line fitted to the columns near the
    # modes absorbs the rest, so long bars still match along their whole length.
    ft = np.polyfit(xs[near], top[xs][near], 1)
    fb = np.polyfit(xs[near], bottom[xs][near], 1)
    good = (np.abs(top[xs] - np.polyval(ft, xs)) <= tol) & (
        np.abs(bottom[xs] - np.polyval(fb, xs)) <= tol
    )
    if np.count_nonzero(good) >= 2:
        # Refit on the straight columns alone: a stub of ink on one side tilts the first fit.
        ft = np.polyfit(xs[good], top[xs][good], 1)
        fb = np.polyfit(xs[good], bottom[xs][good], 1)
        good = (np.abs(top[xs] - np.polyval(ft, xs)) <= tol) & (
            np.abs(bottom[xs] - np.polyval(fb, xs)) <= tol
        )
    strip_thick = float(np.median(bottom[xs][near] - top[xs][near])) + 1.0
    idx = xs[good]
    taken = np.union1d(xs[near], idx)
    if idx.size == 0:
        return [], taken, strip_thick, 0.0
    # Runs of straight columns on the same two lines, bridged over a crossing bar.
    gaps = np.nonzero(np.diff(idx) > 1.5 * strip_thick)[0]
    starts = np.concatenate(([idx[0]], idx[gaps + 1]))
    ends = np.concatenate((idx[gaps], [idx[-1]]))
    runs = [
        idx[(idx >= a) & (idx <= b)]
        for a, b in zip(starts, ends, strict=True)
        if b - a + 1 >= 1.5 * strip_thick
    ]
    return runs, taken, strip_thick, float(ft[0] + fb[0]) / 2.0


def _spread_directions(dirs: list[float]) -> bool:
    """Whether ``dirs`` (degrees) hold a chain of directions, each within 12 degrees of the
    next, spanning over 9: a curve's pieces turn gradually, bars' strips jump."""
    ds = sorted(d % 180.0 for d in dirs)
    if len(ds) < 3:
        return False
    # Start the chain after the widest gap so that it does not wrap through 0/180.
    ext = ds + [d + 180.0 for d in ds]
    gaps = [ext[i + 1] - ext[i] for i in range(len(ds))]
    start = int(np.argmax(gaps)) + 1
    seq = ext[start : start + len(ds)]
    first = seq[0]
    for prev, cur in itertools.pairwise(seq):
        if cur - prev > 12.0:
            first = cur
        elif cur - first > 9.0:
            return True
    return False


def _compound(region: U8, at_border: bool) -> U8 | None:
    """The region as a union of straight strips, or None when strips do not explain it.

    A region cut by the picture's edge may show only a stub of its bar, so its strips need
    not be long.
    """
    thick = _thickness(region)
    if thick < 3.0:
        return None
    scale = min(1.0, _NORM_THICK / thick)
    small = region
    if scale < 1.0:
        size = (max(round(region.shape[1] * scale), 1), max(round(region.shape[0] * scale), 1))
        small = _u8(cv2.resize(region * 255, size, interpolation=cv2.INTER_AREA) >= 128)
        thick *= scale
    strips = np.zeros_like(small)
    longest = 0.0
    directions: list[float] = []
    widths: list[float] = []
    yielding: list[float] = []
    seen: list[tuple[float, float]] = []
    long_strips: list[tuple[U8, float, float]] = []
    bends = False
    for angle in _edge_angles(small, thick):
        found, ratio, w, dirs, stepped = _strips_at(small, angle, thick)
        if not w:
            continue
        strips |= found
        longest = max(longest, ratio)
        widths += w
        yielding += dirs
        seen.append((angle, ratio))
        # A strip that steps in thickness (or runs on into another bar) is two fused bars,
        # not a piece of a curve; its short parts' directions are rough.
        for other, o_dir, o_ratio in [] if stepped else long_strips:
            apart = abs((dirs[0] - o_dir + 90.0) % 180.0 - 90.0)
            shared = np.count_nonzero(found & other)
            small_side = min(np.count_nonzero(found), np.count_nonzero(other))
            # One band covered twice by long strips a few degrees apart bends gently.
            if ratio >= 3.0 and o_ratio >= 3.0 and 3.0 < apart <= 12.0:
                bends = bends or bool(shared >= 0.4 * small_side)
        if ratio >= 3.0 and not stepped:
            long_strips.append((found, dirs[0], ratio))
    # Two short, thick bars fused at a slight bend are covered twice as well, but their
    # outline is a few long straight sides, where a bent band's is many.
    bends = bends and not _kinked(small, thick)
    # The ends of an X's or T's bars are short straight strips too, across both; only
    # strips of about a bar's length set a direction.
    for angle, ratio in seen:
        if ratio < 0.55 * longest:
            continue
        if all(abs((angle - d + 90.0) % 180.0 - 90.0) > 15.0 for d in directions):
            directions.append(angle)
    # Two bars crossing or meeting at a corner show each other's outline; short arms then
    # still make the shape.
    crossed = len(directions) == 2 and (
        abs((directions[0] - directions[1] + 90.0) % 180.0 - 90.0) >= 45.0
    )
    # Two bars fused end to end at a bend show each other's end as a kink; both arms
    # straight, of one thickness, each over twice as long as thick, still make the shape.
    kinked = (
        len(directions) == 2
        and len(seen) == 2
        and min(r for _, r in seen) >= 2.0
        and max(widths) <= 1.35 * min(widths)
    )
    # A curved band (a cel-shadow crescent, a limb) is straight only piecewise: its strips
    # run in several directions a few degrees apart, where a bar's strips share one (a bent
    # fused bar: two).
    crowded = bends or _spread_directions(yielding)
    # Short straight stretches turn up along any curve, in every direction and width; a
    # compound bar has one long strip, at most two directions, and one thickness.
    if (
        longest < (1.5 if at_border else 2.2 if crossed or kinked else _MIN_ASPECT)
        or len(directions) > 2
        or crowded
        or max(widths) > 1.6 * min(widths)
    ):
        return None
    # A stub let through only because the border cut it must end squarely, as a bar cut by
    # the edge does: a clipped ellipse (a pale cloud in the sky) fills its rectangle less.
    if longest < _MIN_ASPECT and len(directions) < 2 and not _fills_its_rect(region):
        return None
    if scale < 1.0:
        size = (region.shape[1], region.shape[0])
        strips = _u8(cv2.resize(strips * 255, size, interpolation=cv2.INTER_LINEAR) >= 128)
    # Rotation rounding frays the strips' rims by a pixel; the region's own rim fills them.
    strips = _u8(cv2.dilate(strips, _square(3))) & region
    # A lone strip that leaves a tenth unexplained is a trapezoid (a fill cut by slanted
    # strokes) rather than a bar; crossings and junctions excuse more in a compound.
    need = _MIN_EXPLAINED if len(directions) > 1 else _MIN_EXPLAINED_ONE
    if np.count_nonzero(strips) < need * np.count_nonzero(region):
        return None
    return strips


def _kinked(small: U8, thick: float) -> bool:
    """Whether the outline of ``small`` (scaled to a thickness of about ``thick`` px) is
    that of two bars fused at a slight bend: at most six long straight sides (each arm's
    two, its end, the other's), which make up nine tenths of it. Traced to a pixel, a
    gently bent band's sides take a piece per few degrees of turn."""
    contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return False
    poly = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 1.0, True)[:, 0, :]
    vec = np.roll(poly, -1, axis=0).astype(np.float64) - poly
    length = np.hypot(vec[:, 0], vec[:, 1])
    long = length >= _KINK_SIDE * thick
    return bool(np.count_nonzero(long) <= 6 and length[long].sum() >= 0.9 * length.sum())


def _fills_its_rect(region: U8) -> bool:
    """Whether ``region`` fills its minimum-area rectangle as a plain bar (or its stub) does."""
    rect = _rect_of(region)
    if rect is None:
        return False
    (_, _), (rw, rh), _ = rect
    return bool(np.count_nonzero(region) >= _MIN_FILL * (rw + 1.0) * (rh + 1.0))


def _colour_codes(rgb: Image) -> NDArray[np.int32]:
    """Each pixel's colour on a 32-level-per-channel grid, as one integer."""
    q = (rgb >> 3).astype(np.int32)
    codes: NDArray[np.int32] = (q[:, :, 0] << 10) | (q[:, :, 1] << 5) | q[:, :, 2]
    return codes


def _cells_around(code: int) -> NDArray[np.int64]:
    """The (up to) 27 grid cells around ``code``'s: a bar's JPEG noise stays inside them."""
    r, g, b = code >> 10, (code >> 5) & 31, code & 31
    span = [np.arange(max(v - 1, 0), min(v + 2, 32)) for v in (r, g, b)]
    cells: NDArray[np.int64] = (
        (span[0][:, None, None] << 10) | (span[1][None, :, None] << 5) | span[2][None, None, :]
    ).ravel()
    return cells


def _candidates(
    rgb: Image,
    codes: NDArray[np.int32],
    labels: NDArray[np.int32],
    k: int,
    stat: NDArray[np.int32],
    min_area: int,
) -> list[tuple[NDArray[np.float32], NDArray[np.bool_]]]:
    """Single-colour parts of flat component ``k``: (colour, core mask over its bbox).

    The flat map joins a bar with a smooth gradient or a fill of a close colour around it
    (navy on a night sky, white on a pale glow); a bar is one exact colour, so it shows up
    as a sharp mode of the component's colours and is cut out by that mode's cells.
    """
    h, w = rgb.shape[:2]
    x, y, bw, bh, _ = (int(v) for v in stat)
    comp = labels[y : y + bh, x : x + bw] == k
    code = codes[y : y + bh, x : x + bw][comp]
    hist = np.bincount(code, minlength=1 << 15)
    out: list[tuple[NDArray[np.float32], NDArray[np.bool_]]] = []
    for _ in range(3):
        top = int(hist.argmax())
        cells = _cells_around(top)
        n = int(hist[cells].sum())
        if n < min_area:
            # The commonest colour is rare: the rest is gradient, with no bar-sized mode.
            break
        hist[cells] = 0
        if n > _MAX_AREA_FRAC * h * w:
            continue
        lut = np.zeros(1 << 15, bool)
        lut[cells] = True
        sel = lut[code]
        core = np.zeros_like(comp)
        core[comp] = sel
        ys, xs = np.nonzero(core)
        pix = rgb[y + ys, x + xs]
        colour = np.median(pix[code[sel] == top][::8], axis=0).astype(np.float32)
        # The cells hold a band of any gradient next to the bar's colour; the exact
        # distance keeps the bar's own pixels.
        near = ((pix.astype(np.float32) - colour) ** 2).sum(axis=1) < _CORE_DIST**2
        if np.count_nonzero(near) < min_area:
            continue
        core[ys[~near], xs[~near]] = False
        out.append((colour, core))
    return out


def _examine(
    rgb: Image,
    med: Image,
    colour: NDArray[np.float32],
    core_full: NDArray[np.bool_],
    x: int,
    y: int,
    min_area: int,
    stacked: bool = False,
    parallel: bool = False,
) -> tuple[U8, int, int, float] | str:
    """The bar of ``colour`` around ``core_full`` (a mask at ``x, y``), or why it is none.

    ``stacked``: the core joins bars of a stack across their gaps; ``parallel``: those bars
    are parallel long boxes, so the stack's outline (staggered ends) needs no other shape.
    """
    h, w = rgb.shape[:2]
    ys, xs = np.nonzero(core_full)
    cx0, cy0 = x + int(xs.min()), y + int(ys.min())
    cx1, cy1 = x + int(xs.max()) + 1, y + int(ys.max()) + 1
    # Flat background bands reach across the picture; bars do not.
    if (cx0 == 0 and cx1 == w) or (cy0 == 0 and cy1 == h):
        return "spans"
    if min(cx1 - cx0, cy1 - cy0) < 4:
        return "thin"
    m = _MARGIN
    x0, y0 = max(cx0 - m, 0), max(cy0 - m, 0)
    x1, y1 = min(cx1 + m, w), min(cy1 + m, h)
    core = np.zeros((y1 - y0, x1 - x0), np.uint8)
    core[ys + y - y0, xs + x - x0] = 1
    # Outlines of the bar's colour touching it leak into the component as thin arms.
    core = _u8(cv2.morphologyEx(core, cv2.MORPH_OPEN, _ELLIPSE5))
    num, lab, cstats, _ = cv2.connectedComponentsWithStats(core, connectivity=4)
    if num < 2:
        return "opened away"
    core = (lab == 1 + int(np.argmax(cstats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    if np.count_nonzero(core) < min_area:
        return "small"
    # JPEG's mosquito noise would fray a colour cut; a 3x3 median keeps edges and corners.
    # A bar is one colour: inside, only JPEG noise. A band cut out of a shaded fill by
    # colour spreads evenly over the whole allowed distance.
    # Only the core's own colour counts: a joined stack's core spans the gaps too.
    med_roi = med[y0:y1, x0:x1].astype(np.float32)
    inside = core.astype(bool) & (((med_roi - colour) ** 2).sum(axis=2) < _CORE_DIST**2)
    if np.count_nonzero(inside) < min_area:
        return "small"
    spread = float(med[y0:y1, x0:x1][inside].std(axis=0).max())
    if spread > _MAX_STD:
        return f"not one colour {spread:.1f}"
    ramp = _ramp(med_roi, inside)
    if ramp > _MAX_RAMP:
        return f"shaded {ramp:.1f}"
    # The median filter also melts fine hatching and screentone into a flat mid-tone; the
    # picture itself still shows them.
    deep = _u8(cv2.erode(inside.astype(np.uint8), _square(5))).astype(bool)
    # A stack of thin rotated bars is mostly anti-aliased rims, which are no texture; a
    # mid-tone bar's rim may be texture melted into its colour: look a couple of px inside.
    if np.count_nonzero(deep) >= min_area // 2 and (
        stacked or _melted_rim(rgb[y0:y1, x0:x1], colour, inside, deep)
    ):
        inside = deep
    texture = float(rgb[y0:y1, x0:x1][inside].std(axis=0).max())
    if texture > _MAX_TEXTURE:
        return f"textured {texture:.1f}"
    roi = cv2.medianBlur(np.ascontiguousarray(rgb[y0:y1, x0:x1]), 3).astype(np.float32)
    dist = np.sqrt(((roi - colour) ** 2).sum(axis=2))
    ring = _u8(cv2.dilate(core, _square(15))) & ~_u8(cv2.dilate(core, _square(9)))
    ring_d = dist[ring.astype(bool)]
    if ring_d.size == 0:
        return "no ring"
    # Ink touching a bar of its colour fills part of the ring; the rest tells the contrast.
    contrast = float(np.percentile(ring_d, 70))
    if contrast < _MIN_CONTRAST:
        return "low contrast"
    # The flat test eats the bar's rim; win it back by colour, cutting at half contrast so
    # the boundary lands where a blurred (JPEG) edge crosses its midpoint. Growth stays
    # within a few pixels of the core, so touching ink adds only short stubs, which the
    # opening then removes.
    # Against a neighbour closer in colour than the rest (a grey bar over a grey fill), the
    # midpoint is nearer: the closest fifth of the ring sets a lower cut.
    near_side = float(np.percentile(ring_d, 30))
    if near_side >= _MIN_CONTRAST:
        contrast = min(contrast, near_side)
    cut = float(np.clip(0.5 * contrast, 10.0, 60.0))
    near = _u8(cv2.dilate(core, _ELLIPSE9))
    region = _u8((dist < cut) & near.astype(bool)) | core
    region = _u8(cv2.morphologyEx(region, cv2.MORPH_OPEN, _ELLIPSE5))
    num, lab, cstats, _ = cv2.connectedComponentsWithStats(region, connectivity=4)
    if num < 2:
        return "empty"
    solid = (lab == 1 + int(np.argmax(cstats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    region = _fill_holes(solid)
    # A bar is opaque: nothing of the picture shows through it. A white box with lettering
    # inside (a narration box), a fill with ink marks on it, is not one.
    # Marks reaching in from its rim (lettering near the box's edge) leave narrow bays,
    # which a closing fills; a bar's rim has none.
    closed = _fill_holes(_u8(cv2.morphologyEx(solid, cv2.MORPH_CLOSE, _ELLIPSE9)))
    holes = np.count_nonzero(closed) - np.count_nonzero(solid)
    if not stacked and holes > _MAX_HOLES * np.count_nonzero(region):
        return f"holed {holes / np.count_nonzero(region):.3f}"
    # Just past a fence of ink (a few px) a fenced patch's colour is back.
    outer = _u8(cv2.dilate(region, _square(25))) & ~_u8(cv2.dilate(region, _square(13)))
    outer_d = dist[outer.astype(bool)]
    same = float(np.count_nonzero(outer_d < _SAME_COLOUR)) / max(outer_d.size, 1)
    if same > _MAX_SAME_RING:
        return f"colour continues outside {same:.2f}"
    at_border = x0 == 0 or y0 == 0 or x1 == w or y1 == h
    rect_bar = _filled_rect(core, region)
    if rect_bar is not None:
        # Opaque all over: lettering in a narration box may reach its rim and so leave no
        # hole, but it still lies inside the box's rectangle.
        shape = rect_bar
    else:
        # Patches fenced off by crossing strokes are small; a compound bar, meant to hide
        # something, is not.
        small = np.count_nonzero(region) < _MIN_COMPOUND_FRAC * h * w
        if small and np.count_nonzero(region) < _MIN_SMALL_COMPOUND_FRAC * h * w:
            return "small for a compound bar"
        strips = _compound(region, at_border)
        sides = (x0 == 0, y0 == 0, x1 == w, y1 == h)
        # A small one must show it all: strips and an outline of rectangles' sides. A stack
        # of parallel long boxes has shown its shape already: its bars, each too thin to
        # count alone, join into a block whose staggered ends and gap notches are neither.
        if (
            small
            and not parallel
            and (strips is None or not _rectilinear(region, sides, excuse=True))
        ):
            return "small for a compound bar"
        if strips is None:
            # A small fill cut by one straight line (a cel shadow's edge) and a gentle curve
            # can pass for straight sides; a compound bar hiding something is larger.
            big = np.count_nonzero(region) >= _MIN_RECTILINEAR_FRAC * h * w
            if not parallel and (not big or not _rectilinear(region, sides)):
                return "not bar-shaped"
            strips = region
        shape = strips
    if _curved(region):
        return "curved"
    # Slivers of fill between parallel strokes are straight strips too, but thinner than
    # any bar meant to hide something at this picture size.
    # Thick ink strokes crossing make compound shapes too, but not this thick.
    floor = 6.0 if rect_bar is not None else 10.0
    if _thickness(shape) < max(floor, _MIN_THICK_FRAC * min(h, w)):
        return "thinner than a bar"
    # A filled rectangle may lie along the edge (a bar slid off the picture); strips
    # there are more often fills fenced off by strokes.
    if rect_bar is None and _along_border(shape, x0 == 0, y0 == 0, x1 == w, y1 == h):
        return "lies along the border"
    # Strips lose a pixel or two where rotation rounds and where a run ends; the colour
    # near them wins it back.
    grown = _u8(cv2.dilate(shape, _ELLIPSE5)) & region
    return grown | shape, x0, y0, cut


def _rectilinear(region: U8, sides: tuple[bool, bool, bool, bool], excuse: bool = False) -> bool:
    """Whether the outline of ``region`` runs along the sides of at most two rectangles.

    Every edge of a union of rectangles is parallel to a side of one of them, so a bar, an
    X, T, L or a bent pair of fused bars has straight edges in at most two pairs of
    perpendicular directions. Curves (hair, balloons, cel shadows, fills fenced by strokes)
    need many edges in many directions; a trapezoid's or parallelogram's sides are not
    perpendicular. Edges along the picture's border (``sides``: left, top, right, bottom)
    are where a bar was cut, not its own.

    ``excuse``: short pieces between two explained sides count too (:func:`_excused`).
    Only for small compound bars, whose rounded corners and jogs are a large share of a
    short outline; on a large region the same allowance, in thicknesses, runs to tens of
    pixels and lets through fills that a limb's curve and a straight tone edge enclose.
    """
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return False
    contour = max(contours, key=cv2.contourArea)
    thick = _thickness(region)
    if thick < 3.0:
        return False
    # Traced to 1.5 px a JPEG'd side stays one straight piece, while a curve needs a piece
    # per 20-30 degrees of turn; a coarser trace would straighten curves into few sides.
    poly = cv2.approxPolyDP(contour, 1.5, True)[:, 0, :].astype(np.float64)
    n = len(poly)
    if n < 4 or n > 40:
        return False
    a, b = poly, np.roll(poly, -1, axis=0)
    vec = b - a
    length = np.hypot(vec[:, 0], vec[:, 1])
    ang = np.degrees(np.arctan2(vec[:, 1], vec[:, 0])) % 180.0
    hgt, wid = region.shape
    cut = np.zeros(n, bool)
    for on, coord, limit in (
        (sides[0], 0, 0.0),
        (sides[1], 1, 0.0),
        (sides[2], 0, wid - 1.0),
        (sides[3], 1, hgt - 1.0),
    ):
        if on:
            cut |= (np.abs(a[:, coord] - limit) <= 2.0) & (np.abs(b[:, coord] - limit) <= 2.0)
    length = np.where(cut, 0.0, length)
    total = float(length.sum())
    if total <= 0.0:
        return False
    left = length.copy()
    explained = 0.0
    for _ in range(2):
        best, best_w = 0.0, 0.0
        for k in np.nonzero(left > 0)[0]:
            off = (ang - ang[k] + 45.0) % 90.0 - 45.0
            wgt = float(left[np.abs(off) <= _PAIR_TOL].sum())
            if wgt > best_w:
                best, best_w = float(ang[k]), wgt
        if best_w <= 0.0:
            break
        off = (ang - best + 45.0) % 90.0 - 45.0
        if explained == 0.0:
            # A rectangle has two sides each way: a fill cut by one straight line and
            # closed by a curve has one straight side and pieces of curve. Cut by the
            # picture's edge, a bar still shows a side each way (its long sides and an end,
            # or a long side and its ends); a corner cut off by one straight line does not.
            need = 1 if any(sides) else 2
            along = (ang - best + 90.0) % 180.0 - 90.0
            for way in (np.abs(along) <= _PAIR_TOL, np.abs(np.abs(along) - 90.0) <= _PAIR_TOL):
                if np.count_nonzero(way & (length >= 3.0)) < need:
                    return False
        left[np.abs(off) <= _PAIR_TOL] = 0.0
        explained += best_w
        done = (left == 0.0) & (length > 0.0)
        spare = _excused(length, ang, done, thick) if excuse else 0.0
        if explained + spare >= _MIN_RECTILINEAR * total:
            return True
    return False


def _excused(
    length: NDArray[np.float64], ang: NDArray[np.float64], done: NDArray[np.bool_], thick: float
) -> float:
    """Length of the outline's short pieces between two explained sides (``done``) that a
    bar's outline has too: a corner rounded off between perpendicular sides, and the jog
    where two bars fused end to end step by a few px in thickness, between parallel ones
    (traced to 1.5 px, a small step becomes a slanted piece)."""
    n = len(length)
    out = 0.0
    for k in np.nonzero(~done & (length > 0.0))[0]:
        prev, nxt = (k - 1) % n, (k + 1) % n
        if not (done[prev] and done[nxt]):
            continue
        turn = abs((ang[nxt] - ang[prev] + 90.0) % 180.0 - 90.0)
        if turn <= _PAIR_TOL:
            offset = length[k] * abs(np.sin(np.radians(ang[k] - ang[prev])))
            if offset <= _MAX_JOG * thick:
                out += float(length[k])
        elif turn >= 90.0 - _PAIR_TOL and length[k] <= _MAX_CORNER_CUT * thick:
            out += float(length[k])
    return out


def _curved(region: U8) -> bool:
    """Whether the outline of ``region`` has a side that bends gradually: three or more
    straight pieces in a row, each turning a few degrees, bowing off their chord. A bar's
    sides are straight; two bars fused at a slight angle make a kink of two pieces."""
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return False
    contour = max(contours, key=cv2.contourArea)
    poly = cv2.approxPolyDP(contour, 1.0, True)[:, 0, :].astype(np.float64)
    n = len(poly)
    if n < 4:
        return False
    vec = np.roll(poly, -1, axis=0) - poly
    ang = np.degrees(np.arctan2(vec[:, 1], vec[:, 0])) % 180.0
    turn = np.abs((np.roll(ang, -1) - ang + 90.0) % 180.0 - 90.0)  # edge k to edge k + 1
    gentle = turn < _GENTLE_TURN
    if gentle.all():
        return True
    slack = max(2.0, 0.1 * _thickness(region))
    start = int(np.argmin(gentle)) + 1  # an edge that follows a sharp turn
    k = 0
    while k < n:
        first = (start + k) % n
        m = 1
        while m < n and gentle[(first + m - 1) % n]:
            m += 1
        if m >= 3:
            pts = poly[[(first + j) % n for j in range(m + 1)]]
            chord = pts[-1] - pts[0]
            norm = float(np.hypot(chord[0], chord[1]))
            rel = pts[1:-1] - pts[0]
            dev = np.abs(rel[:, 0] * chord[1] - rel[:, 1] * chord[0]) / max(norm, 1e-6)
            if float(dev.max()) > slack:
                return True
        k += m
    return _bowed(ang, np.hypot(vec[:, 0], vec[:, 1]), _thickness(region))


def _bowed(ang: NDArray[np.float64], length: NDArray[np.float64], thick: float) -> bool:
    """Whether an outline (its edges' directions ``ang`` in degrees, mod 180, and lengths)
    has a side that bends one way in steps a little too large to count as gentle: four or
    more long edges in a row, each turning by under ``_BOW_TURN`` the same way,
    ``_BOW_TOTAL`` in all. A bar's corners are short edges or sharp turns; a bend of fused
    bars one kink, which JPEG may round into two steps."""
    n = len(ang)
    turn = (np.roll(ang, -1) - ang + 90.0) % 180.0 - 90.0  # signed, edge k to edge k + 1
    long = length >= max(6.0, 0.25 * thick)
    for first in range(n):
        total = 0.0
        edges = 1
        k = first
        while edges < n and long[k % n] and long[(k + 1) % n]:
            t = float(turn[k % n])
            if not 1.0 <= abs(t) < _BOW_TURN or (total != 0.0 and t * total < 0.0):
                break
            total += t
            edges += 1
            k += 1
            if edges >= 4 and abs(total) >= _BOW_TOTAL:
                return True
    return False


def _along_border(shape: U8, left: bool, top: bool, right: bool, bottom: bool) -> bool:
    """A bar cut by the picture's edge meets it with an end, or crosses it at a slant; it
    never lies along it for more than its thickness, as fills fenced off by strokes do."""
    thick = _thickness(shape)
    touching = 0.0
    # Each side turned to the bottom: the picture's edge is then the last row.
    for on, turned in (
        (left, np.rot90(shape, 1)),
        (top, shape[::-1]),
        (right, np.rot90(shape, -1)),
        (bottom, shape),
    ):
        if not on:
            continue
        # Rotation rounding can leave the strips a pixel or two short of the edge.
        near = turned[-_BORDER_BAND:]
        length = np.count_nonzero(near) / _BORDER_BAND
        if length > 1.6 * thick and _slanted_cut(turned, np.nonzero(near.any(axis=0))[0], thick):
            continue
        touching += length
    return bool(touching > 1.6 * thick)


def _slanted_cut(turned: U8, cols: NDArray[np.intp], thick: float) -> bool:
    """Whether the shape (``turned``: the picture's edge at its bottom row) leaves the
    picture at a slant along columns ``cols``: its height above the edge changes evenly,
    as a bar crossing the edge at an angle is cut, where a fill fenced along it keeps
    its height or follows a curve."""
    col = turned[::-1, cols].astype(bool)  # the edge first
    # Height of the run that starts at the edge (within the band) in each column.
    start = np.argmax(col, axis=0)
    below = np.arange(col.shape[0])[:, None] < start[None, :]
    ends = np.argmin(np.vstack([col | below, np.zeros((1, col.shape[1]), bool)]), axis=0)
    height = (ends - start).astype(np.float64)
    if cols[-1] - cols[0] + 1 > cols.size + 2:
        return False  # broken into pieces along the edge
    fit = np.polyfit(cols.astype(np.float64), height, 1)
    resid = height - np.polyval(fit, cols.astype(np.float64))
    slope = abs(float(fit[0]))
    return bool(
        np.tan(np.radians(_MIN_SLANT)) <= slope <= np.tan(np.radians(60.0))
        and float(np.sqrt((resid**2).mean())) <= max(1.5, 0.1 * thick)
    )


def _find(rgb: Image) -> list[tuple[U8, int, int, NDArray[np.float32], float]]:
    """Every accepted bar: (mask, x, y of its ROI, colour, colour cut)."""
    h, w = rgb.shape[:2]
    # The median filter wipes JPEG's ringing off flat fills, so cores keep their shape.
    med = _u8(cv2.medianBlur(rgb, _MEDIAN))
    flat = _flat_map(med)
    codes = _colour_codes(med)
    _, labels_m, stats_m, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    labels = np.asarray(labels_m, np.int32)
    stats = np.asarray(stats_m, np.int32)
    min_area = max(48, int(2e-4 * h * w))
    found: list[tuple[U8, int, int, NDArray[np.float32], float]] = []
    held: list[tuple[NDArray[np.float32], NDArray[np.bool_], int, int]] = []
    lone: list[tuple[NDArray[np.float32], NDArray[np.bool_], int, int]] = []
    for k in np.nonzero(stats[:, cv2.CC_STAT_AREA] >= min_area)[0]:
        if k == 0:
            continue
        x, y = int(stats[k, 0]), int(stats[k, 1])
        for colour, core in _candidates(med, codes, labels, int(k), stats[k], min_area):
            bar = _examine(rgb, med, colour, core, x, y, min_area)
            if not isinstance(bar, str):
                found.append((bar[0], bar[1], bar[2], colour, bar[3]))
                if _long_box(core):
                    # Its neighbours in a stack see its colour past a thin gap: it joins
                    # them there.
                    lone.append((colour, core, x, y))
                if _uncovered(core, x, y, bar[0], bar[1], bar[2]) >= min_area:
                    # A stack bridged by the median filter whose bars the colour cut parted
                    # again: the largest was taken, the others are still to be judged.
                    held += _split_stack(rgb, colour, core, x, y)
                continue
            # The median filter bridges gaps of a few px between stacked bars, so a stack
            # can come as one core; the picture itself still shows the gaps, and each bar
            # on its own is a long box.
            # (In the median-filtered picture a stack is one colour, gaps and all.)
            hopeless = bar in ("spans", "thin", "small") or bar.startswith("not one colour")
            pieces = [] if hopeless else _split_stack(rgb, colour, core, x, y)
            if pieces:
                held += pieces
            elif bar.startswith("colour continues") or (
                bar in ("small for a compound bar", "thinner than a bar", "low contrast")
                and _long_box(core)
            ):
                # Either may be one bar of a stack: the others' colour across a thin gap
                # shows outside it (in its ring, too, for a middle bar), or joins its region.
                held.append((colour, core, x, y))
            elif bar == "opened away" and _long_box(_closed(core)):
                # The thinnest bars of a JPEG'd stack keep a core too thin and ragged for
                # the opening; closed, it is a long box again.
                held.append((colour, core, x, y))
    found += _stacks(rgb, med, held, lone, min_area)
    return found


def _ramp(roi: NDArray[np.float32], inside: NDArray[np.bool_]) -> float:
    """How far the colour over ``inside`` changes along its best-fitting plane (per
    channel, the largest; 2nd to 98th percentile of the fit over the pixels)."""
    ys, xs = np.nonzero(inside)
    if ys.size > 4096:  # the plane is just as well fitted to a sample
        pick = np.linspace(0, ys.size - 1, 4096).astype(np.intp)
        ys, xs = ys[pick], xs[pick]
    basis = np.stack([np.ones(ys.size), xs - xs.mean(), ys - ys.mean()], axis=1)
    coef = np.linalg.lstsq(basis, roi[ys, xs].astype(np.float64), rcond=None)[0]
    fit = basis[:, 1:] @ coef[1:]
    lo, hi = np.percentile(fit, (2, 98), axis=0)
    return float((hi - lo).max())


def _melted_rim(
    roi: Image, colour: NDArray[np.float32], inside: NDArray[np.bool_], deep: NDArray[np.bool_]
) -> bool:
    """Whether the pixels of ``inside`` (the median-filtered picture's ``colour``) that are
    far from it in ``roi`` itself lie on its rim only and are both darker and lighter: black
    ink on white paper (hatching) that the median's window melted into the mid-tone of a
    bar whose side runs through it. A fill of one of the texture's own tones next to it
    (the paper between a bar and hatching) gets only the other tone on its rim."""
    dist = np.sqrt(((roi.astype(np.float32) - colour) ** 2).sum(axis=2))
    far = inside & (dist > 3 * _CORE_DIST)
    if not far.any() or (far & deep).any():
        return False
    light = roi.astype(np.float32).sum(axis=2)[far] > float(colour.sum())
    return bool(min(np.count_nonzero(light), np.count_nonzero(~light)) >= _MELT_SHARE * light.size)


def _uncovered(core: NDArray[np.bool_], x: int, y: int, region: U8, x0: int, y0: int) -> int:
    """How many pixels of ``core`` (at ``x, y``) the accepted ``region`` (at ``x0, y0``)
    leaves out."""
    ch, cw = core.shape
    rh, rw = region.shape
    ox, oy = x - x0, y - y0  # the core's corner in the region's frame
    sx0, sy0 = max(ox, 0), max(oy, 0)
    sx1, sy1 = min(ox + cw, rw), min(oy + ch, rh)
    covered = 0
    if sx1 > sx0 and sy1 > sy0:
        part = core[sy0 - oy : sy1 - oy, sx0 - ox : sx1 - ox]
        covered = int(np.count_nonzero(part & region[sy0:sy1, sx0:sx1].astype(bool)))
    return int(np.count_nonzero(core)) - covered


def _closed(core: NDArray[np.bool_]) -> NDArray[np.bool_]:
    shut = _u8(cv2.morphologyEx(core.astype(np.uint8), cv2.MORPH_CLOSE, _square(3)))
    return shut.astype(bool)


def _long_box(core: NDArray[np.bool_], fill: float = 0.75) -> bool:
    """Whether ``core`` is a long (rotated) rectangle that fills at least ``fill`` of it, as
    each bar of a stack is; patches fenced off by strokes seldom are."""
    rect = _rect_of(core.astype(np.uint8))
    if rect is None:
        return False
    (_, _), (rw, rh), _ = rect
    long_side, short_side = max(rw, rh), min(rw, rh)
    if short_side < 3.0 or long_side < 3.0 * short_side:
        return False
    return bool(np.count_nonzero(core) >= fill * (rw + 1.0) * (rh + 1.0))


def _split_stack(
    rgb: Image, colour: NDArray[np.float32], core: NDArray[np.bool_], x: int, y: int
) -> list[tuple[NDArray[np.float32], NDArray[np.bool_], int, int]]:
    """The bars of a stack that came as one ``core`` (at ``x, y``): its pixels of ``colour``
    in the picture itself, when they split into two or more parallel long boxes; else []."""
    rows, cols = np.nonzero(core.any(axis=1))[0], np.nonzero(core.any(axis=0))[0]
    if not rows.size:
        return []
    core = core[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    x, y = x + int(cols[0]), y + int(rows[0])
    ch, cw = core.shape
    roi = rgb[y : y + ch, x : x + cw].astype(np.float32)
    own = core & (((roi - colour) ** 2).sum(axis=2) < _CORE_DIST**2)
    own_u8 = _u8(cv2.morphologyEx(own.astype(np.uint8), cv2.MORPH_OPEN, _square(3)))
    return [(colour, piece, x, y) for piece in _parallel_boxes(own_u8)]


def _parallel_boxes(mask: U8) -> list[NDArray[np.bool_]]:
    """The pieces of ``mask`` when they are two or more parallel long boxes (specks aside),
    as the bars of a stack are; else []."""
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    if n < 3 or n > 12:
        return []
    pieces: list[NDArray[np.bool_]] = []
    angles: list[float] = []
    total = np.count_nonzero(mask)
    for k in range(1, n):
        if st[k, cv2.CC_STAT_AREA] < 0.1 * total:
            continue
        piece = lab == k
        rect = _rect_of(piece.astype(np.uint8))
        if rect is None or not _long_box(piece, _MIN_BOX_FILL):
            return []
        (_, _), (rw, rh), ang = rect
        angles.append((ang + (90.0 if rw < rh else 0.0)) % 180.0)
        pieces.append(piece)
    if len(pieces) < 2:
        return []
    # Stacked bars run side by side; fenced-off slivers of one fill seldom all do.
    if any(abs((a - angles[0] + 90.0) % 180.0 - 90.0) > _PAIR_TOL for a in angles):
        return []
    return pieces


def _stacks(
    rgb: Image,
    med: Image,
    held: list[tuple[NDArray[np.float32], NDArray[np.bool_], int, int]],
    lone: list[tuple[NDArray[np.float32], NDArray[np.bool_], int, int]],
    min_area: int,
) -> list[tuple[U8, int, int, NDArray[np.float32], float]]:
    """Parallel bars stacked with small gaps each see the others' colour just outside; taken
    together (the gaps closed) they are one filled rectangle or set of strips again. Patches
    fenced off by strokes join into the larger, unbarlike fill they were cut from."""
    h, w = rgb.shape[:2]
    out: list[tuple[U8, int, int, NDArray[np.float32], float]] = []
    used = [False] * len(held)
    for i, (colour, _, _, _) in enumerate(held):
        if used[i]:
            continue
        group = [j for j in range(i, len(held)) if not used[j]]
        group = [j for j in group if float(np.abs(held[j][0] - colour).max()) < _CORE_DIST]
        mates = [m for m in lone if float(np.abs(m[0] - colour).max()) < _CORE_DIST]
        if len(group) + len(mates) < 2:
            continue
        canvas = np.zeros((h, w), np.uint8)
        for _, core, x, y in [held[j] for j in group] + mates:
            ch, cw = core.shape
            canvas[y : y + ch, x : x + cw] |= core.astype(np.uint8)
        joined = _u8(cv2.morphologyEx(canvas, cv2.MORPH_CLOSE, _square(_STACK_GAP)))
        n, lab, st, _ = cv2.connectedComponentsWithStats(joined, connectivity=4)
        for k in range(1, n):
            x, y, bw, bh, _ = (int(v) for v in st[k])
            part = lab[y : y + bh, x : x + bw] == k
            if np.count_nonzero(canvas[y : y + bh, x : x + bw] & part) == np.count_nonzero(part):
                continue  # nothing was joined: a lone patch, already judged
            members = _closed(canvas[y : y + bh, x : x + bw].astype(bool) & part)
            parallel = bool(_parallel_boxes(members.astype(np.uint8)))
            bar = _examine(rgb, med, colour, part, x, y, min_area, True, parallel)
            if isinstance(bar, str):
                continue
            region, x0, y0, cut = bar
            rh, rw = region.shape
            roi = rgb[y0 : y0 + rh, x0 : x0 + rw].astype(np.float32)
            # The gaps between the bars are the picture's own pixels, not the bars'.
            own = np.sqrt(((roi - colour) ** 2).sum(axis=2)) < cut
            out.append((region & own.astype(np.uint8), x0, y0, colour, cut))
            for j in group:
                used[j] = True
    return out


def detect_bars(rgb: Image, grow: int = 0) -> Mask:
    """Mask of solid censor bars: flat, single-coloured (rotated) rectangles and their unions.

    Flat regions are split into connected components; each is cut down to its dominant
    colour, and is a bar when it contrasts with its surroundings, is not background-sized,
    and is either a filled rectangle or a union of straight, constant-thickness strips (an X,
    T, L, stacked or fused bars). Large pictures are searched at about 1024 px and the bars'
    rims refined at full size. ``grow`` dilates the result, useful to swallow JPEG fringes
    before inpainting.
    """
    h, w = rgb.shape[:2]
    out = np.zeros((h, w), np.uint8)
    scale = min(1.0, SEARCH_SIZE / max(h, w))
    if scale == 1.0:
        for region, x0, y0, _, _ in _find(rgb):
            rh, rw = region.shape
            out[y0 : y0 + rh, x0 : x0 + rw] |= region
    else:
        size = (max(round(w * scale), 1), max(round(h * scale), 1))
        small = _u8(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
        for region, x0, y0, colour, cut in _find(small):
            rh, rw = region.shape
            fx0, fy0 = int(x0 / scale), int(y0 / scale)
            fx1, fy1 = (
                min(int(np.ceil((x0 + rw) / scale)), w),
                min(int(np.ceil((y0 + rh) / scale)), h),
            )
            up = _u8(cv2.resize(region, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_NEAREST))
            # The upscaled mask is blocky at the rim; the bar's colour decides there.
            roi = rgb[fy0:fy1, fx0:fx1].astype(np.float32)
            coloured = np.sqrt(((roi - colour) ** 2).sum(axis=2)) < cut
            rim = int(np.ceil(1.0 / scale)) * 2 + 1
            inner = _u8(cv2.erode(up, _square(rim))).astype(bool)
            outer = _u8(cv2.dilate(up, _square(rim))).astype(bool)
            full = inner | (outer & coloured)
            out[fy0:fy1, fx0:fx1] |= _fill_holes(full.astype(np.uint8))
    if grow > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        out = _u8(cv2.dilate(out, disc))
    res: Mask = out.astype(bool)
    return res
