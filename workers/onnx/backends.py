"""The ``onnx`` backends: the real models behind the backend interface.

Building one loads and checks every model it needs, so a worker with a
missing or mismatched model stops at start, before it takes a job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.backend import Image, Mask
from workers.onnx import esrgan
from workers.onnx.config import OnnxConfig, model_path
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.detector import BAR, MOSAIC, Detector, grow
from workers.onnx.esrgan import Esrgan


class OnnxHentai:
    name = "onnx"

    def __init__(self, detector: Detector, upscaler: Esrgan, config: OnnxConfig) -> None:
        self.detector = detector
        self.upscaler = upscaler
        self.config = config

    @classmethod
    def load(cls, config: OnnxConfig, models_dir: Path) -> OnnxHentai:
        detector = Detector.load(
            model_path(models_dir, config.detector.file), config.detector, config.provider
        )
        upscaler = Esrgan.load(
            model_path(models_dir, config.esrgan.file), config.esrgan, config.provider
        )
        return cls(detector, upscaler, config)

    def _mask(self, rgb: Image, class_id: int) -> Mask:
        found = self.detector.detect(rgb).get(class_id)
        if found is None:
            return np.zeros(rgb.shape[:2], bool)
        return grow(found, self.config.mask_grow)

    def detect_bars(self, rgb: Image) -> Mask:
        return self._mask(rgb, BAR)

    def restore_mosaic(self, rgb: Image) -> tuple[Image, Mask]:
        mask = self._mask(rgb, MOSAIC)
        if not mask.any():
            return rgb, mask
        restored = esrgan.restore(
            rgb,
            mask,
            self.upscaler,
            feather=self.config.mosaic_feather,
            default_block=self.config.mosaic_default_block,
        )
        return restored, mask


class OnnxDeepCreamPy:
    name = "onnx"

    def __init__(self, inpainter: DeepCreamPyInpainter) -> None:
        self.inpainter = inpainter

    @classmethod
    def load(cls, config: OnnxConfig, models_dir: Path) -> OnnxDeepCreamPy:
        path = model_path(models_dir, config.deepcreampy.file)
        return cls(DeepCreamPyInpainter.load(path, config.deepcreampy, config.provider))

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        return self.inpainter.inpaint(rgb, mask)
