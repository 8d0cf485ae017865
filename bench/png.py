"""PNG encoders for the workers' results: Pillow (what erogaki used) against OpenCV.

Run from the repository root: ``python bench/png.py`` (``PYTHONPATH=.`` until the project
is installed). One thread each, fastest of several runs, on drawn art (drawn in code) and
on photo-like samples (scikit-image's chelsea and coffee), at 1024 and 2048 px. Decoding
is timed the way the next reader does it: Pillow, as ``erogaki_common.images.decode``
and the bot read results. Prints a table, then one JSON line.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from skimage import data as skdata

from workers.imageops import synthetic as syn
from workers.pipeline import encode_png

Pixels = NDArray[np.uint8]
RUNS = 5


def pillow(rgb: Pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG", compress_level=1)
    return out.getvalue()


def opencv_filter(flag: int) -> Callable[[Pixels], bytes]:
    def encode(rgb: Pixels) -> bytes:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, flag]
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        assert ok
        return bytes(buf.tobytes())

    return encode


ENCODERS: dict[str, Callable[[Pixels], bytes]] = {
    "pillow (adaptive filters)": pillow,
    "erogaki (opencv, up)": encode_png,
    "opencv, sub": opencv_filter(cv2.IMWRITE_PNG_FILTER_SUB),
    "opencv, paeth": opencv_filter(cv2.IMWRITE_PNG_FILTER_PAETH),
}


def fastest(fn: Callable[[], object], runs: int = RUNS) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def decode(data: bytes) -> Pixels:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def pictures(size: int) -> dict[str, Pixels]:
    photo = [cv2.resize(getattr(skdata, n)(), (size, size)) for n in ("chelsea", "coffee")]
    return {
        "drawn": syn.draw_scene(3, (size, size)),
        "drawn (censored, restored)": syn.draw_scene(7, (size, size)),
        "photo chelsea": np.ascontiguousarray(photo[0]),
        "photo coffee": np.ascontiguousarray(photo[1]),
    }


def main() -> None:
    cv2.setNumThreads(1)
    rows: list[dict[str, object]] = []
    for size in (1024, 2048):
        for name, rgb in pictures(size).items():
            encoded = {n: enc(rgb) for n, enc in ENCODERS.items()}
            for data in encoded.values():
                assert np.array_equal(decode(data), rgb)
            # Interleaved runs, fastest of each: a busy machine slows all alike.
            enc_s = dict.fromkeys(ENCODERS, float("inf"))
            dec_s = dict.fromkeys(ENCODERS, float("inf"))
            for _ in range(RUNS):
                for n, enc in ENCODERS.items():
                    enc_s[n] = min(enc_s[n], fastest(lambda enc=enc, rgb=rgb: enc(rgb), 1))
                    dec_s[n] = min(dec_s[n], fastest(lambda d=encoded[n]: decode(d), 1))
            base = "pillow (adaptive filters)"
            for n, data in encoded.items():
                rows.append({
                    "size": size, "picture": name, "encoder": n,
                    "encode_ms": round(enc_s[n] * 1000, 1),
                    "speedup": round(enc_s[base] / enc_s[n], 2),
                    "kib": len(data) // 1024,
                    "size_ratio": round(len(data) / len(encoded[base]), 3),
                    "decode_ms": round(dec_s[n] * 1000, 1),
                    "decode_ratio": round(dec_s[n] / dec_s[base], 2),
                })  # fmt: skip
    print(f"{'size':>5} {'picture':<27} {'encoder':<26} {'encode':>9} {'x pillow':>8} "
          f"{'KiB':>6} {'size':>6} {'decode':>9} {'dec':>5}")  # fmt: skip
    for r in rows:
        print(f"{r['size']:>5} {r['picture']:<27} {r['encoder']:<26} {r['encode_ms']:>7} ms "
              f"{r['speedup']:>7}x {r['kib']:>6} {r['size_ratio']:>6} {r['decode_ms']:>6} ms "
              f"{r['decode_ratio']:>5}")  # fmt: skip
    print(json.dumps({"runs": RUNS, "threads": 1, "rows": rows}))


if __name__ == "__main__":
    main()
