"""Mosaic (pixelation) censoring: grid estimation, detection and block-aware restoration."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]
FloatArray = NDArray[np.float32]

MIN_BLOCK = 4
MAX_BLOCK = 40
# Comb score (mean step energy on the grid lines over the mean everywhere) below which a
# picture has no grid: natural edges land on any column equally often, scoring about 1.
# A small mosaic on a textured photo dilutes its comb; the cell tests after it still hold.
_MIN_COMB = 2.2
_MIN_AXIS_COMB = 1.8
# A grid is only looked for along a side of at least three of the smallest cells.
_MIN_SIDE = 3 * MIN_BLOCK
# At most this many more grids from the picture's quarters (each costs a look at its cells).
_TILE_GRIDS = 2
# When neither finds a mosaic, at most this many more from windows a quarter of the picture's
# short side wide (not under _LOCAL_MIN px).
_LOCAL_GRIDS = 2
_LOCAL_MIN = 96
# A window's comb must not rest on one line: each residue's strongest line is left out of its
# score, and only blocks of which the window holds this many cells along a side are proposed.
# Folded at a block of 31-39 (3-4 lines in a 128 px window), one long straight edge or a few
# hatching lines scored up to block / 3 times their share and outranked small mosaics' combs
# in every window: at bases 41000 / 45000 a b18 and three b6 mosaics under JPEG 80 had their
# grid never looked at. (A mosaic's lines each carry a share of its steps.)
_WINDOW_FOLDS = 6
# About the most windows looked at: a long strip's are widened (to its short side at most)
# and then spread out along it. A picture of aspect 2:1 or squarer keeps its quarter-side
# windows; at 400x40000 there were 5600 of them (3.8 s CPU).
_LOCAL_WINDOWS = 128
# A grid only a window found must step by this much (max over channels) between this share
# of its regions' neighbouring cells: JPEG's blocks in a smooth area, cropped off JPEG's
# phase (a scanned page), step by a level or two (1 % of them by 6), where the mosaics of
# bases 25000 / 29000 step by 6 between 21-93 % of their cells.
_WINDOW_STEP = 6.0
_WINDOW_STEP_SHARE = 0.1
# A cell counts as flat when every channel's standard deviation inside it is below this
# (JPEG at quality 80 leaves a mosaic cell next to a strong edge a std of about 6).
_FLAT_STD = 8.0
# ... and, inside the hull of a region of pixelated cells, when its luma's is below this
# (JPEG rings inside a mosaic cell next to an ink line, and its chroma, kept at half size,
# smears colour across cells; the luma of such a cell stays flat, that of unpixelated art
# beside a mosaic does not). Scaled with the flat limit where that is stricter.
_HULL_LUMA_STD = 6.0
_CHROMA_STD = 3.0
# Restoration leaves masked flat cells that continue a flat field outside the mask as they
# are (see ``_held_cells``): rounds of peeling them from the mask's border inwards, and the
# largest mean-colour difference (max over channels) from the field's cell beside them.
_PEEL_ROUNDS = 3
_PEEL_SAME = 1.5
# A grid step must exceed the mean step inside the two cells this many times.
_QUIET_RATIO = 2.5
# Mean-colour difference (max over channels) that makes two neighbouring cells distinct.
_STEP = 3.0
_MIN_REGION_CELLS = 6
# A grid moved by part of its block (see ``_native_shift``) that still finds this share of
# its mosaic area sees the picture's own pixels; so does one whose regions cover this share
# of the picture's cells.
_NATIVE_SHARE = 0.4
_WHOLE_SHARE = 0.85
# A region's cell colours are binned in steps of 8, or of 1/_BINS of their spread where
# that is finer, but never under _MIN_BIN (JPEG noise would split one colour).
_BINS = 8.0
_MIN_BIN = 2.0
_FINE_CELLS = 2 * _MIN_REGION_CELLS
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
# Summed-channel difference that still counts as no change (JPEG-light noise).
_QUIET = 6
# ... or, next to a bigger step, up to 1/_QUIET_DIV of it: JPEG rings beside every mosaic step.
_QUIET_DIV = 4
_COUNT_STEP = 6
# Mean summed-channel step across a cell edge that marks a mosaic boundary.
_EDGE_STEP = 4.0
_JPEG_EDGE_STEP = 24.0
# Max channel std of an exactly uniform cell (float rounding aside), and the summed-channel
# step between two such cells that marks a mosaic boundary off JPEG's block edges.
_EXACT_STD = 0.25
_EXACT_STEP = 1.0
# Steps across every eighth line over the mean across the others that mark JPEG blocking.
_BLOCKY = 1.04
# Depth, as a share of the block, of the band of unmasked pixels along the mask whose colour
# stands for their cell when restoring its masked neighbours.
_RING = 0.15
# Restoration of two-tone cells (an edge between two flat fills). Contrast between the two
# fills (Euclidean RGB) below which a neighbourhood is flat, and over which trust grows:
_TONE_MIN = 20.0
_TONE_RAMP = 30.0
# Largest distance of any neighbouring cell's colour from the line between the two fills,
# and of the cell's own colour, relative to their contrast, for the cell to count as two-tone:
# shading, texture and ink lines leave the line, and their cells keep the smooth estimate.
_TONE_OFF = 0.04
_TONE_RESID = 0.15
# Width, in pixels across a cell, of the restored edge's ramp (drawn edges are anti-aliased).
_TONE_SOFT = 3.0
# Share of either fill under which a cell counts as that fill alone.
_TONE_PURE = 0.02
# Share of the contrast within which a neighbouring cell counts as one of the two fills.
_TONE_NEAR = 0.1
# Smoothing after the two-tone edges: diffusion steps, each followed by putting the cells'
# means back, and the rate of each (a discrete heat step is stable up to 0.25); cells whose
# two-tone trust reaches _EDGE_HOLD keep their sharp edge. With true masks on the quality
# benchmark's cases (seed bases 1000, 3000, 5000), photo-like samples gained +1.11 dB on
# average before and +1.27 dB after, drawn art +1.08 and +1.23 dB.
_SMOOTH_STEPS = 12
_SMOOTH_RATE = 0.25
_EDGE_HOLD = 0.5
_HEAT_STEP = np.array(
    [
        [0, _SMOOTH_RATE, 0],
        [_SMOOTH_RATE, 1 - 4 * _SMOOTH_RATE, _SMOOTH_RATE],
        [0, _SMOOTH_RATE, 0],
    ],
    np.float32,
)


@dataclass(frozen=True)
class MosaicGrid:
    """A square mosaic grid: cells of ``block`` px whose left/top edges lie at ``phase_x``
    and ``phase_y`` (mod ``block``)."""

    block: int
    phase_x: int
    phase_y: int


_CHANNEL_SUM = np.ones((1, 3), np.float32)
_SIDES_X = np.array([[1, 1, 0, 1, 1]], np.uint8)
_SIDES_Y = _SIDES_X.T.copy()


def _abs_steps(rgb: Image) -> tuple[FloatArray, FloatArray]:
    """Per pixel pair, the colour step summed over channels: across (x, x+1) and (y, y+1).

    OpenCV's saturating absdiff is exact on uint8 and its channel sum is vectorised;
    numpy's sum over a last axis of three is several times slower on big pictures.
    """
    h, w = rgb.shape[:2]
    if h < 2 or w < 2:
        # OpenCV returns None for an empty array; a picture one pixel high (or wide) has
        # no pairs across that axis, and those along the other are summed by numpy.
        px = rgb.astype(np.int16)
        sx = np.abs(px[:, 1:] - px[:, :-1]).sum(axis=2, dtype=np.float32)
        sy = np.abs(px[1:, :] - px[:-1, :]).sum(axis=2, dtype=np.float32)
        return np.asarray(sx, np.float32), np.asarray(sy, np.float32)
    # (transform keeps its input's depth, so the sum is taken in float32, not uint8.)
    ax = cv2.absdiff(rgb[:, 1:], rgb[:, :-1]).astype(np.float32)
    ay = cv2.absdiff(rgb[1:, :], rgb[:-1, :]).astype(np.float32)
    dx = cv2.transform(ax, _CHANNEL_SUM)
    dy = cv2.transform(ay, _CHANNEL_SUM)
    return np.asarray(dx, np.float32), np.asarray(dy, np.float32)


def _isolated_steps(
    rgb: Image, steps: tuple[FloatArray, FloatArray] | None = None
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Where a one-pixel colour step stands alone: across (x, x+1) and across (y, y+1).

    A mosaic changes colour abruptly between two pixels and not at all around them; drawn
    edges are anti-aliased over several pixels. Keeping only the steps whose neighbours
    are flat leaves the grid lines and little else.
    """
    fx, fy = steps if steps is not None else _abs_steps(rgb)

    def isolate(d: FloatArray, ring: NDArray[np.uint8]) -> NDArray[np.bool_]:
        # The largest step among the two on either side (not the step itself); past the
        # picture's border, steps count as large. (Sums of uint8 steps are exact in float32.)
        side = cv2.dilate(d, ring, borderType=cv2.BORDER_CONSTANT, borderValue=255)
        # Counting steps rather than summing them keeps a few strong drawn edges from
        # outvoting the many modest steps of a mosaic.
        quiet = (side <= _QUIET) | (side * _QUIET_DIV <= d)
        excess: NDArray[np.bool_] = quiet & (d >= _COUNT_STEP)
        return excess

    return isolate(fx, _SIDES_X), isolate(fy, _SIDES_Y)


def _step_profiles(
    rgb: Image, steps: tuple[FloatArray, FloatArray] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-column and per-row count of isolated one-pixel colour steps."""
    ex, ey = _isolated_steps(rgb, steps)
    return (
        np.count_nonzero(ex, axis=0).astype(np.float64),
        np.count_nonzero(ey, axis=1).astype(np.float64),
    )


@functools.lru_cache(maxsize=64)
def _folding(n: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], Mask]:
    """How a profile of ``n`` values folds at every block size it is long enough for:
    (block sizes, each value's bin, source index per bin entry, which bins exist)."""
    blocks = np.arange(MIN_BLOCK, min(MAX_BLOCK, n // 3) + 1)
    bins, source = [], []
    for k, b in enumerate(blocks):
        m = (n // b) * b
        source.append(np.arange(m))
        bins.append(k * (MAX_BLOCK + 1) + np.arange(m) % b)
    exists = np.arange(MAX_BLOCK + 1)[None, :] < blocks[:, None]
    if not len(blocks):
        return blocks, np.zeros(0, np.intp), np.zeros(0, np.intp), exists
    return blocks, np.concatenate(bins), np.concatenate(source), exists


def _comb_scores(
    profile: NDArray[np.float64], robust: bool = False
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """For each block size, the best comb score and the step index residue achieving it.

    With ``robust`` (a window's profile, see _WINDOW_FOLDS), each residue's strongest line
    is left out of its mean, and blocks the profile holds fewer than _WINDOW_FOLDS cells of
    score nothing."""
    n = profile.size
    mean = max(float(profile.mean()), 1e-9)
    scores = np.zeros(MAX_BLOCK + 1)
    residues = np.zeros(MAX_BLOCK + 1, np.int64)
    blocks, bins, source, exists = _folding(n)
    if not len(blocks):
        return scores, residues
    # Every block size's fold in one bincount: called for a few dozen profiles per picture,
    # where a loop of reshape-and-mean was most of the grid search's time. The profiles
    # are counts, so the sums are exact and the result is what the loop gave.
    weights = profile[source]
    folded = np.asarray(np.bincount(bins, weights=weights, minlength=exists.size), np.float64)
    folds = n // blocks
    if robust:
        top = np.zeros(exists.size)
        np.maximum.at(top, bins, weights)
        folded -= top
        folds = folds - 1
    folded = np.where(exists, folded.reshape(exists.shape), -np.inf)
    best = folded.argmax(axis=1)
    scores[blocks] = folded[np.arange(len(blocks)), best] / folds / mean
    residues[blocks] = best
    if robust:
        scores[blocks[n // blocks < _WINDOW_FOLDS]] = 0.0
    return scores, residues


def _ranked(
    px_prof: NDArray[np.float64],
    py_prof: NDArray[np.float64],
    limit: int,
    at: tuple[int, int] = (0, 0),
    robust: bool = False,
) -> list[tuple[float, MosaicGrid]]:
    """The best grids by comb score, for profiles whose first column and row are ``at``."""
    sx, rx = _comb_scores(px_prof, robust)
    sy, ry = _comb_scores(py_prof, robust)
    # Both axes must be periodic with the same square block; stripes are periodic in one.
    both = np.where(np.minimum(sx, sy) >= _MIN_AXIS_COMB, np.sqrt(sx * sy), 0.0)
    out: list[tuple[float, MosaicGrid]] = []
    for b in np.argsort(-both, kind="stable"):
        if both[b] < _MIN_COMB or len(out) >= limit:
            break
        # Multiples of the true block score as high as it does; keep the smallest.
        if any(b % g.block == 0 for _, g in out):
            continue
        divisors = [d for d in range(MIN_BLOCK, int(b)) if b % d == 0 and both[d] >= 0.65 * both[b]]
        d = divisors[0] if divisors else int(b)
        grid = MosaicGrid(d, int(rx[d] + 1 + at[0]) % d, int(ry[d] + 1 + at[1]) % d)
        if all(grid != g for _, g in out):
            out.append((float(both[b]), grid))
    return out


def _muted(prof: NDArray[np.float64], start: int) -> NDArray[np.float64]:
    """``prof`` (starting at column or row ``start``) with JPEG's block edges muted."""
    m = prof.copy()
    m[(7 - start) % 8 :: 8] = np.median(prof)
    return m


def _candidates_of(
    px_prof: NDArray[np.float64],
    py_prof: NDArray[np.float64],
    limit: int,
    at: tuple[int, int],
    robust: bool = False,
) -> list[tuple[float, MosaicGrid]]:
    # JPEG's own 8x8 block edges can outscore a mosaic, so the ranking is also done with
    # the columns and rows of JPEG block edges muted; a mosaic whose lines coincide with
    # JPEG's along one axis only vanishes when both are, so each axis is also muted alone.
    mx, my = _muted(px_prof, at[0]), _muted(py_prof, at[1])
    out: list[tuple[float, MosaicGrid]] = []
    for ax, ay in ((px_prof, py_prof), (mx, my), (mx, py_prof), (px_prof, my)):
        for score, grid in _ranked(ax, ay, limit, at, robust):
            if all(grid != g for _, g in out):
                out.append((score, grid))
    return out


def grid_candidates(
    rgb: Image, limit: int = 2, steps: tuple[FloatArray, FloatArray] | None = None
) -> list[MosaicGrid]:
    """Plausible grids, best first (empty if the picture shows no grid periodicity)."""
    whole, quarters = _grid_candidates(rgb, limit, steps)
    return whole + quarters


def _grid_candidates(
    rgb: Image, limit: int, steps: tuple[FloatArray, FloatArray] | None
) -> tuple[list[MosaicGrid], list[MosaicGrid]]:
    """The whole picture's plausible grids, and a few more from its quarters.

    A small mosaic on a big, busy picture (a photo with JPEG blocking of its own) barely
    moves the whole picture's comb; in the quarter that holds it, it stands out.
    """
    h, w = rgb.shape[:2]
    if min(h, w) < _MIN_SIDE:
        return [], []
    whole, quarters, _, _ = _grid_search(rgb, limit, steps)
    return whole, quarters


def _grid_search(
    rgb: Image, limit: int, steps: tuple[FloatArray, FloatArray] | None
) -> tuple[
    list[MosaicGrid],
    list[MosaicGrid],
    tuple[NDArray[np.float64], NDArray[np.float64]],
    tuple[NDArray[np.bool_], NDArray[np.bool_]],
]:
    """``_grid_candidates``, the whole picture's step profiles it ranked and the isolated
    steps they count."""
    h, w = rgb.shape[:2]
    ex, ey = _isolated_steps(rgb, steps)
    px = np.count_nonzero(ex, axis=0).astype(np.float64)
    py = np.count_nonzero(ey, axis=1).astype(np.float64)
    whole = [g for _, g in _candidates_of(px, py, limit, (0, 0))]
    extra: list[tuple[float, MosaicGrid]] = []
    for r0, r1 in ((0, h // 2), (h // 2, h)):
        for c0, c1 in ((0, w // 2), (w // 2, w)):
            extra += _window_candidates(ex, ey, r0, r1, c0, c1)
    quarters = _best_new(extra, _TILE_GRIDS, whole)
    return whole, quarters, (px, py), (ex, ey)


def _window_candidates(
    ex: NDArray[np.bool_],
    ey: NDArray[np.bool_],
    r0: int,
    r1: int,
    c0: int,
    c1: int,
    robust: bool = False,
) -> list[tuple[float, MosaicGrid]]:
    """The best grid (with its score) of the window ``[r0:r1, c0:c1]``, from the isolated
    steps in it (``ex`` one column, ``ey`` one row short of the picture)."""
    tx = np.count_nonzero(ex[r0:r1, c0:c1], axis=0).astype(np.float64)
    ty = np.count_nonzero(ey[r0:r1, c0:c1], axis=1).astype(np.float64)
    return _candidates_of(tx, ty, 1, (c0, r0), robust)


def _best_new(
    found: list[tuple[float, MosaicGrid]], limit: int, tried: list[MosaicGrid]
) -> list[MosaicGrid]:
    """At most ``limit`` of the grids ``found``, best score first, none ``tried``, each once."""
    out: list[MosaicGrid] = []
    for _, grid in sorted(found, key=lambda e: -e[0]):
        if len(out) >= limit:
            break
        if grid not in tried and grid not in out:
            out.append(grid)
    return out


def _local_grids(
    isolated: tuple[NDArray[np.bool_], NDArray[np.bool_]], tried: list[MosaicGrid]
) -> list[MosaicGrid]:
    """The best grids of windows a quarter of the picture's short side wide (half
    overlapping), not yet ``tried``: at most _LOCAL_GRIDS by comb score, with the half and
    third of each."""
    ex, ey = isolated
    h, w = ex.shape[0], ey.shape[1]
    side = max(_LOCAL_MIN, min(h, w) // 4)
    if min(h, w) < side:
        return []
    side = min(max(side, int(np.ceil(2.0 * np.sqrt(h * w / _LOCAL_WINDOWS)))), h, w)
    rows, cols = _window_starts(h, side), _window_starts(w, side)
    if len(rows) * len(cols) > _LOCAL_WINDOWS:
        # (Only a strip's long axis can have that many: spread its windows out.)
        if h > w:
            rows = _window_starts(h, side, max(2, _LOCAL_WINDOWS // len(cols)))
        else:
            cols = _window_starts(w, side, max(2, _LOCAL_WINDOWS // len(rows)))
    found: list[tuple[float, MosaicGrid]] = []
    for r0 in rows:
        for c0 in cols:
            found += _window_candidates(ex, ey, r0, r0 + side, c0, c0 + side, True)
    out = _best_new(found, _LOCAL_GRIDS, tried)
    # In a small window a multiple of the block outscores it more often; its half and
    # third are looked at too.
    for grid in list(out):
        for p in (2, 3):
            d = grid.block // p
            fine = MosaicGrid(d, grid.phase_x % max(d, 1), grid.phase_y % max(d, 1))
            if grid.block % p == 0 and d >= MIN_BLOCK and fine not in tried and fine not in out:
                out.append(fine)
    return out


def _steps_as_mosaic(planes: _Planes, found: tuple[int, NDArray[np.uint8], MosaicGrid]) -> bool:
    """Whether the regions a grid ``found`` step between their cells as a mosaic's do (see
    _WINDOW_STEP)."""
    _, regions, grid = found
    mean = _cell_stats(planes, grid)[0]
    r = regions.astype(bool)
    across = np.abs(mean[:, 1:] - mean[:, :-1]).max(axis=2)[r[:, 1:] & r[:, :-1]]
    down = np.abs(mean[1:] - mean[:-1]).max(axis=2)[r[1:] & r[:-1]]
    steps = np.concatenate([across, down])
    return bool(np.count_nonzero(steps >= _WINDOW_STEP) >= _WINDOW_STEP_SHARE * max(steps.size, 1))


def _window_starts(length: int, side: int, most: int = 0) -> list[int]:
    """Where windows ``side`` px wide start along ``length`` px: half overlapping, or
    ``most`` of them spread evenly from end to end."""
    if most:
        return [int(v) for v in np.unique(np.linspace(0, length - side, most).round())]
    return list(range(0, max(length - side, 0) + 1, side // 2))


def estimate_grid(rgb: Image) -> MosaicGrid | None:
    """Block size and phase of the mosaic grid in ``rgb``, or None if there is none.

    Periodicity alone is fooled by drawn textures and, for small blocks, by multiples of
    the block; so each periodic candidate is checked for actual pixelated cells.
    """
    return _best(rgb)[1]


def _origin(grid: MosaicGrid) -> tuple[int, int]:
    """Top-left of the first (possibly image-clipped) cell, at or before (0, 0)."""
    b = grid.block
    ox = grid.phase_x % b - b if grid.phase_x % b else 0
    oy = grid.phase_y % b - b if grid.phase_y % b else 0
    return ox, oy


class _Planes:
    """Per-pixel planes shared by every candidate grid (computed once per picture)."""

    def __init__(self, rgb: Image) -> None:
        # Cell sums of any grid read off integral images; cells cut by the border see it
        # replicated, MAX_BLOCK deep being as far as any grid's cells reach past it.
        padded = cv2.copyMakeBorder(rgb, *(MAX_BLOCK,) * 4, cv2.BORDER_REPLICATE)
        sums, squares = cv2.integral2(padded, sdepth=cv2.CV_32S, sqdepth=cv2.CV_64F)
        self.sum = np.asarray(sums, np.int32)
        self.sq_sum = np.asarray(squares, np.float64)
        self.dx, self.dy = _abs_steps(rgb)
        self.h, self.w = rgb.shape[:2]
        col, row = self.dx.mean(axis=0), self.dy.mean(axis=1)
        self.blocky = _blocky(col) and _blocky(row)
        # ... and over every other line too (a 2x upscale steps at every other line).
        self.jpeg_blocky = _blocky(col, True) and _blocky(row, True)
        self._rgb = rgb
        self._luma: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    def luma(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Integral images of the luma plane and its square (padded like ``sum``), made on
        first use: only a grid that found a region needs them."""
        if self._luma is None:
            y = cv2.cvtColor(self._rgb, cv2.COLOR_RGB2GRAY)
            padded = cv2.copyMakeBorder(y, *(MAX_BLOCK,) * 4, cv2.BORDER_REPLICATE)
            sums, squares = cv2.integral2(padded, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
            self._luma = (np.asarray(sums, np.float64), np.asarray(squares, np.float64))
        return self._luma


def _blocky(steps: FloatArray, strict: bool = False) -> bool:
    """Whether steps across every eighth line stand out, as JPEG's 8x8 block edges do.

    A mosaic only covers part of the picture, so unlike compression it barely moves the
    whole picture's average, and never on both axes unless its grid is JPEG's own.
    """
    n = steps.size // 8 * 8
    if n < 16:
        return False
    folded = steps[:n].reshape(-1, 8).mean(axis=0)
    others = float(folded[:7].max() if strict else folded[:7].mean())
    return bool(folded[7] >= _BLOCKY * max(others, 1e-6))


def _block_means(plane: FloatArray, grid: MosaicGrid, pad_r: int = 0, pad_b: int = 0) -> FloatArray:
    """Mean of ``plane`` over every grid cell; cells cut by the border are padded by
    replication (such cells are never called flat, see ``_cell_stats``)."""
    h, w = plane.shape[:2]
    h, w = h + pad_b, w + pad_r
    b = grid.block
    ox, oy = _origin(grid)
    nw = -(-(w - ox) // b)
    nh = -(-(h - oy) // b)
    padded = cv2.copyMakeBorder(
        plane, -oy, nh * b - h + oy + pad_b, -ox, nw * b - w + ox + pad_r, cv2.BORDER_REPLICATE
    )
    # INTER_AREA at an integer factor is an exact box average, and far faster than reshaping.
    out = np.asarray(cv2.resize(padded, (nw, nh), interpolation=cv2.INTER_AREA), np.float32)
    return out


def _cell_summer(
    planes: _Planes, grid: MosaicGrid
) -> tuple[int, int, Callable[[NDArray[Any]], NDArray[np.float64]]]:
    """The grid's cell counts (across, down) and a reader of each cell's sum from an
    integral image of the padded planes."""
    b = grid.block
    ox, oy = _origin(grid)
    nw = -(-(planes.w - ox) // b)
    nh = -(-(planes.h - oy) // b)
    ys = (MAX_BLOCK + oy + b * np.arange(nh + 1))[:, None]
    xs = (MAX_BLOCK + ox + b * np.arange(nw + 1))[None, :]

    def cell_sums(integral: NDArray[Any]) -> NDArray[np.float64]:
        c = integral[ys, xs].astype(np.float64)
        out: NDArray[np.float64] = c[1:, 1:] - c[:-1, 1:] - c[1:, :-1] + c[:-1, :-1]
        return out

    return nw, nh, cell_sums


def _cell_stats(
    planes: _Planes, grid: MosaicGrid
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """Per-cell mean colour, max channel std, and whether the cell lies fully inside."""
    b = grid.block
    ox, oy = _origin(grid)
    nw, nh, cell_sums = _cell_summer(planes, grid)
    mean64 = cell_sums(planes.sum) / (b * b)
    sq = cell_sums(planes.sq_sum) / (b * b)
    std = np.sqrt(np.maximum(sq - mean64 * mean64, 0.0)).max(axis=2)
    mean = mean64.astype(np.float32)
    full = np.zeros((nh, nw), bool)
    r0, c0 = (1 if oy < 0 else 0), (1 if ox < 0 else 0)
    r1 = nh - (1 if oy + nh * b > planes.h else 0)
    c1 = nw - (1 if ox + nw * b > planes.w else 0)
    full[r0:r1, c0:c1] = True
    return mean, std.astype(np.float32), full


def _luma_std(planes: _Planes, grid: MosaicGrid) -> FloatArray:
    """Per-cell standard deviation of the luma (cells laid out as ``_cell_stats``')."""
    b = grid.block
    _, _, cell_sums = _cell_summer(planes, grid)
    sums, squares = planes.luma()
    mean = cell_sums(sums) / (b * b)
    var = cell_sums(squares) / (b * b) - mean * mean
    out: FloatArray = np.sqrt(np.maximum(var, 0.0)).astype(np.float32)
    return out


def _shift(a: NDArray[np.float32], dy: int, dx: int, fill: float) -> NDArray[np.float32]:
    """``a`` moved so that out[i, j] = a[i + dy, j + dx], padding with ``fill``."""
    pad = np.pad(a, [(1, 1), (1, 1)] + [(0, 0)] * (a.ndim - 2), constant_values=fill)
    h, w = a.shape[:2]
    out: NDArray[np.float32] = pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    return out


def _edge_stats(planes: _Planes, grid: MosaicGrid) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per cell: mean step across its right edge, across its bottom edge, and mean step
    between adjacent pixels inside it (summed over channels)."""
    b = grid.block
    ox, oy = _origin(grid)
    # Pad the difference planes back to image size so they share the image's cell layout;
    # the pair starting at column x lives at index x.
    allx = _block_means(planes.dx, grid, pad_r=1)
    ally = _block_means(planes.dy, grid, pad_b=1)
    nh, nw = allx.shape
    right = np.zeros((nh, nw), np.float32)
    bottom = np.zeros((nh, nw), np.float32)
    cols = ox + b * np.arange(nw) + b - 1
    okc = (cols >= 0) & (cols < planes.w - 1)
    rows = oy + b * np.arange(nh) + b - 1
    okr = (rows >= 0) & (rows < planes.h - 1)
    colx = planes.dx[:, cols[okc]]
    rowy = planes.dy[rows[okr], :]
    # Edge means per cell: average the boundary column/row over each cell's extent.
    right[:, okc] = _column_means(colx, grid, nh)
    bottom[okr, :] = _column_means(rowy.T, MosaicGrid(b, grid.phase_y, grid.phase_x), nw).T
    inner = (allx * b - right) / (b - 1) * 0.5 + (ally * b - bottom) / (b - 1) * 0.5
    return right, bottom, inner.astype(np.float32)


def _jpeg_lines_inside(planes: _Planes, grid: MosaicGrid) -> tuple[FloatArray, FloatArray]:
    """Per cell, the largest mean step across one of JPEG's 8 px block edges inside it:
    across columns, and across rows (zero along an axis whose grid lines are not JPEG's
    own, or whose cells hold no other).

    A grid whose lines are JPEG's own block edges sees a JPEG'd gradient's blocks as cells,
    flat inside with a step at each edge; but the blocks inside such a "cell" step from one
    another just as much, where a mosaic cell's are all one colour."""
    b = grid.block
    ox, oy = _origin(grid)
    nh = -(-(planes.h - oy) // b)
    nw = -(-(planes.w - ox) // b)
    out_x = np.zeros((nh, nw), np.float32)
    out_y = np.zeros((nh, nw), np.float32)
    if b <= 8 or b % 8:
        return out_x, out_y
    for j in range(8, b, 8):
        if grid.phase_x % 8 == 0:
            cols = ox + b * np.arange(nw) + j - 1
            ok = (cols >= 0) & (cols < planes.w - 1)
            if ok.any():
                line = np.zeros((nh, nw), np.float32)
                line[:, ok] = _column_means(planes.dx[:, cols[ok]], grid, nh)
                np.maximum(out_x, line, out=out_x)
        if grid.phase_y % 8 == 0:
            rows = oy + b * np.arange(nh) + j - 1
            ok = (rows >= 0) & (rows < planes.h - 1)
            if ok.any():
                line = np.zeros((nh, nw), np.float32)
                flip = MosaicGrid(b, grid.phase_y, grid.phase_x)
                line[ok, :] = _column_means(planes.dy[rows[ok], :].T, flip, nw).T
                np.maximum(out_y, line, out=out_y)
    return out_x, out_y


def _column_means(cols: FloatArray, grid: MosaicGrid, nh: int) -> FloatArray:
    """Average each column of ``cols`` over the grid's row cells (by ``phase_y``)."""
    h = cols.shape[0]
    b = grid.block
    _, oy = _origin(grid)
    padded = cv2.copyMakeBorder(
        np.ascontiguousarray(cols), -oy, nh * b - h + oy, 0, 0, cv2.BORDER_REPLICATE
    )
    out = np.asarray(
        cv2.resize(padded, (cols.shape[1], nh), interpolation=cv2.INTER_AREA), np.float32
    )
    return out


def _on_jpeg_lines(block: int, phase: int) -> bool:
    """Whether at least half of the grid's lines along an axis are JPEG block edges."""
    g = math.gcd(block, 8)
    return g >= 4 and phase % g == 0


def _mosaic_cells(
    planes: _Planes,
    grid: MosaicGrid,
    jpeg_aware: bool = True,
    flat_std: float = _FLAT_STD,
    pixel_grid: bool = False,
) -> tuple[NDArray[np.bool_], FloatArray, NDArray[np.bool_]]:
    """Cells that look pixelated: flat, with abrupt steps to flat neighbours on 2+ sides.

    Without ``jpeg_aware``, grid lines on JPEG's block edges are judged like any other
    (two grids can then be compared whatever their phases). With ``pixel_grid`` (the check
    for the picture's own pixel grid, see ``_native_shift``) faint steps between exactly
    uniform cells do not count, nor do a drawn gradient's bands."""
    mean, std, full = _cell_stats(planes, grid)
    right, bottom, inner = _edge_stats(planes, grid)
    lines_x, lines_y = _jpeg_lines_inside(planes, grid)
    if not jpeg_aware:
        lines_x, lines_y = np.zeros_like(lines_x), np.zeros_like(lines_y)
    flat = (std <= flat_std) & full
    if not pixel_grid:
        # (Chroma smeared by JPEG over a cell whose luma is flat: see _HULL_LUMA_STD.)
        flat |= (
            (std <= _CHROMA_STD * flat_std)
            & (_luma_std(planes, grid) <= _HULL_LUMA_STD * flat_std / _FLAT_STD)
            & full
        )
    flat_f = flat.astype(np.float32)
    # JPEG codes 8x8 blocks (16x16 for colour) from the origin, and its smooth areas decode
    # to flat blocks with small steps between them; on that grid only big steps count.
    b = grid.block
    jpeg_like = jpeg_aware and 16 % b == 0 and grid.phase_x == 0 and grid.phase_y == 0
    # In a visibly compressed picture a mosaic line that falls on JPEG's along one axis
    # meets the same small steps there, but only along that axis.
    on_x = jpeg_aware and _on_jpeg_lines(b, grid.phase_x)
    on_y = jpeg_aware and _on_jpeg_lines(b, grid.phase_y)
    jpeg_x = jpeg_like or (planes.blocky and on_x)
    jpeg_y = jpeg_like or (planes.blocky and on_y)
    # Losslessly saved mosaic cells are exactly uniform, and a mosaic over gentle shading
    # steps by a level or two between them; unpixelated shading quantizes into bands that
    # end off the grid, so two exactly uniform cells with a step between them are telling.
    exact = ((std <= _EXACT_STD) & full & (not pixel_grid)).astype(np.float32)
    # A pixelated edge changes colour all at once; shading changes as much between any two
    # pixels, so its cells differ in mean but show no step at the grid line.
    quiet = np.maximum(inner, _shift(inner, 0, 1, 0.0))
    step_min = _JPEG_EDGE_STEP if jpeg_x else _EDGE_STEP
    both = (exact > 0) & (_shift(exact, 0, 1, 0.0) > 0) & (not on_x)
    low = np.where(both & (not jpeg_x), _EXACT_STEP, step_min)
    step_r = (right >= low) & (right >= _QUIET_RATIO * quiet + 0.5)
    step_r &= _shift(flat_f, 0, 1, 0.0) > 0
    step_r &= right >= _QUIET_RATIO * np.maximum(lines_x, _shift(lines_x, 0, 1, 0.0))
    quiet = np.maximum(inner, _shift(inner, 1, 0, 0.0))
    step_min = _JPEG_EDGE_STEP if jpeg_y else _EDGE_STEP
    both = (exact > 0) & (_shift(exact, 1, 0, 0.0) > 0) & (not on_y)
    low = np.where(both & (not jpeg_y), _EXACT_STEP, step_min)
    step_b = (bottom >= low) & (bottom >= _QUIET_RATIO * quiet + 0.5)
    step_b &= _shift(flat_f, 1, 0, 0.0) > 0
    step_b &= bottom >= _QUIET_RATIO * np.maximum(lines_y, _shift(lines_y, 1, 0, 0.0))
    sr, sb = step_r.astype(np.float32), step_b.astype(np.float32)
    across_x = sr + _shift(sr, 0, -1, 0.0)
    across_y = sb + _shift(sb, -1, 0, 0.0)
    sides = across_x + across_y
    cells = flat & (sides >= 2)
    if pixel_grid:
        # A band of a drawn gradient: steps across one axis only, and its neighbours along
        # the other are its own colour.
        like_x = (np.abs(mean - _shift(mean, 0, 1, -1000.0)).max(axis=2) <= _STEP) & (
            np.abs(mean - _shift(mean, 0, -1, -1000.0)).max(axis=2) <= _STEP
        )
        like_y = (np.abs(mean - _shift(mean, 1, 0, -1000.0)).max(axis=2) <= _STEP) & (
            np.abs(mean - _shift(mean, -1, 0, -1000.0)).max(axis=2) <= _STEP
        )
        cells &= ~(((across_x == 0) & like_x) | ((across_y == 0) & like_y))
    # A drawn checkerboard is flat cells with stepping neighbours too, but each cell repeats
    # its diagonal neighbour; pixelated artwork rarely does.
    # Uniform cells repeat exactly; allowing them the usual slack would take a mosaic over
    # gentle shading, whose cells step by a level or two, for checks.
    same = np.where(exact > 0, 0.5, _STEP)
    diag = np.abs(mean - _shift(mean, 1, 1, -1000.0)).max(axis=2) <= same
    diag2 = np.abs(mean - _shift(mean, -1, 1, -1000.0)).max(axis=2) <= same
    checker = diag & diag2 & (sides >= 3)
    return cells & ~checker, mean, flat


def _fill_holes(cells: NDArray[np.uint8]) -> NDArray[np.uint8]:
    contours, _ = cv2.findContours(cells, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(cells)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return filled


def _regions(
    cells: NDArray[np.bool_],
    means: FloatArray,
    flat: NDArray[np.bool_],
    loose: NDArray[np.bool_] | None = None,
) -> NDArray[np.uint8]:
    """Grow candidate cells into solid regions; drop specks and regular textures.

    Where the censored art was flat, its cells are identical and show no step, so they are
    indistinguishable from unpixelated flat paint. Censors are blobs, so each group of
    candidates is completed to its convex hull, keeping only flat cells (all mosaic cells are).
    """
    c = cells.astype(np.uint8)
    padded = np.pad(c, 1)
    closed_m = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    closed = np.asarray(closed_m, np.uint8)[1:-1, 1:-1]
    groups = cv2.dilate(closed, np.ones((5, 5), np.uint8))
    n, lab = cv2.connectedComponents(groups, connectivity=8)
    out = np.zeros(closed.shape, np.uint8)
    for k in range(1, n):
        members = (lab == k) & (closed > 0)
        if int(members.sum()) < _MIN_REGION_CELLS:
            continue
        # Drawn stripes and checks repeat a few colours; pixelated art has many. The colours
        # are binned finer where they span little (a mosaic over a dim, grey photo), in a
        # group of enough cells for its colours to say so.
        own = means[members & cells]
        spread = float((np.percentile(own, 95, axis=0) - np.percentile(own, 5, axis=0)).max())
        q = min(8.0, max(_MIN_BIN, spread / _BINS)) if len(own) >= _FINE_CELLS else 8.0
        _, counts = np.unique((own / q).astype(np.int32), axis=0, return_counts=True)
        if np.sort(counts)[::-1][:4].sum() >= 0.9 * counts.sum():
            continue
        ys, xs = np.nonzero(members)
        hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))
        filled = np.zeros_like(closed)
        cv2.fillConvexPoly(filled, hull, 1)
        out |= (filled & (flat if loose is None else loose).astype(np.uint8)) | members.astype(
            np.uint8
        )
    return out


def _to_pixels(cells: NDArray[np.uint8], grid: MosaicGrid, shape: tuple[int, ...]) -> Mask:
    h, w = shape[:2]
    ox, oy = _origin(grid)
    up = np.repeat(np.repeat(cells, grid.block, 0), grid.block, 1)
    out: Mask = np.ascontiguousarray(up[-oy : -oy + h, -ox : -ox + w].astype(bool))
    return out


def _refines(fine: MosaicGrid, coarse: MosaicGrid) -> bool:
    """Whether every line of ``coarse`` is also a line of ``fine``."""
    b = fine.block
    return (
        coarse.block > b
        and coarse.block % b == 0
        and coarse.phase_x % b == fine.phase_x
        and coarse.phase_y % b == fine.phase_y
    )


def _found_at(
    planes: _Planes, grid: MosaicGrid, jpeg_aware: bool = True, flat_std: float = _FLAT_STD
) -> tuple[int, NDArray[np.uint8]]:
    """Area (px) and cells of the mosaic regions that ``grid`` finds."""
    cells, means, flat = _mosaic_cells(planes, grid, jpeg_aware, flat_std)
    # Inside a region's hull a cell also counts as flat when its luma is: JPEG rings inside
    # a mosaic cell next to a strong step, and its halved chroma smears colour across cells.
    loose = None
    if cells.any():
        loose = flat | (_luma_std(planes, grid) <= _HULL_LUMA_STD * flat_std / _FLAT_STD)
        loose &= _cell_stats(planes, grid)[2]
    regions = _regions(cells, means, flat, loose)
    return int(regions.sum()) * grid.block * grid.block, regions


def _area_around(
    fine: tuple[int, NDArray[np.uint8], MosaicGrid],
    coarse: tuple[int, NDArray[np.uint8], MosaicGrid],
    shape: tuple[int, ...],
) -> int:
    """Area (px) of the ``fine`` grid's regions within a cell of the ``coarse`` grid's."""
    k = 2 * coarse[2].block + 1
    near = cv2.dilate(
        _to_pixels(coarse[1], coarse[2], shape).astype(np.uint8), np.ones((k, k), np.uint8)
    )
    return int(np.count_nonzero(_to_pixels(fine[1], fine[2], shape) & (near > 0)))


def _native_shift(planes: _Planes, grid: MosaicGrid, regions: NDArray[np.uint8]) -> int:
    """A shift (a proper divisor of the block, 2 px or more) at which the grid moved
    diagonally finds about as many pixelated-looking cells as where it is, or 0.

    A censor mosaic's cells are uniform at its own phase only: moved by part of a block,
    they straddle its lines. A picture's own pixel grid (a nearest-neighbour upscale, pixel
    art) makes cells uniform at every phase on it, so a grid whose lines are the picture's
    pixel edges finds its "cells" just as well moved by one of the picture's pixels. (Moved
    along one axis only, a censor mosaic's cells over smooth shading still look pixelated:
    each straddles two like cells, between lines that are still the mosaic's.)
    They are counted both with and without JPEG's concessions, which depend on the phase:
    a JPEG'd upscale's cells stand out at JPEG's phase only with them (counted so only in
    a visibly compressed picture, where they apply).)

    A drawn gradient's bands do not count here (faint steps between exactly uniform cells,
    or cells that step across one axis only with their own colour either side along the
    other): bands that happened to be part of a block high vetoed a mosaic elsewhere on
    the picture."""
    b = grid.block
    own: dict[bool, int] = {}
    for p in _PRIMES:
        s = b // p
        if b % p or s < 2:
            continue
        for aware in (False, True) if planes.jpeg_blocky else (False,):
            if aware not in own:
                cells = _mosaic_cells(planes, grid, aware, pixel_grid=True)[0]
                own[aware] = max(int(np.count_nonzero(cells)), 1)
            moved = MosaicGrid(b, (grid.phase_x + s) % b, (grid.phase_y + s) % b)
            count = np.count_nonzero(_mosaic_cells(planes, moved, aware, pixel_grid=True)[0])
            if count >= _NATIVE_SHARE * own[aware]:
                return s
    return 0


def _unmuted_native(
    profiles: tuple[NDArray[np.float64], NDArray[np.float64]], native: tuple[int, int, int]
) -> list[MosaicGrid]:
    """Grids ranked with the picture's own pixel edges (every ``s``-th line from its phase)
    muted, on both axes and on each alone: on an upscaled picture they are most of the
    isolated steps, and drown a mosaic's."""
    s, ph_x, ph_y = native

    def mute(prof: NDArray[np.float64], phase: int) -> NDArray[np.float64]:
        m = prof.copy()
        on = np.zeros(prof.size, bool)
        on[(phase - 1) % s :: s] = True
        m[on] = np.median(prof[~on]) if (~on).any() else 0.0
        return m

    px, py = profiles
    mx, my = mute(px, ph_x), mute(py, ph_y)
    out: list[MosaicGrid] = []
    for ax, ay in ((mx, my), (mx, py), (px, my)):
        for _, grid in _ranked(ax, ay, 2):
            if grid not in out:
                out.append(grid)
    return out


def _best(rgb: Image) -> tuple[Mask, MosaicGrid | None]:
    found: list[tuple[int, NDArray[np.uint8], MosaicGrid]] = []
    if min(rgb.shape[:2]) < _MIN_SIDE:
        return np.zeros(rgb.shape[:2], bool), None
    planes = _Planes(rgb)
    # A drawn checkerboard or a multiple of the block can outscore the real mosaic's
    # periodicity; the candidate whose cells survive the texture tests and cover most wins.
    whole, quarters, profiles, isolated = _grid_search(rgb, 2, (planes.dx, planes.dy))
    natives: list[tuple[int, int, int]] = []
    tried: list[MosaicGrid] = []

    def look(grids: list[MosaicGrid], flat_std: float = _FLAT_STD) -> None:
        for grid in grids:
            if grid in tried:
                continue
            tried.append(grid)
            area, regions = _found_at(planes, grid, True, flat_std)
            if area <= 0:
                continue
            if regions.mean() < _WHOLE_SHARE:
                found.append((area, regions, grid))
                continue
            # A censor mosaic covers a part of the picture; cells over (nearly) all of it
            # are the picture's own pixels (pixel art, an upscale by the block or by part).
            s = _native_shift(planes, grid, regions)
            if s:
                natives.append((s, grid.phase_x % s, grid.phase_y % s))

    def pick() -> tuple[int, NDArray[np.uint8], MosaicGrid] | None:
        # (Only the grid that would be chosen is checked for the picture's own pixel grid:
        # each check costs a few passes over the cells.)
        while found:
            best = max(found, key=lambda f: f[0])
            # A grid at a fraction of the true block sees the same uniform cells, and its
            # finer cells hug the border a little further out; the coarse grid found nearly
            # as much is the mosaic, whose cells would not be uniform were it too coarse.
            # (Where it lies: the finer grid also takes regions elsewhere for mosaic, a
            # gradient's bands or JPEG's blocks at its smaller size, that the mosaic's own
            # grid rightly refuses.)
            coarser = [
                f
                for f in found
                if _refines(best[2], f[2]) and f[0] >= 0.8 * _area_around(best, f, rgb.shape)
            ]
            if coarser:
                best = max(coarser, key=lambda f: f[2].block)
            s = _native_shift(planes, best[2], best[1])
            if not s:
                return best
            natives.append((s, best[2].phase_x % s, best[2].phase_y % s))
            # (By identity: equal areas would compare the regions' arrays.)
            found[:] = [f for f in found if f is not best]
        return None

    # The quarters' grids are only looked at when the whole picture's show no mosaic:
    # each look costs a pass over the picture's cells.
    chosen = None
    for grids in (whole, quarters):
        look(grids)
        chosen = pick()
        if chosen is not None:
            break
    if chosen is None and not natives:
        # A small mosaic on a busy picture (screentone, hatching, JPEG noise all step in
        # isolation too) stands out only in a window about its size.
        local = _local_grids(isolated, tried)
        look(local)
        found[:] = [f for f in found if f[2] not in local or _steps_as_mosaic(planes, f)]
        chosen = pick()
    if chosen is None and natives:
        # The picture's own pixel grid won the ranking; a mosaic on it is looked for
        # with that grid's lines muted.
        # Uncompressed, its cells are exactly uniform, and the picture's own are not: its
        # pixels are smaller than the cells, so cells of a smooth area vary a little. (The
        # picture's own cells in an area flat at the grid's size stay indistinguishable.)
        look(
            _unmuted_native(profiles, natives[0]),
            _FLAT_STD if planes.jpeg_blocky else _EXACT_STD,
        )
        chosen = pick()
    if chosen is None:
        return np.zeros(rgb.shape[:2], bool), None
    best = chosen
    return _to_pixels(best[1], best[2], rgb.shape), best[2]


def detect_mosaic(rgb: Image) -> tuple[Mask, MosaicGrid | None]:
    """Mask of pixelated regions and the grid they sit on (None when nothing is found).

    Cells of the estimated grid count as pixelated when flat inside with abrupt steps to
    flat neighbours; they are then closed into regions and completed to their convex hull
    over flat cells. Stripes, checks and flat fills are rejected.
    """
    return _best(rgb)


def restore_mosaic(
    rgb: Image,
    mask: Mask,
    grid: MosaicGrid,
    iterations: int = 1,
    feather: int = 0,
    ignore: Mask | None = None,
) -> Image:
    """Replace the pixelated cells under ``mask`` with a block-consistent estimate.

    Cell means are treated as samples at the cell centres and interpolated bicubically, then
    refined by back-projection (``iterations`` rounds) so that every restored cell averages
    back to its mosaic colour (the mosaic is exactly those averages). Cells that mix two
    flat fills, as edges in drawn art do, then get a sharp edge instead (see
    ``_two_tone``), and the others are relaxed towards the smoothest picture with the same
    cell means (see ``_smooth``). Pixels outside ``mask`` are untouched.

    Pixels under ``ignore`` (a bar lying on the mosaic) are neither restored nor read:
    the cells they cover take their colour from the rest of the cell.
    """
    if not mask.any():
        return rgb.copy()
    h, w = rgb.shape[:2]
    b = grid.block
    ox, oy = _origin(grid)
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    # Work in a grid-aligned window around the mask with two cells of context.
    x0 = max(ox + ((int(xs[0]) - ox) // b - 2) * b, ox)
    y0 = max(oy + ((int(ys[0]) - oy) // b - 2) * b, oy)
    x1 = min(ox + ((int(xs[-1]) - ox) // b + 3) * b, ox + -(-(w - ox) // b) * b)
    y1 = min(oy + ((int(ys[-1]) - oy) // b + 3) * b, oy + -(-(h - oy) // b) * b)
    cw, ch = (x1 - x0) // b, (y1 - y0) // b
    win = np.zeros((ch * b, cw * b, 3), np.float32)
    known = np.zeros((ch * b, cw * b), np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    win[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    known[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = 1.0
    inside = np.zeros((ch * b, cw * b), bool)
    inside[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = mask[sy0:sy1, sx0:sx1]
    if ignore is not None:
        # A bar's colour would pass for its cells' and bleed into the restored ones.
        hidden = np.zeros_like(inside)
        hidden[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = ignore[sy0:sy1, sx0:sx1]
        known[hidden] = 0.0
        inside &= ~hidden

    def cell_mean(a: FloatArray) -> FloatArray:
        # INTER_AREA at an integer factor is an exact box average, and far faster than reshaping.
        out = np.asarray(cv2.resize(a, (cw, ch), interpolation=cv2.INTER_AREA), np.float32)
        return out if out.ndim == 3 else out[:, :, None]

    # Cells cut by the image border average their pixels inside it only.
    cut = bool(known.min() == 0)
    known_share = np.maximum(cell_mean(known), np.float32(1.0 / (b * b)))

    # (OpenCV's multiply by a three-channel copy of ``known`` into one reused buffer is
    # several times faster than numpy's broadcast product, taken at every smoothing step.)
    known3 = cv2.merge([known, known, known]) if cut else known
    weighted = np.empty_like(win) if cut else win

    def block_mean(a: FloatArray) -> FloatArray:
        if not cut:
            return cell_mean(a)
        cv2.multiply(a, known3, weighted)
        out: FloatArray = (cell_mean(weighted) / known_share).astype(np.float32)
        return out

    def upsample(cells: FloatArray) -> FloatArray:
        # INTER_CUBIC maps cell i's centre to source index i exactly when scaling by b.
        up = cv2.resize(cells, (cw * b, ch * b), interpolation=cv2.INTER_CUBIC)
        res: FloatArray = np.asarray(up, np.float32)
        return res

    def per_pixel(cells: FloatArray) -> FloatArray:
        # Nearest-neighbour scaling by a whole factor repeats each cell b x b times.
        up = cv2.resize(cells, (cw * b, ch * b), interpolation=cv2.INTER_NEAREST)
        out: FloatArray = np.asarray(up, np.float32)
        return out

    target = block_mean(win)
    held = _held_cells(win, inside, known, target, cell_mean)
    if held.any():
        inside &= ~np.repeat(np.repeat(held, b, 0), b, 1)
        if not inside.any():
            return rgb.copy()
    # An unmasked cell speaks for its masked neighbour through its pixels next to the mask,
    # not its mean: an outline at its far side would otherwise bleed into the restored cell.
    near = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_C, 3)
    ring = ((near <= max(1, int(_RING * b))) & ~inside).astype(np.float32) * known
    ring_n = cell_mean(ring)
    ring_mean = cell_mean(win * ring[:, :, None]) / np.maximum(ring_n, np.float32(1e-6))
    samples = np.where(ring_n > 0, ring_mean, target).astype(np.float32)
    if ignore is not None:
        # Cells wholly under an ignored bar read as black; their neighbours' colours
        # stand in for them, so that the interpolation and its clipping never see it.
        empty = cell_mean(known)[:, :, 0] <= 0.0
        target = _fill_cells(target, empty)
        samples = _fill_cells(samples, empty)
    # Bicubic overshoot rings around every edge; no pixel of a drawn or photographed
    # picture lies outside the colour range of the cells around it, so neither may ours.
    k3 = np.ones((3, 3), np.uint8)
    low = per_pixel(np.asarray(cv2.erode(samples, k3, borderType=cv2.BORDER_REPLICATE)))
    high = per_pixel(np.asarray(cv2.dilate(samples, k3, borderType=cv2.BORDER_REPLICATE)))
    # Only masked cells are corrected; the clipping must not make the others look off.
    masked_cell = cell_mean(inside.astype(np.float32)) > 0
    est = upsample(samples)
    # (OpenCV's masked copy, minimum and maximum do what numpy's copyto and clip would,
    # several times faster on a big window.)
    hold = (~inside).astype(np.uint8)
    cv2.copyTo(win, hold, est)
    for _ in range(iterations):
        cv2.max(est, low, est)
        cv2.min(est, high, est)
        est += upsample(np.where(masked_cell, target - block_mean(est), 0.0).astype(np.float32))
        cv2.copyTo(win, hold, est)
    # INTER_AREA's float sums may land a hair under 1 for a full cell.
    whole = cell_mean((inside & (known > 0)).astype(np.float32))[:, :, 0] >= 0.999
    est, edged = _two_tone(est, target, whole, b)
    cv2.copyTo(win, hold, est)
    est = _smooth(est, inside, known, samples, edged, (low, high), masked_cell, target, block_mean)
    out = rgb.copy()
    patch = out[sy0:sy1, sx0:sx1]
    sub = inside[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    mine = est[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0][sub]
    restored = np.clip(mine + 0.5, 0, 255)
    if feather > 0:
        dist = cv2.distanceTransform(np.pad(inside.astype(np.uint8), 1), cv2.DIST_L2, 3)
        alpha = np.clip(dist[1:-1, 1:-1] / float(feather + 1), 0.0, 1.0)
        a = alpha[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0][sub][:, None]
        restored = a * restored + (1.0 - a) * win[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0][sub]
    patch[sub] = restored.astype(np.uint8)
    return out


def _held_cells(
    win: FloatArray,
    inside: Mask,
    known: FloatArray,
    target: FloatArray,
    cell_mean: Callable[[FloatArray], FloatArray],
) -> NDArray[np.bool_]:
    """Masked cells left as they are: flat ones that continue a flat field outside the mask.

    Such a cell has an unmasked flat neighbour of its own colour. Whether it is a mosaic cell
    over flat paint or the paint beside a mosaic that passed for one (a flat cell at a
    concave corner of a mosaic steps to it on two sides), the paint under it is that flat
    colour: restoring it only smears the mosaic's steps into it. Peeled from the mask's
    border inwards, a few rounds.
    """
    sq = cell_mean(win * win)
    std = np.sqrt(np.maximum(sq - target * target, 0.0)).max(axis=2)
    flat = std <= _FLAT_STD
    masked = cell_mean(inside.astype(np.float32))[:, :, 0] > 0
    whole = cell_mean(known)[:, :, 0] >= 0.999
    field = ~masked & whole & flat
    held = np.zeros_like(masked)
    cand = masked & whole & flat
    for _ in range(_PEEL_ROUNDS):
        fresh = np.zeros_like(held)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            other = _shift(target, dy, dx, -1000.0)
            same = np.abs(target - other).max(axis=2) <= _PEEL_SAME
            fresh |= cand & ~held & same & (_shift(field.astype(np.float32), dy, dx, 0.0) > 0)
        if not fresh.any():
            break
        held |= fresh
        field |= fresh
    return held


def _smooth(
    est: FloatArray,
    inside: Mask,
    known: FloatArray,
    samples: FloatArray,
    edged: NDArray[np.bool_],
    bounds: tuple[FloatArray, FloatArray],
    masked_cell: NDArray[np.bool_],
    target: FloatArray,
    block_mean: Callable[[FloatArray], FloatArray],
) -> FloatArray:
    """``est`` relaxed towards the smoothest picture that keeps every masked cell's mean.

    Each step diffuses the estimate a little (a discrete heat step), clips it to the colour
    range of the cells around (``bounds``), then puts every masked cell's mean back exactly
    (adding the difference to all its pixels is the projection onto the cells' means).
    Interpolated cell means ring and leave a faint grid at the cell borders; the diffusion
    irons out both, and the restored cells join their unmasked surroundings, which are
    held, smoothly. Cells given a sharp edge (``edged``, per cell) are held too: the edge
    between two fills is what drawn art has there, and diffusion would blur it again.
    """
    ch, cw = target.shape[:2]
    b = est.shape[0] // ch
    low, high = bounds
    # Pixels that are neither restored nor read (under an ignored bar, past the picture's
    # border) are free: held, they would feed a bar's colour, or black, into the diffusion.
    # They start from their cells' samples.
    free = known <= 0
    if free.any():
        start = cv2.resize(samples, (cw * b, ch * b), interpolation=cv2.INTER_NEAREST)
        cv2.copyTo(np.asarray(start, np.float32), free.astype(np.uint8), est)
    sharp = np.repeat(np.repeat(edged, b, 0), b, 1)
    hold = ((~inside & ~free) | sharp).astype(np.uint8)
    fixed = est.copy()
    for _ in range(_SMOOTH_STEPS):
        # (One filter takes the heat step: the pixel plus the rate times its Laplacian.)
        est = np.asarray(
            cv2.filter2D(est, -1, _HEAT_STEP, borderType=cv2.BORDER_REPLICATE), np.float32
        )
        cv2.max(est, low, est)
        cv2.min(est, high, est)
        fix = np.where(masked_cell, target - block_mean(est), 0.0).astype(np.float32)
        est += np.asarray(
            cv2.resize(fix, (cw * b, ch * b), interpolation=cv2.INTER_NEAREST), np.float32
        )
        cv2.copyTo(fixed, hold, est)
    return est


def _fill_cells(cells: FloatArray, empty: NDArray[np.bool_]) -> FloatArray:
    """``cells`` with its ``empty`` entries grown in from their known neighbours."""
    if not empty.any() or empty.all():
        return cells
    out = cells.copy()
    out[empty] = 0.0
    have = (~empty).astype(np.float32)
    k3 = np.ones((3, 3), np.float32)
    while not have.all():
        total = cv2.filter2D(out * have[:, :, None], -1, k3, borderType=cv2.BORDER_CONSTANT)
        count = cv2.filter2D(have, -1, k3, borderType=cv2.BORDER_CONSTANT)
        fresh = (have == 0) & (count > 0)
        out[fresh] = total[fresh] / count[fresh][:, None]
        have[fresh] = 1.0
    return out


def _two_tone(
    est: FloatArray, target: FloatArray, whole: NDArray[np.bool_], b: int
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Sharpen cells that mix two flat fills into an edge that keeps the cell's mean.

    A cell whose 3x3 neighbourhood only holds two colours and their mixtures straddles an
    edge between two fills; its mean says how much of it each fill covers. The smooth
    estimate's level lines say where the edge runs, so the cell gets the first fill on the
    side of the estimate nearer it, up to the level line that gives the right coverage.
    Trust fades with low contrast and with colours off the two fills' line (shading, texture,
    ink lines), where the smooth estimate stays. Also says which cells are trusted at
    _EDGE_HOLD or more (the smoothing after this leaves them as they are).
    """
    ch, cw = target.shape[:2]
    n = b * b
    padded = np.asarray(cv2.copyMakeBorder(target, 1, 1, 1, 1, cv2.BORDER_REPLICATE), np.float32)
    nb: FloatArray = np.stack(
        [padded[dy : dy + ch, dx : dx + cw] for dy in range(3) for dx in range(3)], 2
    )
    # The two most different colours around a cell are the fills an edge cell mixes.
    pair = ((nb[:, :, :, None, :] - nb[:, :, None, :, :]) ** 2).sum(axis=4).reshape(ch, cw, 81)
    best = pair.argmax(axis=2)
    lo = np.take_along_axis(nb, (best // 9)[:, :, None, None], axis=2)[:, :, 0]
    hi = np.take_along_axis(nb, (best % 9)[:, :, None, None], axis=2)[:, :, 0]
    axis = hi - lo
    d2 = np.maximum((axis * axis).sum(axis=2), 1e-6)
    dist = np.sqrt(d2)

    def off_line(c: NDArray[np.floating[Any]]) -> FloatArray:
        """Distance of colours ``c`` (ch, cw, ..., 3) from the lo-hi segment, over contrast."""
        ex = (slice(None), slice(None)) + (None,) * (c.ndim - 3)
        t = np.clip(((c - lo[ex]) * axis[ex]).sum(axis=-1) / d2[ex], 0.0, 1.0)
        off = c - (lo[ex] + t[..., None] * axis[ex])
        out: FloatArray = np.sqrt((off * off).sum(axis=-1)) / dist[ex]
        return out

    alpha = np.clip(((target - lo) * axis).sum(axis=2) / d2, 0.0, 1.0)
    # Two fills show as pure cells on both sides: at least two of the nine near each end.
    # (Shading and texture spread along the line between their extremes; in a grey picture
    # every colour lies on it, and the line test alone called every textured cell two-tone.)
    t_nb = ((nb - lo[:, :, None]) * axis[:, :, None]).sum(axis=3) / d2[:, :, None]
    fills = (np.count_nonzero(t_nb <= _TONE_NEAR, axis=2) >= 2) & (
        np.count_nonzero(t_nb >= 1.0 - _TONE_NEAR, axis=2) >= 2
    )
    trust = (
        np.clip((dist - _TONE_MIN) / _TONE_RAMP, 0.0, 1.0)
        * np.clip(1.0 - off_line(nb).max(axis=2) / _TONE_OFF, 0.0, 1.0)
        * np.clip(1.0 - off_line(target) / _TONE_RESID, 0.0, 1.0)
        # A cell that is one of the two extremes holds no edge to place.
        * ((alpha > _TONE_PURE) & (alpha < 1.0 - _TONE_PURE) & whole & fills)
    )
    idx = np.flatnonzero(trust > 0)
    edged = trust >= _EDGE_HOLD
    if idx.size == 0:
        return est, edged
    cells = est.reshape(ch, b, cw, b, 3).transpose(0, 2, 1, 3, 4).reshape(ch * cw, n, 3)
    e = cells[idx]
    lo_c, ax_c = lo.reshape(-1, 1, 3)[idx], axis.reshape(-1, 1, 3)[idx]
    a_c = alpha.reshape(-1)[idx]
    # Position of each pixel between the two fills according to the smooth estimate.
    f = ((e - lo_c) * ax_c).sum(axis=2) / d2.reshape(-1, 1)[idx]
    fs = -np.sort(-f, axis=1)
    # The level that leaves the share ``alpha`` of the cell on the ``hi`` side.
    k = np.clip(a_c * n - 0.5, 0.0, n - 1.0)
    k0 = np.floor(k).astype(np.intp)
    k1 = np.minimum(k0 + 1, n - 1)
    frac = (k - k0)[:, None]
    rows = np.arange(idx.size)
    level = fs[rows, k0][:, None] * (1.0 - frac) + fs[rows, k1][:, None] * frac
    ramp = np.maximum(_TONE_SOFT * (fs[:, :1] - fs[:, -1:]) / b, 1e-4)
    share = np.clip((f - level) / ramp + 0.5, 0.0, 1.0)
    # The soft ramp moves the cell's mean a little; a uniform shift puts it back.
    share += a_c[:, None] - share.mean(axis=1, keepdims=True)
    rest = (target - (lo + alpha[:, :, None] * axis)).reshape(-1, 1, 3)[idx]
    sharp = lo_c + share[:, :, None] * ax_c + rest
    t = trust.reshape(-1, 1, 1)[idx].astype(np.float32)
    cells = cells.copy()
    cells[idx] = t * sharp + (1.0 - t) * e
    out: FloatArray = (
        cells.reshape(ch, cw, b, b, 3).transpose(0, 2, 1, 3, 4).reshape(ch * b, cw * b, 3)
    ).astype(np.float32)
    return out, edged
