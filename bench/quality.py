"""Detection and restoration quality of the cpu backend on censored pictures with known truth.

Run from the repository root: ``python bench/quality.py`` (``PYTHONPATH=.`` until the project
is installed). Pictures are synthetic cel-style scenes plus scikit-image's bundled samples
that show no people (coffee, chelsea, rocket, immunohistochemistry). Prints a table, then
one JSON line with every figure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from skimage import data as skdata
from skimage.metrics import structural_similarity

from workers.imageops import (
    MosaicGrid,
    detect_bars,
    detect_mosaic,
    green_mask,
    inpaint,
    paint_green,
    restore_mosaic,
)
from workers.imageops import synthetic as syn

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]

BAR_COLOURS = {"black": syn.BLACK, "white": syn.WHITE, "pink": syn.PINK, "green": syn.GREEN}
BAR_SIZES = {"thin": ((0.15, 0.3), (0.025, 0.045)), "wide": ((0.2, 0.4), (0.06, 0.11))}
BLOCKS = (6, 8, 12, 16, 24, 32)


def pictures() -> list[tuple[str, Image]]:
    out = [(f"scene{s}", syn.draw_scene(s, (512, 512))) for s in range(12)]
    for name in ("coffee", "chelsea", "rocket", "immunohistochemistry"):
        out.append((name, np.ascontiguousarray(getattr(skdata, name)()[:, :, :3])))
    return out


def overlap(det: Mask, truth: Mask) -> tuple[float, float, float]:
    inter = float((det & truth).sum())
    union = float((det | truth).sum())
    iou = inter / union if union else 1.0
    precision = inter / float(det.sum()) if det.any() else (1.0 if not truth.any() else 0.0)
    recall = inter / float(truth.sum()) if truth.any() else 1.0
    return iou, precision, recall


def psnr(out: Image, clean: Image, m: Mask) -> float:
    err = float(((out[m].astype(np.float64) - clean[m].astype(np.float64)) ** 2).mean())
    return float(10.0 * np.log10(255.0**2 / max(err, 1e-6)))


def ssim_in(out: Image, clean: Image, m: Mask) -> float:
    ys, xs = np.nonzero(m)
    # SSIM over the mask's bounding box (plus its window), averaged inside the mask.
    y0, y1 = max(int(ys.min()) - 8, 0), int(ys.max()) + 9
    x0, x1 = max(int(xs.min()) - 8, 0), int(xs.max()) + 9
    _, smap = structural_similarity(  # type: ignore[no-untyped-call]
        clean[y0:y1, x0:x1], out[y0:y1, x0:x1], channel_axis=2, data_range=255, full=True
    )
    return float(smap.mean(axis=2)[m[y0:y1, x0:x1]].mean())


def mean_fill(img: Image, m: Mask) -> Image:
    """Baseline: every masked pixel becomes the mean colour of a ring around the mask."""
    ring = cv2.dilate(m.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool) & ~m
    out = img.copy()
    out[m] = np.round(img[ring].mean(axis=0)).astype(np.uint8)
    return out


def telea(img: Image, m: Mask) -> Image:
    """Baseline: OpenCV's Telea inpainting, radius 3."""
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    res = cv2.inpaint(bgr, m.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return np.ascontiguousarray(res[:, :, ::-1])


def bar_pipeline(img: Image) -> tuple[Image, Mask, Mask]:
    """Detected mask, then the DeepCreamPy-style hand-off: paint green, find green, fill."""
    det = detect_bars(img)
    green = paint_green(img, det)
    filled = green_mask(green)
    return inpaint(green, filled), det, filled


class Tally:
    def __init__(self) -> None:
        self.rows: dict[str, list[float]] = {}

    def add(self, key: str, value: float) -> None:
        self.rows.setdefault(key, []).append(value)

    def mean(self, key: str) -> float:
        return float(np.mean(self.rows[key]))


def run_bars(pics: list[tuple[str, Image]], tally: Tally) -> None:
    fills: dict[str, Callable[[Image, Mask], Image]] = {
        "ours": inpaint,
        "mean": mean_fill,
        "telea": telea,
    }
    k = 0
    for _, clean in pics:
        for cname, colour in BAR_COLOURS.items():
            k += 1
            rng = np.random.default_rng(1000 + k)
            sname = "thin" if k % 2 else "wide"
            lengths, thick = BAR_SIZES[sname]
            angle = (0.0, 90.0, float(rng.uniform(0, 180)))[k % 3]
            censored, truth = syn.add_bars(
                clean, rng, int(rng.integers(1, 4)), colour, angle,
                length_frac=lengths, thickness_frac=thick,
            )  # fmt: skip
            for jpeg_q in (None, 75):
                img = syn.jpeg(censored, jpeg_q) if jpeg_q else censored
                tag = "jpeg75" if jpeg_q else "png"
                out, det, filled = bar_pipeline(img)
                iou, prec, rec = overlap(det, truth)
                for key in ("bars", f"bars/{tag}", f"bars/{cname}", f"bars/{sname}"):
                    tally.add(f"{key}:iou", iou)
                tally.add("bars:precision", prec)
                tally.add("bars:recall", rec)
                assert np.array_equal(out[~filled], img[~filled])
                if jpeg_q is None:
                    tally.add("bars:pipeline_psnr", psnr(out, clean, truth))
                    for fname, fill in fills.items():
                        # The fill methods are compared on the true mask, so that detection
                        # errors do not blur the comparison.
                        res = fill(img, truth)
                        tally.add(f"bars:{fname}:psnr", psnr(res, clean, truth))
                        tally.add(f"bars:{fname}:ssim", ssim_in(res, clean, truth))


def run_mosaic(pics: list[tuple[str, Image]], tally: Tally) -> None:
    k = 0
    for _, clean in pics:
        for block in BLOCKS:
            k += 1
            rng = np.random.default_rng(2000 + k)
            phase = (int(rng.integers(0, block)), int(rng.integers(0, block)))
            censored, truth = syn.add_mosaic(clean, rng, block, phase)
            det, grid = detect_mosaic(censored)
            true_grid = MosaicGrid(block, phase[0], phase[1])
            tally.add("mosaic:grid_ok", float(grid == true_grid))
            iou, prec, rec = overlap(det, truth)
            tally.add("mosaic:iou", iou)
            tally.add(f"mosaic/b{block}:iou", iou)
            tally.add("mosaic:precision", prec)
            tally.add("mosaic:recall", rec)
            if grid is not None:
                out = restore_mosaic(censored, det, grid)
                assert np.array_equal(out[~det], censored[~det])
            else:
                out = censored
            tally.add("mosaic:pipeline_psnr", psnr(out, clean, truth))
            fills = {
                "ours": restore_mosaic(censored, truth, true_grid),
                "as_is": censored,
                "mean": mean_fill(censored, truth),
                "telea": telea(censored, truth),
            }
            for fname, res in fills.items():
                tally.add(f"mosaic:{fname}:psnr", psnr(res, clean, truth))
                tally.add(f"mosaic:{fname}:ssim", ssim_in(res, clean, truth))


def run_false(pics: list[tuple[str, Image]], tally: Tally) -> None:
    for _, clean in pics:
        for img in (clean, syn.jpeg(clean, 75)):
            tally.add("false:bars_area", float(detect_bars(img).mean()))
            tally.add("false:mosaic_area", float(detect_mosaic(img)[0].mean()))
    for seed in range(100, 112):
        clean = syn.draw_scene(seed, (512, 512))
        tally.add("false:bars_area", float(detect_bars(clean).mean()))
        tally.add("false:mosaic_area", float(detect_mosaic(clean)[0].mean()))


def main() -> None:
    t0 = time.perf_counter()
    pics = pictures()
    tally = Tally()
    run_bars(pics, tally)
    run_mosaic(pics, tally)
    run_false(pics, tally)
    m = tally.mean
    fb = max(tally.rows["false:bars_area"])
    fm = max(tally.rows["false:mosaic_area"])
    lines = [
        ("bar detection IoU (all)", f"{m('bars:iou'):.3f}", ">= 0.90"),
        ("  png / jpeg q75", f"{m('bars/png:iou'):.3f} / {m('bars/jpeg75:iou'):.3f}", ""),
        (
            "  black / white / pink / green",
            " / ".join(f"{m(f'bars/{c}:iou'):.3f}" for c in BAR_COLOURS),
            "",
        ),
        ("  thin / wide", f"{m('bars/thin:iou'):.3f} / {m('bars/wide:iou'):.3f}", ""),
        ("  min over cases", f"{min(tally.rows['bars:iou']):.3f}", ""),
        ("bar precision / recall", f"{m('bars:precision'):.3f} / {m('bars:recall'):.3f}", ""),
        ("mosaic grid exact", f"{m('mosaic:grid_ok'):.3f}", ""),
        ("mosaic detection IoU (all)", f"{m('mosaic:iou'):.3f}", ">= 0.85"),
        (
            "  by block " + "/".join(str(b) for b in BLOCKS),
            " / ".join(f"{m(f'mosaic/b{b}:iou'):.2f}" for b in BLOCKS),
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
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
