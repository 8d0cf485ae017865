"""The ``onnx`` backend: DeepCreamPy, hent-AI's detector and ESRGAN run with onnxruntime.

onnxruntime picks CUDA where onnxruntime-gpu and a GPU are present, the CPU
elsewhere. ``docs/models.md`` describes each model's contract, its settings,
and where users get the weights (never bundled, never downloaded).
"""

from workers.onnx.backends import OnnxDeepCreamPy, OnnxHentai
from workers.onnx.config import OnnxConfig

__all__ = ["OnnxConfig", "OnnxDeepCreamPy", "OnnxHentai"]
