"""Behaviour of the cpu backend's image operations on synthetic scenes with exact truth."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from workers.imageops import (
    MosaicGrid,
    detect_bars,
    detect_mosaic,
    estimate_grid,
    green_mask,
    inpaint,
    paint_green,
    restore_mosaic,
)
from workers.imageops import synthetic as syn


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def psnr(a: NDArray[np.uint8], b: NDArray[np.uint8], m: NDArray[np.bool_]) -> float:
    err = float(((a[m].astype(np.float64) - b[m].astype(np.float64)) ** 2).mean())
    return float(10.0 * np.log10(255.0**2 / max(err, 1e-9)))


def test_green_mask_is_exact() -> None:
    img = np.zeros((4, 5, 3), np.uint8)
    img[0, 0] = (0, 255, 0)
    img[1, 1] = (1, 255, 0)
    img[2, 2] = (0, 254, 0)
    img[3, 3] = (0, 255, 0)
    expected = np.zeros((4, 5), bool)
    expected[0, 0] = expected[3, 3] = True
    assert np.array_equal(green_mask(img), expected)
    loose = green_mask(img, tolerance=1)
    assert loose[1, 1] and loose[2, 2] and loose.sum() == 4


def test_paint_green_roundtrip_and_purity() -> None:
    img = syn.draw_scene(1, (96, 128))
    before = img.copy()
    m = np.zeros(img.shape[:2], bool)
    m[10:30, 20:70] = True
    out = paint_green(img, m)
    assert np.array_equal(img, before)
    assert np.array_equal(green_mask(out) & m, m)
    assert np.array_equal(out[~m], img[~m])


BAR_CASES = [
    (syn.BLACK, 0.0, None),
    (syn.WHITE, 90.0, None),
    (syn.PINK, 33.0, None),
    (syn.GREEN, 121.0, None),
    (syn.BLACK, 17.0, 75),
    (syn.PINK, 0.0, 75),
    (syn.WHITE, 64.0, 75),
]


@pytest.mark.parametrize(("colour", "angle", "quality"), BAR_CASES)
def test_detect_bars_finds_bars(
    colour: tuple[int, int, int], angle: float, quality: int | None
) -> None:
    for seed in (11, 12):
        scene = syn.draw_scene(seed, (384, 384))
        censored, truth = syn.add_bars(scene, np.random.default_rng(seed), 2, colour, angle)
        img = syn.jpeg(censored, quality) if quality else censored
        assert iou(detect_bars(img), truth) >= 0.85, (seed, colour, angle, quality)


def test_detect_bars_quiet_on_uncensored_scenes() -> None:
    for seed in range(40, 46):
        scene = syn.draw_scene(seed, (384, 384))
        assert detect_bars(scene).mean() <= 0.02
        assert detect_bars(syn.jpeg(scene)).mean() <= 0.02


def test_detect_bars_ignores_flat_backgrounds_and_shapes() -> None:
    import cv2

    img = np.full((300, 400, 3), (120, 180, 230), np.uint8)
    # A flat sky band spanning the width, a big flat disc and a flat ellipse.
    img[:90] = (90, 160, 250)
    cv2.circle(img, (200, 190), 80, (250, 210, 190), -1, cv2.LINE_AA)
    cv2.ellipse(img, (330, 230), (50, 25), 20, 0, 360, (40, 40, 40), -1, cv2.LINE_AA)
    assert detect_bars(img).mean() <= 0.02
    assert detect_bars(syn.jpeg(img)).mean() <= 0.02


@pytest.mark.parametrize("block", [6, 9, 13, 17, 24, 32])
def test_estimate_grid(block: int) -> None:
    rng = np.random.default_rng(block)
    phase = (int(rng.integers(0, block)), int(rng.integers(0, block)))
    scene = syn.draw_scene(100 + block, (448, 448))
    censored, _ = syn.add_mosaic(scene, rng, block, phase)
    assert estimate_grid(censored) == MosaicGrid(block, phase[0], phase[1])


def test_estimate_grid_none_without_mosaic() -> None:
    assert estimate_grid(syn.draw_scene(7, (320, 320))) is None


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_detect_mosaic_iou(seed: int) -> None:
    rng = np.random.default_rng(seed)
    block = int(rng.integers(6, 33))
    phase = (int(rng.integers(0, block)), int(rng.integers(0, block)))
    scene = syn.draw_scene(seed, (448, 448))
    censored, truth = syn.add_mosaic(scene, rng, block, phase)
    mask, grid = detect_mosaic(censored)
    assert grid == MosaicGrid(block, phase[0], phase[1])
    assert iou(mask, truth) >= 0.8


def test_checkerboard_and_stripes_are_not_mosaic() -> None:
    yy, xx = np.mgrid[0:200, 0:200]
    img = syn.draw_scene(3, (448, 448)).copy()
    checks = ((yy // 10) + (xx // 10)) % 2 == 0
    img[100:300, 100:300][checks] = (30, 30, 30)
    img[100:300, 100:300][~checks] = (230, 230, 230)
    stripes = (xx // 8) % 2 == 0
    img[240:440, 240:440][stripes] = (200, 40, 40)
    img[240:440, 240:440][~stripes] = (240, 240, 240)
    assert detect_mosaic(img)[0].mean() <= 0.02
    assert detect_mosaic(syn.draw_scene(8, (448, 448)))[0].mean() <= 0.02


def test_restore_mosaic_touches_only_the_mask_and_helps() -> None:
    rng = np.random.default_rng(5)
    scene = syn.draw_scene(5, (320, 320))
    censored, truth = syn.add_mosaic(scene, rng, 12, (4, 9))
    before = censored.copy()
    out = restore_mosaic(censored, truth, MosaicGrid(12, 4, 9))
    assert np.array_equal(censored, before)
    assert np.array_equal(out[~truth], censored[~truth])
    assert psnr(out, scene, truth) > psnr(censored, scene, truth)


def test_inpaint_touches_only_the_mask_and_beats_mean_fill() -> None:
    wins = 0
    for seed in range(3):
        scene = syn.draw_scene(seed + 60, (320, 320))
        censored, truth = syn.add_bars(scene, np.random.default_rng(seed), 2, syn.GREEN, 30.0)
        before = censored.copy()
        out = inpaint(censored, truth)
        assert np.array_equal(censored, before)
        assert np.array_equal(out[~truth], censored[~truth])
        mean_fill = censored.copy()
        mean_fill[truth] = scene[~truth].mean(axis=0).astype(np.uint8)
        wins += psnr(out, scene, truth) > psnr(mean_fill, scene, truth)
    assert wins == 3


def test_synthetic_is_deterministic_and_sample_consistent() -> None:
    assert np.array_equal(syn.draw_scene(3, (64, 80)), syn.draw_scene(3, (64, 80)))
    sample = syn.sample_image()
    assert sample.bar_mask.any() and sample.mosaic_mask.any()
    assert not (sample.bar_mask & sample.mosaic_mask).any()
    untouched = ~(sample.bar_mask | sample.mosaic_mask)
    assert np.array_equal(sample.censored[untouched], sample.clean[untouched])
