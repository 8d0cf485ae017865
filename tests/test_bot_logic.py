"""The bot's plain logic: fitting uploads and the shared limits (real Redis)."""

from __future__ import annotations

import io

import numpy as np
import redis.asyncio as aioredis
from PIL import Image

from bot.fit import fit
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


async def test_limits_are_shared_and_released(aredis: aioredis.Redis) -> None:
    first, second = Limits(aredis, per_user=2, cap=3), Limits(aredis, per_user=2, cap=3)
    assert await first.reserve(1, ["a", "b"], ttl=60) is None
    hit = await second.reserve(1, ["c"], ttl=60)  # another bot process, same user
    assert hit is not None and (hit.which, hit.current, hit.limit) == (Refusal.USER, 2, 2)
    assert await second.reserve(2, ["d"], ttl=60) is None
    hit = await first.reserve(3, ["e"], ttl=60)
    assert hit is not None and (hit.which, hit.current, hit.limit) == (Refusal.QUEUE, 3, 3)
    await first.release(1, ["a"])
    assert await second.reserve(3, ["e"], ttl=60) is None


async def test_slots_of_a_crashed_bot_expire(aredis: aioredis.Redis) -> None:
    limits = Limits(aredis, per_user=1, cap=10)
    assert await limits.reserve(7, ["old"], ttl=-1) is None  # already past its deadline
    assert await limits.reserve(7, ["new"], ttl=60) is None
