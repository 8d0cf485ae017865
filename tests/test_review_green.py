"""Hostile inputs for the fast painted-mask reader (workers.imageops.green.painted_mask):
randomised pictures (fixed seeds) against the oracle tests/green_reference.py, pixel for
pixel, in every memory layout; and the alpha plane's promise that what an editor keeps
under fully transparent pixels never changes the mask."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from tests import green_reference as reference
from workers.imageops import green as fast
from workers.imageops import synthetic as syn

Image = NDArray[np.uint8]
GREEN = np.array([0, 255, 0], np.uint8)


def jpeg(img: Image, quality: int) -> Image:
    ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    bgr = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def hostile(rng: np.random.Generator, h: int, w: int) -> Image:
    """One of ten kinds of picture built to sit on the reader's thresholds and edges."""
    kind = int(rng.integers(0, 10))
    img: NDArray[Any]
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 0:  # noise
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == 1:  # nearly all green, noise specks
        img = np.empty((h, w, 3), np.uint8)
        img[:] = GREEN
        n = rng.random((h, w)) < rng.uniform(0.01, 0.5)
        img[n] = rng.integers(0, 256, (int(n.sum()), 3))
    elif kind == 2:  # checkerboard of green and near-green
        near = np.array([rng.integers(0, 60), rng.integers(180, 256), rng.integers(0, 60)])
        p = int(rng.integers(1, 4))
        img = np.where((((yy // p) + (xx // p)) % 2 == 0)[:, :, None], GREEN, near)
    elif kind == 3:  # single green pixels at the corners
        img = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
        for y, x in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)):
            if rng.random() < 0.7:
                img[y, x] = GREEN
    elif kind == 4:  # green along every edge
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        t = int(rng.integers(1, 5))
        img[:t] = img[-t:] = img[:, :t] = img[:, -t:] = GREEN
    elif kind == 5:  # drawn art with brushed paint
        img = syn.draw_scene(int(rng.integers(0, 10**6)), (max(h, 8), max(w, 8)))[:h, :w]
        share: NDArray[Any] = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(1, 5))):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(share, centre, int(rng.integers(1, 40)), 1.0, -1)
        soft = float(rng.uniform(0, 4))
        if soft > 0.3:
            share = cv2.GaussianBlur(share, (0, 0), soft)
        img = share[..., None] * GREEN + (1 - share[..., None]) * img
    elif kind == 6:  # colours around the paint thresholds
        low, high = (0, 200, 0), (70, 256, 70)
        img = rng.integers(low, high, (h, w, 3))
    elif kind == 7:  # green specks on noise
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img[rng.random((h, w)) < 0.05] = GREEN
    elif kind == 8:  # a gradient into green
        ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        img = np.broadcast_to(ramp * GREEN + (1 - ramp) * rng.integers(0, 256, 3), (h, w, 3))
    else:  # a green block blurred into noise
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        img[y0 : y0 + int(rng.integers(1, 30)), x0 : x0 + int(rng.integers(1, 30))] = GREEN
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 3)))
    out = np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return jpeg(out, int(rng.integers(30, 96))) if rng.random() < 0.3 else out


def layouts(img: Image) -> list[Image]:
    """The same pixels as a packed array, a flipped view, an RGBA array's first three
    channels, and a read-only array."""
    h, w = img.shape[:2]
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[:, :, :3] = img
    frozen = img.copy()
    frozen.setflags(write=False)
    return [img, np.ascontiguousarray(img[::-1])[::-1], rgba[:, :, :3], frozen]


SIZES = ((1, 1), (1, 9), (9, 1), (2, 2), (3, 7), (8, 8), (1, 150), (150, 1), (40, 90), (130, 70))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hostile_pictures_read_as_the_oracle_reads_them(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(4):
        for h, w in SIZES:
            img = hostile(rng, h, w)
            want = reference.painted_mask(img)
            for view in layouts(img):
                got = fast.painted_mask(view)
                np.testing.assert_array_equal(got, want, err_msg=f"{h}x{w} seed {seed}")


@pytest.mark.parametrize("seed", [4, 5])
def test_alpha_never_paint_where_nothing_shows_and_changes_nothing_where_all_shows(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    levels = np.array([0, 1, 254, 255], np.uint8)
    for _ in range(5):
        for h, w in SIZES:
            img = hostile(rng, h, w)
            want = reference.painted_mask(img)
            seen = rng.choice(levels[1:], (h, w))
            # Any level but 0 shows the pixel: the oracle's reading, plane given or not,
            # packed or cut from an RGBA array.
            rgba = np.dstack([img, seen])
            np.testing.assert_array_equal(fast.painted_mask(img, seen), want)
            np.testing.assert_array_equal(fast.painted_mask(rgba[:, :, :3], rgba[:, :, 3]), want)
            holes = rng.choice(levels, (h, w))
            mask = fast.painted_mask(img, holes)
            assert not mask[holes == 0].any()


def bridged(strip: int, hidden: tuple[int, int, int]) -> tuple[Image, NDArray[np.uint8]]:
    """Opaque paint, then a fully transparent strip holding ``hidden``, then an opaque
    half-green band over grey paper."""
    rgb = np.full((120, 160, 3), 180, np.uint8)
    alpha = np.full((120, 160), 255, np.uint8)
    rgb[40:80, 20:60] = GREEN
    rgb[40:80, 60 : 60 + strip] = hidden
    alpha[40:80, 60 : 60 + strip] = 0
    rgb[40:80, 60 + strip : 66 + strip] = (90, 218, 90)
    return rgb, alpha


@pytest.mark.parametrize("strip", [2, 4, 8])
def test_colour_kept_under_transparent_pixels_does_not_change_the_mask(strip: int) -> None:
    # An editor keeps any colour under fully transparent pixels. Green kept in a strip
    # between the paint and a half-green band carried the band into the mask (every
    # pixel of it at 8 px), grey kept there did not: the hidden colour decided.
    green, alpha = bridged(strip, (0, 255, 0))
    grey, _ = bridged(strip, (180, 180, 180))
    band = np.zeros(alpha.shape, bool)
    band[40:80, 60 + strip : 66 + strip] = True
    got = fast.painted_mask(green, alpha)
    np.testing.assert_array_equal(got, fast.painted_mask(grey, alpha))
    assert not got[band].any() and not got[alpha == 0].any()
    assert got[40:80, 20:60].all()
