"""How LaMa's and MI-GAN's holes share crops (issue 13): as many holes per crop as fit
with their margins, a crop at the picture's edge reaching as far as its context does,
and for models taking any size, crops joined where their margins overlap. Each hole
still gets its margins of context, and nothing outside the mask changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from workers.imageops import synthetic as syn
from workers.onnx import OnnxConfig, standins
from workers.onnx.config import DeepCreamPyModel, LamaModel
from workers.onnx.deepcreampy import DeepCreamPyInpainter
from workers.onnx.inpainters import Lama, Migan, RegionInpainter, join_groups, region_box
from workers.onnx.regions import group_holes

FILL = 200


def lama(tmp_path: Path, size: int | None) -> Lama:
    path = standins.lama(tmp_path / f"lama-{size}.onnx", fill=FILL / 255, size=size, batch="b")
    return Lama.load(path, LamaModel(max_batch=1), OnnxConfig())


def crops_fed(model: RegionInpainter) -> list[tuple[int, ...]]:
    """Wraps the model's run to record each call's image tensor shape."""
    shapes: list[tuple[int, ...]] = []
    run = model.model.run

    def recorded(outputs: Any, feeds: Any) -> Any:
        shapes.append(tuple(next(iter(feeds.values())).shape))
        return run(outputs, feeds)

    model.model.run = recorded  # type: ignore[method-assign]
    return shapes


def specks(side: int, step: int) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    rgb = syn.draw_scene(11, (side, side))
    mask = np.zeros((side, side), bool)
    for y in range(5, side - 8, step):
        for x in range(9, side - 8, step):
            mask[y : y + 6, x : x + 5] = True
    rgb[mask] = syn.GREEN
    return rgb, mask


def test_group_holes_keeps_each_group_within_its_span() -> None:
    # Random boxes, sizes and margins: every group's holes with their margins (cut at
    # the picture's edges) span at most the span, unless it is one hole alone; and the
    # square crop of a group holds each of its holes' margins.
    rng = np.random.default_rng(50)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(100, 2500, 2))
        n = int(rng.integers(1, 80))
        margin, side = int(rng.integers(0, 160)), int(rng.choice([256, 512]))
        span = max(side, 2 * margin + 64)
        x0s, y0s = rng.integers(0, w, n), rng.integers(0, h, n)
        x1s = np.minimum(x0s + rng.integers(1, 300, n), w)
        y1s = np.minimum(y0s + rng.integers(1, 300, n), h)
        group_of, count = group_holes((x0s, y0s, x1s, y1s), (h, w), margin, span)
        assert sorted(set(group_of.tolist())) == list(range(count))
        for g in range(count):
            sel = group_of == g
            a, b = int(x0s[sel].min()), int(y0s[sel].min())
            c, d = int(x1s[sel].max()), int(y1s[sel].max())
            reach = max(min(c + margin, w) - max(a - margin, 0),
                        min(d + margin, h) - max(b - margin, 0))  # fmt: skip
            assert reach <= span or sel.sum() == 1
            crop = region_box((a, b, c, d), w, h, margin, side)
            # Square, of the model's side or what the holes need if more.
            want = max(reach, side)
            assert (crop.x1 - crop.x0, crop.y1 - crop.y0) == (min(want, w), min(want, h))
            assert crop.x0 <= max(a - margin, 0) and crop.x1 >= min(c + margin, w)
            assert crop.y0 <= max(b - margin, 0) and crop.y1 >= min(d + margin, h)


def test_specks_all_over_a_fixed_size_model_take_nine_crops_at_1024(tmp_path: Path) -> None:
    # 400 specks over 1024x1024: a 512 crop holds the holes of 256 px of it with 128 px
    # of margin, and at an edge those of 384 px: three crops a side (the tiles of 256
    # px took sixteen), every one at the model's own resolution.
    model = lama(tmp_path, 512)
    shapes = crops_fed(model)
    rgb, mask = specks(1024, 51)
    out = model.inpaint(rgb, mask)
    assert len(shapes) <= 9 and all(s == (1, 3, 512, 512) for s in shapes)
    assert np.array_equal(out[~mask], rgb[~mask])
    assert np.abs(out[mask].astype(int) - FILL).max() <= 1


def test_a_hole_at_the_edge_is_seen_at_its_own_resolution(tmp_path: Path) -> None:
    # A 300 px bar at the left edge: with its margin cut by the edge it needs 428 px, so
    # its crop is the model's 512 unshrunk (it was 556, shrunk to 512).
    model = lama(tmp_path, 512)
    fed: list[Any] = []
    to_model = model._to_model

    def recorded(rgb: Any, hole: Any, content: Any, target: Any) -> Any:
        fed.append((hole.shape, content))
        return to_model(rgb, hole, content, target)

    model._to_model = recorded  # type: ignore[method-assign]
    rgb = syn.draw_scene(12, (900, 1000))
    mask = np.zeros((900, 1000), bool)
    mask[400:440, 0:300] = True
    rgb[mask] = syn.GREEN
    out = model.inpaint(rgb, mask)
    assert fed == [((512, 512), (512, 512))]
    assert np.array_equal(out[~mask], rgb[~mask])


@pytest.mark.parametrize("side", [1024, 2048])
def test_specks_all_over_an_any_size_model_share_a_few_large_crops(
    tmp_path: Path, side: int
) -> None:
    # Where margins overlap, one large crop holds fewer pixels than many small ones:
    # at most two crops, and no more pixels than the picture (16 or 64 crops of about
    # 512x512 before, 4 and 16 million pixels).
    model = lama(tmp_path, None)
    shapes = crops_fed(model)
    rgb, mask = specks(side, 61)
    out = model.inpaint(rgb, mask)
    assert len(shapes) <= 2
    assert sum(int(np.prod(s[2:])) for s in shapes) <= side * side
    assert np.array_equal(out[~mask], rgb[~mask])
    assert np.abs(out[mask].astype(int) - FILL).max() <= 1


def test_holes_far_apart_keep_crops_of_their_own(tmp_path: Path) -> None:
    # Two specks at opposite corners and one in the middle of a 2048 picture: three
    # crops of a speck and its margins, not one of the whole picture.
    model = lama(tmp_path, None)
    shapes = crops_fed(model)
    rgb = syn.draw_scene(13, (2048, 2048))
    mask = np.zeros((2048, 2048), bool)
    mask[10:20, 10:20] = mask[2030:2040, 2030:2040] = mask[1000:1010, 1000:1010] = True
    rgb[mask] = syn.GREEN
    out = model.inpaint(rgb, mask)
    assert len(shapes) == 3
    assert sum(int(np.prod(s[2:])) for s in shapes) <= 3 * 280 * 280
    assert np.array_equal(out[~mask], rgb[~mask])


def test_joined_crops_never_hold_more_pixels_than_apart() -> None:
    rng = np.random.default_rng(51)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(200, 3000, 2))
        n = int(rng.integers(1, 60))
        margin = int(rng.integers(0, 160))
        x0s, y0s = rng.integers(0, w, n), rng.integers(0, h, n)
        x1s = np.minimum(x0s + rng.integers(1, 200, n), w)
        y1s = np.minimum(y0s + rng.integers(1, 200, n), h)
        boxes = np.stack([x0s, y0s, x1s, y1s], axis=1).astype(np.int64)
        crop_of = join_groups(boxes, (h, w), margin, 2048)

        joined = 0
        for c in range(int(crop_of.max()) + 1):
            sel = boxes[crop_of == c]
            union = (sel[:, 0].min(), sel[:, 1].min(), sel[:, 2].max(), sel[:, 3].max())
            joined += crop_area(union, (h, w), margin)
        assert joined <= sum(crop_area(b, (h, w), margin) for b in boxes)


def crop_area(b: Any, shape: tuple[int, int], margin: int) -> int:
    h, w = shape
    return int((min(b[2] + margin, w) - max(b[0] - margin, 0))
               * (min(b[3] + margin, h) - max(b[1] - margin, 0)))  # fmt: skip


def test_deepcreampy_specks_share_crops_of_its_own_size(tmp_path: Path) -> None:
    # 400 specks over 1024x1024: regions spanning up to 170 px share one 256 px crop
    # (1.5 times the group); packed run by run, 25 crops (the 170 px tiles took 49),
    # each at the model's own size.
    path = standins.deepcreampy(tmp_path / "dcp.onnx", fill=FILL / 127.5 - 1.0, batch="b")
    model = DeepCreamPyInpainter.load(path, DeepCreamPyModel(max_batch=1), "auto")
    calls: list[Any] = []
    run = model.model.run

    def counted(outputs: Any, feeds: Any) -> Any:
        calls.append(next(iter(feeds.values())).shape)
        return run(outputs, feeds)

    model.model.run = counted  # type: ignore[method-assign]
    rgb, mask = specks(1024, 51)
    out = model.inpaint(rgb, mask)
    assert len(calls) <= 25
    assert np.array_equal(out[~mask], rgb[~mask])
    assert np.abs(out[mask].astype(int) - FILL).max() <= 1


def test_migan_pipeline_crops_are_never_joined(tmp_path: Path) -> None:
    # MI-GAN's pipeline export resizes a box around all of a crop's holes to its own
    # 512: a joined crop of specks all over would be filled at a quarter of their
    # resolution. Each crop stays the size of one group's: at most 512 px each way.
    model = Migan.load(standins.migan_pipeline(tmp_path / "mp.onnx", fill=FILL),
                       OnnxConfig().migan, OnnxConfig())  # fmt: skip
    fed: list[Any] = []
    run = model.model.run

    def recorded(outputs: Any, feeds: Any) -> Any:
        fed.append(np.array(feeds[OnnxConfig().migan.mask_input]))
        return run(outputs, feeds)

    model.model.run = recorded  # type: ignore[method-assign]
    rgb, mask = specks(1024, 61)
    out = model.inpaint(rgb, mask)
    assert len(fed) >= 9
    assert all(max(holes.shape[2:]) <= 512 for holes in fed)
    assert np.array_equal(out[~mask], rgb[~mask])
