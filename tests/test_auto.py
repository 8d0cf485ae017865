"""``auto`` mode: hent-AI looks for bars and mosaic in one pass and does what it finds."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from erogaki_common.errors import ErrorName, JobFailed, ProcessingError
from erogaki_common.images import Limits
from erogaki_common.protocol import Mode
from erogaki_common.submit import Submitter
from tests.imaging import Pixels, pixels_of, png
from tests.test_workers import Workers, grow
from workers import cpu_backend, imageops, pipeline
from workers.cpu_backend import CpuHentai
from workers.imageops import synthetic as syn

ROOT = Path(__file__).resolve().parent.parent
LIMITS = Limits(25 << 20, 40_000_000)
BLOCK = 12


def pixelate(rgb: Pixels, y0: int, y1: int, x0: int, x1: int, block: int) -> Pixels:
    """``rgb`` with a grid-aligned window replaced by its cell means, as censoring tools do."""
    out = rgb.copy()
    win = rgb[y0:y1, x0:x1].astype(np.float64)
    h, w = (y1 - y0) // block, (x1 - x0) // block
    cells = win.reshape(h, block, w, block, 3).mean(axis=(1, 3))
    up = np.repeat(np.repeat(np.round(cells), block, 0), block, 1)
    out[y0:y1, x0:x1] = up.astype(np.uint8)
    return out


def both_censored() -> tuple[Pixels, Pixels, NDArray[np.bool_], NDArray[np.bool_]]:
    """A drawn scene with a mosaic on the left and a black bar on the right:
    (clean, censored, mosaic truth, bar truth)."""
    clean = syn.draw_scene(5, (384, 384))
    censored = pixelate(clean, 96, 240, 36, 180, BLOCK)
    mosaic = np.zeros(clean.shape[:2], bool)
    mosaic[96:240, 36:180] = True
    bar = np.zeros_like(mosaic)
    bar[150:176, 236:352] = True
    censored[bar] = (0, 0, 0)
    return clean, censored, mosaic, bar


@pytest.fixture
def procs(redis_url: str) -> Iterator[Workers]:
    group = Workers(redis_url)
    yield group
    group.stop()


def mse(a: Pixels, b: Pixels, where: NDArray[np.bool_]) -> float:
    return float(((a[where].astype(float) - b[where]) ** 2).mean())


def test_cpu_auto_finds_both_in_one_pass() -> None:
    clean, censored, mosaic, bar = both_censored()
    restored, found_mosaic, found_bars = CpuHentai().auto(censored)
    # Each kind is found where it is, and only there.
    assert (found_bars & bar).sum() >= 0.95 * bar.sum()
    # Nothing is taken for a bar outside the censored regions, not even a flat patch of
    # the drawing that the mosaic's edge cuts straight. (Mosaic cells may be: they are
    # then inpainted instead of restored.)
    assert (found_bars & ~grow(bar, 4) & ~grow(mosaic, BLOCK)).sum() < 0.01 * bar.sum()
    # Cells over flat paint are indistinguishable from it, so part of a mosaic can go unseen.
    assert (found_mosaic & mosaic).sum() >= 0.75 * mosaic.sum()
    assert not (found_mosaic & ~grow(mosaic, BLOCK)).any()
    # The mosaic is restored in the returned picture, the bars left for inpainting.
    assert mse(restored, clean, mosaic) < mse(censored, clean, mosaic)
    assert np.array_equal(restored[~found_mosaic], censored[~found_mosaic])


@pytest.mark.parametrize(
    "bar_box",
    [
        (150, 176, 20, 200),  # across the mosaic
        (150, 176, 130, 360),  # overlapping its edge, mostly outside
        (246, 272, 60, 200),  # touching its bottom edge
    ],
)
def test_a_bar_across_or_beside_the_mosaic_is_still_a_bar(
    bar_box: tuple[int, int, int, int],
) -> None:
    clean = syn.draw_scene(5, (384, 384))
    censored = pixelate(clean, 96, 240, 36, 180, BLOCK)
    y0, y1, x0, x1 = bar_box
    bar = np.zeros(clean.shape[:2], bool)
    bar[y0:y1, x0:x1] = True
    censored[bar] = (0, 0, 0)
    _, _, found_bars = CpuHentai().auto(censored)
    assert (found_bars & bar).sum() >= 0.95 * bar.sum()


def test_auto_pipeline_says_what_comes_next() -> None:
    clean, censored, _, bar = both_censored()
    data, bars_left = pipeline.auto(png(censored), CpuHentai(), LIMITS, {})
    out = pixels_of(data)
    assert bars_left
    assert (np.all(out == (0, 255, 0), axis=-1) & bar).sum() >= 0.95 * bar.sum()

    only_mosaic = pixelate(clean, 96, 240, 36, 180, BLOCK)
    data, bars_left = pipeline.auto(png(only_mosaic), CpuHentai(), LIMITS, {})
    assert not bars_left
    assert not np.all(pixels_of(data) == (0, 255, 0), axis=-1).any()

    with pytest.raises(ProcessingError) as caught:
        pipeline.auto(png(clean), CpuHentai(), LIMITS, {})
    assert caught.value.name is ErrorName.NO_CENSORED_REGIONS_FOUND


async def test_auto_through_both_workers(procs: Workers, redis_url: str) -> None:
    await procs.start("hent-ai", "hentai-auto")
    await procs.start("deepcreampy", "dcp-auto")
    clean, censored, mosaic, bar = both_censored()
    async with Submitter(redis_url) as submitter:
        result = pixels_of(await submitter.decensor(png(censored), Mode.AUTO, timeout=60))
        # Mosaic restored, bar inpainted, nothing else touched.
        assert mse(result, clean, mosaic) < mse(censored, clean, mosaic)
        assert mse(result, clean, bar) < mse(censored, clean, bar) / 3
        outside = ~grow(bar, 4) & ~grow(mosaic, BLOCK)
        assert mse(result, censored, outside) < 1.0  # PSNR over 48 dB outside

        with pytest.raises(JobFailed) as caught:
            await submitter.decensor(png(clean), Mode.AUTO, timeout=60)
        assert caught.value.info.name is ErrorName.NO_CENSORED_REGIONS_FOUND


async def test_auto_from_the_command_line(procs: Workers, redis_url: str, tmp_path: Path) -> None:
    await procs.start("hent-ai", "hentai-cli")
    await procs.start("deepcreampy", "dcp-cli")
    _, censored, _, bar = both_censored()
    source = tmp_path / "both.png"
    source.write_bytes(png(censored))
    done = subprocess.run(
        [sys.executable, "-m", "erogaki", "decensor", "auto", str(source), "--timeout", "60"],
        cwd=ROOT, env={"REDIS_URL": redis_url, "PATH": ""}, capture_output=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    out = pixels_of((tmp_path / "both.decensored.png").read_bytes())
    assert not (out[bar] == 0).all(axis=-1).any()


def bar_on(block: int, shape: NDArray[np.bool_]) -> tuple[Pixels, NDArray[np.bool_], Pixels]:
    """A mosaic of ``block`` px with ``shape`` painted over it in a dark colour."""
    clean = syn.draw_scene(5, (384, 384))
    censored = pixelate(clean, 96, 96 + 12 * block, 36, 36 + 12 * block, block)
    censored[shape] = (20, 20, 90)
    return clean, shape, censored


def box(y0: int, y1: int, x0: int, x1: int) -> NDArray[np.bool_]:
    out = np.zeros((384, 384), bool)
    out[y0:y1, x0:x1] = True
    return out


def tilted(cx: float, cy: float, length: float, thick: float, angle: float) -> NDArray[np.bool_]:
    out = np.zeros((384, 384), np.uint8)
    corners = cv2.boxPoints(((cx, cy), (length, thick), angle)).astype(np.int32)
    cv2.fillPoly(out, [corners], 1)
    return out.astype(bool)


@pytest.mark.parametrize(
    ("block", "shape"),
    [
        (8, box(147, 173, 57, 157)),  # edges between the grid lines
        # It merges with like-coloured cells beside it, whose grid lines show up along its
        # outline; the lines inside it show no step, as they would inside a run of cells.
        (12, box(147, 173, 57, 157)),
        (12, box(125, 143, 53, 167)),
        (8, tilted(110, 160, 90, 22, 25)),
        (12, tilted(110, 160, 90, 22, 25)),
    ],
)
def test_a_bar_lying_wholly_on_the_mosaic_is_a_bar(block: int, shape: NDArray[np.bool_]) -> None:
    _, bar, censored = bar_on(block, shape)
    restored, found_mosaic, found_bars = CpuHentai().auto(censored)
    assert (found_bars & bar).sum() >= 0.95 * bar.sum()
    # It is left for inpainting, not restored as mosaic; the mosaic around it still is.
    assert not (found_mosaic & bar).any()
    assert np.array_equal(restored[bar], censored[bar])
    truth = np.zeros_like(bar)
    truth[96 : 96 + 12 * block, 36 : 36 + 12 * block] = True
    rest = truth & ~grow(bar, 2 * block)
    # (Cells over flat paint look like paint, and a bar across a mosaic can hide its
    # grid's coarser lines: the share found is lower than without the bar.)
    assert (found_mosaic & rest).sum() >= 0.4 * rest.sum()
    assert (restored[rest] != censored[rest]).any(axis=-1).mean() >= 0.3


def test_runs_of_like_cells_are_restored_as_mosaic_not_inpainted() -> None:
    """On a mosaic with no bar, runs of like cells may look like bars to the detector;
    auto must restore them with the rest (their outline is the grid's)."""
    clean = syn.draw_scene(5, (384, 384))
    censored = pixelate(clean, 96, 240, 36, 180, BLOCK)
    restored, found_mosaic, found_bars = CpuHentai().auto(censored)
    assert not (found_bars & grow(found_mosaic, BLOCK)).any()
    assert np.array_equal(restored, CpuHentai().restore_mosaic(censored)[0])


def whole_picture_check(rgb: Pixels) -> NDArray[np.bool_]:
    """The crop checks done on the whole picture at once: a bar lying on the mosaic cut out
    of the cells joined with it, runs of cells dropped, a suspect half on the grid looked
    at with the mosaic restored under it, then every other bar held out of the mosaic, the
    rest restored and the detector run again over all of it."""
    mosaic, grid = imageops.detect_mosaic(rgb)
    assert grid is not None
    bars = imageops.detect_bars(rgb)
    under = imageops.detect_bars(imageops.restore_mosaic(rgb, mosaic, grid))
    near = cpu_backend._grow(mosaic, 2 * grid.block)
    n, labels = cv2.connectedComponents(bars.astype(np.uint8), connectivity=8)
    keep = np.ones(n, bool)
    keep[0] = False
    suspects = []
    for k in range(1, n):
        comp = labels == k
        area = int(comp.sum())
        if (comp & near).sum() * 2 < area:
            continue
        share = cpu_backend._on_grid(comp, grid) if (comp & mosaic).sum() * 2 >= area else 0.0
        piece = (
            cpu_backend._bar_within(rgb, comp, grid) if share >= cpu_backend._MAYBE_RUN else None
        )
        if piece is not None:
            labels[comp & ~piece] = 0
            suspects.append(k)
            continue
        if share >= cpu_backend._RUN:
            keep[k] = False
        elif share >= cpu_backend._MAYBE_RUN and cpu_backend._steps_inside(rgb, comp, grid):
            keep[k] = (comp & under).sum() * 2 >= area
        if keep[k]:
            suspects.append(k)
    held = cpu_backend._grow(keep[labels], cpu_backend.BAR_GROW_PX)
    again = imageops.detect_bars(imageops.restore_mosaic(rgb, mosaic & ~held, grid, ignore=held))
    for k in suspects:
        keep[k] = ((labels == k) & again).sum() * 2 >= (labels == k).sum()
    out: NDArray[np.bool_] = keep[labels]
    return out


@pytest.mark.parametrize(
    "bar_box",
    [None, (150, 176, 20, 200), (150, 176, 130, 360), (246, 272, 60, 200), (147, 173, 57, 157)],
)
def test_bars_confirmed_on_crops_as_on_the_whole_picture(
    bar_box: tuple[int, int, int, int] | None,
) -> None:
    _, censored, _, _ = both_censored()
    if bar_box is not None:
        censored[box(*bar_box)] = (0, 0, 0)
    mosaic, grid = imageops.detect_mosaic(censored)
    assert grid is not None
    bars = imageops.detect_bars(censored)
    restored, rest, found = cpu_backend._settle(censored, bars, mosaic, grid)
    expected = whole_picture_check(censored)
    assert np.array_equal(found, cpu_backend._grow(expected, cpu_backend.BAR_GROW_PX))
    # The restoration the crops were looked at on is the answer.
    assert np.array_equal(rest, mosaic & ~found)
    assert np.array_equal(restored, imageops.restore_mosaic(censored, rest, grid, ignore=found))


def bar_on_scene(
    scene: int, block: int, shape: NDArray[np.bool_]
) -> tuple[Pixels, NDArray[np.bool_]]:
    """Scene ``scene`` under a mosaic of ``block`` px, ``shape`` painted over it in navy."""
    censored = pixelate(
        syn.draw_scene(scene, (384, 384)), 96, 96 + 12 * block, 36, 36 + 12 * block, block
    )
    censored[shape] = (20, 20, 90)
    truth = np.zeros_like(shape)
    truth[96 : 96 + 12 * block, 36 : 36 + 12 * block] = True
    return censored, truth


@pytest.mark.parametrize(
    ("scene", "block", "shape"),
    [
        # The detector joins each of these bars with the dark cells around it into one
        # region whose outline mostly follows the grid: all were taken for runs of cells.
        (5, 12, box(125, 143, 53, 167)),
        (5, 16, box(147, 173, 57, 157)),
        (5, 16, tilted(110, 160, 90, 22, 25)),
        (6, 16, box(125, 143, 53, 167)),
        (7, 12, box(125, 143, 53, 167)),
        (7, 16, tilted(110, 160, 90, 22, 25)),
    ],
)
def test_a_bar_joined_with_cells_around_it_is_cut_out_of_them(
    scene: int, block: int, shape: NDArray[np.bool_]
) -> None:
    censored, truth = bar_on_scene(scene, block, shape)
    restored, found_mosaic, found_bars = CpuHentai().auto(censored)
    assert (found_bars & shape).sum() >= 0.95 * shape.sum()
    # The bar alone is inpainted; the cells it was joined with are restored as mosaic.
    assert (found_bars & ~grow(shape, 4)).sum() <= 0.05 * shape.sum()
    assert not (found_mosaic & shape).any()
    assert np.array_equal(restored[shape], censored[shape])
    rest = truth & ~grow(shape, 2 * block)
    assert (found_mosaic & rest).sum() >= 0.4 * rest.sum()


def test_runs_of_like_cells_hold_no_bar_to_cut_out() -> None:
    """A run of like cells has its outline on the grid and steps at the lines inside it:
    no piece of it is a bar, whatever its size."""
    for scene in (5, 6, 7):
        for block in (8, 12, 16):
            censored, truth = bar_on_scene(scene, block, np.zeros((384, 384), bool))
            mosaic, grid = imageops.detect_mosaic(censored)
            assert grid is not None
            restored, _, found_bars = CpuHentai().auto(censored)
            assert not (found_bars & grow(truth, 2 * block)).any()
            assert np.array_equal(restored, CpuHentai().restore_mosaic(censored)[0])
            # Nor is a region of like cells grown out of the mosaic's whole area.
            assert cpu_backend._bar_within(censored, mosaic, grid) is None
