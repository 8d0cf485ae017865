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

from workers.onnx.config import (
    DeepCreamPyModel,
    DetectorModel,
    EsrganModel,
    LamaModel,
    MiganModel,
)

OPSET = 17
_DCP, _DETECTOR, _ESRGAN = DeepCreamPyModel(), DetectorModel(), EsrganModel()
_LAMA, _MIGAN = LamaModel(), MiganModel()
MEAN_PIXEL = (123.7, 116.8, 103.9)
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

    def scalar(self, value: float) -> str:
        return self.const(np.array(value, np.float32))

    def save(
        self,
        path: Path,
        inputs: Sequence[onnx.ValueInfoProto],
        outputs: Sequence[onnx.ValueInfoProto],
        metadata: dict[str, str] | None = None,
    ) -> Path:
        graph = helper.make_graph(self.nodes, "standin", list(inputs), list(outputs), self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        if metadata:
            helper.set_model_props(model, metadata)
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


def _unit(g: _Graph, image: str, pixels: str) -> str:
    """The input as RGB in [0, 1], whichever way the contract feeds it."""
    if pixels == "unit":
        return image
    mean = g.const(np.array(MEAN_PIXEL, np.float32).reshape(1, 3, 1, 1))
    return g.op("Mul", [g.op("Add", [image, mean]), g.scalar(1.0 / 255.0)])


def _found(g: _Graph, image: str, target: str, level: float = 0.02) -> str:
    """1.0 where a pixel is ``dark`` (every channel under ``level``) or ``bright`` (every
    channel over 1 - ``level``), else 0.0: shape [1, 1, H, W]."""
    if target == "dark":
        edge = g.op("ReduceMax", [image], axes=[1], keepdims=1)
        hit = g.op("Less", [edge, g.scalar(level)])
    else:
        edge = g.op("ReduceMin", [image], axes=[1], keepdims=1)
        hit = g.op("Greater", [edge, g.scalar(1.0 - level)])
    return g.op("Cast", [hit], to=TensorProto.FLOAT)


def detector_dark(
    path: Path,
    detections: Sequence[tuple[int, float]] = ((1, 0.9),),
    names: DetectorModel = _DETECTOR,
    heavy: bool = False,
    *,
    size: tuple[int, int] | None = None,
    target: str = "dark",
    pixels: str = "unit",
    metadata: dict[str, str] | None = None,
) -> Path:
    """A Mask R-CNN-contract detector whose every detection is "the pixels darker than
    2%" (``target="bright"``: lighter than 98%): it finds solid black (white) bars.
    ``detections`` gives each one's (class, score); ``size`` fixes the input size;
    ``pixels="mean"`` takes matterport's molded input (RGB in [0, 255] less the mean)."""
    g = _Graph()
    image = g.body(names.image_input, 32, 4) if heavy else names.image_input
    hit = _found(g, _unit(g, image, pixels), target)
    n = len(detections)
    g.op("Concat", [hit] * n, names.masks_output, axis=0)
    g.op("Identity", [g.const(np.array([d[1] for d in detections], np.float32))],
         names.scores_output)  # fmt: skip
    g.op("Identity", [g.const(np.array([d[0] for d in detections], np.int64))],
         names.classes_output)  # fmt: skip
    h, w = size or ("height", "width")
    return g.save(
        path,
        [_info(names.image_input, TensorProto.FLOAT, [1, 3, h, w])],
        [
            _info(names.scores_output, TensorProto.FLOAT, [n]),
            _info(names.classes_output, TensorProto.INT64, [n]),
            _info(names.masks_output, TensorProto.FLOAT, [n, 1, h, w]),
        ],
        metadata,
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


def lama(
    path: Path,
    *,
    fill: float | str | None = 0.5,
    scale: float = 255.0,
    size: int | None = 512,
    batch: int | str = 1,
    names: LamaModel = _LAMA,
    heavy: bool = False,
) -> Path:
    """The LaMa signature: the image outside the hole and ``fill`` (in [0, 1]) inside,
    times ``scale`` (255 or 1). ``fill="context"`` fills the hole with the mean colour of
    the pixels outside it; ``fill=None`` passes the image input through (the hole shows
    what was fed there). ``size=None`` takes any size, but only multiples of 8, as the
    real dynamic exports do."""
    g = _Graph()
    image = names.image_input
    if size is None:
        # Space-to-depth fails on sides that are not multiples of 8, like LaMa's
        # downsampling does.
        image = g.op("DepthToSpace", [g.op("SpaceToDepth", [image], blocksize=8)], blocksize=8)
    if heavy:
        image = g.body(image, 64, 8)
    if fill is not None:
        keep = g.op("Sub", [g.scalar(1.0), names.mask_input])
        known = g.op("Mul", [image, keep])
        if fill == "context":
            total = g.op("ReduceSum", [known, g.const(np.array([2, 3], np.int64))], keepdims=1)
            count = g.op("ReduceSum", [keep, g.const(np.array([2, 3], np.int64))], keepdims=1)
            value = g.op("Div", [total, count])
        else:
            value = g.scalar(float(fill))
        image = g.op("Add", [known, g.op("Mul", [names.mask_input, value])])
    g.op("Mul", [image, g.scalar(scale)], names.output)
    h, w = (size, size) if size else ("h", "w")
    return g.save(
        path,
        [
            _info(names.image_input, TensorProto.FLOAT, [batch, 3, h, w]),
            _info(names.mask_input, TensorProto.FLOAT, [batch, 1, h, w]),
        ],
        [_info(names.output, TensorProto.FLOAT, [batch, 3, h, w])],
    )


def migan_raw(
    path: Path,
    *,
    fill: float = 0.0,
    size: int = 512,
    names: MiganModel = _MIGAN,
    heavy: bool = False,
) -> Path:
    """MI-GAN's raw generator signature: [1,4,S,S] = (known - 0.5, rgb * known) in, the
    known pixels and ``fill`` (in [-1, 1]) in the hole out."""
    g = _Graph()
    planes = g.op("Split", [names.input, g.const(np.array([1, 3], np.int64))], axis=1)
    known_half, rgb = planes, g.name("rgb")
    g.nodes[-1].output[:] = [known_half, rgb]
    if heavy:
        rgb = g.body(rgb, 64, 8)
    known = g.op("Add", [known_half, g.scalar(0.5)])
    hole = g.op("Sub", [g.scalar(1.0), known])
    g.op("Add", [g.op("Mul", [rgb, known]), g.op("Mul", [hole, g.scalar(fill)])], names.output)
    return g.save(
        path,
        [_info(names.input, TensorProto.FLOAT, [1, 4, size, size])],
        [_info(names.output, TensorProto.FLOAT, [1, 3, size, size])],
    )


def migan_pipeline(
    path: Path, *, fill: int = 200, names: MiganModel = _MIGAN, heavy: bool = False
) -> Path:
    """MI-GAN's pipeline signature: uint8 image and mask (255 keep, 0 fill) in, uint8
    result out: the image where the mask keeps it, ``fill`` elsewhere."""
    g = _Graph()
    image = names.image_input
    if heavy:
        as_float = g.op("Cast", [image], to=TensorProto.FLOAT)
        image = g.op("Cast", [g.body(as_float, 64, 8)], to=TensorProto.UINT8)
    keep = g.op("Equal", [names.mask_input, g.const(np.array(255, np.uint8))])
    g.op("Where", [keep, image, g.const(np.array(fill, np.uint8))], names.result)
    return g.save(
        path,
        [
            _info(names.image_input, TensorProto.UINT8, [1, 3, "h", "w"]),
            _info(names.mask_input, TensorProto.UINT8, [1, 1, "h", "w"]),
        ],
        [_info(names.result, TensorProto.UINT8, [1, 3, "h", "w"])],
    )


YOLO_NAMES = {0: "other", 1: "bar", 2: "mosaic"}


def yolo_seg(
    path: Path,
    *,
    nms: bool = False,
    size: int | None = 640,
    names: dict[int, str] | None = YOLO_NAMES,
    bar: int = 1,
    mosaic: int = 2,
    other: int = 0,
    count: int | None = None,
    detector: DetectorModel = _DETECTOR,
    heavy: bool = False,
) -> Path:
    """A YOLO-seg signature that "detects" the black pixels as class ``bar`` and the
    white ones as class ``mosaic``: one box around all of each, its mask from the
    prototypes. Decoys that post-processing must drop: (raw only) a copy of the black
    box 10% larger at a lower score whose mask fills its box (NMS), a whole-picture box
    under the score threshold, and a whole-picture box of class ``other`` (class
    mapping). ``names`` goes into the metadata (None: no metadata); ``count`` sets the
    number of class scores when it should differ from the names'."""
    g = _Graph()
    x = g.body(detector.yolo_input, 32, 4) if heavy else detector.yolo_input
    nc = count or (max(bar, mosaic, other) + 1 if names is None else len(names))
    # Resampled edge pixels count when they are mostly black (white).
    maps = {"dark": _found(g, x, "dark", 0.25), "bright": _found(g, x, "bright", 0.25)}

    def flat(value: str) -> str:
        return g.op("Reshape", [value, g.const(np.array([1], np.int64))])

    def box(found: str, grow: float = 0.0) -> tuple[list[str], str]:
        """x0, y0, x1, y1 as [1] tensors (input pixels), and presence (0 or 1) as [1]."""
        col = g.op("ReduceMax", [found], axes=[2], keepdims=0)  # [1,1,W]
        row = g.op("ReduceMax", [found], axes=[3], keepdims=0)  # [1,1,H]
        edges = []
        for line in (col, row):
            first = g.op("ArgMax", [line], axis=2, keepdims=0, select_last_index=0)
            last = g.op("ArgMax", [line], axis=2, keepdims=0, select_last_index=1)
            a = flat(g.op("Cast", [first], to=TensorProto.FLOAT))
            b = flat(g.op("Add", [g.op("Cast", [last], to=TensorProto.FLOAT), g.scalar(1.0)]))
            if grow:
                pad = g.op("Mul", [g.op("Sub", [b, a]), g.scalar(grow)])
                a, b = g.op("Sub", [a, pad]), g.op("Add", [b, pad])
            edges.append((a, b))
        (x0, x1), (y0, y1) = edges
        present = flat(g.op("ReduceMax", [found], keepdims=0))
        return [x0, y0, x1, y1], present

    side = g.op("Cast", [g.op("Shape", [x])], to=TensorProto.FLOAT)  # [4]: 1, 3, H, W
    full_w = flat(g.op("Gather", [side, g.const(np.array(3, np.int64))], axis=0))
    full_h = flat(g.op("Gather", [side, g.const(np.array(2, np.int64))], axis=0))
    zero = g.op("Mul", [full_w, g.scalar(0.0)])
    whole = [zero, zero, full_w, full_h]

    def onehot(n: int, at: int, value: float) -> NDArray[np.float32]:
        v = np.zeros(n, np.float32)
        v[at] = value
        return v

    # (box, presence, class, score, prototype channel)
    dark_box, dark = box(maps["dark"])
    bright_box, bright = box(maps["bright"])
    one = g.op("Add", [zero, g.scalar(1.0)])
    rows = [(dark_box, dark, bar, 0.9, 0), (bright_box, bright, mosaic, 0.85, 1)]
    if not nms:
        rows.append((box(maps["dark"], 0.05)[0], dark, bar, 0.6, 2))
    rows += [(whole, one, bar, 0.1, 2), (whole, one, other, 0.95, 2)]

    columns = []
    for (x0, y0, x1, y1), present, cls, score, channel in rows:
        coef = g.const(onehot(COEFFICIENTS, channel, 1.0))
        if nms:
            parts = [x0, y0, x1, y1, g.op("Mul", [present, g.scalar(score)]),
                     g.op("Add", [zero, g.scalar(float(cls))]), coef]  # fmt: skip
        else:
            cx = g.op("Mul", [g.op("Add", [x0, x1]), g.scalar(0.5)])
            cy = g.op("Mul", [g.op("Add", [y0, y1]), g.scalar(0.5)])
            bw, bh = g.op("Sub", [x1, x0]), g.op("Sub", [y1, y0])
            scores = g.op("Mul", [present, g.const(onehot(nc, cls, score))])
            parts = [cx, cy, bw, bh, scores, coef]
        columns.append(g.op("Concat", parts, axis=0))
    if nms:
        # Ultralytics pads the rows up to max_det with zeros.
        columns.append(g.const(np.zeros(6 + COEFFICIENTS, np.float32)))
        stacked = g.op("Concat", [g.op("Unsqueeze", [c, g.const(np.array([0], np.int64))])
                                  for c in columns], axis=0)  # fmt: skip
        g.op("Unsqueeze", [stacked, g.const(np.array([0], np.int64))], detector.yolo_output)
        out_shape: list[int | str] = [1, len(columns), 6 + COEFFICIENTS]
    else:
        stacked = g.op("Concat", [g.op("Unsqueeze", [c, g.const(np.array([1], np.int64))])
                                  for c in columns], axis=1)  # fmt: skip
        g.op("Unsqueeze", [stacked, g.const(np.array([0], np.int64))], detector.yolo_output)
        out_shape = [1, 4 + nc + COEFFICIENTS, len(columns)]

    def logit(found: str) -> str:
        # A gentle slope keeps the probability nearly linear in the cells' share, so the
        # interpolated mask crosses 0.5 about where the edge is, as a trained head's does.
        cells = g.op("AveragePool", [found], kernel_shape=[4, 4], strides=[4, 4])
        return g.op("Sub", [g.op("Mul", [cells, g.scalar(4.0)]), g.scalar(2.0)])

    dark_logit = logit(maps["dark"])
    blank = g.op("Mul", [dark_logit, g.scalar(0.0)])
    full = g.op("Add", [blank, g.scalar(10.0)])
    planes = [dark_logit, logit(maps["bright"]), full] + [blank] * (COEFFICIENTS - 3)
    g.op("Concat", planes, detector.yolo_protos, axis=1)
    h, w = (size, size) if size else ("h", "w")
    ph, pw = (size // 4, size // 4) if size else ("ph", "pw")
    metadata = {"names": repr(names)} if names is not None else None
    return g.save(
        path,
        [_info(detector.yolo_input, TensorProto.FLOAT, [1, 3, h, w])],
        [
            _info(detector.yolo_output, TensorProto.FLOAT, out_shape),
            _info(detector.yolo_protos, TensorProto.FLOAT, [1, COEFFICIENTS, ph, pw]),
        ],
        metadata,
    )


COEFFICIENTS = 32
