"""The ``onnx`` backend: real models run with onnxruntime.

Inpainting (the DeepCreamPy worker, and mosaics with ``EROGAKI_ONNX_MOSAIC=inpaint``):
DeepCreamPy's bar model, LaMa or MI-GAN. Detection (the hent-AI worker): a Mask R-CNN
or a YOLO-seg export, told apart by its signature. Mosaic restoration: ESRGAN.

onnxruntime picks CUDA where onnxruntime-gpu and a GPU are present, the CPU
elsewhere. ``docs/models.md`` describes each model's contract, its settings, its
licence, and how to export it (weights are never bundled, never downloaded).
"""

from workers.onnx.backends import OnnxDeepCreamPy, OnnxHentai
from workers.onnx.config import OnnxConfig

__all__ = ["OnnxConfig", "OnnxDeepCreamPy", "OnnxHentai"]
