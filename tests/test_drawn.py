"""The drawn-art generator behind bench/quality.py: deterministic, and its truth is exact."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from workers.imageops import drawn

SIZE = (384, 448)


@pytest.fixture(scope="module")
def pictures() -> dict[str, drawn.Drawing]:
    return {t: drawn.draw_art(10 + k, SIZE, t) for k, t in enumerate(drawn.THEMES)}


def components(mask: np.ndarray) -> int:
    n, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return int(n) - 1


def test_same_seed_same_picture_and_truth() -> None:
    a = drawn.draw_art(7, SIZE, "manga")
    b = drawn.draw_art(7, SIZE, "manga")
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    ca = drawn.censor_both(a, 3, "x", "black", 12)
    cb = drawn.censor_both(b, 3, "x", "black", 12)
    assert np.array_equal(ca.image, cb.image)
    assert np.array_equal(ca.bars, cb.bars) and np.array_equal(ca.mosaic, cb.mosaic)
    assert not np.array_equal(a.image, drawn.draw_art(8, SIZE, "manga").image)


def test_pictures_hold_the_traps(pictures: dict[str, drawn.Drawing]) -> None:
    for theme, pic in pictures.items():
        assert pic.image.shape == (*SIZE, 3) and pic.image.dtype == np.uint8
        area = pic.hair.mean()
        # A large near-black hair mass: the flat dark area bar detectors must leave alone.
        assert area > 0.04, theme
        assert np.median(pic.image[pic.hair].max(axis=1)) < 70, theme
        assert pic.ink.mean() > 0.01 and pic.hatch.any() and pic.subject.mean() > 0.1, theme
        # Anti-aliased ink: the outlines have in-between values, not only ink and fill.
        grey = pic.image.astype(np.int32).sum(axis=2) // 3
        ring = cv2.dilate(pic.ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert len(np.unique(grey[ring])) > 50, theme
    manga = pictures["manga"]
    assert manga.tone.any() and manga.balloons.any()
    # Balloons are white inside.
    assert np.median(manga.image[manga.balloons]) == 255


@pytest.mark.parametrize("layout", drawn.LAYOUTS)
def test_bars_truth_is_exact(pictures: dict[str, drawn.Drawing], layout: str) -> None:
    pic = pictures["plain"]
    cen = drawn.censor_bars(pic, 5, layout, "red")
    colour = np.array(drawn.BAR_COLOURS["red"])
    assert cen.colour == drawn.BAR_COLOURS["red"] and cen.bars.any()
    assert np.array_equal(cen.image[~cen.bar_touch], pic.image[~cen.bar_touch])
    assert not (cen.bars & ~cen.bar_touch).any()
    # A pixel in ``bars`` is at least half bar: nearer the bar colour than the clean pixel by
    # at least half their distance.
    d_img = np.abs(cen.image[cen.bars].astype(int) - colour)
    d_clean = np.abs(pic.image[cen.bars].astype(int) - colour)
    assert (d_img <= d_clean // 2 + 1).all()
    solid = cv2.erode(cen.bars.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert (cen.image[solid] == colour).all()
    assert cen.label == f"bars/{layout}" and not cen.mosaic.any()


@pytest.mark.parametrize("seed", range(4))
def test_compound_layouts_are_what_they_say(pictures: dict[str, drawn.Drawing], seed: int) -> None:
    pic = pictures["pastel"]
    h, w = SIZE
    for layout in ("x", "t", "l", "fused"):
        cen = drawn.censor_bars(pic, seed, layout, "black")
        assert len(cen.boxes) == 2
        # Two bars that touch or cross: one shape, bigger than either bar alone.
        assert components(cen.bars) == 1, layout
        assert cen.bars.sum() > 1.1 * max(b.length * b.thickness for b in cen.boxes), layout
    x = drawn.censor_bars(pic, seed, "x", "black").boxes
    assert (x[0].cx, x[0].cy) == (x[1].cx, x[1].cy)
    assert 45 <= abs(x[0].angle - x[1].angle) % 180 <= 135
    stacked = drawn.censor_bars(pic, seed, "stacked", "black")
    assert components(stacked.bars) == len(stacked.boxes) >= 2
    gaps = [
        abs(
            (b.cx - a.cx) * -np.sin(np.radians(a.angle))
            + (b.cy - a.cy) * np.cos(np.radians(a.angle))
        )
        - (a.thickness + b.thickness) / 2
        for a, b in zip(stacked.boxes, stacked.boxes[1:], strict=False)
    ]
    assert all(1.5 <= g <= 6.5 for g in gaps), gaps
    edge = drawn.censor_bars(pic, seed, "edge", "black")
    border = np.zeros((h, w), bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    assert (edge.bars & border).any()
    # Cut by the edge: the bar's box reaches past the picture.
    (b,) = edge.boxes
    assert edge.bars.sum() < b.length * b.thickness - 10
    single = drawn.censor_bars(pic, seed, "single", "black")
    # Axis-aligned bars are hard-edged, as paint tools draw them: no fringe.
    assert np.array_equal(single.bars, single.bar_touch)


def test_outline_and_hatch_layouts_sit_where_they_say(pictures: dict[str, drawn.Drawing]) -> None:
    pic = pictures["manga"]
    for seed in range(3):
        cen = drawn.censor_bars(pic, seed, "outline", "grey")
        rim = cv2.dilate(cen.bar_touch.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert (pic.ink & rim & ~cen.bar_touch).sum() > 20
        cen = drawn.censor_bars(pic, seed, "hatch", "grey")
        assert (pic.hatch & cen.bars).any()


@pytest.mark.parametrize("block", [6, 11, 24])
def test_mosaic_truth_is_whole_uniform_cells(
    pictures: dict[str, drawn.Drawing], block: int
) -> None:
    pic = pictures["night"]
    cen = drawn.censor_mosaic(pic, 4, block, (3, block - 1))
    assert cen.block == block and cen.phase == (3, block - 1)
    assert np.array_equal(cen.image[~cen.mosaic], pic.image[~cen.mosaic])
    h, w = SIZE
    ox, oy = 3 - block, -1
    cells = 0
    for y in range(oy, h, block):
        for x in range(ox, w, block):
            ys, xs = slice(max(y, 0), y + block), slice(max(x, 0), x + block)
            m = cen.mosaic[ys, xs]
            assert m.all() or not m.any()
            if m.all():
                cells += 1
                patch = cen.image[ys, xs].reshape(-1, 3)
                assert (patch == patch[0]).all()
                mean = pic.image[ys, xs].reshape(-1, 3).mean(axis=0)
                assert np.abs(patch[0] - mean).max() <= 0.5
    assert cells >= 4


def test_mosaic_on_any_picture_and_both_kinds_apart() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    cen = drawn.censor_mosaic(rgb, 1, 8)
    assert cen.mosaic.any() and np.array_equal(cen.image[~cen.mosaic], rgb[~cen.mosaic])
    pic = drawn.draw_art(3, (512, 512), "pink")
    both = drawn.censor_both(pic, 2, "t", "light_pink", 16)
    assert both.bars.any() and both.mosaic.any()
    near = cv2.dilate(both.bar_touch.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    assert not (near & both.mosaic).any()
    untouched = ~(both.bar_touch | both.mosaic)
    assert np.array_equal(both.image[untouched], pic.image[untouched])
    assert both.colour == drawn.BAR_COLOURS["light_pink"]


def test_close_colours_stay_visible() -> None:
    # Navy on a night sky, light pink on pink, white on pastel: close, never identical.
    for theme, name in (("night", "navy"), ("pink", "light_pink"), ("pastel", "white")):
        colour = np.array(drawn.BAR_COLOURS[name])
        for seed in range(3):
            pic = drawn.draw_art(seed, (320, 320), theme)
            cen = drawn.censor_bars(pic, seed, "single", name)
            ring = cv2.dilate(cen.bars.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
            around = pic.image[ring & ~cen.bars].astype(int)
            dist = np.abs(around - colour).max(axis=1)
            assert np.mean(dist < 12) < 0.2, (theme, seed)
            assert np.median(dist) < 150, (theme, seed)


def test_soft_green_brush() -> None:
    pic = drawn.draw_art(5, (320, 320), "plain")
    for painted, alpha in (
        drawn.brush_green(pic.image, 1),
        drawn.brush_green(pic.image, 2, drawn.censor_bars(pic, 2, "x", "black").bars),
    ):
        solid = alpha >= 1.0
        assert solid.any() and (painted[solid] == drawn.GREEN).all()
        assert np.array_equal(painted[alpha == 0], pic.image[alpha == 0])
        # A soft edge: a band of partly green pixels around the solid core.
        assert ((alpha > 0.05) & (alpha < 0.95)).sum() > 0.1 * solid.sum() ** 0.5 * 4


def test_bytes_round_trips() -> None:
    img = drawn.draw_art(1, (256, 320)).image
    assert np.array_equal(drawn.decode(drawn.png_bytes(img)), img)
    for q in (80, 95):
        data = drawn.jpeg_bytes(img, q)
        assert data[:3] == b"\xff\xd8\xff"
        back = drawn.jpeg(img, q)
        assert back.shape == img.shape and not np.array_equal(back, img)
        assert np.abs(back.astype(int) - img).mean() < 4


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="theme"):
        drawn.draw_art(1, (64, 64), "sepia")
    with pytest.raises(ValueError, match="layout"):
        drawn.censor_bars(drawn.draw_art(1, (128, 128)), 1, "zigzag", "black")


@pytest.mark.parametrize("kind", drawn.FREE_KINDS)
def test_free_bars_are_what_they_say(kind: str) -> None:
    size = drawn.FREE_SIZES[0]
    pic = drawn.draw_art(3, size)
    cen = drawn.censor_free(pic, 11, kind)
    assert cen.image.shape[:2] == size and cen.label == f"free/{kind}"
    count = {"multi": (2, 4), "rim": (1, 1), "aa": (1, 1), "thin": (3, 5)}[kind]
    assert count[0] <= len(cen.boxes) <= count[1]
    short = min(size)
    for box in cen.boxes:
        lo, hi = (0.012, 0.02) if kind == "thin" else (0.025, 0.07)
        assert lo * short <= box.thickness <= hi * short
    # Nothing but the bars changes; inside them (their anti-aliased rim aside) every
    # pixel is the bar's one colour, or the rim's opposite lightness.
    assert np.array_equal(cen.image[~cen.bar_touch], pic.image[~cen.bar_touch])
    solid = cv2.erode(cen.bars.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    wanted = [cen.colour] + ([(255, 255, 255), (0, 0, 0)] if kind == "rim" else [])
    hits = np.zeros(solid.sum(), bool)
    for colour in wanted:
        hits |= (cen.image[solid] == np.array(colour)).all(axis=1)
    # (With a rim, the bar's own anti-aliased edge lies inside the truth.)
    assert hits.mean() > (0.85 if kind == "rim" else 0.97)
    assert not cen.mosaic.any() and (cen.bars <= cen.bar_touch).all()
    with pytest.raises(ValueError):
        drawn.censor_free(pic, 11, "sideways")
