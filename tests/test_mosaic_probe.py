"""A picture's own pixel grid is never a censor mosaic (outside probe, issue 9).

scikit-image's ``moon`` is a 2x nearest-neighbour upscale (every 2x2 block is one colour);
pixel art and upscaled drawings are real uploads. Mosaic mode took such a grid for a mosaic
over nearly the whole picture (70 % of the moon changed), while a real mosaic lying on such
a picture must still be found and restored, and nothing else touched.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from erogaki_common.errors import ErrorName, ProcessingError
from erogaki_common.images import Limits
from workers import pipeline
from workers.cpu_backend import CpuHentai
from workers.imageops import drawn
from workers.imageops.mosaic import MosaicGrid, detect_mosaic

HENTAI = CpuHentai()


def moon() -> np.ndarray:
    return np.ascontiguousarray(np.dstack([skdata.moon()] * 3))


def nearest(rgb: np.ndarray, factor: int) -> np.ndarray:
    up = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(up)


def upscaled_art(seed: int, factor: int) -> np.ndarray:
    """A drawing at 1/factor of its size, scaled back up pixel for pixel."""
    art = drawn.draw_art(seed, (480, 480)).image
    small = cv2.resize(art, (480 // factor, 480 // factor), interpolation=cv2.INTER_AREA)
    return nearest(np.ascontiguousarray(small), factor)


def mosaic_mode(data: bytes) -> np.ndarray:
    return drawn.decode(pipeline.restore_mosaic(data, HENTAI, Limits(), {}))


def assert_no_mosaic(rgb: np.ndarray) -> None:
    for data in (drawn.png_bytes(rgb), drawn.jpeg_bytes(rgb, 85)):
        with pytest.raises(ProcessingError) as e:
            mosaic_mode(data)
        assert e.value.name == ErrorName.NO_CENSORED_REGIONS_FOUND


def test_the_moon_sample_is_not_a_mosaic() -> None:
    img = moon()
    # (The sample is what the probe says: every 2x2 block is one colour.)
    assert (img[::2, ::2] == img[1::2, 1::2]).all()
    assert_no_mosaic(img)


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_nearest_neighbour_upscaled_drawing_is_not_a_mosaic(seed: int, factor: int) -> None:
    assert_no_mosaic(upscaled_art(seed, factor))


def pixelate(
    rgb: np.ndarray, block: int, x0: int, y0: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` with an n x n cell mosaic from (x0, y0), and its mask."""
    out = rgb.copy()
    win = rgb[y0 : y0 + n * block, x0 : x0 + n * block].astype(np.float64)
    cells = win.reshape(n, block, n, block, 3).mean(axis=(1, 3))
    out[y0 : y0 + n * block, x0 : x0 + n * block] = np.repeat(
        np.repeat(np.round(cells), block, 0), block, 1
    ).astype(np.uint8)
    mask = np.zeros(rgb.shape[:2], bool)
    mask[y0 : y0 + n * block, x0 : x0 + n * block] = True
    return out, mask


@pytest.mark.parametrize(
    ("name", "block", "x0", "y0"),
    [("moon", 8, 161, 202), ("art2", 8, 203, 149), ("art3", 12, 151, 170), ("art2", 10, 193, 175)],
)
def test_a_mosaic_on_an_upscaled_picture_is_restored_and_nothing_else(
    name: str, block: int, x0: int, y0: int
) -> None:
    clean = {"moon": moon(), "art2": upscaled_art(3, 2), "art3": upscaled_art(4, 3)}[name]
    censored, truth = pixelate(clean, block, x0, y0, 10)
    mask, grid = detect_mosaic(censored)
    assert grid == MosaicGrid(block, x0 % block, y0 % block)
    assert (mask & truth).sum() >= 0.8 * truth.sum()
    out = mosaic_mode(drawn.png_bytes(censored))
    changed = (out != censored).any(axis=2)
    assert not (changed & ~truth).any()

    # Restored, not merely touched: nearer the clean picture than the mosaic was.
    def err(a: np.ndarray) -> float:
        return float(((a[truth].astype(np.float64) - clean[truth]) ** 2).mean())

    assert err(out) < 0.9 * err(censored)


def grey_texture(seed: int, scale: float, size: int = 320) -> np.ndarray:
    """Smooth random relief in grey, like a photographed surface (craters, cells)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
    relief = cv2.GaussianBlur(noise, (0, 0), scale) + 0.5 * cv2.GaussianBlur(
        noise, (0, 0), scale / 2
    )
    relief = (relief - relief.mean()) / relief.std()
    grey = np.clip(128 + 40 * relief, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.dstack([grey] * 3))


@pytest.mark.parametrize(("seed", "block"), [(1, 8), (2, 14), (3, 20)])
def test_a_mosaic_over_grey_texture_restores_nearer_than_the_mosaic(seed: int, block: int) -> None:
    """In a grey picture every colour lies on the line between any two, so texture passed
    the two-tone test (two fills and their mixtures) and got sharp edges everywhere: the
    probe's grey clock and cell samples came out 3-6 dB worse than their mosaics."""
    from workers.imageops import restore_mosaic

    clean = grey_texture(seed, 0.6 * block)
    x0, y0 = 3 * block + 1, 3 * block + 2
    censored, truth = pixelate(clean, block, x0, y0, 8)
    out = restore_mosaic(censored, truth, MosaicGrid(block, x0 % block, y0 % block))

    def err(a: np.ndarray) -> float:
        return float(((a[truth].astype(np.float64) - clean[truth]) ** 2).mean())

    assert err(out) < 0.9 * err(censored)
