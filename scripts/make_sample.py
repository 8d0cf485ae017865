"""Draw the synthetic sample that `erogaki demo` decensors (erogaki/sample.png).

Line art drawn in code, one black bar and one 16 px mosaic; no real artwork.
Run from the repository root: `python scripts/make_sample.py`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from workers.imageops import detect_bars, detect_mosaic
from workers.imageops.synthetic import draw_scene

OUT = Path(__file__).resolve().parent.parent / "erogaki" / "sample.png"


def main() -> None:
    scene = draw_scene(31, (512, 768))
    censored = scene.copy()
    # A rotated black bar across the upper left.
    box = cv2.boxPoints(((230.0, 150.0), (200.0, 46.0), -14.0)).astype(np.int32)
    cv2.fillConvexPoly(censored, box, (0, 0, 0))
    # A 16 px mosaic over the right half's detail, aligned to a grid at (8, 4).
    block, x0, y0, x1, y1 = 16, 456, 196, 712, 436
    for y in range(y0, y1, block):
        for x in range(x0, x1, block):
            cell = censored[y : y + block, x : x + block]
            cell[:] = cell.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    Image.fromarray(censored).save(OUT, optimize=True)
    bars = detect_bars(censored)
    mosaic, grid = detect_mosaic(censored)
    print(
        f"wrote {OUT}: bar pixels {int(bars.sum())}, mosaic pixels {int(mosaic.sum())}, grid {grid}"
    )


if __name__ == "__main__":
    main()
