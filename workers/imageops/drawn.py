"""Drawn-in-code art, censored the way real censored art is, with exact ground truth.

For tests and ``bench/quality.py``. Everything is drawn with numpy and OpenCV from a seed:
no real artwork, no people. A picture imitates what the detectors meet in practice: ink
outlines of varying width (anti-aliased), tapered strokes, hatching and cross-hatching,
screentone (halftone dots), cel shading (flat fills with a hard-edged shadow tone),
gradient skies, a large near-black hair mass, speech balloons (white, outlined, with a tail
and text marks) and flat backgrounds. Coordinates put pixel centres on integers.

Functions:

- ``draw_art(seed, size, theme)``: a clean picture and the masks of what is in it
  (``Drawing``). ``THEMES``: ``plain``, ``pastel`` (light colours, for white bars),
  ``night`` (dark navy sky and clothes, for navy bars), ``pink`` (pink skin and ground, for
  light pink bars), ``manga`` (greys, screentone, heavy hatching).
- ``bar_boxes(drawing, rng, layout)``: the rotated rectangles of one censor ``layout``
  (``LAYOUTS``): ``single`` (one axis-aligned, hard-edged bar), ``rotated`` (any angle,
  anti-aliased), ``x`` (two bars crossing), ``t`` (a stem starting inside a crossbar's
  middle), ``l`` (two bars meeting at a corner), ``stacked`` (2-4 parallel bars 2-6 px
  apart), ``fused`` (two bars end to end, sometimes bent or of another thickness), ``edge``
  (cut by the picture's edge), ``outline`` (the rim along as much dark ink as possible),
  ``hatch`` (over hatching). Bars are placed over the figure, never centred on the hair.
- ``censor_bars(drawing, seed, layout, colour)``: bars painted in one flat colour
  (``BAR_COLOURS`` or any RGB); truth masks in the returned ``Censored``.
- ``censor_free(drawing, seed, kind)``: bars laid freely (``FREE_KINDS``: several at any
  angle, a rimmed bar, one anti-aliased bar, thin bars) on pictures of ``FREE_SIZES``.
- ``censor_mosaic(picture, seed, block, phase)``: one pixelated region (cell means on a grid
  of ``block`` px offset by ``phase``) on a ``Drawing`` or any RGB picture (photos too);
  truth = the whole cells changed.
- ``censor_both(drawing, seed, layout, colour, block)``: bars and a mosaic that do not touch.
- ``brush_green(rgb, seed, region=None)``: green painted by hand with a soft (anti-aliased)
  brush over ``region`` grown a little, or along a random stroke, the way users pre-mask
  for DeepCreamPy; returns the picture and the brush alpha (1 = solid green).
- ``png_bytes``, ``jpeg_bytes(rgb, quality)``, ``decode`` (Pillow, as uploads are read) and
  ``jpeg(rgb, quality)`` (the round trip).
- ``colour_for_theme(theme, rng)``: the bar colour a censor would pick on such a picture.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]
Cover = NDArray[np.float32]  # (H, W) coverage in [0, 1]
Points = NDArray[np.float64]  # (N, 2) x, y
RGB = tuple[int, int, int]

THEMES = ("plain", "pastel", "night", "pink", "manga")
LAYOUTS = ("single", "rotated", "x", "t", "l", "stacked", "fused", "edge", "outline", "hatch")

# The drawn-art benchmark's bar cases (bench/quality.py), here so the tests that pin some of
# them draw exactly the same pictures. Picture sizes, taken in turn:
BENCH_SIZES = ((640, 640), (768, 512), (512, 768), (704, 576))
# (theme, bar colour): white over light colours, navy on a dark sky, light pink on pink,
# grey, saturated colours and black, each on art it is used on.
BENCH_SCHEMES = (
    ("plain", "black"),
    ("pastel", "white"),
    ("night", "navy"),
    ("pink", "light_pink"),
    ("manga", "grey"),
    ("plain", "red"),
    ("manga", "black"),
    ("plain", "blue"),
    ("pastel", "grey"),
    ("plain", "yellow"),
    ("pastel", "white"),
    ("pink", "black"),
)


def bench_scheme(i: int) -> int:
    """The scheme of bar case ``i``: each layout (i % 10) meets four different schemes over
    the 40 cases."""
    return (i + 3 * (i // len(LAYOUTS))) % len(BENCH_SCHEMES)


BAR_COLOURS: dict[str, RGB] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "navy": (26, 32, 86),
    "light_pink": (255, 212, 224),
    "grey": (128, 128, 128),
    "red": (230, 20, 40),
    "blue": (20, 60, 230),
    "yellow": (250, 215, 0),
}
GREEN: RGB = (0, 255, 0)

_SS = 4  # supersampling factor of every filled polygon: that is the anti-aliasing
_SHIFT = 4  # sub-pixel bits of the OpenCV drawing calls


class Box(NamedTuple):
    """A censor bar: centre (x, y), length along ``angle`` (degrees), thickness across."""

    cx: float
    cy: float
    length: float
    thickness: float
    angle: float


class Drawing(NamedTuple):
    """A clean picture and where its parts are (masks: coverage >= 0.5)."""

    image: Image
    theme: str
    subject: Mask  # the figure's filled shapes but its hair: where censors go
    hair: Mask  # the near-black hair mass
    hatch: Mask  # patches of hatching and cross-hatching
    tone: Mask  # screentone patches
    balloons: Mask  # speech balloons and narration boxes
    ink: Mask  # dark line art: outlines, strokes, hatching lines


class Censored(NamedTuple):
    """A censored picture and its truth.

    ``bars`` holds the pixels a bar covers at least half of; ``bar_touch`` every pixel a bar
    touches at all (its anti-aliased fringe included). ``mosaic`` holds every pixel of the
    pixelated cells.
    """

    clean: Image
    image: Image
    bars: Mask
    bar_touch: Mask
    mosaic: Mask
    colour: RGB | None
    boxes: tuple[Box, ...]
    block: int
    phase: tuple[int, int]
    label: str


# -- rasterising ---------------------------------------------------------------------------


def _cover(h: int, w: int, polys: Sequence[Points]) -> Cover:
    """Coverage of the union of ``polys`` per pixel, by 4x4 supersampling."""
    out = np.zeros((h, w), np.float32)
    polys = [p for p in polys if len(p) >= 3]
    if not polys:
        return out
    allp = np.concatenate(polys)
    x0 = max(int(np.floor(allp[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(allp[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(allp[:, 0].max())) + 2, w)
    y1 = min(int(np.ceil(allp[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return out
    big = np.zeros(((y1 - y0) * _SS, (x1 - x0) * _SS), np.uint8)
    off = np.array([x0, y0], np.float64)
    for p in polys:
        # Pixel i spans [i - 0.5, i + 0.5]; its sub-samples sit at _SS * i + 0..3 (+ 1.5).
        q = ((p - off) * _SS + (_SS - 1) / 2.0) * (1 << _SHIFT)
        cv2.fillPoly(big, [np.round(q).astype(np.int32)], 255, cv2.LINE_8, _SHIFT)
    small = cv2.resize(big, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    out[y0:y1, x0:x1] = small.astype(np.float32) * (1.0 / 255.0)
    return out


def _paint(canvas: NDArray[np.float32], cover: Cover, colour: object) -> None:
    """Composite ``colour`` (RGB or an (H, W, 3) field) over ``canvas`` with ``cover``."""
    rows = np.flatnonzero(cover.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(cover[rows[0] : rows[-1] + 1].any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    a = cover[y0:y1, x0:x1, None]
    col = np.asarray(colour, np.float32)
    c = col[y0:y1, x0:x1] if col.ndim == 3 else col
    roi = canvas[y0:y1, x0:x1]
    roi += (c - roi) * a


def _normals(p: Points, closed: bool) -> Points:
    t = np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0) if closed else np.gradient(p, axis=0)
    n = np.stack([t[:, 1], -t[:, 0]], axis=1)
    out: Points = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    return out


def _outline(h: int, w: int, poly: Points, widths: NDArray[np.float64]) -> Cover:
    """An ink ring of varying width along a closed polygon."""
    n = _normals(poly, True) * (widths[:, None] / 2.0)
    ring = np.abs(_cover(h, w, [poly + n]) - _cover(h, w, [poly - n]))
    res: Cover = np.clip(ring, 0.0, 1.0)
    return res


def _stroke(curve: Points, widths: NDArray[np.float64]) -> Points:
    """The outline polygon of an open stroke of varying width."""
    n = _normals(curve, False) * (widths[:, None] / 2.0)
    out: Points = np.concatenate([curve + n, (curve - n)[::-1]])
    return out


def _bezier(ctrl: Points, n: int = 48) -> Points:
    t = np.linspace(0.0, 1.0, n)[:, None]
    if len(ctrl) == 3:
        p0, p1, p2 = ctrl
        out: Points = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2
        return out
    p0, p1, p2, p3 = ctrl[:4]
    out = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t * t * p2 + t**3 * p3
    return out


def _blob(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radii: tuple[float, float],
    angle: float,
    wobble: float = 0.08,
    n: int = 180,
) -> Points:
    """A closed, smooth, irregular shape: an ellipse with a few low harmonics."""
    phi = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 6):
        r += rng.uniform(0, wobble) / (k - 1) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    x = radii[0] * r * np.cos(phi)
    y = radii[1] * r * np.sin(phi)
    ca, sa = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    out: Points = np.stack([centre[0] + ca * x - sa * y, centre[1] + sa * x + ca * y], axis=1)
    return out


def _box_poly(b: Box) -> Points:
    ca, sa = np.cos(np.radians(b.angle)), np.sin(np.radians(b.angle))
    u = np.array([ca, sa]) * b.length / 2.0
    v = np.array([-sa, ca]) * b.thickness / 2.0
    c = np.array([b.cx, b.cy])
    out: Points = np.stack([c - u - v, c + u - v, c + u + v, c - u + v])
    return out


def _widths(
    rng: np.random.Generator, n: int, lo: float, hi: float, closed: bool
) -> NDArray[np.float64]:
    """An ink line's width along its length: pressure rises and falls a few times."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=not closed)
    wv = 0.5 + 0.5 * np.sin(t * int(rng.integers(1, 4)) + rng.uniform(0, 2 * np.pi))
    out: NDArray[np.float64] = lo + (hi - lo) * wv
    return out


# -- pictures ------------------------------------------------------------------------------


class _Palette(NamedTuple):
    sky_top: RGB
    sky_bottom: RGB
    skin: RGB
    clothes: tuple[RGB, ...]
    hair: RGB
    ink: RGB
    tone_ink: RGB


def _jitter(rng: np.random.Generator, c: RGB, amount: int = 10) -> RGB:
    d = rng.integers(-amount, amount + 1, size=3)
    r, g, b = (int(np.clip(c[i] + d[i], 0, 255)) for i in range(3))
    return r, g, b


def _palette(theme: str, rng: np.random.Generator) -> _Palette:
    # The close-colour themes keep every colour a bar might cover at least ~20 levels (in
    # some channel) from that theme's bar colour: close, as the cases are, yet
    # visible to a person, which a bar of exactly the covered colour would not be.
    def j(c: RGB) -> RGB:
        return _jitter(rng, c, 6)

    if theme == "pastel":  # against white bars
        return _Palette(
            j((205, 228, 250)),
            j((244, 240, 222)),
            j((255, 230, 216)),
            (j((248, 234, 196)), j((220, 238, 220)), j((234, 220, 248))),
            j((40, 34, 48)),
            (30, 26, 34),
            (70, 70, 80),
        )
    if theme == "night":  # against navy bars
        return _Palette(
            j((8, 10, 28)),
            j((20, 24, 56)),
            j((196, 168, 160)),
            (j((70, 56, 120)), j((18, 20, 40)), j((64, 74, 128))),
            j((16, 14, 22)),
            (8, 8, 14),
            (60, 66, 110),
        )
    if theme == "pink":  # against light pink bars
        return _Palette(
            j((232, 140, 170)),
            j((244, 170, 194)),
            j((244, 166, 186)),
            (j((236, 120, 160)), j((200, 90, 140)), j((170, 60, 110))),
            j((36, 20, 30)),
            (40, 18, 30),
            (140, 70, 100),
        )
    if theme == "manga":
        g = int(rng.integers(236, 256))
        return _Palette(
            (g, g, g),
            (255, 255, 255),
            (252, 252, 252),
            ((200, 200, 200), (232, 232, 232), (160, 160, 160)),
            (22, 22, 22),
            (12, 12, 12),
            (40, 40, 40),
        )
    skins = ((255, 224, 200), (244, 200, 170), (226, 176, 140))
    cl = tuple((int(c[0]), int(c[1]), int(c[2])) for c in rng.integers(40, 230, size=(3, 3)))
    return _Palette(
        _jitter(rng, (120, 170, 230)),
        _jitter(rng, (230, 236, 244)),
        skins[int(rng.integers(len(skins)))],
        cl,
        _jitter(rng, (28, 24, 30)),
        (18, 16, 20),
        (60, 60, 70),
    )


def _backdrop(rng: np.random.Generator, h: int, w: int, pal: _Palette) -> NDArray[np.float32]:
    kind = int(rng.integers(3))
    top = np.array(pal.sky_top, np.float32)
    bottom = np.array(pal.sky_bottom, np.float32)
    if kind == 0:
        # A flat background, one colour edge to edge.
        return np.full((h, w, 3), top, np.float32)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    if kind == 2:
        t = t * t
    sky: NDArray[np.float32] = np.repeat(top + (bottom - top) * t, w, axis=1)
    return sky


def _shape(
    canvas: NDArray[np.float32],
    rng: np.random.Generator,
    poly: Points,
    base: RGB,
    ink: RGB,
    line: tuple[float, float],
    shadow: bool = True,
) -> tuple[Cover, Cover]:
    """A cel-shaded shape: flat fill, hard shadow on one side, outline of varying width."""
    h, w = canvas.shape[:2]
    fill = _cover(h, w, [poly])
    _paint(canvas, fill, base)
    if shadow:
        size = float(np.ptp(poly, axis=0).min())
        th = rng.uniform(0, 2 * np.pi)
        shift = np.array([np.cos(th), np.sin(th)]) * size * rng.uniform(0.12, 0.3)
        lit = _cover(h, w, [poly + shift])
        dark = np.clip(fill - lit, 0.0, 1.0)
        tint = np.array([0.72, 0.7, 0.8]) * rng.uniform(0.85, 1.05)
        shade = tuple(int(c) for c in np.clip(np.array(base) * tint, 0, 255))
        _paint(canvas, dark, shade)
    ring = _outline(h, w, poly, _widths(rng, len(poly), line[0], line[1], True))
    _paint(canvas, ring, ink)
    return fill, ring


def _hatching(h: int, w: int, rng: np.random.Generator, clip: Cover, cross: bool) -> Cover:
    """Parallel ink lines (two directions when ``cross``) over the region ``clip``."""
    ys, xs = np.nonzero(clip > 0.5)
    if ys.size == 0:
        return np.zeros((h, w), np.float32)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    span = float(np.hypot(x1 - x0, y1 - y0))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    step = rng.uniform(3.5, 7.0)
    lines: list[Points] = []
    angles = [rng.uniform(20, 70)]
    if cross:
        angles.append(angles[0] + rng.uniform(60, 110))
    for ang in angles:
        d = np.array([np.cos(np.radians(ang)), np.sin(np.radians(ang))])
        nrm = np.array([-d[1], d[0]])
        for k in np.arange(-span / 2, span / 2, step):
            a = np.array([cx, cy]) + nrm * k - d * span / 2
            b = a + d * span
            curve = np.linspace(a, b, 12)
            lines.append(_stroke(curve, np.full(12, rng.uniform(0.8, 1.6))))
    # Drawn one by one: fillPoly of overlapping polygons in one call would XOR them.
    cov = np.zeros((h, w), np.float32)
    for poly in lines:
        cov = np.maximum(cov, _cover(h, w, [poly]))
    res: Cover = cov * clip
    return res


def _screentone(h: int, w: int, rng: np.random.Generator, clip: Cover) -> Cover:
    """Halftone dots on a rotated lattice, growing along a gradient, over ``clip``."""
    pitch = rng.uniform(4.0, 8.0)
    ang = np.radians(rng.choice([0.0, 45.0, rng.uniform(0, 90)]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx * np.cos(ang) + yy * np.sin(ang)) / pitch
    v = (-xx * np.sin(ang) + yy * np.cos(ang)) / pitch
    d = pitch * np.sqrt((u - np.round(u)) ** 2 + (v - np.round(v)) ** 2)
    g = rng.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(g) + yy * np.sin(g)) / max(h, w)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    radius = pitch * (0.15 + 0.3 * ramp)
    res: Cover = (np.clip(radius - d + 0.5, 0.0, 1.0) * clip).astype(np.float32)
    return res


def _balloon(
    canvas: NDArray[np.float32], rng: np.random.Generator, ink: RGB, narration: bool, left: bool
) -> Cover:
    """A speech balloon (white ellipse, outline, tail) or a narration box, with text marks,
    in the top left or top right corner."""
    h, w = canvas.shape[:2]
    s = min(h, w)
    rx, ry = s * rng.uniform(0.1, 0.16), s * rng.uniform(0.06, 0.1)
    cx = (rx + 8 if left else w - rx - 8) + rng.uniform(-5, 5)
    cy = ry + 8 + rng.uniform(0, h * 0.15)
    if narration:
        poly = _box_poly(Box(cx, cy, 2 * rx, 1.3 * ry, 0.0))
    else:
        poly = _blob(rng, (cx, cy), (rx, ry), 0.0, wobble=0.02)
        tip = np.array([cx + rng.uniform(-rx, rx) * 0.5, cy + ry * rng.uniform(1.5, 2.2)])
        base = np.array([[cx - rx * 0.25, cy + ry * 0.7], [cx + rx * 0.05, cy + ry * 0.8]])
        tail = np.stack([base[0], tip, base[1]])
        poly_t = tail
        _paint(canvas, _cover(h, w, [poly_t]), (255, 255, 255))
        _paint(canvas, _outline(h, w, poly_t, np.full(3, 2.0)), ink)
    fill = _cover(h, w, [poly])
    _paint(canvas, fill, (255, 255, 255))
    _paint(canvas, _outline(h, w, poly, _widths(rng, len(poly), 1.5, 3.0, True)), ink)
    if narration or rng.random() < 0.7:
        # Lines of "text": short dark marks, the way lettering looks from afar.
        rows = int(rng.integers(2, 4))
        marks: list[Points] = []
        for r in range(rows):
            y = cy - ry * 0.4 + r * ry * 0.8 / max(rows - 1, 1)
            x = cx - rx * 0.55
            while x < cx + rx * 0.5:
                ln = rng.uniform(4, 9)
                marks.append(_box_poly(Box(x + ln / 2, y, ln, rng.uniform(4, 7), 0.0)))
                x += ln + rng.uniform(2, 5)
        # The marks never overlap, so one fill call draws them all.
        _paint(canvas, _cover(h, w, marks), ink)
    return fill


def draw_art(seed: int, size: tuple[int, int] = (640, 640), theme: str = "plain") -> Drawing:
    """A deterministic cel-shaded figure on a backdrop, ``size`` = (height, width)."""
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}")
    rng = np.random.default_rng(seed)
    h, w = size
    s = float(min(h, w))
    pal = _palette(theme, rng)
    canvas = _backdrop(rng, h, w, pal)
    zero = np.zeros((h, w), np.float32)
    tone, hatch, balloons, ink, subject = zero.copy(), zero.copy(), zero.copy(), zero, zero

    def add_ink(c: Cover) -> None:
        nonlocal ink
        ink = np.maximum(ink, c)

    if theme == "manga" or rng.random() < 0.3:
        # Screentone on part of the background.
        band = _cover(
            h,
            w,
            [
                _blob(
                    rng,
                    (w * rng.uniform(0.2, 0.8), h * 0.25),
                    (s * 0.5, s * 0.2),
                    rng.uniform(-20, 20),
                )
            ],
        )
        dots = _screentone(h, w, rng, band)
        _paint(canvas, dots, pal.tone_ink)
        tone = np.maximum(tone, band)
    if theme == "night":
        # Stars: tiny light dots on the dark sky.
        for _ in range(int(rng.integers(15, 40))):
            c = (rng.uniform(0, w), rng.uniform(0, h * 0.5))
            r = rng.uniform(0.6, 1.5)
            _paint(canvas, _cover(h, w, [_blob(rng, c, (r, r), 0, 0.0, 12)]), (230, 230, 200))
    elif rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 4))):
            c = (rng.uniform(0, w), rng.uniform(0, h * 0.4))
            cloud = _blob(
                rng, c, (s * rng.uniform(0.08, 0.18), s * rng.uniform(0.04, 0.07)), 0.0, 0.15
            )
            _paint(canvas, _cover(h, w, [cloud]), _jitter(rng, (250, 250, 252), 4))

    line = (1.0, rng.uniform(2.5, 5.0))
    cx = w * rng.uniform(0.4, 0.6)
    head_c = (cx + s * rng.uniform(-0.05, 0.05), h * rng.uniform(0.26, 0.34))
    head_r = s * rng.uniform(0.1, 0.13)
    # The back hair: a large near-black mass behind the head and shoulders.
    hair_poly = _blob(
        rng,
        (head_c[0], head_c[1] + head_r * 0.6),
        (head_r * rng.uniform(1.6, 2.1), head_r * rng.uniform(1.8, 2.6)),
        rng.uniform(-10, 10),
        0.12,
    )
    hair_fill, ring = _shape(canvas, rng, hair_poly, pal.hair, pal.ink, line, shadow=False)
    add_ink(ring)
    # Torso, arms, legs: cel-shaded skin, then clothes over part of them.
    parts: list[Points] = []
    torso_c = (cx, h * rng.uniform(0.68, 0.78))
    parts.append(
        _blob(
            rng,
            torso_c,
            (s * rng.uniform(0.17, 0.24), s * rng.uniform(0.24, 0.32)),
            rng.uniform(-8, 8),
        )
    )
    for side in (-1, 1):
        ang = 90 + side * rng.uniform(10, 40)
        ac = (torso_c[0] + side * s * rng.uniform(0.2, 0.28), torso_c[1] - s * rng.uniform(0, 0.1))
        parts.append(_blob(rng, ac, (s * rng.uniform(0.18, 0.25), s * 0.05), ang, 0.04))
    body = zero.copy()
    for poly in parts:
        f, ring = _shape(canvas, rng, poly, pal.skin, pal.ink, line)
        body = np.maximum(body, f)
        add_ink(ring)
    clothes_poly = _blob(
        rng,
        (torso_c[0], torso_c[1] + s * rng.uniform(-0.12, 0.05)),
        (s * rng.uniform(0.16, 0.22), s * rng.uniform(0.1, 0.16)),
        rng.uniform(-10, 10),
        0.1,
    )
    colour = pal.clothes[int(rng.integers(len(pal.clothes)))]
    cloth, ring = _shape(canvas, rng, clothes_poly, colour, pal.ink, line)
    add_ink(ring)
    body = np.maximum(body, cloth)
    # Hatching (sometimes crossed) over part of the clothes and the body's shadow side.
    for _ in range(1 if theme != "manga" else 2):
        ys, xs = np.nonzero(body > 0.5)
        k = int(rng.integers(ys.size))
        patch = _cover(
            h,
            w,
            [
                _blob(
                    rng,
                    (float(xs[k]), float(ys[k])),
                    (s * rng.uniform(0.05, 0.1), s * rng.uniform(0.04, 0.08)),
                    rng.uniform(0, 180),
                    0.1,
                )
            ],
        )
        patch *= body
        lines = _hatching(h, w, rng, patch, cross=rng.random() < 0.6)
        _paint(canvas, lines, pal.ink)
        add_ink(lines)
        hatch = np.maximum(hatch, patch)
    if rng.random() < 0.6:
        patch = cloth * _cover(h, w, [_blob(rng, torso_c, (s * 0.12, s * 0.08), 0.0, 0.1)])
        _paint(canvas, _screentone(h, w, rng, patch), pal.tone_ink)
        tone = np.maximum(tone, patch)
    # Head and front hair (bangs) over it.
    head = _blob(rng, head_c, (head_r * 0.9, head_r), rng.uniform(-10, 10), 0.03)
    f, ring = _shape(canvas, rng, head, pal.skin, pal.ink, line)
    add_ink(ring)
    body = np.maximum(body, f)
    bangs = _blob(
        rng,
        (head_c[0], head_c[1] - head_r * 0.55),
        (head_r * 1.1, head_r * 0.6),
        rng.uniform(-10, 10),
        0.2,
    )
    f, ring = _shape(canvas, rng, bangs, pal.hair, pal.ink, line, shadow=False)
    hair_fill = np.maximum(hair_fill, f)
    add_ink(ring)
    # Strokes: hair strands (light on the dark hair), folds and contour lines on the body.
    ys, xs = np.nonzero(hair_fill > 0.5)
    for _ in range(int(rng.integers(3, 7))):
        k = int(rng.integers(ys.size))
        p0 = np.array([xs[k], ys[k]], np.float64)
        ctrl = np.stack([p0, p0 + rng.uniform(-40, 40, 2), p0 + rng.uniform(-80, 80, 2)])
        cov = _cover(
            h,
            w,
            [
                _stroke(
                    _bezier(ctrl),
                    _widths(rng, 48, 0.5, 2.5, False) * np.sin(np.linspace(0.1, np.pi - 0.1, 48)),
                )
            ],
        )
        _paint(canvas, cov * hair_fill, _jitter(rng, (90, 92, 110), 15))
    ys, xs = np.nonzero(body > 0.5)
    for _ in range(int(rng.integers(6, 14))):
        k = int(rng.integers(ys.size))
        p0 = np.array([xs[k], ys[k]], np.float64)
        ctrl = np.stack(
            [
                p0,
                p0 + rng.uniform(-50, 50, 2),
                p0 + rng.uniform(-90, 90, 2),
                p0 + rng.uniform(-120, 120, 2),
            ]
        )
        taper = np.sin(np.linspace(0.15, np.pi - 0.15, 48))
        cov = _cover(h, w, [_stroke(_bezier(ctrl), _widths(rng, 48, 0.8, 3.5, False) * taper)])
        _paint(canvas, cov, pal.ink)
        add_ink(cov)
    subject = body
    # Speech balloons and narration boxes, over everything.
    first_left = rng.random() < 0.5
    # At most one per top corner, so they never overlap.
    for k in range(min(int(rng.integers(0, 3)) + (theme == "manga"), 2)):
        left = first_left == (k % 2 == 0)
        b = _balloon(canvas, rng, pal.ink, theme == "manga" and k == 0, left)
        balloons = np.maximum(balloons, b)
    out: Image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return Drawing(
        out,
        theme,
        (subject > 0.5) & (balloons < 0.5) & (hair_fill < 0.5),
        (hair_fill > 0.5) & (balloons < 0.5),
        (hatch > 0.5) & (balloons < 0.5),
        (tone > 0.5) & (balloons < 0.5),
        balloons > 0.5,
        (ink > 0.5) & (balloons < 0.5),
    )


# -- censoring -----------------------------------------------------------------------------


def colour_for_theme(theme: str, rng: np.random.Generator) -> RGB:
    """The bar colour a censor might pick on a picture of ``theme``."""
    names = {
        "pastel": ("white", "white", "black", "grey"),
        "night": ("navy", "navy", "black"),
        "pink": ("light_pink", "light_pink", "black", "white"),
        "manga": ("black", "grey"),
        "plain": ("black", "black", "grey", "red", "blue", "yellow", "white"),
    }[theme]
    return BAR_COLOURS[names[int(rng.integers(len(names)))]]


def _in(mask: Mask, rng: np.random.Generator, margin: int) -> tuple[float, float]:
    """A random point of ``mask`` at least ``margin`` px from the image edge."""
    h, w = mask.shape
    inner = np.zeros_like(mask)
    inner[margin : h - margin, margin : w - margin] = mask[margin : h - margin, margin : w - margin]
    ys, xs = np.nonzero(inner)
    if ys.size == 0:
        return w / 2.0, h / 2.0
    k = int(rng.integers(ys.size))
    return float(xs[k]), float(ys[k])


def _snap(b: Box) -> Box:
    """Axis-aligned boxes get whole-pixel edges: hard-edged, as most paint tools draw them."""
    if b.angle % 90 != 0:
        return b
    length, thick = float(round(b.length)), float(round(b.thickness))
    wd, ht = (length, thick) if b.angle % 180 == 0 else (thick, length)
    cx = round(b.cx - wd / 2 + 0.5) + wd / 2 - 0.5
    cy = round(b.cy - ht / 2 + 0.5) + ht / 2 - 0.5
    return Box(cx, cy, length, thick, b.angle)


def bar_boxes(drawing: Drawing, rng: np.random.Generator, layout: str) -> list[Box]:
    """The bars of one censor ``layout`` placed on ``drawing`` (see ``LAYOUTS``)."""
    h, w = drawing.image.shape[:2]
    s = float(min(h, w))
    length = s * rng.uniform(0.16, 0.32)
    thick = s * rng.uniform(0.03, 0.075)
    axis = float(rng.choice([0.0, 90.0]))
    ang = float(rng.uniform(0, 180))
    margin = int(0.5 * length) + 4
    cx, cy = _in(drawing.subject, rng, margin)

    def along(a: float) -> NDArray[np.float64]:
        return np.array([np.cos(np.radians(a)), np.sin(np.radians(a))])

    if layout == "single":
        return [_snap(Box(cx, cy, length, thick, axis))]
    if layout == "rotated":
        return [Box(cx, cy, length, thick, ang)]
    if layout == "x":
        other = ang + rng.uniform(50, 130)
        return [
            Box(cx, cy, length, thick, ang),
            Box(cx, cy, length * rng.uniform(0.8, 1.2), thick * rng.uniform(0.8, 1.2), other),
        ]
    if layout in ("t", "l"):
        a = axis if rng.random() < 0.5 else ang
        first = Box(cx, cy, length, thick, a)
        t2 = thick * rng.uniform(0.8, 1.2)
        l2 = length * rng.uniform(0.6, 1.0)
        nrm = along(a + 90) * (1.0 if rng.random() < 0.5 else -1.0)
        if layout == "t":
            # The stem starts inside the crossbar's middle.
            c2 = np.array([cx, cy]) + nrm * (l2 / 2.0)
        else:
            end = np.array([cx, cy]) + along(a) * (length / 2.0 - t2 / 2.0)
            c2 = end + nrm * (l2 / 2.0 - thick / 2.0)
        second = Box(float(c2[0]), float(c2[1]), l2, t2, a + 90)
        return [_snap(first), _snap(second)] if a % 90 == 0 else [first, second]
    if layout == "stacked":
        a = axis if rng.random() < 0.5 else ang
        n = int(rng.integers(2, 5))
        th = s * rng.uniform(0.015, 0.04)
        gap = rng.uniform(2.0, 6.0)
        out: list[Box] = []
        for k in range(n):
            off = (k - (n - 1) / 2.0) * (th + gap)
            c = np.array([cx, cy]) + along(a + 90) * off + along(a) * rng.uniform(-8, 8)
            b = Box(float(c[0]), float(c[1]), length * rng.uniform(0.85, 1.1), th, a)
            out.append(_snap(b) if a % 90 == 0 else b)
        return out
    if layout == "fused":
        a = axis if rng.random() < 0.5 else ang
        l1, l2 = length * rng.uniform(0.5, 0.8), length * rng.uniform(0.5, 0.8)
        bend = float(rng.choice([0.0, rng.uniform(-25, 25)]))
        t2 = thick * rng.uniform(0.7, 1.3)
        start = np.array([cx, cy]) - along(a) * (l1 / 2.0)
        c1 = start + along(a) * (l1 / 2.0)
        joint = start + along(a) * (l1 - min(thick, t2) / 2.0)
        c2 = joint + along(a + bend) * (l2 / 2.0)
        b1 = Box(float(c1[0]), float(c1[1]), l1, thick, a)
        b2 = Box(float(c2[0]), float(c2[1]), l2, t2, a + bend)
        if a % 90 == 0 and bend == 0:
            return [_snap(b1), _snap(b2)]
        return [b1, b2]
    if layout == "edge":
        # Where the figure runs off the picture: the bar covers it there, cut by the edge
        # either across its length or along it.
        rim = np.zeros_like(drawing.subject)
        rim[:2], rim[-2:], rim[:, :2], rim[:, -2:] = True, True, True, True
        ys, xs = np.nonzero(drawing.subject & rim)
        if ys.size:
            k = int(rng.integers(ys.size))
            px, py = float(xs[k]), float(ys[k])
        else:
            px, py = float(rng.uniform(0, w)), float(h - 1)
        side = int(np.argmin([px, w - 1 - px, py, h - 1 - py]))  # left, right, top, bottom
        cut = rng.uniform(0.2, 0.5)
        across = rng.random() < 0.5
        extent = length if across else thick
        inward = extent * (0.5 - cut)
        if side in (0, 1):
            x = -0.5 + inward if side == 0 else w - 0.5 - inward
            box = Box(x, py, length, thick, 0.0 if across else 90.0)
        else:
            y = -0.5 + inward if side == 2 else h - 0.5 - inward
            box = Box(px, y, length, thick, 90.0 if across else 0.0)
        return [_snap(box)]
    if layout == "outline":
        # The candidate whose rim runs along the most ink: a bar touching dark outlines.
        best: tuple[float, Box] | None = None
        ink = drawing.ink.astype(np.uint8)
        for _ in range(30):
            x, y = _in(drawing.subject, rng, margin)
            b = Box(x, y, length, thick, float(rng.choice([axis, ang])))
            b = _snap(b) if b.angle % 90 == 0 else b
            inside = _box_cover(h, w, b) > 0
            rim = cv2.dilate(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            rim &= ~inside
            score = float(ink[rim].mean()) if rim.any() else 0.0
            if best is None or score > best[0]:
                best = (score, b)
        assert best is not None
        return [best[1]]
    if layout == "hatch":
        where = drawing.hatch if drawing.hatch.any() else drawing.subject
        x, y = _in(where, rng, margin)
        return [_snap(Box(x, y, length, thick, float(rng.choice([axis, ang]))))]
    raise ValueError(f"unknown layout {layout!r}")


def _box_cover(h: int, w: int, b: Box) -> Cover:
    return _bars_cover(h, w, [b])


def _bars_cover(h: int, w: int, boxes: Sequence[Box]) -> Cover:
    """Exact 4x4-supersampled coverage of the union of rotated rectangles.

    Half-plane tests per sub-sample, so whole-pixel axis-aligned edges come out hard with no
    fringe, and where bars meet the coverage is the union's (a pixel half under each of two
    bars is fully covered).
    """
    out = np.zeros((h, w), np.float32)
    corners = np.concatenate([_box_poly(b) for b in boxes])
    x0 = max(int(np.floor(corners[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(corners[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + 2, w)
    y1 = min(int(np.ceil(corners[:, 1].max())) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return out
    sub = (np.arange(_SS) + 0.5) / _SS - 0.5
    xs = (np.arange(x0, x1)[:, None] + sub[None, :]).ravel()[None, :]
    ys = (np.arange(y0, y1)[:, None] + sub[None, :]).ravel()[:, None]
    inside = np.zeros((ys.size, xs.size), bool)
    for b in boxes:
        ca, sa = np.cos(np.radians(b.angle)), np.sin(np.radians(b.angle))
        dx, dy = xs - b.cx, ys - b.cy
        along = np.abs(dx * ca + dy * sa) < b.length / 2
        across = np.abs(dy * ca - dx * sa) < b.thickness / 2
        inside |= along & across
    out[y0:y1, x0:x1] = inside.reshape(y1 - y0, _SS, x1 - x0, _SS).mean(axis=(1, 3))
    return out


def _apply_bars(rgb: Image, cover: Cover, colour: RGB) -> Image:
    canvas = rgb.astype(np.float32)
    _paint(canvas, cover, colour)
    out: Image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return out


def censor_bars(
    drawing: Drawing, seed: int, layout: str, colour: RGB | str | None = None
) -> Censored:
    """``drawing`` censored with the bars of ``layout`` in one flat ``colour``.

    ``colour`` is an RGB triple, a name in ``BAR_COLOURS``, or None for one that suits the
    theme. Rotated bars are anti-aliased, axis-aligned ones hard-edged.
    """
    rng = np.random.default_rng(seed)
    if colour is None:
        colour = colour_for_theme(drawing.theme, rng)
    elif isinstance(colour, str):
        colour = BAR_COLOURS[colour]
    h, w = drawing.image.shape[:2]
    boxes = bar_boxes(drawing, rng, layout)
    cov = _bars_cover(h, w, boxes)
    img = _apply_bars(drawing.image, cov, colour)
    return Censored(
        drawing.image,
        img,
        cov >= 0.5,
        cov > 0,
        np.zeros((h, w), bool),
        colour,
        tuple(boxes),
        0,
        (0, 0),
        f"bars/{layout}",
    )


# Free placement (``censor_free``): bars as people lay them when no layout guides them.
FREE_KINDS = ("multi", "rim", "aa", "thin")
# Page-like sizes (height, width), unlike the layouts' squares.
FREE_SIZES: tuple[tuple[int, int], ...] = ((900, 1300), (1400, 1000), (700, 700), (1200, 1200))
FREE_COLOURS: tuple[RGB, ...] = (
    (0, 0, 0),
    (255, 255, 255),
    (20, 20, 30),
    (240, 240, 240),
    (200, 30, 40),
    (30, 60, 160),
    (128, 128, 128),
    (250, 180, 200),
)


def censor_free(drawing: Drawing, seed: int, kind: str) -> Censored:
    """``drawing`` censored with bars laid freely over its figure, as ``kind`` says:

    ``multi``: 2-4 bars at any angle in -60..60 degrees, anywhere, crossing or not;
    ``rim``: one bar inside a 3 px rim of the opposite lightness (black or white);
    ``aa``: one bar at any angle in -60..60 degrees;
    ``thin``: 3-5 bars 1.2-2 % of the short side thick (most tools' thinnest brush).
    Colour from ``FREE_COLOURS``; all anti-aliased. The rim counts as bar in the truth.
    """
    if kind not in FREE_KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    rng = np.random.default_rng(seed)
    h, w = drawing.image.shape[:2]
    s = float(min(h, w))
    colour = FREE_COLOURS[int(rng.integers(len(FREE_COLOURS)))]
    n = {"multi": int(rng.integers(2, 5)), "rim": 1, "aa": 1, "thin": int(rng.integers(3, 6))}
    canvas = drawing.image.astype(np.float32)
    cover = np.zeros((h, w), np.float32)
    boxes: list[Box] = []
    ys, xs = np.nonzero(drawing.subject)
    for _ in range(n[kind]):
        k = int(rng.integers(ys.size))
        length = s * rng.uniform(0.12, 0.35)
        thick = s * (rng.uniform(0.012, 0.02) if kind == "thin" else rng.uniform(0.025, 0.07))
        if kind in ("aa", "multi"):
            angle = float(rng.uniform(-60, 60))
        else:
            angle = float(rng.choice([0.0, 90.0, 15.0, -20.0]))
        bar = Box(float(xs[k]), float(ys[k]), length, thick, angle)
        if kind == "rim":
            rim = _box_cover(h, w, bar._replace(length=length + 6, thickness=thick + 6))
            _paint(canvas, rim, (255, 255, 255) if sum(colour) < 300 else (0, 0, 0))
            cover = np.maximum(cover, rim)
        one = _box_cover(h, w, bar)
        _paint(canvas, one, colour)
        cover = np.maximum(cover, one)
        boxes.append(bar)
    img: Image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    none = np.zeros((h, w), bool)
    return Censored(
        drawing.image,
        img,
        cover >= 0.5,
        cover > 0,
        none,
        colour,
        tuple(boxes),
        0,
        (0, 0),
        f"free/{kind}",
    )


def _pixelate(rgb: Image, block: int, phase: tuple[int, int], region: Cover) -> tuple[Image, Mask]:
    """Cells (on a ``block`` grid offset by ``phase`` = (x, y)) whose centre lies in
    ``region`` become their mean colour, as censoring tools do; returns (image, truth)."""
    h, w = rgb.shape[:2]
    px, py = phase[0] % block, phase[1] % block
    ox, oy = (px - block if px else 0), (py - block if py else 0)
    nw, nh = -(-(w - ox) // block), -(-(h - oy) // block)
    pad = np.zeros((nh * block, nw * block, 3), np.float64)
    cnt = np.zeros((nh * block, nw * block), np.float64)
    pad[-oy : -oy + h, -ox : -ox + w] = rgb
    cnt[-oy : -oy + h, -ox : -ox + w] = 1.0
    sums = pad.reshape(nh, block, nw, block, 3).sum(axis=(1, 3))
    n = cnt.reshape(nh, block, nw, block).sum(axis=(1, 3))
    means = np.clip(sums / np.maximum(n, 1.0)[:, :, None] + 0.5, 0, 255).astype(np.uint8)
    ccx = np.clip(ox + block * np.arange(nw) + block // 2, 0, w - 1)
    ccy = np.clip(oy + block * np.arange(nh) + block // 2, 0, h - 1)
    cells = region[np.ix_(ccy, ccx)] >= 0.5
    up = np.repeat(np.repeat(cells, block, 0), block, 1)[-oy : -oy + h, -ox : -ox + w]
    pix = np.repeat(np.repeat(means, block, 0), block, 1)[-oy : -oy + h, -ox : -ox + w]
    out = rgb.copy()
    out[up] = pix[up]
    return out, np.ascontiguousarray(up)


def _mosaic_region(
    subject: Mask, rng: np.random.Generator, avoid: Mask | None, scale: tuple[float, float]
) -> Cover:
    h, w = subject.shape
    s = float(min(h, w))
    for _ in range(40):
        rx, ry = s * rng.uniform(*scale), s * rng.uniform(*scale)
        x, y = _in(subject, rng, int(max(rx, ry)) + 2)
        if rng.random() < 0.5:
            poly = _box_poly(Box(x, y, 2 * rx, 2 * ry, 0.0))
        else:
            poly = _blob(rng, (x, y), (rx, ry), rng.uniform(0, 180), 0.05)
        region = _cover(h, w, [poly])
        if avoid is None or not (region > 0)[avoid].any():
            return region
    raise ValueError("no room for a mosaic region away from the bars")


def censor_mosaic(
    picture: Drawing | Image, seed: int, block: int, phase: tuple[int, int] | None = None
) -> Censored:
    """One region pixelated on a ``block`` px grid offset by ``phase`` (x, y; random if
    None): over the figure of a ``Drawing``, anywhere away from the edges of a plain image."""
    rng = np.random.default_rng(seed)
    if phase is None:
        phase = (int(rng.integers(block)), int(rng.integers(block)))
    if isinstance(picture, Drawing):
        rgb, subject, scale = picture.image, picture.subject, (0.08, 0.18)
    else:
        rgb, subject, scale = picture, np.ones(picture.shape[:2], bool), (0.1, 0.22)
    region = _mosaic_region(subject, rng, None, scale)
    img, truth = _pixelate(rgb, block, phase, region)
    none = np.zeros_like(truth)
    return Censored(rgb, img, none, none, truth, None, (), block, phase, f"mosaic/b{block}")


def censor_both(
    drawing: Drawing, seed: int, layout: str, colour: RGB | str | None, block: int
) -> Censored:
    """Bars of ``layout`` and a mosaic of ``block`` px elsewhere on the same picture."""
    bars = censor_bars(drawing, seed, layout, colour)
    rng = np.random.default_rng(seed + 7919)
    phase = (int(rng.integers(block)), int(rng.integers(block)))
    # Keep a cell's width plus a margin between the two, so the truths stay separate.
    k = 2 * block + 9
    avoid = cv2.dilate(bars.bar_touch.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    region = _mosaic_region(drawing.subject, rng, avoid, (0.07, 0.14))
    img, truth = _pixelate(bars.image, block, phase, region)
    return bars._replace(
        image=img, mosaic=truth, block=block, phase=phase, label=f"both/{layout}/b{block}"
    )


def brush_green(rgb: Image, seed: int, region: Mask | None = None) -> tuple[Image, Cover]:
    """Green painted by hand with a soft brush: over ``region`` (grown a little) if given,
    else along a random thick brush path. Returns (painted image, brush alpha)."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    s = float(min(h, w))
    if region is not None:
        r = int(rng.integers(1, 5))
        core = cv2.dilate(region.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8))
        hard = core.astype(np.float32)
    else:
        big = np.zeros((h * _SS, w * _SS), np.uint8)
        p0 = rng.uniform((0.3 * w, 0.35 * h), (0.7 * w, 0.75 * h))
        ctrl = np.stack([p0 + rng.uniform(-0.15 * s, 0.15 * s, 2) for _ in range(4)])
        pts = np.round((_bezier(ctrl, 32) * _SS + 1.5) * (1 << _SHIFT)).astype(np.int32)
        width = int(s * rng.uniform(0.04, 0.09) * _SS)
        cv2.polylines(big, [pts], False, 255, width, cv2.LINE_8, _SHIFT)
        hard = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    sigma = rng.uniform(0.8, 2.5)
    blurred = cv2.GaussianBlur(hard, (0, 0), sigma)
    # The brush's core is solid: blur only widens the edge, never thins the middle.
    alpha: Cover = np.maximum(blurred, hard >= 1.0).astype(np.float32)
    canvas = rgb.astype(np.float32)
    _paint(canvas, alpha, GREEN)
    out: Image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return out, alpha


# -- bytes ---------------------------------------------------------------------------------


def png_bytes(rgb: Image) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def jpeg_bytes(rgb: Image, quality: int) -> bytes:
    """JPEG as most apps save it (4:2:0 chroma subsampling)."""
    buf = io.BytesIO()
    PILImage.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode(data: bytes) -> Image:
    with PILImage.open(io.BytesIO(data)) as im:
        out: Image = np.asarray(im.convert("RGB")).copy()
    return out


def jpeg(rgb: Image, quality: int) -> Image:
    return decode(jpeg_bytes(rgb, quality))
