"""hent-AI's detection: an instance-segmentation model exported to ONNX.

The contract (``docs/models.md`` explains how to export hent-AI's Mask R-CNN to it):

- input ``image``: float32 ``[1, 3, H, W]``, RGB in [0, 1]. With H and W dynamic
  the image goes in at its own size; with them fixed it is letterboxed: scaled
  to fit, aligned top-left, the rest zero.
- outputs ``scores`` float32 ``[N]``, ``classes`` int64 ``[N]`` (hent-AI's ids:
  1 bar, 2 mosaic), ``masks`` float32 ``[N, 1, H, W]``: per-detection
  probabilities at the input's resolution (Mask R-CNN's masks already pasted
  into the image, as torchvision's export gives them).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.backend import Image, Mask
from workers.onnx.config import DetectorModel
from workers.onnx.sessions import FLOAT, INT64, Contract, Model, TensorSpec, fixed, load

BAR = 1
MOSAIC = 2

FloatArray = NDArray[np.float32]


def contract(cfg: DetectorModel) -> Contract:
    return Contract(
        what="the hent-AI detection model",
        setting="EROGAKI_ONNX_DETECTOR_MODEL",
        inputs=(TensorSpec(cfg.image_input, FLOAT, (1, 3, None, None)),),
        outputs=(
            TensorSpec(cfg.scores_output, FLOAT, (None,)),
            TensorSpec(cfg.classes_output, INT64, (None,)),
            TensorSpec(cfg.masks_output, FLOAT, (None, 1, None, None)),
        ),
    )


class Detector:
    def __init__(self, model: Model, cfg: DetectorModel) -> None:
        self.model = model
        self.cfg = cfg
        shape = model.input_shapes[cfg.image_input]
        self.size: tuple[int, int] | None = None
        if fixed(shape[2]) is not None and fixed(shape[3]) is not None:
            self.size = (int(shape[2]), int(shape[3]))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path, cfg: DetectorModel, provider: str) -> Detector:
        return cls(load(path, contract(cfg), provider), cfg)

    def detect(self, rgb: Image) -> dict[int, Mask]:
        """Merged mask per class id, from detections at or over the threshold."""
        h, w = rgb.shape[:2]
        image = rgb.astype(np.float32) * (1.0 / 255.0)
        inner = (h, w)
        if self.size is not None:
            image, inner = _letterbox(image, self.size)
        tensor = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
        scores, classes, masks = self.model.run(
            [self.cfg.scores_output, self.cfg.classes_output, self.cfg.masks_output],
            {self.cfg.image_input: tensor},
        )
        scores = scores.reshape(-1)
        classes = classes.reshape(-1)
        fed = tensor.shape[2:]
        merged: dict[int, Mask] = {}
        for i in np.flatnonzero(scores >= self.cfg.threshold):
            prob = masks[i].reshape(masks.shape[-2:]).astype(np.float32)
            if prob.shape != fed:
                prob = cv2.resize(prob, (fed[1], fed[0]), interpolation=cv2.INTER_LINEAR)
            prob = prob[: inner[0], : inner[1]]
            if prob.shape != (h, w):
                prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
            hit = prob >= self.cfg.mask_threshold
            cls = int(classes[i])
            merged[cls] = merged[cls] | hit if cls in merged else hit
        return merged


def _letterbox(image: FloatArray, size: tuple[int, int]) -> tuple[FloatArray, tuple[int, int]]:
    """The image scaled to fit ``size`` (H, W) at the top-left of a zero canvas, and the
    size of the scaled part."""
    h, w = image.shape[:2]
    th, tw = size
    scale = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = np.zeros((th, tw, 3), np.float32)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    return canvas, (nh, nw)


def grow(mask: Mask, px: int) -> Mask:
    if px <= 0 or not mask.any():
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    grown: Mask = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
    return grown
