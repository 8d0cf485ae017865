"""PNG encoders for the workers' results: Pillow, OpenCV and erogaki's own (workers/png.py).

Run from the repository root: ``python bench/png.py``; ``--held-out`` adds pictures the
encoder's choices were not tuned on: other drawings, drawings through JPEG, more
photographs and textures, two with an alpha channel; ``--hostile`` adds pictures built
against the encoder's sample of rows (another picture in the rows between its sample
bands), rows smooth only along themselves, gradients and noise. Each encoder writes the same
8-bit picture at 1024x1024 and 2048x2048: drawn art (drawn in code by
``workers.imageops.drawn``) and photographs (scikit-image's chelsea and coffee,
upscaled). Times are CPU seconds of this process (``time.process_time``), one thread,
the fastest of several interleaved runs, so that other work on the machine weighs less.
Decoding is timed the way the next reader does it: Pillow, as
``erogaki_common.images.decode`` and the bot read results. Every file is checked to
decode to the picture. Prints a table, a summary per kind and size, then one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from functools import partial

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from skimage import data as skdata

from workers import png
from workers.imageops import drawn

Pixels = NDArray[np.uint8]
RUNS = 5
SIZES = (1024, 2048)


def pillow(rgb: Pixels) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG", compress_level=1)
    return out.getvalue()


def opencv_up(rgb: Pixels) -> bytes:
    # What workers/pipeline.py wrote before workers/png.py: zlib level 1, "up" filter.
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    code = cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, code), params)
    assert ok
    return bytes(buf.tobytes())


PILLOW, OPENCV = "pillow (level 1)", "opencv (up, level 1)"
ENCODERS: dict[str, Callable[[Pixels], bytes]] = {
    PILLOW: pillow,
    OPENCV: opencv_up,
    "erogaki (workers/png.py)": png.encode,
}


def cpu_seconds(fn: Callable[[], object]) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def decode(data: bytes, mode: str = "RGB") -> Pixels:
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode))


def _photo(name: str, size: int) -> Pixels:
    image = getattr(skdata, name)()
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.dstack([image] * 3)
    resized = cv2.resize(image[..., :3], (size, size), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(resized)


def _jpeg(rgb: Pixels, quality: int) -> Pixels:
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)


def _between_bands(inside: Pixels, outside: Pixels) -> Pixels:
    """``outside`` with ``inside``'s rows where workers/png.py samples the picture."""
    out = outside.copy()
    for start in png._band_starts(out.shape[0]):
        top = max(start - 1, 0)
        out[top : start + png._SAMPLE_ROWS] = inside[top : start + png._SAMPLE_ROWS]
    return out


def hostile(size: int) -> dict[str, tuple[str, Pixels]]:
    rng = np.random.default_rng(size)
    art = drawn.draw_art(61, (size, size), "plain").image
    manga = _jpeg(drawn.draw_art(62, (size, size), "manga").image, 80)
    photo = _photo("coffee", size)
    flat = np.full_like(art, 90)
    x = np.linspace(0, 255, size)
    ramp = np.stack([x, x[::-1], x / 2], -1).astype(np.uint8)
    knots = rng.integers(0, 256, (size, 8, 3), dtype=np.uint8)
    return {
        "photo between flat bands": ("photo", _between_bands(flat, photo)),
        "drawn between photo bands": ("drawn", _between_bands(photo, art)),
        "manga jpeg between drawn": ("drawn", _between_bands(art, manga)),
        "rows smooth along only": (
            "photo",
            np.asarray(cv2.resize(knots, (size, size)), np.uint8),
        ),
        "horizontal gradient": ("drawn", np.ascontiguousarray(np.broadcast_to(ramp, art.shape))),
        "noise": ("photo", rng.integers(0, 256, art.shape, dtype=np.uint8)),
    }


def pictures(size: int, held_out: bool) -> dict[str, tuple[str, Pixels]]:
    """name -> (kind, picture); kind is "drawn" or "photo"."""
    out: dict[str, tuple[str, Pixels]] = {
        "drawn 41 plain": ("drawn", drawn.draw_art(41, (size, size), "plain").image),
        "drawn 44 manga": ("drawn", drawn.draw_art(44, (size, size), "manga").image),
        "photo chelsea": ("photo", _photo("chelsea", size)),
        "photo coffee": ("photo", _photo("coffee", size)),
    }
    if held_out:
        for seed, theme, quality in ((51, "pastel", 85), (52, "night", 95), (53, "pink", 75)):
            art = drawn.draw_art(seed, (size, size), theme).image
            out[f"drawn {seed} {theme}"] = ("drawn", art)
            out[f"drawn {seed} {theme} jpeg{quality}"] = ("drawn", _jpeg(art, quality))
        manga = drawn.draw_art(54, (size, size), "manga").image
        out["drawn 54 manga"] = ("drawn", manga)
        out["drawn 54 manga jpeg80"] = ("drawn", _jpeg(manga, 80))
        for name in ("rocket", "retina", "hubble_deep_field", "grass", "page"):
            out[f"photo {name}"] = ("photo", _photo(name, size))
        # A result with an alpha channel (a transparent upload): a soft-edged hole.
        yy, xx = np.mgrid[:size, :size]
        hole = np.hypot(yy - size / 2, xx - size / 3) / (size / 4)
        alpha = np.clip((hole - 1) * 255 * 8, 0, 255).astype(np.uint8)
        art = drawn.draw_art(55, (size, size), "plain").image
        out["drawn 55 plain rgba"] = ("drawn", np.dstack([art, alpha]))
        out["photo rocket rgba"] = ("photo", np.dstack([_photo("rocket", size), alpha]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held-out", action="store_true", help="more pictures")
    parser.add_argument("--hostile", action="store_true", help="pictures built to mislead")
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rows: list[dict[str, object]] = []
    for size in SIZES:
        chosen_pictures = pictures(size, args.held_out)
        if args.hostile:
            chosen_pictures |= hostile(size)
        for name, (kind, rgb) in chosen_pictures.items():
            encoded = {n: enc(rgb) for n, enc in ENCODERS.items()}
            mode = "RGBA" if rgb.shape[2] == 4 else "RGB"
            for n, data in encoded.items():
                assert np.array_equal(decode(data, mode), rgb), n
            # Interleaved runs, fastest of each: a busy machine slows all alike.
            enc_s = dict.fromkeys(ENCODERS, float("inf"))
            dec_s = dict.fromkeys(ENCODERS, float("inf"))
            for _ in range(args.runs):
                for n, enc in ENCODERS.items():
                    enc_s[n] = min(enc_s[n], cpu_seconds(partial(enc, rgb)))
                    dec_s[n] = min(dec_s[n], cpu_seconds(partial(decode, encoded[n], mode)))
            chosen = png.plan(rgb)
            for n, data in encoded.items():
                rows.append({
                    "size": size, "kind": kind, "picture": name, "encoder": n,
                    "encode_cpu_ms": round(enc_s[n] * 1000, 1),
                    "speedup_vs_pillow": round(enc_s[PILLOW] / enc_s[n], 2),
                    "speedup_vs_opencv": round(enc_s[OPENCV] / enc_s[n], 2),
                    "kib": len(data) // 1024,
                    "size_vs_pillow": round(len(data) / len(encoded[PILLOW]), 3),
                    "decode_cpu_ms": round(dec_s[n] * 1000, 1),
                    "decode_vs_pillow": round(dec_s[n] / dec_s[PILLOW], 2),
                    **({"plan": f"{chosen.filter}, {chosen.deflate.name}"}
                       if n.startswith("erogaki") else {}),
                })  # fmt: skip
    print(f"{'size':>5} {'picture':<27} {'encoder':<25} {'encode':>9} {'x pillow':>8} "
          f"{'KiB':>6} {'size':>6} {'decode':>9} {'dec':>5}  plan")  # fmt: skip
    for r in rows:
        plan = r.get("plan", "")
        print(f"{r['size']:>5} {r['picture']:<27} {r['encoder']:<25} {r['encode_cpu_ms']:>6} ms "
              f"{r['speedup_vs_pillow']:>7}x {r['kib']:>6} {r['size_vs_pillow']:>6} "
              f"{r['decode_cpu_ms']:>6} ms {r['decode_vs_pillow']:>5}  {plan}")  # fmt: skip
    summary: dict[str, dict[str, float]] = {}
    ours = [r for r in rows if str(r["encoder"]).startswith("erogaki")]
    for size in SIZES:
        for kind in ("drawn", "photo"):
            sel = [r for r in ours if r["size"] == size and r["kind"] == kind]
            summary[f"{kind} {size}"] = {
                "min_speedup_vs_pillow": min(float(str(r["speedup_vs_pillow"])) for r in sel),
                "min_speedup_vs_opencv": min(float(str(r["speedup_vs_opencv"])) for r in sel),
                "max_size_vs_pillow": max(float(str(r["size_vs_pillow"])) for r in sel),
                "max_decode_vs_pillow": max(float(str(r["decode_vs_pillow"])) for r in sel),
            }
    print("summary (erogaki against pillow, worst picture of each kind):")
    for key, s in summary.items():
        speed, vs_opencv = s["min_speedup_vs_pillow"], s["min_speedup_vs_opencv"]
        larger, dec = s["max_size_vs_pillow"], s["max_decode_vs_pillow"]
        print(f"  {key:<11} encode >= {speed}x faster than pillow ({vs_opencv}x than "
              f"opencv), files <= {larger}x pillow's, decode <= {dec}x")  # fmt: skip
    print(json.dumps({"runs": args.runs, "threads": 1, "clock": "process_time",
                      "summary": summary, "rows": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
