"""DeepCreamPy's bar inpainting, run through the ONNX export of its v2 bar model.

The region handling follows DeepCreamPy's own ``decensor.py``: each connected
green region gets a square crop 1.5 times its size (at least 256 px, at most
the image's short side, kept inside the image), the crop is resized to the
model's 256x256, the hole is zeroed, and the prediction is resized back; only
the region's own pixels are pasted. Value ranges are those of the public ONNX
port: image in [-1, 1] (hole pixels -1), mask 1 where known and 0 in the hole,
on all three channels, and the output in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.backend import Image, Mask
from workers.onnx.config import DeepCreamPyModel
from workers.onnx.regions import (
    Components,
    group_bounds,
    group_holes,
    meeting,
    resize_window,
    shrink,
    source_window,
)
from workers.onnx.sessions import FLOAT, Contract, Model, TensorSpec, fixed, load

SIZE = 256
EXPAND = 1.5
# Every region lies in its group's crops (a group longer than the image's short side
# has several), so one pass fills the mask; later passes are a safeguard.
MAX_PASSES = 16
# Regions whose boxes centre in one such square share a crop: a group of them spans
# about this much, so its crop (1.5 times, at least 256) stays at the model's size.
GROUP_TILE = SIZE * 2 // 3
GROUP_MARGIN = (SIZE - GROUP_TILE + 1) // 2

FloatArray = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Crop:
    """A square window ``[top:top+size, left:left+size]`` of the image."""

    left: int
    top: int
    size: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.size), slice(self.left, self.left + self.size)


def crop_for(bbox: tuple[int, int, int, int], width: int, height: int) -> Crop:
    """The crop around a region whose bounding box is ``(x0, y0, x1, y1)`` (exclusive end)."""
    x0, y0, x1, y1 = bbox
    side = int(max(x1 - x0, y1 - y0) * EXPAND)
    side = min(max(side, SIZE), width, height)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    left = min(max(cx - side // 2, 0), width - side)
    top = min(max(cy - side // 2, 0), height - side)
    return Crop(left, top, side)


def contract(cfg: DeepCreamPyModel) -> Contract:
    image = (1, SIZE, SIZE, 3)
    return Contract(
        what="the DeepCreamPy bar model",
        setting="EROGAKI_ONNX_DEEPCREAMPY_MODEL",
        inputs=(
            TensorSpec(cfg.image_input, FLOAT, image),
            TensorSpec(cfg.image2_input, FLOAT, image),
            TensorSpec(cfg.mask_input, FLOAT, image),
        ),
        outputs=(TensorSpec(cfg.output, FLOAT, image),),
    )


class DeepCreamPyInpainter:
    def __init__(self, model: Model, cfg: DeepCreamPyModel) -> None:
        self.model = model
        self.cfg = cfg
        # The published port fixes the batch at 1; an export with a dynamic batch runs
        # all of an image's regions in one call.
        batch_dim = model.input_shapes[cfg.image_input][0]
        self.batch = 1 if fixed(batch_dim) is not None else cfg.max_batch

    @classmethod
    def load(cls, path: Path, cfg: DeepCreamPyModel, provider: str) -> DeepCreamPyInpainter:
        return cls(load(path, contract(cfg), provider), cfg)

    def describe(self) -> str:
        batch = "batch 1" if self.batch == 1 else f"dynamic batch (up to {self.batch})"
        return f"DeepCreamPy v2 bar model, fixed {SIZE}x{SIZE} NHWC, {batch}"

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        out = rgb.copy()
        remaining = mask.copy()
        h, w = mask.shape
        for _ in range(MAX_PASSES):
            if not remaining.any():
                break
            regions = Components(remaining, connectivity=4)
            ox, oy = regions.box[:2]
            groups = _groups(regions, w, h)
            lookup = np.concatenate([[-1], groups.of]).astype(np.int32)
            foreign = _foreign(regions, groups)
            # A few crops at a time: a speckled picture has thousands of regions, and all
            # their tensors at once once took gigabytes. The batch's tensors are written
            # in place and serve batch after batch.
            tensors: tuple[FloatArray, FloatArray] | None = None
            jobs = [(g, box, crop_for(aim, w, h)) for g, (box, aims) in enumerate(
                zip(groups.boxes, groups.aims, strict=True)) for aim in aims]  # fmt: skip
            for start in range(0, len(jobs), self.batch):
                chunk = jobs[start : start + self.batch]
                if tensors is None or len(tensors[0]) != len(chunk):
                    shape = (len(chunk), SIZE, SIZE, 3)
                    tensors = np.empty(shape, np.float32), np.empty(shape, np.float32)
                images, knowns = tensors
                for i, (_, _, crop) in enumerate(chunk):
                    _prepare(out, remaining, crop, images[i], knowns[i])
                for (g, (x, y, rx1, ry1), crop), pred in zip(
                    chunk, self._predict(images, knowns), strict=True
                ):
                    # Only the part of the group inside its crop, within the group's box.
                    x0, y0 = max(x, crop.left), max(y, crop.top)
                    x1, y1 = min(rx1, crop.left + crop.size), min(ry1, crop.top + crop.size)
                    left = remaining[y0:y1, x0:x1]
                    if foreign[g]:
                        labels = regions.labels[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
                        # (Still to fill: another crop of a long group may have been.)
                        region = (lookup[labels] == g) & left
                    else:  # every region in the group's box is the group's own
                        region = left.copy()
                    points = _sparse(region) if crop.size == SIZE else None
                    if points is not None:
                        # Specks: the model's output read at their own pixels only.
                        px, py = points
                        values = pred[py + (y0 - crop.top), px + (x0 - crop.left)]
                        out[py + y0, px + x0] = _to_pixels(values)
                    else:
                        window = (x0 - crop.left, y0 - crop.top, x1 - crop.left, y1 - crop.top)
                        part = _finish(pred, crop.size, window)
                        # Masked copies in OpenCV: numpy's boolean indexing is slower.
                        cv2.copyTo(part, region.view(np.uint8), out[y0:y1, x0:x1])
                    np.logical_and(left, ~region, out=left)
        return out

    def _predict(self, images: FloatArray, knowns: FloatArray) -> list[FloatArray]:
        results: list[FloatArray] = []
        for start in range(0, len(images), self.batch):
            part = images[start : start + self.batch]
            (pred,) = self.model.run(
                [self.cfg.output],
                {
                    self.cfg.image_input: part,
                    self.cfg.image2_input: part,
                    self.cfg.mask_input: knowns[start : start + self.batch],
                },
            )
            # The model's own new array: finished in place.
            results.extend(np.asarray(pred, np.float32))
        return results


@dataclass(frozen=True, slots=True)
class _Groups:
    of: NDArray[np.int64]  # each region's group (region label - 1)
    boxes: list[tuple[int, int, int, int]]  # each group's box (x0, y0, x1, y1)
    aims: list[list[tuple[int, int, int, int]]]  # the boxes its crops are centred on


def _groups(regions: Components, width: int, height: int) -> _Groups:
    """Regions grouped so that each group spans at most ``GROUP_TILE`` each way (unless
    one region alone spans more): small regions close together share one crop (still
    the model's native 256 px), so the number of crops follows the masked area, not the
    number of regions.

    A group spanning more than the picture's short side is not held by one crop (a
    square at most that side): its box is cut along its length into pieces that long,
    each with a crop of its own, so that one pass fills it (a crop centred on it filled
    its middle, and each later pass the middles of what was left at its ends: a bar
    across a thin picture, 8 x 3000, was still green after 16 passes)."""
    ox, oy = regions.box[:2]
    stats = regions.stats[1 : regions.count, :5].astype(np.int64)
    x0s, y0s = stats[:, 0] + ox, stats[:, 1] + oy
    x1s, y1s = x0s + stats[:, 2], y0s + stats[:, 3]
    # As many regions per group as span GROUP_TILE (rows, then runs along each row), so
    # that each group's crop is the model's own size; the picture's edges give no room
    # (crop_for sizes a crop by its group alone), so the boxes are moved far from them.
    far = 2**40
    moved = (x0s + far, y0s + far, x1s + far, y1s + far)
    of, count = group_holes(moved, (4 * far, 4 * far), GROUP_MARGIN, SIZE)
    big = int(np.iinfo(np.int64).max)
    gx0, gy0, gx1, gy1 = group_bounds(of, count, (x0s, y0s, x1s, y1s), (big, big))
    corners = zip(gx0, gy0, gx1, gy1, strict=True)
    boxes = [(int(a), int(b), int(c), int(d)) for a, b, c, d in corners]
    aims = [[box] for box in boxes]
    side = min(width, height)
    for g in np.flatnonzero(np.maximum(gx1 - gx0, gy1 - gy0) > side).tolist():
        x0, y0, x1, y1 = boxes[g]
        if x1 - x0 > side:  # then the picture's height is its short side
            aims[g] = [(a, y0, min(a + side, x1), y1) for a in range(x0, x1, side)]
        else:
            aims[g] = [(x0, a, x1, min(a + side, y1)) for a in range(y0, y1, side)]
    return _Groups(of, boxes, aims)


# The model's image for each 8-bit value outside the hole: x / 255 * 2 - 1, in float32 as
# (x * (1/255)) * 2 - 1 (the doubling is exact).
_TO_MODEL = (np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)) * np.float32(2.0)
_TO_MODEL -= np.float32(1.0)
# The mask for 0 (hole) and 1 (known).
_KNOWN = np.zeros(256, np.float32)
_KNOWN[1] = 1.0


def _prepare(rgb: Image, hole: Mask, crop: Crop, image: FloatArray, known: FloatArray) -> None:
    """The model's image (in [-1, 1], hole at -1) and mask (1 known, 0 hole) for a crop,
    written into ``image`` and ``known`` (SIZE x SIZE x 3 each)."""
    ys, xs = crop.slices
    pixels = rgb[ys, xs]
    gap = hole[ys, xs]
    if crop.size > SIZE:
        # Resized as 8-bit pixels, several times cheaper than as floats. A resized pixel
        # that saw any of the hole is part of the hole: the green that was there would
        # otherwise pass for known context.
        pixels, gap = shrink(pixels, gap, (SIZE, SIZE))
    elif crop.size < SIZE:  # a picture smaller than the model: enlarged
        pixels = np.asarray(
            cv2.resize(pixels, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR), np.uint8
        )
        share = cv2.resize(
            gap.view(np.uint8) * np.uint8(255), (SIZE, SIZE), interpolation=cv2.INTER_LINEAR
        )
        gap = np.asarray(share) > 0
    # The hole's pixels zeroed (the table gives them -1), then one table look-up per
    # value for the image and for the mask.
    keep = np.logical_not(gap).view(np.uint8)
    _lookup(cv2.bitwise_and(pixels, pixels, mask=keep), _TO_MODEL, image)
    _lookup(cv2.merge((keep, keep, keep)), _KNOWN, known)


def _lookup(values: NDArray[Any], table: FloatArray, target: FloatArray) -> None:
    """``table`` looked up for ``values``, into ``target``: by OpenCV in place where its
    layout allows (a batch's tensor), else copied in."""
    if target.flags.c_contiguous:
        result: NDArray[Any] = cv2.LUT(values, table, dst=target)
    else:
        result = cv2.LUT(values, table)
    if not np.may_share_memory(result, target):
        target[...] = result


def _foreign(regions: Components, groups: _Groups) -> NDArray[np.bool_]:
    """Per group, whether another group's region meets its box."""
    ox, oy = regions.box[:2]
    stats = regions.stats[1 : regions.count, :4].astype(np.int64)
    x0s, y0s = stats[:, 0] + ox, stats[:, 1] + oy
    x1s, y1s = x0s + stats[:, 2], y0s + stats[:, 3]
    boxes = np.array(groups.boxes, np.int64).reshape(-1, 4)
    found: NDArray[np.bool_] = np.zeros(len(boxes), bool)
    for g, r in meeting((x0s, y0s, x1s, y1s), groups.of, boxes, boxes):
        found[g[groups.of[r] != g]] = True
    return found


def _sparse(region: Mask) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """The (x, y) of a region's pixels in its box where they are under a sixteenth of
    it (reading the output at them then costs less than finishing the box), else None."""
    if cv2.countNonZero(region.view(np.uint8)) * 16 >= region.size:
        return None
    points = np.asarray(cv2.findNonZero(region.view(np.uint8))).reshape(-1, 2)
    return points[:, 0].astype(np.intp), points[:, 1].astype(np.intp)


def _to_pixels(values: FloatArray) -> Image:
    """The model's [-1, 1] output values (a new array of them) as 8-bit pixels, as
    ``_finish`` makes them."""
    values += np.float32(1.0)
    values *= np.float32(127.5)
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    out: Image = values.astype(np.uint8)
    return out


def _finish(pred: FloatArray, size: int, window: tuple[int, int, int, int]) -> Image:
    """The model's [-1, 1] output as 8-bit pixels of the crop (``size`` square), in
    ``window`` (x0, y0, x1, y1 of the crop). Only the output under the window (and its
    resampling's reach) is converted."""
    part = source_window((SIZE, SIZE), (size, size), window)
    x0, y0, x1, y1 = part
    values = pred[y0:y1, x0:x1]
    values += np.float32(1.0)
    values *= np.float32(127.5)
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    out: Image = values.astype(np.uint8)
    # Rounded first: resizing 8-bit pixels is cheaper, and a bicubic overshoot saturates.
    return resize_window(out, (size, size), window, part, (SIZE, SIZE))
