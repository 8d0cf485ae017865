"""Mask helpers whose cost follows the masked area, not the picture's size.

A GPU worker's own CPU work per job is what limits it (bench/onnx_speed.py), and
most censored regions are small parts of a large picture, so these work inside
the mask's bounding box.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.backend import Mask
from workers.imageops.green import bounds, cells

Labels = NDArray[np.int32]


def grow(mask: Mask, px: int) -> Mask:
    """The mask dilated by a disc of radius ``px``: worked out around each group of the
    ``CELL`` px squares that hold any of it (a few bars across a large picture cost their
    own area), or over the mask's box when that costs less (specks all over)."""
    if px <= 0:
        return mask
    box = bounds(mask)
    if box is None:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    grown = np.zeros(mask.shape, bool)
    # Every masked pixel's disc lies in its own window, so the union of the windows'
    # dilations is the whole mask's.
    windows = _windows(mask, box, px, GROW_PIECES)
    for a, b, c, d in windows:
        # OpenCV reads the window in place (its rows need not be contiguous).
        part = mask[b:d, a:c].view(np.uint8)
        done = cv2.dilate(part, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        window = grown[b:d, a:c]
        if len(windows) == 1:  # nothing else written there yet
            window[...] = np.asarray(done).view(bool)
        else:
            np.logical_or(window, np.asarray(done).view(bool), out=window)
    return grown


# Beyond this many groups of squares, one pass over the mask's box costs less.
GROW_PIECES = 48


def _windows(
    mask: Mask, box: tuple[int, int, int, int], pad: int, limit: int
) -> list[tuple[int, int, int, int]]:
    """Windows (x0, y0, x1, y1) that together hold every pixel of ``mask`` (whose
    bounding box is ``box``) and ``pad`` px around it, cut to the picture: one per group
    of the ``CELL`` px squares that hold any of it, or the box itself where there are
    more than ``limit`` groups or their windows cover as much."""
    x0, y0, x1, y1 = box
    h, w = mask.shape
    occupied = cells(mask[y0:y1, x0:x1].view(np.uint8), CELL)
    pieces, _, stats, _ = cv2.connectedComponentsWithStats(occupied, connectivity=8)
    whole = (max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h))
    if pieces - 1 > limit:
        return [whole]
    wx0 = np.maximum(stats[1:, 0] * CELL + x0 - pad, 0)
    wy0 = np.maximum(stats[1:, 1] * CELL + y0 - pad, 0)
    wx1 = np.minimum((stats[1:, 0] + stats[1:, 2]) * CELL + x0 + pad, whole[2])
    wy1 = np.minimum((stats[1:, 1] + stats[1:, 3]) * CELL + y0 + pad, whole[3])
    covered = int(((wx1 - wx0).astype(np.int64) * (wy1 - wy0)).sum())
    if covered >= (whole[2] - whole[0]) * (whole[3] - whole[1]):
        return [whole]
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(wx0, wy0, wx1, wy1, strict=True)]


# Regions are labelled inside the CELL px squares that hold any of the mask (joined when
# they touch), so a few bars across a large picture cost what their own area costs.
CELL = 32
# Beyond this many separate groups of squares (specks all over), one labelling of the
# mask's box costs less than one per group; so it does when the groups' boxes together
# are as large as the mask's.
MAX_PIECES = 12


class Components:
    """Connected regions of a mask: ``labels`` over the window ``box`` (x0, y0, x1, y1) of
    the picture, and each region's bounding box (``stats``: x, y, w, h, area, relative to
    ``box``). Labels are numbered piece by piece, not in raster order."""

    def __init__(self, mask: Mask, connectivity: int) -> None:
        box = bounds(mask)
        self.box = box or (0, 0, 0, 0)
        self.count = 1
        self.labels: Labels = np.zeros((0, 0), np.int32)
        self.stats: Labels = np.zeros((1, 5), np.int32)
        if box is None:
            return
        x0, y0, x1, y1 = box
        part = mask[y0:y1, x0:x1].view(np.uint8)
        occupied = cells(part, CELL)
        pieces, cell_labels, cell_stats, _ = cv2.connectedComponentsWithStats(
            occupied, connectivity=8
        )
        h, w = part.shape
        # Pieces whose boxes together cover the mask's box (one piece filling it, nested
        # rings, long parallel strokes: each box holds the others) would label and copy
        # the same pixels several times over; one labelling of the box does it once.
        cx0, cy0 = cell_stats[1:, 0] * CELL, cell_stats[1:, 1] * CELL
        cx1 = np.minimum((cell_stats[1:, 0] + cell_stats[1:, 2]) * CELL, w)
        cy1 = np.minimum((cell_stats[1:, 1] + cell_stats[1:, 3]) * CELL, h)
        covered = int(((cx1 - cx0).astype(np.int64) * (cy1 - cy0)).sum())
        squares: Labels = np.asarray(cell_labels, np.int32)
        boxes: Labels = np.asarray(cell_stats, np.int32)
        packed = None
        if pieces - 1 > MAX_PIECES and covered < h * w:
            # Specks all over a large box: the pieces side by side in one small picture,
            # labelled at once (a call per piece costs more than the labelling).
            packed = _packed(part, squares, boxes, connectivity)
        if packed is not None:
            self.count, self.labels, self.stats = packed
            return
        if pieces - 1 > MAX_PIECES or covered >= h * w:
            self.count, self.labels, self.stats = _label(np.ascontiguousarray(part), connectivity)
            return
        # Zeroed lazily by the system: only the pieces' squares are ever written.
        labels = np.zeros((h, w), np.int32)
        stats = [self.stats]
        count = 1
        for k in range(1, pieces):
            (px0, py0, px1, py1), piece, foreign = _piece(part, squares, boxes, k)
            n, piece_labels, piece_stats = _label(piece, connectivity)
            if n == 1:
                continue
            inside = piece_labels > 0
            np.add(piece_labels, count - 1, out=piece_labels, where=inside)
            window = labels[py0:py1, px0:px1]
            if foreign:
                np.copyto(window, piece_labels, where=inside)
            else:
                window[...] = piece_labels
            piece_stats = piece_stats[1:].copy()
            piece_stats[:, 0] += px0
            piece_stats[:, 1] += py0
            stats.append(piece_stats)
            count += n - 1
        self.count, self.labels, self.stats = count, labels, np.concatenate(stats)

    def boxes(self) -> list[tuple[int, tuple[int, int, int, int]]]:
        """(label, (x0, y0, x1, y1)) of every region, in the picture's coordinates."""
        ox, oy = self.box[:2]
        out = []
        for label in range(1, self.count):
            x, y, bw, bh = (int(v) for v in self.stats[label, :4])
            out.append((label, (x + ox, y + oy, x + ox + bw, y + oy + bh)))
        return out

    def region(self, label: int, x0: int, y0: int, x1: int, y1: int) -> Mask:
        """Region ``label``'s pixels in the picture window [y0:y1, x0:x1] (which must lie
        within the mask's box)."""
        ox, oy = self.box[:2]
        found: Mask = self.labels[y0 - oy : y1 - oy, x0 - ox : x1 - ox] == label
        return found


def _piece(
    part: NDArray[np.uint8], cell_labels: Labels, cell_stats: Labels, k: int
) -> tuple[tuple[int, int, int, int], NDArray[np.uint8], bool]:
    """Piece ``k``'s window (x0, y0, x1, y1) of ``part``, its pixels there (only its own
    squares' where another piece's squares lie in its box), and whether they do."""
    h, w = part.shape
    cx, cy, cw, ch = (int(v) for v in cell_stats[k, :4])
    px0, py0 = cx * CELL, cy * CELL
    px1, py1 = min((cx + cw) * CELL, w), min((cy + ch) * CELL, h)
    piece = np.ascontiguousarray(part[py0:py1, px0:px1])
    near = cell_labels[cy : cy + ch, cx : cx + cw]
    foreign = bool(((near != 0) & (near != k)).any())
    if foreign:
        # In a copy: the piece may be a view of the caller's mask.
        own = np.repeat(np.repeat((near == k).view(np.uint8), CELL, 0), CELL, 1)
        piece = piece & own[: py1 - py0, : px1 - px0]
    return (px0, py0, px1, py1), piece, foreign


def _packed(
    part: NDArray[np.uint8], cell_labels: Labels, cell_stats: Labels, connectivity: int
) -> tuple[int, Labels, Labels] | None:
    """``part``'s regions (count, labels over ``part``, stats) from one labelling of its
    pieces packed in rows, a blank pixel between any two; None where the packed picture
    would be no smaller than ``part``."""
    h, w = part.shape
    width = max(int(cell_stats[1:, 2].max()) * CELL + 1, min(w, 1024))
    places: list[tuple[int, int]] = []  # each piece's corner in the packed picture
    shelves: list[int] = [0]  # each row of pieces' top
    x = y = tall = 0
    for k in range(1, len(cell_stats)):
        pw = min(int(cell_stats[k, 2]) * CELL, w)
        ph = min(int(cell_stats[k, 3]) * CELL, h)
        if x + pw > width:
            x, y, tall = 0, y + tall + 1, 0
            shelves.append(y)
        places.append((x, y))
        x, tall = x + pw + 1, max(tall, ph)
    if (y + tall) * width * 4 >= h * w * 3:
        return None
    canvas = np.zeros((y + tall, width), np.uint8)
    windows = []
    for k, (x, y) in enumerate(places, 1):
        where, piece, foreign = _piece(part, cell_labels, cell_stats, k)
        canvas[y : y + piece.shape[0], x : x + piece.shape[1]] = piece
        windows.append((where, foreign))
    count, found, stats = _label(canvas, connectivity)
    # Each region's stats moved from its piece's place to the piece's window: the piece
    # is the last one placed at or before the region's corner, row by row.
    corners = np.array(places, np.int64).reshape(-1, 2)
    rows = np.searchsorted(np.array(shelves), corners[:, 1], side="right")
    keys = rows * (width + 1) + corners[:, 0]
    region_rows = np.searchsorted(np.array(shelves), stats[1:, 1], side="right")
    owner = np.searchsorted(keys, region_rows * (width + 1) + stats[1:, 0], side="right") - 1
    origins = np.array([where[:2] for where, _ in windows], np.int64).reshape(-1, 2)
    stats = stats.copy()
    stats[1:, :2] += (origins[owner] - corners[owner]).astype(np.int32)
    # Zeroed lazily by the system: only the pieces' windows are ever written.
    labels = np.zeros((h, w), np.int32)
    for ((px0, py0, px1, py1), foreign), (x, y) in zip(windows, places, strict=True):
        got = found[y : y + py1 - py0, x : x + px1 - px0]
        window = labels[py0:py1, px0:px1]
        if foreign:
            np.copyto(window, got, where=got > 0)
        else:
            window[...] = got
    return count, labels, stats


def _label(part: NDArray[np.uint8], connectivity: int) -> tuple[int, Labels, Labels]:
    """OpenCV's connected components with stats. 16-bit labels where they cannot run
    out: OpenCV 5 computes 8-connected stats about 3x faster with them. Its stats cost
    2-6 ns a pixel of the whole picture (4-connected: 6 ms at 1024x1024, eight times the
    labelling): where the regions are a small part of it, they are worked out from the
    set pixels alone."""
    filled = cv2.countNonZero(part)
    ltype = cv2.CV_16U if connectivity == 8 and filled < 65535 else cv2.CV_32S
    if filled * SPARSE < part.size:
        count, labels = cv2.connectedComponents(part, connectivity=connectivity, ltype=ltype)
        return int(count), np.asarray(labels, np.int32), _stats(labels, int(count))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        part, connectivity=connectivity, ltype=ltype
    )
    return int(count), np.asarray(labels, np.int32), np.asarray(stats, np.int32)


# Regions covering under 1/SPARSE of a picture have their stats worked out from their
# own pixels.
SPARSE = 8


def _stats(labels: NDArray[Any], count: int) -> Labels:
    """OpenCV's stats (x, y, w, h, area per label) from ``labels``, read at the labelled
    pixels only (label 0's are those of the whole picture, as OpenCV gives them)."""
    points = cv2.findNonZero(np.asarray(labels > 0, np.uint8))
    stats = np.zeros((count, 5), np.int32)
    h, w = labels.shape
    stats[0] = (0, 0, w, h, h * w)
    if points is None:
        return stats
    points = np.asarray(points).reshape(-1, 2)
    xs, ys = points[:, 0], points[:, 1]
    which = labels[ys, xs]
    x0, y0, x1, y1 = group_bounds(which, count, (xs, ys, xs, ys), (h, w), np.int32)
    area = np.bincount(which, minlength=count)
    stats[1:, 0], stats[1:, 1] = x0[1:], y0[1:]
    stats[1:, 2], stats[1:, 3] = x1[1:] - x0[1:] + 1, y1[1:] - y0[1:] + 1
    stats[1:, 4] = area[1:]
    stats[0, 4] = h * w - int(area[1:].sum())
    return stats


def group_bounds(
    group: NDArray[Any],
    count: int,
    boxes: tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]],
    size: tuple[int, int],
    dtype: type[np.signedinteger[Any]] = np.int64,
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """The box (x0, y0, x1, y1) around each of ``count`` groups of the ``boxes`` (x0s,
    y0s, x1s, y1s), ``group`` giving each box's group; an empty group's box is inverted
    (``size`` (h, w) to 0)."""
    h, w = size
    x0s, y0s, x1s, y1s = boxes
    gx0, gy0 = np.full(count, w, dtype), np.full(count, h, dtype)
    gx1, gy1 = np.zeros(count, dtype), np.zeros(count, dtype)
    np.minimum.at(gx0, group, x0s)
    np.minimum.at(gy0, group, y0s)
    np.maximum.at(gx1, group, x1s)
    np.maximum.at(gy1, group, y1s)
    return gx0, gy0, gx1, gy1


def group_holes(
    boxes: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    shape: tuple[int, int],
    margin: int,
    span: int,
) -> tuple[NDArray[np.int64], int]:
    """Each hole's group (and the number of groups) for holes whose boxes are ``boxes``
    (x0s, y0s, x1s, y1s) in a picture of ``shape`` (h, w): groups whose holes, with
    ``margin`` px around them cut at the picture's edges, span at most ``span`` px each
    way, so that a fixed-size model's square holds a group at its own resolution.

    Rows of holes first, then runs along each row, each as long as it can be (holes in
    order of their top, then left edge): the fewest groups in one dimension, and near
    the picture's edges a group reaches further, as its crop does. A hole that spans
    more on its own is a group of its own."""
    x0s, y0s, x1s, y1s = boxes
    h, w = shape
    group_of = np.zeros(len(x0s), np.int64)
    count = 0
    for band in _runs(y0s, y1s, np.arange(len(y0s)), h, margin, span):
        for run in _runs(x0s[band], x1s[band], band, w, margin, span):
            group_of[run] = count
            count += 1
    return group_of, count


def _runs(
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    items: NDArray[np.intp],
    size: int,
    margin: int,
    span: int,
) -> list[NDArray[np.intp]]:
    """``items`` (whose intervals are [starts, ends) along a side of ``size``) in runs:
    in order of their start, each run as many as fit ``span`` with their margins."""
    order = np.argsort(starts, kind="stable")
    starts, ends, items = starts[order], ends[order], items[order]
    runs = []
    i, n = 0, len(items)
    while i < n:
        low = max(int(starts[i]) - margin, 0)
        reach = np.minimum(np.maximum.accumulate(ends[i:]) + margin, size) - low
        over = np.flatnonzero(reach > span)
        stop = i + max(int(over[0]) if len(over) else n - i, 1)
        runs.append(items[i:stop])
        i = stop
    return runs


# Pairs of (window, region) tried at once by ``meeting``: bounds what it holds.
MEET_CHUNK = 1 << 20


def meeting(
    boxes: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    group_of: NDArray[np.int64],
    group_boxes: NDArray[np.int64],
    windows: NDArray[np.int64],
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Every (window, region) where a region whose box is in ``boxes`` (x0s, y0s, x1s,
    y1s) meets a window (rows of x0, y0, x1, y1), in chunks, each sorted by window.

    A region lies in its group's box (``group_boxes``, rows as the windows'; regions'
    groups ``group_of``), so only the regions of groups whose box meets a window are
    tried: the cost follows the regions near each window, not windows times regions
    (a million specks in 600 groups once took 2 GB and 3 s)."""
    x0s, y0s, x1s, y1s = boxes
    count = len(group_boxes)
    order = np.argsort(group_of, kind="stable")
    first = np.searchsorted(group_of[order], np.arange(count + 1))
    sizes = first[1:] - first[:-1]
    wx0, wy0, wx1, wy1 = windows.T
    gx0, gy0, gx1, gy1 = group_boxes.T
    step = max(MEET_CHUNK // max(count, 1), 1)
    for w0 in range(0, len(windows), step):
        sl = slice(w0, w0 + step)
        near = ((gx0[None, :] < wx1[sl, None]) & (gx1[None, :] > wx0[sl, None])
                & (gy0[None, :] < wy1[sl, None]) & (gy1[None, :] > wy0[sl, None]))  # fmt: skip
        w_of, g_of = np.nonzero(near)
        w_of += w0
        tried = sizes[g_of]
        ends = np.cumsum(tried)
        start = 0
        while start < len(g_of):
            done = int(ends[start - 1]) if start else 0
            stop = max(int(np.searchsorted(ends, done + MEET_CHUNK, side="right")), start + 1)
            n = tried[start:stop]
            which = np.repeat(w_of[start:stop], n)
            # Each group's regions (a run of ``order``), one after the other.
            at = np.repeat(first[g_of[start:stop]] - (np.cumsum(n) - n), n) + np.arange(n.sum())
            region = order[at]
            hit = ((x0s[region] < wx1[which]) & (x1s[region] > wx0[which])
                   & (y0s[region] < wy1[which]) & (y1s[region] > wy0[which]))  # fmt: skip
            yield which[hit], region[hit]
            start = stop


def source_window(
    source: tuple[int, int], size: tuple[int, int], window: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """The part (x0, y0, x1, y1) of a ``source`` (h, w) image that ``resize_window``
    reads for ``window`` of its resize to ``size``: all of it when shrinking; when
    enlarging, the window's bicubic taps with a pixel to spare each side (so a model's
    output need only be decoded there)."""
    (sh, sw), (h, w) = source, size
    if (sh, sw) == (h, w):
        return window
    if sh > h or sw > w:
        return 0, 0, sw, sh
    x0, y0, x1, y1 = window

    def span(a: int, b: int, f: float, n: int) -> tuple[int, int]:
        # Output pixel x samples (x + 0.5) * f - 0.5 with taps floor() - 1 .. floor() + 2.
        lo = math.floor((a + 0.5) * f - 0.5) - 2
        hi = math.floor((b - 0.5) * f - 0.5) + 4
        return max(lo, 0), min(hi, n)

    sx0, sx1 = span(x0, x1, sw / w, sw)
    sy0, sy1 = span(y0, y1, sh / h, sh)
    return sx0, sy0, sx1, sy1


def resize_window(
    image: NDArray[np.uint8],
    size: tuple[int, int],
    window: tuple[int, int, int, int],
    part: tuple[int, int, int, int] | None = None,
    source: tuple[int, int] | None = None,
) -> NDArray[np.uint8]:
    """``window`` (x0, y0, x1, y1) of an image resized to ``size`` (h, w), computed for
    the window's pixels only: bicubic when enlarging, area averaging when shrinking, the
    same pixels as resizing the whole and cutting the window out (within a level: the
    sampling positions are rounded to 1/32 px).

    ``image`` is the whole source, or only ``part`` of a ``source``-sized one, as
    ``source_window`` gives it."""
    h, w = size
    x0, y0, x1, y1 = window
    sh, sw = source or image.shape[:2]
    px, py = part[:2] if part is not None else (0, 0)
    if (sh, sw) == (h, w):
        return image[y0 - py : y1 - py, x0 - px : x1 - px]
    if sh > h or sw > w:
        whole = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return np.asarray(whole, np.uint8)[y0:y1, x0:x1]
    fx, fy = sw / w, sh / h
    matrix = np.array(
        [[fx, 0.0, (x0 + 0.5) * fx - 0.5 - px], [0.0, fy, (y0 + 0.5) * fy - 0.5 - py]]
    )
    # Replicated borders: at the source's own edges as for the whole; a part cut inside
    # it holds every tap, so its borders are never read.
    out = cv2.warpAffine(
        image, matrix, (x1 - x0, y1 - y0),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return np.asarray(out, np.uint8).reshape(y1 - y0, x1 - x0, *image.shape[2:])


def _spans(source: int, size: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Per output pixel of an area shrink from ``source`` to ``size`` pixels, the first
    and last + 1 source pixels it averages with any weight, as OpenCV's table has them
    (a partial pixel counts when it overlaps by more than 1/1000)."""
    scale = 1.0 / (size / source)
    start = np.arange(size) * scale
    stop = start + scale
    first, last = np.ceil(start), np.minimum(np.floor(stop), source - 1)
    first = np.minimum(first, last)
    lo = np.where(first - start > 1e-3, first - 1, first)
    hi = np.where(stop - last > 1e-3, last + 1, last)
    return lo.astype(np.intp), np.maximum(hi, lo + 1).astype(np.intp)


def shrink_any(mask: Mask, size: tuple[int, int]) -> Mask:
    """``mask`` shrunk to ``size`` (h, w; each no larger than the mask's) by area: an
    output pixel is set when any pixel it averages over is (where a resized hole must
    stay hole). Worked out around each group of squares that hold the mask (as
    ``grow``), so holes far apart in a large crop cost their own area."""
    h, w = size
    out = np.zeros((h, w), bool)
    box = bounds(mask)
    if box is None:
        return out
    row_spans, col_spans = _spans(mask.shape[0], h), _spans(mask.shape[1], w)
    for x0, y0, x1, y1 in _windows(mask, box, 0, GROW_PIECES):
        part = np.ascontiguousarray(mask[y0:y1, x0:x1]).view(np.uint8)
        rows = _any_over(part, *row_spans, y0, y1)
        if rows is None:
            continue
        r0, found_rows = rows
        # Columns as rows of the transpose.
        cols = _any_over(np.ascontiguousarray(found_rows.T), *col_spans, x0, x1)
        if cols is None:
            continue
        c0, found = cols
        window = out[r0 : r0 + found.shape[1], c0 : c0 + found.shape[0]]
        np.logical_or(window, found.T.view(bool), out=window)
    return out


def _any_over(
    part: NDArray[np.uint8], lo: NDArray[np.intp], hi: NDArray[np.intp], a: int, b: int
) -> tuple[int, NDArray[np.uint8]] | None:
    """For the outputs whose spans [lo, hi) of rows meet [a, b) (where ``part``'s rows
    lie), the first such output and the largest value of ``part`` in each span."""
    first = int(np.searchsorted(hi, a, side="right"))
    end = int(np.searchsorted(lo, b, side="left"))
    if first >= end:
        return None
    starts = np.clip(lo[first:end] - a, 0, b - a)
    lengths = np.clip(hi[first:end] - a, 0, b - a) - starts
    found = np.empty((end - first, part.shape[1]), np.uint8)
    # A span of L rows starting at row y: row y of the part dilated by L rows downwards
    # (the few lengths a shrink has, one OpenCV pass each).
    for length in np.unique(lengths):
        kernel = np.ones((int(length), 1), np.uint8)
        grown = cv2.dilate(part, kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT,
                           borderValue=0)  # fmt: skip
        which = lengths == length
        found[which] = grown[starts[which]]
    return first, found


# Shrinks by at most this factor are one bilinear pass: every source pixel still counts
# (its taps are never more than a pixel apart) and the picture stays as sharp as an area
# average leaves it; larger ones go through twice the size (see ``shrink``).
LINEAR_UP_TO = 1.25
# A side still over this many times its size where halving both sides stops (a thin
# crop) is halved alone: the bilinear step then shrinks it by at most 1.5, every source
# pixel weighing at least half.
LONE_UP_TO = 3.0


def shrink(
    image: NDArray[np.uint8], hole: Mask, size: tuple[int, int]
) -> tuple[NDArray[np.uint8], Mask]:
    """``image`` (8-bit, any channels) and its ``hole`` shrunk to ``size`` (h, w; each
    no larger than theirs) for a model, and the hole there: every output pixel whose
    value any hole pixel moved (the green under it must not pass for context).

    OpenCV's area averaging costs about 3 ns a source pixel at a ratio that is not a
    whole number (2.6 ms for an 870 px crop to 512), 15 times what halving costs, so:
    a shrink by at most ``LINEAR_UP_TO`` is bilinear; a larger one is exact halvings
    while over 2.5 times the size (an odd side first stretched bilinearly by a pixel),
    then a bilinear resize to twice the size and a last halving: an area average over
    the same span, blurred by the bilinear step's reach of under a pixel. Bit for bit
    the same resizes are done on the hole as 0/255 (a zero weight is zero for both),
    any non-zero output counting as hole."""
    h, w = hole.shape
    ch, cw = size
    gap = hole.view(np.uint8) * np.uint8(255)
    pixels = image
    if max(h / ch, w / cw) <= LINEAR_UP_TO:
        return _linear(pixels, size), _linear(gap, size) > 0
    # Both sides halved while over 2.5 times their size; then a side still over
    # ``LONE_UP_TO`` times alone: a crop far longer than wide (5000 x 20 to 512 x 8)
    # would otherwise leave that side's bilinear step over twice the size, skipping
    # rows whose specks would be lost to the hole.
    while (h > 2.5 * ch and w > 2.5 * cw) or h > LONE_UP_TO * ch or w > LONE_UP_TO * cw:
        both = h > 2.5 * ch and w > 2.5 * cw
        fy = 2 if both or h > LONE_UP_TO * ch else 1
        fx = 2 if both or w > LONE_UP_TO * cw else 1
        if h % fy or w % fx:
            h, w = h + h % fy, w + w % fx
            pixels, gap = _linear(pixels, (h, w)), _any(_linear(gap, (h, w)))
        h, w = h // fy, w // fx
        pixels, gap = _halved(pixels, (h, w)), _any(_halved(gap, (h, w)))
    if (h, w) != (2 * ch, 2 * cw):
        pixels, gap = _linear(pixels, (2 * ch, 2 * cw)), _any(_linear(gap, (2 * ch, 2 * cw)))
    found: Mask = np.asarray(_halved(gap, size)) > 0
    return _halved(pixels, size), found


def _linear(image: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    """``image`` resized to ``size`` (h, w) by OpenCV's bilinear interpolation."""
    return np.asarray(cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR), np.uint8)


def _halved(image: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    """``image`` halved to ``size`` (h, w) on one side or both: each block's mean
    (OpenCV's exact, fast area averaging at whole ratios)."""
    return np.asarray(cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA), np.uint8)


def _any(values: NDArray[Any]) -> NDArray[np.uint8]:
    """255 where ``values`` is not 0, else 0."""
    _, out = cv2.threshold(np.asarray(values, np.uint8), 0, 255, cv2.THRESH_BINARY)
    return np.asarray(out, np.uint8)
