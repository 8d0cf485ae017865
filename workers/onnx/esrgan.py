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

import logging
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError
from workers.backend import Image, Mask
from workers.imageops.mosaic import MosaicGrid, estimate_grid
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
        # Measured where the mosaic is: at most GRID_SAMPLE px square at the region's
        # centre (a larger window costs more and, on synthetic mosaics, was right no more
        # often), then the whole region, then as much context again on every side (never
        # the whole picture, whose cost would not follow the mosaic's size).
        cx, cy, half = (x + rx1) // 2, (y + ry1) // 2, GRID_SAMPLE // 2
        centre = (max(x, cx - half), max(y, cy - half), min(rx1, cx + half), min(ry1, cy + half))
        grid = _grid_near(rgb, centre, GRID_MARGIN)
        if grid is None and centre != (x, y, rx1, ry1):
            grid = _grid_near(rgb, (x, y, rx1, ry1), GRID_MARGIN)
        if grid is None:
            grid = _grid_near(rgb, (x, y, rx1, ry1), max(bw, bh))
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
        # Pasted over the region's own box only.
        region = regions.region(label, x, y, rx1, ry1)
        a = alpha[y - ay : ry1 - ay, x - ax : rx1 - ax][region][:, None]
        new = redrawn[y - y0 : ry1 - y0, x - x0 : rx1 - x0][region]
        old = out[y:ry1, x:rx1][region].astype(np.float32)
        blended = np.clip(np.rint(a * new + (1.0 - a) * old), 0, 255).astype(np.uint8)
        out[y:ry1, x:rx1][region] = blended
    return out


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
