"""The paste of LaMa's and MI-GAN's output (issue 13): where a group's holes are specks
in a box of context and the crop reached the model unresized, the output is read at the
holes' own pixels instead of decoding the box; the same pixels either way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workers.imageops import synthetic as syn
from workers.onnx import OnnxConfig, standins
from workers.onnx import deepcreampy as dcp
from workers.onnx import inpainters as module
from workers.onnx.config import DeepCreamPyModel, LamaModel
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.inpainters import Lama, Migan, RegionInpainter


def varied(model: RegionInpainter) -> None:
    """The model's output made to differ pixel by pixel: each output is its first input
    read backwards along the rows, in the output's range."""
    run = model.model.run

    def backwards(outputs: Any, feeds: Any) -> Any:
        got = run(outputs, feeds)
        first = next(iter(feeds.values()))[:, :3, ::-1, :]
        return [np.ascontiguousarray(first.astype(g.dtype)) for g in got]

    model.model.run = backwards  # type: ignore[method-assign]


def decoded(model: RegionInpainter) -> list[int]:
    """Records how many output values each decode reads."""
    sizes: list[int] = []
    decode = model.decode

    def counted(outputs: Any) -> Any:
        sizes.append(int(outputs[0].size))
        return decode(outputs)

    model.decode = counted  # type: ignore[method-assign]
    return sizes


def speckled(side: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(70)
    rgb = syn.draw_scene(14, (side, side))
    mask = np.zeros((side, side), bool)
    for _ in range(200):
        y, x = (int(v) for v in rng.integers(0, side - 12, 2))
        mask[y : y + int(rng.integers(3, 13)), x : x + int(rng.integers(3, 13))] = True
    mask[300:340, 100:700] = True  # and a bar, pasted from its box
    rgb[mask] = syn.GREEN
    return rgb, mask


MAKERS: dict[str, Callable[[Path], RegionInpainter]] = {
    "lama-512": lambda p: Lama.load(standins.lama(p), LamaModel(), OnnxConfig()),
    "lama-dynamic": lambda p: Lama.load(
        standins.lama(p, size=None, batch="b"), LamaModel(), OnnxConfig()
    ),
    "migan-raw": lambda p: Migan.load(standins.migan_raw(p), OnnxConfig().migan, OnnxConfig()),
    "migan-pipeline": lambda p: Migan.load(
        standins.migan_pipeline(p), OnnxConfig().migan, OnnxConfig()
    ),
}


@pytest.mark.parametrize("key", sorted(MAKERS))
def test_specks_read_at_their_pixels_paste_what_the_box_would(
    tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = MAKERS[key](tmp_path / f"{key}.onnx")
    varied(model)
    rgb, mask = speckled(1024)
    sizes = decoded(model)
    got = model.inpaint(rgb, mask)
    assert np.array_equal(got[~mask], rgb[~mask])
    # The specks' values read: a few times their pixels, not their groups' boxes.
    assert sum(sizes) <= 3 * (mask.sum() + 60 * 620 * 2)
    monkeypatch.setattr(module, "_sparse", lambda region: None)
    want = model.inpaint(rgb, mask)
    assert np.array_equal(got, want)


def test_deepcreampy_specks_read_at_their_pixels_paste_what_the_box_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DeepCreamPy's output read at the specks' own pixels, and a group's pixels taken
    # straight from the mask where no other group's region is in its box: the same
    # pasted pixels as finishing the box and looking the labels up.
    path = standins.deepcreampy(tmp_path / "dcp.onnx", fill=0.5, batch="b")
    model = DeepCreamPyInpainter.load(path, DeepCreamPyModel(max_batch=3), "auto")
    run = model.model.run

    def backwards(outputs: Any, feeds: Any) -> Any:
        run(outputs, feeds)
        first = next(iter(feeds.values()))
        return [np.ascontiguousarray(first[:, ::-1, :, :])]

    model.model.run = backwards  # type: ignore[method-assign]
    finished: list[int] = []
    finish = dcp._finish

    def counted(pred: Any, size: int, window: Any) -> Any:
        finished.append((window[2] - window[0]) * (window[3] - window[1]))
        return finish(pred, size, window)

    monkeypatch.setattr(dcp, "_finish", counted)
    rgb, mask = speckled(1024)
    got = model.inpaint(rgb, mask)
    assert np.array_equal(got[~mask], rgb[~mask])
    assert sum(finished) <= 2 * 60 * 620  # the bar's boxes only
    monkeypatch.setattr(dcp, "_sparse", lambda region: None)
    monkeypatch.setattr(dcp, "_foreign", lambda regions, groups: np.ones(len(groups.boxes), bool))
    want = model.inpaint(rgb, mask)
    assert np.array_equal(got, want)
