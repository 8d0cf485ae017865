"""Bar detection on drawn art censored the way real pictures are: ink under the bars,
compound bars (X, T, L, stacked, fused end to end, cut by the edge), light and
low-contrast bars, JPEG; and no detections on line-art traps (hair, balloons, tone)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.imageops import bars, detect_bars, drawn
from workers.imageops import synthetic as syn

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]
Bar = tuple[tuple[float, float], float, float, float]  # centre, length, thickness, angle

SIZE = 384
INK = (20, 18, 24)
SHIFT = 4


def _pts(xy: NDArray[np.float64]) -> NDArray[np.int32]:
    return np.round(xy * (1 << SHIFT)).astype(np.int32)


def _paint(canvas: NDArray[np.float32], alpha: Image, colour: tuple[int, int, int]) -> None:
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    canvas += (np.array(colour, np.float32) - canvas) * a


def _strokes(canvas: NDArray[np.float32], rng: np.random.Generator, n: int) -> None:
    """Ink curves, like hair strands and outlines, anti-aliased."""
    h, w = canvas.shape[:2]
    layer = np.zeros((h, w), np.uint8)
    for _ in range(n):
        p = rng.uniform((0, 0), (w, h), size=(3, 2))
        t = np.linspace(0, 1, 30)[:, None]
        curve = (1 - t) ** 2 * p[0] + 2 * (1 - t) * t * p[1] + t * t * p[2]
        width = int(rng.integers(1, 4))
        cv2.polylines(layer, [_pts(curve)], False, 255, width, cv2.LINE_AA, SHIFT)
    _paint(canvas, layer, INK)


def _hatching(canvas: NDArray[np.float32], box: tuple[int, int, int, int], step: int) -> None:
    x0, y0, x1, y1 = box
    layer = np.zeros(canvas.shape[:2], np.uint8)
    for k in range(x0 - (y1 - y0), x1, step):
        cv2.line(layer, (k, y1), (k + (y1 - y0), y0), 255, 1, cv2.LINE_AA)
    clip = np.zeros_like(layer)
    clip[y0:y1, x0:x1] = 255
    _paint(canvas, np.minimum(layer, clip), INK)


def _screentone(canvas: NDArray[np.float32], box: tuple[int, int, int, int], step: int) -> None:
    x0, y0, x1, y1 = box
    layer = np.zeros(canvas.shape[:2], np.uint8)
    for row, y in enumerate(range(y0, y1, step)):
        for x in range(x0 + (step // 2) * (row % 2), x1, step):
            cv2.circle(layer, (x, y), max(step // 3, 1), 255, -1, cv2.LINE_AA)
    _paint(canvas, layer, INK)


def _cel_blob(
    canvas: NDArray[np.float32],
    centre: tuple[float, float],
    radius: float,
    base: tuple[int, int, int],
) -> None:
    """A flat-filled, cel-shadowed, ink-outlined rounded shape."""
    h, w = canvas.shape[:2]
    ang = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = 1.0 + 0.15 * np.sin(3 * ang)
    poly = np.stack(
        [centre[0] + radius * wobble * np.cos(ang), centre[1] + radius * wobble * np.sin(ang)], 1
    )
    fill = np.zeros((h, w), np.uint8)
    cv2.fillPoly(fill, [_pts(poly)], 255, cv2.LINE_AA, SHIFT)
    _paint(canvas, fill, base)
    yy, xx = np.mgrid[0:h, 0:w]
    shade = (
        fill.astype(np.float32) * ((xx - centre[0]) + 0.5 * (yy - centre[1]) > 0.3 * radius)
    ).astype(np.uint8)
    _paint(canvas, shade, tuple(int(c * 0.75) for c in base))  # type: ignore[arg-type]
    line = np.zeros((h, w), np.uint8)
    cv2.polylines(line, [_pts(poly)], True, 255, 2, cv2.LINE_AA, SHIFT)
    _paint(canvas, line, INK)


def line_art(seed: int, background: tuple[int, int, int] | None = None) -> NDArray[np.float32]:
    """A drawn picture: gradient ground, cel-shaded shapes, hatching, tone and dense ink."""
    rng = np.random.default_rng(seed)
    top = np.array(background or (236, 214, 200), np.float32)
    bottom = top * 0.8 if background is None else top
    t = np.linspace(0, 1, SIZE, dtype=np.float32)[:, None, None]
    canvas = np.repeat(top + (bottom - top) * t, SIZE, axis=1).copy()
    _cel_blob(canvas, (90, 280), 60, (120, 170, 220))
    _cel_blob(canvas, (300, 90), 55, (230, 160, 120))
    _hatching(canvas, (230, 230, 350, 350), 5)
    _screentone(canvas, (20, 20, 130, 120), 5)
    _strokes(canvas, rng, 18)
    return canvas


def censor(
    canvas: NDArray[np.float32], bars: list[Bar], colour: tuple[int, int, int]
) -> tuple[Image, Mask]:
    img = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    truth = np.zeros(img.shape[:2], np.uint8)
    for (cx, cy), length, thick, angle in bars:
        box = cv2.boxPoints(((cx, cy), (length, thick), angle))
        cv2.fillPoly(truth, [np.round(box).astype(np.int32)], 1)
    mask = truth.astype(bool)
    img[mask] = colour
    return img, mask


def along(c: tuple[float, float], angle: float, dist: float) -> tuple[float, float]:
    a = np.radians(angle)
    return c[0] + dist * float(np.cos(a)), c[1] + dist * float(np.sin(a))


C = (192.0, 200.0)
LAYOUTS: dict[str, list[Bar]] = {
    "single": [(C, 170, 30, 20)],
    "X": [(C, 190, 28, 35), (C, 180, 28, 125)],
    "T": [(C, 200, 30, 0), (along(C, 90, 79), 130, 30, 90)],
    "L": [(C, 190, 30, 15), (along(along(C, 15, 80), 105, 70), 170, 30, 105)],
    "fused": [(C, 160, 28, 10), (along(along(C, 10, 80), 40, 55), 130, 28, 40)],
    "stacked": [(along(C, 90, -30), 170, 24, 0), (C, 180, 24, 0), (along(C, 90, 30), 160, 24, 0)],
    "edge": [((SIZE - 40.0, 180.0), 200, 30, 10)],
    # Arms barely twice as long as thick.
    "short L": [(C, 80, 34, 0), (along(along(C, 0, 23), 90, 40), 80, 34, 90)],
    # Slid off the bottom edge along its length.
    "along edge": [((200.0, SIZE - 8.0), 180, 30, 0)],
}


def recall_and_outside(found: Mask, truth: Mask) -> tuple[float, float]:
    recall = float((found & truth).sum()) / float(truth.sum())
    # A pixel or two of JPEG fringe around the bar is expected and harmless to inpaint.
    near = cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    return recall, float((found & ~near).mean())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("quality", [None, 80])
def test_compound_black_bars_over_line_art(layout: str, quality: int | None) -> None:
    img, truth = censor(line_art(1), LAYOUTS[layout], (0, 0, 0))
    if quality:
        img = syn.jpeg(img, quality)
    recall, outside = recall_and_outside(detect_bars(img), truth)
    assert recall >= 0.9, (layout, quality, recall)
    assert outside <= 0.002, (layout, quality, outside)


@pytest.mark.parametrize(
    ("name", "background", "colour"),
    [
        ("white on light skin", (250, 226, 205), (255, 255, 255)),
        ("light pink on pink", (240, 160, 185), (255, 205, 220)),
        ("pink on pale", (245, 240, 235), (255, 105, 180)),
        ("grey on beige", (215, 200, 170), (128, 128, 128)),
    ],
)
@pytest.mark.parametrize("quality", [None, 85])
def test_light_and_close_coloured_bars(
    name: str, background: tuple[int, int, int], colour: tuple[int, int, int], quality: int | None
) -> None:
    img, truth = censor(line_art(2, background), LAYOUTS["X"], colour)
    if quality:
        img = syn.jpeg(img, quality)
    recall, outside = recall_and_outside(detect_bars(img), truth)
    assert recall >= 0.9, (name, quality, recall)
    assert outside <= 0.002, (name, quality, outside)


def _hair(canvas: NDArray[np.float32]) -> None:
    """A large near-black hair mass with a few lighter strands."""
    h, w = canvas.shape[:2]
    ang = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    r = 130 * (1.0 + 0.12 * np.sin(5 * ang) + 0.05 * np.cos(9 * ang))
    poly = np.stack([190 + r * np.cos(ang), 150 + 0.8 * r * np.sin(ang)], 1)
    mass = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mass, [_pts(poly)], 255, cv2.LINE_AA, SHIFT)
    _paint(canvas, mass, (22, 20, 30))
    strands = np.zeros((h, w), np.uint8)
    for k in range(4):
        cv2.ellipse(
            strands, (190, 150), (60 + 15 * k, 40 + 10 * k), 20 * k, 200, 320, 255, 2, cv2.LINE_AA
        )
    _paint(canvas, np.minimum(strands, mass), (80, 75, 95))


def _balloon(canvas: NDArray[np.float32], centre: tuple[int, int], axes: tuple[int, int]) -> None:
    """A speech balloon: white ellipse, ink outline, a line of lettering."""
    fill = np.zeros(canvas.shape[:2], np.uint8)
    cv2.ellipse(fill, centre, axes, 0, 0, 360, 255, -1, cv2.LINE_AA)
    _paint(canvas, fill, (255, 255, 255))
    ink = np.zeros_like(fill)
    cv2.ellipse(ink, centre, axes, 0, 0, 360, 255, 2, cv2.LINE_AA)
    for x in range(centre[0] - axes[0] // 2, centre[0] + axes[0] // 2, 9):
        cv2.rectangle(ink, (x, centre[1] - 4), (x + 6, centre[1] + 4), 255, 1, cv2.LINE_AA)
    _paint(canvas, ink, INK)


def _flat_clothing(canvas: NDArray[np.float32]) -> None:
    """A flat-coloured garment with straight-ish hems, outline and fold lines."""
    poly = np.array([[60, 250], [330, 235], [350, 380], [40, 384]], np.float64)
    fill = np.zeros(canvas.shape[:2], np.uint8)
    cv2.fillPoly(fill, [_pts(poly)], 255, cv2.LINE_AA, SHIFT)
    _paint(canvas, fill, (70, 90, 160))
    ink = np.zeros_like(fill)
    cv2.polylines(ink, [_pts(poly)], True, 255, 2, cv2.LINE_AA, SHIFT)
    for x in (120, 190, 260):
        cv2.line(ink, (x, 250), (x + 15, 370), 255, 1, cv2.LINE_AA)
    _paint(canvas, ink, INK)


TRAPS = {
    "hair mass": lambda c: _hair(c),
    "speech balloons": lambda c: (
        _balloon(c, (120, 90), (80, 45)),
        _balloon(c, (280, 300), (70, 40)),
    ),
    "screentone": lambda c: _screentone(c, (40, 150, 360, 370), 5),
    "hatching": lambda c: _hatching(c, (30, 160, 370, 370), 4),
    "flat clothing": lambda c: _flat_clothing(c),
}


@pytest.mark.parametrize("trap", sorted(TRAPS))
@pytest.mark.parametrize("quality", [None, 85])
def test_uncensored_traps_stay_untouched(trap: str, quality: int | None) -> None:
    canvas = line_art(3)
    TRAPS[trap](canvas)
    img = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    if quality:
        img = syn.jpeg(img, quality)
    assert detect_bars(img, grow=2).mean() <= 0.005, (trap, quality)


# Bench cases (bench/quality.py numbering) an older detector missed or got wrong.
BENCH_ART = {
    "fused of two thicknesses": (6, (512, 768), "manga", "fused", "black"),
    "short-armed L": (34, (512, 768), "plain", "l", "blue"),
    "white bar along the edge": (37, (768, 512), "pastel", "edge", "white"),
    "thin rotated grey stack": (35, (704, 576), "pastel", "stacked", "grey"),
}
# The stack's outer bars, each too small to judge alone, join it; its ragged ends still
# cost a quarter of it.
MIN_RECALL = {"thin rotated grey stack": 0.7}


@pytest.mark.parametrize("case", sorted(BENCH_ART))
def test_drawn_art_bars_found(case: str) -> None:
    i, size, theme, layout, colour = BENCH_ART[case]
    cen = drawn.censor_bars(drawn.draw_art(1000 + i, size, theme), 2000 + i, layout, colour)
    found = detect_bars(cen.image, grow=2)
    recall, outside = recall_and_outside(found, cen.bars)
    assert recall >= MIN_RECALL.get(case, 0.9), (case, recall)
    assert outside <= 0.002, (case, outside)


@pytest.mark.parametrize(
    ("seed", "size"), [(1007, (704, 576)), (1018, (512, 768)), (1116, (640, 640))]
)
def test_cel_shadow_crescents_and_limbs_are_not_bars(seed: int, size: tuple[int, int]) -> None:
    # Long flat crescents enclosed by outlines are covered by straight strips at directions
    # a few degrees apart; they once passed as compound bars. 1116: a limb's shadow side,
    # gently bent, covered twice by long strips 5 degrees apart.
    art = drawn.draw_art(seed, size, "plain")
    assert detect_bars(art.image, grow=2).mean() <= 0.005


def _bench_case(base: int, i: int) -> drawn.Censored:
    """Case ``i`` of ``bench/quality.py --seed-base base`` (its bar section, fixed colours)."""
    size = drawn.BENCH_SIZES[i % len(drawn.BENCH_SIZES)]
    theme, colour = drawn.BENCH_SCHEMES[drawn.bench_scheme(i)]
    art = drawn.draw_art(base + i, size, theme)
    return drawn.censor_bars(art, base + 1000 + i, drawn.LAYOUTS[i % len(drawn.LAYOUTS)], colour)


# Held-out bench cases (seed bases the detector was not tuned on) that the strip detector
# missed: compound shapes its strips did not explain, recognised now by their outline's
# straight sides in at most two perpendicular pairs.
HELD_OUT_BARS = {
    "L of a long and a short arm": (3000, 14),
    "fused end to end with a slight kink and two thicknesses": (3000, 16),
    "L over screentone, its arms of two lengths": (1100, 4),
    # Stacks: gaps of a few px that the median filter bridges, so the stack comes as one
    # fill; bars of staggered lengths, whose joined outline is no rectangle.
    "stack of black bars bridged by the median filter": (3000, 15),
    "stack of grey bars with staggered ends": (11000, 35),
    # Bars close in colour to a fill they cross, whose colour cut once grew into it.
    "grey X over a grey fill": (3000, 22),
    "navy X on a night sky": (11000, 2),
    # Fused end to end, each bar of its own thickness: the joined outline steps, so no one
    # pair of lines runs its length (it passed for a wedge); too small, at 0.5 % of the
    # picture, for a compound bar judged on its strips alone.
    "fused in line, stepping in thickness": (17000, 26),
    "small fused pair of two thicknesses": (9000, 26),
    "fused pair stepping in thickness, short parts": (5000, 26),
    # Fused at a bend of 20 degrees, each arm under three thicknesses long.
    "short arms fused at a bend": (13000, 16),
    "short arms of two thicknesses fused at a bend": (13000, 36),
}
# Held-out cases of bases 25000 and 29000 (and later ones), one per class of miss, each
# pinned by the test below against the one change that finds it.
HELD_OUT_CLASSES = {
    # A grey bar whose sides run through cross-hatching: the median melts the black-on-white
    # hatching into grey along its rim, and the rim's ink and paper read as texture.
    "grey bar through cross-hatching": ((25000, 8), "_melted_rim"),
    # Two thick bars fused at a bend of 10 degrees, arms 2 thicknesses long: the strips of
    # both arms cover the whole pair, as those of a gently bent band do.
    "short thick arms fused at a slight bend": ((25000, 16), "_kinked"),
    # Slid off the bottom edge along its length, 8 of its 16 px left: the rectangle's pixel of
    # slack lies outside the picture.
    "sliver of a white bar along the edge": ((25000, 37), "_filled_rect"),
    # An L whose arm crosses the bottom edge at 9 degrees, its side cut for 5 thicknesses.
    "L leaving the picture at a slant": ((25000, 34), "_slanted_cut"),
    # Small (0.5 % of the picture) in-line pair stepping 2-3 px a side: traced, the step is
    # a slanted piece and the rounded corners the rest, 20 % of the outline.
    "small in-line pair with a small step": ((29000, 6), "_excused"),
    # Two grey bars 3 px apart that the median joins into one core: the colour cut parts
    # them again and only the larger was kept.
    "stack of two parted by the colour cut": ((29000, 35), "_uncovered"),
    # Fused at 9 degrees, 40 and 33 px thick: one side of each bar runs on with the other's,
    # so each run's thickness drifts at one end (JPEG 90).
    "bent pair of two thicknesses, JPEG": ((29000, 16, 90), "_even_end"),
    # The default base's grey X (JPEG 90): seen 6 degrees off, one arm's run drifts where the
    # other crosses, and its even end, 3 degrees off the arm's own strip, read as a band
    # covered twice (a bend) until such an end counted as a fused bar's, as a step does.
    "X whose arm runs on into the crossing, JPEG": ((1000, 22, 90), "stepped"),
    # Base 41000 (held out until tuned on here) and the default base: stacks of bars near
    # the 2 % thickness floor. Two 10 px blue bars, each under the floor, joined into a
    # block of 0.45 % of the picture, small for a compound bar: its staggered ends and gap
    # notches are no strips nor rectangles' sides, but its bars are parallel long boxes.
    "small stack of bars under the thickness floor": ((41000, 25), "parallel"),
    # Four 16 px grey bars (JPEG 95): one core, a speck widening its rectangle, fills 0.75
    # less a pixel, so the stack was not parallel, and its staggered outline (no longer
    # excused on a region this large since d16a4de) no rectangles': one bar missed.
    "stack of four, one core just under the long-box fill, JPEG": ((1000, 35, 95), "_MIN_BOX_FILL"),
}


# Fills fenced off by strokes beside the bar (held-out base 25000, censored pictures) that
# passed as a single straight strip: its strip explains 88-93 % of them, as it explains
# 95 % and more of a bar, its ink stubs and JPEG notches aside.
FENCED_FILLS = {
    # A skin fill between two long strokes, wider at one end.
    "skin fill beside an edge bar": (25000, 27, None),
    # A band between wavy outlines, 1.5 % of the picture.
    "band beside a rotated bar": (25000, 31, None),
    "band beside a rotated bar, JPEG": (25000, 31, 90),
    "shadow beside a single bar, JPEG": (25000, 30, 80),
    # A fill one of whose sides is even for a stretch and then drifts (its even end a strip
    # since bent fused pairs are taken, see HELD_OUT_CLASSES).
    "fill with one even stretch beside an outline bar": (25000, 28, None),
}


@pytest.mark.parametrize("case", sorted(FENCED_FILLS))
def test_fills_fenced_beside_a_bar_are_left_alone(case: str) -> None:
    base, i, quality = FENCED_FILLS[case]
    cen = _bench_case(base, i)
    img = drawn.jpeg(cen.image, quality) if quality else cen.image
    recall, outside = recall_and_outside(detect_bars(img, grow=2), cen.bars)
    assert recall >= 0.9, (case, recall)
    assert outside <= 0.002, (case, outside)


def _held_out_class(case: str) -> tuple[drawn.Censored, Image]:
    (base, i, *quality), _ = HELD_OUT_CLASSES[case]
    cen = _bench_case(base, i)
    return cen, drawn.jpeg(cen.image, quality[0]) if quality else cen.image


@pytest.mark.parametrize("case", sorted(HELD_OUT_CLASSES))
def test_held_out_classes_of_misses_found(case: str) -> None:
    cen, img = _held_out_class(case)
    recall, outside = recall_and_outside(detect_bars(img, grow=2), cen.bars)
    assert recall >= 0.9, (case, recall)
    assert outside <= 0.002, (case, outside)


@pytest.mark.parametrize("case", sorted(HELD_OUT_BARS))
def test_held_out_compound_bars_found(case: str) -> None:
    cen = _bench_case(*HELD_OUT_BARS[case])
    recall, outside = recall_and_outside(detect_bars(cen.image, grow=2), cen.bars)
    assert recall >= 0.9, (case, recall)
    assert outside <= 0.002, (case, outside)


# Held-out uncensored pictures where flat white or shaded fills once passed for bars.
HELD_OUT_TRAPS = {
    # Narration boxes with lettering up to their rims: white, rectangular, not opaque.
    "narration box cut by the edge": (3000, 4, (640, 640), "manga"),
    "narration box, lettering at the rim": (3000, 6, (512, 768), "manga"),
    # A limb's long cel shadow: straight-ish, its sides bowed.
    "limb shadow with bowed sides": (7000, 8, (640, 640), "pastel"),
    # A limb's lit band between its outline and its shadow, both sides bowed in steps of
    # 7-10 degrees (each too sharp for a gentle turn): one straight strip explains 90 % of it.
    "limb band bowed in coarse steps": (13000, 14, (512, 768), "plain"),
}


@pytest.mark.parametrize("case", sorted(HELD_OUT_TRAPS))
def test_held_out_traps_stay_untouched(case: str) -> None:
    base, i, size, theme = HELD_OUT_TRAPS[case]
    art = drawn.draw_art(base + i, size, theme)
    assert detect_bars(art.image, grow=2).mean() <= 0.005, case


@pytest.mark.parametrize("tilt", [0.0, 12.0])
def test_a_cloud_cut_by_the_edge_is_no_bar_but_a_bar_cut_there_is(tilt: float) -> None:
    # Short stubs pass the strip test only because the border cut them; a bar's stub ends
    # squarely, a clipped ellipse (a pale cloud in a sky) does not (held-out base 21000 #01
    # and a page of the free section had about 1 % of the picture inpainted for one).
    sky = np.zeros((400, 600, 3), np.uint8)
    sky[:] = (198, 226, 250)
    cloud = sky.copy()
    cv2.ellipse(cloud, (10, 150), (90, 38), tilt, 0, 360, (246, 240, 250), -1, cv2.LINE_AA)
    assert not detect_bars(cloud).any()
    barred = sky.copy()
    box = cv2.boxPoints(((40.0, 150.0), (180.0, 70.0), tilt))
    cv2.fillPoly(barred, [np.round(box * 16).astype(np.int32)], (246, 240, 250), cv2.LINE_AA, 4)
    found = detect_bars(barred)
    truth = np.zeros(sky.shape[:2], np.uint8)
    cv2.fillPoly(truth, [np.round(box * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    assert (found & truth.astype(bool)).sum() >= 0.9 * truth.sum()


def test_the_held_out_pastel_sky_cloud_is_left_alone() -> None:
    pic = drawn.draw_art(21001, drawn.BENCH_SIZES[1], drawn.BENCH_SCHEMES[drawn.bench_scheme(1)][0])
    assert pic.theme == "pastel"
    assert not detect_bars(pic.image).any()


def test_large_fills_get_no_allowance_for_rounded_corners_and_jogs() -> None:
    """Short pieces between a small compound bar's sides (its corners rounded off, the jog
    where two bars fused end to end step) are excused, in thicknesses; on a large region
    that allowance runs to tens of pixels. An uncensored page (free section, seed base
    41000, #11, JPEG 80) had a 300x400 px patch of sky, enclosed by a limb, a tone's
    straight edge and the picture's edge, taken for a bar (7.3 % of the page); a 96 px
    drawing upscaled 4x (nearest), whose fills' outlines are staircases of such jogs, had
    6 % taken."""
    i = 11
    size = drawn.FREE_SIZES[i % len(drawn.FREE_SIZES)]
    page = drawn.draw_art(80000 + i, size, drawn.THEMES[i % len(drawn.THEMES)]).image
    page = drawn.decode(drawn.jpeg_bytes(page, 80))
    assert detect_bars(page, grow=2).mean() < 0.005
    small = drawn.draw_art(50500, (96, 96), "pastel").image
    up = np.asarray(cv2.resize(small, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST), np.uint8)
    assert detect_bars(up, grow=2).mean() < 0.005


def test_a_patch_of_a_gradient_sky_is_no_bar_but_a_bar_on_it_is() -> None:
    """A bar is a solid fill; a patch of a sky's gradient cut out by the colour test, and
    fenced by a tone's straight edge, a limb and the picture's edge, drifts by 14 levels
    across it (held-out base 57000, uncensored #08, had 4.8 % of the page taken). A grey bar
    lying on such a sky is still one."""
    i = 8
    theme = drawn.BENCH_SCHEMES[drawn.bench_scheme(i)][0]
    pic = drawn.draw_art(57000 + i, drawn.BENCH_SIZES[i % len(drawn.BENCH_SIZES)], theme)
    assert detect_bars(pic.image).mean() < 0.005
    sky = np.zeros((500, 700, 3), np.float32)
    sky[:] = np.linspace(0.0, 1.0, 500, dtype=np.float32)[:, None, None] * np.array(
        [30.0, 10.0, -40.0], np.float32
    ) + np.array([200.0, 225.0, 245.0], np.float32)
    truth = np.zeros((500, 700), np.uint8)
    box = cv2.boxPoints(((350.0, 250.0), (300.0, 60.0), 10.0))
    cv2.fillPoly(truth, [np.round(box * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    barred = sky.copy()
    barred[truth.astype(bool)] = (128, 128, 128)
    rgb = np.clip(barred + 0.5, 0, 255).astype(np.uint8)
    # The flat-region detector itself: the drift is read over the bar, not around it.
    found = bars.detect_bars(drawn.jpeg(rgb, 90))
    assert (found & truth.astype(bool)).sum() >= 0.9 * truth.sum()
