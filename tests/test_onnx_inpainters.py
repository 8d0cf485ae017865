"""LaMa and MI-GAN behind the inpainting worker, with stand-ins of their exports'
signatures (workers/onnx/standins.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from numpy.typing import NDArray

from erogaki_common.errors import ConfigError
from erogaki_common.settings import parse_settings
from workers.imageops import synthetic as syn
from workers.onnx import OnnxConfig, OnnxDeepCreamPy, standins
from workers.onnx.config import LamaModel
from workers.onnx.detector import grow
from workers.onnx.inpainters import Box, Lama, Migan, RegionInpainter, region_box
from workers.runner import deepcreampy_backend

ROOT = Path(__file__).resolve().parent.parent
FILL = 200  # what every stand-in puts in the hole, in pixels

Maker = Callable[[Path], Path]
MAKERS: dict[str, tuple[str, Maker]] = {
    "lama-512-scale255": ("lama", lambda p: standins.lama(p, fill=FILL / 255)),
    "lama-512-scale1-batch": (
        "lama", lambda p: standins.lama(p, fill=FILL / 255, scale=1.0, batch="b")
    ),
    "lama-dynamic": ("lama", lambda p: standins.lama(p, fill=FILL / 255, size=None, batch="b")),
    "migan-raw": ("migan", lambda p: standins.migan_raw(p, fill=FILL / 127.5 - 1.0)),
    "migan-pipeline": ("migan", lambda p: standins.migan_pipeline(p, fill=FILL)),
}  # fmt: skip


def backend(tmp_path: Path, key: str, **config: Any) -> OnnxDeepCreamPy:
    kind, make = MAKERS[key]
    make(tmp_path / f"{kind}.onnx")
    return OnnxDeepCreamPy.load(OnnxConfig(inpainter=kind, **config), tmp_path)


def scene() -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """An odd-sized scene with holes: small, large (over 512 once grown by the margin),
    at every border, round, and two close together."""
    rgb = syn.draw_scene(3, (701, 903))
    mask = np.zeros(rgb.shape[:2], bool)
    mask[50:80, 40:200] = True
    mask[150:650, 250:330] = True
    mask[0:15, 400:480] = True
    mask[680:701, 820:903] = True
    mask[200:230, 0:40] = True
    mask[300:310, 700:760] = True
    mask[316:330, 700:760] = True
    cv2.circle(mask.view(np.uint8), (600, 500), 40, 1, -1)
    rgb[mask] = syn.GREEN
    return rgb, mask


# --- crop geometry -----------------------------------------------------------------------


def test_region_box_examples() -> None:
    # Any-size models: the hole and 128 px around it, cut at the edges.
    assert region_box((300, 300, 340, 320), 1000, 800, 128, None) == Box(172, 172, 468, 448)
    assert region_box((0, 700, 50, 800), 1000, 800, 128, None) == Box(0, 572, 178, 800)
    # Fixed 512: a square of at least 512 around the hole, moved inside the picture.
    assert region_box((300, 300, 340, 320), 1000, 800, 128, 512) == Box(64, 54, 576, 566)
    assert region_box((0, 0, 20, 20), 1000, 800, 128, 512) == Box(0, 0, 512, 512)
    assert region_box((100, 100, 900, 140), 1000, 800, 128, 512) == Box(0, 0, 1000, 800)
    # A picture smaller than the model: the whole picture (resized up to the model).
    assert region_box((10, 10, 20, 20), 300, 200, 128, 512) == Box(0, 0, 300, 200)


@pytest.mark.parametrize("side", [None, 256, 512])
def test_region_box_properties(side: int | None) -> None:
    rng = np.random.default_rng(4)
    for _ in range(2000):
        w, h = (int(v) for v in rng.integers(8, 2500, 2))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
        margin = int(rng.integers(0, 200))
        b = region_box((x0, y0, x1, y1), w, h, margin, side)
        # Inside the picture, around the hole and the context asked for.
        assert 0 <= b.x0 < b.x1 <= w and 0 <= b.y0 < b.y1 <= h
        assert b.x0 <= max(x0 - margin, 0) and b.x1 >= min(x1 + margin, w)
        assert b.y0 <= max(y0 - margin, 0) and b.y1 >= min(y1 + margin, h)
        if side is None:
            assert (b.x0, b.y0, b.x1, b.y1) == (
                max(x0 - margin, 0), max(y0 - margin, 0), min(x1 + margin, w), min(y1 + margin, h)
            )  # fmt: skip
        else:
            # Square wherever the picture allows, never under the model's size, and no
            # larger than the hole with its margins needs (cut at the picture's edges:
            # a hole at an edge is not shrunk for context that is not there).
            need = max(min(x1 + margin, w) - max(x0 - margin, 0),
                       min(y1 + margin, h) - max(y0 - margin, 0))  # fmt: skip
            want = max(need, side)
            assert (b.x1 - b.x0, b.y1 - b.y0) == (min(want, w), min(want, h))


# --- what each contract gets and gives ---------------------------------------------------


@pytest.mark.parametrize("key", list(MAKERS))
def test_only_masked_pixels_change(tmp_path: Path, key: str) -> None:
    rgb, mask = scene()
    out = backend(tmp_path, key).inpaint(rgb, mask)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], rgb[~mask])
    assert np.abs(out[mask].astype(int) - FILL).max() <= 1


def test_lama_output_scale_is_measured(tmp_path: Path) -> None:
    for scale in (255.0, 1.0):
        standins.lama(tmp_path / "lama.onnx", fill=0.5, scale=scale)
        model = Lama.load(tmp_path / "lama.onnx", LamaModel(), OnnxConfig())
        assert model.scale == scale and f"[0, {scale:g}]" in model.describe()
    # Set by hand, it is believed: a [0, 255] model read as [0, 1] saturates.
    standins.lama(tmp_path / "lama.onnx", fill=0.5)
    forced = Lama.load(tmp_path / "lama.onnx", LamaModel(output_scale=1.0), OnnxConfig())
    rgb, mask = scene()
    assert (forced.inpaint(rgb, mask)[mask] == 255).all()


def context_mean(rgb: NDArray[np.uint8], hole: NDArray[np.bool_], box: Box) -> NDArray[Any]:
    ys, xs = box.slices
    mean: NDArray[Any] = rgb[ys, xs][~hole[ys, xs]].astype(float).mean(axis=0)
    return mean


@pytest.mark.parametrize("size", [None, 512], ids=["dynamic", "fixed-512"])
def test_each_hole_gets_its_own_context(tmp_path: Path, size: int | None) -> None:
    # The stand-in fills a hole with the mean of the context it was given, so each hole's
    # colour tells which crop the model saw, and that the hole was not part of it.
    rgb = syn.draw_scene(12, (640, 960))
    mask = np.zeros(rgb.shape[:2], bool)
    holes = [(40, 40, 80, 104), (600, 200, 680, 240), (880, 560, 960, 640), (400, 400, 480, 440)]
    for x0, y0, x1, y1 in holes:
        mask[y0:y1, x0:x1] = True
    rgb[mask] = syn.GREEN
    standins.lama(tmp_path / "lama.onnx", fill="context", size=size)
    model = Lama.load(tmp_path / "lama.onnx", LamaModel(), OnnxConfig(inpaint_grow=0))
    out = model.inpaint(rgb, mask)
    assert np.array_equal(out[~mask], rgb[~mask])
    for x0, y0, x1, y1 in holes:
        box = region_box((x0, y0, x1, y1), 960, 640, 128, size)
        expected = context_mean(rgb, mask, box)
        got = out[y0 + 8 : y1 - 8, x0 + 8 : x1 - 8].reshape(-1, 3).astype(float)
        # Shrinking to 512 moves the mean by resampling only.
        assert np.abs(got - expected).max() <= (1.0 if size is None else 4.0), (x0, y0)


def test_grown_hole_keeps_the_fringe_out_of_the_context(tmp_path: Path) -> None:
    # A pale-green fringe around the paint (a soft brush) must not be the context the
    # model fills from, and must not change either.
    rgb = np.full((400, 400, 3), 100, np.uint8)
    mask = np.zeros((400, 400), bool)
    mask[150:250, 150:250] = True
    fringe = grow(mask, 2) & ~mask
    rgb[fringe] = (120, 230, 120)
    rgb[mask] = syn.GREEN
    standins.lama(tmp_path / "lama.onnx", fill="context", size=None)
    out = Lama.load(tmp_path / "lama.onnx", LamaModel(), OnnxConfig(inpaint_grow=2)).inpaint(
        rgb, mask
    )
    assert np.array_equal(out[~mask], rgb[~mask])
    assert (out[mask] == 100).all()
    # Without the growth the fringe is context, and tints the fill.
    out = Lama.load(tmp_path / "lama.onnx", LamaModel(), OnnxConfig(inpaint_grow=0)).inpaint(
        rgb, mask
    )
    assert (out[mask] != 100).any()


def count_runs(model: RegionInpainter) -> list[int]:
    """Wraps the model's run to record each call's batch size."""
    calls: list[int] = []
    run = model.model.run

    def counted(outputs: Any, feeds: Any) -> Any:
        calls.append(next(iter(feeds.values())).shape[0])
        return run(outputs, feeds)

    model.model.run = counted  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize(("batch", "expected"), [(1, [1] * 6), ("b", [4, 2])])
def test_regions_are_batched_when_the_batch_is_dynamic(
    tmp_path: Path, batch: int | str, expected: list[int]
) -> None:
    standins.lama(tmp_path / "lama.onnx", fill=FILL / 255, batch=batch)
    model = Lama.load(tmp_path / "lama.onnx", LamaModel(max_batch=4), OnnxConfig())
    calls = count_runs(model)
    rgb = syn.draw_scene(2, (600, 1800))
    mask = np.zeros(rgb.shape[:2], bool)
    for i in range(6):  # six small holes: six 512x512 crops
        mask[100:130, 100 + 300 * i : 160 + 300 * i] = True
    out = model.inpaint(rgb, mask)
    assert calls == expected
    assert (
        np.array_equal(out[~mask], rgb[~mask]) and (np.abs(out[mask].astype(int) - FILL) <= 1).all()
    )


def record_feeds(model: RegionInpainter) -> list[dict[str, NDArray[Any]]]:
    """Wraps the model's run to keep a copy of every feed it is given."""
    fed: list[dict[str, NDArray[Any]]] = []
    run = model.model.run

    def recorded(outputs: Any, feeds: Any) -> Any:
        fed.append({k: np.array(v) for k, v in feeds.items()})
        return run(outputs, feeds)

    model.model.run = recorded  # type: ignore[method-assign]
    return fed


@pytest.mark.parametrize("key", ["lama-512-scale255", "lama-dynamic", "migan-pipeline"])
def test_many_small_holes_cost_a_few_crops_not_one_each(tmp_path: Path, key: str) -> None:
    # 1,024 one-pixel specks once took a crop each (54 s, 7 GiB held at once at 768x768):
    # holes close together share a crop, so the runs follow the area, not the count.
    model = backend(tmp_path, key).inpainter
    assert isinstance(model, RegionInpainter)
    fed = record_feeds(model)
    rgb = syn.draw_scene(5, (768, 768))
    mask = np.zeros(rgb.shape[:2], bool)
    mask[::24, ::24] = True
    rgb[mask] = syn.GREEN
    out = model.inpaint(rgb, mask)
    assert np.array_equal(out[~mask], rgb[~mask])
    assert np.abs(out[mask].astype(int) - FILL).max() <= 1
    # At most one crop per 256 px tile of the picture, and every feed is bounded.
    assert 1 <= len(fed) <= (768 // 256 + 1) ** 2
    held = [sum(a.nbytes for a in feed.values()) for feed in fed]
    assert max(held) <= RegionInpainter.CHUNK_PIXELS * 4 * 4


def test_a_spread_of_holes_keeps_only_masked_pixels_and_fills_each(tmp_path: Path) -> None:
    # Random holes of random sizes, some touching, some across tile borders: every
    # masked pixel is filled exactly once and nothing else changes.
    rng = np.random.default_rng(7)
    for key in ("lama-512-scale1-batch", "lama-dynamic", "migan-raw"):
        (tmp_path / key).mkdir()
        model = backend(tmp_path / key, key)
        rgb = syn.draw_scene(6, (517, 1031))
        mask = np.zeros(rgb.shape[:2], bool)
        for _ in range(300):
            x, y = int(rng.integers(0, 1031)), int(rng.integers(0, 517))
            mask[y : y + int(rng.integers(1, 40)), x : x + int(rng.integers(1, 40))] = True
        rgb[mask] = syn.GREEN
        out = model.inpaint(rgb, mask)
        assert np.array_equal(out[~mask], rgb[~mask]), key
        assert np.abs(out[mask].astype(int) - FILL).max() <= 1, key


def test_dynamic_lama_crops_are_capped_and_scaled_back(tmp_path: Path) -> None:
    # A dynamic export once got a 5000x4000 hole's crop whole (22 Mpx): the long side is
    # capped, each side a multiple of 8, and the fill comes back at the picture's size.
    standins.lama(tmp_path / "lama.onnx", fill=FILL / 255, size=None)
    model = Lama.load(tmp_path / "lama.onnx", LamaModel(max_side=256), OnnxConfig())
    assert model.describe().endswith("crops shrunk to 256 px")
    fed = record_feeds(model)
    rgb = syn.draw_scene(8, (700, 1000))
    mask = np.zeros(rgb.shape[:2], bool)
    mask[100:600, 150:900] = True
    rgb[mask] = syn.GREEN
    out = model.inpaint(rgb, mask)
    (feed,) = fed
    shape = feed["image"].shape
    assert max(shape[2:]) <= 256 and shape[2] % 8 == 0 and shape[3] % 8 == 0
    assert np.array_equal(out[~mask], rgb[~mask])
    # Scaled back up about 4x: the hole's edge blends with its context, as when a fixed
    # 512 model shrinks a crop; inside, the fill.
    inner = cv2.erode(mask.view(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    assert np.abs(out[inner].astype(int) - FILL).max() <= 1
    # Under the cap, the crop goes in at native size (padded to a multiple of 8).
    uncapped = Lama.load(tmp_path / "lama.onnx", LamaModel(), OnnxConfig())
    fed = record_feeds(uncapped)
    small = np.zeros_like(mask)
    small[300:340, 400:450] = True  # grown by 2, with 128 around: 300x310
    uncapped.inpaint(rgb, small)
    assert fed[0]["image"].shape[2:] == (304, 312)
    assert OnnxConfig.from_env({}).lama.max_side == 2048
    assert OnnxConfig.from_env({"EROGAKI_ONNX_LAMA_MAX_SIDE": "1024"}).lama.max_side == 1024
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_LAMA_MAX_SIDE"):
        OnnxConfig.from_env({"EROGAKI_ONNX_LAMA_MAX_SIDE": "8"})


def test_fixed_size_model_pads_a_small_crop_rather_than_stretch_it(tmp_path: Path) -> None:
    # A 300x200 picture into a 512 model: the crop goes in at its own size and shape,
    # padded, so a circle stays a circle.
    standins.lama(tmp_path / "lama.onnx", fill=FILL / 255)
    model = Lama.load(tmp_path / "lama.onnx", LamaModel(), OnnxConfig(inpaint_grow=0))
    fed = record_feeds(model)
    rgb = syn.draw_scene(9, (200, 300))
    mask = np.zeros((200, 300), bool)
    mask[80:120, 130:170] = True
    out = model.inpaint(rgb, mask)
    (feed,) = fed
    image = feed["image"][0]
    assert image.shape == (3, 512, 512)
    expected = rgb.transpose(2, 0, 1) * ~mask / 255.0
    assert np.abs(image[:, :200, :300] - expected).max() < 1e-5
    assert np.array_equal(feed["mask"][0, 0, :200, :300] > 0.5, mask)
    assert np.array_equal(out[~mask], rgb[~mask]) and (out[mask] == FILL).all()
    # A crop longer than the model on one side is shrunk evenly, then padded.
    fed.clear()
    tall = syn.draw_scene(9, (1024, 300))
    hole = np.zeros((1024, 300), bool)
    hole[200:800, 100:200] = True  # its crop: 856x300, shrunk by 512/856
    model.inpaint(tall, hole)
    gap = fed[0]["mask"][0, 0] > 0.5
    ys, xs = np.nonzero(gap)
    # The hole (600 tall, 100 wide) keeps its 6:1 shape, about 359x60.
    assert abs((ys.max() - ys.min() + 1) - 6 * (xs.max() - xs.min() + 1)) <= 12
    assert xs.max() < 125  # the 300 px width became 179, the rest is padding


def test_migan_export_is_recognised_by_its_inputs(tmp_path: Path) -> None:
    standins.migan_raw(tmp_path / "migan.onnx")
    raw = Migan.load(tmp_path / "migan.onnx", OnnxConfig().migan, OnnxConfig())
    assert not raw.pipeline and raw.side == 512 and "raw export" in raw.describe()
    standins.migan_pipeline(tmp_path / "migan.onnx")
    piped = Migan.load(tmp_path / "migan.onnx", OnnxConfig().migan, OnnxConfig())
    assert piped.pipeline and piped.side is None and "pipeline" in piped.describe()


def test_migan_raw_sees_the_known_pixels_in_minus_one_to_one(tmp_path: Path) -> None:
    # fill -1 in the hole (black); the known part passes through: a grey picture keeps
    # its grey, proving (known - 0.5, rgb * known) was decoded right.
    standins.migan_raw(tmp_path / "migan.onnx", fill=-1.0)
    rgb = np.full((300, 300, 3), 90, np.uint8)
    mask = np.zeros((300, 300), bool)
    mask[100:200, 100:200] = True
    model = Migan.load(tmp_path / "migan.onnx", OnnxConfig().migan, OnnxConfig())
    out = model.inpaint(rgb, mask)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert (out[inner] <= 1).all() and np.array_equal(out[~mask], rgb[~mask])


# --- start-up refusals -------------------------------------------------------------------


def refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inpainter: str) -> str:
    """The DeepCreamPy worker's start-up refusal with ``inpainter`` configured."""
    monkeypatch.setenv("EROGAKI_ONNX_INPAINTER", inpainter)
    settings = parse_settings({"EROGAKI_MODELS_DIR": str(tmp_path)})
    with pytest.raises(ConfigError) as caught:
        deepcreampy_backend("onnx", settings)
    return str(caught.value)


def test_missing_lama_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(tmp_path, monkeypatch, "lama")
    assert "EROGAKI_ONNX_LAMA_MODEL" in message and str(tmp_path / "lama.onnx") in message
    assert "does not exist" in message and "'mask' float[?,1,?,?]" in message


def test_lama_with_a_three_channel_mask_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standins.deepcreampy(tmp_path / "lama.onnx", names=standins._DCP)
    message = refusal(tmp_path, monkeypatch, "lama")
    assert str(tmp_path / "lama.onnx") in message
    assert "input 'image' is missing" in message and "'Placeholder:0'" in message


def test_lama_of_another_size_per_side_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixed size that is not square (LaMa's exports are square or dynamic).
    standins.lama(tmp_path / "odd.onnx", size=None)
    proto = onnx.load(str(tmp_path / "odd.onnx"))
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = 512, 256
    onnx.save(proto, str(tmp_path / "lama.onnx"))
    message = refusal(tmp_path, monkeypatch, "lama")
    assert str(tmp_path / "lama.onnx") in message and "[512,256]" in message
    assert "square" in message


def test_lama_of_unknown_output_scale_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standins.lama(tmp_path / "lama.onnx", fill=0.5, scale=20.0)
    message = refusal(tmp_path, monkeypatch, "lama")
    assert str(tmp_path / "lama.onnx") in message
    assert "values around 10" in message and "EROGAKI_ONNX_LAMA_OUTPUT_SCALE" in message
    # Naming the scale by hand is trusted.
    config = OnnxConfig(inpainter="lama", lama=LamaModel(output_scale=255.0))
    assert OnnxDeepCreamPy.load(config, tmp_path).inpainter.describe().endswith("[0, 255]")


def test_migan_of_neither_export_is_refused_with_both_contracts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standins.lama(tmp_path / "migan.onnx")
    message = refusal(tmp_path, monkeypatch, "migan")
    assert "EROGAKI_ONNX_MIGAN_MODEL" in message and str(tmp_path / "migan.onnx") in message
    assert "as raw export" in message and "as pipeline export" in message
    assert (
        "input 'input' is missing" in message
        and "'image' is tensor(float), not tensor(uint8)" in message
    )


def test_bad_inpainter_settings_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_INPAINTER must be one of"):
        OnnxConfig.from_env({"EROGAKI_ONNX_INPAINTER": "sd"})
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_LAMA_OUTPUT_SCALE"):
        OnnxConfig.from_env({"EROGAKI_ONNX_LAMA_OUTPUT_SCALE": "100"})
    with pytest.raises(ConfigError, match="EROGAKI_ONNX_MOSAIC must be one of"):
        OnnxConfig.from_env({"EROGAKI_ONNX_MOSAIC": "blur"})
    config = OnnxConfig.from_env(
        {"EROGAKI_ONNX_INPAINTER": "LaMa", "EROGAKI_ONNX_LAMA_OUTPUT_SCALE": "1",
         "EROGAKI_ONNX_LAMA_IMAGE_INPUT": "img", "EROGAKI_ONNX_MIGAN_RESULT": "out"}
    )  # fmt: skip
    assert config.inpainter == "lama" and config.lama.output_scale == 1.0
    assert config.lama.image_input == "img" and config.migan.result == "out"
    assert OnnxConfig.from_env({}).inpainter == "deepcreampy"


def test_worker_with_a_bad_migan_exits_2(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "migan.onnx").write_bytes(b"\x00garbage")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EROGAKI_")}
    env |= {"REDIS_URL": redis_url, "EROGAKI_MODELS_DIR": str(tmp_path),
            "EROGAKI_ONNX_INPAINTER": "migan"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "erogaki", "worker", "deepcreampy", "--backend", "onnx"],
        cwd=ROOT, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr.decode()
    message = done.stderr.decode()
    assert str(tmp_path / "migan.onnx") in message and "Traceback" not in message
