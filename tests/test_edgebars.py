"""The geometric bar detector (workers.imageops.edgebars) and the package's union of both
detectors: thin bars, a bar running into a same-colour mass, bars crossing at a shallow
angle, a rimmed bar, and nothing on uncensored drawn art (hatching, strokes, balloons,
screentone), JPEG'd."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.imageops import bars, detect_bars, drawn, edgebars

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]


def _bar(
    img: NDArray[np.float32],
    centre: tuple[float, float],
    length: float,
    thick: float,
    angle: float,
    colour: tuple[int, int, int],
) -> Mask:
    """Paint one anti-aliased rotated bar; its truth (coverage >= 0.5)."""
    h, w = img.shape[:2]
    cover = np.zeros((h, w), np.uint8)
    pts = cv2.boxPoints((centre, (length, thick), angle))
    cv2.fillPoly(cover, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    a = cover[..., None].astype(np.float32) / 255.0
    img *= 1 - a
    img += np.array(colour, np.float32) * a
    truth: Mask = cover >= 128
    return truth


def _u8(img: NDArray[np.float32]) -> Image:
    out: Image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return out


def _recall(found: Mask, truth: Mask) -> float:
    return float((found & truth).sum()) / float(truth.sum())


def _on_subject(pic: drawn.Drawing, rng: np.random.Generator) -> tuple[float, float]:
    ys, xs = np.nonzero(pic.subject & ~pic.hair)
    i = int(rng.integers(len(ys)))
    return float(xs[i]), float(ys[i])


def test_thin_bars_are_found() -> None:
    """Three black bars 13 px thick on a 900 x 1300 picture (1.4 % of its short side): the
    flat-region detector takes them for too thin at its search scale; this one finds each."""
    pic = drawn.draw_art(90012, size=(900, 1300), theme="plain")
    img = pic.image.astype(np.float32)
    rng = np.random.default_rng(3)
    truths = [
        _bar(img, _on_subject(pic, rng), 180.0, 13.0, float(a), (0, 0, 0)) for a in (0, 20, -35)
    ]
    rgb = _u8(img)
    found = edgebars.detect_edge_bars(rgb)
    for t in truths:
        assert _recall(found, t) >= 0.9
    # The package's detector is the union: it finds them too, where bars.py alone does not.
    union = detect_bars(rgb)
    assert all(_recall(union, t) >= 0.9 for t in truths)
    assert min(_recall(bars.detect_bars(rgb), t) for t in truths) < 0.9


def test_bar_running_into_same_colour_mass() -> None:
    """A black bar whose end lies on the near-black hair: its colour merges with the hair,
    but its two free edges and its other end still make it a bar."""
    pic = drawn.draw_art(90021, size=(800, 800), theme="plain")
    img = pic.image.astype(np.float32)
    hair = pic.hair
    ys, xs = np.nonzero(hair)
    # From a hair pixel at the mass's lower rim, the bar runs down and out over the figure.
    i = int(np.argmax(ys))
    x0, y0 = float(xs[i]), float(ys[i]) - 20.0
    ang = 70.0
    length, thick = 220.0, 30.0
    d = np.array([np.cos(np.radians(ang)), np.sin(np.radians(ang))])
    centre = (x0 + d[0] * length / 2, y0 + d[1] * length / 2)
    truth = _bar(img, centre, length, thick, ang, (15, 15, 18))
    rgb = drawn.jpeg(_u8(img), 90)
    found = edgebars.detect_edge_bars(rgb)
    free = truth & ~cv2.dilate(hair.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert _recall(found, free) >= 0.9
    # Nothing of the hair mass beyond the bar's width is taken.
    assert not (found & hair & ~truth).sum() > 0.02 * truth.sum()


@pytest.mark.parametrize("colour", [(210, 210, 210), (200, 30, 40)])
def test_bars_crossing_at_a_shallow_angle(colour: tuple[int, int, int]) -> None:
    """Two bars of one colour crossing at 30 degrees: each one's edges are broken where
    the other crosses; both are found whole."""
    pic = drawn.draw_art(90031, size=(1000, 1000), theme="pastel" if sum(colour) > 600 else "plain")
    img = pic.image.astype(np.float32)
    cx, cy = _on_subject(pic, np.random.default_rng(5))
    a = _bar(img, (cx, cy), 320.0, 34.0, 10.0, colour)
    b = _bar(img, (cx + 20, cy + 5), 300.0, 30.0, 40.0, colour)
    rgb = drawn.jpeg(_u8(img), 85)
    found = edgebars.detect_edge_bars(rgb)
    assert _recall(found, a) >= 0.9
    assert _recall(found, b) >= 0.9


def test_rimmed_bar_is_found_with_its_rim() -> None:
    """A pink bar rimmed 3 px in black on pink skin: past the rim the colour is nearly the
    bar's again, which a plain bar's side test refuses; the rim is taken with the bar."""
    pic = drawn.draw_art(90004, size=(900, 900), theme="pink")
    img = pic.image.astype(np.float32)
    cx, cy = _on_subject(pic, np.random.default_rng(7))
    rim = _bar(img, (cx, cy), 266.0, 46.0, 15.0, (0, 0, 0))
    inner = _bar(img, (cx, cy), 260.0, 40.0, 15.0, (250, 180, 200))
    rgb = _u8(img)
    found = edgebars.detect_edge_bars(rgb)
    assert _recall(found, inner) >= 0.9
    assert _recall(found, rim) >= 0.9


@pytest.mark.parametrize(
    ("seed", "size", "theme", "quality"),
    [
        (4000 + i, size, theme, q)
        for i, (size, theme, q) in enumerate(
            [
                ((700, 700), "manga", 80),
                ((900, 1300), "plain", 92),
                ((1400, 1000), "pastel", 85),
                ((1200, 1200), "night", 90),
                ((800, 800), "pink", None),
                ((1000, 1000), "manga", None),
                ((640, 640), "manga", 95),
                ((1300, 900), "plain", 80),
            ]
        )
    ],
)
def test_nothing_on_uncensored_art(
    seed: int, size: tuple[int, int], theme: str, quality: int | None
) -> None:
    """Hatching (parallel lines, their gaps one colour), tapered strokes, balloons and
    narration boxes with lettering, screentone, limbs' lit bands: no bar."""
    pic = drawn.draw_art(seed, size=size, theme=theme)
    rgb = pic.image if quality is None else drawn.jpeg(pic.image, quality)
    assert not edgebars.detect_edge_bars(rgb).any()


def test_hatching_gaps_are_not_bars() -> None:
    """Wide parallel black lines 3 px thick with 12 px gaps, ending on an outline: each gap
    is a uniform strip between straight edges with square ends, but past each line the
    gap's colour comes back."""
    h, w = 600, 600
    img = np.full((h, w, 3), 235, np.float32)
    for k in range(12):
        y = 150 + k * 15
        cv2.line(img, (150, y), (450, y), (10, 10, 10), 3, cv2.LINE_AA)
    cv2.rectangle(img, (148, 140), (452, 330), (10, 10, 10), 2, cv2.LINE_AA)
    rgb = drawn.jpeg(_u8(img), 85)
    assert not edgebars.detect_edge_bars(rgb).any()


def test_grow_dilates() -> None:
    img = np.full((300, 400, 3), 200, np.float32)
    truth = _bar(img, (200.0, 150.0), 200.0, 20.0, 0.0, (0, 0, 0))
    rgb = _u8(img)
    plain = edgebars.detect_edge_bars(rgb)
    grown = edgebars.detect_edge_bars(rgb, grow=3)
    assert _recall(plain, truth) >= 0.98
    assert grown.sum() > plain.sum() and not (plain & ~grown).any()
    assert (detect_bars(rgb, grow=3) & ~detect_bars(rgb)).any()


def _free_page(seed: int, i: int, quality: int | None) -> drawn.Censored:
    """Case ``i`` of the quality bench's free section at seed base ``seed`` (its picture,
    censor and coding), built here with drawn.py; the coded picture is in ``image``."""
    shift = seed - 1000
    size = drawn.FREE_SIZES[i % len(drawn.FREE_SIZES)]
    pic = drawn.draw_art(shift + 40000 + i, size, drawn.THEMES[i % len(drawn.THEMES)])
    kind = drawn.FREE_KINDS[(i // len(drawn.FREE_SIZES)) % len(drawn.FREE_KINDS)]
    cen = drawn.censor_free(pic, shift + 41000 + i, kind)
    img = cen.image if quality is None else drawn.jpeg(cen.image, quality)
    return cen._replace(image=img)


def _free_recall(cen: drawn.Censored) -> float:
    return _recall(edgebars.detect_edge_bars(cen.image, grow=2), cen.bars)


def test_dark_bar_over_a_dark_scene() -> None:
    """A near-black bar (20, 20, 30) half over a navy night sky, half over skin (JPEG 80):
    its colour is held to its own noise, not to half its contrast with the skin at the
    seed, or the sky passes for more bar and the bar for too wide there."""
    cen = _free_page(25000, 27, 80)
    assert cen.colour == (20, 20, 30)
    assert _free_recall(cen) >= 0.95


def test_thin_saturated_bar_under_strong_jpeg() -> None:
    """Thin dark-blue bars (1.2-2 % of the short side) at JPEG 80: the chroma noise spreads
    over the whole thickness, the brightness stays flat."""
    cen = _free_page(25000, 15, 80)
    assert cen.colour == (30, 60, 160)
    assert _free_recall(cen) >= 0.95


def test_grey_bar_over_lighter_and_darker_greys() -> None:
    """A mid-grey bar over greys both lighter and darker than it (JPEG 80): each of its
    edges is cut into pieces where the gradient flips, and where the grey beside it is
    near its own the edge found wanders; the pieces are joined and the straightness is
    judged where the edges are sharp."""
    cen = _free_page(29000, 19, 80)
    assert cen.colour == (128, 128, 128)
    assert _free_recall(cen) >= 0.95


@pytest.mark.parametrize(("seed", "i", "quality"), [(29000, 22, 92), (25000, 20, None)])
def test_rim_taken_whole(seed: int, i: int, quality: int | None) -> None:
    """A bar inside a 3 px rim of the opposite lightness: the blend between bar and rim
    may span two rows and pass for a band of its own; the rim is still taken whole."""
    cen = _free_page(seed, i, quality)
    assert _free_recall(cen) >= 0.98


def test_rimmed_light_bar_seen_off_its_middle() -> None:
    """A 240-grey bar in a black rim on white paper (JPEG 80), its candidate a few px off
    the bar's middle: the rim's pixels in the strip read for the bar's noise are not
    noise, or the tolerance stays loose enough to take the white paper for bar."""
    cen = _free_page(25000, 39, 80)
    assert cen.colour == (240, 240, 240)
    assert _free_recall(cen) >= 0.9


def test_white_bars_over_near_white_paper() -> None:
    """White bars over paper of 248 and over darker ink (JPEG 92): where they lie on the
    paper their edges differ by 7 grey levels, under LSD's default gradient bound; a
    finer search finds them."""
    cen = _free_page(25000, 34, 92)
    assert cen.colour == (255, 255, 255)
    assert _free_recall(cen) >= 0.85


def test_thin_red_bar_narrowed_by_jpeg() -> None:
    """A red bar 9 px thick at JPEG 92: JPEG rings its edges a row or two deep past the
    colour's tolerance, so only 6 rows read as the colour; its thickness is measured where
    the colour is half-way to its sides, as the edge pair measured it."""
    pic = drawn.draw_art(90041, size=(700, 700), theme="pastel")
    img = pic.image.astype(np.float32)
    cx, cy = _on_subject(pic, np.random.default_rng(7))
    truth = _bar(img, (cx, cy), 180.0, 9.0, 0.0, (200, 30, 40))
    rgb = drawn.jpeg(_u8(img), 92)
    assert _recall(edgebars.detect_edge_bars(rgb, grow=2), truth) >= 0.95


def _screentone(img: NDArray[np.float32], box: tuple[int, int, int, int], pitch: int) -> None:
    """Dark dots on a ``pitch`` px grid over ``box`` (x0, y0, x1, y1), drawn to its edge."""
    x0, y0, x1, y1 = box
    for y in range(y0 + pitch // 2, y1 + pitch // 2, pitch):
        for x in range(x0 + pitch // 2, x1, pitch):
            cv2.circle(img, (x, y), 2, (40, 40, 40), -1, cv2.LINE_AA)


def test_bar_with_one_edge_along_screentone() -> None:
    """A grey bar whose upper edge runs along screentone: the dots break that edge into
    pieces too short to pair with the lower one. The lower edge alone seeds the strip
    (the flat grey followed across to where it ends), and the bar is judged as any."""
    h, w = 900, 900
    img = np.full((h, w, 3), 235.0, np.float32)
    img[:, :, 2] = 240.0
    _screentone(img, (150, 200, 750, 430), 9)
    truth = _bar(img, (450.0, 460.0), 300.0, 60.0, 0.0, (128, 128, 128))
    rgb = drawn.jpeg(_u8(img), 85)
    assert _recall(edgebars.detect_edge_bars(rgb, grow=2), truth) >= 0.95


def test_bars_overlapping_end_to_end() -> None:
    """Two black bars laid over each other end to end, 16 and 19 px thick, offset by half
    a thickness (JPEG 80): where they overlap the cross-section is wider than either and
    no column is judged; each bar still runs on there along its one straight edge."""
    pic = drawn.draw_art(90051, size=(1200, 1200), theme="plain")
    img = pic.image.astype(np.float32)
    cx, cy = _on_subject(pic, np.random.default_rng(11))
    a = _bar(img, (cx + 100, cy - 12), 210.0, 16.0, 0.0, (0, 0, 0))
    b = _bar(img, (cx - 20, cy), 196.0, 19.0, 0.0, (0, 0, 0))
    rgb = drawn.jpeg(_u8(img), 80)
    found = edgebars.detect_edge_bars(rgb, grow=2)
    assert _recall(found, a | b) >= 0.97
    # Nothing past the two bars' ends is taken with them.
    assert not (found & ~cv2.dilate((a | b).astype(np.uint8), np.ones((9, 9))).astype(bool)).any()


@pytest.mark.parametrize("quality", [None, 85])
def test_light_grey_bars_on_white_paper(quality: int | None) -> None:
    """Bars of 240 grey over paper of 248, pale shading and ink outlines: 14 RGB levels from
    the paper, under the contrast a bar needs in general; where the bar's colour is flat to
    well under that (its own noise), it is enough, with both sides differing along most of
    the bar."""
    h, w = 900, 1300
    img = np.full((h, w, 3), 248.0, np.float32)
    cv2.ellipse(img, (650, 450), (420, 300), 0, 0, 360, (226, 226, 236), -1, cv2.LINE_AA)
    cv2.ellipse(img, (650, 450), (420, 300), 0, 0, 360, (20, 20, 20), 3, cv2.LINE_AA)
    cv2.ellipse(img, (560, 520), (200, 120), 20, 0, 360, (20, 20, 20), 2, cv2.LINE_AA)
    truths = [
        _bar(img, (300.0, 200.0), 260.0, 15.0, 0.0, (240, 240, 240)),
        _bar(img, (650.0, 470.0), 300.0, 22.0, 15.0, (240, 240, 240)),
    ]
    rgb = _u8(img) if quality is None else drawn.jpeg(_u8(img), quality)
    found = edgebars.detect_edge_bars(rgb, grow=2)
    assert all(_recall(found, t) >= 0.9 for t in truths)
    # The paper and the shading around them stay.
    near = cv2.dilate((truths[0] | truths[1]).astype(np.uint8), np.ones((9, 9))).astype(bool)
    assert not (found & ~near).any()


def test_bar_does_not_run_on_into_a_widening_fill() -> None:
    """A black bar whose one end runs into a black wedge sharing its upper edge (a limb's
    band widening along its outline): the wedge is not another bar, so the bar does not run
    on into it along that edge."""
    h, w = 800, 1000
    img = np.full((h, w, 3), 230.0, np.float32)
    img[:, :, 0] = 240.0
    truth = _bar(img, (420.0, 400.0), 300.0, 20.0, 0.0, (0, 0, 0))
    wedge = np.array([[570, 390], [800, 390], [800, 500], [570, 410]], np.int32)
    cv2.fillPoly(img, [wedge], (0, 0, 0), cv2.LINE_AA)
    rgb = drawn.jpeg(_u8(img), 90)
    found = edgebars.detect_edge_bars(rgb)
    left = truth.copy()
    left[:, 560:] = False
    assert _recall(found, left) >= 0.9
    assert not found[:, 600:].any()


def test_short_block_with_square_ends() -> None:
    """A block 2.1 times as long as it is thick (a dark box in a white rim on a night sky,
    JPEG 80, and a black one on plain art): too short for a bar by its length alone, it is
    one as a box, both ends square in another colour and both sides differing."""
    pic = drawn.draw_art(90071, size=(1000, 1000), theme="night")
    img = pic.image.astype(np.float32)
    cx, cy = _on_subject(pic, np.random.default_rng(17))
    _bar(img, (cx, cy), 166.0, 81.0, 15.0, (255, 255, 255))
    dark = _bar(img, (cx, cy), 160.0, 75.0, 15.0, (20, 20, 30))
    rgb = drawn.jpeg(_u8(img), 80)
    assert _recall(edgebars.detect_edge_bars(rgb, grow=2), dark) >= 0.95
    pic = drawn.draw_art(90072, size=(900, 900), theme="plain")
    img = pic.image.astype(np.float32)
    black = _bar(img, _on_subject(pic, np.random.default_rng(19)), 120.0, 60.0, -30.0, (0, 0, 0))
    assert _recall(edgebars.detect_edge_bars(_u8(img), grow=2), black) >= 0.95


def test_short_block_running_into_a_mass_is_not_a_box() -> None:
    """A short black block (twice as long as thick) whose one end runs into a black mass:
    only one end is square, so it is not a box; a bar that short needs both."""
    img = np.full((700, 900, 3), 225.0, np.float32)
    img[:, :, 2] = 205.0
    cv2.circle(img, (300, 350), 110, (0, 0, 0), -1, cv2.LINE_AA)
    block = _bar(img, (450.0, 350.0), 180.0, 60.0, 0.0, (0, 0, 0))
    rgb = drawn.jpeg(_u8(img), 90)
    found = edgebars.detect_edge_bars(rgb)
    assert (found & block).sum() < 0.2 * block.sum()


def test_a_glyph_of_lettering_is_no_box() -> None:
    """A glyph of a balloon's lettering, a black block 10 x 8 px with square ends in white
    paper (an uncensored manga page, JPEG 92): too small for a box."""
    i = 14
    size = drawn.FREE_SIZES[i % len(drawn.FREE_SIZES)]
    page = drawn.draw_art(80000 + i, size, drawn.THEMES[i % len(drawn.THEMES)]).image
    assert not edgebars.detect_edge_bars(drawn.jpeg(page, 92)).any()


def test_strip_between_a_line_and_the_border_is_no_bar() -> None:
    """A flat strip of paper 30 px wide between a box's straight side and the picture's
    right border, closed squarely by the box's bottom: one edge and the border, which is
    no bar's far side (an uncensored manga page had such a strip taken)."""
    img = np.full((700, 900, 3), 245.0, np.float32)
    cv2.line(img, (870, 0), (870, 300), (20, 20, 20), 3, cv2.LINE_AA)
    cv2.line(img, (600, 300), (899, 300), (20, 20, 20), 3, cv2.LINE_AA)
    cv2.line(img, (600, 0), (600, 300), (20, 20, 20), 3, cv2.LINE_AA)
    assert not edgebars.detect_edge_bars(drawn.jpeg(_u8(img), 90)).any()
