"""PNG decode in the workers: the Pillow path against workers/pngread.py's fast path.

Run from the repository root: ``python bench/png_decode.py [--runs N]``.

Times ``pipeline._split`` (the fast path where it reads the file, Pillow otherwise)
against ``pipeline._split_pillow`` (what every input took before), as CPU seconds of
this process (``time.process_time``), one thread, the fastest of interleaved runs (a
busy machine slows both alike). Pictures at 1024x1024 and 2048x2048: drawn art
(``workers.imageops.drawn``, seeds the reader was never looked at on) and photographs
(scikit-image's samples, upscaled), one of each with an alpha channel. Writers:
workers/png.py (hent-AI's hand-off to DeepCreamPy, the bot's next hop: the fast path's
case), Pillow at level 1 and OpenCV's defaults (users' uploads: adaptive filtering, so
the Pillow path; the column shows what looking first costs them). Every answer is
checked equal to the Pillow path's. Prints a table, then one JSON line.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erogaki_common.images import Limits  # noqa: E402
from workers import pipeline, png, pngread  # noqa: E402
from workers.imageops import drawn  # noqa: E402

Pixels = NDArray[np.uint8]
SIZES = (1024, 2048)
LIMITS = Limits()


def _photo(name: str, size: int) -> Pixels:
    image = getattr(skdata, name)()
    resized = cv2.resize(image[..., :3], (size, size), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(resized, np.uint8)


def _alpha(size: int) -> Pixels:
    yy, xx = np.mgrid[:size, :size]
    hole = np.hypot(yy - size / 2, xx - size / 3) / (size / 4)
    return np.asarray(np.clip((hole - 1) * 255 * 8, 0, 255), np.uint8)


def pictures(size: int) -> dict[str, tuple[str, Pixels]]:
    """name -> (kind, RGB or RGBA picture)."""
    return {
        "drawn 61 plain": ("drawn", drawn.draw_art(61, (size, size), "plain").image),
        "drawn 62 manga": ("drawn", drawn.draw_art(62, (size, size), "manga").image),
        "drawn 63 pastel rgba": (
            "drawn",
            np.dstack([drawn.draw_art(63, (size, size), "pastel").image, _alpha(size)]),
        ),
        "photo chelsea": ("photo", _photo("chelsea", size)),
        "photo astronaut": ("photo", _photo("astronaut", size)),
        "photo rocket rgba": ("photo", np.dstack([_photo("rocket", size), _alpha(size)])),
    }


def write_ours(pixels: Pixels) -> bytes:
    if pixels.shape[2] == 4:
        return png.encode(
            np.ascontiguousarray(pixels[..., :3]), np.ascontiguousarray(pixels[..., 3])
        )
    return png.encode(pixels)


def write_pillow(pixels: Pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


def write_opencv(pixels: Pixels) -> bytes:
    code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, buf = cv2.imencode(".png", cv2.cvtColor(pixels, code))
    assert ok
    return bytes(buf.tobytes())


WRITERS: dict[str, Callable[[Pixels], bytes]] = {
    "workers/png.py": write_ours,
    "pillow level 1": write_pillow,
    "opencv default": write_opencv,
}


def cpu_ms(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rows: list[dict[str, object]] = []
    for size in SIZES:
        for name, (kind, pixels) in pictures(size).items():
            for writer, write in WRITERS.items():
                data = write(pixels)
                before = pipeline._split_pillow(data, LIMITS)
                after = pipeline._split(data, LIMITS)
                for a, b in zip(before, after, strict=True):
                    assert (a is None and b is None) or (
                        a is not None and b is not None and np.array_equal(a, b)
                    ), (size, name, writer)
                fast = pngread.read(data, LIMITS) is not None
                best = {"before": float("inf"), "after": float("inf")}
                for _ in range(args.runs):
                    best["before"] = min(
                        best["before"], cpu_ms(partial(pipeline._split_pillow, data, LIMITS))
                    )
                    best["after"] = min(
                        best["after"], cpu_ms(partial(pipeline._split, data, LIMITS))
                    )
                rows.append({
                    "size": size, "kind": kind, "picture": name, "writer": writer,
                    "kib": len(data) // 1024, "fast_path": fast,
                    "before_ms": round(best["before"], 2), "after_ms": round(best["after"], 2),
                    "speedup": round(best["before"] / best["after"], 2),
                })  # fmt: skip
    print(f"{'size':>5} {'picture':<21} {'writer':<15} {'KiB':>6} {'path':<6} "
          f"{'before':>9} {'after':>9} {'x':>6}")  # fmt: skip
    for r in rows:
        path = "fast" if r["fast_path"] else "pillow"
        print(f"{r['size']:>5} {r['picture']:<21} {r['writer']:<15} {r['kib']:>6} {path:<6} "
              f"{r['before_ms']:>6} ms {r['after_ms']:>6} ms {r['speedup']:>6}")  # fmt: skip
    summary: dict[str, dict[str, float]] = {}
    for size in SIZES:
        for kind in ("drawn", "photo"):
            for writer in WRITERS:
                sel = [
                    r for r in rows if r["size"] == size and r["kind"] == kind
                    and r["writer"] == writer
                ]  # fmt: skip
                summary[f"{kind} {size} {writer}"] = {
                    "before_ms": round(
                        float(np.mean([float(str(r["before_ms"])) for r in sel])), 2
                    ),
                    "after_ms": round(float(np.mean([float(str(r["after_ms"])) for r in sel])), 2),
                }
    print("mean CPU ms per picture (before -> after):")
    for key, s in summary.items():
        print(f"  {key:<32} {s['before_ms']:>7} -> {s['after_ms']:>7} ms")
    print(json.dumps({"runs": args.runs, "threads": 1, "clock": "process_time",
                      "summary": summary, "rows": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
