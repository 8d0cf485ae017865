"""Labelling the holes (issue 13): OpenCV's stats cost a few ns a pixel of the whole
picture (4-connected, DeepCreamPy's: 6 ms at 1024x1024, eight times the labelling),
so where the regions are a small part of it their stats come from their own pixels.
They must be OpenCV's exactly."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from workers.onnx import regions
from workers.onnx.regions import Components


@pytest.mark.parametrize("connectivity", [4, 8])
def test_labels_and_stats_are_opencvs(connectivity: int) -> None:
    rng = np.random.default_rng(60)
    for turn in range(200):
        h, w = (int(v) for v in rng.integers(1, 500, 2))
        mask = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(0, 30))):
            y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            mask[y : y + int(rng.integers(1, 25)), x : x + int(rng.integers(1, 25))] = 1
        mask[rng.random((h, w)) < (0.002 if turn % 2 else 0.3)] = 1  # sparse or dense
        count, labels, stats = regions._label(mask, connectivity)
        want = cv2.connectedComponentsWithStats(mask, connectivity=connectivity, ltype=cv2.CV_32S)
        assert count == want[0], (turn, h, w)
        assert np.array_equal(labels, want[1]), (turn, h, w)
        assert np.array_equal(stats, want[2]), (turn, h, w)


def test_sparse_specks_are_labelled_without_opencvs_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    # 300 specks over 1024x1024, 4-connected as DeepCreamPy's regions are: no pass of
    # OpenCV's stats over the picture, and the regions are OpenCV's.
    rng = np.random.default_rng(61)
    mask = np.zeros((1024, 1024), bool)
    for _ in range(300):
        y, x = (int(v) for v in rng.integers(0, 1012, 2))
        mask[y : y + int(rng.integers(2, 12)), x : x + int(rng.integers(2, 12))] = True
    seen: list[int] = []
    with_stats = cv2.connectedComponentsWithStats

    def recorded(image: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(image.size)
        return with_stats(image, *args, **kwargs)

    monkeypatch.setattr(cv2, "connectedComponentsWithStats", recorded)
    found = Components(mask, connectivity=4)
    assert all(size < 1024 * 1024 // 8 for size in seen), seen
    monkeypatch.undo()
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        mask.view(np.uint8), connectivity=4, ltype=cv2.CV_32S
    )
    assert found.count == count
    boxes = sorted(box for _, box in found.boxes())
    assert boxes == sorted((int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in stats[1:])
