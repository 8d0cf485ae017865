"""Outside review of the ONNX inpainters' reused tensors, shrunk holes and windowed
decoding (workers/onnx/inpainters.py, regions.py, deepcreampy.py), with the stand-in
models of workers/onnx/standins.py and synthetic pictures only."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.onnx import regions, standins
from workers.onnx.config import DeepCreamPyModel, LamaModel, OnnxConfig
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.inpainters import Inpainter, Lama, Migan
from workers.onnx.regions import Components, shrink_any

Picture = NDArray[np.uint8]
Hole = NDArray[np.bool_]


@pytest.fixture(scope="module")
def black(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Inpainter]:
    """Every kind of inpainter, each answering black in its hole (LaMa: the mean of the
    context it was shown) and passing the context through."""
    d: Path = tmp_path_factory.mktemp("black")
    standins.lama(d / "ldyn.onnx", fill="context", size=None, batch="b")
    standins.lama(d / "l512.onnx", fill="context", batch="b")
    # The picture fed, passed through: the hole must have been fed as black.
    standins.lama(d / "lpass.onnx", fill=None, size=None, batch="b")
    standins.lama(d / "lpass512.onnx", fill=None, batch="b")
    standins.migan_raw(d / "mraw.onnx", fill=-1.0)
    standins.migan_pipeline(d / "mpipe.onnx", fill=0)
    standins.deepcreampy(d / "dcp.onnx", fill=-1.0, keep_known=True, batch="b")
    cfg = OnnxConfig()
    return {
        "lama-dynamic-capped": Lama.load(d / "ldyn.onnx", LamaModel(max_batch=3, max_side=64), cfg),
        "lama-dynamic": Lama.load(d / "ldyn.onnx", LamaModel(max_batch=3), cfg),
        "lama-512": Lama.load(d / "l512.onnx", LamaModel(max_batch=3), cfg),
        "lama-fed-capped": Lama.load(d / "lpass.onnx", LamaModel(max_batch=3, max_side=64), cfg),
        "lama-fed-512": Lama.load(d / "lpass512.onnx", LamaModel(max_batch=3), cfg),
        "migan-raw": Migan.load(d / "mraw.onnx", cfg.migan, cfg),
        "migan-pipeline": Migan.load(d / "mpipe.onnx", cfg.migan, cfg),
        "deepcreampy": DeepCreamPyInpainter.load(
            d / "dcp.onnx", DeepCreamPyModel(max_batch=3), "auto"
        ),
    }


def _holes(kind: str, h: int, w: int, rng: np.random.Generator) -> Hole:
    mask = np.zeros((h, w), bool)
    if kind == "specks":
        n = int(rng.integers(200, 1500))
        mask[rng.integers(0, h, n), rng.integers(0, w, n)] = True
    elif kind == "corners":
        mask[:3, :3] = mask[-3:, -3:] = mask[:3, -1] = mask[-1, :3] = True
    elif kind == "one pixel":
        mask[int(rng.integers(0, h)), int(rng.integers(0, w))] = True
    elif kind == "all":
        mask[:] = True
    elif kind == "256 and 512":
        mask[10:266, 20:30] = True  # 256 tall
        mask[300:310, 0:512] = True  # 512 wide, at the left edge
    return mask


CASES = [
    ((8, 8), "corners"), ((8, 8), "one pixel"), ((9, 700), "specks"), ((600, 9), "specks"),
    ((530, 700), "specks"), ((530, 700), "256 and 512"), ((300, 301), "corners"),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
@pytest.mark.parametrize("kind", ["lama-dynamic-capped", "lama-dynamic", "lama-512",
                                  "lama-fed-capped", "lama-fed-512", "migan-raw",
                                  "migan-pipeline", "deepcreampy"])  # fmt: skip
def test_green_under_the_holes_never_passes_for_context(
    black: dict[str, Inpainter], kind: str
) -> None:
    # A black picture with green holes, and models that paint black where told it is
    # hole: any green they were shown as context (a shrunk hole missing a pixel that
    # saw green, a tensor holding the last crop's pixels, a window decoded from the
    # wrong place) comes back as a non-black pixel in the paste.
    rng = np.random.default_rng(7)
    inpainter = black[kind]
    for (h, w), holes in CASES:
        if kind == "deepcreampy" and min(h, w) < 16:
            continue  # its square crops cannot cover a strip (MAX_PASSES): known limit
        mask = _holes(holes, h, w, rng)
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[mask] = (0, 255, 0)
        got = inpainter.inpaint(rgb, mask)
        assert (got[~mask] == 0).all(), (kind, h, w, holes)
        if holes != "all":  # no context at all: LaMa's mean is 0/0
            assert int(got[mask].max()) == 0, (kind, h, w, holes)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], list[Inpainter]]:
    """Inpainters whose fill depends on every context pixel they are fed (LaMa's
    stand-in fills with the context's mean), so stale tensor contents show."""
    d: Path = tmp_path_factory.mktemp("context")
    standins.lama(d / "ldyn.onnx", fill="context", size=None, batch="b")
    standins.lama(d / "l512.onnx", fill="context", batch="b")
    standins.deepcreampy(d / "dcp.onnx", fill=0.3, keep_known=True, batch="b")
    cfg = OnnxConfig()

    def make() -> list[Inpainter]:
        return [
            Lama.load(d / "ldyn.onnx", LamaModel(max_batch=3), cfg),
            Lama.load(d / "l512.onnx", LamaModel(max_batch=2), cfg),
            DeepCreamPyInpainter.load(d / "dcp.onnx", DeepCreamPyModel(max_batch=3), "auto"),
        ]

    return make


def _job(seed: int, h: int, w: int) -> tuple[Picture, Hole]:
    rng = np.random.default_rng(seed)
    rgb = np.asarray(
        cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), np.uint8), (0, 0), 4), np.uint8
    )
    mask = np.zeros((h, w), bool)
    n = int(rng.integers(20, 120))
    mask[rng.integers(0, h, n), rng.integers(0, w, n)] = True
    mask[: h // 9, : w // 7] = True  # at the corner
    mask[h // 2 : h // 2 + 3, w - 90 :] = True  # at the right edge
    rgb[mask] = (0, 255, 0)
    return rgb, mask


JOBS = [(1, 300, 420), (2, 260, 333), (3, 257, 290)]


def test_jobs_in_two_threads_sharing_the_inpainters_match_the_jobs_alone(
    context: Callable[[], list[Inpainter]],
) -> None:
    # Crop sizes, batch sizes and chunk counts change from job to job; a tensor or
    # buffer shared between calls would hand one job's pixels to the other.
    jobs = [_job(*spec) for spec in JOBS]
    shared = context()
    alone = [[inpainter.inpaint(*job) for inpainter in shared] for job in jobs]
    got: dict[tuple[int, int], Picture] = {}

    def work(order: list[int]) -> None:
        for j in order:
            for i, inpainter in enumerate(shared):
                got[j, i] = inpainter.inpaint(*jobs[j])

    threads = [threading.Thread(target=work, args=(o,)) for o in ([0, 1, 2], [2, 1, 0])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (j, i), picture in got.items():
        assert np.array_equal(picture, alone[j][i]), (j, i)


def test_shrink_any_is_every_output_pixel_that_averages_any_hole_pixel() -> None:
    # The reference: the hole shrunk by area as floats, > 0 (8-bit levels round a
    # pixel that overlaps by under 1/510 to 0: green would pass for context).
    rng = np.random.default_rng(3)
    for _ in range(60):
        h, w = int(rng.integers(1, 700)), int(rng.integers(1, 700))
        size = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        mask = np.zeros((h, w), bool)
        n = int(rng.integers(1, 500))
        mask[rng.integers(0, h, n), rng.integers(0, w, n)] = True
        mask[-1, -1] = bool(rng.integers(2))
        want = cv2.resize(mask.astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA) > 0
        assert np.array_equal(shrink_any(mask, size), want), (h, w, size)


def test_packed_labelling_matches_opencv_on_the_whole_picture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Specks far apart (packed side by side and labelled at once), blobs and chains
    # crossing squares, next to the labelling of the whole picture.
    packed: list[bool] = []

    def counted(*args: Any) -> Any:
        found = real(*args)
        packed.append(found is not None)
        return found

    real = regions._packed
    monkeypatch.setattr(regions, "_packed", counted)
    rng = np.random.default_rng(11)
    for h, w, n in [(2000, 2100, 150), (1200, 1300, 400), (3000, 300, 100), (1500, 1400, 3000)]:
        mask = np.zeros((h, w), bool)
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        mask[ys, xs] = True
        mask[ys[: n // 3], np.minimum(xs[: n // 3] + 1, w - 1)] = True
        mask[np.minimum(ys[: n // 5] + 1, h - 1), np.minimum(xs[: n // 5] + 1, w - 1)] = True
        mask[: h // 40, w - 5 :] = True  # at a corner
        for k in range(0, 200, 2):  # a diagonal chain across squares
            mask[h // 2 + k, w // 3 + k] = True
        if n == 150:
            # Outlines of whole 32 px squares (the mask's box starts at 0, 0), apart:
            # packed with no blank pixel between, neighbours would join.
            mask[0, 0] = True
            for cy, cx in rng.integers(0, min(h, w) // 96, (120, 2)) * 3:
                mask[cy * 32 : cy * 32 + 32, cx * 32 : cx * 32 + 32] = True
                mask[cy * 32 + 1 : cy * 32 + 31, cx * 32 + 1 : cx * 32 + 31] = False
        for connectivity in (4, 8):
            found = Components(mask, connectivity)
            count, ref, stats, _ = cv2.connectedComponentsWithStats(
                mask.view(np.uint8), connectivity=connectivity
            )
            assert found.count == count
            ox, oy = found.box[:2]
            labels = np.zeros((h, w), np.int64)
            labels[oy : oy + found.labels.shape[0], ox : ox + found.labels.shape[1]] = found.labels
            pairs = np.unique(np.stack([labels[mask], ref[mask]]), axis=1)
            assert pairs.shape[1] == count - 1 == len(np.unique(pairs[0]))
            ours = found.stats[pairs[0]].copy()
            ours[:, :2] += (ox, oy)
            assert np.array_equal(ours, stats[pairs[1]])
    assert packed.count(True) >= 4, packed


def test_deepcreampy_fills_a_bar_across_a_banner_wider_than_its_passes(
    black: dict[str, Inpainter],
) -> None:
    # A 100 px tall banner with a bar from edge to edge: each crop is 100 px, each pass
    # fills the middle of every piece left. Two pieces whose centres fall in one
    # GROUP_TILE shared a crop centred on their joint box, which lay in the gap between
    # them: no pass filled either, and 2480 green pixels were left after MAX_PASSES.
    h, w = 100, 2000
    mask = np.zeros((h, w), bool)
    mask[45:55, :] = True
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[mask] = (0, 255, 0)
    got = black["deepcreampy"].inpaint(rgb, mask)
    assert int((got[mask] != 0).any(-1).sum()) == 0
