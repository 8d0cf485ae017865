"""Outside review of erogaki_common: PNG row check and the submitter under a Redis that
refuses writes (real redis-server processes, synthetic bytes only)."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable

import numpy as np
import pytest
import redis.asyncio as aioredis
from PIL import Image

from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.images import ImageError, _png_rows_complete, decode
from erogaki_common.protocol import Mode
from erogaki_common.submit import Submitter
from tests.conftest import wait_for
from tests.test_faults import job_keys_left

# --- the submitter while Redis refuses writes ------------------------------------------


async def _misconf(client: aioredis.Redis) -> None:
    """Redis in MISCONF: a save point, and a BGSAVE that fails (its file's name taken by
    a directory, which no rename can replace, root or not)."""
    folder = (await client.config_get("dir"))["dir"]
    name = (await client.config_get("dbfilename"))["dbfilename"]
    os.makedirs(os.path.join(folder, name, "blocker"), exist_ok=True)
    await client.config_set("save", "3600 1")
    await client.bgsave()

    async def failed() -> bool:
        info = await client.info("persistence")
        return not info["rdb_bgsave_in_progress"] and info["rdb_last_bgsave_status"] == "err"

    await wait_for(failed, what="the failed BGSAVE")
    with pytest.raises(aioredis.ResponseError, match="MISCONF"):
        await client.delete("probe")


async def test_an_answer_is_delivered_at_once_while_redis_cannot_persist(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # stop-writes-on-bgsave-error: every write (DEL and LREM too) is refused with
    # MISCONF until a save succeeds, which may take hours. The answer is read; the
    # cleanup must not hold it back for its 30 s of retries (it did: only READONLY
    # ended it). Every key left behind still has its TTL, and once Redis takes writes
    # again nothing is delivered twice.
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    async with Submitter(server.url()) as sub:
        job_id = "answered-then-misconf"
        await sub.submit(b"img", Mode.MOSAIC, timeout=20, job_id=job_id)
        await client.config_set("notify-keyspace-events", "")
        await client.set(keys.result_key(job_id), b"done:img", ex=60)
        await _misconf(client)
        await client.publish(keys.keyevent_channel(0), keys.result_key(job_id))
        started = time.monotonic()
        assert await asyncio.wait_for(sub.result(job_id), 10) == b"done:img"
        assert time.monotonic() - started < 3.0
        left = await job_keys_left(client, job_id)
        assert left, "MISCONF refused the deletes: the keys wait for their TTLs"
        for key in left:
            if key in [q.value for q in keys.Queue]:
                continue  # the queue itself carries the TTL _QUEUE_JOB gave it
            assert await client.ttl(key) > 0, key
        # Redis takes writes again: a second event for the same answer is ignored.
        await client.config_set("save", "")
        await client.delete("probe")
        await client.publish(keys.keyevent_channel(0), keys.result_key(job_id))
        assert sub.pending_ids() == []
    await client.aclose()


# --- the PNG row check -----------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, idats: list[bytes], depth: int = 8, colour: int = 2) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = b"".join(_chunk(b"IDAT", part) for part in idats)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + body + _chunk(b"IEND", b"")


def test_row_check_of_a_small_picture_with_a_zlib_bomb_inflates_only_its_rows() -> None:
    # 64x48 RGB needs 9264 bytes; its IDAT inflates to 20 MB of zeros (19 KB on the
    # wire). The check inflated a whole 16 KiB piece of input at once: 16 MB of
    # output held and about 40 ms of CPU per upload, for rows it never needed.
    data = _png(64, 48, [zlib.compress(bytes(20_000_000), 9)])
    assert decode(data).size == (64, 48)  # Pillow reads its rows and stops
    tracemalloc.start()
    try:
        assert _png_rows_complete(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_row_check_takes_legitimate_files_and_refuses_a_row_short_stream() -> None:
    rng = np.random.default_rng(0)
    rows = [b"\0" + rng.integers(0, 256, 64 * 3, np.uint8).tobytes() for _ in range(48)]
    whole = zlib.compress(b"".join(rows))
    # One IDAT, split at odd places with empty ones between, a byte each, extra
    # bytes after the stream: all complete.
    bytewise = [whole[i : i + 1] for i in range(len(whole))]
    odd = [b"", whole[:1], b"", whole[1:7], whole[7:], b""]
    for parts in ([whole], odd, bytewise, [whole + b"trailing"]):
        data = _png(64, 48, parts)
        assert _png_rows_complete(data)
        assert decode(data).size == (64, 48)
    # A whole zlib stream of 47 rows, or 47 rows and a second stream: refused.
    two = [zlib.compress(b"".join(rows[:40])), zlib.compress(b"".join(rows[40:]))]
    for parts in ([zlib.compress(b"".join(rows[:47]))], two):
        with pytest.raises(ImageError):
            decode(_png(64, 48, parts))
    # Pillow's own files of every mode it writes.
    picture = Image.fromarray(rng.integers(0, 256, (37, 53, 4), np.uint8), "RGBA")
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        out = io.BytesIO()
        picture.convert(mode).save(out, "PNG")
        assert _png_rows_complete(out.getvalue()), mode
