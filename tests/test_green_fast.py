"""The green-mask reader works on the paint's neighbourhood only (crops around candidate
pixels, windows cut to what their reading reaches) and gives, pixel for pixel, what the
whole-picture reader gave (tests/green_reference.py): on drawn pictures of many sizes,
soft and hard brushes, JPEG'd paint, feathers, and hostile masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from erogaki_common.errors import ErrorName, ProcessingError
from erogaki_common.images import Limits
from tests import green_reference as reference
from tests.imaging import png
from workers import pipeline
from workers.cpu_backend import CpuDeepCreamPy
from workers.imageops import drawn
from workers.imageops import green as fast
from workers.imageops import synthetic as syn

Image = NDArray[np.uint8]
LIMITS = Limits(25 << 20, 40_000_000)
GREEN = np.array([0, 255, 0], np.float32)


def same(img: Image) -> None:
    want = reference.painted_mask(img)
    got = fast.painted_mask(img)
    assert got.dtype == np.bool_ and got.shape == want.shape
    diff = np.argwhere(got != want)
    assert not len(diff), f"{len(diff)} pixels differ, first at {diff[:5].tolist()}"


def blend(img: Image, alpha: NDArray[np.float32]) -> Image:
    out = alpha[..., None] * GREEN + (1 - alpha[..., None]) * img.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_brushed_green_on_drawn_art_is_read_as_before(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    # Sides that are not multiples of the 64 px cells, and the cells' own multiples.
    h, w = [(333, 517), (640, 640), (257, 700), (480, 321), (512, 384), (700, 450)][seed]
    art = drawn.draw_art(seed, (h, w), drawn.THEMES[seed % len(drawn.THEMES)]).image
    painted, _ = drawn.brush_green(art, seed)
    same(painted)
    same(syn.jpeg(painted, int(rng.integers(60, 95))))


@pytest.mark.parametrize("soft", [0.0, 1.0, 2.5, 4.0, 7.0])
def test_soft_and_feathered_edges_are_read_as_before(soft: float) -> None:
    """Wide feathers take the reading's further rounds (and its larger window)."""
    scene = syn.draw_scene(int(soft * 10), (400, 560))
    alpha = np.zeros(scene.shape[:2], np.float32)
    cv2.line(alpha, (60, 90), (480, 300), 1.0, 30)
    cv2.rectangle(alpha, (40, 300), (150, 380), 1.0, -1)
    cv2.circle(alpha, (470, 80), 25, 1.0, -1)
    if soft:
        alpha = cv2.GaussianBlur(alpha, (0, 0), soft)
    painted = blend(scene, alpha)
    same(painted)
    same(syn.jpeg(painted, 80))


def test_paint_clusters_far_apart_and_nested_are_read_as_before() -> None:
    """Dabs far apart get windows of their own; a dab inside a ring of paint lies in the
    ring's window as well as its own."""
    scene = syn.draw_scene(11, (900, 900))
    alpha = np.zeros(scene.shape[:2], np.float32)
    cv2.circle(alpha, (450, 450), 330, 1.0, 24)  # a ring
    cv2.circle(alpha, (450, 450), 20, 1.0, -1)  # a dab at its centre
    cv2.rectangle(alpha, (20, 20), (60, 40), 1.0, -1)  # corners, far from both
    cv2.rectangle(alpha, (860, 850), (899, 899), 1.0, -1)
    cv2.line(alpha, (450, 140), (450, 160), 1.0, 3)  # just inside the ring
    painted = blend(scene, cv2.GaussianBlur(alpha, (0, 0), 1.5))
    same(painted)
    same(syn.jpeg(painted, 75))


def test_drawn_greens_beside_the_paint_are_read_as_before() -> None:
    scene = syn.draw_scene(6, (300, 420))
    scene[20:90, 20:200] = (40, 170, 60)
    scene[120:200, 40:120] = (60, 225, 40)
    cv2.circle(scene, (180, 170), 40, (25, 215, 30), -1)
    cv2.circle(scene, (330, 220), 30, (40, 250, 40), -1)
    painted = scene.copy()
    painted[60:140, 180:260] = (0, 255, 0)  # touching the foliage and the neon green
    painted[200:260, 300:360] = (0, 255, 0)  # over the vivid disc
    for img in (scene, painted, syn.jpeg(painted, 85)):
        same(img)


def test_many_tiny_holes_are_read_as_before() -> None:
    rng = np.random.default_rng(3)
    img = syn.draw_scene(7, (600, 700))
    for _ in range(400):
        y, x = int(rng.integers(0, 598)), int(rng.integers(0, 698))
        s = int(rng.integers(1, 4))
        img[y : y + s, x : x + s] = (0, 255, 0)
    same(img)
    same(syn.jpeg(img, 90))


def test_a_mask_touching_every_edge_is_read_as_before() -> None:
    img = syn.draw_scene(8, (300, 380))
    img[:6] = img[-6:] = (0, 255, 0)
    img[:, :4] = img[:, -9:] = (0, 255, 0)
    img[140:160, 100:280] = (0, 255, 0)
    soft = cv2.GaussianBlur(np.all(img == (0, 255, 0), axis=-1).astype(np.float32), (0, 0), 2)
    for picture in (img, blend(img, soft), syn.jpeg(img, 80)):
        same(picture)


@pytest.mark.parametrize("share", [1.0, 0.995, 0.97])
def test_a_mask_covering_nearly_everything_is_read_as_before(share: float) -> None:
    img = syn.draw_scene(9, (220, 260))
    painted = img.copy()
    keep = round(img.shape[0] * img.shape[1] * (1 - share))
    painted[:] = (0, 255, 0)
    painted.reshape(-1, 3)[:keep] = img.reshape(-1, 3)[:keep]
    same(painted)
    same(syn.jpeg(painted, 90))
    if share > 0.98:
        with pytest.raises(ProcessingError) as caught:
            pipeline.inpaint_green(png(painted), CpuDeepCreamPy(), LIMITS, {})
        assert caught.value.name is ErrorName.MASK_COVERS_IMAGE


def test_no_paint_and_tiny_pictures_are_read_as_before() -> None:
    for img in (
        syn.draw_scene(2, (64, 64)),
        syn.draw_scene(2, (8, 8)),
        np.full((9, 13, 3), (0, 255, 0), np.uint8),
        np.full((70, 5, 3), (0, 240, 10), np.uint8),
    ):
        same(img)


@pytest.mark.parametrize("tolerance", [0, 1, 12, 40])
def test_green_mask_and_paint_green_match_the_per_pixel_forms(tolerance: int) -> None:
    rng = np.random.default_rng(tolerance)
    img = rng.integers(0, 256, (123, 211, 3), np.uint8)
    img[::7, ::5] = (0, 255, 0)
    img[3::11, ::3] = (tolerance, 255 - tolerance, tolerance)
    img[5::13, ::4] = (tolerance + 1, 255, 0) if tolerance < 255 else (0, 255, 0)
    assert np.array_equal(fast.green_mask(img, tolerance), reference.green_mask(img, tolerance))
    mask = rng.random(img.shape[:2]) < 0.2
    want = img.copy()
    want[mask] = (0, 255, 0)
    assert np.array_equal(fast.paint_green(img, mask), want)
    assert np.array_equal(fast.paint_green(img, np.zeros_like(mask)), img)
    edge = np.zeros_like(mask)
    edge[0, :] = edge[:, -1] = True
    want = img.copy()
    want[edge] = (0, 255, 0)
    assert np.array_equal(fast.paint_green(img, edge), want)


@pytest.mark.parametrize("side", [1, 33, 65, 97])
def test_paint_green_in_a_one_pixel_corner_square(side: int) -> None:
    """A picture 1 px past a multiple of the 32 px squares has a 1x1 square in its
    corner; OpenCV took a 1x1 picture for a scalar and raised."""
    img = np.random.default_rng(side).integers(0, 256, (side, side + 32, 3), np.uint8)
    for y, x in ((side - 1, side + 31), (side - 1, 0)):
        mask = np.zeros(img.shape[:2], bool)
        mask[y, x] = True
        want = img.copy()
        want[y, x] = (0, 255, 0)
        assert np.array_equal(fast.paint_green(img, mask), want)
    square = np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)
    mask = np.zeros(square.shape[:2], bool)
    mask[-1, -1] = True
    want = square.copy()
    want[-1, -1] = (0, 255, 0)
    assert np.array_equal(fast.paint_green(square, mask), want)


def test_paint_green_into_views_whose_pixels_are_not_packed() -> None:
    """The picture painted in place may be a view OpenCV cannot write into: the RGB of
    an RGBA array, channels reversed, rows flipped. Each is painted, in place."""
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 256, (90, 130, 4), np.uint8)
    mask = np.zeros((90, 130), bool)
    mask[10:40, 20:90] = True
    mask[70, 5] = True
    for view in (
        rgba.copy()[:, :, :3],
        rgba[:, :, :3].copy()[:, :, ::-1],
        rgba[:, :, :3].copy()[::-1],
        rgba[:, :, :3].copy()[:, ::-1],
    ):
        want = view.copy()
        want[mask] = (0, 255, 0)
        assert fast.paint_green_into(view, mask) is view
        assert np.array_equal(view, want)


def test_green_mask_of_an_rgba_picture_reads_its_colour_only() -> None:
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 3] = np.arange(30, dtype=np.uint8)
    rgba[5:9, 3:20, :3] = (0, 255, 0)
    rgba[12, 7, :3] = (3, 252, 2)
    assert np.array_equal(fast.green_mask(rgba), reference.green_mask(rgba))
    assert np.array_equal(fast.green_mask(rgba, 3), reference.green_mask(rgba[:, :, :3], 3))


def test_a_rim_read_slice_by_slice_is_read_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rims are read a slice of pixels at a time; slices far smaller than the rim give
    the same pixels, soft paint, a feather's later rounds and JPEG included."""
    monkeypatch.setattr(fast, "_RIM_SLICE", 997)
    scene = syn.draw_scene(12, (260, 300))
    alpha = np.zeros(scene.shape[:2], np.float32)
    cv2.rectangle(alpha, (30, 40), (200, 90), 1.0, -1)
    cv2.circle(alpha, (220, 190), 30, 1.0, -1)
    alpha[::9, ::7] = 1.0
    for soft in (1.0, 6.0):
        painted = blend(scene, np.clip(cv2.GaussianBlur(alpha, (0, 0), soft) * 1.3, 0, 1))
        same(painted)
        same(syn.jpeg(painted, 85))


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_a_rim_read_outwards_a_few_steps_then_at_once_is_read_as_before(
    monkeypatch: pytest.MonkeyPatch, steps: int
) -> None:
    """Rims are read outwards from the paint, blend by blend, and past a number of steps
    all at once: either way the same pixels (feathers, JPEG fringes, strokes beside)."""
    monkeypatch.setattr(fast, "_MAX_STEPS", steps)
    scene = syn.draw_scene(13, (300, 340))
    alpha = np.zeros(scene.shape[:2], np.float32)
    cv2.line(alpha, (20, 40), (300, 200), 1.0, 24)
    cv2.circle(alpha, (80, 220), 35, 1.0, -1)
    cv2.rectangle(alpha, (220, 30), (320, 80), 1.0, -1)
    for soft in (0.0, 2.0, 6.0):
        shares = cv2.GaussianBlur(alpha, (0, 0), soft) if soft else alpha
        painted = blend(scene, np.clip(shares * 1.3, 0, 1))
        # A dark stroke into the paint, a green leaf beside it.
        cv2.line(painted, (150, 140), (200, 250), (20, 30, 20), 3)
        cv2.circle(painted, (270, 250), 20, (40, 200, 60), -1)
        same(painted)
        same(syn.jpeg(painted, 75))


def test_paint_all_over_a_picture_is_read_in_bounded_memory() -> None:
    """A checkerboard of paint over a whole 1024 px picture: nearly every pixel is in
    the rim. Read all at once its float temporaries peaked at 154 MB (the whole-picture
    reader: 119 MB); a slice at a time, about 65 MB."""
    import tracemalloc

    img = syn.draw_scene(4, (1024, 1024))
    img[::2, ::2] = (0, 255, 0)
    tracemalloc.start()
    try:
        fast.painted_mask(img)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 << 20, f"{peak >> 20} MB"


def test_paint_green_over_specks_in_every_other_square_is_one_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A speck in every other 32 px square: 256 separate groups in a 1024 px picture,
    painted with two OpenCV calls each, cost 2.5x the whole-picture numpy assignment
    (4000x3000: 18 -> 45 ms of CPU). Past 64 groups their box is painted in one pass."""
    calls: list[int] = []
    bitwise_and = cv2.bitwise_and

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return bitwise_and(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(cv2, "bitwise_and", counted)
    img = np.random.default_rng(8).integers(0, 256, (1024, 1000, 3), np.uint8)
    mask = np.zeros(img.shape[:2], bool)
    mask[7::64, 9::64] = True
    want = img.copy()
    want[mask] = (0, 255, 0)
    assert np.array_equal(fast.paint_green(img, mask), want)
    assert len(calls) == 1


def test_transparent_pixels_are_never_paint() -> None:
    # An RGBA upload: a painted bar (soft edges, opaque), beside it a fully transparent
    # patch an editor filled with pure green, and a transparent green dab ringed by an
    # opaque half-green halo (no paint on its own) close enough to share the bar's crop.
    scene = syn.draw_scene(41, (320, 400))
    share = np.zeros(scene.shape[:2], np.float32)
    cv2.rectangle(share, (60, 80), (200, 130), 1.0, -1)
    share = cv2.GaussianBlur(share, (0, 0), 2.0)
    rgb = blend(scene, share)
    alpha = np.full(scene.shape[:2], 255, np.uint8)
    alpha[200:300, 250:380] = 0
    rgb[200:300, 250:380] = syn.GREEN
    alpha[140:150, 210:220] = 0
    rgb[140:150, 210:220] = syn.GREEN
    halo = np.zeros(scene.shape[:2], bool)
    halo[136:154, 206:224] = True
    halo[140:150, 210:220] = False
    rgb[halo] = blend(rgb, np.full(scene.shape[:2], 0.5, np.float32))[halo]
    # The bar's soft top edge hidden: its blends are unseen, so no part of the mask.
    alpha[72:80, 60:200] = 0

    mask = fast.painted_mask(rgb, alpha)
    assert not mask[alpha == 0].any()
    assert not mask[halo].any()
    # The bar is read as it is without the transparent patches' green.
    alone = blend(scene, share)
    want = fast.painted_mask(alone)
    assert want[100:110, 100:160].all()
    assert want[72:80, 60:200].any()
    np.testing.assert_array_equal(mask[80:, :200], want[80:, :200])
    # Without the alpha plane the transparent green is paint (as before), and a fully
    # opaque plane changes nothing.
    assert fast.painted_mask(rgb)[200:300, 250:380].all()
    opaque = np.full(scene.shape[:2], 255, np.uint8)
    np.testing.assert_array_equal(fast.painted_mask(rgb, opaque), fast.painted_mask(rgb))
    # Green only where nothing shows: no paint at all.
    hidden = scene.copy()
    hidden[alpha == 0] = syn.GREEN
    assert not fast.painted_mask(hidden, alpha).any()


def test_hard_edged_paint_is_read_in_its_box_and_near_misses_in_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Paint with no blend next to it (exact green with hard edges) is read in its box
    grown by 3 px, not in the window: the same pixels, greenish ones 2 px out included.
    Edges with a blend next to them are read in the window, as before: a grey beside
    white (no green in it, yet a fifth of paint over white), a tenth of green over pink
    (only the tail round reads it), a dab beside a soft edge, JPEG's fringe."""
    taken: list[bool] = []
    read_hard = fast._read_hard

    def spy(*args: object) -> object:
        got = read_hard(*args)  # type: ignore[arg-type]
        taken.append(got is not None)
        return got

    monkeypatch.setattr(fast, "_read_hard", spy)

    def read(img: Image, alpha: NDArray[np.uint8] | None = None) -> list[bool]:
        if alpha is None:
            want = reference.painted_mask(img)
        else:
            # The reference reads no alpha: the windows' reading, which the tests of
            # transparent pixels pin, does.
            monkeypatch.setattr(fast, "_read_hard", lambda *args: None)
            want = fast.painted_mask(img, alpha)
            monkeypatch.setattr(fast, "_read_hard", spy)
        taken.clear()
        got = fast.painted_mask(img, alpha)
        diff = np.argwhere(got != want)
        assert not len(diff), f"{len(diff)} pixels differ, first at {diff[:5].tolist()}"
        return list(taken)

    # Three hard bars on a drawn scene, one at the picture's edge, and a greenish
    # stroke 2 px below the widest: each window read in its box.
    scene = syn.draw_scene(7, (700, 640))
    bars = scene.copy()
    for y0, y1, x0, x1 in ((40, 70, 30, 200), (330, 370, 120, 470), (600, 700, 600, 640)):
        bars[y0:y1, x0:x1] = (0, 255, 0)
    bars[371, 200:230] = (40, 120, 40)
    assert read(bars) == [True, True, True]
    assert reference.painted_mask(bars)[371, 200:230].all()
    # With alpha: the top bar cut by a transparent band (its green, unseen, lies next to
    # the paint, so the window reads it), the bottom one barely showing.
    alpha = np.full(bars.shape[:2], 255, np.uint8)
    alpha[:55] = 0
    alpha[650:] = 1
    assert read(bars, alpha) == [False, True, True]

    # Near misses, each next to a hard bar: not read in the box.
    white = np.full((120, 160, 3), 255, np.uint8)
    white[40:80, 50:110] = (0, 255, 0)
    white[40:80, 49] = (200, 200, 200)
    assert read(white) == [False]
    assert reference.painted_mask(white)[40:80, 49].all()
    pink = np.full((120, 160, 3), (250, 150, 200), np.uint8)
    pink[40:80, 50:110] = (0, 255, 0)
    pink[40:80, 110] = blend(pink, np.full(pink.shape[:2], 0.1, np.float32))[40:80, 110]
    assert read(pink) == [False]
    assert reference.painted_mask(pink)[40:80, 110].all()
    soft = bars.copy()
    share = np.zeros(soft.shape[:2], np.float32)
    share[50:60, 200:215] = 1.0
    soft = blend(soft, np.asarray(cv2.GaussianBlur(share, (0, 0), 1.5), np.float32))
    assert read(soft) == [False, True, True]
    assert read(syn.jpeg(bars, 85)) == [False, False, False]
