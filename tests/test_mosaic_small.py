"""Mosaic functions called directly on pictures too small to hold a grid (the pipeline
refuses sides under 8 px, but the library functions must answer, not crash)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from workers.imageops import mosaic as m


@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (10, 1), (1, 300), (300, 1), (2, 2), (5, 60)])
def test_tiny_pictures_have_steps_and_no_mosaic(shape: tuple[int, int]) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    dx, dy = m._abs_steps(rgb)
    h, w = shape
    assert dx.shape == (h, w - 1) and dy.shape == (h - 1, w)
    # The steps are the channel sums of the absolute differences, as on big pictures.
    px = rgb.astype(np.int64)
    assert np.array_equal(dx, np.abs(px[:, 1:] - px[:, :-1]).sum(axis=2))
    assert np.array_equal(dy, np.abs(px[1:] - px[:-1]).sum(axis=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty slice either
        mask, grid = m.detect_mosaic(rgb)
        assert grid is None and mask.shape == shape and not mask.any()
        assert m.grid_candidates(rgb) == []
        assert m.estimate_grid(rgb) is None


def test_a_thin_strip_of_mosaic_is_restored_without_crashing() -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (1, 40, 3), dtype=np.uint8)
    out = m.restore_mosaic(rgb, np.ones((1, 40), bool), m.MosaicGrid(4, 0, 0))
    assert out.shape == rgb.shape


def test_big_pictures_steps_match_the_small_path() -> None:
    """The OpenCV path for ordinary pictures and numpy's for thin ones agree."""
    rgb = np.random.default_rng(5).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    dx, dy = m._abs_steps(rgb)
    px = rgb.astype(np.int64)
    assert np.array_equal(dx, np.abs(px[:, 1:] - px[:, :-1]).sum(axis=2))
    assert np.array_equal(dy, np.abs(px[1:] - px[:-1]).sum(axis=2))
