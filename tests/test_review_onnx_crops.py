"""Outside review of the crops' shrink, grouping and paste (issue 13:
workers/onnx/regions.py, inpainters.py, deepcreampy.py), with synthetic pictures and
the stand-in models of workers/onnx/standins.py only."""

from __future__ import annotations

import cv2
import numpy as np

from workers.onnx.regions import shrink, shrink_any


def test_a_thin_crop_keeps_every_hole_pixel_in_its_shrunk_hole() -> None:
    # Crops far longer than wide shrink by different ratios each way (LaMa's cap makes
    # a 4000 x 20 crop 512 x 8; a fixed 512 model makes 5000 x 2 one 512 x 1). Every
    # pixel the area average's hole holds must stay (within a pixel) in the shrunk
    # hole: a bilinear step of over twice the size skipped rows and columns, and the
    # specks there were fed to the model as context (no hole), so never filled.
    rng = np.random.default_rng(41)
    kernel = np.ones((3, 3), np.uint8)
    cases = [((4000, 20), (512, 8)), ((5960, 2), (512, 1)), ((2508, 73), (512, 8)),
             ((20, 3757), (8, 512)), ((4878, 6), (256, 1)), ((1906, 14), (296, 8))]  # fmt: skip
    for (h, w), (ch, cw) in cases:
        hole = rng.random((h, w)) < 0.002
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[hole] = (0, 255, 0)
        pixels, gap = shrink(rgb, hole, (ch, cw))
        assert pixels.shape == (ch, cw, 3) and gap.shape == (ch, cw)
        assert not pixels[~gap].any(), (h, w, ch, cw)
        near = cv2.dilate(gap.view(np.uint8), kernel) > 0
        lost = int((shrink_any(hole, (ch, cw)) & ~near).sum())
        assert lost == 0, (h, w, ch, cw, lost)
