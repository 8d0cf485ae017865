"""bench/onnx_speed.py runs end to end and covers every contract (small pictures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = {
    "deepcreampy", "lama-512", "lama-dynamic", "migan-raw", "migan-pipeline",
    "maskrcnn-1024", "maskrcnn-dynamic", "yolo-seg-raw", "yolo-seg-nms", "esrgan",
}  # fmt: skip
INPAINTERS = ("deepcreampy", "lama-512", "lama-dynamic", "migan-raw", "migan-pipeline")
COLUMNS = {
    "contract", "job", "side", "source", "provider", "model_ms", "ours_ms", "ours_median_ms",
    "ours_wall_ms", "job_wall_ms", "decode_ms", "mask_ms", "step_ms", "paint_ms", "encode_ms",
    "total_ms",
}  # fmt: skip


def test_bench_covers_every_contract(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EROGAKI_")}
    env["EROGAKI_MODELS_DIR"] = str(tmp_path)  # empty: stand-ins everywhere
    done = subprocess.run(
        [sys.executable, "bench/onnx_speed.py", "--runs", "1", "--sides", "384"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    rows = report["results"]
    assert {c for r in rows for c in r["contract"].split("+")} >= CONTRACTS
    assert all(r["side"] == 384 for r in rows)
    assert all(r["source"] == ("-" if r["contract"] == "none" else "stand-in") for r in rows)
    models = [r for r in rows if r["contract"] != "none"]
    assert all(r["model_ms"] > 0 and r["ours_ms"] > 0 for r in models)
    assert all(r["ours_ms"] <= r["ours_median_ms"] for r in rows)
    assert all(r["job_wall_ms"] >= r["ours_wall_ms"] for r in rows)
    # Every step is timed on its own, PNG decode and encode once each (by the workers'
    # own PNG code, the only one there is); the totals are their sums.
    for r in rows:
        assert set(r) == COLUMNS
        assert r["decode_ms"] > 0 and r["encode_ms"] > 0
        steps = r["mask_ms"] + r["step_ms"] + r["paint_ms"]
        assert abs(r["ours_ms"] - steps) <= 0.05 * steps + 0.1
        assert abs(r["total_ms"] - (r["decode_ms"] + r["ours_ms"] + r["encode_ms"])) < 0.1
    inpainting = [r for r in rows if "mask" in r["job"]]
    assert inpainting and all(r["mask_ms"] > 0 for r in inpainting)
    painting = [r for r in rows if "paint_green" in r["job"]]
    assert painting and all(r["paint_ms"] > 0 for r in painting)
    # Every step a job runs outside the model is counted: the mask read both ways, the
    # green paint, the alpha plane, and the many-holes case.
    jobs = {(r["contract"], r["job"]) for r in rows}
    for inpainter in INPAINTERS:
        assert {(inpainter, "hand-off: green_mask + 3 bars"),
                (inpainter, "user: painted_mask + 3 bars"),
                (inpainter, "hand-off: green_mask + 200 holes")} <= jobs  # fmt: skip
    assert ("yolo-seg-nms", "bar: detect + paint_green") in jobs
    assert ("maskrcnn-boxes+esrgan", "auto: detect, restore, paint_green") in jobs
    assert ("none", "alpha split + join (RGBA)") in jobs


def test_bench_times_only_the_jobs_asked_for(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EROGAKI_")}
    env["EROGAKI_MODELS_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "bench/onnx_speed.py", "--runs", "1", "--sides", "256",
         "--only", "esrgan: mosaic", "--only", "painted_mask"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout.strip().splitlines()[-1])["results"]
    assert {(r["contract"], r["job"].split(":")[0]) for r in rows} == {
        ("esrgan", "mosaic"),
        *((c, "user") for c in INPAINTERS),
    }
