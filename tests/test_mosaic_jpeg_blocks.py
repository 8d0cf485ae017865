"""JPEG's own 8 px blocks are no mosaic: a JPEG'd gradient decodes to flat blocks with a
step at every block edge, which a grid on those edges (8 px or a multiple, at a phase on
them) would take for cells. Inside such a "cell" the blocks step from one another just as
much; inside a mosaic cell they are all one colour."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_auto import pixelate
from workers.imageops import MosaicGrid, detect_mosaic, drawn
from workers.imageops import mosaic as m
from workers.imageops import synthetic as syn


def gradient_sky(h: int = 512, w: int = 512) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    top, bottom = np.array((70, 130, 215.0)), np.array((225, 235, 245.0))
    sky = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3))
    return np.clip(sky + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("block", [16, 24, 32, 40])
def test_a_jpegd_gradients_blocks_are_not_cells_of_a_grid_on_their_edges(block: int) -> None:
    img = syn.jpeg(gradient_sky(), 80)
    planes = m._Planes(img)
    cells, _, _ = m._mosaic_cells(planes, MosaicGrid(block, 0, 0))
    assert not cells.any()


@pytest.mark.parametrize("block", [16, 24, 32, 40])
def test_a_mosaic_on_jpegs_block_edges_is_still_found(block: int) -> None:
    """A mosaic whose grid lies on JPEG's block edges (a multiple of 8 px, at phases that
    are too) over the same sky and a drawing: its cells' inner block edges show no step,
    and it is found."""
    clean = gradient_sky()
    clean[192:512, 0:320] = drawn.draw_art(5, (320, 320)).image
    n = 224 // block
    censored = pixelate(clean, 256, 256 + n * block, 32, 32 + n * block, block)
    truth = np.zeros(clean.shape[:2], bool)
    truth[256 : 256 + n * block, 32 : 32 + n * block] = True
    mask, grid = detect_mosaic(syn.jpeg(censored, 80))
    assert grid == MosaicGrid(block, 32 % block, 256 % block)
    # Measured 0.87-0.98 of it, as before the check of the blocks inside the cells.
    assert (mask & truth).sum() >= 0.8 * truth.sum()
    assert not (mask & ~truth).any()


@pytest.mark.parametrize(("seed_base", "case"), [(1000, 15), (5000, 9)])
def test_the_benchmarks_jpeg80_skies_are_not_taken_for_mosaic(seed_base: int, case: int) -> None:
    """Two cases of bench/quality.py's drawn-art mosaic section (JPEG 80, a gradient sky):
    a 32 px and a 40 px grid on JPEG's block edges outscored the true mosaic's and changed
    6.5 % and 9.2 % of the picture outside it."""
    shift = seed_base - 1000
    i = (case * 7) % 40
    theme = drawn.BENCH_SCHEMES[drawn.bench_scheme(i)][0]
    pic = drawn.draw_art(shift + 1000 + i, drawn.BENCH_SIZES[i % len(drawn.BENCH_SIZES)], theme)
    block = (6, 8, 10, 12, 14, 16, 18, 20, 24)[case % 9]
    cen = drawn.censor_mosaic(pic, shift + 3000 + case, block)
    img = drawn.decode(drawn.jpeg_bytes(cen.image, 80))
    mask, grid = detect_mosaic(img)
    assert grid == MosaicGrid(block, cen.phase[0] % block, cen.phase[1] % block)
    assert not (mask & ~cen.mosaic).any()
    assert (mask & cen.mosaic).sum() >= 0.3 * cen.mosaic.sum()
