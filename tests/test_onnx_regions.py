"""The bounding-box shortcuts of workers/onnx/regions.py and the ESRGAN feather give the
same answers as the whole-picture operations they replace."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.imageops.green import bounds
from workers.onnx import regions
from workers.onnx.esrgan import _feather
from workers.onnx.regions import (
    Components,
    Labels,
    grow,
    resize_window,
    shrink_any,
    source_window,
)


def random_mask(rng: np.random.Generator) -> NDArray[np.bool_]:
    h, w = (int(v) for v in rng.integers(5, 120, 2))
    mask = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(0, 5))):
        x0, y0 = int(rng.integers(-10, w)), int(rng.integers(-10, h))
        mask[
            max(y0, 0) : y0 + int(rng.integers(1, 40)), max(x0, 0) : x0 + int(rng.integers(1, 40))
        ] = True
    return mask


def same_regions(mask: NDArray[np.bool_], connectivity: int) -> None:
    """``Components`` finds the regions OpenCV finds in the whole mask (numbered in
    another order), with their boxes."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=connectivity
    )
    before = mask.copy()
    found = Components(mask, connectivity)
    assert np.array_equal(mask, before)  # pieces are masked in copies, never in place
    assert found.count == count
    seen = set()
    for label, (x0, y0, x1, y1) in found.boxes():
        own = found.region(label, x0, y0, x1, y1)
        assert own.any()
        ys, xs = np.nonzero(own)
        whole = int(labels[y0 + ys[0], x0 + xs[0]])
        assert whole not in seen
        seen.add(whole)
        x, y, bw, bh = stats[whole, :4]
        assert (x0, y0, x1, y1) == (x, y, x + bw, y + bh)
        assert np.array_equal(own, labels[y0:y1, x0:x1] == whole)
    assert len(seen) == count - 1


def test_components_in_pieces_match_the_whole_picture() -> None:
    """Large masks, labelled piece by piece: bars far apart, a region inside another's
    box (a ring around a dab), regions that touch only diagonally, the picture's edges,
    and specks all over (one labelling of the box)."""
    rng = np.random.default_rng(21)
    for case in range(40):
        h, w = (int(v) for v in rng.integers(40, 700, 2))
        mask = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 8))):
            x, y = int(rng.integers(-20, w)), int(rng.integers(-20, h))
            kind = int(rng.integers(0, 4))
            if kind == 0:
                cv2.rectangle(mask, (x, y), (x + int(rng.integers(1, 200)), y + 12), 1, -1)
            elif kind == 1:
                cv2.circle(mask, (x, y), int(rng.integers(20, 150)), 1, int(rng.integers(2, 9)))
                cv2.circle(mask, (x, y), int(rng.integers(1, 12)), 1, -1)
            elif kind == 2:
                cv2.line(mask, (x, y), (x + 90, y + 90), 1, 1)  # diagonal steps
                cv2.line(mask, (x + 3, y), (x + 93, y + 90), 1, 1)
            else:
                mask[max(y, 0) :: 37, max(x, 0) :: 41] = 1
        if case % 5 == 0:
            specks = rng.random((h, w)) < 0.002
            mask[specks] = 1
        for connectivity in (4, 8):
            same_regions(mask.astype(bool), connectivity)


def test_pieces_whose_boxes_cover_the_mask_are_labelled_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nested rings, long parallel strokes and one piece filling the mask's box: each
    piece's box holds most of the others, so labelling piece by piece labelled (and
    copied) the box several times over (12 nested rings at 4000x3000: 0.08 -> 0.54 s
    of CPU). At most the box's pixels are labelled, and the regions are OpenCV's."""
    labelled: list[int] = []
    label = regions._label

    def counted(part: NDArray[np.uint8], connectivity: int) -> tuple[int, Labels, Labels]:
        labelled.append(part.size)
        return label(part, connectivity)

    monkeypatch.setattr(regions, "_label", counted)
    rings = np.zeros((700, 900), np.uint8)
    for i in range(6):
        cv2.rectangle(rings, (10 + 60 * i, 10 + 60 * i), (889 - 60 * i, 689 - 60 * i), 1, 2)
    strokes = np.zeros((600, 800), np.uint8)
    for i in range(5):
        cv2.line(strokes, (0, 120 * i - 300), (799, 120 * i + 300), 1, 2)
    one = np.zeros((300, 400), np.uint8)
    cv2.circle(one, (200, 150), 140, 1, 3)
    for mask in (rings, strokes, one):
        box = bounds(mask.astype(bool))
        assert box is not None
        area = (box[2] - box[0]) * (box[3] - box[1])
        for connectivity in (4, 8):
            labelled.clear()
            same_regions(mask.astype(bool), connectivity)
            assert sum(labelled) <= area


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
        same_regions(mask, 8)


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


def test_resize_window_is_the_window_of_the_whole_resize() -> None:
    rng = np.random.default_rng(10)
    image = np.asarray(
        cv2.GaussianBlur(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), (7, 7), 2), np.uint8
    )
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(100, 700, 2))
        x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        enlarge = h >= 256 and w >= 256
        whole = cv2.resize(
            image, (w, h), interpolation=cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA
        )
        got = resize_window(image, (h, w), (x0, y0, x1, y1))
        assert got.shape == (y1 - y0, x1 - x0, 3)
        assert np.abs(got.astype(int) - whole[y0:y1, x0:x1]).max() <= 1


def test_resize_window_of_a_part_is_the_window_of_the_whole_resize() -> None:
    """Given only the part of the source ``source_window`` names (a model's output need
    only be decoded there), the window is what resizing the whole gives, within the
    level ``resize_window`` already allows (sampling positions rounded to 1/32 px), and
    a small window needs a small part."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        sh, sw = (int(v) for v in rng.integers(8, 300, 2))
        image = np.asarray(
            cv2.GaussianBlur(rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8), (5, 5), 2),
            np.uint8,
        )
        h, w = sh + int(rng.integers(0, 400)), sw + int(rng.integers(0, 400))
        x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
        x1, y1 = (
            int(rng.integers(x0 + 1, min(x0 + 120, w) + 1)),
            int(rng.integers(y0 + 1, min(y0 + 120, h) + 1)),
        )
        part = source_window((sh, sw), (h, w), (x0, y0, x1, y1))
        px0, py0, px1, py1 = part
        assert 0 <= px0 < px1 <= sw and 0 <= py0 < py1 <= sh
        if (sh, sw) == (h, w):
            assert part == (x0, y0, x1, y1)
        else:  # the taps of the window's pixels and no more than 3 px beyond each side
            assert px1 - px0 <= (x1 - x0) * sw / w + 7 and py1 - py0 <= (y1 - y0) * sh / h + 7
        whole = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)
        got = resize_window(image[py0:py1, px0:px1], (h, w), (x0, y0, x1, y1), part, (sh, sw))
        assert got.shape == (y1 - y0, x1 - x0, 3)
        assert np.abs(got.astype(int) - whole[y0:y1, x0:x1]).max() <= 1


def test_shrink_any_marks_every_pixel_that_averages_any_of_the_mask() -> None:
    """A hole shrunk with the picture stays hole wherever a shrunk pixel averages over
    any of it: exactly where OpenCV's area average of the mask (in floats) is above 0.
    The 8-bit average it replaces dropped the pixels whose share of hole was under
    1/510 (rounded to 0): those, and only those, are added."""
    rng = np.random.default_rng(12)
    added = 0
    for case in range(400):
        sh, sw = (int(v) for v in rng.integers(4, 700, 2))
        if case % 2:
            scale = float(rng.uniform(0.1, 1.0))
            h, w = max(round(sh * scale), 1), max(round(sw * scale), 1)
        else:
            h, w = int(rng.integers(1, sh + 1)), int(rng.integers(1, sw + 1))
        mask = np.zeros((sh, sw), bool)
        for _ in range(int(rng.integers(0, 6))):
            y, x = int(rng.integers(0, sh)), int(rng.integers(0, sw))
            mask[y : y + int(rng.integers(1, 60)), x : x + int(rng.integers(1, 60))] = True
        if case % 5 == 0:
            mask |= rng.random((sh, sw)) < 0.003
        got = shrink_any(mask, (h, w))
        share = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        assert got.shape == (h, w) and np.array_equal(got, share > 0)
        old = cv2.resize(mask.view(np.uint8) * np.uint8(255), (w, h), interpolation=cv2.INTER_AREA)
        assert not (old.astype(bool) & ~got).any()
        new = got & ~old.astype(bool)
        assert (share[new] < 1 / 510 + 1e-6).all()
        added += int(new.sum())
    assert added  # the cases reach the pixels the 8-bit average dropped


def test_grow_piece_by_piece_is_the_whole_dilation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bars far apart are grown each in its own window, specks all over in one pass over
    their box: both give the whole picture's dilation, at the picture's edges too, and
    the bars' windows hold far fewer pixels than their box."""
    dilated: list[int] = []
    dilate = cv2.dilate

    def counted(part: NDArray[np.uint8], *args: object, **kwargs: object) -> object:
        dilated.append(part.size)
        return dilate(part, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(cv2, "dilate", counted)  # the module regions calls
    rng = np.random.default_rng(13)
    for case in range(30):
        h, w = (int(v) for v in rng.integers(200, 900, 2))
        mask = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(1, 5))):
            x, y = int(rng.integers(-20, w)), int(rng.integers(-20, h))
            mask[
                max(y, 0) : y + int(rng.integers(1, 40)), max(x, 0) : x + int(rng.integers(1, 300))
            ] = True
        mask[0, int(rng.integers(0, w))] = case % 2 == 0  # a pixel on the edge
        if case % 3 == 0:
            mask |= rng.random((h, w)) < 0.0004
        px = int(rng.integers(1, 6))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
        whole = dilate(mask.astype(np.uint8), kernel).astype(bool)
        dilated.clear()
        assert np.array_equal(grow(mask, px), whole), case
    bars = np.zeros((2000, 2000), bool)
    bars[100:140, 80:400] = bars[1500:1560, 300:900] = bars[800:1900, 1800:1860] = True
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    whole = dilate(bars.astype(np.uint8), kernel).astype(bool)
    dilated.clear()
    assert np.array_equal(grow(bars, 2), whole)
    assert len(dilated) == 3 and sum(dilated) < 0.1 * bars.size


def test_specks_all_over_are_labelled_once_packed_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specks over a large box (200 holes at 2048x2048 once took 30 ms of 4-connected
    labelling of the whole box): their pieces are packed side by side and labelled in
    one call over fewer pixels than the box, and the regions and boxes are OpenCV's,
    with pieces whose boxes hold others' squares (rings round specks) and at the edges."""
    labelled: list[int] = []
    label = regions._label

    def counted(part: NDArray[np.uint8], connectivity: int) -> tuple[int, Labels, Labels]:
        labelled.append(part.size)
        return label(part, connectivity)

    monkeypatch.setattr(regions, "_label", counted)
    rng = np.random.default_rng(14)
    for case in range(12):
        h, w = (int(v) for v in rng.integers(1000, 2100, 2))
        mask = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(30, 120))):
            x, y = int(rng.integers(-5, w)), int(rng.integers(-5, h))
            mask[
                max(y, 0) : y + int(rng.integers(1, 13)), max(x, 0) : x + int(rng.integers(1, 13))
            ] = 1
        for _ in range(case % 4):  # a ring round a speck: its box holds the speck's squares
            x, y = int(rng.integers(60, w - 60)), int(rng.integers(60, h - 60))
            cv2.circle(mask, (x, y), 50, 1, 2)
            mask[y - 2 : y + 3, x - 2 : x + 3] = 1
        for _ in range(case % 3):  # a stroke whose box holds a speck found before it
            x, y = int(rng.integers(0, w - 260)), int(rng.integers(0, h - 260)) // 32 * 32
            cv2.line(mask, (x, y + 250), (x + 250, y), 1, 2)
            mask[y : y + 4, x : x + 4] = 1
        mask[0, 0] = mask[h - 1, w - 1] = 1
        box = bounds(mask.astype(bool))
        assert box is not None
        for connectivity in (4, 8):
            labelled.clear()
            same_regions(mask.astype(bool), connectivity)
            assert len(labelled) == 1 and labelled[0] < (box[2] - box[0]) * (box[3] - box[1])
