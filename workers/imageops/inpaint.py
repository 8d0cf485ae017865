"""Model-free inpainting of masked regions (the cpu backend's stand-in for DeepCreamPy)."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Mask = NDArray[np.bool_]
FloatArray = NDArray[np.float32]

# Relaxation sweeps per pyramid level: the coarse levels carry the long-range colour, so a
# few sweeps per level converge where a single-scale solve would need thousands.
_SWEEPS = 24
_CONTEXT = 8


def _harmonic_fill(img: FloatArray, unknown: NDArray[np.bool_]) -> FloatArray:
    """Fill ``unknown`` pixels with a smooth membrane through the known ones (multigrid)."""
    h, w = unknown.shape
    if min(h, w) > 8 and unknown.any():
        known = (~unknown).astype(np.float32)
        small_w = cv2.resize(known, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
        small_i = cv2.resize(
            img * known[:, :, None], ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA
        )
        has = small_w > 1e-3
        coarse = np.where(has[:, :, None], small_i / np.maximum(small_w, 1e-3)[:, :, None], 0)
        # A coarse pixel is trusted only if most of its footprint is known, which keeps the
        # colour of mixed boundary pixels from bleeding in.
        coarse = _harmonic_fill(coarse.astype(np.float32), small_w < 0.5)
        init = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        init = np.broadcast_to(img[~unknown].mean(axis=0) if (~unknown).any() else 0.0, img.shape)
    out = np.where(unknown[:, :, None], init, img).astype(np.float32)
    kernel = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)
    where = np.repeat(unknown[:, :, None], 3, axis=2)
    avg = np.empty_like(out)
    for _ in range(_SWEEPS):
        cv2.filter2D(out, -1, kernel, dst=avg, borderType=cv2.BORDER_REPLICATE)
        np.copyto(out, avg, where=where)
    return out


def inpaint(rgb: Image, mask: Mask) -> Image:
    """Fill the masked pixels from their surroundings; every other pixel is left as is.

    Each masked blob is solved on its own padded window as a multi-scale harmonic
    (membrane) interpolation, which measured best among the cheap methods on shaded cel art
    (see ``bench/quality.py``).
    """
    out = rgb.copy()
    if not mask.any():
        return out
    h, w = mask.shape
    m8 = mask.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m8, connectivity=8)
    for k in range(1, n):
        x, y, bw, bh, _ = (int(v) for v in stats[k])
        pad = _CONTEXT + max(bw, bh) // 4
        x0, y0 = max(x - pad, 0), max(y - pad, 0)
        x1, y1 = min(x + bw + pad, w), min(y + bh + pad, h)
        # Solve for every masked pixel in the window, other blobs included, so that no
        # unknown colour (a neighbour's green) is ever read as known.
        unknown = mask[y0:y1, x0:x1]
        if unknown.all():
            if mask.all():
                return out
            x0, y0, x1, y1 = 0, 0, w, h
            unknown = mask
        filled = _harmonic_fill(rgb[y0:y1, x0:x1].astype(np.float32), unknown)
        roi = out[y0:y1, x0:x1]
        sel = labels[y0:y1, x0:x1] == k
        roi[sel] = np.clip(filled[sel] + 0.5, 0, 255).astype(np.uint8)
    return out
