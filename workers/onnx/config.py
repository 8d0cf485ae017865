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
class DetectorModel:
    file: str = "hentai_maskrcnn.onnx"
    image_input: str = "image"
    scores_output: str = "scores"
    classes_output: str = "classes"
    masks_output: str = "masks"
    # hent-AI's own DETECTION_MIN_CONFIDENCE.
    threshold: float = 0.75
    mask_threshold: float = 0.5


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
    detector: DetectorModel = DetectorModel()
    esrgan: EsrganModel = EsrganModel()
    provider: str = "auto"
    # Pixels the detected masks grow by before use.
    mask_grow: int = 3
    # Width of the blend ramp at the inner edge of a restored mosaic.
    mosaic_feather: int = 4
    # Block size used when a mosaic's grid cannot be measured.
    mosaic_default_block: int = 12

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OnnxConfig:
        """Parse the ``EROGAKI_ONNX_*`` variables; ``ConfigError`` names a bad one."""
        r = _Reader(env)
        dcp, det, esr, top = DeepCreamPyModel(), DetectorModel(), EsrganModel(), cls()
        provider = r.text("EROGAKI_ONNX_PROVIDER", top.provider).lower()
        if provider not in PROVIDERS:
            raise ConfigError(
                f"EROGAKI_ONNX_PROVIDER must be one of {', '.join(PROVIDERS)}, got {provider!r}"
            )
        return cls(
            deepcreampy=DeepCreamPyModel(
                file=r.text("EROGAKI_ONNX_DEEPCREAMPY_MODEL", dcp.file),
                image_input=r.text("EROGAKI_ONNX_DEEPCREAMPY_IMAGE_INPUT", dcp.image_input),
                image2_input=r.text("EROGAKI_ONNX_DEEPCREAMPY_IMAGE2_INPUT", dcp.image2_input),
                mask_input=r.text("EROGAKI_ONNX_DEEPCREAMPY_MASK_INPUT", dcp.mask_input),
                output=r.text("EROGAKI_ONNX_DEEPCREAMPY_OUTPUT", dcp.output),
                max_batch=r.integer("EROGAKI_ONNX_DEEPCREAMPY_MAX_BATCH", dcp.max_batch, 1),
            ),
            detector=DetectorModel(
                file=r.text("EROGAKI_ONNX_DETECTOR_MODEL", det.file),
                image_input=r.text("EROGAKI_ONNX_DETECTOR_INPUT", det.image_input),
                scores_output=r.text("EROGAKI_ONNX_DETECTOR_SCORES", det.scores_output),
                classes_output=r.text("EROGAKI_ONNX_DETECTOR_CLASSES", det.classes_output),
                masks_output=r.text("EROGAKI_ONNX_DETECTOR_MASKS", det.masks_output),
                threshold=r.fraction("EROGAKI_ONNX_DETECTOR_THRESHOLD", det.threshold),
                mask_threshold=r.fraction("EROGAKI_ONNX_MASK_THRESHOLD", det.mask_threshold),
            ),
            esrgan=EsrganModel(
                file=r.text("EROGAKI_ONNX_ESRGAN_MODEL", esr.file),
                input=r.text("EROGAKI_ONNX_ESRGAN_INPUT", esr.input),
                output=r.text("EROGAKI_ONNX_ESRGAN_OUTPUT", esr.output),
                tile=r.integer("EROGAKI_ONNX_ESRGAN_TILE", esr.tile, 16),
            ),
            provider=provider,
            mask_grow=r.integer("EROGAKI_ONNX_MASK_GROW", top.mask_grow, 0),
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
