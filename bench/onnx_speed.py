"""Per-job CPU of the onnx backend's own work around the model, step by step, PNG decode
and encode included, for every onnx contract, at 1024x1024 and 2048x2048.

Run from the repository root: ``python bench/onnx_speed.py [--runs N] [--heavy]
[--sides 1024,2048] [--only esrgan --only painted_mask]``.

On a GPU the model takes milliseconds, so the CPU work around it is what limits a GPU
worker. Each job runs the steps workers/pipeline.py runs, timed one by one as CPU time
of this thread, the model's own CPU taken out of the step that runs it:

- ``decode``: the input PNG to RGB (``pipeline._split``), as the workers write it
  (``pipeline.encode_png``, workers/png.py);
- ``mask``: DeepCreamPy's mask read as the pipeline reads it (``pipeline.read_mask``):
  exactly (``green_mask``) for hent-AI's hand-off, forgivingly (``painted_mask``) for a
  user's own paint, with the pipeline's checks;
- ``step``: the backend's work besides the model (the inpainter's crops, tensors and
  paste; detection's letterbox and masks; ESRGAN's grid, crops and blend);
- ``paint``: hent-AI's bars painted green (``pipeline.paint_bars``);
- ``encode``: the result PNG (``pipeline.encode_png``);
- ``ours`` = mask + step + paint (everything but PNG), fastest and median of the runs;
- ``total`` = decode + ours + encode.

Each step's figure is its fastest run (what an idle core spends; on a busy machine
even CPU time swells). Three bars per picture; a many-holes case (200 small holes);
at 2048 also the 1024 picture's bars in a 2048 picture (the same censored area: our
work should cost about the same, PNG four times as much); an RGBA row (the alpha
plane split off and joined back, no model). OpenCV and BLAS on one thread. The budget
(issue 13): total <= 15 ms at 1024x1024 and <= 50 ms at 2048x2048.

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

from erogaki_common.images import Limits  # noqa: E402
from erogaki_common.settings import environment, parse_settings  # noqa: E402
from workers import pipeline  # noqa: E402
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
BUDGET_MS = {1024: 15.0, 2048: 50.0}
MANY_HOLES = 200
LIMITS = Limits()
STEPS = ("decode", "mask", "step", "paint", "encode")


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
    decode_ms: float
    mask_ms: float
    step_ms: float
    paint_ms: float
    encode_ms: float
    total_ms: float


def gpu_name() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown GPU"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown GPU"


@dataclass
class Job:
    """One job's steps, as workers/pipeline.py runs them. ``work`` takes the decoded
    picture and returns the steps' results: it calls ``clock(step)`` when each step
    starts."""

    data: bytes  # the input PNG
    work: Callable[[Any, Callable[[str], None]], tuple[Any, Any]]  # -> (picture, alpha)


def timed(job: Job, models: list[Model], runs: int) -> dict[str, float]:
    """Per step, this thread's CPU ms of its fastest run (the models' own CPU taken out);
    ``ours`` fastest and median, the models' median wall ms, our and the job's median
    wall ms."""

    def once() -> tuple[dict[str, float], float, float, float]:
        cpu: dict[str, float] = dict.fromkeys(STEPS, 0.0)
        current = [""]  # the step being timed
        since = {"cpu": 0.0, "model": 0.0}
        model_wall = 0.0

        def model_cpu() -> float:
            return sum(m.busy_cpu for m in models)

        def clock(step: str) -> None:
            now, inside = time.thread_time(), model_cpu()
            if current[0]:
                spent = now - since["cpu"] - (inside - since["model"])
                cpu[current[0]] += spent * 1000
            current[0] = step
            since.update(cpu=now, model=inside)

        busy = sum(m.busy for m in models)
        start = time.perf_counter()
        clock("decode")
        rgb, alpha = pipeline._split(job.data, LIMITS)
        clock("")  # between steps: the job's own steps clock themselves
        picture, alpha = job.work((rgb, alpha), clock)
        clock("encode")
        pipeline.encode_png(picture, alpha)
        clock("")
        wall = time.perf_counter() - start
        model_wall = sum(m.busy for m in models) - busy
        ours_wall = wall - model_wall - cpu["decode"] / 1000 - cpu["encode"] / 1000
        return cpu, model_wall * 1000, ours_wall * 1000, wall * 1000

    once()  # warm-up: first-run allocations (and CUDA kernel tuning) are not per job
    results = [once() for _ in range(runs)]
    out = {step: min(r[0][step] for r in results) for step in STEPS}
    ours = [r[0]["mask"] + r[0]["step"] + r[0]["paint"] for r in results]
    out.update(
        ours=min(ours), ours_median=statistics.median(ours),
        model=statistics.median(r[1] for r in results),
        ours_wall=statistics.median(r[2] for r in results),
        job_wall=statistics.median(r[3] for r in results),
    )  # fmt: skip
    return out


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


def _bars(side: int, scale: float) -> Any:
    bars = np.zeros((side, side), bool)
    for y0, y1, x0, x1 in ((100, 140, 80, 400), (500, 560, 300, 900), (800, 1000, 600, 660)):
        bars[int(y0 * scale) : int(y1 * scale), int(x0 * scale) : int(x1 * scale)] = True
    return bars


def pictures(side: int) -> dict[str, Any]:
    """The jobs' inputs at ``side``: three bars painted green, two black bars, a mosaic."""
    s = side / 1024
    clean = syn.draw_scene(7, (side, side))
    bars = _bars(side, s)
    green = clean.copy()
    green[bars] = syn.GREEN
    # The 1024 picture's bars at their own size, in a picture of this size.
    small = clean.copy()
    small[_bars(side, 1.0)] = syn.GREEN
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
    # An RGBA picture (a transparent margin), for the alpha split and join.
    rgba = np.dstack([clean, np.full((side, side), 255, np.uint8)])
    rgba[: side // 8, :, 3] = 0
    return {"green": green, "small": small, "bars": bars, "black": black, "mosaic": mosaic,
            "mosaic_mask": mosaic_mask, "specks": specks, "rgba": rgba}  # fmt: skip


def png_of(rgb: Any, exact: bool = False) -> bytes:
    """The picture as the workers write it (hent-AI's hand-off marked exact, as the
    pipeline marks it)."""
    planes = (rgb[..., :3].copy(), rgb[..., 3].copy()) if rgb.shape[2] == 4 else (rgb, None)
    data = pipeline.encode_png(*planes)
    return pipeline.mark_exact(data) if exact else data


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
    config: OnnxConfig,
    models: dict[str, Any],
    side: int,
    runs: int,
    scratch: Path,
    only: tuple[str, ...] = (),
) -> list[Row]:
    rows: list[Row] = []
    pics = pictures(side)
    files = {k: png_of(pics[k], exact=k in ("green", "small", "specks"))
             for k in ("green", "small", "black", "mosaic", "specks", "rgba")}  # fmt: skip
    user = png_of(pics["green"])

    def add(contract: str, job_name: str, job: Job, used: list[Any]) -> None:
        if only and not any(o in f"{contract}: {job_name}" for o in only):
            return
        t = timed(job, [u.model for u in used], runs)
        keys = [k for k in contract.split("+") if k in models]
        source = "/".join(sorted({models[k][1] for k in keys})) or "-"
        provider = used[0].model.provider if used else "-"
        total = t["decode"] + t["ours"] + t["encode"]
        rows.append(Row(contract, job_name, side, source, provider, t["model"], t["ours"],
                        t["ours_median"], t["ours_wall"], t["job_wall"], t["decode"],
                        t["mask"], t["step"], t["paint"], t["encode"], total))  # fmt: skip

    # The DeepCreamPy worker's step (pipeline.inpaint_green): the mask read exactly for
    # hent-AI's hand-off, forgivingly for a user's own paint, then the model.
    def inpaint(m: Any, exact: bool) -> Callable[[Any, Callable[[str], None]], Any]:
        def work(decoded: Any, clock: Callable[[str], None]) -> Any:
            rgb, alpha = decoded
            clock("mask")
            mask = pipeline.read_mask(rgb, exact, alpha)
            clock("step")
            return m.inpaint(rgb, mask), alpha

        return work

    def job(key: str, work: Callable[[Any, Callable[[str], None]], Any]) -> Job:
        return Job(files[key], work)

    for key in ("deepcreampy", "lama-512", "lama-dynamic", "migan-raw", "migan-pipeline"):
        m = models[key][0]
        add(key, "hand-off: green_mask + 3 bars", job("green", inpaint(m, True)), [m])
        add(key, "user: painted_mask + 3 bars", Job(user, inpaint(m, False)), [m])
        add(key, f"hand-off: green_mask + {MANY_HOLES} holes", job("specks", inpaint(m, True)),
            [m])  # fmt: skip
        if side > 1024:
            add(key, "hand-off: the 1024 picture's 3 bars", job("small", inpaint(m, True)), [m])
    upscaler = models["esrgan"][0]

    def bars(backend: OnnxHentai) -> Callable[[Any, Callable[[str], None]], Any]:
        def work(decoded: Any, clock: Callable[[str], None]) -> Any:
            rgb, alpha = decoded
            clock("step")
            mask = backend.detect_bars(rgb)
            clock("paint")
            return pipeline.paint_bars(rgb, mask, rgb), alpha

        return work

    for key in ("maskrcnn-1024", "maskrcnn-dynamic", "yolo-seg-raw", "yolo-seg-nms"):
        detector = models[key][0]
        backend = OnnxHentai(detector, upscaler, config)
        add(key, "bar: detect + paint_green", job("black", bars(backend)), [detector])

    def restore(backend: OnnxHentai) -> Callable[[Any, Callable[[str], None]], Any]:
        def work(decoded: Any, clock: Callable[[str], None]) -> Any:
            rgb, alpha = decoded
            clock("step")
            return backend._restore(rgb, pics["mosaic_mask"]), alpha

        return work

    yolo = models["yolo-seg-raw"][0]
    by_esrgan = OnnxHentai(yolo, upscaler, config)
    add("esrgan", "mosaic: restore (20-45% of the side)", job("mosaic", restore(by_esrgan)),
        [upscaler])  # fmt: skip
    lama = models["lama-512"][0]
    by_inpainting = OnnxHentai(yolo, None, config, lama)
    add("lama-512", "mosaic: restore by inpainting", job("mosaic", restore(by_inpainting)),
        [lama])  # fmt: skip
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

    def auto(decoded: Any, clock: Callable[[str], None]) -> Any:
        rgb, alpha = decoded
        clock("step")
        restored, _, bars = both.auto(rgb)
        clock("paint")
        return (pipeline.paint_bars(restored, bars, rgb) if bars.any() else restored), alpha

    add("maskrcnn-boxes+esrgan", "auto: detect, restore, paint_green", job("mosaic", auto),
        [boxes, upscaler])  # fmt: skip

    # An RGBA picture: only PNG and the alpha plane's split and join (inside decode and
    # encode), no model.
    def rgba(decoded: Any, clock: Callable[[str], None]) -> Any:
        return decoded

    add("none", "alpha split + join (RGBA)", job("rgba", rgba), [])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per job (fastest)")
    parser.add_argument("--heavy", action="store_true", help="stand-ins with conv layers")
    parser.add_argument("--sides", default="1024,2048", help="picture sides to time")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="time only the jobs whose 'contract: job' contains this (repeatable)",
    )
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
            rows += bench(config, models, side, args.runs, Path(scratch), tuple(args.only))
    reference = reference_ms()
    print(f"onnxruntime {ort.__version__}; {device}; our work on 1 thread; {args.runs} runs; "
          "CPU ms per step (fastest run)")  # fmt: skip
    print(f"reference: area-resizing 2048x2048 to 1024x1024 takes {reference:.1f} ms CPU here")
    print("PNG by workers/png.py and pngread.py; budget: total <= 15 ms at 1024, 50 ms at 2048")
    print(f"{'contract':21} {'job':38} {'side':>5} {'model':8} {'model ms':>8} "
          f"{'decode':>6} {'mask':>6} {'step':>6} {'paint':>6} {'encode':>6} "
          f"{'ours':>6} {'(med)':>6} {'total':>6}")  # fmt: skip
    for r in rows:
        budget = BUDGET_MS.get(r.side)
        flag = "" if budget is None else "  over" if r.total_ms > budget else "  met"
        print(f"{r.contract:21} {r.job:38} {r.side:5} {r.source:8} {r.model_ms:8.1f} "
              f"{r.decode_ms:6.1f} {r.mask_ms:6.1f} {r.step_ms:6.1f} {r.paint_ms:6.1f} "
              f"{r.encode_ms:6.1f} {r.ours_ms:6.1f} {r.ours_median_ms:6.1f} "
              f"{r.total_ms:6.1f}{flag}")  # fmt: skip
    if any(r.source != "real" for r in rows):
        print("stand-in model times are not the real networks'; 'ours' does not depend on them")
    print(json.dumps({
        "bench": "onnx_speed", "onnxruntime": ort.__version__, "device": device,
        "budget_ms": BUDGET_MS, "reference_ms": round(reference, 2),
        "results": [{k: round(v, 2) if isinstance(v, float) else v
                     for k, v in r.__dict__.items()} for r in rows],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
