"""Per-job time inside the model vs. in erogaki's own work around it, for every onnx
contract, at 1024x1024 and 2048x2048.

Run from the repository root: ``python bench/onnx_speed.py [--runs N] [--heavy]``.

On a GPU the model takes milliseconds, so the CPU work around it is what limits a GPU
worker. "Ours" is everything a job's step runs besides the model, as the worker runs
it (workers/pipeline.py), excluding PNG decode and encode:

- DeepCreamPy worker, hent-AI's hand-off (marked exact): ``green_mask``, then the
  inpainter's crops, resizes and paste;
- DeepCreamPy worker, a user's pre-masked picture: ``painted_mask``, then the same;
- hent-AI bar: detection's letterbox and mask decoding, then ``paint_green``;
- hent-AI mosaic: detection, then ESRGAN's (or the inpainter's) crops and blend;
- hent-AI auto: detection once, the mosaic restored, then ``paint_green``;
- RGBA pictures: splitting off the alpha plane and joining it back (its own row).

Three bars per picture, and a many-holes case (200 small holes). Measured on ONE CPU
thread (OpenCV and BLAS limited to one thread; the model itself may use more): "ours
cpu" is this thread's CPU time, fastest and median of the runs; "ours wall" and "job
wall" are medians of wall time. On a busy machine even CPU time swells; the fastest
run is closest to what an idle core spends, the median to what a loaded one does. The
budget is 50 ms of our own CPU per 1024x1024 job.

Models: the configured files in ``EROGAKI_MODELS_DIR`` where present (the real
weights, for the contract they match), generated stand-ins with the exact signatures
otherwise (``workers/onnx/standins.py``; ``--heavy`` adds convolution layers). The
output says which. Stand-in model times are NOT the real networks'; erogaki's own
times do not depend on the weights, only on the signatures and the picture.
Prints a table and one JSON line.
"""

from __future__ import annotations

import os

# One thread for our own work, set before numpy and OpenCV load.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erogaki_common.settings import environment, parse_settings  # noqa: E402
from workers.imageops import green_mask, paint_green, painted_mask  # noqa: E402
from workers.imageops import synthetic as syn  # noqa: E402
from workers.onnx import OnnxConfig, standins  # noqa: E402
from workers.onnx.backends import OnnxHentai  # noqa: E402
from workers.onnx.config import model_path  # noqa: E402
from workers.onnx.deepcreampy import DeepCreamPyInpainter  # noqa: E402
from workers.onnx.detector import load_detector  # noqa: E402
from workers.onnx.esrgan import Esrgan  # noqa: E402
from workers.onnx.inpainters import Lama, Migan  # noqa: E402
from workers.onnx.sessions import Model  # noqa: E402

SIDES = (1024, 2048)
BUDGET_MS = 50.0
MANY_HOLES = 200


@dataclass
class Row:
    contract: str
    job: str
    side: int
    source: str
    provider: str
    model_ms: float
    ours_ms: float
    ours_median_ms: float
    ours_wall_ms: float
    job_wall_ms: float


def gpu_name() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown GPU"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown GPU"


def timed(
    work: Callable[[], object], models: list[Model], runs: int
) -> tuple[float, float, float, float, float]:
    """Per run: median ms inside the models (wall); our own ms outside them as CPU time of
    this thread (what one core spends), fastest and median; median wall ms outside the
    models; median wall ms of the whole job step. On a busy machine even CPU time swells
    (shared caches), so the fastest run is the figure closest to an idle core's."""
    work()  # warm-up: first-run allocations (and CUDA kernel tuning) are not per job
    inside, ours_cpu, ours_wall, job_wall = [], [], [], []
    for _ in range(runs):
        busy = sum(m.busy for m in models)
        busy_cpu = sum(m.busy_cpu for m in models)
        start, start_cpu = time.perf_counter(), time.thread_time()
        work()
        total, total_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
        model = sum(m.busy for m in models) - busy
        model_cpu = sum(m.busy_cpu for m in models) - busy_cpu
        inside.append(model * 1000)
        ours_cpu.append((total_cpu - model_cpu) * 1000)
        ours_wall.append((total - model) * 1000)
        job_wall.append(total * 1000)
    return (statistics.median(inside), min(ours_cpu), statistics.median(ours_cpu),
            statistics.median(ours_wall), statistics.median(job_wall))  # fmt: skip


def reference_ms() -> float:
    """CPU ms of a fixed piece of OpenCV work on this thread (shrinking a 2048x2048 picture
    to 1024x1024 by area averaging, median of 9): lets figures from different machines,
    or from one machine under different load, be compared."""
    image = syn.draw_scene(1, (2048, 2048))
    times = []
    for _ in range(9):
        start = time.thread_time()
        cv2.resize(image, (1024, 1024), interpolation=cv2.INTER_AREA)
        times.append((time.thread_time() - start) * 1000)
    return statistics.median(times)


def pictures(side: int) -> dict[str, Any]:
    """The jobs' inputs at ``side``: three bars painted green, two black bars, a mosaic."""
    s = side / 1024
    clean = syn.draw_scene(7, (side, side))
    bars = np.zeros((side, side), bool)
    for y0, y1, x0, x1 in ((100, 140, 80, 400), (500, 560, 300, 900), (800, 1000, 600, 660)):
        bars[int(y0 * s) : int(y1 * s), int(x0 * s) : int(x1 * s)] = True
    green = clean.copy()
    green[bars] = syn.GREEN
    black = clean.copy()
    black[black.max(axis=-1) < 8] = 30
    black[bars] = 0
    # A mosaic of 10 px cells over a rectangle or ellipse 20-45% of the picture wide.
    mosaic, mosaic_mask = syn.add_mosaic(clean, np.random.default_rng(2), 10, (0, 0))
    # Many small holes: 200 specks of 3-12 px anywhere (a dotted or speckled censor).
    rng = np.random.default_rng(3)
    holes = np.zeros((side, side), bool)
    for _ in range(MANY_HOLES):
        x, y = (int(v) for v in rng.integers(0, side - 12, 2))
        hw, hh = (int(v) for v in rng.integers(3, 13, 2))
        holes[y : y + hh, x : x + hw] = True
    specks = clean.copy()
    specks[holes] = syn.GREEN
    # An RGBA picture's planes as decoded, for the alpha split and join.
    rgba = np.dstack([clean, np.full((side, side), 255, np.uint8)])
    return {"green": green, "bars": bars, "black": black, "mosaic": mosaic,
            "mosaic_mask": mosaic_mask, "specks": specks, "rgba": rgba}  # fmt: skip


def build(config: OnnxConfig, models_dir: Path, scratch: Path, heavy: bool) -> dict[str, Any]:
    """Every contract's model: the real file where configured and present, else a stand-in."""
    real = {
        "deepcreampy": model_path(models_dir, config.deepcreampy.file),
        "lama": model_path(models_dir, config.lama.file),
        "migan": model_path(models_dir, config.migan.file),
        "detector": model_path(models_dir, config.detector.file),
        "esrgan": model_path(models_dir, config.esrgan.file),
    }
    out: dict[str, Any] = {}

    def pick(key: str, role: str, make: Callable[[Path], Path], load: Callable[[Path], Any],
             accepts: Callable[[Any], bool] = lambda _: True) -> None:  # fmt: skip
        if real[role].is_file():
            try:
                loaded = load(real[role])
                if accepts(loaded):
                    out[key] = (loaded, "real")
                    return
            except Exception as exc:  # a real file of another contract: fall back
                logging.debug("%s: %s", real[role], exc)
        out[key] = (load(make(scratch / f"{key}.onnx")), "stand-in")

    p = config.provider
    pick(
        "deepcreampy",
        "deepcreampy",
        lambda f: standins.deepcreampy(f, fill=0.5, batch="b", heavy=heavy),
        lambda f: DeepCreamPyInpainter.load(f, config.deepcreampy, p),
    )
    pick(
        "lama-512",
        "lama",
        lambda f: standins.lama(f, heavy=heavy),
        lambda f: Lama.load(f, config.lama, config),
        lambda m: m.side is not None,
    )
    pick(
        "lama-dynamic",
        "lama",
        lambda f: standins.lama(f, size=None, batch="b", heavy=heavy),
        lambda f: Lama.load(f, config.lama, config),
        lambda m: m.side is None,
    )
    pick(
        "migan-raw",
        "migan",
        lambda f: standins.migan_raw(f, heavy=heavy),
        lambda f: Migan.load(f, config.migan, config),
        lambda m: not m.pipeline,
    )
    pick(
        "migan-pipeline",
        "migan",
        lambda f: standins.migan_pipeline(f, heavy=heavy),
        lambda f: Migan.load(f, config.migan, config),
        lambda m: m.pipeline,
    )
    maskrcnn = [(1, 0.9), (2, 0.9)]
    pick(
        "maskrcnn-1024",
        "detector",
        lambda f: standins.detector_dark(f, maskrcnn, size=(1024, 1024), heavy=heavy),
        lambda f: load_detector(f, config.detector, p),
        lambda d: "Mask R-CNN, fixed" in d.describe(),
    )
    pick(
        "maskrcnn-dynamic",
        "detector",
        lambda f: standins.detector_dark(f, maskrcnn, heavy=heavy),
        lambda f: load_detector(f, config.detector, p),
        lambda d: "Mask R-CNN, any" in d.describe(),
    )
    pick(
        "yolo-seg-raw",
        "detector",
        lambda f: standins.yolo_seg(f, heavy=heavy),
        lambda f: load_detector(f, config.detector, p),
        lambda d: "YOLO-seg raw" in d.describe(),
    )
    pick(
        "yolo-seg-nms",
        "detector",
        lambda f: standins.yolo_seg(f, nms=True, heavy=heavy),
        lambda f: load_detector(f, config.detector, p),
        lambda d: "YOLO-seg nms" in d.describe(),
    )
    pick("esrgan", "esrgan", lambda f: standins.esrgan(f, heavy=heavy),
         lambda f: Esrgan.load(f, config.esrgan, p))  # fmt: skip
    return out


def bench(
    config: OnnxConfig, models: dict[str, Any], side: int, runs: int, scratch: Path
) -> list[Row]:
    rows: list[Row] = []
    pics = pictures(side)

    def add(contract: str, job: str, work: Callable[[], object], used: list[Any]) -> None:
        inside, fastest, median, wall, whole = timed(work, [u.model for u in used], runs)
        keys = [k for k in contract.split("+") if k in models]
        source = "/".join(sorted({models[k][1] for k in keys})) or "-"
        provider = used[0].model.provider if used else "-"
        rows.append(Row(contract, job, side, source, provider, inside, fastest, median,
                        wall, whole))  # fmt: skip

    # The DeepCreamPy worker's step: the mask read as workers/pipeline.py reads it
    # (exactly for hent-AI's hand-off, forgivingly for a user's own paint), then the model.
    def handoff(m: Any, picture: Any) -> object:
        return m.inpaint(picture, green_mask(picture))

    def user(m: Any, picture: Any) -> object:
        return m.inpaint(picture, painted_mask(picture))

    for key in ("deepcreampy", "lama-512", "lama-dynamic", "migan-raw", "migan-pipeline"):
        m = models[key][0]
        add(key, "hand-off: green_mask + 3 bars", lambda m=m: handoff(m, pics["green"]), [m])
        add(key, "user: painted_mask + 3 bars", lambda m=m: user(m, pics["green"]), [m])
        add(key, f"hand-off: green_mask + {MANY_HOLES} holes",
            lambda m=m: handoff(m, pics["specks"]), [m])  # fmt: skip
    upscaler = models["esrgan"][0]
    for key in ("maskrcnn-1024", "maskrcnn-dynamic", "yolo-seg-raw", "yolo-seg-nms"):
        detector = models[key][0]
        backend = OnnxHentai(detector, upscaler, config)
        add(key, "bar: detect + paint_green",
            lambda b=backend: paint_green(pics["black"], b.detect_bars(pics["black"])),
            [detector])  # fmt: skip
    yolo = models["yolo-seg-raw"][0]
    backend = OnnxHentai(yolo, upscaler, config)
    add("esrgan", "mosaic: restore (20-45% of the side)",
        lambda: backend._restore(pics["mosaic"], pics["mosaic_mask"]), [upscaler])  # fmt: skip
    lama = models["lama-512"][0]
    by_inpainting = OnnxHentai(yolo, None, config, lama)
    add("lama-512", "mosaic: restore by inpainting",
        lambda: by_inpainting._restore(pics["mosaic"], pics["mosaic_mask"]), [lama])  # fmt: skip
    # auto: a detector that reports the mosaic's box and one bar, at hent-AI's 1024.
    ys, xs = np.nonzero(pics["mosaic_mask"])
    found = [(2, 0.9, (xs.min() / side, ys.min() / side, (xs.max() + 1) / side,
                       (ys.max() + 1) / side)), (1, 0.9, (0.1, 0.1, 0.4, 0.15))]  # fmt: skip
    boxes = load_detector(
        standins.detector_boxes(scratch / f"boxes-{side}.onnx", found, (1024, 1024)),
        config.detector, config.provider,
    )  # fmt: skip
    models["maskrcnn-boxes"] = (boxes, "stand-in")
    both = OnnxHentai(boxes, upscaler, config)

    def auto() -> object:
        restored, _, bars = both.auto(pics["mosaic"])
        return paint_green(restored, bars) if bars.any() else restored

    add("maskrcnn-boxes+esrgan", "auto: detect, restore, paint_green", auto,
        [boxes, upscaler])  # fmt: skip

    # An RGBA picture's extra work, as workers/pipeline.py does it around PNG decode and
    # encode: the colour planes copied out contiguous, and the alpha stacked back on.
    def alpha() -> object:
        rgba = pics["rgba"]
        rgb, plane = np.ascontiguousarray(rgba[..., :3]), rgba[..., 3]
        return np.dstack([rgb, plane])

    add("none", "alpha split + join (RGBA)", alpha, [])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per job (median)")
    parser.add_argument("--heavy", action="store_true", help="stand-ins with conv layers")
    parser.add_argument("--sides", default="1024,2048", help="picture sides to time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cv2.setNumThreads(1)
    env = environment()
    config = OnnxConfig.from_env(env)
    models_dir = parse_settings(env).models_dir
    device = f"{os.cpu_count()} CPU cores"
    if "CUDAExecutionProvider" in ort.get_available_providers() and config.provider != "cpu":
        device += f", {gpu_name()}"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        models = build(config, models_dir, Path(scratch), args.heavy)
        for side in (int(s) for s in args.sides.split(",")):
            rows += bench(config, models, side, args.runs, Path(scratch))
    reference = reference_ms()
    print(f"onnxruntime {ort.__version__}; {device}; our work on 1 thread; {args.runs} runs")
    print(f"reference: area-resizing 2048x2048 to 1024x1024 takes {reference:.1f} ms CPU here")
    print(f"{'contract':21} {'job':38} {'side':>5} {'model':9} {'provider':9} "
          f"{'model ms':>9} {'ours cpu':>8} {'(median)':>8} {'ours wall':>9} "
          f"{'job wall':>9}")  # fmt: skip
    for r in rows:
        flag = " over budget" if r.side == 1024 and r.ours_ms > BUDGET_MS else ""
        print(f"{r.contract:21} {r.job:38} {r.side:5} {r.source:9} "
              f"{r.provider.removesuffix('ExecutionProvider'):9} {r.model_ms:9.1f} "
              f"{r.ours_ms:8.1f} {r.ours_median_ms:8.1f} {r.ours_wall_ms:9.1f} "
              f"{r.job_wall_ms:9.1f}{flag}")  # fmt: skip
    if any(r.source != "real" for r in rows):
        print("stand-in model times are not the real networks'; 'ours' does not depend on them")
    print(json.dumps({
        "bench": "onnx_speed", "onnxruntime": ort.__version__, "device": device,
        "budget_ms_1024": BUDGET_MS, "reference_ms": round(reference, 2),
        "results": [{k: round(v, 1) if isinstance(v, float) else v
                     for k, v in r.__dict__.items()} for r in rows],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
