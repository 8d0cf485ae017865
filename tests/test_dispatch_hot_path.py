"""The guarantees behind the dispatch hot path's round-trip savings.

The worker reads its job's state with WATCH and the read in one round trip;
the submitter's GET of an answer deletes the job's other keys in the same
round trip. Each test puts a fault exactly in the window a saving opened: a
change between the worker's read and its EXEC, a lost reply of the
submitter's GET, Redis restarting before the last delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from erogaki_common import keys, submit
from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.errors import Component
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.submit import Submitter
from erogaki_common.worker import Done, Job, JobReport, Outcome, Worker
from tests.conftest import wait_for
from tests.test_faults import _settle, job_keys_left, proxy_to, set_events


@contextlib.asynccontextmanager
async def _worker(url: str, reports: list[JobReport], instance: str) -> AsyncIterator[Worker]:
    async def echo(job: Job) -> Outcome:
        return Done(b"done:" + job.data)

    worker = Worker(url, [Queue.HENTAI_MOSAIC], echo, component=Component.HENTAI,
                    instance=instance, heartbeat_interval=0.1, heartbeat_ttl=1,
                    on_report=reports.append)  # fmt: skip
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


async def test_a_claim_taken_between_the_state_read_and_exec_is_not_answered(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # The worker's state read says "ok"; before its MULTI reaches Redis the
    # claim is reaped and someone else answers. Only the WATCH sent with the
    # read can stop the stale EXEC from answering a second time.
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    reports: list[JobReport] = []
    job_id, instance = "reaped-while-reading", "w-watch"
    processing = keys.processing_key(instance, Queue.HENTAI_MOSAIC)
    await client.set(keys.input_key(job_id), b"img", ex=60)
    async with proxy_to(server) as proxy, set_events(server.url()) as events:
        proxy.delay_reply_with = b"$2\r\nok\r\n"  # the state script's "ok"
        proxy.delay_seconds = 1.0
        async with _worker(proxy.url(), reports, instance):
            await client.rpush(Queue.HENTAI_MOSAIC, job_id)
            await wait_for(lambda: proxy.delays == 1, what="the state read's reply to be held")
            # A reaper takes the claim; another worker answers.
            assert await client.lrem(processing, 1, job_id) == 1
            await client.set(keys.result_key(job_id), b"done:elsewhere", ex=60)
            await wait_for(lambda: bool(reports), what="the stalled worker's report")
            await _settle(client)
        assert [r.outcome.value for r in reports] == ["lost-claim"]
        assert events.count(keys.result_key(job_id)) == 1, events
        assert await client.get(keys.result_key(job_id)) == b"done:elsewhere"
    await client.aclose()


async def test_the_answer_survives_a_lost_reply_of_the_get_that_deletes_the_rest(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    answer = b"the-answer-bytes"
    async with proxy_to(server) as proxy, Submitter(proxy.url()) as sub:
        job_id = "get-reply-lost"
        await sub.submit(b"img", Mode.MOSAIC, timeout=10, job_id=job_id)
        # Redis runs GET + DEL of the other keys; the reply never arrives.
        proxy.drop_reply_with = answer
        await client.lpop(Queue.HENTAI_MOSAIC)
        await client.set(keys.result_key(job_id), answer, ex=60)
        assert await sub.result(job_id) == answer
        assert proxy.cuts == 1
    assert await job_keys_left(client, job_id) == []
    await client.aclose()


async def test_a_restart_before_the_last_delete_loses_nothing_and_leaves_ttls(
    redis_factory: Callable[..., EmbeddedRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answer is fetched (its GET deleted the other keys) but every final
    # delete is cut until the submitter gives up; Redis then restarts from its
    # append-only file. The answer was delivered, and what is left expires.
    monkeypatch.setattr(submit, "COLLECT_RETRY_SECONDS", 1.0)
    server = redis_factory(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    client = aioredis.Redis.from_url(server.url())
    answer = b"answer-before-restart"
    async with proxy_to(server) as proxy, Submitter(proxy.url()) as sub:
        job_id = "restart-before-collect"
        await sub.submit(b"img", Mode.MOSAIC, timeout=10, job_id=job_id)
        await client.lpop(Queue.HENTAI_MOSAIC)
        # The final delete is the only request with LREM in it.
        proxy.cut_request_with = b"LREM"
        proxy.keep_cutting = True
        try:
            await client.set(keys.result_key(job_id), answer, ex=60)
            assert await sub.result(job_id) == answer
        finally:
            proxy.keep_cutting = False
        assert proxy.cuts >= 1
        await asyncio.to_thread(server.restart)
        await client.aclose()
        client = aioredis.Redis.from_url(server.url())
        left = await job_keys_left(client, job_id)
        assert left, "the final delete was cut: something is left to expire"
        for key in left:
            if key.startswith("erogaki:processing:") or key in [q.value for q in Queue]:
                continue
            assert await client.ttl(key) > 0, key
    await client.aclose()


async def test_a_set_event_whose_write_redis_lost_leaves_the_job_to_be_done(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # Redis with appendfsync everysec can publish a worker's answer and then
    # lose it in a crash (with the claim's end: the job is redone). The
    # submitter's GET then finds nothing, and must not have deleted the job's
    # input meanwhile, or the redone job ends as "image not found".
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    reports: list[JobReport] = []
    async with Submitter(server.url()) as sub:
        job_id = "event-without-write"
        await sub.submit(b"img", Mode.MOSAIC, timeout=20, job_id=job_id)
        gets = await _calls(client, "get")
        await client.publish(keys.keyevent_channel(0), keys.result_key(job_id))
        await wait_for(lambda: _more(client, "get", gets), what="the submitter's GET of the answer")
        await _settle(client)
        assert await client.get(keys.input_key(job_id)) == b"img"
        async with _worker(server.url(), reports, "w-redo"):
            assert await asyncio.wait_for(sub.result(job_id), 20) == b"done:img"
    assert [r.outcome.value for r in reports] == ["done"]
    assert await job_keys_left(client, job_id) == []
    await client.aclose()


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


async def _refuse_writes(client: aioredis.Redis, state: str) -> None:
    if state == "full":
        await client.config_set("maxmemory", 1)
        with pytest.raises(aioredis.ResponseError, match="maxmemory"):
            await client.set("probe", b"x")
    elif state == "read-only":
        # A replica of a primary that never answers keeps its data, read-only.
        await client.replicaof("127.0.0.1", 1)
        with pytest.raises(aioredis.ResponseError, match=r"READONLY|read only"):
            await client.eval("return redis.call('DEL', KEYS[1])", 1, "probe")
    else:
        # stop-writes-on-bgsave-error: every write, DEL and LREM too, is refused until a
        # save succeeds, which may take hours.
        await _misconf(client)
        with pytest.raises(aioredis.ResponseError, match="MISCONF"):
            await client.delete("probe")


async def _take_writes(client: aioredis.Redis) -> None:
    await client.config_set("maxmemory", 0)
    await client.replicaof("NO", "ONE")
    await client.config_set("save", "")


@pytest.mark.parametrize("state", ["full", "read-only", "misconf"])
async def test_an_answer_stored_before_redis_refused_writes_is_still_read(
    redis_factory: Callable[..., EmbeddedRedis], state: str
) -> None:
    # The answer is in Redis; then Redis fills up, fails over to a replica or cannot
    # persist, before the submitter reads it. Writes are refused from then on, reads
    # are not: the user gets the picture at once, not after the cleanup's 30 s of
    # retries or a timeout. What is left keeps its TTL, and once Redis takes writes
    # again nothing is delivered twice.
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    async with Submitter(server.url()) as sub:
        job_id = f"answered-then-{state}"
        await sub.submit(b"img", Mode.MOSAIC, timeout=20, job_id=job_id)
        await client.config_set("notify-keyspace-events", "")
        await client.set(keys.result_key(job_id), b"done:img", ex=60)
        await _refuse_writes(client, state)
        await client.publish(keys.keyevent_channel(0), keys.result_key(job_id))
        started = time.monotonic()
        assert await asyncio.wait_for(sub.result(job_id), 10) == b"done:img"
        assert time.monotonic() - started < 3.0
        left = await job_keys_left(client, job_id)
        if state == "full":
            # Plain DELs are allowed on a full Redis: nothing of the job is left.
            assert left == []
        else:
            assert left, "the deletes were refused: the keys wait for their TTLs"
        for key in left:
            if key in [q.value for q in Queue]:
                continue  # the queue itself carries the TTL the job's queueing gave it
            assert await client.ttl(key) > 0, key
        await _take_writes(client)
        await client.publish(keys.keyevent_channel(0), keys.result_key(job_id))
        assert sub.pending_ids() == []
    await client.aclose()


async def _calls(client: aioredis.Redis, command: str) -> int:
    stats = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def _more(client: aioredis.Redis, command: str, than: int) -> bool:
    return await _calls(client, command) > than
