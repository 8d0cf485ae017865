"""Quality of the cpu backend's real pipeline on drawn art censored the way art is censored.

Run from the repository root: ``python bench/quality.py`` (``PYTHONPATH=.`` until the project
is installed). ``--only bars,mosaic`` runs some sections (bars, mosaic, green, uncensored,
both, free) for a quicker look while tuning one detector. ``--legacy`` adds the older section on
synthetic scenes and scikit-image samples that calls the detectors directly (detection IoU,
fill methods compared). ``--seed-base N`` (default 1000) moves every seed: pictures are drawn
from N + i, bars from N + 1000 + i, and so on, so ``--seed-base 5000`` is a held-out set no
detector was tuned on; the default run's pictures stay as they were. ``--variety`` also
jitters the bar colours off the fixed list and draws JPEG qualities from 80-95.

Pictures come from ``workers.imageops.drawn`` (fixed seeds, drawn in code: ink outlines of
varying width, hatching, screentone, cel shading, hair masses, speech balloons; no real
artwork, no people) and, for mosaic, from scikit-image's photo-like samples (coffee,
chelsea, rocket, immunohistochemistry). Every case goes through the functions the workers
run, ``workers.pipeline.mask_bars`` then ``inpaint_green`` (bar mode), ``restore_mosaic``
(mosaic mode), ``inpaint_green`` alone (pre-masked) and ``auto`` then ``inpaint_green`` when
it finds bars (auto mode, when ``workers.pipeline.auto`` exists), with
``workers.cpu_backend``'s classes and default ``Limits``, fed PNG or JPEG bytes as users
upload them (JPEG at quality 80, 90 or 95, made after censoring). Whatever detectors are in
the tree when it runs are what it measures.

The ``free`` section is the outside view: bars laid freely, not after the compound layouts
the detector's rules were written from (``drawn.censor_free``: several bars at any angle,
crossing or not, a bar inside a contrasting rim, one anti-aliased bar, thin bars 1.2-2 % of
the short side), on page-sized pictures (700x700 to 1000x1400) in PNG and JPEG 80-92, with
16 of the same pictures uncensored for false detections.

Figures, per case and averaged:

- **bar recall**: of the true bar's pixels (those a bar covers at least half of), the share
  the hent-AI stage painted pure green (0, 255, 0), i.e. the share the pipeline replaces.
  A bar pixel it leaves unpainted keeps its bar colour in the output. A picture where
  nothing is found (``NoCensoredRegionsFound``) has recall 0. In auto mode, the same on
  ``auto``'s output.
- **PSNR gain**: PSNR against the clean picture inside the censored region (bars: every
  pixel a bar touches, anti-aliased fringe included; mosaic: every pixelated cell; pre-masked:
  every pixel the brush touched, alpha > 0.02) of the pipeline's output, minus that of the
  input it was given, each PSNR capped at 40 dB (a fill that close is exact to the eye, and
  an uncapped perfect fill of a flat area would outweigh every other case in a mean of dB).
  An answer with an error counts as the input unchanged (gain 0).
- **mosaic recall** ("recall" in the mosaic tables, "mos rec" in auto's): the share of the
  pixelated cells' pixels whose value the pipeline changed.
- **changed outside**: of the pixels more than 4 px from the censored region, the share
  whose value in the output differs from the decoded input. 4 px allows the backend's
  stated growth of bar masks (2 px) and JPEG ringing; anything beyond is a false change.
- **changed on uncensored pictures**: the share of pixels whose value differs between the
  output and the decoded input, per mode (bar: mask_bars + inpaint_green; mosaic; auto);
  ``NoCensoredRegionsFound`` counts as 0, the right answer.
- pre-masked only: **core recall** (brush alpha >= 0.5 changed), **edge recall** (0.1 <=
  alpha < 0.5 changed: the soft brush edge joins the mask) and **green left** (share of the
  brushed region still clearly greener in the output than in the clean picture).

Prints every case (a note says which part of the drawing, hair, balloon, tone, hatch,
figure or background, most stray changes fall in), then a table of figures against the
targets of issue 9, then one JSON line. About 100 CPU seconds: under 2 minutes on two idle
cores, longer when other work shares them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from skimage import data as skdata
from skimage.metrics import structural_similarity

from erogaki_common.errors import ProcessingError
from erogaki_common.images import Limits
from workers import imageops, pipeline
from workers.cpu_backend import CpuDeepCreamPy, CpuHentai
from workers.imageops import drawn
from workers.imageops import synthetic as syn

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]

HENTAI = CpuHentai()
DCP = CpuDeepCreamPy()
LIMITS = Limits()
MARGIN_PX = 4
# A fill closer than this to the truth is as good as exact on drawn art; without a cap, one
# bar over a flat background (err ~ 0) would outweigh dozens of cases in a mean of dB.
PSNR_CAP_DB = 40.0
JPEG_QS = (80, 90, 95)
SIZES = drawn.BENCH_SIZES
SCHEMES = drawn.BENCH_SCHEMES
BAR_CASES = 40
MOSAIC_CASES = 24
MOSAIC_BLOCKS = (6, 8, 10, 12, 14, 16, 18, 20, 24)
GREEN_CASES = 16
UNCENSORED = 20
BOTH_CASES = 12
PHOTOS = ("coffee", "chelsea", "rocket", "immunohistochemistry")
PHOTO_BLOCKS = ((8, 16, 24), (6, 12, 20), (10, 14, 18), (8, 12, 24))
FREE_CASES = 48
FREE_CLEAN = 16
SECTIONS = ("bars", "mosaic", "green", "uncensored", "both", "free")
DEFAULT_SEED_BASE = 1000


@dataclass
class Options:
    """What ``--seed-base`` and ``--variety`` change; the defaults give the reference run."""

    # Added to every seed a section uses (pictures 1000+i, bars 2000+i, ... by default), so
    # that a held-out run draws pictures and censors no detector was tuned on.
    shift: int = 0
    # Bar colours jittered off the fixed list (up to 48 levels a channel) and JPEG quality
    # drawn from 80-95 instead of 80/90/95 in turn: colours and codings never tuned on.
    variety: bool = False


OPTS = Options()


def seed(n: int) -> int:
    return n + OPTS.shift


def jpeg_variant(i: int, salt: int) -> str:
    """The JPEG variant of case ``i``: 80/90/95 in turn, or (variety) any quality 80-95."""
    if not OPTS.variety:
        return f"jpeg{JPEG_QS[i % len(JPEG_QS)]}"
    return f"jpeg{int(np.random.default_rng(seed(salt + i)).integers(80, 96))}"


def bar_colour(i: int, name: str) -> tuple[str, drawn.RGB]:
    """Case ``i``'s bar colour: the named one, or (variety) one near it; (label, RGB)."""
    rgb = drawn.BAR_COLOURS[name]
    if not OPTS.variety:
        return name, rgb
    rng = np.random.default_rng(seed(7000 + i))
    d = rng.integers(-48, 49, size=3)
    r, g, b = (int(np.clip(rgb[k] + d[k], 0, 255)) for k in range(3))
    return name, (r, g, b)


# -- running the pipeline ------------------------------------------------------------------


@dataclass
class Result:
    out: Image  # the final picture (the input when an error was answered)
    found: Mask  # pixels the hent-AI stage painted pure green (bars)
    error: str = ""


def _green(rgb: Image) -> Mask:
    m: Mask = (rgb[:, :, 0] == 0) & (rgb[:, :, 1] == 255) & (rgb[:, :, 2] == 0)
    return m


def _none(inp: Image) -> Mask:
    return np.zeros(inp.shape[:2], bool)


def run_bar(data: bytes, inp: Image) -> Result:
    try:
        masked = pipeline.mask_bars(data, HENTAI, LIMITS, {})
    except ProcessingError as e:
        return Result(inp, _none(inp), str(e.name))
    found = _green(drawn.decode(masked))
    try:
        return Result(drawn.decode(pipeline.inpaint_green(masked, DCP, LIMITS, {})), found)
    except ProcessingError as e:
        return Result(inp, found, str(e.name))


def run_mosaic(data: bytes, inp: Image) -> Result:
    try:
        return Result(drawn.decode(pipeline.restore_mosaic(data, HENTAI, LIMITS, {})), _none(inp))
    except ProcessingError as e:
        return Result(inp, _none(inp), str(e.name))


def run_masked(data: bytes, inp: Image) -> Result:
    try:
        return Result(drawn.decode(pipeline.inpaint_green(data, DCP, LIMITS, {})), _none(inp))
    except ProcessingError as e:
        return Result(inp, _none(inp), str(e.name))


AUTO: Callable[..., Any] | None = getattr(pipeline, "auto", None)


def run_auto(data: bytes, inp: Image) -> Result:
    assert AUTO is not None
    try:
        answer = AUTO(data, HENTAI, LIMITS, {})
    except ProcessingError as e:
        return Result(inp, _none(inp), str(e.name))
    # ``auto`` answers the PNG and whether bars went on to inpainting; a bare PNG is read
    # the same way, bars being its pure-green pixels.
    png, bars_left = answer if isinstance(answer, tuple) else (answer, None)
    first = drawn.decode(png)
    found = _green(first)
    if bars_left is None:
        bars_left = bool(found.any())
    if not bars_left:
        return Result(first, found)
    try:
        return Result(drawn.decode(pipeline.inpaint_green(png, DCP, LIMITS, {})), found)
    except ProcessingError as e:
        return Result(first, found, str(e.name))


# -- figures ------------------------------------------------------------------------------


def psnr(img: Image, clean: Image, region: Mask) -> float:
    diff = img[region].astype(np.float64) - clean[region].astype(np.float64)
    err = float((diff**2).mean())
    return min(float(10.0 * np.log10(255.0**2 / max(err, 1e-9))), PSNR_CAP_DB)


def gain(out: Image, inp: Image, clean: Image, region: Mask) -> float:
    return psnr(out, clean, region) - psnr(inp, clean, region)


def changed(out: Image, inp: Image) -> Mask:
    c: Mask = (out != inp).any(axis=2)
    return c


def far_from(region: Mask) -> Mask:
    dist = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 5)
    far: Mask = dist > MARGIN_PX
    return far


def changed_outside(out: Image, inp: Image, region: Mask) -> float:
    far = far_from(region)
    return float(changed(out, inp)[far].mean()) if far.any() else 0.0


def recall(found: Mask, truth: Mask) -> float:
    return float((found & truth).sum() / max(int(truth.sum()), 1))


@dataclass
class Section:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, dict[str, float], str]] = field(default_factory=list)

    def add(self, name: str, figures: dict[str, float], note: str = "") -> None:
        self.rows.append((name, figures, note))

    def values(self, column: str, where: Callable[[str], bool] = lambda _: True) -> list[float]:
        return [f[column] for n, f, _ in self.rows if column in f and where(n)]

    def mean(self, column: str, where: Callable[[str], bool] = lambda _: True) -> float:
        v = self.values(column, where)
        return float(np.mean(v)) if v else float("nan")

    def print(self) -> None:
        width = max([len(n) for n, _, _ in self.rows] + [len(self.title)])
        print(f"\n== {self.title}")
        print(f"{'case':<{width}}  " + "  ".join(f"{c:>10}" for c in self.columns) + "  note")
        for name, f, note in self.rows:
            cells = "  ".join(f"{_fmt(c, f.get(c)):>10}" for c in self.columns)
            print(f"{name:<{width}}  {cells}  {note}")


def _fmt(column: str, v: float | None) -> str:
    if v is None:
        return "-"
    if column.endswith("%"):
        return f"{100 * v:.3f}"
    if column.endswith("dB"):
        return f"{v:+.2f}"
    return f"{v:.3f}"


# -- cases --------------------------------------------------------------------------------


def bytes_of(img: Image, variant: str) -> tuple[bytes, Image]:
    """What the user uploads, and what the pipeline will decode from it."""
    if variant == "png":
        return drawn.png_bytes(img), img
    data = drawn.jpeg_bytes(img, int(variant.removeprefix("jpeg")))
    return data, drawn.decode(data)


def pictures() -> list[drawn.Drawing]:
    out = []
    for i in range(BAR_CASES):
        theme = SCHEMES[_scheme(i)][0]
        out.append(drawn.draw_art(seed(1000 + i), SIZES[i % len(SIZES)], theme))
    return out


def _scheme(i: int) -> int:
    return drawn.bench_scheme(i)


def bench_bars(pics: list[drawn.Drawing], auto: Section | None) -> Section:
    sec = Section("bars (bar mode: mask_bars + inpaint_green)", ("recall", "gain dB", "out %"))
    for i, pic in enumerate(pics[:BAR_CASES]):
        layout = drawn.LAYOUTS[i % len(drawn.LAYOUTS)]
        colour, rgb = bar_colour(i, SCHEMES[_scheme(i)][1])
        cen = drawn.censor_bars(pic, seed(2000 + i), layout, rgb)
        for variant in ("png", jpeg_variant(i, 8000)):
            data, inp = bytes_of(cen.image, variant)
            res = run_bar(data, inp)
            name = f"{i:02d} {layout}/{colour}/{pic.theme}/{variant}"
            f = {
                "recall": recall(res.found, cen.bars),
                "gain dB": gain(res.out, inp, cen.clean, cen.bar_touch),
                "out %": changed_outside(res.out, inp, cen.bar_touch),
            }
            stray = changed(res.out, inp) & far_from(cen.bar_touch)
            note = f"false: {where(stray, pic)}" if stray.mean() > 0.0005 else ""
            shade = f"rgb{rgb}".replace(" ", "") if OPTS.variety else ""
            sec.add(name, f, " ".join(x for x in (res.error, note, shade) if x))
            if auto is not None and variant == "png":
                res = run_auto(data, inp)
                f = {
                    "recall": recall(res.found, cen.bars),
                    "gain dB": gain(res.out, inp, cen.clean, cen.bar_touch),
                    "out %": changed_outside(res.out, inp, cen.bar_touch),
                }
                auto.add(name, f, res.error)
    return sec


def bench_mosaic_drawn(pics: list[drawn.Drawing]) -> Section:
    sec = Section("mosaic on drawn art (restore_mosaic)", ("gain dB", "recall", "out %"))
    for i in range(MOSAIC_CASES):
        pic = pics[(i * 7) % len(pics)]
        block = MOSAIC_BLOCKS[i % len(MOSAIC_BLOCKS)]
        cen = drawn.censor_mosaic(pic, seed(3000 + i), block)
        for variant in ("png", jpeg_variant(i, 8100)):
            data, inp = bytes_of(cen.image, variant)
            res = run_mosaic(data, inp)
            f = {
                "gain dB": gain(res.out, inp, cen.clean, cen.mosaic),
                "recall": float(changed(res.out, inp)[cen.mosaic].mean()),
                "out %": changed_outside(res.out, inp, cen.mosaic),
            }
            stray = changed(res.out, inp) & far_from(cen.mosaic)
            note = f"false: {where(stray, pic)}" if stray.mean() > 0.0005 else ""
            sec.add(
                f"{i:02d} b{block}/{pic.theme}/{variant}",
                f,
                " ".join(x for x in (res.error, note) if x),
            )
    return sec


def photos() -> list[tuple[str, Image]]:
    return [(n, np.ascontiguousarray(getattr(skdata, n)()[:, :, :3])) for n in PHOTOS]


def bench_mosaic_photo(shots: list[tuple[str, Image]]) -> Section:
    sec = Section("mosaic on photo-like samples (restore_mosaic)", ("gain dB", "recall", "out %"))
    for k, (name, img) in enumerate(shots):
        for j, block in enumerate(PHOTO_BLOCKS[k]):
            cen = drawn.censor_mosaic(img, seed(4000 + 10 * k + j), block)
            data, inp = bytes_of(cen.image, "png")
            res = run_mosaic(data, inp)
            f = {
                "gain dB": gain(res.out, inp, cen.clean, cen.mosaic),
                "recall": float(changed(res.out, inp)[cen.mosaic].mean()),
                "out %": changed_outside(res.out, inp, cen.mosaic),
            }
            sec.add(f"{name}/b{block}", f, res.error)
    return sec


def bench_green(pics: list[drawn.Drawing]) -> tuple[Section, Section]:
    cols = ("core", "edge", "green %", "gain dB", "out %")
    sec = Section("pre-masked, soft green brush (inpaint_green)", cols)
    for i in range(GREEN_CASES):
        pic = pics[(i * 5 + 3) % len(pics)]
        if i % 2 == 0:
            # Green painted over a censor bar, the brush a little wider than the bar.
            cen = drawn.censor_bars(pic, seed(5000 + i), drawn.LAYOUTS[i % 10], "black")
            painted, alpha = drawn.brush_green(cen.image, seed(5100 + i), cen.bar_touch)
            how = "over-bar"
        else:
            painted, alpha = drawn.brush_green(pic.image, seed(5100 + i))
            how = "stroke"
        variant = "png" if i % 4 == 0 else jpeg_variant(i, 8200)
        data, inp = bytes_of(painted, variant)
        res = run_masked(data, inp)
        region = alpha > 0.02
        ch = changed(res.out, inp)
        core, edge = alpha >= 0.5, (alpha >= 0.1) & (alpha < 0.5)
        greener = _greenness(res.out) > _greenness(pic.image) + 40
        f = {
            "core": float(ch[core].mean()),
            "edge": float(ch[edge].mean()) if edge.any() else 1.0,
            "green %": float(greener[region].mean()),
            "gain dB": gain(res.out, inp, pic.image, region),
            "out %": changed_outside(res.out, inp, region),
        }
        sec.add(f"{i:02d} {how}/{pic.theme}/{variant}", f, res.error)
    whole = Section("(nearly) all green: must be a named error", ("error",))
    full = np.zeros((512, 512, 3), np.uint8)
    full[:] = drawn.GREEN
    nearly = full.copy()
    nearly[:, :4] = (200, 200, 200)
    for name, img, variant in (
        ("all green/png", full, "png"),
        ("all green/jpeg90", full, "jpeg90"),
        ("all but a 4px strip/png", nearly, "png"),
    ):
        data, inp = bytes_of(img, variant)
        res = run_masked(data, inp)
        whole.add(name, {"error": float(bool(res.error))}, res.error or "answered a picture")
    return sec, whole


def _greenness(img: Image) -> NDArray[np.int32]:
    i = img.astype(np.int32)
    g: NDArray[np.int32] = i[:, :, 1] - np.maximum(i[:, :, 0], i[:, :, 2])
    return g


def where(ch: Mask, pic: drawn.Drawing | None) -> str:
    """Which part of the drawing most of the changed pixels ``ch`` lie in."""
    if pic is None or not ch.any():
        return ""
    parts = {
        "hair": pic.hair,
        "balloon": pic.balloons,
        "tone": pic.tone & ~pic.hair,
        "hatch": pic.hatch,
        "figure": pic.subject & ~pic.hatch & ~pic.tone,
        "background": ~pic.subject & ~pic.hair & ~pic.balloons & ~pic.tone,
    }
    name, mask = max(parts.items(), key=lambda kv: int((ch & kv[1]).sum()))
    return f"{name} {(ch & mask).sum() / ch.sum():.0%}"


def bench_uncensored(pics: list[drawn.Drawing], shots: list[tuple[str, Image]]) -> Section:
    cols = ("bar %", "mosaic %") + (("auto %",) if AUTO else ())
    sec = Section("uncensored pictures: share of pixels changed", cols)
    inputs: list[tuple[str, Image, str, drawn.Drawing | None]] = []
    for i, pic in enumerate(pics[:UNCENSORED]):
        inputs.append((f"{i:02d} {pic.theme}", pic.image, "png", pic))
        inputs.append((f"{i:02d} {pic.theme}", pic.image, jpeg_variant(i, 8300), pic))
    inputs += [(f"photo {n}", img, "png", None) for n, img in shots]
    for name, img, variant, pic in inputs:
        data, inp = bytes_of(img, variant)
        runs = {"bar %": run_bar, "mosaic %": run_mosaic}
        if AUTO:
            runs["auto %"] = run_auto
        f = {}
        notes = []
        for col, fn in runs.items():
            res = fn(data, inp)
            ch = changed(res.out, inp)
            f[col] = float(ch.mean())
            if not res.error:
                # Answered instead of NoCensoredRegionsFound; say where it changed things.
                notes.append(f"{col.split()[0]}: {where(ch, pic) or 'answered'}")
        sec.add(f"{name}/{variant}", f, "; ".join(notes))
    return sec


def bench_both(pics: list[drawn.Drawing]) -> Section:
    cols = ("bar rec", "mos rec", "bar dB", "mos dB", "out %")
    sec = Section("bars and mosaic on one picture (auto + inpaint_green)", cols)
    for i in range(BOTH_CASES):
        pic = pics[(i * 3 + 1) % len(pics)]
        layout = drawn.LAYOUTS[i % len(drawn.LAYOUTS)]
        colour = SCHEMES[_scheme(i + 5)][1] if pic.theme == SCHEMES[_scheme(i + 5)][0] else None
        block = MOSAIC_BLOCKS[(i * 2) % len(MOSAIC_BLOCKS)]
        try:
            cen = drawn.censor_both(pic, seed(6000 + i), layout, colour, block)
        except ValueError:
            continue
        variant = "png" if i % 2 == 0 else jpeg_variant(i, 8400)
        data, inp = bytes_of(cen.image, variant)
        res = run_auto(data, inp)
        f = {
            "bar rec": recall(res.found, cen.bars),
            "mos rec": float(changed(res.out, inp)[cen.mosaic].mean()),
            "bar dB": gain(res.out, inp, cen.clean, cen.bar_touch),
            "mos dB": gain(res.out, inp, cen.clean, cen.mosaic),
            "out %": changed_outside(res.out, inp, cen.bar_touch | cen.mosaic),
        }
        stray = changed(res.out, inp) & far_from(cen.bar_touch | cen.mosaic)
        note = f"false: {where(stray, pic)}" if stray.mean() > 0.0005 else ""
        sec.add(
            f"{i:02d} {layout}/b{block}/{pic.theme}/{variant}",
            f,
            " ".join(x for x in (res.error, note) if x),
        )
    return sec


def bench_free() -> tuple[Section, Section]:
    """Bars laid freely (drawn.censor_free) on page-sized pictures, and the same pictures
    uncensored: not the layouts the detector's rules were written from."""
    sec = Section("bars laid freely, page sizes (bar mode)", ("recall", "gain dB", "out %"))
    clean = Section("uncensored, page sizes: share of pixels changed", ("bar %",))
    for i in range(FREE_CASES):
        size = drawn.FREE_SIZES[i % len(drawn.FREE_SIZES)]
        pic = drawn.draw_art(seed(40000 + i), size, drawn.THEMES[i % len(drawn.THEMES)])
        kind = drawn.FREE_KINDS[(i // len(drawn.FREE_SIZES)) % len(drawn.FREE_KINDS)]
        cen = drawn.censor_free(pic, seed(41000 + i), kind)
        variant = ("png", "jpeg85", "jpeg92", "jpeg80")[i % 4]
        data, inp = bytes_of(cen.image, variant)
        res = run_bar(data, inp)
        f = {
            "recall": recall(res.found, cen.bars),
            "gain dB": gain(res.out, inp, cen.clean, cen.bar_touch),
            "out %": changed_outside(res.out, inp, cen.bar_touch),
        }
        rgb = ",".join(str(c) for c in cen.colour or ())
        sec.add(
            f"{i:02d} {kind}/rgb({rgb})/{pic.theme}/{size[1]}x{size[0]}/{variant}", f, res.error
        )
        if i < FREE_CLEAN:
            data, inp = bytes_of(pic.image, variant)
            ch = changed(run_bar(data, inp).out, inp)
            clean.add(f"{i:02d} {pic.theme}/{size[1]}x{size[0]}/{variant}", {"bar %": ch.mean()})
    return sec, clean


# -- report -------------------------------------------------------------------------------


def _codings() -> tuple[str, ...]:
    if OPTS.variety:
        return ("png", "jpeg80-87", "jpeg88-95")
    return ("png", *(f"jpeg{q}" for q in JPEG_QS))


def _coded(name: str, coding: str) -> bool:
    """Whether case ``name`` was fed as ``coding`` (a variant, or a range of JPEG qualities)."""
    v = name.rsplit("/", 1)[-1]
    if "-" not in coding:
        return v == coding
    lo, hi = (int(x) for x in coding.removeprefix("jpeg").split("-"))
    return v.startswith("jpeg") and lo <= int(v.removeprefix("jpeg")) <= hi


def summary(secs: dict[str, Section], seconds: float, cpu: float) -> dict[str, Any]:
    lines: list[tuple[str, str, str]] = []
    fig: dict[str, Any] = {}

    def row(label: str, key: str, value: float, shown: str, target: str = "") -> None:
        fig[key] = round(value, 4)
        lines.append((label, shown, target))

    if "bars" in secs:
        bars = secs["bars"]
        rec = bars.values("recall")
        row(
            "bar recall, mean", "bars:recall", float(np.mean(rec)), f"{np.mean(rec):.3f}", ">= 0.95"
        )
        row("bar recall, min", "bars:recall_min", min(rec), f"{min(rec):.3f}", ">= 0.8")
        low = sum(r < 0.8 for r in rec)
        row("  pictures below 0.8", "bars:below_0.8", low, f"{low} of {len(rec)}", "0")
        for v in _codings():
            m = bars.mean("recall", lambda n, v=v: _coded(n, v))
            row(f"  {v}", f"bars/{v}:recall", m, f"{m:.3f}")
        for lay in drawn.LAYOUTS:
            m = bars.mean("recall", lambda n, lay=lay: n.split()[1].startswith(lay + "/"))
            row(f"  layout {lay}", f"bars/{lay}:recall", m, f"{m:.3f}")
        for col in dict.fromkeys(c for _, c in SCHEMES):
            m = bars.mean("recall", lambda n, col=col: f"/{col}/" in n)
            row(f"  colour {col}", f"bars/{col}:recall", m, f"{m:.3f}")
        g = bars.mean("gain dB")
        row("bar PSNR gain inside bars", "bars:gain_db", g, f"{g:+.2f} dB", ">= +3 dB")
        g = float(np.median(bars.values("gain dB")))
        row("  median", "bars:gain_db_median", g, f"{g:+.2f} dB")
        for v in _codings():
            m = bars.mean("gain dB", lambda n, v=v: _coded(n, v))
            row(f"  {v}", f"bars/{v}:gain_db", m, f"{m:+.2f} dB")
        o = bars.values("out %")
        row(
            "bar: changed outside, mean / max",
            "bars:outside",
            float(np.mean(o)),
            f"{100 * np.mean(o):.3f} / {100 * max(o):.3f} %",
            "0",
        )
        fig["bars:outside_max"] = round(max(o), 6)
    if "mosaic_drawn" in secs:
        md = secs["mosaic_drawn"]
        gd = md.mean("gain dB")
        row("mosaic gain on drawn art", "mosaic_drawn:gain_db", gd, f"{gd:+.2f} dB", ">= +0.5 dB")
        for v in ("png", "jpeg"):
            m = md.mean("gain dB", lambda n, v=v: f"/{v}" in n)
            row(f"  {v}", f"mosaic_drawn/{v}:gain_db", m, f"{m:+.2f} dB")
        for b in MOSAIC_BLOCKS:
            m = md.mean("gain dB", lambda n, b=b: f" b{b}/" in n)
            row(f"  block {b}", f"mosaic_drawn/b{b}:gain_db", m, f"{m:+.2f} dB")
        o = md.values("out %")
        row(
            "  changed outside, max",
            "mosaic_drawn:outside_max",
            max(o),
            f"{100 * max(o):.3f} %",
            "0",
        )
    if "mosaic_photo" in secs:
        mp = secs["mosaic_photo"]
        gp = mp.mean("gain dB")
        row(
            "mosaic gain on photo-like samples",
            "mosaic_photo:gain_db",
            gp,
            f"{gp:+.2f} dB",
            ">= +1 dB",
        )
    if "green" in secs:
        green = secs["green"]
        for key in ("core", "edge", "green %", "gain dB"):
            m = green.mean(key)
            shown = f"{100 * m:.2f} %" if key.endswith("%") else f"{m:.3f}"
            shown = f"{m:+.2f} dB" if key.endswith("dB") else shown
            target = {"core": "1.0", "edge": "~1.0", "green %": "0"}.get(key, "")
            row(f"pre-masked: {key}", f"green:{key.split()[0]}", m, shown, target)
        o = green.values("out %")
        row(
            "pre-masked: changed outside, max",
            "green:outside_max",
            max(o),
            f"{100 * max(o):.3f} %",
            "0",
        )
    if "whole" in secs:
        whole = secs["whole"]
        errs = sum(f["error"] for _, f, _ in whole.rows)
        row(
            "(nearly) all green: named error",
            "green:whole_errors",
            errs,
            f"{int(errs)} of {len(whole.rows)}",
            "all",
        )
    if "uncensored" in secs:
        unc = secs["uncensored"]
        for col in unc.columns:
            v = unc.values(col, lambda n: not n.startswith("photo"))
            over = sum(x > 0.005 for x in v)
            key = col.split()[0]
            row(
                f"uncensored art, {key} mode: max / mean",
                f"uncensored:{key}_max",
                max(v),
                f"{100 * max(v):.3f} / {100 * np.mean(v):.3f} %",
                "<= 0.5 %",
            )
            row("  pictures over 0.5 %", f"uncensored:{key}_over", over, f"{over} of {len(v)}", "0")
            p = unc.values(col, lambda n: n.startswith("photo"))
            row("  photos, max", f"uncensored_photo:{key}_max", max(p), f"{100 * max(p):.3f} %")
    if "auto" in secs:
        a = secs["auto"]
        m = a.mean("recall")
        row("auto on barred art (png): bar recall", "auto_bars:recall", m, f"{m:.3f}", ">= 0.95")
        m = a.mean("gain dB")
        row("  PSNR gain inside bars", "auto_bars:gain_db", m, f"{m:+.2f} dB", ">= +3 dB")
    if "both" in secs:
        b = secs["both"]
        for key, label, target in (
            ("bar rec", "bar recall", ">= 0.95"),
            ("mos rec", "mosaic cells changed", "~1.0"),
            ("bar dB", "PSNR gain inside bars", ">= +3 dB"),
            ("mos dB", "PSNR gain inside mosaic", ">= +0.5 dB"),
            ("out %", "changed outside", "0"),
        ):
            m = b.mean(key)
            shown = f"{100 * m:.3f} %" if key.endswith("%") else f"{m:.3f}"
            shown = f"{m:+.2f} dB" if key.endswith("dB") else shown
            row(f"auto, bars + mosaic: {label}", f"both:{key.replace(' ', '_')}", m, shown, target)
    if "free" in secs:
        fr = secs["free"]
        rec = fr.values("recall")
        m, low = float(np.mean(rec)), sum(r < 0.8 for r in rec)
        row("bars laid freely: recall, mean", "free:recall", m, f"{m:.3f}", ">= 0.95")
        row("  pictures below 0.8", "free:below_0.8", low, f"{low} of {len(rec)}", "0")
        for kind in drawn.FREE_KINDS:
            m = fr.mean("recall", lambda n, k=kind: n.split()[1].startswith(k + "/"))
            row(f"  {kind}", f"free/{kind}:recall", m, f"{m:.3f}")
        g = fr.mean("gain dB")
        row("  PSNR gain inside bars", "free:gain_db", g, f"{g:+.2f} dB", ">= +3 dB")
        o = fr.values("out %")
        row("  changed outside, max", "free:outside_max", max(o), f"{100 * max(o):.3f} %", "0")
    if "free_clean" in secs:
        v = secs["free_clean"].values("bar %")
        row(
            "uncensored, page sizes, bar mode: max",
            "free_clean:bar_max",
            max(v),
            f"{100 * max(v):.3f} %",
            "<= 0.5 %",
        )
    if AUTO is None:
        lines.append(("auto mode", "skipped: no workers.pipeline.auto", ""))
    fig["seed_base"] = DEFAULT_SEED_BASE + OPTS.shift
    fig["variety"] = OPTS.variety
    fig["seconds"] = round(seconds, 1)
    fig["cpu_seconds"] = round(cpu, 1)
    # Wall time depends on what else runs; CPU time is the bench's own cost.
    lines.append(("seconds: wall / cpu", f"{seconds:.0f} / {cpu:.0f}", "~180 on 2 cores"))
    width = max(len(a) for a, _, _ in lines)
    print(f"\n{'figure':<{width}}  {'value':<24} target")
    for a, v, t in lines:
        print(f"{a:<{width}}  {v:<24} {t}")
    return fig


def worst(sec: Section, column: str, n: int, low: bool = True) -> list[list[Any]]:
    rows = sorted(sec.rows, key=lambda r: r[1].get(column, 0.0), reverse=not low)
    return [[name, round(f.get(column, 0.0), 4), note] for name, f, note in rows[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--legacy", action="store_true", help="also the older direct-call section")
    ap.add_argument("--only", help=f"comma-separated sections to run: {', '.join(SECTIONS)}")
    ap.add_argument(
        "--seed-base",
        type=int,
        default=DEFAULT_SEED_BASE,
        help=f"first picture seed (default {DEFAULT_SEED_BASE}); every other seed moves with"
        " it: another value is a held-out set of pictures and censors",
    )
    ap.add_argument(
        "--variety",
        action="store_true",
        help="bar colours jittered off the fixed list and JPEG quality anywhere in 80-95",
    )
    args = ap.parse_args()
    OPTS.shift = args.seed_base - DEFAULT_SEED_BASE
    OPTS.variety = args.variety
    print(f"seed base {args.seed_base}" + (", variety" if args.variety else ""))
    t0, c0 = time.perf_counter(), time.process_time()
    pics = pictures()
    shots = photos()
    secs: dict[str, Section] = {}

    def done(key: str, sec: Section) -> None:
        secs[key] = sec
        sec.print()
        sys.stdout.flush()

    auto_bars = Section(
        "bars in auto mode (auto + inpaint_green, png)", ("recall", "gain dB", "out %")
    )
    want = set(args.only.split(",")) if args.only else set(SECTIONS)
    if unknown := want - set(SECTIONS):
        ap.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if "bars" in want:
        done("bars", bench_bars(pics, auto_bars if AUTO else None))
        if AUTO:
            done("auto", auto_bars)
    if "mosaic" in want:
        done("mosaic_drawn", bench_mosaic_drawn(pics))
        done("mosaic_photo", bench_mosaic_photo(shots))
    if "green" in want:
        green, whole = bench_green(pics)
        done("green", green)
        done("whole", whole)
    if "uncensored" in want:
        done("uncensored", bench_uncensored(pics, shots))
    if "both" in want and AUTO:
        done("both", bench_both(pics))
    if "free" in want:
        free, free_clean = bench_free()
        done("free", free)
        done("free_clean", free_clean)
    fig = summary(secs, time.perf_counter() - t0, time.process_time() - c0)
    worst_of = (
        ("bars:recall", "bars", "recall", 8, True),
        ("free:recall", "free", "recall", 8, True),
        ("mosaic_drawn:gain_db", "mosaic_drawn", "gain dB", 5, True),
        ("green:core", "green", "core", 3, True),
        ("uncensored:bar", "uncensored", "bar %", 3, False),
        ("uncensored:mosaic", "uncensored", "mosaic %", 3, False),
    )
    fig["worst"] = {
        k: worst(secs[sec], col, n, low) for k, sec, col, n, low in worst_of if sec in secs
    }
    if args.legacy:
        fig["legacy"] = legacy()
    print(json.dumps(fig, sort_keys=True))
    sys.stdout.flush()


# -- legacy section (--legacy): the detectors called directly, as the bench used to ------


L_BAR_COLOURS = {"black": syn.BLACK, "white": syn.WHITE, "pink": syn.PINK, "green": syn.GREEN}
L_BAR_SIZES = {"thin": ((0.15, 0.3), (0.025, 0.045)), "wide": ((0.2, 0.4), (0.06, 0.11))}
L_BLOCKS = (6, 8, 12, 16, 24, 32)


def _l_pictures() -> list[tuple[str, Image]]:
    out = [(f"scene{s}", syn.draw_scene(s, (512, 512))) for s in range(12)]
    for name in ("coffee", "chelsea", "rocket", "immunohistochemistry"):
        out.append((name, np.ascontiguousarray(getattr(skdata, name)()[:, :, :3])))
    return out


def _l_overlap(det: Mask, truth: Mask) -> tuple[float, float, float]:
    inter = float((det & truth).sum())
    union = float((det | truth).sum())
    iou = inter / union if union else 1.0
    precision = inter / float(det.sum()) if det.any() else (1.0 if not truth.any() else 0.0)
    recall = inter / float(truth.sum()) if truth.any() else 1.0
    return iou, precision, recall


def _l_psnr(out: Image, clean: Image, m: Mask) -> float:
    err = float(((out[m].astype(np.float64) - clean[m].astype(np.float64)) ** 2).mean())
    return float(10.0 * np.log10(255.0**2 / max(err, 1e-6)))


def _l_ssim_in(out: Image, clean: Image, m: Mask) -> float:
    ys, xs = np.nonzero(m)
    # SSIM over the mask's bounding box (plus its window), averaged inside the mask.
    y0, y1 = max(int(ys.min()) - 8, 0), int(ys.max()) + 9
    x0, x1 = max(int(xs.min()) - 8, 0), int(xs.max()) + 9
    _, smap = structural_similarity(  # type: ignore[no-untyped-call]
        clean[y0:y1, x0:x1], out[y0:y1, x0:x1], channel_axis=2, data_range=255, full=True
    )
    return float(smap.mean(axis=2)[m[y0:y1, x0:x1]].mean())


def _l_mean_fill(img: Image, m: Mask) -> Image:
    """Baseline: every masked pixel becomes the mean colour of a ring around the mask."""
    ring = cv2.dilate(m.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~m
    out = img.copy()
    out[m] = np.round(img[ring].mean(axis=0)).astype(np.uint8)
    return out


def _l_telea(img: Image, m: Mask) -> Image:
    """Baseline: OpenCV's Telea inpainting, radius 3."""
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    res = cv2.inpaint(bgr, m.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return np.ascontiguousarray(res[:, :, ::-1])


def _l_bar_pipeline(img: Image) -> tuple[Image, Mask, Mask]:
    """Detected mask, then the DeepCreamPy-style hand-off: paint green, find green, fill."""
    det = imageops.detect_bars(img)
    green = imageops.paint_green(img, det)
    filled = imageops.green_mask(green)
    return imageops.inpaint(green, filled), det, filled


class _LTally:
    def __init__(self) -> None:
        self.rows: dict[str, list[float]] = {}

    def add(self, key: str, value: float) -> None:
        self.rows.setdefault(key, []).append(value)

    def mean(self, key: str) -> float:
        return float(np.mean(self.rows[key]))


def _l_run_bars(pics: list[tuple[str, Image]], tally: _LTally) -> None:
    fills: dict[str, Callable[[Image, Mask], Image]] = {
        "ours": imageops.inpaint,
        "mean": _l_mean_fill,
        "telea": _l_telea,
    }
    k = 0
    for _, clean in pics:
        for cname, colour in L_BAR_COLOURS.items():
            k += 1
            rng = np.random.default_rng(1000 + k)
            sname = "thin" if k % 2 else "wide"
            lengths, thick = L_BAR_SIZES[sname]
            angle = (0.0, 90.0, float(rng.uniform(0, 180)))[k % 3]
            censored, truth = syn.add_bars(
                clean, rng, int(rng.integers(1, 4)), colour, angle,
                length_frac=lengths, thickness_frac=thick,
            )  # fmt: skip
            for jpeg_q in (None, 75):
                img = syn.jpeg(censored, jpeg_q) if jpeg_q else censored
                tag = "jpeg75" if jpeg_q else "png"
                out, det, filled = _l_bar_pipeline(img)
                iou, prec, rec = _l_overlap(det, truth)
                for key in ("bars", f"bars/{tag}", f"bars/{cname}", f"bars/{sname}"):
                    tally.add(f"{key}:iou", iou)
                tally.add("bars:precision", prec)
                tally.add("bars:recall", rec)
                assert np.array_equal(out[~filled], img[~filled])
                if jpeg_q is None:
                    tally.add("bars:pipeline_psnr", _l_psnr(out, clean, truth))
                    for fname, fill in fills.items():
                        # The fill methods are compared on the true mask, so that detection
                        # errors do not blur the comparison.
                        res = fill(img, truth)
                        tally.add(f"bars:{fname}:psnr", _l_psnr(res, clean, truth))
                        tally.add(f"bars:{fname}:ssim", _l_ssim_in(res, clean, truth))


def _l_run_mosaic(pics: list[tuple[str, Image]], tally: _LTally) -> None:
    k = 0
    for _, clean in pics:
        for block in L_BLOCKS:
            k += 1
            rng = np.random.default_rng(2000 + k)
            phase = (int(rng.integers(0, block)), int(rng.integers(0, block)))
            censored, truth = syn.add_mosaic(clean, rng, block, phase)
            det, grid = imageops.detect_mosaic(censored)
            true_grid = imageops.MosaicGrid(block, phase[0], phase[1])
            tally.add("mosaic:grid_ok", float(grid == true_grid))
            iou, prec, rec = _l_overlap(det, truth)
            tally.add("mosaic:iou", iou)
            tally.add(f"mosaic/b{block}:iou", iou)
            tally.add("mosaic:precision", prec)
            tally.add("mosaic:recall", rec)
            if grid is not None:
                out = imageops.restore_mosaic(censored, det, grid)
                assert np.array_equal(out[~det], censored[~det])
            else:
                out = censored
            tally.add("mosaic:pipeline_psnr", _l_psnr(out, clean, truth))
            fills = {
                "ours": imageops.restore_mosaic(censored, truth, true_grid),
                "as_is": censored,
                "mean": _l_mean_fill(censored, truth),
                "telea": _l_telea(censored, truth),
            }
            for fname, res in fills.items():
                tally.add(f"mosaic:{fname}:psnr", _l_psnr(res, clean, truth))
                tally.add(f"mosaic:{fname}:ssim", _l_ssim_in(res, clean, truth))


def _l_run_false(pics: list[tuple[str, Image]], tally: _LTally) -> None:
    for _, clean in pics:
        for img in (clean, syn.jpeg(clean, 75)):
            tally.add("false:bars_area", float(imageops.detect_bars(img).mean()))
            tally.add("false:mosaic_area", float(imageops.detect_mosaic(img)[0].mean()))
    for seed in range(100, 112):
        clean = syn.draw_scene(seed, (512, 512))
        tally.add("false:bars_area", float(imageops.detect_bars(clean).mean()))
        tally.add("false:mosaic_area", float(imageops.detect_mosaic(clean)[0].mean()))


def legacy() -> dict[str, Any]:
    """The older section: detectors called directly on synthetic scenes and photos."""
    t0 = time.perf_counter()
    pics = _l_pictures()
    tally = _LTally()
    _l_run_bars(pics, tally)
    _l_run_mosaic(pics, tally)
    _l_run_false(pics, tally)
    m = tally.mean
    fb = max(tally.rows["false:bars_area"])
    fm = max(tally.rows["false:mosaic_area"])
    lines = [
        ("bar detection IoU (all)", f"{m('bars:iou'):.3f}", ">= 0.90"),
        ("  png / jpeg q75", f"{m('bars/png:iou'):.3f} / {m('bars/jpeg75:iou'):.3f}", ""),
        (
            "  black / white / pink / green",
            " / ".join(f"{m(f'bars/{c}:iou'):.3f}" for c in L_BAR_COLOURS),
            "",
        ),
        ("  thin / wide", f"{m('bars/thin:iou'):.3f} / {m('bars/wide:iou'):.3f}", ""),
        ("  min over cases", f"{min(tally.rows['bars:iou']):.3f}", ""),
        ("bar precision / recall", f"{m('bars:precision'):.3f} / {m('bars:recall'):.3f}", ""),
        ("mosaic grid exact", f"{m('mosaic:grid_ok'):.3f}", ""),
        ("mosaic detection IoU (all)", f"{m('mosaic:iou'):.3f}", ">= 0.85"),
        (
            "  by block " + "/".join(str(b) for b in L_BLOCKS),
            " / ".join(f"{m(f'mosaic/b{b}:iou'):.2f}" for b in L_BLOCKS),
            "",
        ),
        (
            "mosaic precision / recall",
            f"{m('mosaic:precision'):.3f} / {m('mosaic:recall'):.3f}",
            "",
        ),
        ("false detection, max area: bars", f"{fb:.4f}", "<= 0.02"),
        ("false detection, max area: mosaic", f"{fm:.4f}", "<= 0.02"),
    ]
    for kind in ("bars", "mosaic"):
        names = ("ours", "mean", "telea") + (("as_is",) if kind == "mosaic" else ())
        for fname in names:
            lines.append(
                (
                    f"{kind} restore PSNR / SSIM: {fname}",
                    f"{m(f'{kind}:{fname}:psnr'):.2f} dB / {m(f'{kind}:{fname}:ssim'):.3f}",
                    "above mean & telea" if fname == "ours" else "",
                )
            )
        lines.append((f"{kind} full pipeline PSNR", f"{m(f'{kind}:pipeline_psnr'):.2f} dB", ""))
    width = max(len(a) for a, _, _ in lines)
    print(f"{'metric':<{width}}  {'value':<34} target")
    for a, b, c in lines:
        print(f"{a:<{width}}  {b:<34} {c}")
    figures: dict[str, Any] = {k: round(m(k), 4) for k in sorted(tally.rows)}
    figures["false:bars_area_max"] = round(fb, 4)
    figures["false:mosaic_area_max"] = round(fm, 4)
    figures["bars:iou_min"] = round(min(tally.rows["bars:iou"]), 4)
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    return figures


if __name__ == "__main__":
    main()
