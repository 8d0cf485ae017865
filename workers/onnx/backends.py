"""The ``onnx`` backends: the real models behind the backend interface.

Building one loads and checks every model it needs, so a worker with a
missing or mismatched model stops at start, before it takes a job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.backend import Image, Mask
from workers.imageops.green import bounds
from workers.onnx import esrgan
from workers.onnx.config import OnnxConfig, model_path
from workers.onnx.detector import BAR, MOSAIC, Detector, grow, load_detector
from workers.onnx.esrgan import Esrgan
from workers.onnx.inpainters import Inpainter, load_inpainter


class OnnxHentai:
    """Detection, and mosaic restoration by ESRGAN or (``EROGAKI_ONNX_MOSAIC=inpaint``)
    by the configured inpainting model."""

    name = "onnx"

    def __init__(
        self,
        detector: Detector,
        upscaler: Esrgan | None,
        config: OnnxConfig,
        inpainter: Inpainter | None = None,
    ) -> None:
        if upscaler is None and inpainter is None:
            raise ValueError("mosaic restoration needs ESRGAN or an inpainter")
        self.detector = detector
        self.upscaler = upscaler
        self.inpainter = inpainter
        self.config = config

    @classmethod
    def load(cls, config: OnnxConfig, models_dir: Path) -> OnnxHentai:
        detector = load_detector(
            model_path(models_dir, config.detector.file), config.detector, config.provider
        )
        if config.mosaic == "inpaint":
            return cls(detector, None, config, load_inpainter(config, models_dir))
        upscaler = Esrgan.load(
            model_path(models_dir, config.esrgan.file), config.esrgan, config.provider
        )
        return cls(detector, upscaler, config)

    def _masks(self, rgb: Image, kinds: tuple[str, ...] = (BAR, MOSAIC)) -> dict[str, Mask]:
        found = self.detector.detect(rgb, kinds)
        return {kind: grow(mask, self.config.mask_grow) for kind, mask in found.items()}

    def _empty(self, rgb: Image) -> Mask:
        return np.zeros(rgb.shape[:2], bool)

    def detect_bars(self, rgb: Image) -> Mask:
        return self._masks(rgb, (BAR,)).get(BAR, self._empty(rgb))

    def restore_mosaic(self, rgb: Image) -> tuple[Image, Mask]:
        mask = self._masks(rgb, (MOSAIC,)).get(MOSAIC, self._empty(rgb))
        return self._restore(rgb, mask), mask

    def auto(self, rgb: Image) -> tuple[Image, Mask, Mask]:
        """One detection pass: the mosaic restored, its mask, and the bars' mask."""
        found = self._masks(rgb)
        mosaic = found.get(MOSAIC, self._empty(rgb))
        bars = found.get(BAR, self._empty(rgb))
        # A pixel is redrawn once: where the grown masks meet, the bar (inpainted next,
        # from the restored picture) wins. (Worked out in the mosaic's box only.)
        mosaic_only = np.zeros_like(mosaic)
        box = bounds(mosaic)
        if box is not None:
            x0, y0, x1, y1 = box
            np.greater(mosaic[y0:y1, x0:x1], bars[y0:y1, x0:x1], out=mosaic_only[y0:y1, x0:x1])
        return self._restore(rgb, mosaic_only), mosaic_only, bars

    def _restore(self, rgb: Image, mask: Mask) -> Image:
        if not mask.any():
            return rgb
        if self.inpainter is not None:
            return self.inpainter.inpaint(rgb, mask)
        assert self.upscaler is not None
        return esrgan.restore(
            rgb,
            mask,
            self.upscaler,
            feather=self.config.mosaic_feather,
            default_block=self.config.mosaic_default_block,
        )


class OnnxDeepCreamPy:
    """The DeepCreamPy worker's backend: the inpainting model ``EROGAKI_ONNX_INPAINTER``
    names (DeepCreamPy's, LaMa or MI-GAN)."""

    name = "onnx"

    def __init__(self, inpainter: Inpainter) -> None:
        self.inpainter = inpainter

    @classmethod
    def load(cls, config: OnnxConfig, models_dir: Path) -> OnnxDeepCreamPy:
        return cls(load_inpainter(config, models_dir))

    def inpaint(self, rgb: Image, mask: Mask) -> Image:
        return self.inpainter.inpaint(rgb, mask)
