"""The hent-AI worker's detectors: YOLO-seg exports (raw and nms=True) and the Mask R-CNN
contract's letterbox and pixel options, with stand-ins built in code."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError
from erogaki_common.images import Limits
from tests.imaging import pixels_of, png
from workers import pipeline
from workers.onnx import standins
from workers.onnx.backends import OnnxHentai
from workers.onnx.config import DetectorModel, OnnxConfig
from workers.onnx.detector import BAR, MOSAIC, Letterbox, MaskRcnnDetector, load_detector
from workers.onnx.yolo import YoloSegDetector, nms

MEAN = np.array(standins.MEAN_PIXEL, np.float32)

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


def picture(h: int, w: int, black: Rect, white: Rect | None = None) -> NDArray[np.uint8]:
    rgb = np.full((h, w, 3), 128, np.uint8)
    rgb[:, :, 0] = np.linspace(60, 200, w, dtype=np.uint8)[None]  # not flat: no accident
    x0, y0, x1, y1 = black
    rgb[y0:y1, x0:x1] = 0
    if white is not None:
        x0, y0, x1, y1 = white
        rgb[y0:y1, x0:x1] = 255
    return rgb


def rect_mask(shape: tuple[int, int], rect: Rect) -> NDArray[np.bool_]:
    m = np.zeros(shape, bool)
    m[rect[1] : rect[3], rect[0] : rect[2]] = True
    return m


def near(found: NDArray[np.bool_], shape: tuple[int, int], rect: Rect, px: int) -> bool:
    """``found`` lies within ``rect`` grown by ``px`` pixels and covers all but 8% of it
    (coarse mask prototypes round the corners off)."""
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    truth = rect_mask(shape, rect)
    outer = cv2.dilate(truth.astype(np.uint8), kernel).astype(bool)
    return bool((found <= outer).all() and (found & truth).sum() >= 0.92 * truth.sum())


def yolo(tmp_path: Path, cfg: DetectorModel | None = None, **kwargs: object) -> YoloSegDetector:
    standins.yolo_seg(tmp_path / "det.onnx", **kwargs)  # type: ignore[arg-type]
    detector = load_detector(tmp_path / "det.onnx", cfg or DetectorModel(), "cpu")
    assert isinstance(detector, YoloSegDetector)
    return detector


# --- letterbox -----------------------------------------------------------------------


def test_letterbox_geometry_properties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(2000):
        h, w = (int(v) for v in rng.integers(1, 3000, 2))
        th, tw = (int(v) for v in rng.integers(16, 1100, 2))
        for centre in (True, False):
            box = Letterbox.fit((h, w), (th, tw), centre)
            (nh, nw), (oy, ox) = box.inner, box.offset
            # Inside the input, touching two opposite sides, aspect kept to a pixel.
            assert oy >= 0 and oy + nh <= th and ox >= 0 and ox + nw <= tw
            assert nh == th or nw == tw
            scale = min(th / h, tw / w)
            assert abs(nh - max(h * scale, 1)) <= 1 and abs(nw - max(w * scale, 1)) <= 1
            if centre:
                assert abs((th - nh - oy) - oy) <= 1 and abs((tw - nw - ox) - ox) <= 1
            else:
                assert (oy, ox) == (0, 0)
            # The picture's corners map onto the inner part's corners.
            assert box.to_image(ox, oy) == (0.0, 0.0)
            x, y = box.to_image(ox + nw, oy + nh)
            assert abs(x - w) < 1e-6 and abs(y - h) < 1e-6


def test_letterbox_pads_with_the_fill() -> None:
    box = Letterbox.fit((100, 300), (64, 64), centre=True)
    canvas = box.apply(np.zeros((100, 300, 3), np.uint8), 114)
    assert box.inner == (21, 64) and box.offset == (21, 0)
    assert (canvas[:21] == 114).all() and (canvas[42:] == 114).all()
    assert (canvas[21:42] == 0).all()


# --- YOLO-seg ------------------------------------------------------------------------

SHAPES = [(640, 640), (320, 480), (900, 500), (1000, 2000), (200, 260)]


@pytest.mark.parametrize("export", ["raw", "nms", "dynamic"])
@pytest.mark.parametrize(("h", "w"), SHAPES, ids=[f"{h}x{w}" for h, w in SHAPES])
def test_yolo_letterbox_round_trip(tmp_path: Path, export: str, h: int, w: int) -> None:
    # The stand-in boxes the black pixels it is fed as "bar" and the white ones as
    # "mosaic": what comes back must be where the rectangles were drawn, whatever the
    # picture's size and aspect. Black padding instead of grey 114 would be a bar.
    size = None if export == "dynamic" else 640
    detector = yolo(tmp_path, DetectorModel(yolo_size=448), nms=export == "nms", size=size)
    black = (w // 8, h // 3, w // 8 + w // 4, h // 3 + h // 5)
    white = (w // 2, h // 10, w // 2 + w // 3, h // 10 + h // 8)
    found = detector.detect(picture(h, w, black, white))
    assert set(found) == {BAR, MOSAIC}
    # One pixel of resampling at the picture's own scale, plus one of the model's.
    scale = max(h, w) / (448 if export == "dynamic" else 640)
    px = 1 + int(np.ceil(scale))
    assert near(found[BAR], (h, w), black, px), export
    assert near(found[MOSAIC], (h, w), white, px), export


def fed(detector: YoloSegDetector | MaskRcnnDetector, rgb: NDArray[np.uint8]) -> NDArray[Any]:
    """The tensor the detector gives its model for ``rgb``."""
    seen: list[NDArray[Any]] = []
    run = detector.model.run

    def spy(outputs: Any, feeds: Any) -> Any:
        seen.append(next(iter(feeds.values())))
        return run(outputs, feeds)

    detector.model.run = spy  # type: ignore[method-assign]
    detector.detect(rgb)
    detector.model.run = run  # type: ignore[method-assign]
    return seen[0]


def test_yolo_input_is_centred_on_grey_114(tmp_path: Path) -> None:
    tensor = fed(yolo(tmp_path), np.zeros((320, 480, 3), np.uint8))
    # 480x320 scales to 640x427, centred: 106 rows of padding above, 107 below.
    assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
    rows = tensor[0].max(axis=(0, 2))
    assert np.allclose(rows[:106], 114 / 255) and np.allclose(rows[533:], 114 / 255)
    assert (tensor[0, :, 106:533] == 0).all()


def test_yolo_nothing_found_is_no_mask(tmp_path: Path) -> None:
    detector = yolo(tmp_path)
    assert detector.detect(np.full((300, 400, 3), 128, np.uint8)) == {}


def test_yolo_class_mapping_by_name_and_id(tmp_path: Path) -> None:
    rgb = picture(480, 640, (100, 100, 200, 180), (400, 300, 500, 400))
    swapped = yolo(tmp_path, DetectorModel(bar_classes=("MOSAIC",), mosaic_classes=("1",)))
    found = swapped.detect(rgb)
    assert near(found[BAR], (480, 640), (400, 300, 500, 400), 1)
    assert near(found[MOSAIC], (480, 640), (100, 100, 200, 180), 1)
    # Class "other" (a whole-picture decoy at 0.95) counts only when mapped.
    other = yolo(tmp_path, DetectorModel(bar_classes=("other",), mosaic_classes=()))
    assert other.detect(rgb)[BAR].all() and MOSAIC not in other.detect(rgb)


def test_yolo_thresholds_are_its_own(tmp_path: Path) -> None:
    rgb = picture(480, 640, (100, 100, 200, 180))
    truth = (100, 100, 200, 180)
    # Default 0.25 drops the whole-picture decoy scored 0.1; a lower threshold keeps it.
    assert near(yolo(tmp_path).detect(rgb)[BAR], (480, 640), truth, 1)
    assert yolo(tmp_path, DetectorModel(yolo_threshold=0.05)).detect(rgb)[BAR].all()
    # The 10%-larger copy of the box (IoU 0.83) is suppressed at IoU 0.7, kept at 0.9:
    # then its mask, the whole larger box, shows.
    loose = yolo(tmp_path, DetectorModel(yolo_iou=0.9)).detect(rgb)[BAR]
    assert not near(loose, (480, 640), truth, 3)
    assert near(loose, (480, 640), (95, 96, 205, 184), 2)
    # The Mask R-CNN threshold does not apply to YOLO.
    assert BAR in yolo(tmp_path, DetectorModel(threshold=0.95)).detect(rgb)


def test_yolo_log_names_the_classes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        detector = yolo(tmp_path)
    assert "bar: 1 'bar'; mosaic: 2 'mosaic'; unused: 0 'other'" in caplog.text
    assert "raw export" in caplog.text and "raw export" in detector.describe()
    assert yolo(tmp_path, nms=True).nms


def test_yolo_without_names_uses_ids(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        yolo(tmp_path, names=None)
    message = str(caught.value)
    assert str(tmp_path / "det.onnx") in message and "ids 0-2" in message
    assert "EROGAKI_ONNX_DETECTOR_BAR_CLASSES" in message
    detector = yolo(tmp_path, DetectorModel(bar_classes=("1",), mosaic_classes=("2",)), names=None)
    assert detector.count == 3
    rgb = picture(480, 640, (100, 100, 200, 180))
    assert near(detector.detect(rgb)[BAR], (480, 640), (100, 100, 200, 180), 1)


def test_unknown_class_is_refused_naming_the_models_classes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        yolo(tmp_path, DetectorModel(bar_classes=("censor",)))
    message = str(caught.value)
    assert message.startswith("EROGAKI_ONNX_DETECTOR_BAR_CLASSES")
    assert str(tmp_path / "det.onnx") in message and "'censor'" in message
    assert "0 'other', 1 'bar', 2 'mosaic'" in message
    with pytest.raises(ConfigError, match="both name class 1"):
        yolo(tmp_path, DetectorModel(bar_classes=("bar",), mosaic_classes=("1",)))


def test_forced_kind_refuses_the_other_signature(tmp_path: Path) -> None:
    standins.yolo_seg(tmp_path / "y.onnx")
    with pytest.raises(ConfigError) as caught:
        load_detector(tmp_path / "y.onnx", DetectorModel(kind="maskrcnn"), "cpu")
    message = str(caught.value)
    assert str(tmp_path / "y.onnx") in message and "input 'image' is missing" in message
    assert "output0" not in message.split("Expected")[-1]
    standins.detector_dark(tmp_path / "m.onnx")
    with pytest.raises(ConfigError) as caught:
        load_detector(tmp_path / "m.onnx", DetectorModel(kind="yolo-seg"), "cpu")
    assert "input 'images' is missing" in str(caught.value)
    # Recognised by signature when not forced.
    assert isinstance(load_detector(tmp_path / "m.onnx", DetectorModel(), "cpu"), MaskRcnnDetector)
    assert isinstance(load_detector(tmp_path / "y.onnx", DetectorModel(), "cpu"), YoloSegDetector)


def test_neither_signature_lists_both(tmp_path: Path) -> None:
    standins.esrgan(tmp_path / "e.onnx")
    with pytest.raises(ConfigError) as caught:
        load_detector(tmp_path / "e.onnx", DetectorModel(), "cpu")
    message = str(caught.value)
    assert message.startswith("EROGAKI_ONNX_DETECTOR_MODEL: ") and str(tmp_path) in message
    assert "as Mask R-CNN" in message and "as YOLO-seg" in message


def test_yolo_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    # Four classes in the metadata but three in the output: 4+3+32 rows, not 4+4+32.
    names = {0: "a", 1: "bar", 2: "mosaic", 3: "d"}
    standins.yolo_seg(tmp_path / "det.onnx", names=names, count=3)
    with pytest.raises(ConfigError) as caught:
        load_detector(tmp_path / "det.onnx", DetectorModel(), "cpu")
    message = str(caught.value)
    assert str(tmp_path / "det.onnx") in message and "[1, 39, 5]" in message
    assert "[1,40,anchors]" in message


def iou(boxes: NDArray[np.float32], a: int, b: int) -> float:
    x0, y0 = np.maximum(boxes[a, :2], boxes[b, :2])
    x1, y1 = np.minimum(boxes[a, 2:], boxes[b, 2:])
    inter = max(x1 - x0, 0) * max(y1 - y0, 0)
    area_a, area_b = (np.prod(boxes[i, 2:] - boxes[i, :2]) for i in (a, b))
    return float(inter / (area_a + area_b - inter))


def test_nms_properties() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(5, 80, (n, 2))
        boxes = np.hstack([xy, xy + wh]).astype(np.float32)
        thr = float(rng.uniform(0.2, 0.8))
        kept = list(nms(boxes, thr))
        assert kept[0] == 0 and kept == sorted(kept)  # highest score first, order kept
        assert all(iou(boxes, a, b) <= thr for i, a in enumerate(kept) for b in kept[i + 1 :])
        # Each dropped box overlaps a higher-scored kept one too much.
        for d in set(range(n)) - set(kept):
            assert any(k < d and iou(boxes, k, d) > thr for k in kept)


# --- Mask R-CNN ----------------------------------------------------------------------


@pytest.mark.parametrize("pixels", ["unit", "mean"])
@pytest.mark.parametrize("letterbox", ["centre", "top-left"])
def test_maskrcnn_round_trip(tmp_path: Path, pixels: str, letterbox: str) -> None:
    # A fixed-size stand-in reporting the white pixels it sees: the rectangle comes
    # back where it was drawn, for the letterbox and pixel format the model was made for.
    standins.detector_dark(
        tmp_path / "m.onnx", [(1, 0.9)], size=(256, 256), target="bright", pixels=pixels
    )
    cfg = DetectorModel(letterbox=letterbox, pixels=pixels)
    detector = load_detector(tmp_path / "m.onnx", cfg, "cpu")
    for h, w in [(300, 600), (512, 256), (128, 128)]:
        white = (w // 4, h // 4, w // 4 + w // 3, h // 4 + h // 5)
        rgb = np.full((h, w, 3), 90, np.uint8)
        rgb[white[1] : white[3], white[0] : white[2]] = 255
        found = detector.detect(rgb)
        assert near(found[BAR], (h, w), white, 1 + int(np.ceil(max(h, w) / 256))), (h, w)


@pytest.mark.parametrize("pixels", ["unit", "mean"])
def test_maskrcnn_tensor_holds_the_float_of_every_level(tmp_path: Path, pixels: str) -> None:
    # Every 8-bit level of every channel becomes exactly the float the model expects:
    # level - mean pixel (float32), or level * (1/255) in float32.
    standins.detector_dark(tmp_path / "m.onnx", pixels=pixels)
    detector = load_detector(tmp_path / "m.onnx", DetectorModel(pixels=pixels), "cpu")
    assert isinstance(detector, MaskRcnnDetector)
    levels = np.arange(256, dtype=np.uint8)
    rgb = np.stack([np.tile(levels, (8, 1)), np.tile(levels[::-1], (8, 1)),
                    np.tile(np.roll(levels, 7), (8, 1))], axis=-1)  # fmt: skip
    tensor, box = detector._tensor(np.ascontiguousarray(rgb))
    assert box is None and tensor.dtype == np.float32 and tensor.shape == (1, 3, 8, 256)
    planes = np.moveaxis(rgb, -1, 0).astype(np.float32)
    unit = planes * np.float32(1.0 / 255.0)
    np.testing.assert_array_equal(
        tensor[0], planes - MEAN[:, None, None] if pixels == "mean" else unit
    )


@pytest.mark.parametrize(
    ("letterbox", "pixels", "top"),
    [("centre", "unit", 32), ("top-left", "unit", 0), ("centre", "mean", 32)],
)
def test_maskrcnn_input_letterbox(tmp_path: Path, letterbox: str, pixels: str, top: int) -> None:
    standins.detector_dark(tmp_path / "m.onnx", size=(128, 128), pixels=pixels)
    detector = load_detector(
        tmp_path / "m.onnx", DetectorModel(letterbox=letterbox, pixels=pixels), "cpu"
    )
    assert isinstance(detector, MaskRcnnDetector)
    tensor = fed(detector, np.full((100, 200, 3), 255, np.uint8))[0]
    # 200x100 scales to 128x64; matterport pads with black before subtracting its mean.
    white, black = (1.0, 0.0) if pixels == "unit" else (255 - MEAN, -MEAN)
    inside = np.zeros((128, 128), bool)
    inside[top : top + 64] = True
    assert np.allclose(tensor[:, inside].T, white) and np.allclose(tensor[:, ~inside].T, black)


def test_maskrcnn_pixel_format_matters(tmp_path: Path) -> None:
    # Fed [0, 1] pixels, a model made for matterport's molded input sees no white.
    standins.detector_dark(
        tmp_path / "m.onnx", [(1, 0.9)], size=(128, 128), target="bright", pixels="mean"
    )
    rgb = np.full((128, 128, 3), 90, np.uint8)
    rgb[30:60, 40:90] = 255
    wrong = load_detector(tmp_path / "m.onnx", DetectorModel(), "cpu")
    assert wrong.detect(rgb) == {} or not wrong.detect(rgb)[BAR].any()
    right = load_detector(tmp_path / "m.onnx", DetectorModel(pixels="mean"), "cpu")
    assert np.array_equal(right.detect(rgb)[BAR], rect_mask((128, 128), (40, 30, 90, 60)))


def test_maskrcnn_classes_by_setting(tmp_path: Path) -> None:
    standins.detector_dark(tmp_path / "m.onnx", [(3, 0.9)], metadata={"names": "{3: 'box'}"})
    rgb = picture(100, 120, (10, 10, 50, 40))
    with pytest.raises(ConfigError, match=r"none of .* classes .*3 'box'"):
        load_detector(tmp_path / "m.onnx", DetectorModel(), "cpu")
    detector = load_detector(tmp_path / "m.onnx", DetectorModel(mosaic_classes=("box",)), "cpu")
    assert set(detector.detect(rgb)) == {MOSAIC}


@pytest.mark.parametrize("nms_export", [True, False], ids=["nms", "raw"])
def test_yolo_with_a_huge_class_id_is_refused_plainly(tmp_path: Path, nms_export: bool) -> None:
    # An nms=True export's shape says nothing of the class count, so a stray id of 10**12
    # in the metadata once sized a 931 GiB lookup table at start.
    names = {0: "bar", 1: "mosaic", 10**12: "x"}
    standins.yolo_seg(tmp_path / "det.onnx", nms=nms_export, names=names, count=3)
    with pytest.raises(ConfigError) as caught:
        load_detector(tmp_path / "det.onnx", DetectorModel(), "cpu")
    message = str(caught.value)
    assert message.startswith("EROGAKI_ONNX_DETECTOR_MODEL: ")
    assert str(tmp_path / "det.onnx") in message and "class id 1000000000000" in message
    # A large but plausible label set still loads.
    standins.yolo_seg(tmp_path / "ok.onnx", nms=True, names={0: "bar", 1: "mosaic", 9000: "z"})
    assert load_detector(tmp_path / "ok.onnx", DetectorModel(), "cpu").describe()


def test_maskrcnn_class_that_cannot_match_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    standins.detector_dark(tmp_path / "m.onnx")
    with caplog.at_level(logging.WARNING):
        load_detector(tmp_path / "m.onnx", DetectorModel(bar_classes=("99",)), "cpu")
    assert str(tmp_path / "m.onnx") in caplog.text and "class 99 configured" in caplog.text
    assert "never match" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_detector(tmp_path / "m.onnx", DetectorModel(), "cpu")
    assert "never match" not in caplog.text


def test_default_settings_of_this_issue() -> None:
    config = OnnxConfig.from_env({})
    assert config.mosaic_default_block == 10
    assert config.detector.letterbox == "centre" and config.detector.pixels == "unit"
    assert config.detector.kind == "auto" and config.mosaic == "esrgan"
    parsed = OnnxConfig.from_env(
        {"EROGAKI_ONNX_DETECTOR_KIND": "yolo-seg", "EROGAKI_ONNX_DETECTOR_BAR_CLASSES": "bar, 4",
         "EROGAKI_ONNX_DETECTOR_MOSAIC_CLASSES": "none", "EROGAKI_ONNX_YOLO_IOU": "0.5",
         "EROGAKI_ONNX_DETECTOR_LETTERBOX": "top-left", "EROGAKI_ONNX_DETECTOR_PIXELS": "mean"}
    )  # fmt: skip
    d = parsed.detector
    assert d.kind == "yolo-seg" and d.bar_classes == ("bar", "4") and d.mosaic_classes == ()
    assert d.yolo_iou == 0.5 and d.letterbox == "top-left" and d.pixels == "mean"
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_DETECTOR_KIND must be one of"):
        OnnxConfig.from_env({"EROGAKI_ONNX_DETECTOR_KIND": "detr"})
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_YOLO_THRESHOLD"):
        OnnxConfig.from_env({"EROGAKI_ONNX_YOLO_THRESHOLD": "1.5"})


def test_bar_job_through_the_pipeline_with_yolo(tmp_path: Path) -> None:
    # The hent-AI worker's bar path with a YOLO-seg detector: the black bar comes back
    # painted green (grown by EROGAKI_ONNX_MASK_GROW), nothing else changes.
    standins.yolo_seg(tmp_path / "hentai_maskrcnn.onnx", nms=True)
    standins.esrgan(tmp_path / "esrgan_4x.onnx")
    backend = OnnxHentai.load(OnnxConfig(mask_grow=2), tmp_path)
    rgb = picture(360, 500, (60, 200, 300, 240))
    out = pixels_of(pipeline.mask_bars(png(rgb), backend, Limits(10**8, 10**8), {}))
    painted = np.all(out == (0, 255, 0), axis=-1)
    assert near(painted, (360, 500), (60, 200, 300, 240), 4)
    assert np.array_equal(out[~painted], rgb[~painted])


@pytest.mark.parametrize("export", ["raw", "nms", "maskrcnn"])
def test_a_bar_job_gets_only_the_bars_masks(tmp_path: Path, export: str) -> None:
    """Asked for one kind, a detector makes only that kind's mask (a bar job does not pay
    for the mosaics' masks), and it is the mask it makes when asked for both."""
    rgb = picture(480, 640, (100, 100, 200, 180), (400, 300, 500, 400))
    if export == "maskrcnn":
        # Both of its detections, a bar and a mosaic, are the black rectangle.
        path = standins.detector_dark(tmp_path / "m.onnx", ((1, 0.9), (2, 0.9)))
        detector: YoloSegDetector | MaskRcnnDetector = MaskRcnnDetector(
            load_detector(path, DetectorModel(), "cpu").model, DetectorModel()
        )
    else:
        detector = yolo(tmp_path, nms=export == "nms")
    both = detector.detect(rgb)
    assert set(both) == {BAR, MOSAIC}
    for kind in (BAR, MOSAIC):
        alone = detector.detect(rgb, (kind,))
        assert set(alone) == {kind}
        assert np.array_equal(alone[kind], both[kind])


def test_mask_threshold_on_levels_is_the_float_comparison() -> None:
    # The threshold on a mask's 8-bit levels, compared as bytes, is the float comparison
    # it stands for, at every level, for thresholds on, between and beyond the levels.
    from workers.onnx.detector import _at_least

    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for level in (-0.1, 0.0, 0.3, 0.5, 127.5 / 255.0, 128 / 255.0, 0.75, 1.0, 1.2):
        threshold = np.float32(level) * np.float32(255.0)
        want = levels >= threshold
        np.testing.assert_array_equal(_at_least(levels, float(threshold)), want)


def test_auto_leaves_where_a_bar_meets_the_mosaic_to_the_bar(tmp_path: Path) -> None:
    # A bar across the mosaic's corner: the mosaic is redrawn everywhere but under the
    # (grown) bar, which the inpainting worker fills next; pixels of neither never change.
    from workers.imageops import synthetic as syn
    from workers.onnx.esrgan import Esrgan

    found: list[standins.Box] = [
        (1, 0.9, (0.40, 0.45, 0.70, 0.60)),  # bar: x 102..179, y 115..154 of 256
        (2, 0.9, (0.5, 0.5, 0.875, 0.875)),  # mosaic: 128..224
    ]
    config = OnnxConfig()
    detector = load_detector(
        standins.detector_boxes(tmp_path / "boxes.onnx", found, (256, 256)),
        config.detector, config.provider,
    )  # fmt: skip
    upscaler = Esrgan.load(standins.esrgan(tmp_path / "e.onnx"), config.esrgan, config.provider)
    backend = OnnxHentai(detector, upscaler, config)
    clean = syn.draw_scene(9, (256, 256))
    censored, _ = syn.add_mosaic(clean, np.random.default_rng(1), 8, (0, 0))
    restored, mosaic, bars = backend.auto(censored)
    whole = backend._masks(censored)
    grown_mosaic = whole[MOSAIC]
    assert (grown_mosaic & bars).any() and (grown_mosaic & ~bars).any()
    np.testing.assert_array_equal(mosaic, grown_mosaic & ~bars)
    np.testing.assert_array_equal(bars, whole[BAR])
    assert np.array_equal(restored[~mosaic], censored[~mosaic])
