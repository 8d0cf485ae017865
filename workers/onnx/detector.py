"""hent-AI's detection: bars and mosaics found by an instance-segmentation model.

Two contracts, recognised from the model's inputs and outputs (or forced with
``EROGAKI_ONNX_DETECTOR_KIND``); ``docs/models.md`` has the details:

- **Mask R-CNN** (hent-AI's network, or torchvision's): input ``image``
  float32 ``[1, 3, H, W]``; outputs ``scores`` float32 ``[N]``, ``classes``
  int64 ``[N]``, ``masks`` float32 ``[N, 1, H, W]`` (per-detection
  probabilities at the input's resolution). With H and W fixed the picture is
  letterboxed (centred like matterport's ``resize_image``, or top-left), and
  pixels go in as RGB in [0, 1] or, with ``EROGAKI_ONNX_DETECTOR_PIXELS=mean``,
  as matterport's molded image: RGB in [0, 255] less its mean pixel.
- **YOLO segmentation** (YOLOv8 / YOLO11 ``-seg``): see ``workers.onnx.yolo``.

Class ids or names map to the two kinds by ``EROGAKI_ONNX_DETECTOR_BAR_CLASSES``
and ``EROGAKI_ONNX_DETECTOR_MOSAIC_CLASSES``; names come from the file's
``names`` metadata where it has one.
"""

from __future__ import annotations

import ast
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError
from workers.backend import Image, Mask
from workers.onnx.config import DetectorModel
from workers.onnx.regions import grow
from workers.onnx.sessions import FLOAT, INT64, Contract, Model, TensorSpec, fixed

log = logging.getLogger(__name__)

BAR = "bar"
MOSAIC = "mosaic"
KINDS = (BAR, MOSAIC)
SETTING = "EROGAKI_ONNX_DETECTOR_MODEL"
# matterport's Mask R-CNN config.MEAN_PIXEL (RGB), which hent-AI keeps.
MEAN_PIXEL = np.array([123.7, 116.8, 103.9], np.float32)
# hent-AI's class ids (0 is the background).
MASKRCNN_DEFAULTS = {BAR: ("1",), MOSAIC: ("2",)}
YOLO_DEFAULTS = {BAR: ("bar",), MOSAIC: ("mosaic",)}

FloatArray = NDArray[np.float32]


class Detector(Protocol):
    model: Model
    classes: ClassMap

    def detect(self, rgb: Image, kinds: Collection[str] = KINDS) -> dict[str, Mask]:
        """Merged mask per kind (``bar``, ``mosaic``) found, of ``kinds`` only (a bar job
        does not pay for the mosaics' masks); a kind not found is absent."""
        ...

    def describe(self) -> str: ...


# --- letterboxing --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where a picture of ``shape`` (h, w) sits in a model input of ``size`` (h, w):
    scaled to ``inner`` (h, w) and placed at ``offset`` (y, x)."""

    shape: tuple[int, int]
    size: tuple[int, int]
    inner: tuple[int, int]
    offset: tuple[int, int]

    @classmethod
    def fit(cls, shape: tuple[int, int], size: tuple[int, int], centre: bool) -> Letterbox:
        h, w = shape
        th, tw = size
        scale = min(th / h, tw / w)
        nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
        offset = ((th - nh) // 2, (tw - nw) // 2) if centre else (0, 0)
        return cls(shape, size, (nh, nw), offset)

    def apply(self, rgb: Image, fill: int) -> Image:
        """The picture placed in a canvas of ``fill`` grey."""
        (nh, nw), (oy, ox) = self.inner, self.offset
        canvas = np.full((*self.size, 3), fill, np.uint8)
        if (nh, nw) == rgb.shape[:2]:
            canvas[oy : oy + nh, ox : ox + nw] = rgb
            return canvas
        # Bilinear, as Ultralytics' LetterBox and matterport's resize_image (order 1, no
        # anti-aliasing) do: the models saw such pictures when they were trained.
        canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(
            rgb, (nw, nh), interpolation=cv2.INTER_LINEAR
        )
        return canvas

    def to_image(self, x: float, y: float) -> tuple[float, float]:
        """A point of the model's input, in the picture's coordinates (pixel edges)."""
        (nh, nw), (oy, ox) = self.inner, self.offset
        return (x - ox) * self.shape[1] / nw, (y - oy) * self.shape[0] / nh

    def back(self, plane: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """A map over the whole model input, cut to the picture's part and resized to it."""
        (nh, nw), (oy, ox) = self.inner, self.offset
        part = plane[oy : oy + nh, ox : ox + nw]
        return part if part.shape == self.shape else _resize8(part, self.shape)

    def sampling(self, factor: tuple[float, float]) -> tuple[float, float, float, float]:
        """``(ax, bx, ay, by)``: picture pixel (x, y) has its centre at pixel
        ``(ax * x + bx, ay * y + by)`` of a map ``factor`` (fy, fx) times the input's size."""
        h, w = self.shape
        (nh, nw), (oy, ox) = self.inner, self.offset
        fy, fx = factor
        ax, ay = nw / w * fx, nh / h * fy
        return ax, (0.5 * nw / w + ox) * fx - 0.5, ay, (0.5 * nh / h + oy) * fy - 0.5


def _resize8(plane: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    out = cv2.resize(plane, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.asarray(out, np.uint8)


# --- classes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassMap:
    """The model's class ids that count as each kind, and its class names (if known)."""

    ids: dict[str, frozenset[int]]
    names: dict[int, str]

    def kind_of(self, class_id: int) -> str | None:
        for kind, ids in self.ids.items():
            if class_id in ids:
                return kind
        return None

    def describe(self) -> str:
        parts = []
        for kind in KINDS:
            ids = sorted(self.ids.get(kind, ()))
            shown = ", ".join(f"{i} {self.names[i]!r}" if i in self.names else str(i) for i in ids)
            parts.append(f"{kind}: {shown or 'none'}")
        unused = [f"{i} {n!r}" for i, n in sorted(self.names.items()) if self.kind_of(i) is None]
        if unused:
            parts.append(f"unused: {', '.join(unused)}")
        return "; ".join(parts)


def metadata_names(metadata: Mapping[str, str]) -> dict[int, str]:
    """Class names from the file's ``names`` metadata (Ultralytics writes a dict's repr)."""
    raw = metadata.get("names")
    if not raw:
        return {}
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        log.warning("the detector's metadata 'names' is not readable: %.200s", raw)
        return {}
    if isinstance(value, list):
        value = dict(enumerate(value))
    if not isinstance(value, dict):
        return {}
    return {int(k): str(v) for k, v in value.items() if str(k).isdigit()}


def resolve_classes(
    cfg: DetectorModel,
    names: dict[int, str],
    count: int | None,
    defaults: Mapping[str, tuple[str, ...]],
    path: Path,
) -> ClassMap:
    """Map the configured class names / ids to the model's ids; ``ConfigError`` naming
    what the model has when a configured one is not among them."""
    known = names or ({i: str(i) for i in range(count)} if count else {})
    have = (
        ", ".join(f"{i} {n!r}" for i, n in sorted(names.items()))
        if names
        else (f"ids 0-{count - 1}" if count else "no class names in its metadata")
    )
    by_name = {n.lower(): i for i, n in names.items()}
    ids: dict[str, frozenset[int]] = {}
    for kind, configured, setting in (
        (BAR, cfg.bar_classes, "EROGAKI_ONNX_DETECTOR_BAR_CLASSES"),
        (MOSAIC, cfg.mosaic_classes, "EROGAKI_ONNX_DETECTOR_MOSAIC_CLASSES"),
    ):
        tokens = defaults[kind] if configured is None else configured
        found: set[int] = set()
        for token in tokens:
            if token.isdigit() and (not known or int(token) in known):
                found.add(int(token))
            elif token.lower() in by_name:
                found.add(by_name[token.lower()])
            elif configured is not None:
                raise ConfigError(f"{setting}: {path} has no class {token!r}; its classes: {have}")
        if configured is None and not found:
            log.warning(
                "%s: no class %s for %s (its classes: %s); set %s to find %ss",
                path, " or ".join(repr(t) for t in tokens), kind, have, setting, kind,
            )  # fmt: skip
        ids[kind] = frozenset(found)
    if not any(ids.values()):
        raise ConfigError(
            f"{SETTING}: none of {path}'s classes ({have}) is mapped to bars or mosaics; set "
            "EROGAKI_ONNX_DETECTOR_BAR_CLASSES and/or EROGAKI_ONNX_DETECTOR_MOSAIC_CLASSES"
        )
    overlap = ids[BAR] & ids[MOSAIC]
    if overlap:
        raise ConfigError(
            f"EROGAKI_ONNX_DETECTOR_BAR_CLASSES and EROGAKI_ONNX_DETECTOR_MOSAIC_CLASSES both "
            f"name class {', '.join(map(str, sorted(overlap)))} of {path}"
        )
    return ClassMap(ids, names)


# --- Mask R-CNN ----------------------------------------------------------------------


def maskrcnn_contract(cfg: DetectorModel) -> Contract:
    return Contract(
        what="the hent-AI detection model",
        setting=SETTING,
        inputs=(TensorSpec(cfg.image_input, FLOAT, (1, 3, None, None)),),
        outputs=(
            TensorSpec(cfg.scores_output, FLOAT, (None,)),
            TensorSpec(cfg.classes_output, INT64, (None,)),
            TensorSpec(cfg.masks_output, FLOAT, (None, 1, None, None)),
        ),
        variant="Mask R-CNN",
    )


class MaskRcnnDetector:
    def __init__(self, model: Model, cfg: DetectorModel) -> None:
        self.model = model
        self.cfg = cfg
        shape = model.input_shapes[cfg.image_input]
        self.size: tuple[int, int] | None = None
        fh, fw = fixed(shape[2]), fixed(shape[3])
        if fh is not None and fw is not None:
            self.size = (fh, fw)
        self.classes = resolve_classes(
            cfg, metadata_names(model.metadata), None, MASKRCNN_DEFAULTS, model.path
        )
        log.info("%s: Mask R-CNN classes: %s", model.path, self.classes.describe())
        if not metadata_names(model.metadata):
            # Without names nothing says which ids the network has: hent-AI's reports 1
            # (bar) and 2 (mosaic), 0 is the background, so any other id is most likely a
            # typo that would silently never match.
            odd = sorted(i for ids in self.classes.ids.values() for i in ids if i not in (1, 2))
            if odd:
                log.warning(
                    "%s: class %s configured, but this Mask R-CNN has no class names in its "
                    "metadata and hent-AI's network only reports 1 (bar) and 2 (mosaic); "
                    "unless this export has more classes, %s will never match",
                    model.path, ", ".join(map(str, odd)), "it" if len(odd) == 1 else "they",
                )  # fmt: skip

    def describe(self) -> str:
        size = f"fixed {self.size[1]}x{self.size[0]}" if self.size else "any size"
        box = f", {self.cfg.letterbox} letterbox" if self.size else ""
        pixels = "RGB less mean pixel" if self.cfg.pixels == "mean" else "RGB in [0, 1]"
        return f"Mask R-CNN, {size}{box}, {pixels}; classes {self.classes.describe()}"

    def _tensor(self, rgb: Image) -> tuple[FloatArray, Letterbox | None]:
        box = None
        if self.size is not None and rgb.shape[:2] != self.size:
            box = Letterbox.fit(rgb.shape[:2], self.size, self.cfg.letterbox == "centre")
            # matterport pads with zeros before subtracting the mean pixel.
            rgb = box.apply(rgb, 0)
        # Each plane split off by OpenCV, copied into the tensor as float and shifted or
        # scaled there in place (faster than numpy's mixed-type subtract, the same
        # floats): the model may take the whole picture, and this is its one float copy.
        h, w = rgb.shape[:2]
        tensor: FloatArray = np.empty((1, 3, h, w), np.float32)
        for c, plane in enumerate(cv2.split(rgb)):
            tensor[0, c] = plane
            if self.cfg.pixels == "mean":
                tensor[0, c] -= MEAN_PIXEL[c]
            else:
                tensor[0, c] *= np.float32(1.0 / 255.0)
        return tensor, box

    def detect(self, rgb: Image, kinds: Collection[str] = KINDS) -> dict[str, Mask]:
        h, w = rgb.shape[:2]
        tensor, box = self._tensor(rgb)
        scores, classes, masks = self.model.run(
            [self.cfg.scores_output, self.cfg.classes_output, self.cfg.masks_output],
            {self.cfg.image_input: tensor},
        )
        scores, classes = scores.reshape(-1), classes.reshape(-1)
        fed = tensor.shape[2:]
        merged: dict[str, FloatArray] = {}
        for i in np.flatnonzero(scores >= self.cfg.threshold):
            kind = self.classes.kind_of(int(classes[i]))
            if kind is None or kind not in kinds:
                continue
            prob = masks[i].reshape(masks.shape[-2:]).astype(np.float32, copy=False)
            # Overlapping detections of one kind merge by their largest probability.
            merged[kind] = np.maximum(merged[kind], prob) if kind in merged else prob
        found: dict[str, Mask] = {}
        level = np.float32(self.cfg.mask_threshold)
        for kind, prob in merged.items():
            if prob.shape == (h, w) and box is None:
                found[kind] = prob >= level
                continue
            # Resized as 8-bit levels, several times cheaper than as floats.
            levels = np.rint(np.clip(prob, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
            if levels.shape != fed:
                levels = _resize8(levels, fed)
            if box is not None:
                levels = box.back(levels)
            if levels.shape != (h, w):
                levels = _resize8(levels, (h, w))
            found[kind] = _at_least(levels, float(level * np.float32(255.0)))
        return found


def _at_least(levels: NDArray[np.uint8], threshold: float) -> Mask:
    """``levels >= threshold`` compared as bytes (a float comparison converts every
    level first): a whole level is at least the threshold when it is at least its
    ceiling."""
    whole = math.ceil(threshold)
    if whole <= 0:
        return np.ones(levels.shape, bool)
    if whole > 255:
        return np.zeros(levels.shape, bool)
    out: Mask = levels >= np.uint8(whole)
    return out


# --- loading ---------------------------------------------------------------------------


def load_detector(path: Path, cfg: DetectorModel, provider: str) -> Detector:
    """The detector in ``path``, its contract recognised (or as ``cfg.kind`` says)."""
    from workers.onnx import yolo
    from workers.onnx.sessions import load_any

    contracts: list[Contract] = []
    if cfg.kind in ("auto", "maskrcnn"):
        contracts.append(maskrcnn_contract(cfg))
    if cfg.kind in ("auto", "yolo-seg"):
        contracts.append(yolo.contract(cfg))
    model = load_any(path, contracts, provider)
    if model.contract.variant == "Mask R-CNN":
        return MaskRcnnDetector(model, cfg)
    return yolo.YoloSegDetector(model, cfg)


__all__ = [
    "BAR",
    "KINDS",
    "MOSAIC",
    "ClassMap",
    "Detector",
    "Letterbox",
    "MaskRcnnDetector",
    "grow",
    "load_detector",
    "resolve_classes",
]
