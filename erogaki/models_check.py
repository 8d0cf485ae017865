"""``erogaki models check [--bench]``: load, validate and time every model the
configured onnx workers would load, without Redis and without starting a worker.

Each model is loaded exactly as a worker loads it (same settings, same checks,
same messages), run on a synthetic picture drawn in code, and reported with
its file, the contract recognised, the execution provider, the load time, the
latency and the licence note for that kind of model.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from erogaki_common.errors import ConfigError
from erogaki_common.settings import Settings, environment

BENCH_RUNS = 20
SIZE = (512, 512)

LICENCE_DETECTOR = {
    "Mask R-CNN": "hent-AI's weights: no licence stated, so no permission is given; "
    "a network you trained yourself: yours",
    "YOLO-seg": "Ultralytics states that models trained with it are AGPL-3.0; "
    "check the model's own card",
}
LICENCE_ESRGAN = (
    "4x_FatalPixels (hent-AI's ESRGAN model): MPL-2.0; other ESRGAN models carry their own"
)


@dataclass
class Report:
    name: str
    role: str
    path: Path | None = None
    contract: str = ""
    provider: str = ""
    load_s: float = 0.0
    runs_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    licence: str = ""
    error: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def check(settings: Settings, bench: bool, out: TextIO = sys.stdout) -> int:
    """Print the report; 0 when every model loads and runs, 2 otherwise."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print(
            "erogaki: onnxruntime is not installed; install erogaki[onnx] (or onnxruntime-gpu)",
            file=sys.stderr,
        )
        return 2
    from workers.onnx.config import OnnxConfig

    try:
        config = OnnxConfig.from_env(environment())
    except ConfigError as exc:
        print(f"erogaki: {exc}", file=sys.stderr)
        return 2
    runs = BENCH_RUNS if bench else 1
    reports = [
        _inpainter(config, settings.models_dir, runs, "DeepCreamPy worker: bar inpainting"),
        _detector(config, settings.models_dir, runs),
    ]
    if config.mosaic == "esrgan":
        reports.append(_esrgan(config, settings.models_dir, runs))
    else:
        # The hent-AI worker loads the same inpainting model: one report covers both.
        reports[0].role += "; hent-AI worker: mosaic restoration (EROGAKI_ONNX_MOSAIC=inpaint)"
    print(f"models directory: {settings.models_dir}", file=out)
    for report in reports:
        _print(report, bench, out)
    failed = [r for r in reports if r.error]
    for report in failed:
        print(f"erogaki: {report.error}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(reports)} models failed; see docs/models.md", file=out)
        return 2
    print(f"all {len(reports)} models load and run", file=out)
    return 0


def _measure(report: Report, load: Callable[[], Any], run: Callable[[Any], object],
             model_of: Callable[[Any], Any], runs: int) -> None:  # fmt: skip
    start = time.perf_counter()
    try:
        loaded = load()
    except ConfigError as exc:
        report.error = str(exc)
        return
    report.load_s = time.perf_counter() - start
    model = model_of(loaded)
    report.path, report.provider = model.path, model.provider
    report.metadata = model.metadata
    report.contract = loaded.describe()
    for _ in range(runs):
        busy = model.busy
        start = time.perf_counter()
        try:
            run(loaded)
        except Exception as exc:  # a model that loads can still fail on a real picture
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            report.error = (
                f"{model.path} loaded but failed on a {SIZE[1]}x{SIZE[0]} test picture "
                f"({reason[:300]})"
            )
            return
        report.runs_ms.append((time.perf_counter() - start) * 1000)
        report.model_ms.append((model.busy - busy) * 1000)


def _inpainter(config: Any, models_dir: Path, runs: int, role: str) -> Report:
    from workers.imageops import synthetic as syn
    from workers.onnx.inpainters import LICENCES, load_inpainter

    report = Report(config.inpainter, role, licence=LICENCES[config.inpainter])
    rgb = syn.draw_scene(7, SIZE)
    mask = np.zeros(SIZE, bool)
    mask[100:140, 60:300] = True
    mask[330:420, 350:390] = True
    rgb[mask] = syn.GREEN
    _measure(report, lambda: load_inpainter(config, models_dir),
             lambda m: m.inpaint(rgb, mask), lambda m: m.model, runs)  # fmt: skip
    return report


def _detector(config: Any, models_dir: Path, runs: int) -> Report:
    from workers.imageops import synthetic as syn
    from workers.onnx.config import model_path
    from workers.onnx.detector import load_detector

    report = Report("detector", "hent-AI worker: bar and mosaic detection")
    censored, _ = syn.add_bars(
        syn.draw_scene(8, SIZE), np.random.default_rng(1), 2, syn.BLACK, 12.0
    )
    path = model_path(models_dir, config.detector.file)
    _measure(report, lambda: load_detector(path, config.detector, config.provider),
             lambda d: d.detect(censored), lambda d: d.model, runs)  # fmt: skip
    if not report.error:
        variant = report.contract.split(",")[0]
        kind = "YOLO-seg" if variant.startswith("YOLO") else "Mask R-CNN"
        report.licence = LICENCE_DETECTOR[kind]
        stated = report.metadata.get("license") or report.metadata.get("licence")
        if stated:
            report.licence += f"; the file's metadata says: {stated}"
    return report


def _esrgan(config: Any, models_dir: Path, runs: int) -> Report:
    from workers.imageops import synthetic as syn
    from workers.onnx import esrgan
    from workers.onnx.config import model_path

    report = Report("esrgan", "hent-AI worker: mosaic restoration", licence=LICENCE_ESRGAN)
    mosaic, truth = syn.add_mosaic(syn.draw_scene(9, SIZE), np.random.default_rng(2), 10, (0, 0))
    path = model_path(models_dir, config.esrgan.file)

    class Restorer:
        def __init__(self, upscaler: esrgan.Esrgan) -> None:
            self.model = upscaler.model
            self.upscaler = upscaler

        def describe(self) -> str:
            return f"ESRGAN, {self.upscaler.scale}x upscaling"

        def restore(self) -> object:
            return esrgan.restore(mosaic, truth, self.upscaler, feather=config.mosaic_feather,
                                  default_block=config.mosaic_default_block)  # fmt: skip

    _measure(report, lambda: Restorer(esrgan.Esrgan.load(path, config.esrgan, config.provider)),
             lambda r: r.restore(), lambda r: r.model, runs)  # fmt: skip
    return report


def _print(report: Report, bench: bool, out: TextIO) -> None:
    print(f"\n{report.name}: {report.role}", file=out)
    if report.error:
        print(f"  FAILED     {report.error}", file=out)
        return
    print(f"  file       {report.path}", file=out)
    print(f"  contract   {report.contract}", file=out)
    print(f"  provider   {report.provider}", file=out)
    print(f"  load       {report.load_s:.2f} s", file=out)
    picture = f"{SIZE[1]}x{SIZE[0]} synthetic picture"
    if bench:
        p50, p95 = _percentile(report.runs_ms, 50), _percentile(report.runs_ms, 95)
        inside = statistics.median(report.model_ms)
        print(f"  latency    p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(report.runs_ms)} runs "
              f"({picture}; median {inside:.1f} ms inside the model)", file=out)  # fmt: skip
    else:
        print(f"  latency    {report.runs_ms[0]:.1f} ms, one run ({picture}, first run "
              "includes warm-up)", file=out)  # fmt: skip
    print(f"  licence    {report.licence}", file=out)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))
