"""Deterministic, drawn-in-code test scenes and censoring.

Everything here is synthetic so tests and benchmarks have exact ground truth and never need
real artwork. Scenes imitate the statistics that matter to the detectors: flat fills, smooth
shading, anti-aliased black outlines, gradients, and a little regular texture.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]

BLACK = (0, 0, 0)
WHITE = (255, 255, 255)
PINK = (255, 105, 180)
GREEN = (0, 255, 0)

_SKIN = ((255, 224, 196), (250, 206, 180), (240, 190, 160), (225, 172, 140))
_SHIFT = 4  # sub-pixel precision of cv2 drawing calls
_ONE = 1 << _SHIFT


class SampleImage(NamedTuple):
    """The project's shipped demo: one scene, clean and censored (a bar and a mosaic)."""

    clean: Image
    censored: Image
    bar_mask: Mask
    mosaic_mask: Mask


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    if rng.random() < 0.4:
        return _SKIN[int(rng.integers(len(_SKIN)))]
    c = rng.integers(30, 246, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def _background(rng: np.random.Generator, h: int, w: int) -> NDArray[np.float32]:
    kind = int(rng.integers(3))
    c0 = np.array(_colour(rng), np.float32)
    c1 = np.array(_colour(rng), np.float32)
    if kind == 0:
        return np.full((h, w, 3), c0, np.float32)
    if kind == 1:
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        return np.repeat(c0 + (c1 - c0) * t, w, axis=1)
    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    r = np.clip(np.sqrt(yy * yy + xx * xx) / 1.42, 0.0, 1.0)[:, :, None]
    radial: NDArray[np.float32] = (c0 + (c1 - c0) * r).astype(np.float32)
    return radial


def _composite_shape(
    canvas: NDArray[np.float32],
    rng: np.random.Generator,
    pts: NDArray[np.int32] | None,
    ellipse: tuple[tuple[int, int], tuple[int, int], float] | None,
    outline: int,
) -> None:
    """Draw a filled shape (flat or shaded) with an anti-aliased outline, in place."""
    h, w = canvas.shape[:2]
    if pts is not None:
        xs, ys = pts[:, 0] >> _SHIFT, pts[:, 1] >> _SHIFT
        x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    else:
        assert ellipse is not None
        (cx, cy), (ax, ay), ang = ellipse
        r = max(ax, ay)
        x0, x1, y0, y1 = cx - r, cx + r, cy - r, cy + r
    pad = outline + 2
    x0, y0 = max(x0 - pad, 0), max(y0 - pad, 0)
    x1, y1 = min(x1 + pad + 1, w), min(y1 + pad + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    # Drawing only the bounding box keeps a 1024px scene well under 100 ms.
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    line = np.zeros_like(alpha)
    if pts is not None:
        local = pts - np.array([x0 * _ONE, y0 * _ONE], np.int32)
        cv2.fillPoly(alpha, [local], 255, cv2.LINE_AA, _SHIFT)
        if outline > 0:
            cv2.polylines(line, [local], True, 255, outline, cv2.LINE_AA, _SHIFT)
    else:
        c = (cx - x0, cy - y0)
        cv2.ellipse(alpha, c, (ax, ay), ang, 0, 360, 255, -1, cv2.LINE_AA)
        if outline > 0:
            cv2.ellipse(line, c, (ax, ay), ang, 0, 360, 255, outline, cv2.LINE_AA)
    roi_a = alpha.astype(np.float32)[:, :, None] * (1.0 / 255.0)
    base = np.array(_colour(rng), np.float32)
    if rng.random() < 0.55:
        # Smooth shading: a linear ramp in a random direction, like cel art's soft light.
        th = rng.uniform(0, 2 * np.pi)
        yy = np.arange(y1 - y0, dtype=np.float32)[:, None] / max(y1 - y0, 1)
        xx = np.arange(x1 - x0, dtype=np.float32)[None, :] / max(x1 - x0, 1)
        ramp = (np.cos(th) * xx + np.sin(th) * yy)[:, :, None]
        fill = base * (1.0 - rng.uniform(0.15, 0.4) * (ramp - ramp.min()))
    else:
        fill = np.broadcast_to(base, (y1 - y0, x1 - x0, 3))
    roi = canvas[y0:y1, x0:x1]
    roi += (fill - roi) * roi_a
    if outline > 0:
        la = line.astype(np.float32)[:, :, None] * (1.0 / 255.0)
        roi += (20.0 - roi) * la


def draw_scene(seed: int, size: tuple[int, int] = (512, 512)) -> Image:
    """Draw a deterministic anime-like scene: shapes, shading, outlines, strokes, texture."""
    rng = np.random.default_rng(seed)
    h, w = size
    s = min(h, w)
    canvas = _background(rng, h, w)
    for _ in range(int(rng.integers(5, 9))):
        if rng.random() < 0.5:
            ax = int(rng.uniform(0.08, 0.3) * s)
            ay = int(rng.uniform(0.08, 0.3) * s)
            cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
            ell = ((cx, cy), (ax, ay), float(rng.uniform(0, 180)))
            _composite_shape(canvas, rng, None, ell, int(rng.integers(1, 4)))
        else:
            n = int(rng.integers(3, 7))
            c = rng.uniform((0, 0), (w, h))
            rad = rng.uniform(0.08, 0.3) * s
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rr = rad * rng.uniform(0.6, 1.0, n)
            poly = np.stack([c[0] + rr * np.cos(ang), c[1] + rr * np.sin(ang)], 1)
            pts = np.round(poly * _ONE).astype(np.int32)
            _composite_shape(canvas, rng, pts, None, int(rng.integers(1, 4)))
    strokes = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(4, 10))):
        # Hair-like strands: a smooth quadratic curve sampled into a polyline.
        p0, p1, p2 = rng.uniform((0, 0), (w, h), size=(3, 2))
        t = np.linspace(0, 1, 24)[:, None]
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2
        pts = np.round(curve * _ONE).astype(np.int32)
        cv2.polylines(strokes, [pts], False, 255, int(rng.integers(1, 4)), cv2.LINE_AA, _SHIFT)
    if rng.random() < 0.7:
        # A patch of hatching, the kind of fine regular texture fabric or shadows get.
        x0, y0 = int(rng.uniform(0, w * 0.7)), int(rng.uniform(0, h * 0.7))
        pw, ph = int(rng.uniform(0.1, 0.25) * s), int(rng.uniform(0.1, 0.25) * s)
        step = int(rng.integers(4, 9))
        for k in range(-ph, pw, step):
            a = ((x0 + k) * _ONE, y0 * _ONE)
            b = ((x0 + k + ph) * _ONE, (y0 + ph) * _ONE)
            cv2.line(strokes, a, b, 160, 1, cv2.LINE_AA, _SHIFT)
    ys, xs = np.nonzero(strokes)
    sa = strokes[ys, xs].astype(np.float32)[:, None] * (1.0 / 255.0)
    canvas[ys, xs] += (25.0 - canvas[ys, xs]) * sa
    out: Image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return out


def add_bars(
    rgb: Image,
    rng: np.random.Generator,
    count: int,
    colour: tuple[int, int, int],
    angle: float,
    *,
    length_frac: tuple[float, float] = (0.15, 0.35),
    thickness_frac: tuple[float, float] = (0.04, 0.09),
) -> tuple[Image, Mask]:
    """Paint ``count`` solid, hard-edged, non-overlapping bars; return (censored, truth mask)."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    out = rgb.copy()
    truth = np.zeros((h, w), np.uint8)
    # Bars that touch would merge into one non-rectangular blob; real censors space them out.
    keepout = np.zeros((h, w), np.uint8)
    placed = 0
    for _ in range(count * 40):
        if placed == count:
            break
        length = rng.uniform(*length_frac) * s
        thick = rng.uniform(*thickness_frac) * s
        half = 0.5 * np.hypot(length, thick) + 2
        cx = rng.uniform(half, w - half)
        cy = rng.uniform(half, h - half)
        box = cv2.boxPoints(((cx, cy), (length, thick), angle))
        pts = np.round(box).astype(np.int32)
        one = np.zeros((h, w), np.uint8)
        cv2.fillPoly(one, [pts], 1)
        if (one & keepout).any():
            continue
        truth |= one
        keepout |= np.asarray(cv2.dilate(one, np.ones((9, 9), np.uint8)), np.uint8)
        placed += 1
    m = truth.astype(bool)
    out[m] = colour
    return out, m


def _cell_means(
    rgb: Image, block: int, phase: tuple[int, int]
) -> tuple[NDArray[np.float32], int, int]:
    """Mean colour per grid cell (cells clipped to the image); also the grid's origin."""
    h, w = rgb.shape[:2]
    px, py = phase[0] % block, phase[1] % block
    ox, oy = px - block if px else 0, py - block if py else 0
    nw = -(-(w - ox) // block)
    nh = -(-(h - oy) // block)
    pad = np.zeros((nh * block, nw * block, 3), np.float32)
    cnt = np.zeros((nh * block, nw * block), np.float32)
    pad[-oy : -oy + h, -ox : -ox + w] = rgb
    cnt[-oy : -oy + h, -ox : -ox + w] = 1.0
    sums = pad.reshape(nh, block, nw, block, 3).sum(axis=(1, 3))
    n = cnt.reshape(nh, block, nw, block).sum(axis=(1, 3))
    return sums / np.maximum(n, 1.0)[:, :, None], ox, oy


def add_mosaic(
    rgb: Image,
    rng: np.random.Generator,
    block: int,
    phase: tuple[int, int],
) -> tuple[Image, Mask]:
    """Pixelate a random rectangle or ellipse on a ``block`` grid offset by ``phase`` (x, y).

    Each cell whose centre falls in the region becomes its mean colour, as censoring tools do,
    so the truth mask is a union of whole (image-clipped) cells.
    """
    h, w = rgb.shape[:2]
    means, ox, oy = _cell_means(rgb, block, phase)
    nh, nw = means.shape[:2]
    rw = rng.uniform(0.2, 0.45) * w
    rh = rng.uniform(0.2, 0.45) * h
    cx = rng.uniform(rw / 2, w - rw / 2)
    cy = rng.uniform(rh / 2, h - rh / 2)
    ccx = ox + block * np.arange(nw) + (block - 1) / 2.0
    ccy = oy + block * np.arange(nh) + (block - 1) / 2.0
    dx = (ccx[None, :] - cx) / (rw / 2)
    dy = (ccy[:, None] - cy) / (rh / 2)
    if rng.random() < 0.5:
        cells = (np.abs(dx) <= 1.0) & (np.abs(dy) <= 1.0)
    else:
        cells = dx * dx + dy * dy <= 1.0
    up = np.repeat(np.repeat(cells, block, 0), block, 1)
    m = up[-oy : -oy + h, -ox : -ox + w]
    pix = np.repeat(np.repeat(np.clip(means + 0.5, 0, 255).astype(np.uint8), block, 0), block, 1)
    out = rgb.copy()
    out[m] = pix[-oy : -oy + h, -ox : -ox + w][m]
    return out, np.ascontiguousarray(m)


def jpeg(rgb: Image, quality: int = 75) -> Image:
    """Round-trip through JPEG, the noise every image posted to a chat picks up."""
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert dec is not None
    out: Image = np.ascontiguousarray(dec[:, :, ::-1])
    return out


def sample_image() -> SampleImage:
    """The fixed demo scene (768x768) with one black bar and one mosaic region."""
    clean = draw_scene(20240611, (768, 768))
    rng = np.random.default_rng(7)
    barred, bar_mask = add_bars(clean, rng, 1, BLACK, 12.0)
    censored, mosaic_mask = add_mosaic(barred, rng, 16, (5, 11))
    # The two censors must not overlap, or the truth masks stop describing the picture.
    mosaic_mask &= ~bar_mask
    censored[bar_mask] = BLACK
    return SampleImage(clean, censored, bar_mask, mosaic_mask)
