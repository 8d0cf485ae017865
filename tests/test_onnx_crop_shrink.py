"""The crops' shrink to a model's size (``regions.shrink``, issue 13): OpenCV's area
averaging at a ratio that is not a whole number cost 2-6 ms a crop; the shrink halves
exactly and bridges the rest bilinearly. It must keep the hole rule (no green passes
for context), stay close to an area average on real pictures, and keep the
antialiasing that plain bilinear loses on screentone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import skimage.data

from workers.imageops import synthetic as syn
from workers.onnx import OnnxConfig, standins
from workers.onnx.config import DeepCreamPyModel, LamaModel
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.inpainters import Lama
from workers.onnx.regions import shrink, shrink_any


def psnr(a: Any, b: Any) -> float:
    err = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return float(10 * np.log10(255.0**2 / max(err, 1e-9)))


def screentone(side: int, pitch: float) -> Any:
    y, x = np.mgrid[:side, :side]
    dots = np.sin(x * 2 * np.pi / pitch) * np.sin(y * 2 * np.pi / pitch) > 0.2
    v = dots.astype(np.uint8) * np.uint8(200) + np.uint8(30)
    return np.dstack([v, v, v])


def test_the_hole_covers_every_pixel_it_reached_and_little_more() -> None:
    # Green holes on black: whatever the ratio, odd or even sides, no output pixel
    # outside the shrunk hole has any green; and the hole is at most a pixel wider
    # than the area average's own (shrink_any).
    rng = np.random.default_rng(40)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(20, 1400, 2))
        ch, cw = int(rng.integers(max(h // 6, 1), h + 1)), int(rng.integers(max(w // 6, 1), w + 1))
        hole = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(1, 6))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            hole[y : y + int(rng.integers(1, 60)), x : x + int(rng.integers(1, 60))] = True
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[hole] = (0, 255, 0)
        pixels, gap = shrink(rgb, hole, (ch, cw))
        assert pixels.shape == (ch, cw, 3) and gap.shape == (ch, cw)
        assert not pixels[~gap].any(), (h, w, ch, cw)
        near = cv2.dilate(shrink_any(hole, (ch, cw)).view(np.uint8), kernel) > 0
        assert not (gap & ~near).any(), (h, w, ch, cw)


SIDES = [520, 580, 700, 870, 1023, 1100, 1460, 1461, 2048]


@pytest.mark.parametrize("side", SIDES)
def test_close_to_an_area_average_on_pictures(side: int) -> None:
    # A drawn scene and a photo shrunk by 1.02 to 4: within 38 dB of OpenCV's area
    # average (measured 38.5-67 dB), never further than plain bilinear sampling is
    # (33.9-61.5 dB).
    hole = np.zeros((side, side), bool)
    photo = np.asarray(skimage.data.coffee(), np.uint8)  # type: ignore[no-untyped-call]
    pictures = [
        syn.draw_scene(7, (side, side)),
        np.asarray(cv2.resize(photo, (side, side)), np.uint8),
    ]
    for rgb in pictures:
        area = cv2.resize(rgb, (512, 512), interpolation=cv2.INTER_AREA)
        linear = cv2.resize(rgb, (512, 512), interpolation=cv2.INTER_LINEAR)
        got = psnr(shrink(rgb, hole, (512, 512))[0], area)
        assert got >= 38.0 and got >= psnr(linear, area) - 0.01, side


@pytest.mark.parametrize("side", [s for s in SIDES if s >= 700])
def test_screentone_is_averaged_not_aliased(side: int) -> None:
    # Fine screentone (3.1 and 5.3 px) shrunk by 1.37 to 4: nearer the area average
    # than plain bilinear sampling, which skips pixels and makes moire.
    hole = np.zeros((side, side), bool)
    for pitch in (3.1, 5.3):
        tone = screentone(side, pitch)
        area = cv2.resize(tone, (512, 512), interpolation=cv2.INTER_AREA)
        linear = cv2.resize(tone, (512, 512), interpolation=cv2.INTER_LINEAR)
        assert psnr(shrink(tone, hole, (512, 512))[0], area) > psnr(linear, area) + 2.0


def resizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int, int, int]]:
    """Records every cv2.resize: (source h, w, result h, w, interpolation)."""
    calls: list[tuple[int, int, int, int, int]] = []
    resize = cv2.resize

    def recorded(src: Any, dsize: Any, *args: Any, **kwargs: Any) -> Any:
        out = resize(src, dsize, *args, **kwargs)
        interp = kwargs.get("interpolation", cv2.INTER_LINEAR)
        calls.append((*src.shape[:2], *out.shape[:2], int(interp)))
        return out

    monkeypatch.setattr(cv2, "resize", recorded)
    return calls


def slow_area(calls: list[tuple[int, int, int, int, int]]) -> list[Any]:
    """The area averages at a ratio that is not a whole number (OpenCV's slow path)."""
    return [c for c in calls if c[4] == cv2.INTER_AREA and (c[0] % c[2] or c[1] % c[3])]


def test_fixed_size_crops_never_take_the_slow_area_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bars whose crops are 580 to 1024 px, shrunk to LaMa's 512 and DeepCreamPy's 256.
    rgb = syn.draw_scene(9, (1024, 1024))
    mask = np.zeros(rgb.shape[:2], bool)
    mask[100:140, 80:400] = mask[500:560, 300:900] = mask[800:1000, 600:661] = True
    rgb[mask] = syn.GREEN
    lama = Lama.load(standins.lama(tmp_path / "lama.onnx"), LamaModel(), OnnxConfig())
    dcp = DeepCreamPyInpainter.load(
        standins.deepcreampy(tmp_path / "dcp.onnx", fill=0.5, batch="b"), DeepCreamPyModel(), "auto"
    )
    calls = resizes(monkeypatch)
    for model in (lama, dcp):
        out = model.inpaint(rgb, mask)
        assert np.array_equal(out[~mask], rgb[~mask])
    shrunk = [c for c in calls if c[4] == cv2.INTER_AREA]
    assert shrunk and not slow_area(calls), calls
