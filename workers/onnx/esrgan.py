"""Mosaic restoration with an ESRGAN super-resolution model, as hent-AI does it.

hent-AI shrinks the picture by the mosaic's block size, so each mosaic cell
becomes one pixel, lets ESRGAN upscale it 4x, resizes the result back and
pastes it over the detected mosaic. Here the shrink is aligned to the measured
grid (so each cell is exactly one pixel), only the mosaic's surroundings are
processed, large inputs are tiled, and the paste fades in over a few pixels
inside the mask; pixels outside the mask never change.

Model contract: input float32 ``[1, 3, h, w]`` RGB in [0, 1], output float32
``[1, 3, s*h, s*w]`` in [0, 1]; the scale ``s`` (4 for the usual models) is
measured once at start.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError
from workers.backend import Image, Mask
from workers.imageops.mosaic import MAX_BLOCK, MIN_BLOCK, MosaicGrid, estimate_grid
from workers.onnx.config import EsrganModel
from workers.onnx.regions import Components
from workers.onnx.sessions import FLOAT, Contract, Model, TensorSpec, fixed, load

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]
# Pixels of context around a tile, so seams fall where the model saw both sides.
TILE_OVERLAP = 8
# Margin around a mosaic region in which its grid is measured.
GRID_MARGIN = 24
# Side of the part of a large mosaic region its grid is measured in.
GRID_SAMPLE = 320


def contract(cfg: EsrganModel) -> Contract:
    return Contract(
        what="the ESRGAN super-resolution model",
        setting="EROGAKI_ONNX_ESRGAN_MODEL",
        inputs=(TensorSpec(cfg.input, FLOAT, (1, 3, None, None)),),
        outputs=(TensorSpec(cfg.output, FLOAT, (1, 3, None, None)),),
    )


class Esrgan:
    def __init__(self, model: Model, cfg: EsrganModel) -> None:
        self.model = model
        self.cfg = cfg
        shape = model.input_shapes[cfg.input]
        fh, fw = fixed(shape[2]), fixed(shape[3])
        # A model with a fixed input size gets tiles of exactly that size, padded at edges.
        self.fixed_size = (fh, fw) if fh is not None and fw is not None else None
        self.tile = (fh or cfg.tile, fw or cfg.tile)
        self.scale = self._probe()
        log.info("%s: %dx upscaling", model.path, self.scale)

    @classmethod
    def load(cls, path: Path, cfg: EsrganModel, provider: str) -> Esrgan:
        return cls(load(path, contract(cfg), provider), cfg)

    def _probe(self) -> int:
        h, w = self.fixed_size or (16, 16)
        try:
            (out,) = self.model.run(
                [self.cfg.output], {self.cfg.input: np.zeros((1, 3, h, w), np.float32)}
            )
        except Exception as exc:  # onnxruntime's own exception types are not exported
            raise ConfigError(
                f"EROGAKI_ONNX_ESRGAN_MODEL: {self.model.path} failed on a {w}x{h} test input "
                f"({str(exc).strip()[:200]}); expected {self.model.contract.describe()}"
            ) from None
        scale = out.shape[2] // h if out.ndim == 4 else 0
        if scale < 1 or out.shape != (1, 3, h * scale, w * scale):
            raise ConfigError(
                f"EROGAKI_ONNX_ESRGAN_MODEL: {self.model.path} turned a [1,3,{h},{w}] input "
                f"into {list(out.shape)}; expected [1,3,{h}*s,{w}*s] for a whole scale s "
                "(4 for a 4x ESRGAN model)"
            )
        return scale

    def upscale(self, image: FloatArray) -> FloatArray:
        """An (h, w, 3) image in [0, 1] upscaled to (s*h, s*w, 3), tile by tile."""
        h, w = image.shape[:2]
        s = self.scale
        th, tw = self.tile
        if self.fixed_size is None and h <= th and w <= tw:
            return self._run(image)
        pad_y, pad_x = min(TILE_OVERLAP, th // 4), min(TILE_OVERLAP, tw // 4)
        step_y, step_x = th - 2 * pad_y, tw - 2 * pad_x
        out = np.zeros((h * s, w * s, 3), np.float32)
        for cy0 in range(0, h, step_y):
            cy1 = min(cy0 + step_y, h)
            iy0, iy1 = max(cy0 - pad_y, 0), min(cy1 + pad_y, h)
            for cx0 in range(0, w, step_x):
                cx1 = min(cx0 + step_x, w)
                ix0, ix1 = max(cx0 - pad_x, 0), min(cx1 + pad_x, w)
                patch = image[iy0:iy1, ix0:ix1]
                if self.fixed_size is not None:
                    patch = np.pad(
                        patch, ((0, th - patch.shape[0]), (0, tw - patch.shape[1]), (0, 0)), "edge"
                    )
                up = self._run(patch)
                oy, ox = (cy0 - iy0) * s, (cx0 - ix0) * s
                out[cy0 * s : cy1 * s, cx0 * s : cx1 * s] = up[
                    oy : oy + (cy1 - cy0) * s, ox : ox + (cx1 - cx0) * s
                ]
        return out

    def _run(self, image: FloatArray) -> FloatArray:
        tensor = np.ascontiguousarray(image.transpose(2, 0, 1)[None], np.float32)
        (out,) = self.model.run([self.cfg.output], {self.cfg.input: tensor})
        result: FloatArray = np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0).astype(np.float32)
        return result


def restore(rgb: Image, mask: Mask, esrgan: Esrgan, *, feather: int, default_block: int) -> Image:
    """``rgb`` with each connected mosaic region of ``mask`` redrawn by ESRGAN."""
    out = rgb.copy()
    regions = Components(mask, connectivity=8)
    alpha = _feather(mask, regions.box, feather)
    ax, ay = regions.box[:2]
    for label, (x, y, rx1, ry1) in regions.boxes():
        bw, bh = rx1 - x, ry1 - y
        # Read off this region's own pixels: another region in or near its box may be
        # a mosaic of another block.
        own = functools.partial(_own, regions, label, (x, y, rx1, ry1))
        grid = region_grid(rgb, mask, (x, y, rx1, ry1), own)
        b = grid.block if grid is not None else default_block
        px = grid.phase_x if grid is not None else x
        py = grid.phase_y if grid is not None else y
        # A window on the grid with one cell of context on every side.
        x0 = x - b - (x - b - px) % b
        y0 = y - b - (y - b - py) % b
        x1 = x + bw + b + (px - (x + bw + b)) % b
        y1 = y + bh + b + (py - (y + bh + b)) % b
        window = _window(rgb, x0, y0, x1, y1)
        cells = cv2.resize(window, ((x1 - x0) // b, (y1 - y0) // b), interpolation=cv2.INTER_AREA)
        up = esrgan.upscale(cells * np.float32(1.0 / 255.0))
        interp = cv2.INTER_CUBIC if up.shape[0] < y1 - y0 else cv2.INTER_AREA
        redrawn = cv2.resize(up, (x1 - x0, y1 - y0), interpolation=interp) * np.float32(255.0)
        # Pasted over the region's own box only, all of it at once: elsewhere in the box
        # the weight is 0, which gives back each pixel as it was (a boolean gather and
        # scatter of the region's pixels cost twice the blend).
        region = regions.region(label, x, y, rx1, ry1)
        a = np.multiply(alpha[y - ay : ry1 - ay, x - ax : rx1 - ax], region)[:, :, None]
        new = redrawn[y - y0 : ry1 - y0, x - x0 : rx1 - x0]
        old = out[y:ry1, x:rx1].astype(np.float32)
        blended = np.multiply(a, new)
        old *= 1.0 - a
        blended += old
        np.rint(blended, out=blended)
        out[y:ry1, x:rx1] = np.clip(blended, 0, 255, out=blended)
    return out


def _centre(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """At most GRID_SAMPLE px square at the middle of ``box``."""
    x, y, x1, y1 = box
    cx, cy, half = (x + x1) // 2, (y + y1) // 2, GRID_SAMPLE // 2
    return (max(x, cx - half), max(y, cy - half), min(x1, cx + half), min(y1, cy + half))


# The region's own pixels in a picture window (x0, y0, x1, y1).
Own = Callable[[int, int, int, int], Mask]


def _own(
    regions: Components,
    label: int,
    box: tuple[int, int, int, int],
    x0: int,
    y0: int,
    x1: int,
    y1: int,
) -> Mask:
    """Region ``label``'s pixels (its box ``box``) in the picture window [y0:y1, x0:x1]."""
    out = np.zeros((y1 - y0, x1 - x0), bool)
    ix0, iy0, ix1, iy1 = max(x0, box[0]), max(y0, box[1]), min(x1, box[2]), min(y1, box[3])
    if ix0 < ix1 and iy0 < iy1:
        out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = regions.region(label, ix0, iy0, ix1, iy1)
    return out


def region_grid(
    rgb: Image, mask: Mask, box: tuple[int, int, int, int], own: Own | None = None
) -> MosaicGrid | None:
    """The mosaic grid of the region of ``mask`` whose box is ``box``, in whole-image
    coordinates (None when none is found): read off the steps under the mask (``own``:
    under the region's own pixels) where they leave no doubt (``quick_grid``), else
    measured as ``estimate_grid`` measures it."""
    grid = quick_grid(rgb, mask, _centre(box), own)
    return grid if grid is not None else measured_grid(rgb, box)


# The quick reading (quick_grid). A step between two pixels counts when its colours differ
# by this much (summed over channels) and the steps beside it are quiet: JPEG's ringing
# and anti-aliased edges spread over several pixels, a mosaic's step does not.
_STEP = 6.0
_QUIET = 6.0
_QUIET_DIV = 4.0
_RING_X = np.array([[1, 1, 0, 1, 1]], np.uint8)
_RING_Y = _RING_X.T.copy()
# Periodicity (steps on the grid's lines over their mean) both axes must show, and
# the share of the best block's above which a divisor of it is the block.
_MIN_COMB = 2.5
_DIVISOR = 0.65
# The lines must hold at least this many steps and this share of all steps under the
# mask; every line's share (folded by any whole number of lines) at least _LINE_BALANCE
# of the best line's; and lines of a finer grid taking these in (halfway between them,
# at a third...) on average under _BETWEEN of their steps.
_MIN_LINE_STEPS = 40
_ON_LINES = 0.3
_LINE_BALANCE = 0.4
_BETWEEN = 0.3
# At least _MIN_CELLS whole cells under the mask, at most _MAX_ROUGH of them not flat
# (a channel's deviation over _FLAT_STD: JPEG beside a strong step), and at least
# _MIN_STEPS neighbours on each axis whose mean colours differ by _CELL_STEP.
_MIN_CELLS = 9
_MAX_ROUGH = 0.4
_FLAT_STD = 8.0
_MIN_STEPS = 8
_CELL_STEP = 6.0


def quick_grid(
    rgb: Image, mask: Mask, box: tuple[int, int, int, int], own: Own | None = None
) -> MosaicGrid | None:
    """The mosaic grid under ``mask`` around ``box`` (whole-image coordinates) when the
    steps between its pixels show it beyond doubt, else None. With ``own``, under the
    pixels it gives for the window read instead (one region's, not its neighbours').

    Steps are counted under the mask only, where the detector saw a mosaic: one comb
    over those counts proposes a block and phase, and the proposal stands when the cells
    it draws are flat, step between one another, and do so on every line (a grid at a
    fraction of the block would have lines without steps; one at a multiple of it, or
    out of phase, cells with steps inside)."""
    h, w = rgb.shape[:2]
    x0, y0 = max(box[0] - GRID_MARGIN, 0), max(box[1] - GRID_MARGIN, 0)
    x1, y1 = min(box[2] + GRID_MARGIN, w), min(box[3] + GRID_MARGIN, h)
    if min(x1 - x0, y1 - y0) < 3 * MIN_BLOCK:
        return None
    win = rgb[y0:y1, x0:x1]
    inside = mask[y0:y1, x0:x1] if own is None else own(x0, y0, x1, y1)
    px = _step_counts(win, inside, 1)
    py = _step_counts(win, inside, 0)
    proposal = _comb(px, py)
    if proposal is None:
        return None
    b, phase_x, phase_y = proposal
    if not (_lines_agree(px, b, phase_x) and _lines_agree(py, b, phase_y)):
        return None
    if not _cells_agree(win, inside, b, phase_x, phase_y):
        return None
    return MosaicGrid(b, (phase_x + x0) % b, (phase_y + y0) % b)


def _step_counts(win: Image, inside: Mask, axis: int) -> NDArray[np.float64]:
    """Per line between two pixels across ``axis`` (1: columns), how many isolated
    steps lie there under the mask."""
    if axis == 1:
        a, b_, ring = win[:, 1:], win[:, :-1], _RING_X
        both = inside[:, 1:] & inside[:, :-1]
    else:
        a, b_, ring = win[1:], win[:-1], _RING_Y
        both = inside[1:] & inside[:-1]
    d = np.asarray(
        cv2.transform(cv2.absdiff(a, b_).astype(np.float32), np.ones((1, 3), np.float32)),
        np.float32,
    )
    side = cv2.dilate(d, ring, borderType=cv2.BORDER_CONSTANT, borderValue=255)
    isolated = ((side <= _QUIET) | (side * _QUIET_DIV <= d)) & (d >= _STEP) & both
    counts: NDArray[np.float64] = np.count_nonzero(isolated, axis=1 - axis).astype(np.float64)
    return counts


@functools.lru_cache(maxsize=32)
def _folding(n: int) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], Mask]:
    """How ``n`` counts fold at every block size they hold three of: the block sizes,
    each folded count's bin and source, and which bins exist (one row per size)."""
    blocks = np.arange(MIN_BLOCK, min(MAX_BLOCK, n // 3) + 1)
    bins, source = [], []
    for k, b in enumerate(blocks):
        m = n // b * b
        source.append(np.arange(m))
        bins.append(k * (MAX_BLOCK + 1) + np.arange(m) % b)
    exists = np.zeros((len(blocks), MAX_BLOCK + 1), bool)
    for k, b in enumerate(blocks):
        exists[k, :b] = True
    if not len(blocks):
        return blocks, np.zeros(0, np.intp), np.zeros(0, np.intp), exists
    return blocks, np.concatenate(bins), np.concatenate(source), exists


def _fold(counts: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Per block size, the comb score of the best line position (its mean count over
    the mean of all) and that position; every size folded in one bincount (counts are
    whole numbers, so the sums are exact)."""
    n = counts.size
    scores = np.zeros(MAX_BLOCK + 1)
    where = np.zeros(MAX_BLOCK + 1, np.intp)
    mean = float(counts.mean()) if n else 0.0
    blocks, bins, source, exists = _folding(n)
    if mean <= 0 or not len(blocks):
        return scores, where
    sums = np.bincount(bins, weights=counts[source], minlength=exists.size)
    folded = np.where(exists, sums.reshape(exists.shape), -np.inf)
    best = folded.argmax(axis=1)
    scores[blocks] = folded[np.arange(len(blocks)), best] / (n // blocks) / mean
    where[blocks] = best
    return scores, where


def _comb(px: NDArray[np.float64], py: NDArray[np.float64]) -> tuple[int, int, int] | None:
    """(block, phase x, phase y) of the best comb over both axes' counts, or None."""
    sx, rx = _fold(px)
    sy, ry = _fold(py)
    both = np.where(np.minimum(sx, sy) >= _MIN_COMB, np.sqrt(sx * sy), 0.0)
    best = int(both.argmax())
    if both[best] <= 0:
        return None
    # Multiples of the block score as high as it does; the smallest that does is it.
    b = next(
        d for d in range(MIN_BLOCK, best + 1) if best % d == 0 and both[d] >= _DIVISOR * both[best]
    )
    # The step at index i lies between pixels i and i + 1: a line starts cells at i + 1.
    return b, int(rx[b] + 1) % b, int(ry[b] + 1) % b


def _lines_agree(counts: NDArray[np.float64], b: int, phase: int) -> bool:
    """Whether most steps lie on the grid's lines, and every line holds its share: a
    grid at a multiple of the block leaves steps between its lines; one at a fraction
    of it has lines without any (k - 1 in k at 1/k)."""
    lines = counts[(phase - 1) % b :: b]
    on = float(lines.sum())
    if on < _MIN_LINE_STEPS or on < _ON_LINES * float(counts.sum()):
        return False
    # Lines of a finer grid that takes in these: at a multiple of the block, they step
    # as often as these do.
    first = (phase - 1) % b
    per_line = on / lines.size
    for d in range(MIN_BLOCK, b // 2 + 1):
        if b % d == 0:
            between = counts[first % d :: d]
            others = np.ones(between.size, bool)
            others[(first - first % d) // d :: b // d] = False
            if others.any() and float(between[others].mean()) >= _BETWEEN * per_line:
                return False
    for k in range(2, MAX_BLOCK // b + 1):
        n = lines.size // k * k
        if n < 2 * k:
            break
        share = lines[:n].reshape(-1, k).sum(axis=0)
        if share.min() < _LINE_BALANCE * share.max():
            return False
    return True


def _cells_agree(win: Image, inside: Mask, b: int, phase_x: int, phase_y: int) -> bool:
    """Whether the cells of the grid, where wholly under the mask, look pixelated: most
    of them flat, stepping to their neighbours often enough on both axes."""
    h, w = inside.shape
    nw, nh = (w - phase_x) // b, (h - phase_y) // b
    if nw < 3 or nh < 3:
        return False
    ys, xs = slice(phase_y, phase_y + nh * b), slice(phase_x, phase_x + nw * b)
    crop = win[ys, xs].astype(np.float32)
    mean = np.asarray(cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA), np.float32)
    sq = np.asarray(
        cv2.resize(cv2.multiply(crop, crop), (nw, nh), interpolation=cv2.INTER_AREA), np.float32
    )
    std = np.sqrt(np.maximum(sq - mean * mean, 0.0)).max(axis=2)
    cover = cv2.resize(inside[ys, xs].astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
    full = cover >= 1.0
    count = int(full.sum())
    if count < _MIN_CELLS:
        return False
    rough = int((full & (std > _FLAT_STD)).sum())
    if rough > _MAX_ROUGH * count:
        return False
    for axis in (1, 0):
        if axis == 1:
            pairs = full[:, 1:] & full[:, :-1]
            step = np.abs(mean[:, 1:] - mean[:, :-1]).max(axis=2) >= _CELL_STEP
        else:
            pairs = full[1:] & full[:-1]
            step = np.abs(mean[1:] - mean[:-1]).max(axis=2) >= _CELL_STEP
        stepping = step & pairs
        if int(stepping.sum()) < _MIN_STEPS:
            return False
    return True


def measured_grid(rgb: Image, box: tuple[int, int, int, int]) -> MosaicGrid | None:
    """The grid as ``estimate_grid`` measures it where the mosaic is: at most GRID_SAMPLE
    px square at the region's centre (a larger window costs more and, on synthetic
    mosaics, was right no more often), then the whole region, then as much context again
    on every side (never the whole picture, whose cost would not follow the mosaic's
    size)."""
    x, y, x1, y1 = box
    centre = _centre(box)
    grid = _grid_near(rgb, centre, GRID_MARGIN)
    if grid is None and centre != box:
        grid = _grid_near(rgb, box, GRID_MARGIN)
    if grid is None:
        grid = _grid_near(rgb, box, max(x1 - x, y1 - y))
    return grid


def _grid_near(rgb: Image, bbox: tuple[int, int, int, int], margin: int) -> MosaicGrid | None:
    """The mosaic grid measured around a region, in whole-image coordinates."""
    h, w = rgb.shape[:2]
    x0, y0 = max(bbox[0] - margin, 0), max(bbox[1] - margin, 0)
    x1, y1 = min(bbox[2] + margin, w), min(bbox[3] + margin, h)
    grid = estimate_grid(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    if grid is None:
        return None
    b = grid.block
    return MosaicGrid(b, (grid.phase_x + x0) % b, (grid.phase_y + y0) % b)


def _window(rgb: Image, x0: int, y0: int, x1: int, y1: int) -> FloatArray:
    """``rgb[y0:y1, x0:x1]`` as float, with the parts outside the image replicated."""
    h, w = rgb.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    inside = rgb[sy0:sy1, sx0:sx1].astype(np.float32)
    padded = cv2.copyMakeBorder(
        inside, sy0 - y0, y1 - sy1, sx0 - x0, x1 - sx1, cv2.BORDER_REPLICATE
    )
    return np.asarray(padded, np.float32)


def _feather(mask: Mask, box: tuple[int, int, int, int], feather: int) -> FloatArray:
    """Blend weight over the window ``box`` (the mask's bounding box): 1 deep inside the
    mask, ramping down over ``feather`` px to its edge, 0 outside. The image's border is
    not an edge: a mosaic may run off the picture."""
    x0, y0, x1, y1 = box
    part = mask[y0:y1, x0:x1]
    if feather <= 0:
        return part.astype(np.float32)
    h, w = mask.shape
    # One pixel beyond the box is outside the mask, unless it is beyond the picture.
    inside = np.pad(part.astype(np.uint8), 1, constant_values=1)
    if y0 > 0:
        inside[0] = 0
    if y1 < h:
        inside[-1] = 0
    if x0 > 0:
        inside[:, 0] = 0
    if x1 < w:
        inside[:, -1] = 0
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    alpha: FloatArray = np.clip(dist / float(feather + 1), 0.0, 1.0).astype(np.float32)
    alpha[~part] = 0.0
    return alpha
