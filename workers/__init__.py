"""The hent-AI and DeepCreamPy workers: image pipelines behind swappable
model backends (``cpu``: model-free; ``onnx``: the real models), run by the
worker loop of ``erogaki_common.worker``."""
