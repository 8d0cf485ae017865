"""Per-image latency of each onnx backend stage, per execution provider.

Run from the repository root: ``python bench/onnx_speed.py``. Each model comes
from ``EROGAKI_MODELS_DIR`` when the file is there (the real weights), and is
otherwise a generated stand-in of realistic-ish width (``workers/onnx/standins.py``):
the output says which. Stand-in timings show the pipeline's own overhead plus a
few convolutions, not the real networks' cost. It runs on the CPU provider, and
on CUDA too where onnxruntime-gpu and a GPU are present. Prints a table and one
JSON line.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erogaki_common.settings import environment, parse_settings
from workers.imageops import synthetic as syn
from workers.onnx import OnnxConfig, standins
from workers.onnx.config import model_path
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.detector import MOSAIC, Detector
from workers.onnx.esrgan import Esrgan, restore

SIZE = (1024, 1024)
RUNS = 3


def median_ms(work: Callable[[], object]) -> tuple[float, int]:
    work()  # warm-up: the first run allocates and (on CUDA) tunes kernels
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), RUNS


def gpu_name() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown GPU"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown GPU"


def models(config: OnnxConfig, models_dir: Path, scratch: Path) -> dict[str, tuple[Path, str]]:
    """Each stage's model file, and whether it is the real one or a stand-in."""
    found: dict[str, tuple[Path, str]] = {}
    wanted: dict[str, tuple[str, Callable[[Path], Path]]] = {
        "deepcreampy": (
            config.deepcreampy.file,
            lambda p: standins.deepcreampy(p, heavy=True, names=config.deepcreampy),
        ),
        "detector": (
            config.detector.file,
            lambda p: standins.detector_dark(
                p, [(1, 0.9), (MOSAIC, 0.9)], names=config.detector, heavy=True
            ),
        ),
        "esrgan": (
            config.esrgan.file,
            lambda p: standins.esrgan(p, heavy=True, names=config.esrgan),
        ),
    }
    for stage, (file, make) in wanted.items():
        real = model_path(models_dir, file)
        if real.is_file():
            found[stage] = (real, "real")
        else:
            found[stage] = (make(scratch / Path(file).name), "stand-in")
    return found


def bench_provider(
    provider: str, config: OnnxConfig, files: dict[str, tuple[Path, str]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    clean = syn.draw_scene(7, SIZE)
    # DeepCreamPy: three green bars of different sizes.
    masked = clean.copy()
    mask = np.zeros(SIZE, bool)
    for y0, y1, x0, x1 in ((100, 140, 80, 400), (500, 560, 300, 900), (800, 1000, 600, 660)):
        mask[y0:y1, x0:x1] = True
    masked[mask] = (0, 255, 0)
    inpainter = DeepCreamPyInpainter.load(files["deepcreampy"][0], config.deepcreampy, provider)
    ms, runs = median_ms(lambda: inpainter.inpaint(masked, mask))
    rows.append(
        _row(
            "deepcreampy inpaint (3 regions)",
            inpainter.model.provider,
            files,
            "deepcreampy",
            ms,
            runs,
        )
    )
    # Detection on the whole picture.
    detector = Detector.load(files["detector"][0], config.detector, provider)
    censored, _ = syn.add_bars(clean, np.random.default_rng(1), 2, syn.BLACK, 10.0)
    ms, runs = median_ms(lambda: detector.detect(censored))
    rows.append(_row("detector", detector.model.provider, files, "detector", ms, runs))
    # ESRGAN restoration of one mosaic region with 12 px blocks.
    upscaler = Esrgan.load(files["esrgan"][0], config.esrgan, provider)
    mosaic, truth = syn.add_mosaic(clean, np.random.default_rng(2), 12, (0, 0))
    ms, runs = median_ms(
        lambda: restore(mosaic, truth, upscaler, feather=config.mosaic_feather,
                        default_block=config.mosaic_default_block)
    )  # fmt: skip
    rows.append(_row("esrgan mosaic restore", upscaler.model.provider, files, "esrgan", ms, runs))
    return rows


def _row(
    stage: str, provider: str, files: dict[str, tuple[Path, str]], key: str, ms: float, runs: int
) -> dict[str, Any]:
    return {
        "stage": stage,
        "provider": provider,
        "model": files[key][1],
        "median_ms": round(ms, 1),
        "runs": runs,
    }


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    env = environment()
    config = OnnxConfig.from_env(env)
    models_dir = parse_settings(env).models_dir
    device = {"cpu": f"{os.cpu_count()} CPU cores"}
    providers = ["cpu"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.append("cuda")
        device["cuda"] = gpu_name()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        files = models(config, models_dir, Path(scratch))
        for stage, (path, kind) in files.items():
            print(f"{stage}: {kind} model {path if kind == 'real' else '(generated)'}")
        if any(kind == "stand-in" for _, kind in files.values()):
            print(
                f"stand-ins used where {models_dir} has no model: "
                "their timings are NOT the real networks'"
            )
        for provider in providers:
            try:
                rows += bench_provider(provider, config, files)
            except Exception as exc:  # a CUDA provider that fails to start is reported, not fatal
                print(f"{provider}: could not run: {exc}")
    print(f"onnxruntime {ort.__version__}, image {SIZE[1]}x{SIZE[0]}, median of {RUNS} runs")
    print(f"{'stage':34} {'provider':24} {'model':9} {'ms':>9}")
    for row in rows:
        print(f"{row['stage']:34} {row['provider']:24} {row['model']:9} {row['median_ms']:9.1f}")
    for name, what in device.items():
        print(f"{name}: {what}")
    print(
        json.dumps(
            {
                "bench": "onnx_speed",
                "onnxruntime": ort.__version__,
                "devices": device,
                "results": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
