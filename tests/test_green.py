"""Pre-masked input: the green is read forgivingly, and a picture painted all over is refused."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image as PILImage

from erogaki_common.errors import ErrorName, ProcessingError
from erogaki_common.images import Limits
from tests.imaging import Pixels, pixels_of, png
from workers import pipeline
from workers.cpu_backend import CpuDeepCreamPy, CpuHentai
from workers.imageops import green_mask, painted_mask
from workers.imageops import synthetic as syn

LIMITS = Limits(25 << 20, 40_000_000)
Mask = NDArray[np.bool_]


def brushed(seed: int, soft: float) -> tuple[Pixels, Pixels, Mask, Mask]:
    """A scene with a green stroke painted by a soft brush: (clean, painted, where the
    paint is at least 20 % opaque, where it is at all)."""
    clean = syn.draw_scene(seed, (320, 320))
    alpha = np.zeros(clean.shape[:2], np.float32)
    cv2.line(alpha, (70, 120), (250, 190), 1.0, 28)
    cv2.rectangle(alpha, (90, 220), (160, 260), 1.0, -1)
    if soft:
        alpha = cv2.GaussianBlur(alpha, (0, 0), soft)
    green = np.array([0, 255, 0], np.float32)
    painted = alpha[..., None] * green + (1 - alpha[..., None]) * clean
    return clean, np.round(painted).astype(np.uint8), alpha >= 0.2, alpha > 0.01


def jpeg(rgb: Pixels, quality: int) -> Pixels:
    return syn.jpeg(rgb, quality)


def near(mask: Mask, px: int) -> Mask:
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    out: Mask = cv2.dilate(mask.astype(np.uint8), k).astype(bool)
    return out


@pytest.mark.parametrize("seed", [1, 4, 7])
def test_a_soft_brush_edge_joins_the_mask(seed: int) -> None:
    _, painted, opaque, touched = brushed(seed, soft=2.5)
    mask = painted_mask(painted)
    # Exact green alone misses the blended rim; the forgiving reader takes it.
    assert (green_mask(painted) & opaque).sum() < 0.9 * opaque.sum()
    assert (mask & opaque).sum() >= 0.99 * opaque.sum()
    assert (mask & ~near(touched, 1)).sum() <= 0.005 * mask.sum()


@pytest.mark.parametrize("quality", [75, 85, 95])
def test_a_jpegd_mask_is_read_whole(quality: int) -> None:
    _, painted, opaque, touched = brushed(2, soft=0)
    lossy = jpeg(painted, quality)
    mask = painted_mask(lossy)
    assert (green_mask(lossy) & opaque).sum() < 0.5 * opaque.sum()
    assert (mask & opaque).sum() >= 0.995 * opaque.sum()
    # Ringing reaches a few pixels out; the mask stops there.
    assert (mask & ~near(touched, 2)).sum() <= 0.03 * mask.sum()
    assert (mask & ~near(touched, 8)).sum() <= 2


def test_inpainting_leaves_no_green_halo() -> None:
    clean, painted, _, touched = brushed(3, soft=2.0)
    out = pixels_of(pipeline.inpaint_green(png(jpeg(painted, 85)), CpuDeepCreamPy(), LIMITS, {}))
    c = out.astype(int)
    greenness = c[..., 1] - np.maximum(c[..., 0], c[..., 2])
    clean_g = clean.astype(int)[..., 1] - np.maximum(clean[..., 0], clean[..., 2])
    # Where the scene has no green, none is left around the stroke: no rim of paint was
    # taken for the picture and smeared into the fill.
    ring = near(touched, 6) & (clean_g < 20)
    assert (greenness[ring] >= 50).mean() < 0.002


def test_drawn_greens_are_not_taken_for_paint() -> None:
    scene = syn.draw_scene(6, (256, 256))
    # Foliage, a neon green and their JPEG'd versions: no pure green anywhere.
    scene[20:90, 20:200] = (40, 170, 60)
    scene[120:200, 40:120] = (60, 225, 40)
    cv2.circle(scene, (180, 170), 40, (25, 215, 30), -1)
    for img in (scene, jpeg(scene, 85)):
        assert not painted_mask(img).any()
        with pytest.raises(ProcessingError) as caught:
            pipeline.inpaint_green(png(img), CpuDeepCreamPy(), LIMITS, {})
        assert caught.value.name is ErrorName.NO_MASKED_REGIONS_FOUND


@pytest.mark.parametrize("share", [1.0, 0.995])
def test_a_picture_painted_all_over_is_a_named_error(share: float) -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    img[:] = (0, 255, 0)
    keep = round(200 * 200 * (1 - share))
    img.reshape(-1, 3)[:keep] = (200, 40, 90)
    for data in (png(img), png(jpeg(img, 90))):
        with pytest.raises(ProcessingError) as caught:
            pipeline.inpaint_green(data, CpuDeepCreamPy(), LIMITS, {})
        assert caught.value.name is ErrorName.MASK_COVERS_IMAGE


def test_a_large_but_partial_mask_is_still_filled() -> None:
    clean = syn.draw_scene(9, (200, 200))
    img = clean.copy()
    img[:, :180] = (0, 255, 0)  # 90 % painted: unusual, but there is context left
    out = pixels_of(pipeline.inpaint_green(png(img), CpuDeepCreamPy(), LIMITS, {}))
    assert not np.all(out == (0, 255, 0), axis=-1).any()
    # A drawn green touching the paint may lose a pixel or two to it, no more.
    assert np.array_equal(out[:, 184:], clean[:, 184:])


def test_hentais_hand_off_is_read_exactly() -> None:
    """A vivid green in the drawing survives bar mode: hent-AI's green is exact and
    marked so, and DeepCreamPy reads marked pictures exactly."""
    scene = syn.draw_scene(3, (300, 300))
    censored, bar = syn.add_bars(scene, np.random.default_rng(5), 1, syn.BLACK, 0.0)
    cv2.circle(censored, (60, 240), 28, (40, 250, 40), -1)
    cv2.circle(censored, (60, 240), 28, (0, 0, 0), 2)
    disc = np.zeros(bar.shape, np.uint8)
    cv2.circle(disc, (60, 240), 25, 1, -1)
    assert not (disc.astype(bool) & near(bar, 6)).any()
    handed = pipeline.mask_bars(png(censored), CpuHentai(), LIMITS, {})
    assert pipeline.is_marked_exact(handed)
    assert painted_mask(pixels_of(handed))[disc > 0].all()  # read forgivingly, it would go
    out = pixels_of(pipeline.inpaint_green(handed, CpuDeepCreamPy(), LIMITS, {}))
    assert np.array_equal(out[disc > 0], censored[disc > 0])
    assert not np.all(out == (0, 255, 0), axis=-1).any()
    # The mark is an ordinary text chunk: any PNG reader sees the same picture.
    assert PILImage.open(io.BytesIO(handed)).text == {"erogaki-mask": "exact"}
    # auto marks its answer only when it hands bars on; a restored mosaic is no mask.
    auto_handed, found_bars = pipeline.auto(png(censored), CpuHentai(), LIMITS, {})
    assert found_bars and pipeline.is_marked_exact(auto_handed)
    mosaicked, _ = syn.add_mosaic(scene, np.random.default_rng(5), 12, (3, 5))
    restored, found_bars = pipeline.auto(png(mosaicked), CpuHentai(), LIMITS, {})
    assert not found_bars and not pipeline.is_marked_exact(restored)
    assert np.array_equal(pixels_of(handed), pixels_of(png(pixels_of(handed))))


def test_transparent_green_of_an_rgba_upload_is_not_paint() -> None:
    # Editors keep whatever colour under fully transparent pixels; pure green there
    # is not a person's paint, and filling it would change pixels nobody censored.
    rgb = syn.draw_scene(31, (160, 200))
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    img = rgb.copy()
    img[10:50, 10:60] = (0, 255, 0)  # transparent corner holding pure green
    alpha[10:50, 10:60] = 0
    img[90:130, 120:170] = (0, 255, 0)  # real paint, opaque
    rgba = np.dstack([img, alpha])
    out = pixels_of(pipeline.inpaint_green(png(rgba, "RGBA"), CpuDeepCreamPy(), LIMITS, {}))
    assert out.shape[2] == 4 and np.array_equal(out[..., 3], alpha)
    # The paint is filled, the transparent green is left as it was.
    assert not green_mask(np.ascontiguousarray(out[90:130, 120:170, :3])).any()
    assert np.array_equal(out[10:50, 10:60, :3], img[10:50, 10:60])
