"""Stand-in ONNX models with the real models' signatures, built in code.

The tests and ``bench/onnx_speed.py`` use them where the real weights (which
the project never ships) are absent. Each computes something simple and
checkable; ``heavy=True`` adds convolution layers of a realistic width so
timings mean something. Needs the ``onnx`` package (a dev dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from workers.onnx.config import DeepCreamPyModel, DetectorModel, EsrganModel

OPSET = 17
_DCP, _DETECTOR, _ESRGAN = DeepCreamPyModel(), DetectorModel(), EsrganModel()
Box = tuple[int, float, tuple[float, float, float, float]]  # class, score, (x0, y0, x1, y1)


class _Graph:
    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0
        self.rng = np.random.default_rng(seed)

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, value: NDArray[Any], stem: str = "c") -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, stride: int = 1, relu: bool = True) -> str:
        scale = np.sqrt(2.0 / (cin * 9)) * 0.5
        w = (self.rng.standard_normal((cout, cin, 3, 3)) * scale).astype(np.float32)
        b = np.zeros(cout, np.float32)
        y = self.op(
            "Conv", [x, self.const(w, "w"), self.const(b, "b")], pads=[1, 1, 1, 1],
            strides=[stride, stride],
        )  # fmt: skip
        return self.op("Relu", [y]) if relu else y

    def body(self, x: str, width: int, depth: int) -> str:
        """A residual convolution stack (NCHW, 3 channels in and out) whose output is
        added to ``x`` times a tiny factor: timing-realistic, result nearly unchanged."""
        y = self.conv(x, 3, width)
        for _ in range(depth):
            y = self.conv(y, width, width)
        y = self.conv(y, width, 3, relu=False)
        small = self.op("Mul", [y, self.const(np.array(1e-6, np.float32))])
        return self.op("Add", [x, small])

    def save(
        self,
        path: Path,
        inputs: Sequence[onnx.ValueInfoProto],
        outputs: Sequence[onnx.ValueInfoProto],
    ) -> Path:
        graph = helper.make_graph(self.nodes, "standin", list(inputs), list(outputs), self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        return path


def _info(name: str, dtype: int, shape: Sequence[int | str | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(shape))


def deepcreampy(
    path: Path,
    *,
    fill: float = 0.0,
    keep_known: bool = False,
    batch: int | str = 1,
    size: int = 256,
    names: DeepCreamPyModel = _DCP,
    heavy: bool = False,
) -> Path:
    """The DeepCreamPy signature, answering ``fill`` (in the model's [-1, 1] range)
    everywhere, or only in the hole with ``keep_known`` (the image passes through)."""
    g = _Graph()
    image = g.op("Mul", [g.op("Add", [names.image_input, names.image2_input]),
                         g.const(np.array(0.5, np.float32))])  # fmt: skip
    if heavy:
        nchw = g.op("Transpose", [image], perm=[0, 3, 1, 2])
        image = g.op("Transpose", [g.body(nchw, 64, 6)], perm=[0, 2, 3, 1])
    keep = (
        names.mask_input
        if keep_known
        else g.op("Mul", [names.mask_input, g.const(np.array(0.0, np.float32))])
    )
    known = g.op("Mul", [image, keep])
    hole = g.op("Sub", [g.const(np.array(1.0, np.float32)), keep])
    g.op("Add", [known, g.op("Mul", [hole, g.const(np.array(fill, np.float32))])], names.output)
    shape = [batch, size, size, 3]
    ins = [_info(n, TensorProto.FLOAT, shape)
           for n in (names.image_input, names.image2_input, names.mask_input)]  # fmt: skip
    return g.save(path, ins, [_info(names.output, TensorProto.FLOAT, shape)])


def detector_boxes(
    path: Path,
    boxes: Sequence[Box],
    size: tuple[int, int] = (64, 64),
    names: DetectorModel = _DETECTOR,
) -> Path:
    """A fixed-size detector that always reports ``boxes`` (fractions of its input)."""
    h, w = size
    g = _Graph()
    masks = np.zeros((len(boxes), 1, h, w), np.float32)
    for i, (_, _, (x0, y0, x1, y1)) in enumerate(boxes):
        masks[i, 0, round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = 1.0
    # The outputs depend on the input (times zero) so no optimiser folds the graph away.
    zero = g.op("Mul", [g.op("ReduceMean", [names.image_input], keepdims=0),
                        g.const(np.array(0.0, np.float32))])  # fmt: skip
    g.op("Add", [g.const(np.array([b[1] for b in boxes], np.float32)), zero],
         names.scores_output)  # fmt: skip
    g.op("Identity", [g.const(np.array([b[0] for b in boxes], np.int64))], names.classes_output)
    g.op("Add", [g.const(masks), zero], names.masks_output)
    n = len(boxes)
    return g.save(
        path,
        [_info(names.image_input, TensorProto.FLOAT, [1, 3, h, w])],
        [
            _info(names.scores_output, TensorProto.FLOAT, [n]),
            _info(names.classes_output, TensorProto.INT64, [n]),
            _info(names.masks_output, TensorProto.FLOAT, [n, 1, h, w]),
        ],
    )


def detector_dark(
    path: Path,
    detections: Sequence[tuple[int, float]] = ((1, 0.9),),
    names: DetectorModel = _DETECTOR,
    heavy: bool = False,
) -> Path:
    """A dynamic-size detector whose every detection is "the pixels darker than 2%":
    it finds solid black bars. ``detections`` gives each one's (class, score)."""
    g = _Graph()
    image = g.body(names.image_input, 32, 4) if heavy else names.image_input
    brightest = g.op("ReduceMax", [image], axes=[1], keepdims=1)
    dark = g.op("Cast", [g.op("Less", [brightest, g.const(np.array(0.02, np.float32))])],
                to=TensorProto.FLOAT)  # fmt: skip
    n = len(detections)
    g.op("Concat", [dark] * n, names.masks_output, axis=0)
    g.op("Identity", [g.const(np.array([d[1] for d in detections], np.float32))],
         names.scores_output)  # fmt: skip
    g.op("Identity", [g.const(np.array([d[0] for d in detections], np.int64))],
         names.classes_output)  # fmt: skip
    return g.save(
        path,
        [_info(names.image_input, TensorProto.FLOAT, [1, 3, "height", "width"])],
        [
            _info(names.scores_output, TensorProto.FLOAT, [n]),
            _info(names.classes_output, TensorProto.INT64, [n]),
            _info(names.masks_output, TensorProto.FLOAT, [n, 1, "height", "width"]),
        ],
    )


def esrgan(
    path: Path,
    *,
    scale: int = 4,
    size: tuple[int, int] | None = None,
    names: EsrganModel = _ESRGAN,
    heavy: bool = False,
) -> Path:
    """The ESRGAN signature: a nearest-neighbour ``scale``x upsample (``heavy``: with
    convolutions before and after it, the way RRDBNet spends its time)."""
    g = _Graph()
    x = g.body(names.input, 64, 8) if heavy else names.input
    scales = g.const(np.array([1, 1, scale, scale], np.float32))
    up = g.op("Resize", [x, "", scales], mode="nearest")
    if heavy:
        up = g.body(up, 32, 2)
    g.op("Identity", [up], names.output)
    h, w = size or ("h", "w")
    out = (h * scale, w * scale) if size else ("oh", "ow")
    return g.save(
        path,
        [_info(names.input, TensorProto.FLOAT, [1, 3, h, w])],
        [_info(names.output, TensorProto.FLOAT, [1, 3, *out])],
    )
