"""The bounding-box shortcuts of workers/onnx/regions.py and the ESRGAN feather give the
same answers as the whole-picture operations they replace."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.onnx.esrgan import _feather
from workers.onnx.regions import Components, bounds, grow


def random_mask(rng: np.random.Generator) -> NDArray[np.bool_]:
    h, w = (int(v) for v in rng.integers(5, 120, 2))
    mask = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(0, 5))):
        x0, y0 = int(rng.integers(-10, w)), int(rng.integers(-10, h))
        mask[
            max(y0, 0) : y0 + int(rng.integers(1, 40)), max(x0, 0) : x0 + int(rng.integers(1, 40))
        ] = True
    return mask


def test_grow_and_components_match_the_whole_picture() -> None:
    rng = np.random.default_rng(8)
    for _ in range(400):
        mask = random_mask(rng)
        px = int(rng.integers(0, 6))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
        whole = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        assert np.array_equal(grow(mask, px), whole)
        box = bounds(mask)
        assert (box is None) == (not mask.any())
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            mask.astype(np.uint8), connectivity=8
        )
        found = Components(mask, 8)
        assert found.count == count
        for label, (x0, y0, x1, y1) in found.boxes():
            x, y, bw, bh = stats[label, :4]
            assert (x0, y0, x1, y1) == (x, y, x + bw, y + bh)
            assert np.array_equal(
                found.region(label, x0, y0, x1, y1), labels[y0:y1, x0:x1] == label
            )


def test_feather_in_the_box_matches_the_whole_picture() -> None:
    rng = np.random.default_rng(9)
    for _ in range(300):
        mask = random_mask(rng)
        box = bounds(mask)
        if box is None:
            continue
        feather = int(rng.integers(0, 6))
        # The whole-picture definition: distance to the nearest pixel outside the mask,
        # the picture's border not counting as outside.
        inside = np.pad(mask.astype(np.uint8), 1, constant_values=1)
        dist = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        whole = np.clip(dist / (feather + 1), 0, 1) if feather else mask.astype(np.float32)
        whole[~mask] = 0
        x0, y0, x1, y1 = box
        assert np.allclose(_feather(mask, box, feather), whole[y0:y1, x0:x1], atol=1e-6)
