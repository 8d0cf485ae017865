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
from workers.imageops.green import bounds
from workers.onnx.config import LamaModel, MiganModel, OnnxConfig, model_path
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.regions import (
    Components,
    group_bounds,
    group_holes,
    grow,
    meeting,
    resize_window,
    shrink,
    source_window,
)
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
# The most a crop joining several groups spans (any-size LaMa; less where its cap is).
JOIN_SPAN = 2048
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


def join_groups(
    boxes: NDArray[np.int64], shape: tuple[int, int], margin: int, span: int
) -> NDArray[np.int64]:
    """For crops of any size: each group's crop (groups given by their holes' boxes, rows
    of x0, y0, x1, y1). Groups are grouped again (``group_holes``, up to ``span``), and
    a joined crop kept where it holds no more pixels than its groups' own crops: where
    margins overlap (specks all over) a few large crops cost less than many small
    ones; groups far apart keep their own."""
    h, w = shape
    x0s, y0s, x1s, y1s = boxes.T
    joined, count = group_holes((x0s, y0s, x1s, y1s), shape, margin, span)

    def area(a: Any, b: Any, c: Any, d: Any) -> NDArray[np.int64]:
        sides = (np.minimum(c + margin, w) - np.maximum(a - margin, 0),
                 np.minimum(d + margin, h) - np.maximum(b - margin, 0))  # fmt: skip
        found: NDArray[np.int64] = sides[0] * sides[1]
        return found

    apart = np.zeros(count, np.int64)
    np.add.at(apart, joined, area(x0s, y0s, x1s, y1s))
    jx0, jy0, jx1, jy1 = group_bounds(joined, count, (x0s, y0s, x1s, y1s), (h, w))
    keep = area(jx0, jy0, jx1, jy1) <= apart
    # Where joining costs more, each group keeps a crop of its own (numbered after).
    own = ~keep[joined]
    out = joined.astype(np.int64)
    out[own] = count + np.arange(int(own.sum()))
    _, crop_of = np.unique(out, return_inverse=True)
    result: NDArray[np.int64] = crop_of.astype(np.int64).reshape(-1)
    return result


def region_box(
    bbox: tuple[int, int, int, int], width: int, height: int, margin: int, side: int | None
) -> Box:
    """The crop for a hole whose bounding box is ``bbox`` (x0, y0, x1, y1).

    ``side`` None: the box grown by ``margin``, cut at the image's edges. Otherwise a
    square centred on the hole, of side ``side`` or what the hole with its margins (cut
    at the image's edges) spans each way if more, moved inside the image and cut to it
    where the image is smaller: it holds the hole and its margins.
    """
    x0, y0, x1, y1 = bbox
    grown = (max(x0 - margin, 0), max(y0 - margin, 0),
             min(x1 + margin, width), min(y1 + margin, height))  # fmt: skip
    if side is None:
        return Box(*grown)
    want = max(grown[2] - grown[0], grown[3] - grown[1], side)
    bw, bh = min(want, width), min(want, height)
    left = min(max((x0 + x1) // 2 - bw // 2, 0), width - bw)
    top = min(max((y0 + y1) // 2 - bh // 2, 0), height - bh)
    return Box(left, top, left + bw, top + bh)


@dataclass(slots=True)
class _Crop:
    """One or more groups of holes' crop, and how it sits in the model's tensor."""

    parts: list[tuple[int, Box]]  # each group, and its holes' box
    crop: Box
    content: tuple[int, int]  # the crop's height, width inside the model's tensor
    target: tuple[int, int]  # the tensor's height, width
    holes: tuple[int, int, int, int] = (0, 0, 0, 0)  # all holes' box, in the crop


class RegionInpainter:
    """What LaMa and MI-GAN share: holes, crops, batching and the paste.

    Holes are grouped so that each group's holes with their margins span at most
    ``self.span`` pixels each way (``group_holes``), and each group gets one crop: the
    number of crops is bounded by the picture's area, not by the number of holes (a
    thousand specks are a handful of model runs, not a thousand). Groups go through the
    model a few at a time (``CHUNK_PIXELS``), so the tensors held at once are bounded
    too.
    """

    what = ""
    # Model-input pixels held at once (besides one crop that is larger on its own).
    CHUNK_PIXELS = 8 * 512 * 512

    def __init__(self, model: Model, *, side: int | None, multiple: int, max_batch: int,
                 margin: int, hole_grow: int, max_side: int | None = None) -> None:  # fmt: skip
        self.model = model
        self.side = side
        self.multiple = multiple
        self.margin = margin
        self.hole_grow = hole_grow
        self.max_side = max_side
        first = model.contract.inputs[0].name
        self.batch = 1 if fixed(model.input_shapes[first][0]) is not None else max_batch
        # Holes within one tile share a crop that still fits a fixed-size model at native
        # resolution (512 - 2 * 128 = 256); any-size models use twice the margin, so a
        # group's crop is at most about twice as wide as its holes' own context.
        inner = (side or 0) - 2 * margin
        self.tile = inner if inner >= 64 else max(2 * margin, 64)
        # The most a group's holes with their margins may span (side to side, cut at the
        # picture's edges): a fixed-size model's square.
        self.span = self.tile + 2 * margin
        # The most a crop joining several groups may span (None: groups are not joined).
        # Only for a model that takes the crop as it is: MI-GAN's pipeline export
        # resizes a box around all of its holes to its own 512, so joined groups would be
        # filled at a fraction of their resolution.
        self.join: int | None = None

    # Per model: tensors for a few crops of one size, one crop's tensors written in
    # place, and one crop's output back as pixels.
    def tensors(self, count: int, size: tuple[int, int]) -> Feeds:
        """Uninitialised input tensors for ``count`` crops of ``size`` (h, w)."""
        raise NotImplementedError

    def encode_into(
        self, feeds: Feeds, index: int, rgb: Image, hole: Mask, box: tuple[int, int, int, int]
    ) -> None:
        """Crop ``index``'s tensors in ``feeds`` from its pixels and hole at model size;
        ``box`` (x0, y0, x1, y1): the hole's bounding box, the only place it is
        looked at."""
        raise NotImplementedError

    def encode(self, rgb: Image, hole: Mask) -> Feeds:
        """One crop's tensors, without the batch axis, in new arrays."""
        feeds = self.tensors(1, hole.shape)
        self.encode_into(feeds, 0, rgb, hole, bounds(hole) or (0, 0, 0, 0))
        return {k: v[0] for k, v in feeds.items()}

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
        ox, oy = regions.box[:2]
        stats = regions.stats[1 : regions.count, :4].astype(np.int64)
        x0s, y0s = stats[:, 0] + ox, stats[:, 1] + oy
        x1s, y1s = x0s + stats[:, 2], y0s + stats[:, 3]
        group_of, count = group_holes((x0s, y0s, x1s, y1s), (h, w), self.margin, self.span)
        gx0, gy0, gx1, gy1 = group_bounds(group_of, count, (x0s, y0s, x1s, y1s), (h, w))
        boxes = np.stack([gx0, gy0, gx1, gy1], axis=1)
        # Groups sharing a crop (any-size LaMa: where their margins overlap); each
        # group is still pasted from its own box.
        crop_of = np.arange(count)
        if self.join is not None and count > 1:
            crop_of = join_groups(boxes, (h, w), self.margin, self.join)
        # Region label -> group (label 0, the background, to none).
        lookup = np.concatenate([[-1], group_of]).astype(np.int32)
        # Whether any other group's hole meets a group's box (else every masked pixel in
        # the box is the group's own).
        holes = (x0s, y0s, x1s, y1s)
        foreign = np.zeros(count, bool)
        for g, r in meeting(holes, group_of, boxes, boxes):
            foreign[g[group_of[r] != g]] = True

        crops = []
        for members in np.split(np.argsort(crop_of, kind="stable"),
                                np.flatnonzero(np.diff(np.sort(crop_of))) + 1):  # fmt: skip
            parts = [(int(g), Box(*(int(v) for v in boxes[g]))) for g in members]
            joint = boxes[members]
            union = (int(joint[:, 0].min()), int(joint[:, 1].min()),
                     int(joint[:, 2].max()), int(joint[:, 3].max()))  # fmt: skip
            crop = region_box(union, w, h, self.margin, self.side)
            content, target = self._fit(crop.y1 - crop.y0, crop.x1 - crop.x0)
            crops.append(_Crop(parts, crop, content, target))
        # Each crop's holes' box inside it (the regions' boxes, cut to the crop): where the
        # crop reaches the model unresized, no pass over its hole is needed to find it.
        corners = np.array([c.crop.corners for c in crops], np.int64).reshape(-1, 4)
        far = np.iinfo(np.int64).max
        hx0, hy0 = np.full(len(crops), far), np.full(len(crops), far)
        hx1, hy1 = np.zeros(len(crops), np.int64), np.zeros(len(crops), np.int64)
        for met, r in meeting(holes, group_of, boxes, corners):
            # Sorted by crop: each crop's run reduced at once.
            at = np.flatnonzero(np.diff(met, prepend=-1))
            which = met[at]
            for ends, values, op in ((hx0, x0s, np.minimum), (hy0, y0s, np.minimum),
                                     (hx1, x1s, np.maximum), (hy1, y1s, np.maximum)):  # fmt: skip
                ends[which] = op(ends[which], op.reduceat(values[r], at))
        for c, item in enumerate(crops):
            x0, y0, x1, y1 = item.crop.corners
            item.holes = (max(int(hx0[c]), x0) - x0, max(int(hy0[c]), y0) - y0,
                          min(int(hx1[c]), x1) - x0, min(int(hy1[c]), y1) - y0)  # fmt: skip
        # Crops of one tensor size go through the model together, up to the batch size
        # and CHUNK_PIXELS, each written straight into the chunk's tensors; the tensors
        # serve chunk after chunk while the size stays (no stacking, no new pages).
        crops.sort(key=lambda c: c.target)
        names = [spec.name for spec in self.model.contract.outputs]
        key: tuple[int, int, int] | None = None
        feeds: Feeds = {}
        start = 0
        while start < len(crops):
            target = crops[start].target
            most = min(self.batch, max(self.CHUNK_PIXELS // (target[0] * target[1]), 1))
            stop = start + 1
            while stop < len(crops) and stop - start < most and crops[stop].target == target:
                stop += 1
            chunk = crops[start:stop]
            if key != (len(chunk), *target):
                key = (len(chunk), *target)
                feeds = self.tensors(len(chunk), target)
            for i, item in enumerate(chunk):
                ys, xs = item.crop.slices
                pixels, gap = self._to_model(rgb[ys, xs], hole[ys, xs], item.content, item.target)
                size = (item.crop.y1 - item.crop.y0, item.crop.x1 - item.crop.x0)
                if item.content == size:
                    x0, y0, x1, y1 = item.holes
                    # A hole at the crop's far edges reaches into the replicated padding.
                    x1 = item.target[1] if x1 == size[1] else x1
                    y1 = item.target[0] if y1 == size[0] else y1
                    box = (x0, y0, x1, y1)
                else:  # OpenCV's bounding box of the resized hole
                    bx, by, bw, bh = cv2.boundingRect(gap.view(np.uint8))
                    box = (bx, by, bx + bw, by + bh)
                self.encode_into(feeds, i, pixels, gap, box)
            ran = self.model.run(names, feeds)
            for i, item in enumerate(chunk):
                crop = item.crop
                size = (crop.y1 - crop.y0, crop.x1 - crop.x0)
                for group, bbox in item.parts:
                    ys, xs = bbox.slices
                    region = mask[ys, xs]
                    if foreign[group]:
                        # Another group's holes reach into the box: only this group's.
                        labels = regions.labels[ys.start - oy : ys.stop - oy,
                                                xs.start - ox : xs.stop - ox]  # fmt: skip
                        region = (lookup[labels] == group) & region
                    if item.content == size:
                        # Specks in a box of context: only their own pixels decoded.
                        points = _sparse(region)
                        if points is not None:
                            px, py = points
                            cx, cy = px + (bbox.x0 - crop.x0), py + (bbox.y0 - crop.y0)
                            taken = [r[i][:, cy, cx][..., None] for r in ran]
                            out[py + bbox.y0, px + bbox.x0] = _rounded(self.decode(taken))[:, 0]
                            continue
                    # Only each group's own box is touched: the cost follows the holes.
                    window = (bbox.x0 - crop.x0, bbox.y0 - crop.y0,
                              bbox.x1 - crop.x0, bbox.y1 - crop.y0)  # fmt: skip
                    inner = self._from_model([r[i] for r in ran], size, window, item.content)
                    # A masked copy in OpenCV: numpy's boolean indexing is several times
                    # slower.
                    cv2.copyTo(inner, region.view(np.uint8), out[ys, xs])
            start = stop
        return out

    def _fit(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """For a crop of h x w: its size inside the model's tensor, and the tensor's."""
        if self.side is not None:
            # Shrunk (never stretched) to fit the model's square, then padded to it.
            scale = min(1.0, self.side / max(h, w))
            content = (h, w) if scale == 1.0 else (
                min(max(round(h * scale), 1), self.side), min(max(round(w * scale), 1), self.side)
            )  # fmt: skip
            return content, (self.side, self.side)
        m = self.multiple
        scale = 1.0 if not self.max_side else min(1.0, self.max_side / max(h, w))
        if scale == 1.0:
            content = (h, w)
        else:
            # Shrunk to the cap, each side a multiple of the model's step.
            content = (max(int(h * scale) // m * m, m), max(int(w * scale) // m * m, m))
        return content, (-(-content[0] // m) * m, -(-content[1] // m) * m)

    def _to_model(
        self, rgb: Image, hole: Mask, content: tuple[int, int], target: tuple[int, int]
    ) -> tuple[Image, Mask]:
        """A crop and its hole resized to ``content`` (h, w) and padded to ``target``."""
        h, w = hole.shape
        ch, cw = content
        if (ch, cw) != (h, w):
            # A resized pixel that saw any of the hole is hole: what was there (green) must
            # not pass for context.
            if ch <= h and cw <= w:
                rgb, hole = shrink(rgb, hole, content)
            else:
                rgb = np.asarray(
                    cv2.resize(rgb, (cw, ch), interpolation=cv2.INTER_LINEAR), np.uint8
                )
                share = cv2.resize(
                    hole.view(np.uint8) * np.uint8(255), (cw, ch), interpolation=cv2.INTER_LINEAR
                )
                hole = np.asarray(share) > 0
        pad_y, pad_x = target[0] - ch, target[1] - cw
        if pad_y or pad_x:
            # Replicated for both: a hole at the edge stays hole in the padding.
            rgb = np.asarray(cv2.copyMakeBorder(rgb, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE))
            hole = cv2.copyMakeBorder(hole.view(np.uint8), 0, pad_y, 0, pad_x,
                                      cv2.BORDER_REPLICATE).view(bool)  # fmt: skip
        return rgb, hole

    def _from_model(
        self,
        outputs: Sequence[NDArray[Any]],
        size: tuple[int, int],
        window: tuple[int, int, int, int],
        content: tuple[int, int],
    ) -> Image:
        """One crop's model outputs (channels first) as the crop's pixels (``size``: its
        height, width) in ``window`` (x0, y0, x1, y1 of the crop); ``content``: the
        crop's size in the outputs, padding excluded. Only the outputs under the window
        (and its resampling's reach) are decoded: the holes' box is often a small part
        of the crop and its context."""
        part = source_window(content, size, window)
        x0, y0, x1, y1 = part
        pixels = _rounded(self.decode([o[..., y0:y1, x0:x1] for o in outputs]))
        # Rounded at the model's size first: resizing 8-bit pixels is several times
        # cheaper, and a bicubic overshoot saturates.
        return resize_window(pixels, size, window, part, content)


def _sparse(region: Mask) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """The (x, y) of a region's pixels in its box where they are under a sixteenth of
    it (then reading the model's output at them costs less than decoding the box), else
    None."""
    if cv2.countNonZero(region.view(np.uint8)) * 16 >= region.size:
        return None
    points = np.asarray(cv2.findNonZero(region.view(np.uint8))).reshape(-1, 2)
    return points[:, 0].astype(np.intp), points[:, 1].astype(np.intp)


def _most_of(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """Whether the box (x0, y0, x1, y1) covers over a quarter of a crop of ``shape``:
    then a pass over the crop costs less than fixing the box after one."""
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0) * 4 > shape[0] * shape[1]


def _rounded(pixels: FloatArray) -> Image:
    """RGB in [0, 255] (float, this call's own array) as 8-bit: clipped, then rounded
    half up, in place; interleaved (height, width, channel in memory order)."""
    np.clip(pixels, 0.0, 255.0, out=pixels)
    pixels += np.float32(0.5)
    out: Image = pixels.astype(np.uint8)
    if out.ndim == 3 and out.strides[-1] != 1:
        # Planes (a model's channels first): interleaved by OpenCV, which would otherwise
        # copy them at every resize and paste.
        out = np.asarray(cv2.merge([out[..., c] for c in range(out.shape[2])]), np.uint8)
    return out


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
                         margin=margin, hole_grow=hole_grow, max_side=cfg.max_side)  # fmt: skip
        self.cfg = cfg
        if self.side is None:  # LaMa is convolutional: a crop is filled as it is
            self.join = min(cfg.max_side or JOIN_SPAN, JOIN_SPAN)
        self.scale = cfg.output_scale or self._probe()
        log.info("%s: LaMa output in [0, %g]", model.path, self.scale)

    @classmethod
    def load(cls, path: Path, cfg: LamaModel, config: OnnxConfig) -> Lama:
        model = load_any(path, _lama_contracts(cfg), config.provider)
        return cls(model, cfg, config.inpaint_margin, config.inpaint_grow)

    def tensors(self, count: int, size: tuple[int, int]) -> Feeds:
        return {self.cfg.image_input: np.empty((count, 3, *size), np.float32),
                self.cfg.mask_input: np.empty((count, 1, *size), np.float32)}  # fmt: skip

    def encode_into(
        self, feeds: Feeds, index: int, rgb: Image, hole: Mask, box: tuple[int, int, int, int]
    ) -> None:
        # Each plane split off by OpenCV and scaled to [0, 1] in one pass; the hole's
        # pixels zeroed inside its box (times 0, the rest times 1).
        image = feeds[self.cfg.image_input][index]
        gap = feeds[self.cfg.mask_input][index, 0]
        np.copyto(gap, hole)
        x0, y0, x1, y1 = box
        if _most_of(box, hole.shape):  # specks all over: one product per plane
            scale = np.subtract(np.float32(1.0), gap)
            scale *= np.float32(1.0 / 255.0)
            for c, plane in enumerate(cv2.split(rgb)):
                np.multiply(plane, scale, out=image[c], dtype=np.float32)
            return
        keep = np.subtract(np.float32(1.0), gap[y0:y1, x0:x1])
        for c, plane in enumerate(cv2.split(rgb)):
            np.multiply(plane, np.float32(1.0 / 255.0), out=image[c], dtype=np.float32)
            image[c, y0:y1, x0:x1] *= keep

    def decode(self, outputs: Sequence[NDArray[Any]]) -> FloatArray:
        # One pass: scaled to [0, 255] into a new (writable) array.
        factor = np.float32(255.0 / self.scale)
        pixels: FloatArray = np.multiply(outputs[0].transpose(1, 2, 0), factor, dtype=np.float32)
        return pixels

    def describe(self) -> str:
        cap = f", crops shrunk to {self.max_side} px" if self.side is None else ""
        return f"LaMa, {self.shape_text()}, output in [0, {self.scale:g}]{cap}"

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

    def tensors(self, count: int, size: tuple[int, int]) -> Feeds:
        if self.pipeline:
            return {self.cfg.image_input: np.empty((count, 3, *size), np.uint8),
                    self.cfg.mask_input: np.empty((count, 1, *size), np.uint8)}  # fmt: skip
        return {self.cfg.input: np.empty((count, 4, *size), np.float32)}

    def encode_into(
        self, feeds: Feeds, index: int, rgb: Image, hole: Mask, box: tuple[int, int, int, int]
    ) -> None:
        if self.pipeline:
            image = feeds[self.cfg.image_input][index]
            planes = cv2.split(rgb, mv=list(image))  # straight into the tensor's planes
            if not np.may_share_memory(planes[0], image):  # OpenCV made new ones
                image[...] = np.stack(planes)
            # 255 to keep, 0 to fill.
            np.multiply(
                np.logical_not(hole), np.uint8(255), out=feeds[self.cfg.mask_input][index, 0]
            )
            return
        # (known - 0.5, (rgb * 2/255 - 1) * known): each plane in two passes, the hole
        # set to 0 inside its box.
        planes = feeds[self.cfg.input][index]
        np.subtract(np.float32(0.5), hole, out=planes[0], dtype=np.float32)
        x0, y0, x1, y1 = box
        if _most_of(box, hole.shape):  # specks all over: the formula over the crop
            known = np.add(planes[0], np.float32(0.5))
            scale = known * np.float32(2.0 / 255.0)
            for c, plane in enumerate(cv2.split(rgb), 1):
                np.multiply(plane, scale, out=planes[c], dtype=np.float32)
                planes[c] -= known
            return
        keep = np.logical_not(hole[y0:y1, x0:x1]).astype(np.float32)
        for c, plane in enumerate(cv2.split(rgb), 1):
            np.multiply(plane, np.float32(2.0 / 255.0), out=planes[c], dtype=np.float32)
            planes[c] -= np.float32(1.0)
            planes[c, y0:y1, x0:x1] *= keep  # the hole at 0 (signed: +0 or -0)

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
