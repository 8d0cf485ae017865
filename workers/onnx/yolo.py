"""YOLO segmentation exports (YOLOv8 / YOLO11 ``-seg``) as the hent-AI worker's detector.

Contract, as Ultralytics exports it:

- input ``images`` float32 ``[1, 3, H, W]`` (640x640 usually, or dynamic: then
  ``EROGAKI_ONNX_YOLO_SIZE`` square), RGB in [0, 1], the picture letterboxed
  **centred** on grey 114;
- ``output1`` float32 ``[1, 32, H/4, W/4]``: the mask prototypes;
- ``output0`` float32, either raw ``[1, 4 + nc + 32, A]`` (per anchor: box
  centre x, y, width, height in input pixels, nc class scores, 32 mask
  coefficients), or, exported with ``nms=True``, ``[1, max_det, 6 + 32]``
  (x1, y1, x2, y2, score, class, coefficients), already suppressed.

Post-processing (here, in numpy): best class per anchor, score threshold,
class-aware non-maximum suppression (raw exports only), then per detection
``sigmoid(coefficients . prototypes)``, sampled at the picture's own pixels
inside the detection's box, over ``EROGAKI_ONNX_MASK_THRESHOLD`` (0.5).
Class names come from the file's ``names`` metadata.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection

import cv2
import numpy as np
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError
from workers.backend import Image, Mask
from workers.onnx.config import DetectorModel
from workers.onnx.detector import (
    KINDS,
    SETTING,
    YOLO_DEFAULTS,
    Letterbox,
    metadata_names,
    resolve_classes,
)
from workers.onnx.sessions import FLOAT, Contract, Model, TensorSpec, fixed

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]
COEFFICIENTS = 32
GREY = 114
# Ultralytics' limits: candidates into NMS, detections out of it.
MAX_CANDIDATES = 30000
MAX_DETECTIONS = 300
# Class ids a YOLO export may name (the largest public label sets have a few thousand).
MAX_CLASSES = 10000
# Offsets boxes per class so one NMS pass never suppresses across classes.
CLASS_OFFSET = 7680.0


def contract(cfg: DetectorModel) -> Contract:
    return Contract(
        what="the hent-AI detection model",
        setting=SETTING,
        inputs=(TensorSpec(cfg.yolo_input, FLOAT, (1, 3, None, None)),),
        outputs=(
            TensorSpec(cfg.yolo_output, FLOAT, (1, None, None)),
            TensorSpec(cfg.yolo_protos, FLOAT, (1, COEFFICIENTS, None, None)),
        ),
        variant="YOLO-seg",
    )


class YoloSegDetector:
    def __init__(self, model: Model, cfg: DetectorModel) -> None:
        self.model = model
        self.cfg = cfg
        shape = model.input_shapes[cfg.yolo_input]
        fh, fw = fixed(shape[2]), fixed(shape[3])
        self.fixed_size = fh is not None and fw is not None
        side = cfg.yolo_size
        self.size = (fh, fw) if fh is not None and fw is not None else (side, side)
        names = metadata_names(model.metadata)
        self.nms, count = self._probe(names)
        self.count = count
        self.classes = resolve_classes(cfg, names, count, YOLO_DEFAULTS, model.path)
        log.info(
            "%s: YOLO-seg %s export, classes: %s",
            model.path, "nms=True" if self.nms else "raw", self.classes.describe(),
        )  # fmt: skip
        # Which class ids count, as a lookup table over every id the model can report.
        mapped = sorted(set().union(*self.classes.ids.values()))
        self.wanted = np.zeros(max([count or 0, *(i + 1 for i in mapped)]), bool)
        self.wanted[mapped] = True

    def describe(self) -> str:
        size = f"{self.size[1]}x{self.size[0]}" + ("" if self.fixed_size else " (dynamic)")
        export = "nms=True export" if self.nms else "raw export"
        return f"YOLO-seg {export}, {size}; classes {self.classes.describe()}"

    def _run(self, canvas: Image) -> tuple[FloatArray, FloatArray]:
        tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]).astype(np.float32)
        tensor *= np.float32(1.0 / 255.0)
        out, protos = self.model.run(
            [self.cfg.yolo_output, self.cfg.yolo_protos], {self.cfg.yolo_input: tensor}
        )
        return out.astype(np.float32, copy=False), protos.astype(np.float32, copy=False)

    def _probe(self, names: dict[int, str]) -> tuple[bool, int | None]:
        """Raw or ``nms=True`` export, and the class count, from a run on a grey input."""
        try:
            out, protos = self._run(np.full((*self.size, 3), GREY, np.uint8))
        except Exception as exc:  # onnxruntime's own exception types are not exported
            raise ConfigError(
                f"{SETTING}: {self.model.path} failed on a {self.size[1]}x{self.size[0]} test "
                f"input ({str(exc).strip()[:200]}); expected {self.model.contract.describe()}"
            ) from None
        if names and max(names) >= MAX_CLASSES:
            # A lookup table over the ids is built at start: a stray id of 10**12 in the
            # metadata would ask for a terabyte.
            raise ConfigError(
                f"{SETTING}: {self.model.path} metadata 'names' has class id {max(names)}; "
                f"expected ids 0-{MAX_CLASSES - 1} (Ultralytics numbers its classes from 0)"
            )
        nc = max(names) + 1 if names else None
        _, rows, cols = out.shape
        expected = (
            f"[1,{4 + nc + COEFFICIENTS},anchors] (raw) or [1,max_det,{6 + COEFFICIENTS}] "
            "(nms=True)" if nc else
            f"[1,4+classes+{COEFFICIENTS},anchors] (raw) or [1,max_det,{6 + COEFFICIENTS}] "
            "(nms=True)"
        )  # fmt: skip
        if protos.ndim != 4 or protos.shape[1] != COEFFICIENTS:
            raise ConfigError(
                f"{SETTING}: {self.model.path} output {self.cfg.yolo_protos!r} is "
                f"{list(protos.shape)}; expected [1,{COEFFICIENTS},h,w] mask prototypes"
            )
        if nc is not None and rows == 4 + nc + COEFFICIENTS:
            return False, nc
        if cols == 6 + COEFFICIENTS:
            return True, nc
        if nc is None and rows > 4 + COEFFICIENTS:
            return False, rows - 4 - COEFFICIENTS
        have = f" for its {nc} classes" if nc else ""
        raise ConfigError(
            f"{SETTING}: {self.model.path} output {self.cfg.yolo_output!r} is "
            f"{list(out.shape)}; expected {expected}{have}"
        )

    def detect(self, rgb: Image, kinds: Collection[str] = KINDS) -> dict[str, Mask]:
        h, w = rgb.shape[:2]
        box = Letterbox.fit((h, w), self.size, centre=True)
        out, protos = self._run(box.apply(rgb, GREY))
        boxes, classes, coefficients = self._detections(out[0])
        if not len(boxes):
            return {}
        planes = protos[0]
        factor = (planes.shape[1] / self.size[0], planes.shape[2] / self.size[1])
        sampling = box.sampling(factor)
        found: dict[str, Mask] = {}
        level = self.cfg.mask_threshold * 255.0
        for (x0, y0, x1, y1), cls, coef in zip(boxes, classes, coefficients, strict=True):
            kind = self.classes.kind_of(int(cls))
            if kind is None or kind not in kinds:
                continue
            ix0, iy0 = box.to_image(float(x0), float(y0))
            ix1, iy1 = box.to_image(float(x1), float(y1))
            # The picture's pixels whose centres lie in the box.
            px0, px1 = max(math.ceil(ix0 - 0.5), 0), min(math.ceil(ix1 - 0.5), w)
            py0, py1 = max(math.ceil(iy0 - 0.5), 0), min(math.ceil(iy1 - 0.5), h)
            if px1 <= px0 or py1 <= py0:
                continue
            mask = found.setdefault(kind, np.zeros((h, w), bool))
            # Merged by union: over the threshold in any detection of the kind.
            window = _mask_window(planes, coef, sampling, (px0, py0, px1, py1))
            mask[py0:py1, px0:px1] |= window > level
        return found

    def _detections(self, out: FloatArray) -> tuple[FloatArray, NDArray[np.int64], FloatArray]:
        """Kept detections: boxes (x0, y0, x1, y1 in input pixels), classes, coefficients."""
        thr = self.cfg.yolo_threshold
        if self.nms:
            scores, classes = out[:, 4], out[:, 5].astype(np.int64)
            keep = (scores >= thr) & self._mapped(classes)
            return out[keep, :4], classes[keep], out[keep, 6:]
        nc = out.shape[0] - 4 - COEFFICIENTS
        class_scores = out[4 : 4 + nc]
        classes = class_scores.argmax(axis=0)
        scores = np.take_along_axis(class_scores, classes[None], axis=0)[0]
        candidates = np.flatnonzero((scores >= thr) & self._mapped(classes))
        if not len(candidates):
            none = np.zeros((0, 4), np.float32)
            return none, np.zeros(0, np.int64), np.zeros((0, COEFFICIENTS), np.float32)
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")][:MAX_CANDIDATES]
        cx, cy, bw, bh = out[:4, candidates]
        xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kept = nms(xyxy + (classes[candidates] * CLASS_OFFSET)[:, None], self.cfg.yolo_iou)
        chosen = candidates[kept]
        return xyxy[kept], classes[chosen].astype(np.int64), out[4 + nc :, chosen].T

    def _mapped(self, classes: NDArray[np.int64]) -> NDArray[np.bool_]:
        inside = (classes >= 0) & (classes < len(self.wanted))
        result: NDArray[np.bool_] = np.zeros(classes.shape, bool)
        result[inside] = self.wanted[classes[inside]]
        return result


def nms(boxes: FloatArray, iou: float, limit: int = MAX_DETECTIONS) -> NDArray[np.int64]:
    """Greedy non-maximum suppression of ``boxes`` (x0, y0, x1, y1) already sorted by
    descending score: the indices kept. A box overlapping a kept one by more than ``iou``
    goes."""
    sides = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
    areas = sides[:, 0] * sides[:, 1]
    order = np.arange(len(boxes))
    kept: list[int] = []
    while order.size and len(kept) < limit:
        i, rest = int(order[0]), order[1:]
        kept.append(i)
        ix0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        union = areas[i] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou]
    return np.array(kept, np.int64)


def _mask_window(
    planes: FloatArray,
    coef: FloatArray,
    sampling: tuple[float, float, float, float],
    pixels: tuple[int, int, int, int],
) -> NDArray[np.uint8]:
    """The detection's mask probability (in 1/255) at the picture's pixels ``pixels``
    (x0, y0, x1, y1), computed only on the prototype cells that reach them."""
    ax, bx, ay, by = sampling
    px0, py0, px1, py1 = pixels
    _, ph, pw = planes.shape
    sx0 = min(max(math.floor(ax * px0 + bx) - 1, 0), pw - 1)
    sx1 = min(max(math.ceil(ax * (px1 - 1) + bx) + 2, sx0 + 1), pw)
    sy0 = min(max(math.floor(ay * py0 + by) - 1, 0), ph - 1)
    sy1 = min(max(math.ceil(ay * (py1 - 1) + by) + 2, sy0 + 1), ph)
    cells = planes[:, sy0:sy1, sx0:sx1]
    logits = np.tensordot(coef.astype(np.float32), cells, axes=1)
    # Probabilities as 8-bit levels: OpenCV interpolates those several times faster.
    prob = np.rint(255.0 / (1.0 + np.exp(-logits))).astype(np.uint8)
    matrix = np.array([[ax, 0.0, ax * px0 + bx - sx0], [0.0, ay, ay * py0 + by - sy0]])
    warped = cv2.warpAffine(
        prob, matrix, (px1 - px0, py1 - py0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return np.asarray(warped, np.uint8).reshape(py1 - py0, px1 - px0)


__all__ = ["YoloSegDetector", "contract", "nms"]
