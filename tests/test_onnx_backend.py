"""The onnx backend with stand-in models the tests build (workers/onnx/standins.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError
from erogaki_common.images import Limits
from erogaki_common.protocol import Mode
from erogaki_common.settings import parse_settings
from erogaki_common.submit import Submitter
from tests.imaging import Pixels, pixels_of, png
from workers import pipeline
from workers.imageops import green_mask, painted_mask
from workers.imageops import synthetic as syn
from workers.onnx import OnnxConfig, OnnxDeepCreamPy, OnnxHentai, standins
from workers.onnx.config import DeepCreamPyModel, DetectorModel, EsrganModel
from workers.onnx.deepcreampy import Crop, crop_for
from workers.onnx.detector import grow
from workers.onnx.esrgan import Esrgan
from workers.runner import deepcreampy_backend, hentai_backend

ROOT = Path(__file__).resolve().parent.parent
GREEN = (0, 255, 0)
# A fill the stand-in returns in the hole, in the model's [-1, 1] range: 200 in pixels.
FILL_PIXEL = 200
FILL = FILL_PIXEL / 127.5 - 1.0
LIMITS = Limits(25 * 1024 * 1024, 40_000_000)


def dcp(tmp_path: Path, **kwargs: object) -> OnnxDeepCreamPy:
    standins.deepcreampy(tmp_path / "deepcreampy_bar.onnx", fill=FILL, **kwargs)  # type: ignore[arg-type]
    return OnnxDeepCreamPy.load(OnnxConfig(), tmp_path)


def hentai(tmp_path: Path, config: OnnxConfig | None = None) -> OnnxHentai:
    if not (tmp_path / "esrgan_4x.onnx").exists():
        standins.esrgan(tmp_path / "esrgan_4x.onnx")
    return OnnxHentai.load(config or OnnxConfig(), tmp_path)


# --- DeepCreamPy -----------------------------------------------------------------------


def test_crop_geometry() -> None:
    # 1.5x the region's larger side, centred on it.
    assert crop_for((300, 300, 500, 340), 1000, 800) == Crop(250, 170, 300)
    # At least 256 px.
    assert crop_for((100, 100, 110, 120), 1000, 800) == Crop(0, 0, 256)
    # At most the short side, and moved inside the image at every border.
    assert crop_for((0, 0, 700, 20), 1000, 300) == Crop(200, 0, 300)
    assert crop_for((980, 5, 1000, 15), 1000, 800) == Crop(744, 0, 256)
    assert crop_for((5, 780, 15, 800), 1000, 800) == Crop(0, 544, 256)
    # An image smaller than 256 px: the whole short side.
    assert crop_for((10, 10, 20, 20), 200, 120) == Crop(0, 0, 120)


def test_crop_geometry_is_square_and_inside() -> None:
    rng = np.random.default_rng(1)
    for _ in range(500):
        w, h = (int(v) for v in rng.integers(20, 1500, 2))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        c = crop_for((x0, y0, x1, y1), w, h)
        assert 0 <= c.left <= w - c.size and 0 <= c.top <= h - c.size
        assert c.size == min(max(int(max(x1 - x0, y1 - y0) * 1.5), 256), w, h)
        if c.size >= max(x1 - x0, y1 - y0):
            # Whenever the crop can hold the region, it does.
            assert c.left <= x0 and x1 <= c.left + c.size
            assert c.top <= y0 and y1 <= c.top + c.size


def masked_scene() -> tuple[Pixels, NDArray[np.bool_]]:
    """A scene with several green regions: small, large, and at each border."""
    rgb = syn.draw_scene(3, (400, 600))
    mask = np.zeros(rgb.shape[:2], bool)
    mask[50:80, 40:200] = True  # small bar
    mask[150:330, 250:300] = True  # tall bar, crop larger than 256
    mask[0:15, 400:480] = True  # top border
    mask[370:400, 520:600] = True  # bottom-right corner
    mask[200:230, 0:40] = True  # left border
    cv2.circle(mask.view(np.uint8), (470, 250), 30, 1, -1)  # a round region
    # The green in the picture must be exactly the mask: no stray green in the scene.
    rgb[np.all(rgb == GREEN, axis=-1)] = (0, 254, 0)
    rgb[mask] = GREEN
    return rgb, mask


@pytest.mark.parametrize("batch", [1, "n"], ids=["fixed-batch-loop", "dynamic-batch"])
def test_only_masked_pixels_change_to_the_models_output(tmp_path: Path, batch: int | str) -> None:
    rgb, mask = masked_scene()
    backend = dcp(tmp_path, batch=batch)
    assert backend.inpainter.batch == (1 if batch == 1 else 8)
    out = backend.inpaint(rgb, mask)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], rgb[~mask])
    assert np.abs(out[mask].astype(int) - FILL_PIXEL).max() <= 1


def test_region_wider_than_the_short_side_is_filled_whole(tmp_path: Path) -> None:
    rgb = syn.draw_scene(4, (200, 900))
    mask = np.zeros(rgb.shape[:2], bool)
    mask[80:120, 10:890] = True  # wider than any 200 px crop
    rgb[mask] = GREEN
    out = dcp(tmp_path).inpaint(rgb, mask)
    assert np.array_equal(out[~mask], rgb[~mask])
    assert np.abs(out[mask].astype(int) - FILL_PIXEL).max() <= 1


@pytest.mark.parametrize("batch", [1, "n"], ids=["fixed-batch", "dynamic-batch"])
def test_many_specks_share_crops_and_run_a_few_at_a_time(tmp_path: Path, batch: int | str) -> None:
    # 1,024 one-pixel specks once made 1,024 crops, all their tensors held at once.
    backend = dcp(tmp_path, batch=batch)
    sizes: list[int] = []
    run = backend.inpainter.model.run

    def counted(outputs: object, feeds: dict[str, NDArray[np.float32]]) -> object:
        sizes.append(next(iter(feeds.values())).shape[0])
        return run(outputs, feeds)  # type: ignore[arg-type]

    backend.inpainter.model.run = counted  # type: ignore[method-assign]
    rgb = syn.draw_scene(5, (768, 768))
    mask = np.zeros(rgb.shape[:2], bool)
    mask[::24, ::24] = True
    rgb[mask] = GREEN
    out = backend.inpaint(rgb, mask)
    assert np.array_equal(out[~mask], rgb[~mask])
    assert np.abs(out[mask].astype(int) - FILL_PIXEL).max() <= 1
    # One crop per 170 px square at most (5x5 of them), never more than the batch at once.
    assert sum(sizes) <= 25 and max(sizes) <= backend.inpainter.batch


def test_model_sees_the_hole_and_its_context(tmp_path: Path) -> None:
    # A pass-through stand-in returns its image input: the context, and -1 (black) in
    # the hole. A grey scene with one green bar must come back black in the bar only.
    rgb = np.full((300, 300, 3), 120, np.uint8)
    mask = np.zeros((300, 300), bool)
    mask[100:140, 30:270] = True
    rgb[mask] = GREEN
    standins.deepcreampy(tmp_path / "deepcreampy_bar.onnx", fill=-1.0, keep_known=True)
    out = OnnxDeepCreamPy.load(OnnxConfig(), tmp_path).inpaint(rgb, mask)
    assert np.array_equal(out[~mask], rgb[~mask])
    # Resampling blurs the hole's edge by a pixel or two; inside it the model saw -1.
    inner = cv2.erode(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert (out[inner] <= 1).all()
    assert out[mask].mean() < 30


def test_pipeline_keeps_size_and_alpha(tmp_path: Path) -> None:
    rgb, mask = masked_scene()
    alpha = np.full(mask.shape, 180, np.uint8)
    data = png(np.dstack([rgb, alpha]), "RGBA")
    timings: dict[str, float] = {}
    out = pixels_of(pipeline.inpaint_green(data, dcp(tmp_path), LIMITS, timings))
    assert out.shape == (400, 600, 4)
    assert (out[..., 3] == 180).all()
    assert not green_mask(np.ascontiguousarray(out[..., :3])).any()
    # The pipeline inpaints what painted_mask finds: the paint, and any blend at its edge.
    painted = painted_mask(rgb)
    assert (painted >= mask).all()
    assert np.array_equal(out[..., :3][~painted], rgb[~painted])
    assert "inpaint" in timings


# --- detection ---------------------------------------------------------------------------

BOXES: list[standins.Box] = [
    (1, 0.9, (0.25, 0.25, 0.5, 0.5)),  # a bar
    (1, 0.5, (0.6, 0.1, 0.9, 0.2)),  # a bar under the 0.75 threshold
    (2, 0.95, (0.1, 0.6, 0.4, 0.9)),  # a mosaic
]


def box_mask(shape: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> NDArray[np.bool_]:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_detected_bars_are_merged_thresholded_and_grown(tmp_path: Path) -> None:
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", BOXES, (64, 64))
    backend = hentai(tmp_path)
    rgb = syn.draw_scene(6, (128, 128))
    # 64 -> 128: the model's 16..32 is the image's 32..64.
    assert np.array_equal(backend.detect_bars(rgb), grow(box_mask((128, 128), 32, 32, 64, 64), 3))
    # A lower threshold takes the weaker bar too.
    low = OnnxConfig(detector=DetectorModel(threshold=0.4), mask_grow=0)
    backend = hentai(tmp_path, low)
    expected = box_mask((128, 128), 32, 32, 64, 64) | box_mask((128, 128), 76, 12, 116, 26)
    assert np.array_equal(backend.detect_bars(rgb), expected)


@pytest.mark.parametrize(
    ("letterbox", "y0"), [("centre", 0), ("top-left", 64)], ids=["centre", "top-left"]
)
def test_fixed_size_detector_letterboxes(tmp_path: Path, letterbox: str, y0: int) -> None:
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", BOXES[:1], (64, 64))
    config = OnnxConfig(detector=DetectorModel(letterbox=letterbox), mask_grow=0)
    backend = hentai(tmp_path, config)
    # 256x128 (w x h) scales by 1/4 to 64x32: centred, it fills the input's rows 16..48,
    # so the box at model 16..32 (both axes) is image x 64..128, y 0..64; at the top-left,
    # y 64..128.
    rgb = syn.draw_scene(6, (128, 256))
    found, expected = backend.detect_bars(rgb), box_mask((128, 256), 64, y0, 128, y0 + 64)
    # Bilinear upsampling of the mask rounds off the box's corner pixels, nothing else.
    assert not (found & ~expected).any() and (expected & ~found).sum() <= 4


def test_bar_mode_end_to_end_with_a_dynamic_detector(tmp_path: Path) -> None:
    standins.detector_dark(tmp_path / "hentai_maskrcnn.onnx", [(1, 0.9), (2, 0.3)])
    backend = hentai(tmp_path)
    clean = syn.draw_scene(11, (300, 360))
    clean[clean.max(axis=-1) < 8] = 30  # nothing black but the bars
    censored, truth = syn.add_bars(clean, np.random.default_rng(2), 2, syn.BLACK, 15.0)
    out = pixels_of(pipeline.mask_bars(png(censored), backend, LIMITS, {}))
    painted = np.all(out == GREEN, axis=-1)
    assert np.array_equal(painted, grow(truth, 3))
    assert np.array_equal(out[~painted], censored[~painted])


# --- ESRGAN ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, (16, 16)], ids=["dynamic", "fixed-16"])
def test_esrgan_tiles_without_seams(tmp_path: Path, size: tuple[int, int] | None) -> None:
    standins.esrgan(tmp_path / "e.onnx", size=size)
    upscaler = Esrgan.load(tmp_path / "e.onnx", EsrganModel(tile=16), "auto")
    assert upscaler.scale == 4
    image = np.random.default_rng(0).random((50, 37, 3)).astype(np.float32)
    out = upscaler.upscale(image)
    assert np.array_equal(out, np.repeat(np.repeat(image, 4, 0), 4, 1))


def test_mosaic_restore_changes_only_the_mask_and_feathers(tmp_path: Path) -> None:
    clean = syn.draw_scene(5, (256, 256))
    censored, truth = syn.add_mosaic(clean, np.random.default_rng(9), 8, (3, 5))
    ys, xs = np.nonzero(truth)
    box = (xs.min() / 256, ys.min() / 256, (xs.max() + 1) / 256, (ys.max() + 1) / 256)
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", [(2, 0.9, box)], (256, 256))
    backend = hentai(tmp_path)
    restored, mask = backend.restore_mosaic(censored)
    assert restored.shape == censored.shape
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    assert np.array_equal(mask, grow(box_mask(truth.shape, x0, y0, x1, y1), 3))
    assert np.array_equal(restored[~mask], censored[~mask])
    assert (restored[mask] != censored[mask]).any()
    # Deep inside, the mosaic's blocks are gone: neighbouring pixels inside a cell differ.
    inner = cv2.erode(truth.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    steps = np.abs(np.diff(restored.astype(int), axis=1)).sum(-1)[inner[:, 1:] & inner[:, :-1]]
    before = np.abs(np.diff(censored.astype(int), axis=1)).sum(-1)[inner[:, 1:] & inner[:, :-1]]
    assert (steps > 0).mean() > (before > 0).mean()
    out = pixels_of(pipeline.restore_mosaic(png(censored), backend, LIMITS, {}))
    assert np.array_equal(out, restored)
    # The result fades in: on the mask's outermost pixels it moves a fifth of the way.
    sharp, _ = hentai(tmp_path, OnnxConfig(mosaic_feather=0)).restore_mosaic(censored)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    edge = mask & ~cv2.erode(mask.astype(np.uint8), cross).astype(bool)
    full = sharp[edge].astype(float) - censored[edge]
    part = restored[edge].astype(float) - censored[edge]
    assert np.abs(part - full / 5).max() <= 1.0


def test_no_detection_is_an_empty_mask(tmp_path: Path) -> None:
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", [(1, 0.1, (0, 0, 1, 1))])
    backend = hentai(tmp_path)
    rgb = syn.draw_scene(2, (100, 120))
    assert not backend.detect_bars(rgb).any()
    restored, mask = backend.restore_mosaic(rgb)
    assert not mask.any() and restored is rgb


# --- start-up checks ---------------------------------------------------------------------


def refusal(tmp_path: Path, worker: str = "deepcreampy") -> str:
    settings = parse_settings({"EROGAKI_MODELS_DIR": str(tmp_path)})
    factory = deepcreampy_backend if worker == "deepcreampy" else hentai_backend
    with pytest.raises(ConfigError) as caught:
        factory("onnx", settings)
    return str(caught.value)


def test_missing_model_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path)
    assert str(tmp_path / "deepcreampy_bar.onnx") in message
    assert "does not exist" in message and "'Placeholder:0'" in message


def test_garbage_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deepcreampy_bar.onnx").write_bytes(b"<html>not a model</html>")
    message = refusal(tmp_path)
    assert str(tmp_path / "deepcreampy_bar.onnx") in message
    assert "not a model onnxruntime can load" in message


def test_unreadable_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deepcreampy_bar.onnx").mkdir()
    assert "not a readable file" in refusal(tmp_path)


def test_wrong_input_names_are_refused(tmp_path: Path) -> None:
    names = DeepCreamPyModel(image_input="image", image2_input="image2", mask_input="mask")
    standins.deepcreampy(tmp_path / "deepcreampy_bar.onnx", names=names)
    message = refusal(tmp_path)
    assert "input 'Placeholder:0' is missing" in message
    assert "'image'" in message  # what the file has


def test_wrong_shapes_are_refused(tmp_path: Path) -> None:
    standins.deepcreampy(tmp_path / "deepcreampy_bar.onnx", size=128)
    message = refusal(tmp_path)
    assert "[1,128,128,3]" in message and "must be 256" in message


def test_wrong_dtype_and_rank_are_refused(tmp_path: Path) -> None:
    # A DeepCreamPy model where the detector should be, and no ESRGAN at all.
    standins.deepcreampy(
        tmp_path / "hentai_maskrcnn.onnx",
        names=DeepCreamPyModel(image_input="image", output="scores"),
    )
    message = refusal(tmp_path, "hent-ai")
    assert "hentai_maskrcnn.onnx" in message
    assert "input 'image' has rank 4 [1,256,256,3]" not in message  # rank matches
    assert "dimension 1 must be 3" in message
    assert "output 'classes' is missing" in message
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", BOXES)
    assert "esrgan_4x.onnx does not exist" in refusal(tmp_path, "hent-ai")


def test_esrgan_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", BOXES)
    # Outputs of rank 4 with a non-whole scale are caught by the probe run.
    standins.detector_boxes(
        tmp_path / "esrgan_4x.onnx", BOXES, names=DetectorModel(image_input="input")
    )
    assert "esrgan_4x.onnx" in refusal(tmp_path, "hent-ai")


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_DETECTOR_THRESHOLD"):
        OnnxConfig.from_env({"EROGAKI_ONNX_DETECTOR_THRESHOLD": "2"})
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_MASK_GROW"):
        OnnxConfig.from_env({"EROGAKI_ONNX_MASK_GROW": "three"})
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_PROVIDER"):
        OnnxConfig.from_env({"EROGAKI_ONNX_PROVIDER": "tpu"})
    config = OnnxConfig.from_env(
        {"EROGAKI_ONNX_DEEPCREAMPY_MODEL": "/abs/dcp.onnx", "EROGAKI_ONNX_MASK_GROW": "0"}
    )
    assert config.deepcreampy.file == "/abs/dcp.onnx" and config.mask_grow == 0
    assert config.detector.threshold == 0.75 and config.esrgan.tile == 256


# --- the worker program ------------------------------------------------------------------


def worker_env(models: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EROGAKI_")}
    return {**env, "REDIS_URL": redis_url, "EROGAKI_MODELS_DIR": str(models)}


async def test_worker_process_inpaints_a_job(tmp_path: Path, redis_url: str) -> None:
    standins.deepcreampy(tmp_path / "deepcreampy_bar.onnx", fill=FILL)
    rgb, mask = masked_scene()
    async with Submitter(redis_url) as submitter:
        job_id = await submitter.submit(png(rgb), Mode.BAR_MASKED, timeout=60)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "erogaki", "worker", "deepcreampy", "--backend", "onnx",
            "--burst", "--instance", "onnx-test", cwd=ROOT, env=worker_env(tmp_path, redis_url),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            result = pixels_of(await asyncio.wait_for(submitter.result(job_id), 60))
            _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
    assert proc.returncode == 0, stderr.decode()
    assert "runs on CPUExecutionProvider" in stderr.decode()
    assert result.shape == rgb.shape
    painted = painted_mask(rgb)
    assert np.array_equal(result[~painted], rgb[~painted])
    assert np.abs(result[mask].astype(int) - FILL_PIXEL).max() <= 1


@pytest.mark.parametrize("worker", ["deepcreampy", "hent-ai"])
def test_worker_with_a_bad_model_exits_2(tmp_path: Path, redis_url: str, worker: str) -> None:
    for name in ("deepcreampy_bar.onnx", "hentai_maskrcnn.onnx"):
        (tmp_path / name).write_bytes(b"\x00garbage")
    done = subprocess.run(
        [sys.executable, "-m", "erogaki", "worker", worker, "--backend", "onnx"],
        cwd=ROOT, env=worker_env(tmp_path, redis_url), capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr.decode()
    message = done.stderr.decode()
    expected = "deepcreampy_bar.onnx" if worker == "deepcreampy" else "hentai_maskrcnn.onnx"
    assert str(tmp_path / expected) in message
    assert "Traceback" not in message


# --- auto mode -------------------------------------------------------------------------

AUTO_BOXES: list[standins.Box] = [
    (1, 0.9, (0.0625, 0.0625, 0.3125, 0.1875)),  # a bar: x 16..80, y 16..48 of 256
    (2, 0.9, (0.5, 0.5, 0.875, 0.875)),  # a mosaic: 128..224
]


def auto_picture() -> tuple[Pixels, NDArray[np.bool_]]:
    clean = syn.draw_scene(5, (256, 256))
    window = np.ascontiguousarray(clean[128:224, 128:224])
    mosaic, _ = syn.add_mosaic(window, np.random.default_rng(3), 8, (0, 0))
    censored = clean.copy()
    censored[128:224, 128:224] = mosaic
    censored[16:48, 16:80] = 0
    return censored, box_mask((256, 256), 128, 128, 224, 224)


def count_calls(model: object) -> list[int]:
    calls: list[int] = []
    run = model.run  # type: ignore[attr-defined]

    def counted(outputs: object, feeds: object) -> object:
        calls.append(1)
        return run(outputs, feeds)

    model.run = counted  # type: ignore[attr-defined]
    return calls


def test_auto_detects_once_restores_the_mosaic_and_returns_the_bars(tmp_path: Path) -> None:
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", AUTO_BOXES, (256, 256))
    backend = hentai(tmp_path)
    calls = count_calls(backend.detector.model)
    censored, mosaic_box = auto_picture()
    restored, mosaic, bars = backend.auto(censored)
    assert len(calls) == 1
    assert np.array_equal(bars, grow(box_mask((256, 256), 16, 16, 80, 48), 3))
    assert np.array_equal(mosaic, grow(mosaic_box, 3))
    # The mosaic is redrawn, nothing else: the bars are left for the inpainting worker.
    assert np.array_equal(restored[~mosaic], censored[~mosaic])
    assert (restored[mosaic] != censored[mosaic]).any()
    same, _ = backend.restore_mosaic(censored)
    assert np.array_equal(restored, same)
    # Through the pipeline: bars painted green, and the job goes on to inpainting.
    data, forward = pipeline.auto(png(censored), backend, LIMITS, {})
    out = pixels_of(data)
    assert forward and np.array_equal(np.all(out == GREEN, axis=-1), bars)


def test_auto_can_restore_the_mosaic_by_inpainting(tmp_path: Path) -> None:
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", AUTO_BOXES, (256, 256))
    standins.lama(tmp_path / "lama.onnx", fill=FILL_PIXEL / 255)
    # No ESRGAN file: with EROGAKI_ONNX_MOSAIC=inpaint the worker does not need one.
    config = OnnxConfig(mosaic="inpaint", inpainter="lama")
    backend = OnnxHentai.load(config, tmp_path)
    assert backend.upscaler is None and backend.inpainter is not None
    calls = count_calls(backend.detector.model)
    censored, _ = auto_picture()
    restored, mosaic, bars = backend.auto(censored)
    assert len(calls) == 1 and bars.any()
    assert np.array_equal(restored[~mosaic], censored[~mosaic])
    assert (restored[mosaic] == FILL_PIXEL).all()
    restored, mosaic = backend.restore_mosaic(censored)
    assert (restored[mosaic] == FILL_PIXEL).all()


def test_auto_finds_nothing(tmp_path: Path) -> None:
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", [(1, 0.2, (0, 0, 1, 1))])
    rgb = syn.draw_scene(2, (100, 120))
    restored, mosaic, bars = hentai(tmp_path).auto(rgb)
    assert restored is rgb and not mosaic.any() and not bars.any()


def test_mosaic_by_inpainting_needs_the_inpainter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standins.detector_boxes(tmp_path / "hentai_maskrcnn.onnx", AUTO_BOXES)
    monkeypatch.setenv("EROGAKI_ONNX_MOSAIC", "inpaint")
    monkeypatch.setenv("EROGAKI_ONNX_INPAINTER", "migan")
    message = refusal(tmp_path, "hent-ai")
    assert str(tmp_path / "migan.onnx") in message and "does not exist" in message
    assert "esrgan" not in message
