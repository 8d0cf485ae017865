"""Outside review of erogaki_common: PNG row check and the submitter under a Redis that
refuses writes (real redis-server processes, synthetic bytes only)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis
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
