"""``erogaki models check``, run as a real process against stand-in model files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workers.onnx import standins

ROOT = Path(__file__).resolve().parent.parent


def check(models: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EROGAKI_")}
    base |= {"EROGAKI_MODELS_DIR": str(models), "REDIS_URL": "redis://127.0.0.1:1/0", **env}
    return subprocess.run(
        [sys.executable, "-m", "erogaki", "models", "check", *args],
        cwd=ROOT, env=base, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_good_set_checks_out(tmp_path: Path) -> None:
    standins.lama(tmp_path / "lama.onnx", fill=0.5, size=None, batch="b")
    standins.yolo_seg(tmp_path / "hentai_maskrcnn.onnx", nms=True)
    standins.esrgan(tmp_path / "esrgan_4x.onnx")
    done = check(tmp_path, EROGAKI_ONNX_INPAINTER="lama")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for name in ("lama.onnx", "hentai_maskrcnn.onnx", "esrgan_4x.onnx"):
        assert str(tmp_path / name) in out
    assert "LaMa, any size, dynamic batch (up to 8), output in [0, 255]" in out
    assert "YOLO-seg nms=True export, 640x640" in out and "bar: 1 'bar'" in out
    assert "ESRGAN, 4x upscaling" in out
    assert out.count("CPUExecutionProvider") == 3 and out.count(" ms, one run") == 3
    assert "Apache-2.0" in out and "AGPL-3.0" in out and "MPL-2.0" in out
    assert "all 3 models load and run" in out
    assert "Traceback" not in done.stderr


def test_bench_reports_p50_and_p95(tmp_path: Path) -> None:
    standins.migan_pipeline(tmp_path / "migan.onnx")
    standins.detector_dark(tmp_path / "hentai_maskrcnn.onnx", [(1, 0.9), (2, 0.8)])
    done = check(tmp_path, "--bench", EROGAKI_ONNX_INPAINTER="migan", EROGAKI_ONNX_MOSAIC="inpaint")
    assert done.returncode == 0, done.stdout + done.stderr
    # MI-GAN serves both workers; no ESRGAN is needed or checked.
    assert "esrgan" not in done.stdout and done.stdout.count("\n  file ") == 2
    assert done.stdout.count("over 20 runs") == 2 and "p95" in done.stdout
    assert "MI-GAN pipeline export (uint8)" in done.stdout and "MI-GAN: MIT" in done.stdout
    assert "Mask R-CNN, any size" in done.stdout and "no licence stated" in done.stdout


MISSING = "EROGAKI_ONNX_DEEPCREAMPY_MODEL: model file {dir}/deepcreampy_bar.onnx does not exist"
GARBAGE = "EROGAKI_ONNX_DETECTOR_MODEL: {dir}/hentai_maskrcnn.onnx is not a model onnxruntime"
SETTING = "EROGAKI_ONNX_DETECTOR_MOSAIC_CLASSES: {dir}/hentai_maskrcnn.onnx has no class 'blur'"


@pytest.mark.parametrize(
    ("setup", "expected"), [("missing", MISSING), ("garbage", GARBAGE), ("setting", SETTING)]
)
def test_a_bad_set_exits_2_with_plain_messages(tmp_path: Path, setup: str, expected: str) -> None:
    standins.deepcreampy(tmp_path / "deepcreampy_bar.onnx")
    standins.yolo_seg(tmp_path / "hentai_maskrcnn.onnx")
    standins.esrgan(tmp_path / "esrgan_4x.onnx")
    env = {}
    if setup == "missing":
        (tmp_path / "deepcreampy_bar.onnx").unlink()
    elif setup == "garbage":
        (tmp_path / "hentai_maskrcnn.onnx").write_bytes(b"<html>not a model</html>")
    else:
        env["EROGAKI_ONNX_DETECTOR_MOSAIC_CLASSES"] = "blur"
    done = check(tmp_path, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"erogaki: {expected.format(dir=tmp_path)}" in done.stderr
    assert "Traceback" not in done.stderr
    # The others are still checked and reported.
    assert "1 of 3 models failed" in done.stdout and done.stdout.count("provider   CPU") == 2


def test_a_bad_setting_exits_2(tmp_path: Path) -> None:
    done = check(tmp_path, EROGAKI_ONNX_INPAINTER="stable-diffusion")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("erogaki: EROGAKI_ONNX_INPAINTER must be one of")
    assert "Traceback" not in done.stderr
