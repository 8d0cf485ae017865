"""One-core speed of each mode's full cpu pipeline on a 2048x2048 picture.

Run from the repository root: ``python bench/cpu_speed.py`` (``PYTHONPATH=.`` until the
project is installed). Prints the median of several runs per mode and one JSON line.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.imageops import (
    detect_bars,
    detect_mosaic,
    green_mask,
    inpaint,
    paint_green,
    restore_mosaic,
)
from workers.imageops import synthetic as syn

Image = NDArray[np.uint8]
RUNS = 5
TARGET_S = 1.0


def bar_mode(img: Image) -> Image:
    green = paint_green(img, detect_bars(img))
    return inpaint(green, green_mask(green))


def mosaic_mode(img: Image) -> Image:
    mask, grid = detect_mosaic(img)
    return restore_mosaic(img, mask, grid) if grid is not None else img.copy()


def median_seconds(fn: Callable[[Image], Image], img: Image) -> tuple[float, list[float]]:
    fn(img)  # warm caches and lazy imports outside the timing
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        fn(img)
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main() -> None:
    cv2.setNumThreads(1)
    scene = syn.draw_scene(2048, (2048, 2048))
    rng = np.random.default_rng(1)
    barred, bar_truth = syn.add_bars(scene, rng, 3, syn.BLACK, 25.0)
    mosaiced, mos_truth = syn.add_mosaic(scene, rng, 24, (7, 13))
    results = {}
    for name, fn, img, truth in (
        ("bar", bar_mode, barred, bar_truth),
        ("mosaic", mosaic_mode, mosaiced, mos_truth),
    ):
        med, times = median_seconds(fn, img)
        results[name] = med
        runs = ", ".join(f"{t:.3f}" for t in times)
        verdict = "ok" if med <= TARGET_S else "SLOW"
        print(
            f"{name:<7} median {med:.3f} s over {RUNS} runs ({runs}); "
            f"censored area {truth.mean():.1%}; target <= {TARGET_S} s: {verdict}"
        )
    print(json.dumps({"size": 2048, "threads": 1, "median_s": results, "runs": RUNS}))


if __name__ == "__main__":
    main()
