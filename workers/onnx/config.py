"""Settings of the onnx backend, read once from the environment.

``docs/models.md`` documents every variable (name, default, meaning). File
names are relative to ``EROGAKI_MODELS_DIR`` unless absolute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from erogaki_common.errors import ConfigError
from erogaki_common.settings import env_int

PROVIDERS = ("auto", "cpu", "cuda")
INPAINTERS = ("deepcreampy", "lama", "migan")
DETECTOR_KINDS = ("auto", "maskrcnn", "yolo-seg")
MOSAIC_METHODS = ("esrgan", "inpaint")
LETTERBOXES = ("centre", "top-left")
PIXEL_FORMATS = ("unit", "mean")


@dataclass(frozen=True, slots=True)
class DeepCreamPyModel:
    file: str = "deepcreampy_bar.onnx"
    image_input: str = "Placeholder:0"
    image2_input: str = "Placeholder_1:0"
    mask_input: str = "Placeholder_2:0"
    output: str = "add:0"
    # Regions per run when the model's batch dimension is dynamic.
    max_batch: int = 8


@dataclass(frozen=True, slots=True)
class LamaModel:
    file: str = "lama.onnx"
    image_input: str = "image"
    mask_input: str = "mask"
    output: str = "output"
    # What the output's full white is: 255 or 1. None: measured when the model loads.
    output_scale: float | None = None
    max_batch: int = 8
    # A dynamic-size export's crop is shrunk to this long side (its memory grows with the
    # crop's area: a 5000x4000 hole at native size needs tens of GiB).
    max_side: int = 2048


@dataclass(frozen=True, slots=True)
class MiganModel:
    file: str = "migan.onnx"
    # The raw generator's export.
    input: str = "input"
    output: str = "output"
    # The "pipeline" export (uint8 in and out).
    image_input: str = "image"
    mask_input: str = "mask"
    result: str = "result"
    max_batch: int = 8


@dataclass(frozen=True, slots=True)
class DetectorModel:
    file: str = "hentai_maskrcnn.onnx"
    # auto: recognised from the model's inputs and outputs.
    kind: str = "auto"
    image_input: str = "image"
    scores_output: str = "scores"
    classes_output: str = "classes"
    masks_output: str = "masks"
    # hent-AI's own DETECTION_MIN_CONFIDENCE.
    threshold: float = 0.75
    mask_threshold: float = 0.5
    # How a fixed-size Mask R-CNN input is filled: centred like matterport's resize_image.
    letterbox: str = "centre"
    # unit: RGB in [0, 1]; mean: RGB in [0, 255] less matterport's MEAN_PIXEL.
    pixels: str = "unit"
    # Class ids or names per kind; None: the kind's default (see detector.py).
    bar_classes: tuple[str, ...] | None = None
    mosaic_classes: tuple[str, ...] | None = None
    # YOLO-seg exports.
    yolo_input: str = "images"
    yolo_output: str = "output0"
    yolo_protos: str = "output1"
    # Ultralytics' own predict defaults.
    yolo_threshold: float = 0.25
    yolo_iou: float = 0.7
    # Square side a YOLO export with a dynamic input is fed at.
    yolo_size: int = 640


@dataclass(frozen=True, slots=True)
class EsrganModel:
    file: str = "esrgan_4x.onnx"
    input: str = "input"
    output: str = "output"
    # Side of the square tiles the small (downscaled) image is cut into.
    tile: int = 256


@dataclass(frozen=True, slots=True)
class OnnxConfig:
    deepcreampy: DeepCreamPyModel = DeepCreamPyModel()
    lama: LamaModel = LamaModel()
    migan: MiganModel = MiganModel()
    detector: DetectorModel = DetectorModel()
    esrgan: EsrganModel = EsrganModel()
    provider: str = "auto"
    # The inpainting model of the DeepCreamPy worker (and of mosaic = inpaint).
    inpainter: str = "deepcreampy"
    # Pixels of context around each hole that LaMa and MI-GAN see (IOPaint's 128).
    inpaint_margin: int = 128
    # Pixels the hole grows by as the LaMa / MI-GAN model sees it (never as pasted), so
    # an anti-aliased fringe is not taken for context.
    inpaint_grow: int = 2
    # Pixels the detected masks grow by before use.
    mask_grow: int = 3
    # How the hent-AI worker redraws a mosaic: ESRGAN, or the configured inpainter.
    mosaic: str = "esrgan"
    # Width of the blend ramp at the inner edge of a restored mosaic.
    mosaic_feather: int = 4
    # Block size used when a mosaic's grid cannot be measured (hent-AI's newest clamp).
    mosaic_default_block: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OnnxConfig:
        """Parse the ``EROGAKI_ONNX_*`` variables; ``ConfigError`` names a bad one."""
        r = _Reader(env)
        dcp, lama, migan = DeepCreamPyModel(), LamaModel(), MiganModel()
        det, esr, top = DetectorModel(), EsrganModel(), cls()
        return cls(
            deepcreampy=DeepCreamPyModel(
                file=r.text("EROGAKI_ONNX_DEEPCREAMPY_MODEL", dcp.file),
                image_input=r.text("EROGAKI_ONNX_DEEPCREAMPY_IMAGE_INPUT", dcp.image_input),
                image2_input=r.text("EROGAKI_ONNX_DEEPCREAMPY_IMAGE2_INPUT", dcp.image2_input),
                mask_input=r.text("EROGAKI_ONNX_DEEPCREAMPY_MASK_INPUT", dcp.mask_input),
                output=r.text("EROGAKI_ONNX_DEEPCREAMPY_OUTPUT", dcp.output),
                max_batch=r.integer("EROGAKI_ONNX_DEEPCREAMPY_MAX_BATCH", dcp.max_batch, 1),
            ),
            lama=LamaModel(
                file=r.text("EROGAKI_ONNX_LAMA_MODEL", lama.file),
                image_input=r.text("EROGAKI_ONNX_LAMA_IMAGE_INPUT", lama.image_input),
                mask_input=r.text("EROGAKI_ONNX_LAMA_MASK_INPUT", lama.mask_input),
                output=r.text("EROGAKI_ONNX_LAMA_OUTPUT", lama.output),
                output_scale=r.scale("EROGAKI_ONNX_LAMA_OUTPUT_SCALE"),
                max_batch=r.integer("EROGAKI_ONNX_LAMA_MAX_BATCH", lama.max_batch, 1),
                max_side=r.integer("EROGAKI_ONNX_LAMA_MAX_SIDE", lama.max_side, 64),
            ),
            migan=MiganModel(
                file=r.text("EROGAKI_ONNX_MIGAN_MODEL", migan.file),
                input=r.text("EROGAKI_ONNX_MIGAN_INPUT", migan.input),
                output=r.text("EROGAKI_ONNX_MIGAN_OUTPUT", migan.output),
                image_input=r.text("EROGAKI_ONNX_MIGAN_IMAGE_INPUT", migan.image_input),
                mask_input=r.text("EROGAKI_ONNX_MIGAN_MASK_INPUT", migan.mask_input),
                result=r.text("EROGAKI_ONNX_MIGAN_RESULT", migan.result),
                max_batch=r.integer("EROGAKI_ONNX_MIGAN_MAX_BATCH", migan.max_batch, 1),
            ),
            detector=DetectorModel(
                file=r.text("EROGAKI_ONNX_DETECTOR_MODEL", det.file),
                kind=r.choice("EROGAKI_ONNX_DETECTOR_KIND", det.kind, DETECTOR_KINDS),
                image_input=r.text("EROGAKI_ONNX_DETECTOR_INPUT", det.image_input),
                scores_output=r.text("EROGAKI_ONNX_DETECTOR_SCORES", det.scores_output),
                classes_output=r.text("EROGAKI_ONNX_DETECTOR_CLASSES", det.classes_output),
                masks_output=r.text("EROGAKI_ONNX_DETECTOR_MASKS", det.masks_output),
                threshold=r.fraction("EROGAKI_ONNX_DETECTOR_THRESHOLD", det.threshold),
                mask_threshold=r.fraction("EROGAKI_ONNX_MASK_THRESHOLD", det.mask_threshold),
                letterbox=r.choice("EROGAKI_ONNX_DETECTOR_LETTERBOX", det.letterbox, LETTERBOXES),
                pixels=r.choice("EROGAKI_ONNX_DETECTOR_PIXELS", det.pixels, PIXEL_FORMATS),
                bar_classes=r.names("EROGAKI_ONNX_DETECTOR_BAR_CLASSES"),
                mosaic_classes=r.names("EROGAKI_ONNX_DETECTOR_MOSAIC_CLASSES"),
                yolo_input=r.text("EROGAKI_ONNX_YOLO_INPUT", det.yolo_input),
                yolo_output=r.text("EROGAKI_ONNX_YOLO_OUTPUT", det.yolo_output),
                yolo_protos=r.text("EROGAKI_ONNX_YOLO_PROTOS", det.yolo_protos),
                yolo_threshold=r.fraction("EROGAKI_ONNX_YOLO_THRESHOLD", det.yolo_threshold),
                yolo_iou=r.fraction("EROGAKI_ONNX_YOLO_IOU", det.yolo_iou),
                yolo_size=r.integer("EROGAKI_ONNX_YOLO_SIZE", det.yolo_size, 32),
            ),
            esrgan=EsrganModel(
                file=r.text("EROGAKI_ONNX_ESRGAN_MODEL", esr.file),
                input=r.text("EROGAKI_ONNX_ESRGAN_INPUT", esr.input),
                output=r.text("EROGAKI_ONNX_ESRGAN_OUTPUT", esr.output),
                tile=r.integer("EROGAKI_ONNX_ESRGAN_TILE", esr.tile, 16),
            ),
            provider=r.choice("EROGAKI_ONNX_PROVIDER", top.provider, PROVIDERS),
            inpainter=r.choice("EROGAKI_ONNX_INPAINTER", top.inpainter, INPAINTERS),
            inpaint_margin=r.integer("EROGAKI_ONNX_INPAINT_MARGIN", top.inpaint_margin, 0),
            inpaint_grow=r.integer("EROGAKI_ONNX_INPAINT_GROW", top.inpaint_grow, 0),
            mask_grow=r.integer("EROGAKI_ONNX_MASK_GROW", top.mask_grow, 0),
            mosaic=r.choice("EROGAKI_ONNX_MOSAIC", top.mosaic, MOSAIC_METHODS),
            mosaic_feather=r.integer("EROGAKI_ONNX_MOSAIC_FEATHER", top.mosaic_feather, 0),
            mosaic_default_block=r.integer(
                "EROGAKI_ONNX_MOSAIC_DEFAULT_BLOCK", top.mosaic_default_block, 2
            ),
        )


def model_path(models_dir: Path, file: str) -> Path:
    path = Path(file)
    return path if path.is_absolute() else models_dir / path


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str) -> str:
        return self.env.get(name, "").strip() or default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def integer(self, name: str, default: int, minimum: int) -> int:
        return env_int(self.env, name, default, minimum)

    def fraction(self, name: str, default: float) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be between 0 and 1, got {raw!r}")
        return value

    def scale(self, name: str) -> float | None:
        raw = self.env.get(name, "").strip().lower()
        if raw in ("", "auto"):
            return None
        if raw in ("1", "1.0"):
            return 1.0
        if raw in ("255", "255.0"):
            return 255.0
        raise ConfigError(f"{name} must be auto, 255 or 1, got {raw!r}")

    def names(self, name: str) -> tuple[str, ...] | None:
        """A comma-separated list of class names or ids; ``none`` for an empty one."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return None
        if raw.lower() == "none":
            return ()
        items = tuple(item.strip() for item in raw.split(",") if item.strip())
        if not items:
            raise ConfigError(f"{name} must list class names or ids, got {raw!r}")
        return items
