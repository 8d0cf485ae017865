"""Outside review of the cpu backend's detectors (bars.py, mosaic.py): inputs the tuning did
not see."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from workers.imageops import detect_mosaic, mosaic


def _windows_ranked(monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int]) -> int:
    """How many windows the mosaic's window search ranks grids in, on a picture of ``shape``
    (h, w) with isolated steps everywhere."""
    h, w = shape
    rng = np.random.default_rng(0)
    ex = rng.random((h, w - 1)) < 0.05
    ey = rng.random((h - 1, w)) < 0.05
    calls = 0
    real = mosaic._candidates_of

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(mosaic, "_candidates_of", counted)
    mosaic._local_grids((ex, ey), [])
    return calls


def test_the_window_search_on_a_long_strip_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # A window a quarter of the short side wide, half overlapping, gave a 400x40000 strip 5600
    # windows: 3.8 s CPU for detect_mosaic on noise where the rest of it takes 0.3 s.
    assert _windows_ranked(monkeypatch, (400, 40000)) <= 128
    assert _windows_ranked(monkeypatch, (40000, 400)) <= 128
    assert _windows_ranked(monkeypatch, (96, 30000)) <= 128


def test_the_window_search_on_an_ordinary_picture_is_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4:3 and 2:1 pictures keep windows a quarter of their short side wide, half overlapping.
    assert _windows_ranked(monkeypatch, (3000, 4000)) == 7 * 9
    assert _windows_ranked(monkeypatch, (1024, 2048)) == 7 * 15
    assert _windows_ranked(monkeypatch, (640, 640)) == 7 * 7


def test_jpeg_blocks_of_a_scanned_page_are_no_mosaic() -> None:
    # scikit-image's page: a scan saved as JPEG and cropped off JPEG's phase, whose smooth
    # paper decodes to flat 8 px blocks a level or two apart. No grid of the whole picture
    # or its quarters found a mosaic; a window's 8 px grid then took 3.8 % of it.
    page = np.repeat(skimage.data.page()[:, :, None], 3, axis=2)  # type: ignore[no-untyped-call]
    mask, grid = detect_mosaic(np.ascontiguousarray(page))
    assert not mask.any(), (grid, int(mask.sum()))
