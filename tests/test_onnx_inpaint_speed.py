"""The inpainters' faster tensor work (issue 13) gives the tensors and pixels the
straightforward formulas give (value for value: a hole's zero may carry a sign): crops
written straight into reused batch tensors, the hole touched inside its box only,
outputs decoded under the pasted window only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.imageops import synthetic as syn
from workers.imageops.green import bounds
from workers.onnx import OnnxConfig, standins
from workers.onnx.config import LamaModel
from workers.onnx.deepcreampy import SIZE, Crop, _finish, _prepare
from workers.onnx.inpainters import Lama, Migan, RegionInpainter
from workers.onnx.regions import resize_window, shrink

Feeds = dict[str, NDArray[Any]]


def crop_and_hole(rng: np.random.Generator, h: int, w: int) -> tuple[Any, Any]:
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    hole = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 5))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        hole[y : y + int(rng.integers(1, 50)), x : x + int(rng.integers(1, 50))] = True
    return rgb, hole


# The formulas the tensors were built by before (one new array per step).
def lama_reference(rgb: Any, hole: Any) -> list[Any]:
    gap = hole.astype(np.float32)
    scale = (np.float32(1.0) - gap) * np.float32(1.0 / 255.0)
    planes = rgb.transpose(2, 0, 1).astype(np.float32) * scale
    return [planes, gap[None]]


def migan_raw_reference(rgb: Any, hole: Any) -> list[Any]:
    known = (~hole).astype(np.float32)
    rgb_planes = rgb.transpose(2, 0, 1).astype(np.float32)
    rest = rgb_planes * (known * np.float32(2.0 / 255.0)) - known
    return [np.concatenate([(known - np.float32(0.5))[None], rest])]


def migan_pipeline_reference(rgb: Any, hole: Any) -> list[Any]:
    return [rgb.transpose(2, 0, 1), np.where(hole, 0, 255).astype(np.uint8)[None]]


MODELS: dict[str, tuple[Callable[[Path], Any], Callable[[Any, Any], list[Any]]]] = {
    "lama": (lambda p: Lama.load(standins.lama(p), LamaModel(), OnnxConfig()), lama_reference),
    "migan-raw": (
        lambda p: Migan.load(standins.migan_raw(p), OnnxConfig().migan, OnnxConfig()),
        migan_raw_reference,
    ),
    "migan-pipeline": (
        lambda p: Migan.load(standins.migan_pipeline(p), OnnxConfig().migan, OnnxConfig()),
        migan_pipeline_reference,
    ),
}


@pytest.mark.parametrize("key", sorted(MODELS))
def test_tensors_written_in_place_are_the_formulas_even_over_old_ones(
    tmp_path: Path, key: str
) -> None:
    """Each crop is written into a slot of tensors that already held other crops (the
    chunk's tensors are reused): every value is rewritten, bit for bit the formula's;
    a hole left from the crop before does not survive, whatever was there."""
    load, reference = MODELS[key]
    model = load(tmp_path / f"{key}.onnx")
    rng = np.random.default_rng(30)
    feeds = model.tensors(3, (96, 160))
    for value in feeds.values():  # stale contents: NaN, or 77 in 8-bit tensors
        value[...] = np.nan if value.dtype == np.float32 else 77
    for turn in range(12):
        rgb, hole = crop_and_hole(rng, 96, 160)
        if turn % 4 == 0:
            rgb = syn.draw_scene(turn, (200, 300))[7:103, 11:171]  # a view, as crops are
        index = turn % 3
        model.encode_into(feeds, index, rgb, hole, bounds(hole) or (0, 0, 0, 0))
        for got, want in zip(feeds.values(), reference(rgb, hole), strict=True):
            assert got[index].dtype == want.dtype
            assert np.array_equal(got[index], want), (key, turn)
        for got, want in zip(model.encode(rgb, hole).values(), reference(rgb, hole), strict=True):
            assert np.array_equal(got, want)


def old_prepare(rgb: Any, hole: Any, crop: Crop) -> tuple[Any, Any]:
    """DeepCreamPy's tensors as built before, with the crop's shrink as now (held to its
    own rules in tests/test_onnx_crop_shrink.py)."""
    ys, xs = crop.slices
    pixels, gap = rgb[ys, xs], hole[ys, xs]
    if crop.size > SIZE:
        pixels, gap = shrink(pixels, gap, (SIZE, SIZE))
    elif crop.size < SIZE:
        pixels = cv2.resize(pixels, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
        share = cv2.resize(gap.view(np.uint8) * np.uint8(255), (SIZE, SIZE))
        gap = share > 0
    image = np.multiply(pixels, np.float32(1.0 / 255.0), dtype=np.float32)
    known = np.empty(image.shape, np.float32)
    known[...] = (~gap)[:, :, None]
    image *= known
    image *= np.float32(2.0)
    image -= np.float32(1.0)
    return image, known


def test_deepcreampy_tensors_are_the_formulas_even_over_old_ones() -> None:
    rng = np.random.default_rng(31)
    image = np.full((SIZE, SIZE, 3), np.nan, np.float32)
    known = np.full((SIZE, SIZE, 3), np.nan, np.float32)
    for turn in range(15):
        side = int(rng.integers(200, 900))
        rgb, hole = crop_and_hole(rng, side, side + 40)
        size = int(rng.integers(min(SIZE - 50, side), side + 1))
        crop = Crop(
            int(rng.integers(0, side - size + 1)), int(rng.integers(0, side - size + 1)), size
        )
        _prepare(rgb, hole, crop, image, known)
        want_image, want_known = old_prepare(rgb, hole, crop)
        assert np.array_equal(image, want_image), turn
        assert np.array_equal(known, want_known), turn
        # Tensors OpenCV cannot write in place (every other column of a wider array)
        # are filled all the same.
        wide = np.full((2, SIZE, 2 * SIZE, 3), np.nan, np.float32)
        _prepare(rgb, hole, crop, wide[0, :, ::2], wide[1, :, ::2])
        assert np.array_equal(wide[0, :, ::2], want_image), turn
        assert np.array_equal(wide[1, :, ::2], want_known), turn


def test_deepcreampy_output_is_finished_under_the_window_only() -> None:
    """The model's [-1, 1] output as pixels in the window, as converting all of it and
    resizing the whole gave (within the level the bicubic's rounded sampling allows);
    the output outside the window's reach is left as the model gave it."""
    rng = np.random.default_rng(32)
    for turn in range(30):
        pred = np.clip(rng.normal(0, 0.6, (SIZE, SIZE, 3)), -1.2, 1.2).astype(np.float32)
        pred = np.asarray(cv2.GaussianBlur(pred, (5, 5), 1.5), np.float32)
        size = SIZE if turn % 3 == 0 else int(rng.integers(SIZE + 1, 1500))
        x0, y0 = int(rng.integers(0, size - 1)), int(rng.integers(0, size - 1))
        x1 = int(rng.integers(x0 + 1, min(x0 + 200, size) + 1))
        y1 = int(rng.integers(y0 + 1, min(y0 + 200, size) + 1))
        whole = np.clip(np.rint((pred + np.float32(1.0)) * np.float32(127.5)), 0, 255)
        want = resize_window(np.asarray(whole, np.uint8), (size, size), (x0, y0, x1, y1))
        before = pred.copy()
        got = _finish(pred, size, (x0, y0, x1, y1))
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want).max() <= (0 if size == SIZE else 1)
        if (x1 - x0) * SIZE < size * 100:  # a small window converts a small part
            assert np.count_nonzero(pred != before) < SIZE * SIZE * 3 // 2


def test_crops_of_one_size_share_reused_tensors(tmp_path: Path) -> None:
    """A fixed-size model's crops all go through one set of tensors, refilled crop after
    crop (no new arrays, no stacking), and every hole still gets its own crop's fill."""
    standins.lama(tmp_path / "lama.onnx", fill=None)  # the hole shows what was fed there
    model = Lama.load(tmp_path / "lama.onnx", LamaModel(), OnnxConfig())
    fed: list[Feeds] = []
    run = model.model.run

    def recorded(outputs: Any, feeds: Any) -> Any:
        fed.append(feeds)
        return run(outputs, feeds)

    model.model.run = recorded  # type: ignore[method-assign]
    rgb = syn.draw_scene(4, (700, 1500))
    mask = np.zeros(rgb.shape[:2], bool)
    for i in range(4):
        mask[300:340, 60 + 380 * i : 200 + 380 * i] = True
    out = model.inpaint(rgb, mask)
    assert len(fed) == 4
    image = next(iter(fed[0].values()))
    assert all(next(iter(f.values())) is image for f in fed)
    # Fed zeros in the hole: it comes back black, and nothing else changes.
    assert np.array_equal(out[~mask], rgb[~mask]) and out[mask].max() == 0


def test_hole_tensors_follow_the_hole_rule(tmp_path: Path) -> None:
    """A crop shrunk to the model marks as hole every pixel that any of it reached
    (``shrink``): the model never sees the green as context."""
    model = Lama.load(standins.lama(tmp_path / "lama.onnx"), LamaModel(), OnnxConfig())
    assert isinstance(model, RegionInpainter)
    rng = np.random.default_rng(33)
    rgb, hole = crop_and_hole(rng, 800, 700)
    content, target = model._fit(800, 700)
    assert target == (512, 512) and content == (512, 448)
    pixels, gap = model._to_model(rgb, hole, content, target)
    want_pixels, want_gap = shrink(rgb, hole, (512, 448))
    assert np.array_equal(gap[:, :448], want_gap)
    assert np.array_equal(pixels[:, :448], want_pixels)
    # The hole as green on black: wherever it reached, it is hole.
    green = np.zeros_like(rgb)
    green[hole] = (0, 255, 0)
    assert not model._to_model(green, hole, content, target)[0][~gap].any()
    assert np.array_equal(gap[:, 448:], np.repeat(gap[:, 447:448], 64, axis=1))
    assert pixels.shape == (512, 512, 3)
