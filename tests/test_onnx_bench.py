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
    assert all(r["side"] == 384 and r["source"] == "stand-in" for r in rows)
    assert all(r["model_ms"] > 0 and r["ours_ms"] > 0 for r in rows)
    assert {r["job"] for r in rows} >= {"inpaint 3 bars", "detect bars",
                                        "auto: detect once, restore mosaic"}  # fmt: skip
