"""Mosaic detection on the quality bench's held-out pictures (seed bases 25000 and 29000).

Each test rebuilds one case the way ``bench/quality.py`` does (its drawing, censor and coding
from the same seeds) and pins one class of failure found on it, with a synthetic picture of
the same class where one can be drawn.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.imageops import MosaicGrid, detect_mosaic, drawn, restore_mosaic
from workers.imageops.mosaic import _comb_scores

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]

_DEFAULT_BASE = 1000
_BLOCKS = (6, 8, 10, 12, 14, 16, 18, 20, 24)
_PICTURES = 40


def bench_case(base: int, i: int, quality: int | None) -> tuple[Image, Mask, MosaicGrid]:
    """Mosaic case ``i`` of the quality bench at seed base ``base`` (PNG when ``quality`` is
    None): the decoded input, the pixelated cells and their grid."""
    shift = base - _DEFAULT_BASE
    k = (i * 7) % _PICTURES
    theme = drawn.BENCH_SCHEMES[drawn.bench_scheme(k)][0]
    pic = drawn.draw_art(1000 + k + shift, drawn.BENCH_SIZES[k % len(drawn.BENCH_SIZES)], theme)
    block = _BLOCKS[i % len(_BLOCKS)]
    cen = drawn.censor_mosaic(pic, 3000 + i + shift, block)
    img = cen.image if quality is None else drawn.decode(drawn.jpeg_bytes(cen.image, quality))
    grid = MosaicGrid(block, cen.phase[0] % block, cen.phase[1] % block)
    return img, cen.mosaic, grid


def bench_clean(base: int, i: int) -> Image:
    """The uncensored picture of mosaic case ``i`` at seed base ``base``."""
    k = (i * 7) % _PICTURES
    theme = drawn.BENCH_SCHEMES[drawn.bench_scheme(k)][0]
    size = drawn.BENCH_SIZES[k % len(drawn.BENCH_SIZES)]
    return drawn.draw_art(1000 + k + base - _DEFAULT_BASE, size, theme).image


def far_from(region: Mask, margin: int = 4) -> Mask:
    dist = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 5)
    out: Mask = dist > margin
    return out


# -- a drawn gradient's bands are not the picture's own pixel grid ---------------------------


def banded_sky_with_mosaic(block: int) -> tuple[Image, Mask]:
    """A sky whose colour steps by one level every ``block`` rows, half a block off the
    mosaic's grid (a drawn gradient, saved losslessly), and a figure pixelated on a
    ``block`` px grid from (0, 0)."""
    h, w = 480, 480
    rows = ((np.arange(h) + block // 2) // block).astype(np.float32)
    sky = np.empty((h, w, 3), np.float32)
    sky[:, :, 0] = 100 + rows[:, None]
    sky[:, :, 1] = 150 + rows[:, None]
    sky[:, :, 2] = 230
    art = drawn.draw_art(7, (w, h), "plain").image.astype(np.float32)
    subject = drawn.draw_art(7, (w, h), "plain").subject
    img = np.where(subject[:, :, None], art, sky).astype(np.uint8)
    x0, y0, n = 20 * block, 40 * block, 30
    cells = img[y0 : y0 + n * block, x0 : x0 + n * block].astype(np.float64)
    means = cells.reshape(n, block, n, block, 3).mean(axis=(1, 3))
    img[y0 : y0 + n * block, x0 : x0 + n * block] = np.repeat(
        np.repeat(np.round(means), block, 0), block, 1
    ).astype(np.uint8)
    truth = np.zeros((h, w), bool)
    truth[y0 : y0 + n * block, x0 : x0 + n * block] = True
    return img, truth


def test_a_banded_gradient_does_not_pass_for_the_pictures_own_pixels() -> None:
    # The bands are exactly uniform "cells" of the grid moved by half a block; the pixel-grid
    # check took them for the picture's own pixels and refused the mosaic.
    img, truth = banded_sky_with_mosaic(6)
    mask, grid = detect_mosaic(img)
    assert grid == MosaicGrid(6, 0, 0)
    assert (mask & truth).sum() >= 0.8 * truth.sum()
    assert not (mask & far_from(truth)).any()


def test_held_out_mosaics_next_to_a_banded_sky_are_found() -> None:
    # Base 25000 cases 09 (PNG) and 10 (JPEG 90): NoCensoredRegionsFound before.
    for i, quality in ((9, None), (10, 90)):
        img, truth, grid = bench_case(25000, i, quality)
        mask, got = detect_mosaic(img)
        assert got == grid, (i, got)
        assert (mask & truth).sum() >= 0.8 * truth.sum(), i
        assert (mask & far_from(truth)).mean() < 0.0005, i


def test_a_jpeg_banded_gradient_does_not_pass_for_the_pictures_own_pixels() -> None:
    # Saved as JPEG the bands are no longer exactly uniform, but still cells that step
    # across one axis only, their own colour either side: base 25000 case 01 (JPEG 90) took
    # half the block (4 px) when the 8 px grid was refused as the picture's own.
    img, truth, grid = bench_case(25000, 1, 90)
    mask, got = detect_mosaic(img)
    assert got == grid
    assert (mask & truth).sum() >= 0.7 * truth.sum()


# -- a grid at half the block does not win by what it sees elsewhere --------------------------


def test_half_the_block_does_not_win_by_regions_elsewhere() -> None:
    # The grid at half the block sees the mosaic's cells too, and at its smaller size takes a
    # background gradient for mosaic beside them: base 25000 case 14 (JPEG 95) chose 8 px
    # over the true 16 and changed 2.2 % of the picture outside the mosaic; base 29000 case
    # 20 (PNG) chose 5 px over 10. Compared where the coarse grid's regions lie, the coarse
    # grid finds as much and is the mosaic.
    for base, i, quality in ((25000, 14, 95), (29000, 20, None)):
        img, truth, grid = bench_case(base, i, quality)
        mask, got = detect_mosaic(img)
        assert got == grid, (base, i, got)
        assert (mask & truth).sum() >= 0.8 * truth.sum(), (base, i)
        assert (mask & far_from(truth)).mean() < 0.0005, (base, i)


# -- JPEG's ringing inside mosaic cells next to strong steps ---------------------------------


def squared_error_covered(mask: Mask, img: Image, clean: Image, truth: Mask) -> float:
    err = ((img.astype(np.float64) - clean) ** 2).sum(axis=2)
    return float(err[mask & truth].sum() / err[truth].sum())


def test_cells_ringing_from_jpeg_inside_a_mosaics_hull_are_taken() -> None:
    # Next to an ink line JPEG leaves a mosaic cell a spread over the flat limit (8), its
    # halved chroma most at small blocks; the cell's luma stays flat, while unpixelated
    # art beside a mosaic has a luma spread of about 40. Base 25000 case 16 (b20, JPEG 90):
    # the mask held 0.69 of the mosaic's squared error, now all of it; base 29000 case 09
    # (b6, JPEG 80): 0.13, now 0.99.
    for base, i, quality, share in ((25000, 16, 90, 0.95), (29000, 9, 80, 0.9)):
        img, truth, grid = bench_case(base, i, quality)
        clean = bench_clean(base, i)
        mask, got = detect_mosaic(img)
        assert got == grid
        assert squared_error_covered(mask, img, clean, truth) >= share, (base, i)
        assert (mask & far_from(truth)).mean() < 0.0005, (base, i)


def test_art_beside_a_jpeg_mosaic_is_not_taken_for_ringing_cells() -> None:
    # Base 25000 case 06 (b18 on night art, JPEG 80): cells of the figure beside the mosaic,
    # inside its hull, passed a looser colour-spread limit; restored, 0.16 % of the
    # picture changed outside the mosaic. By their luma they are not flat.
    img, truth, grid = bench_case(25000, 6, 80)
    mask, got = detect_mosaic(img)
    assert got == grid
    out = restore_mosaic(img, mask, got)
    assert not (out != img).any(axis=2)[far_from(truth)].any()


# -- flat cells that continue a flat field outside the mask are left as they are ------------


def test_a_flat_cell_beside_a_flat_field_of_its_colour_is_left_alone() -> None:
    # A flat cell at a concave corner of a mosaic steps to it on two sides and is taken for
    # one of its cells; restored, it took the mosaic's steps smeared into it.
    b = 8
    field = np.array((223, 125, 211), np.uint8)
    img = np.empty((96, 96, 3), np.uint8)
    img[:] = field
    rng = np.random.default_rng(3)
    truth = np.zeros((96, 96), bool)
    for cy in range(2, 8):
        for cx in range(2, 8):
            if cy >= 5 and cx <= 3:
                continue  # the notch: the corner cell (5, 4)'s left and lower sides
            img[cy * b : (cy + 1) * b, cx * b : (cx + 1) * b] = rng.integers(60, 200, 3)
            truth[cy * b : (cy + 1) * b, cx * b : (cx + 1) * b] = True
    corner = np.zeros_like(truth)
    corner[5 * b : 6 * b, 3 * b : 4 * b] = True
    out = restore_mosaic(img, truth | corner, MosaicGrid(b, 0, 0))
    assert np.array_equal(out[corner], img[corner])
    assert (out[truth] != img[truth]).any()


def test_held_out_flat_field_beside_a_mosaic_is_not_changed() -> None:
    # Base 25000 case 22 (b14, JPEG 90): 0.206 % of the picture changed more than 4 px
    # outside the mosaic, all of it flat background beside it; now 0.035 %.
    img, truth, grid = bench_case(25000, 22, 90)
    mask, got = detect_mosaic(img)
    assert got == grid
    out = restore_mosaic(img, mask, got)
    changed = (out != img).any(axis=2)
    assert changed[far_from(truth)].mean() < 0.001


# -- a small mosaic on a busy picture is looked for in windows about its size ----------------


def both_case(base: int, i: int, quality: int) -> tuple[Image, Mask, MosaicGrid]:
    """Case ``i`` of the quality bench's bars-and-mosaic section at seed base ``base``."""
    shift = base - _DEFAULT_BASE
    k = (i * 3 + 1) % _PICTURES
    theme = drawn.BENCH_SCHEMES[drawn.bench_scheme(k)][0]
    pic = drawn.draw_art(1000 + k + shift, drawn.BENCH_SIZES[k % len(drawn.BENCH_SIZES)], theme)
    layout = drawn.LAYOUTS[i % len(drawn.LAYOUTS)]
    scheme = drawn.BENCH_SCHEMES[drawn.bench_scheme(i + 5)]
    colour = scheme[1] if pic.theme == scheme[0] else None
    block = _BLOCKS[(i * 2) % len(_BLOCKS)]
    cen = drawn.censor_both(pic, 6000 + i + shift, layout, colour, block)
    img = drawn.decode(drawn.jpeg_bytes(cen.image, quality))
    return img, cen.mosaic, MosaicGrid(block, cen.phase[0] % block, cen.phase[1] % block)


def test_a_small_mosaic_on_a_busy_picture_is_found_in_a_window() -> None:
    # Screentone, hatching and JPEG noise step in isolation too, and drown a mosaic of a
    # few dozen cells in the whole picture's (and its quarters') comb: base 25000 both #01
    # (b10 on manga art, JPEG 90; 647 of 13362 isolated steps are the mosaic's) and mosaic
    # #04 (b14, JPEG 90) answered NoCensoredRegionsFound. In a window a quarter of the short
    # side wide they stand out (or a multiple of the block does, whose half is then tried).
    for img, truth, grid in (both_case(25000, 1, 90), bench_case(25000, 4, 90)):
        mask, got = detect_mosaic(img)
        assert got == grid
        assert (mask & truth).sum() >= 0.5 * truth.sum()
        assert (mask & far_from(truth)).mean() < 0.0005


# -- a window's comb does not rest on one line ------------------------------------------------


def test_one_line_in_a_window_is_no_comb() -> None:
    # A window's profile of isolated steps holding one long straight edge (40 steps in one
    # column, a few stray ones elsewhere) and one holding a b18 mosaic's lines (7 of them).
    # Folded at a block of 33 (3 lines in 128 px), the lone edge scored 33 / 3 times its
    # share and outranked the mosaic's comb; left out, it is no comb at all.
    lone = np.zeros(128)
    lone[[5, 50, 77, 110]] = 1.0
    lone[40] = 40.0
    comb = np.zeros(128)
    comb[3::18] = 12.0
    comb[[20, 61, 100]] = 2.0
    for robust in (False, True):
        lone_score = _comb_scores(lone, robust)[0].max()
        comb_score = _comb_scores(comb, robust)[0][18]
        assert (lone_score > comb_score) == (not robust)
    assert _comb_scores(comb, True)[0][18] >= 5.0


def test_held_out_mosaics_behind_lone_lines_are_found_in_a_window() -> None:
    # Bases 41000 / 45000, JPEG 80: long straight edges and hatching (a few lines each)
    # outscored these mosaics' combs in every window by folding at blocks of 31-39 (3-4
    # lines in a 128 px window), and the true grid was never looked at:
    # NoCensoredRegionsFound for 45000 #15 (b18), 41000 #09, 45000 #00 and #09 (b6).
    for base, i in ((45000, 15), (41000, 9), (45000, 0), (45000, 9)):
        img, truth, grid = bench_case(base, i, 80)
        mask, got = detect_mosaic(img)
        assert got == grid, (base, i, got)
        assert (mask & truth).sum() >= 0.5 * truth.sum()
        assert (mask & far_from(truth)).mean() < 0.0005
