"""The model-free ``cpu`` backend: classical image processing in numpy and
OpenCV. It runs anywhere and needs no weights; it is the default for local
runs and tests, and is honestly lower quality than the real models
(``bench/quality.py`` measures it)."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from workers import imageops
from workers.backend import Image, Mask
from workers.imageops.bars import SEARCH_SIZE
from workers.imageops.mosaic import MosaicGrid

# Bars found on JPEG inputs have a ringing fringe one or two pixels wide that
# inpainting would otherwise smear back in.
BAR_GROW_PX = 2


def _grow(mask: Mask, px: int) -> Mask:
    if px > 4:
        # A wide disc costs dilate its area per pixel; a distance transform costs little.
        dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
        far: Mask = dist <= px
        return far
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    out: Mask = cv2.dilate(mask.astype(np.uint8), disc).astype(bool)
    return out


# Context around a suspect bar when it is looked at again on its own crop: a quarter of
# its longer side, and never less than this many pixels, so that the crop's edges neither
# cut a bar short nor make a fill they cut look like one.
_CROP_MARGIN = 48
_CROP_SHARE = 0.25
# The crop holds at least this many times the suspect's area: the bar detector takes a
# region over a fifth of its picture for background.
_CROP_AREA = 8.0
# Share of a suspect's outline on the mosaic's grid lines over which it is a run of cells
# (the detector rounds their corners, and cuts some at a drawn edge); a bar's edges fall
# on a line once in a block, so for small blocks a share between the two is also looked
# at with the suspect restored as mosaic, which a run does not survive.
_RUN = 0.5
_MAYBE_RUN = 0.3
# ... unless the grid lines inside it show no colour step (summed over channels) at under
# this share of their pixels: like cells that merged step at nearly all of them, a bar's
# one colour at none (its suspect may still hold a few cells merged with it).
_STEP_INSIDE = 3
_STEPPED = 0.5
# A bar looked for inside a suspect taken for a run of cells: a piece left when it is cut
# at colour edges of at least this step (summed over channels) and at the grid lines, of at
# least this many cells' area.
_PIECE_EDGE = 24
_PIECE_CELLS = 2
_K3 = np.ones((3, 3), np.uint8)


def _on_grid(comp: Mask, grid: MosaicGrid) -> float:
    """The share of the outline of ``comp`` that runs along the mosaic's grid lines: most
    of it for a run of like cells, one step in a block for a bar lying on the mosaic."""
    b = grid.block
    sx = np.count_nonzero(comp[:, 1:] != comp[:, :-1], axis=0)
    sy = np.count_nonzero(comp[1:, :] != comp[:-1, :], axis=1)
    # The step between x and x + 1 lies on a grid line when x + 1 is a cell's left edge.
    on_x = (np.arange(1, comp.shape[1]) - grid.phase_x) % b == 0
    on_y = (np.arange(1, comp.shape[0]) - grid.phase_y) % b == 0
    steps = int(sx.sum() + sy.sum())
    return float(sx[on_x].sum() + sy[on_y].sum()) / max(steps, 1)


def _steps_inside(rgb: Image, comp: Mask, grid: MosaicGrid) -> bool:
    """Whether the colour steps at the grid lines inside ``comp``, as between like but
    unequal cells; a bar is one colour across them. Too few lines inside to tell count as
    steps."""
    inner = cv2.erode(comp.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    b = grid.block
    on_x = (np.arange(1, comp.shape[1]) - grid.phase_x) % b == 0
    on_y = (np.arange(1, comp.shape[0]) - grid.phase_y) % b == 0
    across_x = inner[:, 1:] & inner[:, :-1] & on_x[None, :]
    across_y = inner[1:] & inner[:-1] & on_y[:, None]
    pairs = int(np.count_nonzero(across_x) + np.count_nonzero(across_y))
    if pairs < 2 * b:
        return True
    px = rgb.astype(np.int16)
    dx = np.abs(px[:, 1:] - px[:, :-1]).sum(axis=2)
    dy = np.abs(px[1:] - px[:-1]).sum(axis=2)
    stepped = np.count_nonzero(dx[across_x] >= _STEP_INSIDE) + np.count_nonzero(
        dy[across_y] >= _STEP_INSIDE
    )
    return bool(stepped >= _STEPPED * pairs)


def _bar_within(rgb: Image, comp: Mask, grid: MosaicGrid) -> Mask | None:
    """The part of ``comp`` (a suspect taken for a run of cells) that may be a bar lying on
    the mosaic, or None. ``comp`` is cut at every grid line with a colour step (cells meet
    there) and at every strong colour edge (a bar meets the cells there); a piece left
    over at least _PIECE_CELLS cells' area whose outline leaves the grid, and whose colour
    runs on across the grid lines inside it, may be a bar."""
    b = grid.block
    if np.count_nonzero(comp) < _PIECE_CELLS * b * b:
        return None
    px = rgb.astype(np.int16)
    dx = np.abs(px[:, 1:] - px[:, :-1]).sum(axis=2)
    dy = np.abs(px[1:] - px[:-1]).sum(axis=2)
    on_x = (np.arange(1, comp.shape[1]) - grid.phase_x) % b == 0
    on_y = (np.arange(1, comp.shape[0]) - grid.phase_y) % b == 0
    cut_x = (dx >= _PIECE_EDGE) | ((dx >= _STEP_INSIDE) & on_x[None, :])
    cut_y = (dy >= _PIECE_EDGE) | ((dy >= _STEP_INSIDE) & on_y[:, None])
    cut = np.zeros_like(comp)
    cut[:, :-1] |= cut_x
    cut[:, 1:] |= cut_x
    cut[:-1] |= cut_y
    cut[1:] |= cut_y
    _, lab, stats, _ = cv2.connectedComponentsWithStats(
        (comp & ~cut).astype(np.uint8), connectivity=4
    )
    for k in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable"):
        if int(stats[k, cv2.CC_STAT_AREA]) < _PIECE_CELLS * b * b:
            break
        core = lab == k
        # Its rim (cut off as an edge) comes back where it is near the piece's colour.
        colour = rgb[core].astype(np.float32).mean(axis=0)
        rim = comp & cut & cv2.dilate(core.astype(np.uint8), _K3).astype(bool)
        rim &= np.abs(rgb.astype(np.float32) - colour).sum(axis=2) <= _PIECE_EDGE
        piece: Mask = core | rim
        if _on_grid(piece, grid) < _MAYBE_RUN and not _steps_inside(rgb, piece, grid):
            return piece
    return None


def _crop_box(
    x: int, y: int, bw: int, bh: int, area: int, shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    m = max(_CROP_MARGIN, int(_CROP_SHARE * max(bw, bh)))
    while (bw + 2 * m) * (bh + 2 * m) < _CROP_AREA * area:
        m += _CROP_MARGIN
    return max(x - m, 0), max(y - m, 0), min(x + bw + m, w), min(y + bh + m, h)


def _seen_on_crop(crop: Image, scale: float) -> Mask:
    """What the bar detector finds on a crop, searched at the whole picture's scale."""
    if scale >= 1.0:
        return imageops.detect_bars(crop)
    h, w = crop.shape[:2]
    small = cv2.resize(
        crop, (max(round(w * scale), 1), max(round(h * scale), 1)), interpolation=cv2.INTER_AREA
    )
    found = imageops.detect_bars(np.asarray(small, np.uint8)).astype(np.uint8)
    seen: Mask = cv2.resize(found, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return seen


def _restore_around(rgb: Image, mosaic: Mask, grid: MosaicGrid, bars: Mask) -> tuple[Image, Mask]:
    """The picture with its mosaic restored around ``bars`` (grown over their JPEG fringe),
    which are left for inpainting and whose colour is not read as their cells'."""
    if not bars.any():
        return imageops.restore_mosaic(rgb, mosaic, grid), bars
    grown = _grow(bars, BAR_GROW_PX)
    return imageops.restore_mosaic(rgb, mosaic & ~grown, grid, ignore=grown), grown


class _Suspect(NamedTuple):
    label: int
    area: int
    box: tuple[int, int, int, int]
    comp: Mask  # over ``box``


def _settle(rgb: Image, bars: Mask, mosaic: Mask, grid: MosaicGrid) -> tuple[Image, Mask, Mask]:
    """The picture with its mosaic restored, and the mosaic and bar masks (grown) that this
    took, keeping only the bars that stay bars with the mosaic around them restored.

    Near a mosaic, "bars" may be runs of like cells, or flat patches of the drawing that
    the mosaic's straight edge cuts into a bar's shape; and a bar lying on the mosaic may
    come joined with like cells around it. A suspect whose outline runs along the grid at
    least in part is first cut at the grid lines where cells meet and at strong colour
    edges: a piece of one colour across several cells whose outline leaves the grid is a
    bar lying on the mosaic, and the suspect in its place (the cells go to the mosaic).
    Otherwise a suspect whose outline runs along the grid is a run, and goes to the
    mosaic; one half on the grid must survive a look on a crop with the mosaic restored
    under it too. Every other bar is then held out of the
    restoration (a bar lying on the mosaic keeps its edges), and each remaining suspect is
    looked at again on a crop of the result: a patch cut by the mosaic now runs on into the
    restored cells, a bar is still one. When all of them are, that restoration is the answer.
    """
    h, w = bars.shape
    # Labels and distances are only needed around the bars, which cover little of a picture.
    ys, xs = np.flatnonzero(bars.any(axis=1)), np.flatnonzero(bars.any(axis=0))
    pad = 2 * grid.block + 1
    ry0, ry1 = max(int(ys[0]) - pad, 0), min(int(ys[-1]) + 1 + pad, h)
    rx0, rx1 = max(int(xs[0]) - pad, 0), min(int(xs[-1]) + 1 + pad, w)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        bars[ry0:ry1, rx0:rx1].astype(np.uint8), connectivity=8
    )
    near = _grow(mosaic[ry0:ry1, rx0:rx1], 2 * grid.block)
    close = np.bincount(labels[near], minlength=n)
    keep = np.ones(n, bool)
    keep[0] = False
    scale = min(1.0, SEARCH_SIZE / max(h, w))
    b = grid.block

    def seen(picture: Image, s: _Suspect) -> bool:
        x0, y0, x1, y1 = s.box
        found = _seen_on_crop(np.ascontiguousarray(picture[y0:y1, x0:x1]), scale)
        return bool(np.count_nonzero(found & s.comp) * 2 >= s.area)

    def kept() -> Mask:
        out = np.zeros_like(bars)
        out[ry0:ry1, rx0:rx1] = keep[labels]
        return out

    suspects: list[_Suspect] = []
    for k in np.flatnonzero(close * 2 >= stats[:, cv2.CC_STAT_AREA]):
        if k == 0:
            continue
        x, y, bw, bh, area = (int(v) for v in stats[k])
        x0, y0, x1, y1 = _crop_box(x + rx0, y + ry0, bw, bh, area, bars.shape)
        comp = np.zeros((y1 - y0, x1 - x0), bool)
        cy0, cx0, cy1, cx1 = max(y0, ry0), max(x0, rx0), min(y1, ry1), min(x1, rx1)
        comp[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = (
            labels[cy0 - ry0 : cy1 - ry0, cx0 - rx0 : cx1 - rx0] == k
        )
        suspect = _Suspect(int(k), area, (x0, y0, x1, y1), comp)
        part = MosaicGrid(b, (grid.phase_x - x0) % b, (grid.phase_y - y0) % b)
        on_mosaic = mosaic[y0:y1, x0:x1]
        share = _on_grid(comp, part) if np.count_nonzero(comp & on_mosaic) * 2 >= area else 0.0
        piece = _bar_within(rgb[y0:y1, x0:x1], comp, part) if share >= _MAYBE_RUN else None
        if piece is not None:
            # A bar lying on the mosaic that the detector joined with like cells around it:
            # the bar alone is the suspect, the cells go to the mosaic.
            cy, cx = np.nonzero(comp & ~piece)
            labels[cy + y0 - ry0, cx + x0 - rx0] = 0
            suspects.append(suspect._replace(area=int(np.count_nonzero(piece)), comp=piece))
            continue
        if share >= _RUN:
            keep[k] = False
        elif share >= _MAYBE_RUN and _steps_inside(rgb[y0:y1, x0:x1], comp, part):
            under = imageops.restore_mosaic(
                np.ascontiguousarray(rgb[y0:y1, x0:x1]), on_mosaic, part
            )
            keep[k] = seen(under, suspect._replace(box=(0, 0, x1 - x0, y1 - y0)))
        if keep[k]:
            suspects.append(suspect)

    restored, grown = _restore_around(rgb, mosaic, grid, kept())
    for s in suspects:
        keep[s.label] = seen(restored, s)
    if not all(keep[s.label] for s in suspects):
        restored, grown = _restore_around(rgb, mosaic, grid, kept())
    return restored, mosaic & ~grown, grown


class CpuHentai:
    name = "cpu"

    def detect_bars(self, rgb: Image) -> Mask:
        return imageops.detect_bars(rgb, grow=BAR_GROW_PX)

    def restore_mosaic(self, rgb: Image) -> tuple[Image, Mask]:
        mask, grid = imageops.detect_mosaic(rgb)
        if grid is None or not mask.any():
            return rgb, mask
        return imageops.restore_mosaic(rgb, mask, grid), mask

    def auto(self, rgb: Image) -> tuple[Image, Mask, Mask]:
        mosaic, grid = imageops.detect_mosaic(rgb)
        bars = imageops.detect_bars(rgb)
        if grid is None or not mosaic.any():
            return rgb, mosaic, _grow(bars, BAR_GROW_PX) if bars.any() else bars
        if not bars.any():
            return imageops.restore_mosaic(rgb, mosaic, grid), mosaic, bars
        return _settle(rgb, bars, mosaic, grid)


class CpuDeepCreamPy:
    name = "cpu"

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        return imageops.inpaint(rgb, mask)
