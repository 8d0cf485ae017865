"""Outside review of the crops' shrink, grouping and paste (issue 13:
workers/onnx/regions.py, inpainters.py, deepcreampy.py), with synthetic pictures and
the stand-in models of workers/onnx/standins.py only."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from workers.onnx import regions, standins
from workers.onnx.config import DeepCreamPyModel, LamaModel, OnnxConfig
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.inpainters import Inpainter, Lama, Migan
from workers.onnx.regions import shrink, shrink_any


def test_a_thin_crop_keeps_every_hole_pixel_in_its_shrunk_hole() -> None:
    # Crops far longer than wide shrink by different ratios each way (LaMa's cap makes
    # a 4000 x 20 crop 512 x 8; a fixed 512 model makes 5000 x 2 one 512 x 1). Every
    # pixel the area average's hole holds must stay (within a pixel) in the shrunk
    # hole: a bilinear step of over twice the size skipped rows and columns, and the
    # specks there were fed to the model as context (no hole), so never filled.
    rng = np.random.default_rng(41)
    kernel = np.ones((3, 3), np.uint8)
    cases = [((4000, 20), (512, 8)), ((5960, 2), (512, 1)), ((2508, 73), (512, 8)),
             ((20, 3757), (8, 512)), ((4878, 6), (256, 1)), ((1906, 14), (296, 8))]  # fmt: skip
    for (h, w), (ch, cw) in cases:
        hole = rng.random((h, w)) < 0.002
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[hole] = (0, 255, 0)
        pixels, gap = shrink(rgb, hole, (ch, cw))
        assert pixels.shape == (ch, cw, 3) and gap.shape == (ch, cw)
        assert not pixels[~gap].any(), (h, w, ch, cw)
        near = cv2.dilate(gap.view(np.uint8), kernel) > 0
        lost = int((shrink_any(hole, (ch, cw)) & ~near).sum())
        assert lost == 0, (h, w, ch, cw, lost)


def grid_of_specks(side: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((side, side), bool)
    mask[::step, ::step] = True
    rgb = np.full((side, side, 3), 90, np.uint8)
    rgb[mask] = (0, 255, 0)
    return rgb, mask


def fixed_lama(tmp_path: Path) -> Inpainter:
    path = standins.lama(tmp_path / "lama.onnx", fill=0.5, batch="b")
    return Lama.load(path, LamaModel(max_batch=3), OnnxConfig())


def deepcreampy(tmp_path: Path) -> Inpainter:
    path = standins.deepcreampy(tmp_path / "dcp.onnx", fill=0.2, keep_known=True, batch="b")
    return DeepCreamPyInpainter.load(path, DeepCreamPyModel(max_batch=3), "auto")


@pytest.mark.parametrize("make", [fixed_lama, deepcreampy])
def test_many_specks_hold_no_groups_by_regions_tables(
    tmp_path: Path, make: Callable[[Path], Inpainter]
) -> None:
    # 262,144 specks at 3072 px (a speck every 6 px): which groups' boxes other holes
    # meet, and each crop's holes' box, once took tables of every group by every
    # region (144 x 262,144 int64: 456 MiB at peak for LaMa 512, 339 for DeepCreamPy,
    # 2.2 GB and 3 s for DeepCreamPy at 4096). Measured with the fix: 151 and 121 MiB.
    model = make(tmp_path)
    rgb, mask = grid_of_specks(3072, 6)
    tracemalloc.start()
    try:
        out = model.inpaint(rgb, mask)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(out[~mask], rgb[~mask])
    assert not (out[mask] == (0, 255, 0)).all(-1).any()
    assert peak < 250 * 2**20, peak / 2**20


@pytest.mark.parametrize("make", [fixed_lama, deepcreampy])
def test_the_regions_near_each_box_are_the_same_in_small_chunks(
    tmp_path: Path, make: Callable[[Path], Inpainter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The (box, region) pairs come in chunks; three at a time they paste the same.
    model = make(tmp_path)
    # Each crop's output made to differ pixel by pixel (its image read backwards along
    # the rows): a pixel pasted from another group's crop, or a hole not blacked out
    # where it was fed, shows.
    run = model.model.run
    rows = 1 if isinstance(model, DeepCreamPyInpainter) else 2

    def backwards(outputs: Any, feeds: Any) -> Any:
        got = run(outputs, feeds)
        image = np.flip(next(iter(feeds.values())), rows)  # NHWC or NCHW, 3 channels
        return [np.ascontiguousarray(image.astype(g.dtype)) for g in got]

    monkeypatch.setattr(model.model, "run", backwards)
    rng = np.random.default_rng(42)
    rgb = rng.integers(0, 255, (700, 903, 3)).astype(np.uint8)
    mask = np.zeros((700, 903), bool)
    mask[rng.integers(0, 700, 800), rng.integers(0, 903, 800)] = True
    for _ in range(40):
        y, x = (int(v) for v in rng.integers(0, 690, 2))
        mask[y : y + int(rng.integers(2, 60)), x : x + int(rng.integers(2, 9))] = True
    rgb[mask] = (0, 255, 0)
    whole = model.inpaint(rgb, mask)
    monkeypatch.setattr(regions, "MEET_CHUNK", 3)
    assert np.array_equal(model.inpaint(rgb, mask), whole)


@pytest.mark.parametrize("shape", [(8, 300), (300, 8), (8, 3000), (20, 3000), (9, 700)])
def test_deepcreampy_fills_a_bar_across_a_thin_picture(
    tmp_path: Path, shape: tuple[int, int]
) -> None:
    # Pictures 8 px and up pass the upload checks. A bar across a thin picture is
    # longer than any square crop there (at most the short side): centred on it, a
    # pass filled its middle and each later pass its two ends' middles, so 16 passes
    # left green (8 x 3000: 1,109 pixels). Its crops now tile it: one pass fills it.
    model = deepcreampy(tmp_path)
    h, w = shape
    rng = np.random.default_rng(43)
    rgb = rng.integers(0, 200, (h, w, 3)).astype(np.uint8)
    mask = np.zeros(shape, bool)
    mask[rng.integers(0, h, h * w // 50), rng.integers(0, w, h * w // 50)] = True
    mask[h // 2, :] = mask[:, w // 2] = True
    rgb[mask] = (0, 255, 0)
    out = model.inpaint(rgb, mask)
    assert np.array_equal(out[~mask], rgb[~mask])
    assert not (out[mask] == (0, 255, 0)).all(-1).any()


@pytest.mark.parametrize("kind", ["lama-512", "migan-raw"])
def test_the_hole_is_fed_as_nothing_in_the_padding_too(tmp_path: Path, kind: str) -> None:
    # A picture smaller than the model's square is padded by replicating its edges, the
    # hole with it: where a hole touches the far edges, the green replicated into the
    # padding is hole too and must be fed blacked out (MI-GAN's input is rgb * known),
    # though the crop's holes' box is read from the regions' boxes.
    if kind == "lama-512":
        path = standins.lama(tmp_path / "lama.onnx", fill=0.5, batch="b")
        model: Inpainter = Lama.load(path, LamaModel(max_batch=3), OnnxConfig())
    else:
        path = standins.migan_raw(tmp_path / "migan.onnx", fill=0.0)
        model = Migan.load(path, OnnxConfig().migan, OnnxConfig())
    fed: list[Any] = []
    run = model.model.run

    def recorded(outputs: Any, feeds: Any) -> Any:
        fed.append({k: v.copy() for k, v in feeds.items()})
        return run(outputs, feeds)

    model.model.run = recorded  # type: ignore[method-assign]
    rng = np.random.default_rng(44)
    rgb = rng.integers(0, 200, (300, 400, 3)).astype(np.uint8)
    mask = np.zeros((300, 400), bool)
    mask[270:, 330:340] = mask[290:, 390:] = mask[200:210, 385:] = True  # a small box
    rgb[mask] = (0, 255, 0)
    model.inpaint(rgb, mask)
    assert fed
    for feeds in fed:
        if kind == "lama-512":
            image, hole = feeds["image"], feeds["mask"][:, 0] > 0.5
            assert hole[:, 300:, :].any() and hole[:, :, 400:].any()
            assert not np.moveaxis(image, 1, -1)[hole].any()
        else:
            planes = feeds["input"]
            hole = planes[:, 0] < 0
            assert hole[:, 300:, :].any() and hole[:, :, 400:].any()
            assert not np.moveaxis(planes[:, 1:], 1, -1)[hole].any()
