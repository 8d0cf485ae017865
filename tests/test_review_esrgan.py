"""Hostile layouts for ESRGAN's per-region grid (workers.onnx.esrgan): the quick reading
off the steps under the mask must never take another region's mosaic for its own, and
on awkward mosaics (blocks at the limits, a 2x nearest-neighbour picture around the
mosaic, the picture's edges, screentone) it agrees with the measurement or the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workers.backend import Image, Mask
from workers.imageops import synthetic as syn
from workers.imageops.mosaic import MosaicGrid
from workers.onnx import OnnxConfig, standins
from workers.onnx import esrgan as E
from workers.onnx.detector import grow
from workers.onnx.regions import Components


def pixelate(img: Image, box: tuple[int, int, int, int], block: int, phase: int) -> Image:
    """``img`` with the cells of a ``block`` grid at ``phase`` (both axes) inside ``box``
    (x0, y0, x1, y1) set to their whole cell's mean."""
    out = img.copy()
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    for cy in range(phase - block * (phase // block + 1), y1, block):
        for cx in range(phase - block * (phase // block + 1), x1, block):
            ya, yb, xa, xb = max(cy, y0), min(cy + block, y1), max(cx, x0), min(cx + block, x1)
            if ya < yb and xa < xb:
                cell = img[max(cy, 0) : min(cy + block, h), max(cx, 0) : min(cx + block, w)]
                out[ya:yb, xa:xb] = np.rint(cell.reshape(-1, 3).mean(axis=0))
    return out


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory: pytest.TempPathFactory) -> E.Esrgan:
    path = Path(tmp_path_factory.mktemp("esrgan")) / "esrgan.onnx"
    cfg = OnnxConfig()
    return E.Esrgan.load(standins.esrgan(path), cfg.esrgan, cfg.provider)


def ring_around_a_mosaic(outer: int, inner: int, seed: int) -> tuple[Image, Mask, Mask]:
    """A ring of ``outer`` px cells whose box holds a separate region of ``inner`` px
    cells (10 px apart): the picture, the ring's mask and the whole mask."""
    picture = pixelate(syn.draw_scene(seed, (420, 480)), (60, 60, 360, 360), outer, 0)
    picture = pixelate(picture, (110, 110, 310, 310), inner, 3)
    ring = np.zeros((420, 480), bool)
    ring[60:360, 60:360] = True
    ring[100:320, 100:320] = False
    mask = ring.copy()
    mask[110:310, 110:310] = True
    return picture, ring, mask


@pytest.mark.parametrize(
    ("outer", "inner", "seed"), [(8, 20, 51), (8, 20, 52), (6, 15, 51), (10, 24, 52)]
)
def test_a_region_is_read_off_its_own_pixels_not_a_neighbours(
    upscaler: E.Esrgan, outer: int, inner: int, seed: int
) -> None:
    # The inner region lies in the ring's box: its steps, read as the ring's, gave the
    # ring the inner block (20 for 8, 10 for 16) where the measurement was right, and
    # the ring was redrawn on the wrong grid. Each region is redrawn as it is alone.
    picture, ring, mask = ring_around_a_mosaic(outer, inner, seed)
    assert len(list(Components(mask, connectivity=8).boxes())) == 2
    inside = mask & ~ring

    def restore(where: Mask) -> Image:
        return E.restore(picture, where, upscaler, feather=0, default_block=10)

    both, alone = restore(mask), restore(ring)
    np.testing.assert_array_equal(both[ring], alone[ring])
    np.testing.assert_array_equal(both[inside], restore(inside)[inside])
    (box,) = [b for _, b in Components(ring, connectivity=8).boxes()]
    assert E.region_grid(picture, ring, box) == MosaicGrid(outer, 0, 0)


def reading(picture: Image, mask: Mask) -> tuple[MosaicGrid | None, MosaicGrid | None]:
    (box,) = [b for _, b in Components(mask, connectivity=8).boxes()]
    return E.quick_grid(picture, mask, E._centre(box)), E.measured_grid(picture, box)


@pytest.mark.parametrize(("block", "quality"), [(4, None), (4, 70), (40, None), (39, 70)])
def test_blocks_at_the_limits(block: int, quality: int | None) -> None:
    picture = pixelate(syn.draw_scene(31, (400, 480)), (60, 40, 420, 380), block, 7)
    if quality is not None:
        picture = syn.jpeg(picture, quality)
    mask = np.zeros((400, 480), bool)
    mask[40:380, 60:420] = True
    quick, measured = reading(picture, grow(mask, 3))
    assert quick in (None, measured, MosaicGrid(block, 7 % block, 7 % block))
    assert measured == MosaicGrid(block, 7 % block, 7 % block)


@pytest.mark.parametrize("block", [5, 6, 12])
def test_a_mask_spilling_over_a_2x_nearest_picture(block: int) -> None:
    # Every 2x2 square of the picture around the mosaic is one colour: its steps lie on
    # every other line, under the mask's spill too.
    half = syn.draw_scene(32, (200, 240))
    picture = pixelate(np.repeat(np.repeat(half, 2, 0), 2, 1), (150, 120, 300, 260), block, 3)
    mask = np.zeros((400, 480), bool)
    mask[120:260, 150:300] = True
    quick, _ = reading(picture, grow(mask, 40))
    assert quick in (None, MosaicGrid(block, 3 % block, 3 % block))


def test_mosaics_at_the_corners_and_edges() -> None:
    scene = syn.draw_scene(31, (400, 480))
    for box in ((0, 0, 150, 130), (330, 270, 480, 400), (420, 0, 480, 400)):
        picture = pixelate(scene, box, 16, 3)
        mask = np.zeros((400, 480), bool)
        mask[box[1] : box[3], box[0] : box[2]] = True
        quick, measured = reading(picture, grow(mask, 3))
        assert quick in (None, measured, MosaicGrid(16, 3, 3)), box
