"""The real worker programs (`erogaki worker ...`) as processes, against real Redis."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis
from numpy.typing import NDArray
from PIL import Image

from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis, find_binary
from erogaki_common.errors import ErrorName, JobFailed
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.submit import Submitter
from tests.conftest import wait_for
from tests.imaging import Pixels, pixels_of, png
from workers.imageops import synthetic as syn

ROOT = Path(__file__).resolve().parent.parent


class Workers:
    """Starts `erogaki worker` processes and stops them at the end of a test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self, name: str, instance: str, *extra: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "REDIS_URL": self.url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "erogaki", "worker", name, "--instance", instance,
             "--heartbeat-interval", "0.2", "--heartbeat-ttl", "1", *extra],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.procs.append(proc)
        client = aioredis.Redis.from_url(self.url)
        try:
            await wait_for(
                lambda: proc.poll() is not None or client.exists(keys.heartbeat_key(instance)),
                30,
                f"worker {instance} to start",
            )
        finally:
            await client.aclose()
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def workers(redis_url: str) -> Iterator[Workers]:
    group = Workers(redis_url)
    yield group
    group.stop()


@pytest.fixture
async def both(workers: Workers) -> Workers:
    await workers.start("hent-ai", "hentai-1")
    await workers.start("deepcreampy", "dcp-1")
    return workers


@pytest.fixture
async def submitter(redis_url: str) -> AsyncIterator[Submitter]:
    async with Submitter(redis_url) as sub:
        yield sub


def big_masked() -> Pixels:
    """A 2048x2048 scene with a large green region: about a second of inpainting,
    long enough to kill or stop a worker in the middle of it."""
    big = syn.draw_scene(4, (2048, 2048))
    big[200:1800, 900:1100] = (0, 255, 0)
    return big


def scene_with_bar() -> tuple[Pixels, Pixels, NDArray[np.bool_]]:
    clean = syn.draw_scene(11, (384, 384))
    censored, truth = syn.add_bars(clean, np.random.default_rng(3), 1, syn.BLACK, 20.0)
    return clean, censored, truth


def grow(mask: NDArray[np.bool_], px: int) -> NDArray[np.bool_]:
    import cv2

    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


async def test_bar_chain_through_both_workers(both: Workers, submitter: Submitter) -> None:
    clean, censored, truth = scene_with_bar()
    result = pixels_of(await submitter.decensor(png(censored), Mode.BAR, timeout=60))
    assert result.shape == clean.shape
    near = grow(truth, 4)
    # Nothing outside the bar changed; the bar is gone and close to the truth.
    assert np.array_equal(result[~near], censored[~near])
    assert (result[truth] == 0).all(axis=-1).mean() < 0.01
    error = np.abs(result[truth].astype(int) - clean[truth]).mean()
    assert error < np.abs(censored[truth].astype(int) - clean[truth]).mean() / 3


async def test_mosaic_is_restored(both: Workers, submitter: Submitter) -> None:
    clean = syn.draw_scene(5, (384, 384))
    censored, truth = syn.add_mosaic(clean, np.random.default_rng(9), 12, (5, 7))
    result = pixels_of(await submitter.decensor(png(censored), Mode.MOSAIC, timeout=60))
    # Detection snaps to whole cells, so it may reach one block past the truth.
    far = ~grow(truth, 12)
    assert np.array_equal(result[far], censored[far])
    # Squared error (what PSNR measures) drops: the restore is closer to the truth.
    before = ((censored[truth].astype(float) - clean[truth]) ** 2).mean()
    after = ((result[truth].astype(float) - clean[truth]) ** 2).mean()
    assert after < 0.95 * before


async def test_premasked_image_goes_straight_to_deepcreampy(
    workers: Workers, submitter: Submitter
) -> None:
    await workers.start("deepcreampy", "dcp-only")
    clean = syn.draw_scene(8, (256, 256))
    masked = clean.copy()
    masked[100:140, 60:200] = (0, 255, 0)
    result = pixels_of(await submitter.decensor(png(masked), Mode.BAR_MASKED, timeout=60))
    green = np.all(result == (0, 255, 0), axis=-1)
    assert not green.any()
    # The forgiving reading of the green may take a pixel of the rim, never more.
    keep = np.ones(green.shape, bool)
    keep[98:142, 58:202] = False
    assert np.array_equal(result[keep], clean[keep])


async def test_alpha_survives_the_chain(both: Workers, submitter: Submitter) -> None:
    _, censored, _ = scene_with_bar()
    alpha = np.full(censored.shape[:2], 200, np.uint8)
    rgba = np.dstack([censored, alpha])
    result = pixels_of(await submitter.decensor(png(rgba, "RGBA"), Mode.BAR, timeout=60))
    assert result.shape == rgba.shape
    assert (result[..., 3] == 200).all()


async def test_nothing_to_do_is_a_named_error(both: Workers, submitter: Submitter) -> None:
    plain = png(syn.draw_scene(2, (256, 256)))
    for mode, name in (
        (Mode.BAR, ErrorName.NO_CENSORED_REGIONS_FOUND),
        (Mode.MOSAIC, ErrorName.NO_CENSORED_REGIONS_FOUND),
        (Mode.BAR_MASKED, ErrorName.NO_MASKED_REGIONS_FOUND),
    ):
        with pytest.raises(JobFailed) as caught:
            await submitter.decensor(plain, mode, timeout=60)
        assert caught.value.info.name is name


OK = "a decensored image"


def bad_inputs() -> dict[str, tuple[bytes, set[str]]]:
    """Input -> the outcomes allowed: error names, or OK for a result."""
    clean, censored, _ = scene_with_bar()
    good_png = png(censored)
    jpeg = io.BytesIO()
    Image.fromarray(censored).save(jpeg, "JPEG", quality=90)
    cmyk = io.BytesIO()
    Image.fromarray(censored).convert("CMYK").save(cmyk, "JPEG", quality=90)
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")
    huge = io.BytesIO()
    Image.new("1", (20000, 20000)).save(huge, "PNG")
    gif = io.BytesIO()
    frames = [Image.fromarray(censored), Image.fromarray(clean)]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    webp = io.BytesIO()
    frames[0].save(webp, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    sixteen = io.BytesIO()
    Image.fromarray(censored[..., 0].astype(np.uint16) * 257).save(sixteen, "PNG")
    palette = io.BytesIO()
    Image.fromarray(censored).convert("P").save(palette, "PNG")
    grey = io.BytesIO()
    Image.fromarray(censored).convert("L").save(grey, "PNG")
    rgba = png(np.dstack([censored, np.full(censored.shape[:2], 255, np.uint8)]), "RGBA")
    invalid = {ErrorName.INVALID_IMAGE.value}
    # Conversions that keep the bar may still lose its flat colour (a palette's
    # dithering, 16-bit's single channel): then "nothing found" is honest.
    found = {OK, ErrorName.NO_CENSORED_REGIONS_FOUND.value}
    return {
        "zero bytes": (b"", invalid),
        "html": (b"<!DOCTYPE html><html><body>hi</body></html>", invalid),
        "truncated png": (good_png[: len(good_png) // 2], invalid),
        "truncated jpeg": (jpeg.getvalue()[: len(jpeg.getvalue()) // 2], invalid),
        "decompression bomb": (bomb.getvalue(), {ErrorName.IMAGE_DIMENSIONS_TOO_LARGE.value}),
        "20000x20000": (huge.getvalue(), {ErrorName.IMAGE_DIMENSIONS_TOO_LARGE.value}),
        "1x1": (png(np.zeros((1, 1, 3), np.uint8)), {ErrorName.IMAGE_TOO_SMALL.value}),
        "grayscale": (grey.getvalue(), found),
        "palette": (palette.getvalue(), found),
        "rgba": (rgba, {OK}),
        "16-bit png": (sixteen.getvalue(), found),
        "cmyk jpeg": (cmyk.getvalue(), found),
        "animated gif": (gif.getvalue(), found),
        "animated webp": (webp.getvalue(), {OK}),
    }


async def test_bad_input_never_kills_a_worker(
    both: Workers, submitter: Submitter, aredis: aioredis.Redis
) -> None:
    cases = bad_inputs()
    outcomes = await asyncio.gather(
        *(submitter.decensor(data, Mode.BAR, timeout=60) for data, _ in cases.values()),
        return_exceptions=True,
    )
    for (label, (_, allowed)), outcome in zip(cases.items(), outcomes, strict=True):
        if isinstance(outcome, JobFailed):
            assert outcome.info.name.value in allowed, (label, outcome.info)
            assert "Traceback" not in outcome.info.description
        else:
            assert isinstance(outcome, bytes), (label, outcome)
            assert OK in allowed, label
            assert pixels_of(outcome).shape[:2] == (384, 384), label
    # An input that expired before a worker read it.
    await aredis.rpush(Queue.HENTAI_BAR, "expired-job")
    await wait_for(lambda: aredis.exists(keys.error_key("expired-job")), what="the error")
    error = json.loads(await aredis.get(keys.error_key("expired-job")))
    assert error["name"] == "ImageNotFound"
    assert error["component"] == "hent-AI-erogaki-wrapper"
    # Both workers are alive and still work.
    assert all(p.poll() is None for p in both.procs)
    _, censored, _ = scene_with_bar()
    assert await submitter.decensor(png(censored), Mode.BAR, timeout=60)


async def test_seed_flow_typed_into_redis_cli(
    both: Workers, redis_server: EmbeddedRedis, aredis: aioredis.Redis
) -> None:
    cli = find_binary("redis-cli")
    port = str(redis_server.port)
    _, censored, _ = scene_with_bar()

    def run(*args: str, stdin: bytes | None = None) -> bytes:
        flags = ["-x"] if stdin is not None else []
        done = subprocess.run([cli, "-p", port, *flags, *args], input=stdin,
                              capture_output=True, check=True, timeout=10)  # fmt: skip
        return done.stdout

    run("config", "set", "notify-keyspace-events", "AKE")
    run("SET", "censored-images:seed-uuid", stdin=png(censored))
    run("RPUSH", "censored-images:hent-ai:bar", "seed-uuid")
    await wait_for(lambda: aredis.exists("decensored-images:seed-uuid"), 30, "the result")
    raw = await aredis.get("decensored-images:seed-uuid")
    assert pixels_of(raw).shape == censored.shape
    assert run("DEL", "decensored-images:seed-uuid") == b"1\n"


async def test_sigkill_mid_job_with_a_second_worker_running(
    workers: Workers, submitter: Submitter, aredis: aioredis.Redis
) -> None:
    victim = await workers.start("deepcreampy", "victim")
    big = big_masked()
    job_id = await submitter.submit(png(big), Mode.BAR_MASKED, timeout=60)
    held = keys.processing_key("victim", Queue.DEEPCREAMPY_BAR)
    await wait_for(lambda: aredis.llen(held), 30, "the victim to claim the job")
    await workers.start("deepcreampy", "rescuer")
    victim.send_signal(signal.SIGKILL)
    result = await submitter.result(job_id)
    assert pixels_of(result).shape == big.shape


async def test_poison_job_ends_as_an_error(
    workers: Workers, submitter: Submitter, aredis: aioredis.Redis
) -> None:
    # A job that kills every worker that takes it: killed on claim, three times.
    big = big_masked()
    job_id = await submitter.submit(png(big), Mode.BAR_MASKED, timeout=90)
    waiting = asyncio.create_task(submitter.result(job_id))
    for n in range(3):
        proc = await workers.start("deepcreampy", f"doomed-{n}")
        held = keys.processing_key(f"doomed-{n}", Queue.DEEPCREAMPY_BAR)
        await wait_for(lambda h=held: aredis.llen(h), 30, f"doomed-{n} to claim the job")  # type: ignore[misc]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    await workers.start("deepcreampy", "reaper")
    with pytest.raises(JobFailed) as caught:
        await asyncio.wait_for(waiting, 60)
    assert caught.value.info.name is ErrorName.JOB_FAILED_REPEATEDLY
    assert "3 times" in caught.value.info.description


async def test_sigterm_finishes_the_current_job_and_takes_no_new_one(
    workers: Workers, submitter: Submitter, aredis: aioredis.Redis
) -> None:
    proc = await workers.start("deepcreampy", "graceful")
    big = big_masked()
    first = await submitter.submit(png(big), Mode.BAR_MASKED, timeout=60)
    second = await submitter.submit(png(big), Mode.BAR_MASKED, timeout=60)
    held = keys.processing_key("graceful", Queue.DEEPCREAMPY_BAR)
    await wait_for(lambda: aredis.llen(held), 30, "the first claim")
    proc.send_signal(signal.SIGTERM)
    assert pixels_of(await submitter.result(first)).shape == big.shape
    await wait_for(lambda: proc.poll() is not None, 30, "the worker to exit")
    assert proc.returncode == 0
    assert await aredis.lrange(Queue.DEEPCREAMPY_BAR, 0, -1) == [second.encode()]
    await submitter.cancel(second)


async def test_metrics_endpoint(workers: Workers, submitter: Submitter) -> None:
    from erogaki_common.embedded_redis import free_port

    port = free_port()
    await workers.start("deepcreampy", "metered", "--metrics-port", str(port))
    masked = syn.draw_scene(8, (128, 128))
    masked[40:60, 20:100] = (0, 255, 0)
    await submitter.decensor(png(masked), Mode.BAR_MASKED, timeout=60)

    def scrape() -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(scrape)
    assert (
        'erogaki_jobs_total{error="",outcome="done",queue="censored-images:deepcreampy:bar"} 1.0'
        in text
    )
    assert "erogaki_processing_seconds_bucket" in text
    assert 'erogaki_queue_length{queue="censored-images:deepcreampy:bar"}' in text


async def test_onnx_backend_without_models_is_refused_at_start(
    redis_url: str, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erogaki", "worker", "deepcreampy", "--backend", "onnx",
        cwd=ROOT, env={**os.environ, "REDIS_URL": redis_url, "EROGAKI_MODELS_DIR": str(tmp_path)},
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"deepcreampy_bar.onnx does not exist" in err
