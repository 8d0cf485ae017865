"""The GPU worker image installs the project with ``--no-deps`` over requirements-gpu.txt,
so every runtime dependency in pyproject.toml must be pinned there, or the image builds
and then fails on its first import."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    # PEP 503 normalised name, extras and version dropped.
    bare = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


def test_every_runtime_dependency_is_pinned_for_the_gpu_image() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {_name(r) for r in project["dependencies"]}
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements-gpu.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"not pinned: {line}"
            pins[_name(line)] = line
    missing = sorted(needed - pins.keys())
    assert not missing, f"pyproject.toml needs these, requirements-gpu.txt lacks them: {missing}"
    # The worker's runtime: the onnx extra's package comes as its GPU build.
    assert "onnxruntime-gpu" in pins
