"""Bar inpainting with LaMa or MI-GAN, and the choice among the inpainting models.

LaMa and MI-GAN fill a hole from its surroundings, so each connected hole gets
a crop with ``EROGAKI_ONNX_INPAINT_MARGIN`` pixels of context on every side
(IOPaint's practice, 128). A model with a fixed square input (LaMa's common
512 export, MI-GAN's raw generator) gets a square crop at least that size, so
a small hole is seen at native resolution and a large one is shrunk; a model
taking any size (LaMa's dynamic exports, MI-GAN's pipeline) gets the crop at
native resolution, padded to what it needs. Only the mask's own pixels are
pasted back: nothing outside the mask ever changes.

Contracts (``docs/models.md`` has the details and the exports):

- LaMa: ``image`` float32 ``[B,3,H,W]`` RGB in [0, 1], ``mask`` float32
  ``[B,1,H,W]`` with 1 in the hole; ``output`` float32 ``[B,3,H,W]`` RGB in
  [0, 255] or [0, 1] (measured at start). H, W fixed and equal, or dynamic
  (then multiples of 8).
- MI-GAN raw: ``input`` float32 ``[1,4,S,S]`` = (known - 0.5, rgb * known)
  with rgb in [-1, 1] and known 1 outside the hole; ``output`` float32
  ``[1,3,S,S]`` in [-1, 1].
- MI-GAN pipeline: ``image`` uint8 ``[1,3,H,W]``, ``mask`` uint8
  ``[1,1,H,W]`` (255 keep, 0 fill); ``result`` uint8 ``[1,3,H,W]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError
from workers.backend import Image, Mask
from workers.onnx.config import LamaModel, MiganModel, OnnxConfig, model_path
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.regions import Components, grow, resize_window
from workers.onnx.sessions import (
    FLOAT,
    UINT8,
    Contract,
    Model,
    TensorSpec,
    fixed,
    load_any,
)

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]
Feeds = dict[str, NDArray[Any]]
# Dynamic LaMa exports need sides that are multiples of 8 (its downsampling steps).
LAMA_MULTIPLE = 8
# MI-GAN's generator was trained at 512; a raw export with a dynamic size runs at it.
MIGAN_SIZE = 512

LICENCES = {
    "deepcreampy": "DeepCreamPy weights: EULA forbids use over a network (a bot is); "
    "personal use only",
    "lama": "LaMa (big-lama): Apache-2.0; the anime/manga fine-tune: MIT per its card",
    "migan": "MI-GAN: MIT",
}


class Inpainter(Protocol):
    model: Model

    def inpaint(self, rgb: Image, mask: Mask) -> Image: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Box:
    """The window ``[y0:y1, x0:x1]`` of the image (exclusive ends)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def corners(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1


def region_box(
    bbox: tuple[int, int, int, int], width: int, height: int, margin: int, side: int | None
) -> Box:
    """The crop for a hole whose bounding box is ``bbox`` (x0, y0, x1, y1).

    ``side`` None: the box grown by ``margin``, cut at the image's edges. Otherwise a
    square centred on the hole, of side ``max(hole's larger side + 2 * margin, side)``,
    moved inside the image and cut to it where the image is smaller.
    """
    x0, y0, x1, y1 = bbox
    if side is None:
        return Box(max(x0 - margin, 0), max(y0 - margin, 0),
                   min(x1 + margin, width), min(y1 + margin, height))  # fmt: skip
    want = max(max(x1 - x0, y1 - y0) + 2 * margin, side)
    bw, bh = min(want, width), min(want, height)
    left = min(max((x0 + x1) // 2 - bw // 2, 0), width - bw)
    top = min(max((y0 + y1) // 2 - bh // 2, 0), height - bh)
    return Box(left, top, left + bw, top + bh)


class RegionInpainter:
    """What LaMa and MI-GAN share: holes, crops, batching and the paste."""

    what = ""

    def __init__(self, model: Model, *, side: int | None, multiple: int, max_batch: int,
                 margin: int, hole_grow: int) -> None:  # fmt: skip
        self.model = model
        self.side = side
        self.multiple = multiple
        self.margin = margin
        self.hole_grow = hole_grow
        first = model.contract.inputs[0].name
        self.batch = 1 if fixed(model.input_shapes[first][0]) is not None else max_batch

    # Per model: tensors for one crop at model size, and its output back as pixels.
    def encode(self, rgb: Image, hole: Mask) -> Feeds:
        raise NotImplementedError

    def decode(self, outputs: Sequence[NDArray[Any]]) -> FloatArray:
        """One crop's outputs as RGB in [0, 255] (float), in a new array."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def shape_text(self) -> str:
        size = f"fixed {self.side}x{self.side}" if self.side else "any size"
        batch = "batch 1" if self.batch == 1 else f"dynamic batch (up to {self.batch})"
        return f"{size}, {batch}"

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        out = rgb.copy()
        if not mask.any():
            return out
        h, w = mask.shape
        # The model's hole is a little larger than the mask; only the mask is pasted.
        hole = grow(mask, self.hole_grow)
        regions = Components(hole, connectivity=8)
        holes: list[tuple[int, Box, Box]] = []
        for label, corners in regions.boxes():
            crop = region_box(corners, w, h, self.margin, self.side)
            holes.append((label, Box(*corners), crop))
        prepared = [self._to_model(rgb[c.slices], hole[c.slices]) for _, _, c in holes]
        predictions = self._predict([self.encode(pix, gap) for pix, gap in prepared])
        for (label, bbox, crop), pred in zip(holes, predictions, strict=True):
            # Only the hole's own box is touched: the cost follows the holes, not the crops.
            window = (bbox.x0 - crop.x0, bbox.y0 - crop.y0, bbox.x1 - crop.x0, bbox.y1 - crop.y0)
            inner = self._from_model(pred, (crop.y1 - crop.y0, crop.x1 - crop.x0), window)
            ys, xs = bbox.slices
            region = regions.region(label, *bbox.corners) & mask[ys, xs]
            out[ys, xs][region] = inner[region]
        return out

    def _to_model(self, rgb: Image, hole: Mask) -> tuple[Image, Mask]:
        """A crop and its hole at the size the model takes."""
        h, w = hole.shape
        if self.side is not None:
            if (h, w) == (self.side, self.side):
                return rgb, hole
            size = (self.side, self.side)
            interp = cv2.INTER_AREA if self.side < max(h, w) else cv2.INTER_LINEAR
            image = cv2.resize(rgb, size, interpolation=interp)
            # A resized pixel that saw any of the hole is hole: what was there (green) must
            # not pass for context.
            share = cv2.resize(hole.view(np.uint8) * np.uint8(255), size, interpolation=interp)
            return np.asarray(image, np.uint8), np.asarray(share) > 0
        m = self.multiple
        pad_y, pad_x = (-h) % m, (-w) % m
        if pad_y or pad_x:
            rgb = np.asarray(cv2.copyMakeBorder(rgb, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE))
            hole = cv2.copyMakeBorder(hole.view(np.uint8), 0, pad_y, 0, pad_x,
                                      cv2.BORDER_REPLICATE).astype(bool)  # fmt: skip
        return rgb, hole

    def _from_model(
        self, pixels: FloatArray, size: tuple[int, int], window: tuple[int, int, int, int]
    ) -> Image:
        """The model's output as the crop's pixels (``size``: its height, width) in
        ``window`` (x0, y0, x1, y1 of the crop)."""
        # In place (decode's array is this call's own): clip, then round half up.
        np.clip(pixels, 0.0, 255.0, out=pixels)
        pixels += np.float32(0.5)
        out: Image = pixels.astype(np.uint8)
        if self.side is None:
            x0, y0, x1, y1 = window
            return out[y0:y1, x0:x1]
        # Rounded at the model's size first: resizing 8-bit pixels is several times
        # cheaper, and a bicubic overshoot saturates.
        return resize_window(out, size, window)

    def _predict(self, feeds: list[Feeds]) -> list[FloatArray]:
        """Each crop's output, running crops of one shape together where the batch is
        dynamic."""
        results: list[FloatArray | None] = [None] * len(feeds)
        groups: dict[tuple[tuple[int, ...], ...], list[int]] = {}
        for i, feed in enumerate(feeds):
            groups.setdefault(tuple(a.shape for a in feed.values()), []).append(i)
        outputs = [spec.name for spec in self.model.contract.outputs]
        for members in groups.values():
            for start in range(0, len(members), self.batch):
                chunk = members[start : start + self.batch]
                if len(chunk) == 1:  # a view with a batch axis: no copy
                    stacked = {k: v[None] for k, v in feeds[chunk[0]].items()}
                else:
                    stacked = {k: np.stack([feeds[i][k] for i in chunk]) for k in feeds[chunk[0]]}
                ran = self.model.run(outputs, stacked)
                for j, i in enumerate(chunk):
                    results[i] = self.decode([r[j] for r in ran])
        return [r for r in results if r is not None]


def _lama_contracts(cfg: LamaModel) -> tuple[Contract, ...]:
    return (
        Contract(
            what="the LaMa inpainting model",
            setting="EROGAKI_ONNX_LAMA_MODEL",
            inputs=(
                TensorSpec(cfg.image_input, FLOAT, (None, 3, None, None)),
                TensorSpec(cfg.mask_input, FLOAT, (None, 1, None, None)),
            ),
            outputs=(TensorSpec(cfg.output, FLOAT, (None, 3, None, None)),),
        ),
    )


class Lama(RegionInpainter):
    def __init__(self, model: Model, cfg: LamaModel, margin: int, hole_grow: int) -> None:
        shape = model.input_shapes[cfg.image_input]
        fh, fw = fixed(shape[2]), fixed(shape[3])
        if (fh is None) != (fw is None) or fh != fw:
            raise ConfigError(
                f"EROGAKI_ONNX_LAMA_MODEL: {model.path} takes [{shape[2]},{shape[3]}] pictures; "
                "expected a square fixed size (such as 512x512) or both sides dynamic"
            )
        super().__init__(model, side=fh, multiple=LAMA_MULTIPLE, max_batch=cfg.max_batch,
                         margin=margin, hole_grow=hole_grow)  # fmt: skip
        self.cfg = cfg
        self.scale = cfg.output_scale or self._probe()
        log.info("%s: LaMa output in [0, %g]", model.path, self.scale)

    @classmethod
    def load(cls, path: Path, cfg: LamaModel, config: OnnxConfig) -> Lama:
        model = load_any(path, _lama_contracts(cfg), config.provider)
        return cls(model, cfg, config.inpaint_margin, config.inpaint_grow)

    def encode(self, rgb: Image, hole: Mask) -> Feeds:
        gap = hole.astype(np.float32)
        # Planes first, then floats: the cheapest order; the hole's pixels are zeroed.
        planes = np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype(np.float32)
        planes *= (np.float32(1.0) - gap) * np.float32(1.0 / 255.0)
        return {self.cfg.image_input: planes, self.cfg.mask_input: gap[None]}

    def decode(self, outputs: Sequence[NDArray[Any]]) -> FloatArray:
        # One pass: scaled to [0, 255] into a new (writable) array.
        factor = np.float32(255.0 / self.scale)
        pixels: FloatArray = np.multiply(outputs[0].transpose(1, 2, 0), factor, dtype=np.float32)
        return pixels

    def describe(self) -> str:
        return f"LaMa, {self.shape_text()}, output in [0, {self.scale:g}]"

    def _probe(self) -> float:
        """Whether the output's white is 255 or 1: a mid-grey picture comes back at about
        128 or 0.5."""
        side = self.side or 64
        grey = np.full((side, side, 3), 128, np.uint8)
        hole = np.zeros((side, side), bool)
        hole[side // 4 : side // 2, side // 4 : side // 2] = True
        feed = {k: v[None] for k, v in self.encode(grey, hole).items()}
        try:
            (out,) = self.model.run([self.cfg.output], feed)
        except Exception as exc:  # onnxruntime's own exception types are not exported
            raise ConfigError(
                f"EROGAKI_ONNX_LAMA_MODEL: {self.model.path} failed on a {side}x{side} test "
                f"input ({str(exc).strip()[:200]}); expected {self.model.contract.describe()}"
            ) from None
        level = float(np.median(out)) if out.size else float("nan")
        if not np.isfinite(level) or not (0.2 <= level <= 1.5 or 50.0 <= level <= 210.0):
            raise ConfigError(
                f"EROGAKI_ONNX_LAMA_MODEL: {self.model.path} turned a mid-grey test picture "
                f"into values around {level:g}, neither about 0.5 (output in [0, 1]) nor about "
                "128 (output in [0, 255]); set EROGAKI_ONNX_LAMA_OUTPUT_SCALE if it is right"
            )
        return 255.0 if level > 1.5 else 1.0


def _migan_contracts(cfg: MiganModel) -> tuple[Contract, ...]:
    what, setting = "the MI-GAN inpainting model", "EROGAKI_ONNX_MIGAN_MODEL"
    return (
        Contract(
            what=what,
            setting=setting,
            inputs=(TensorSpec(cfg.input, FLOAT, (None, 4, None, None)),),
            outputs=(TensorSpec(cfg.output, FLOAT, (None, 3, None, None)),),
            variant="raw export",
        ),
        Contract(
            what=what,
            setting=setting,
            inputs=(
                TensorSpec(cfg.image_input, UINT8, (None, 3, None, None)),
                TensorSpec(cfg.mask_input, UINT8, (None, 1, None, None)),
            ),
            outputs=(TensorSpec(cfg.result, UINT8, (None, 3, None, None)),),
            variant="pipeline export",
        ),
    )


class Migan(RegionInpainter):
    def __init__(self, model: Model, cfg: MiganModel, margin: int, hole_grow: int) -> None:
        self.cfg = cfg
        self.pipeline = model.contract.variant == "pipeline export"
        side: int | None = None
        if not self.pipeline:
            shape = model.input_shapes[cfg.input]
            fh, fw = fixed(shape[2]), fixed(shape[3])
            if fh != fw:
                raise ConfigError(
                    f"EROGAKI_ONNX_MIGAN_MODEL: {model.path} takes [{shape[2]},{shape[3]}] "
                    "pictures; expected a square fixed size (such as 512x512)"
                )
            side = fh or MIGAN_SIZE
        # The pipeline export resizes internally; it takes the crop as it is.
        super().__init__(model, side=side, multiple=1, max_batch=cfg.max_batch,
                         margin=margin, hole_grow=hole_grow)  # fmt: skip

    @classmethod
    def load(cls, path: Path, cfg: MiganModel, config: OnnxConfig) -> Migan:
        model = load_any(path, _migan_contracts(cfg), config.provider)
        return cls(model, cfg, config.inpaint_margin, config.inpaint_grow)

    def encode(self, rgb: Image, hole: Mask) -> Feeds:
        if self.pipeline:
            return {
                self.cfg.image_input: np.ascontiguousarray(rgb.transpose(2, 0, 1)),
                self.cfg.mask_input: np.where(hole, 0, 255).astype(np.uint8)[None],
            }
        known = (~hole).astype(np.float32)
        planes = np.empty((4, *hole.shape), np.float32)
        np.subtract(known, np.float32(0.5), out=planes[0])
        # (rgb * 2/255 - 1) * known, in two passes over the planes.
        rgb_planes = np.ascontiguousarray(rgb.transpose(2, 0, 1))
        np.multiply(rgb_planes, known * np.float32(2.0 / 255.0), out=planes[1:])
        planes[1:] -= known
        return {self.cfg.input: planes}

    def decode(self, outputs: Sequence[NDArray[Any]]) -> FloatArray:
        planes = outputs[0].transpose(1, 2, 0)
        if self.pipeline:
            return planes.astype(np.float32)
        pixels: FloatArray = np.add(planes, np.float32(1.0), dtype=np.float32)
        pixels *= np.float32(127.5)
        return pixels

    def describe(self) -> str:
        kind = "pipeline export (uint8)" if self.pipeline else "raw export"
        return f"MI-GAN {kind}, {self.shape_text()}"


def load_inpainter(config: OnnxConfig, models_dir: Path) -> Inpainter:
    """The inpainting model ``EROGAKI_ONNX_INPAINTER`` names, loaded and checked."""
    if config.inpainter == "lama":
        return Lama.load(model_path(models_dir, config.lama.file), config.lama, config)
    if config.inpainter == "migan":
        return Migan.load(model_path(models_dir, config.migan.file), config.migan, config)
    path = model_path(models_dir, config.deepcreampy.file)
    return DeepCreamPyInpainter.load(path, config.deepcreampy, config.provider)


__all__ = ["LICENCES", "Box", "Inpainter", "Lama", "Migan", "load_inpainter", "region_box"]
