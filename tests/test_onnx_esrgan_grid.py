"""ESRGAN's per-region mosaic grid: the quick reading off the steps under the mask
(``quick_grid``) against the full measurement it stands in for (``measured_grid``,
estimate_grid around the region), and the paste over the region's box."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.backend import Image, Mask
from workers.imageops import synthetic as syn
from workers.imageops.mosaic import MosaicGrid
from workers.onnx import OnnxConfig, standins
from workers.onnx import esrgan as E
from workers.onnx.detector import grow
from workers.onnx.regions import Components

Case = tuple[tuple[int, int, int, int, int | None, str], Image, Mask, MosaicGrid]


def cases(seed: int, blocks: range, qualities: tuple[int | None, ...]) -> list[Case]:
    """Mosaics on a drawn scene, block sizes ``blocks`` at random offsets, saved lossless
    or as JPEG; the mask as a detector gives it (grown by 3 px) or as a box around it."""
    clean = syn.draw_scene(seed, (512, 640))
    out: list[Case] = []
    for block in blocks:
        rng = np.random.default_rng(seed * 1000 + block)
        phase = (int(rng.integers(0, block)), int(rng.integers(0, block)))
        mosaic, truth = syn.add_mosaic(clean, rng, block, phase)
        grid = MosaicGrid(block, phase[0] % block, phase[1] % block)
        ys, xs = np.nonzero(truth)
        box = np.zeros_like(truth)
        box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
        for q in qualities:
            picture = mosaic if q is None else syn.jpeg(mosaic, q)
            out.append(((seed, block, *phase, q, "grown"), picture, grow(truth, 3), grid))
            out.append(((seed, block, *phase, q, "box"), picture, box, grid))
    return out


def only_box(mask: Mask) -> tuple[int, int, int, int]:
    (box,) = [b for _, b in Components(mask, connectivity=8).boxes()]
    return box


def test_quick_grid_is_the_measured_one_or_the_true_one() -> None:
    # Held out from the cases the thresholds were tuned on (seeds 100-103).
    quick = wrong = old_wrong = 0
    checked = cases(7, range(6, 25), (None, 90, 75))
    for key, picture, mask, truth in checked:
        box = only_box(mask)
        grid = E.quick_grid(picture, mask, E._centre(box))
        if grid is None:
            continue
        quick += 1
        measured = E.measured_grid(picture, box)
        # Where they differ, the quick reading is right and the measurement was not.
        assert grid in (measured, truth), (key, grid, measured)
        wrong += grid != truth
        old_wrong += measured != truth
    # It stands in for the measurement in most cases, and is wrong no more often.
    assert quick >= 0.6 * len(checked), quick
    assert wrong <= old_wrong


def test_region_grid_falls_back_to_the_measurement() -> None:
    # A mosaic too small for the quick reading's evidence (a few cells): measured.
    clean = syn.draw_scene(3, (256, 256))
    picture = clean.copy()
    mask = np.zeros((256, 256), bool)
    mask[100:124, 100:124] = True
    cell = picture[100:124, 100:124].reshape(2, 12, 2, 12, 3).mean(axis=(1, 3))
    picture[100:124, 100:124] = np.repeat(np.repeat(cell, 12, 0), 12, 1).astype(np.uint8)
    box = only_box(mask)
    assert E.quick_grid(picture, mask, E._centre(box)) is None
    assert E.region_grid(picture, mask, box) == E.measured_grid(picture, box)


def test_quick_grid_finds_nothing_without_a_mosaic() -> None:
    rng = np.random.default_rng(5)
    for seed in range(10):
        clean = syn.draw_scene(500 + seed, (512, 512))
        for _ in range(4):
            x0, y0 = (int(v) for v in rng.integers(0, 300, 2))
            w, h = (int(v) for v in rng.integers(60, 200, 2))
            mask = np.zeros((512, 512), bool)
            mask[y0 : y0 + h, x0 : x0 + w] = True
            assert E.quick_grid(clean, mask, E._centre(only_box(mask))) is None


def test_checks_refuse_a_multiple_a_fraction_and_a_shifted_phase() -> None:
    # A lossless mosaic of 12 px cells: the true grid passes; twice the block, half of
    # it, a third of it, and the phase one pixel off each fail one of the checks.
    clean = syn.draw_scene(11, (480, 480))
    picture, truth = syn.add_mosaic(clean, np.random.default_rng(4), 12, (5, 7))
    mask = grow(truth, 3)
    box = E._centre(only_box(mask))
    x0, y0, x1, y1 = box[0] - 24, box[1] - 24, box[2] + 24, box[3] + 24
    win, inside = picture[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    px, py = E._step_counts(win, inside, 1), E._step_counts(win, inside, 0)

    def passes(b: int, phase_x: int, phase_y: int) -> bool:
        lines = E._lines_agree(px, b, phase_x) and E._lines_agree(py, b, phase_y)
        return lines and E._cells_agree(win, inside, b, phase_x, phase_y)

    fx, fy = (5 - x0) % 12, (7 - y0) % 12
    assert E._comb(px, py) == (12, fx, fy)
    assert passes(12, fx, fy)
    assert not passes(24, fx, fy)
    assert not passes(6, fx % 6, fy % 6)
    assert not passes(4, fx % 4, fy % 4)
    assert not passes(12, (fx + 1) % 12, fy)
    assert E.quick_grid(picture, mask, box) == MosaicGrid(12, 5, 7)


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory: pytest.TempPathFactory) -> E.Esrgan:
    path = Path(tmp_path_factory.mktemp("esrgan")) / "esrgan.onnx"
    cfg = OnnxConfig()
    return E.Esrgan.load(standins.esrgan(path), cfg.esrgan, cfg.provider)


def test_regions_whose_boxes_overlap_are_pasted_as_each_alone(upscaler: E.Esrgan) -> None:
    # Each region is pasted over its whole box: the other region's pixels there keep
    # what that region's paste gave them, and pixels outside the mask never change.
    # Two L shapes 20 px apart, each reaching into the other's box.
    clean = syn.draw_scene(21, (360, 360))
    cells = cv2.resize(clean, (36, 36), interpolation=cv2.INTER_AREA)
    picture = np.asarray(cv2.resize(cells, (360, 360), interpolation=cv2.INTER_NEAREST), np.uint8)
    first = np.zeros((360, 360), bool)
    first[40:200, 40:80] = True
    first[160:200, 40:200] = True
    second = np.zeros((360, 360), bool)
    second[100:140, 100:300] = True
    second[100:300, 260:300] = True
    both = first | second
    assert Components(both, connectivity=8).count == 3

    def restore(mask: Mask) -> Image:
        return E.restore(picture, mask, upscaler, feather=4, default_block=10)

    together, alone1, alone2 = restore(both), restore(first), restore(second)
    assert not np.array_equal(together[first], picture[first])
    assert not np.array_equal(together[second], picture[second])
    np.testing.assert_array_equal(together[first], alone1[first])
    np.testing.assert_array_equal(together[second], alone2[second])
    np.testing.assert_array_equal(together[~both], picture[~both])
