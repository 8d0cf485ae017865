"""The bot's plain logic: fitting uploads and the shared limits (real Redis)."""

from __future__ import annotations

import io

import numpy as np
import redis.asyncio as aioredis
from PIL import Image

from bot import fit as fit_module
from bot.fit import fit, fit_off_loop, human_size
from bot.limits import Limits, Refusal


def noisy_png(size: int) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_small_results_are_sent_as_they_are() -> None:
    png = noisy_png(32)
    fitted = fit(png, len(png))
    assert fitted.data == png and fitted.extension == "png" and fitted.note is None


def test_large_results_are_reencoded_until_they_fit() -> None:
    png = noisy_png(512)  # ~790 KB of noise: PNG can't shrink it
    for limit in (400_000, 100_000, 20_000):
        fitted = fit(png, limit)
        assert len(fitted.data) <= limit
        assert fitted.extension == "jpg" and fitted.note
        Image.open(io.BytesIO(fitted.data)).verify()
    assert "downscaled" in fit(png, 20_000).note  # type: ignore[operator]


async def test_refitting_survives_a_killed_pool_process() -> None:
    png = noisy_png(256)
    first = await fit_off_loop(png, 20_000)
    pool = fit_module._pool
    assert pool is not None and first.extension == "jpg"
    for child in list(pool._processes.values()):  # as the OOM killer would
        child.kill()
        child.join()
    again = await fit_off_loop(png, 20_000)
    assert again.data == first.data and fit_module._pool is not pool


def test_sizes_are_said_without_wrong_rounding() -> None:
    mib = 1024 * 1024
    assert [human_size(n) for n in (25 * mib, int(2.5 * mib), 200_000, 512)] == [
        "25 MiB", "2.5 MiB", "195.3 KiB", "512 bytes"
    ]  # fmt: skip


async def test_limits_are_shared_and_released(aredis: aioredis.Redis) -> None:
    # Per user: requests (2). In all: images (3).
    first, second = Limits(aredis, per_user=2, cap=3), Limits(aredis, per_user=2, cap=3)
    assert await first.reserve(1, "r1", ["a", "b"], ttl=60) is None
    hit = await second.reserve(2, "r2", ["c", "d"], ttl=60)  # another bot process
    assert hit is not None and (hit.which, hit.current, hit.limit, hit.adding) == (
        Refusal.QUEUE, 2, 3, 2
    )  # fmt: skip
    assert await second.reserve(1, "r3", ["c"], ttl=60) is None
    hit = await first.reserve(1, "r4", [], ttl=60)
    assert hit is not None and (hit.which, hit.current, hit.limit) == (Refusal.USER, 2, 2)
    await first.release(1, "r1", ["a", "b"])
    assert await second.reserve(2, "r2", ["c2", "d2"], ttl=60) is None


async def test_a_repeated_reservation_takes_nothing_more(aredis: aioredis.Redis) -> None:
    limits = Limits(aredis, per_user=1, cap=2)
    for _ in range(3):  # a retry after a lost reply
        assert await limits.reserve(7, "r1", ["a", "b"], ttl=60) is None
    await limits.release(7, "r1", ["a", "b"])
    await limits.release(7, "r1", ["a", "b"])  # twice: harmless
    assert await limits.reserve(7, "r2", ["c", "d"], ttl=60) is None


async def test_slots_of_a_crashed_bot_expire(aredis: aioredis.Redis) -> None:
    limits = Limits(aredis, per_user=1, cap=10)
    assert await limits.reserve(7, "old", ["a"], ttl=-1) is None  # already past its deadline
    assert await limits.reserve(7, "new", ["b"], ttl=60) is None
