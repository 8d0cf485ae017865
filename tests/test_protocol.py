"""The submit side and the worker loop together, against real redis-servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis, find_binary
from erogaki_common.errors import (
    Component,
    DeadlineExceeded,
    ErrorName,
    JobCancelled,
    JobFailed,
    JobLost,
    ProcessingError,
    RedisUnavailable,
)
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.submit import Submitter
from erogaki_common.worker import Done, Forward, Job, Outcome, Processor, Worker
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


async def echo(job: Job) -> Outcome:
    return Done(b"done:" + job.data)


async def mask_then_forward(job: Job) -> Outcome:
    return Forward(Queue.DEEPCREAMPY_BAR, b"masked:" + job.data)


@contextlib.asynccontextmanager
async def running_worker(
    url: str,
    queues: Sequence[Queue],
    process: Processor = echo,
    **kwargs: object,
) -> AsyncIterator[Worker]:
    worker = Worker(url, queues, process, component=Component.DEEPCREAMPY, **kwargs)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def all_workers(url: str) -> AsyncIterator[None]:
    """A hent-AI stand-in (bar: forward; mosaic: echo) and a DeepCreamPy one."""

    async def hentai(job: Job) -> Outcome:
        if job.queue == Queue.HENTAI_BAR:
            return await mask_then_forward(job)
        return await echo(job)

    async with (
        running_worker(url, [Queue.HENTAI_BAR, Queue.HENTAI_MOSAIC], hentai),
        running_worker(url, [Queue.DEEPCREAMPY_BAR]),
    ):
        yield


async def leftover_keys(client: aioredis.Redis, job_id: str) -> list[bytes]:
    found = [k async for k in client.scan_iter(f"*{job_id}*")]
    for queue in Queue:
        if job_id.encode() in await client.lrange(queue, 0, -1):
            found.append(queue.encode())
    return found


async def test_mosaic_round_trip_leaves_no_key(redis_url: str, aredis: aioredis.Redis) -> None:
    async with all_workers(redis_url), Submitter(redis_url) as sub:
        job_id = await sub.submit(b"image-bytes", Mode.MOSAIC, timeout=10)
        assert await sub.result(job_id) == b"done:image-bytes"
    assert await leftover_keys(aredis, job_id) == []


async def test_bar_goes_through_both_workers(redis_url: str, aredis: aioredis.Redis) -> None:
    async with all_workers(redis_url), Submitter(redis_url) as sub:
        job_id = await sub.submit(b"pixels", Mode.BAR, timeout=10)
        assert await sub.result(job_id) == b"done:masked:pixels"
        masked_id = await sub.submit(b"green", Mode.BAR_MASKED, timeout=10)
        assert await sub.result(masked_id) == b"done:green"
    assert await leftover_keys(aredis, job_id) == []
    assert await leftover_keys(aredis, masked_id) == []


async def test_forward_keeps_the_input_ttl(redis_url: str, aredis: aioredis.Redis) -> None:
    await aredis.set(keys.input_key("j1"), b"x", ex=1000)
    await aredis.rpush(Queue.HENTAI_BAR, "j1")
    async with running_worker(redis_url, [Queue.HENTAI_BAR], mask_then_forward, burst=True):
        await wait_for(lambda: aredis.llen(Queue.DEEPCREAMPY_BAR), what="the forward")
    assert await aredis.get(keys.input_key("j1")) == b"masked:x"
    assert 990 < await aredis.ttl(keys.input_key("j1")) <= 1000
    assert await aredis.hget(keys.job_key("j1"), "stage") == b"waiting-for-inpainting"


async def test_500_concurrent_submits_get_their_own_results(redis_url: str) -> None:
    async with (
        running_worker(redis_url, [Queue.HENTAI_MOSAIC], concurrency=4),
        running_worker(redis_url, [Queue.HENTAI_MOSAIC], concurrency=4),
        Submitter(redis_url) as sub,
    ):
        images = [os.urandom(64) + str(i).encode() for i in range(500)]
        results = await asyncio.gather(
            *(sub.decensor(img, Mode.MOSAIC, timeout=60) for img in images)
        )
    assert results == [b"done:" + img for img in images]


async def test_worker_error_reaches_the_submitter(redis_url: str, aredis: aioredis.Redis) -> None:
    async def refuse(job: Job) -> Outcome:
        raise ProcessingError("Nothing to do here.", ErrorName.NO_CENSORED_REGIONS_FOUND)

    async with (
        running_worker(redis_url, [Queue.HENTAI_MOSAIC], refuse, instance="w-7"),
        Submitter(redis_url) as sub,
    ):
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=10)
        with pytest.raises(JobFailed) as caught:
            await sub.result(job_id)
    info = caught.value.info
    assert (info.name, info.instance, info.component) == (
        ErrorName.NO_CENSORED_REGIONS_FOUND,
        "w-7",
        Component.DEEPCREAMPY.value,
    )
    assert info.description == "Nothing to do here."
    assert await leftover_keys(aredis, job_id) == []


async def test_unexpected_exception_becomes_error_and_worker_goes_on(redis_url: str) -> None:
    calls = 0

    async def flaky(job: Job) -> Outcome:
        nonlocal calls
        calls += 1
        if job.data == b"bad":
            raise ZeroDivisionError("boom /secret/path")
        return Done(job.data)

    async with running_worker(redis_url, [Queue.HENTAI_MOSAIC], flaky), Submitter(redis_url) as sub:
        with pytest.raises(JobFailed) as caught:
            await sub.decensor(b"bad", Mode.MOSAIC, timeout=10)
        assert await sub.decensor(b"good", Mode.MOSAIC, timeout=10) == b"good"
    assert caught.value.info.name == ErrorName.PROCESSING_FAILED
    assert "secret" not in caught.value.info.description
    assert calls == 2


async def test_no_worker_ends_at_the_deadline(redis_url: str, aredis: aioredis.Redis) -> None:
    async with Submitter(redis_url) as sub:
        started = time.monotonic()
        job_id = await sub.submit(b"img", Mode.BAR, timeout=0.5)
        with pytest.raises(DeadlineExceeded, match="No worker took the bar job"):
            await sub.result(job_id)
        assert time.monotonic() - started < 2
    assert await aredis.llen(Queue.HENTAI_BAR) == 0
    assert await aredis.exists(keys.input_key(job_id)) == 0


async def test_cancel_removes_a_queued_job(redis_url: str, aredis: aioredis.Redis) -> None:
    async with Submitter(redis_url) as sub:
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=30)
        assert await sub.cancel(job_id)
        with pytest.raises(JobCancelled):
            await sub.result(job_id)
    assert await aredis.llen(Queue.HENTAI_MOSAIC) == 0
    assert await aredis.exists(keys.input_key(job_id)) == 0


async def test_cancelled_running_job_result_is_dropped(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def blocking(job: Job) -> Outcome:
        started.set()
        await release.wait()
        return Done(b"late")

    async with (
        running_worker(redis_url, [Queue.HENTAI_MOSAIC], blocking) as worker,
        Submitter(redis_url) as sub,
    ):
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=30)
        await asyncio.wait_for(started.wait(), 10)
        await sub.cancel(job_id)
        release.set()
        await wait_for(lambda: worker.counts["dropped"] == 1, what="the dropped result")
    assert await leftover_keys(aredis, job_id) == []


async def test_killed_subscription_still_resolves(redis_url: str, aredis: aioredis.Redis) -> None:
    async with Submitter(redis_url) as sub:
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=20)
        waiting = asyncio.create_task(sub.result(job_id))
        assert await aredis.client_kill_filter(_type="pubsub") >= 1
        # A stand-in worker finishes while the subscription is (probably)
        # down: only the re-check after resubscribing can deliver it.
        assert await aredis.lpop(Queue.HENTAI_MOSAIC) == job_id.encode()
        await aredis.set(keys.result_key(job_id), b"finished", ex=60)
        assert await asyncio.wait_for(waiting, 10) == b"finished"
        # And the new subscription delivers later jobs as events.
        job2 = await sub.submit(b"img", Mode.MOSAIC, timeout=20)
        await aredis.lpop(Queue.HENTAI_MOSAIC)
        await aredis.set(keys.result_key(job2), b"second", ex=60)
        assert await sub.result(job2) == b"second"
    assert await leftover_keys(aredis, job_id) == []


async def test_redis_restart_mid_wait_gives_a_clear_error_early(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(notify_flags="")
    async with Submitter(server.url()) as sub:
        job_id = await sub.submit(b"img", Mode.BAR, timeout=30)
        waiting = asyncio.create_task(sub.result(job_id))
        started = time.monotonic()
        server.restart()  # no persistence: the job is gone, and so are the flags
        with pytest.raises(JobLost, match="submit it again"):
            await asyncio.wait_for(waiting, 20)
        assert time.monotonic() - started < 10
        # Reconnected, with keyevents re-enabled on the new server.
        async with running_worker(server.url(), [Queue.HENTAI_MOSAIC]):
            assert await sub.decensor(b"again", Mode.MOSAIC, timeout=10) == b"done:again"
        assert not sub.polling


async def test_redis_down_at_submit_raises_unavailable(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    url = server.url()
    server.stop()
    async with Submitter(url, connect_timeout=0.5) as sub:
        with pytest.raises(RedisUnavailable, match="unreachable"):
            await sub.submit(b"img", Mode.BAR, timeout=5)


async def test_config_refused_falls_back_to_polling(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(notify_flags="", extra_args=["--rename-command", "CONFIG", ""])
    async with running_worker(server.url(), [Queue.HENTAI_MOSAIC]), Submitter(server.url()) as sub:
        results = await asyncio.gather(
            *(sub.decensor(b"%d" % i, Mode.MOSAIC, timeout=10) for i in range(20))
        )
        assert sub.polling
        assert sub.fallback_reason and "notify-keyspace-events" in sub.fallback_reason
    assert results == [b"done:%d" % i for i in range(20)]


async def test_config_refused_but_flags_preset_uses_events(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(notify_flags="KEA", extra_args=["--rename-command", "CONFIG", ""])
    async with running_worker(server.url(), [Queue.HENTAI_MOSAIC]), Submitter(server.url()) as sub:
        assert await sub.decensor(b"x", Mode.MOSAIC, timeout=10) == b"done:x"
        assert not sub.polling


async def test_flags_are_added_never_removed(redis_url: str, aredis: aioredis.Redis) -> None:
    await aredis.config_set("notify-keyspace-events", "Kl")
    async with Submitter(redis_url) as sub:
        await sub.submit(b"x", Mode.MOSAIC, timeout=5)
    flags = (await aredis.config_get("notify-keyspace-events"))["notify-keyspace-events"]
    assert set("KlE$") <= set(flags.decode() if isinstance(flags, bytes) else flags)


async def test_keyevent_channel_follows_the_db_index(
    redis_server: EmbeddedRedis, redis_url: str
) -> None:
    url = redis_server.url(db=5)
    async with running_worker(url, [Queue.HENTAI_MOSAIC]), Submitter(url) as sub:
        assert await sub.decensor(b"db5", Mode.MOSAIC, timeout=10) == b"done:db5"
        assert not sub.polling
    client = aioredis.Redis.from_url(redis_server.url(db=0))
    assert await client.dbsize() == 0
    await client.aclose()


async def test_queues_take_turns_so_none_starves(redis_url: str, aredis: aioredis.Redis) -> None:
    # A hent-AI worker serves three queues; under sustained bar load, mosaic
    # and auto jobs must still be taken. Each queue oldest first.
    order: list[str] = []

    async def record(job: Job) -> Outcome:
        order.append(job.id)
        return Done(b"")

    await aredis.rpush(Queue.HENTAI_BAR, "b1", "b2", "b3", "b4")
    await aredis.rpush(Queue.HENTAI_MOSAIC, "m1", "m2")
    await aredis.rpush(Queue.HENTAI_AUTO, "a1")
    for job_id in ("b1", "b2", "b3", "b4", "m1", "m2", "a1"):
        await aredis.set(keys.input_key(job_id), b"x", ex=60)
    queues = [Queue.HENTAI_BAR, Queue.HENTAI_MOSAIC, Queue.HENTAI_AUTO]
    async with running_worker(redis_url, queues, record, burst=True) as worker:
        await wait_for(lambda: worker.counts["done"] == 7, what="seven jobs")
    assert order == ["b1", "m1", "a1", "b2", "m2", "b3", "b4"]


async def test_expired_input_and_malformed_entries(redis_url: str, aredis: aioredis.Redis) -> None:
    await aredis.rpush(Queue.HENTAI_MOSAIC, "gone", "not:an:id", "ok")
    await aredis.set(keys.input_key("ok"), b"x", ex=60)
    async with running_worker(redis_url, [Queue.HENTAI_MOSAIC], burst=True) as worker:
        await wait_for(lambda: sum(worker.counts.values()) == 3, what="three entries")
    error = json.loads(await aredis.get(keys.error_key("gone")))
    assert error["name"] == "ImageNotFound"
    assert await aredis.get(keys.result_key("ok")) == b"done:x"
    assert worker.counts["dropped"] == 1
    assert await aredis.llen(keys.processing_key(worker.instance, Queue.HENTAI_MOSAIC)) == 0


async def test_every_key_written_has_a_ttl(redis_url: str, aredis: aioredis.Redis) -> None:
    release = asyncio.Event()

    async def hold(job: Job) -> Outcome:
        await release.wait()
        return Done(b"r")

    async with (
        running_worker(redis_url, [Queue.HENTAI_MOSAIC], hold),
        Submitter(redis_url) as sub,
    ):
        await sub.submit(b"a", Mode.MOSAIC, timeout=30)
        await sub.submit(b"b", Mode.MOSAIC, timeout=30)
        await wait_for(lambda: aredis.llen(Queue.HENTAI_MOSAIC), what="a queued job")
        all_keys = [k async for k in aredis.scan_iter("*")]
        ttls = {k: await aredis.ttl(k) for k in all_keys}
        release.set()
    assert len(ttls) >= 6  # input x2, job x2, queue, processing, heartbeat, instances
    assert all(t > 0 for t in ttls.values()), ttls


# --- real worker processes -----------------------------------------------------


def start_worker_process(url: str, behaviour: str, instance: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.worker_proc", url, behaviour, instance],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    await wait_for(lambda: proc.poll() is not None, timeout, "the worker process to exit")
    return proc.returncode


async def test_sigkilled_worker_loses_no_job(redis_url: str, aredis: aioredis.Redis) -> None:
    first = start_worker_process(redis_url, "slow", "victim")
    async with Submitter(redis_url) as sub:
        job_id = await sub.submit(b"img", Mode.BAR_MASKED, timeout=30)
        held = keys.processing_key("victim", Queue.DEEPCREAMPY_BAR)
        await wait_for(lambda: aredis.llen(held), what="the victim to claim the job")
        first.send_signal(signal.SIGKILL)
        await wait_exit(first)
        second = start_worker_process(redis_url, "echo", "rescuer")
        try:
            assert await sub.result(job_id) == b"done:img"
        finally:
            second.terminate()
            await wait_exit(second)
    assert await aredis.hget(keys.INSTANCES, "victim") is None


async def test_poison_job_ends_as_an_error(redis_url: str, aredis: aioredis.Redis) -> None:
    async with Submitter(redis_url) as sub:
        job_id = await sub.submit(b"img", Mode.BAR_MASKED, timeout=60)
        waiting = asyncio.create_task(sub.result(job_id))
        # max_attempts is 2 in worker_proc: two crashes, then the third claim
        # declares the job poison.
        for n in range(2):
            proc = start_worker_process(redis_url, "crash", f"crasher-{n}")
            assert await wait_exit(proc) == 17
        survivor = start_worker_process(redis_url, "echo", "survivor")
        try:
            with pytest.raises(JobFailed) as caught:
                await asyncio.wait_for(waiting, 30)
        finally:
            survivor.terminate()
            await wait_exit(survivor)
    assert caught.value.info.name == ErrorName.JOB_FAILED_REPEATEDLY


async def test_sigterm_finishes_the_current_job_and_takes_no_new_one(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    proc = start_worker_process(redis_url, "slow", "graceful")
    async with Submitter(redis_url) as sub:
        first = await sub.submit(b"one", Mode.BAR_MASKED, timeout=30)
        second = await sub.submit(b"two", Mode.BAR_MASKED, timeout=30)
        held = keys.processing_key("graceful", Queue.DEEPCREAMPY_BAR)
        await wait_for(lambda: aredis.llen(held), what="the first claim")
        proc.send_signal(signal.SIGTERM)
        assert await sub.result(first) == b"done:one"
        assert await wait_exit(proc) == 0
        assert await aredis.lrange(Queue.DEEPCREAMPY_BAR, 0, -1) == [second.encode()]
        assert await aredis.exists(keys.heartbeat_key("graceful")) == 0
        await sub.cancel(second)


# --- the seed's flows, typed into redis-cli ------------------------------------


def redis_cli(port: int, *args: str, stdin: bytes | None = None) -> bytes:
    out = subprocess.run(
        [find_binary("redis-cli"), "-p", str(port), *(["-x"] if stdin is not None else []), *args],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=10,
    )
    return out.stdout


async def test_seed_submit_flow_in_redis_cli_against_the_workers(
    redis_server: EmbeddedRedis, redis_url: str, aredis: aioredis.Redis
) -> None:
    port = redis_server.port
    redis_cli(port, "config", "set", "notify-keyspace-events", "AKE")
    async with all_workers(redis_url):
        subscriber = subprocess.Popen(
            [find_binary("redis-cli"), "-p", str(port), "SUBSCRIBE", "__keyevent@0__:set"],
            stdout=subprocess.PIPE,
        )
        try:
            await wait_for(lambda: _numsub(aredis), what="redis-cli to subscribe")
            redis_cli(port, "SET", "censored-images:seed1", stdin=b"seed-image")
            redis_cli(port, "RPUSH", "censored-images:hent-ai:bar", "seed1")
            lines: list[bytes] = []
            assert subscriber.stdout is not None
            while b"decensored-images:seed1" not in lines:
                line = await asyncio.wait_for(asyncio.to_thread(subscriber.stdout.readline), 10)
                lines.append(line.strip())
        finally:
            subscriber.kill()
            subscriber.wait()
        # redis-cli prints the value and a newline.
        assert redis_cli(port, "GET", "decensored-images:seed1") == b"done:masked:seed-image\n"
        assert redis_cli(port, "DEL", "decensored-images:seed1") == b"1\n"


async def _numsub(client: aioredis.Redis) -> bool:
    counts = await client.pubsub_numsub("__keyevent@0__:set")
    return bool(counts and counts[0][1] >= 1)


async def test_submitter_against_a_seed_worker_in_redis_cli(
    redis_server: EmbeddedRedis, redis_url: str
) -> None:
    port = redis_server.port
    async with Submitter(redis_url) as sub:
        job_id = await sub.submit(b"img", Mode.BAR_MASKED, timeout=20)
        popped = await asyncio.to_thread(
            redis_cli, port, "BLPOP", "censored-images:deepcreampy:bar", "0"
        )
        assert popped.split() == [b"censored-images:deepcreampy:bar", job_id.encode()]
        assert redis_cli(port, "GET", f"censored-images:{job_id}") == b"img\n"
        redis_cli(port, "SET", f"decensored-images:{job_id}", stdin=b"from-the-seed")
        assert await sub.result(job_id) == b"from-the-seed"


async def test_a_new_process_adopts_pending_jobs(redis_url: str, aredis: aioredis.Redis) -> None:
    async with Submitter(redis_url) as crashed:
        early = await crashed.submit(b"early", Mode.MOSAIC, timeout=30)
        late = await crashed.submit(b"late", Mode.MOSAIC, timeout=30)
    # `early` finishes while no submitter listens; `late` after the adoption.
    async with running_worker(redis_url, [Queue.HENTAI_MOSAIC], burst=True) as worker:
        await wait_for(lambda: worker.counts["done"] == 2, what="both jobs")
    await aredis.delete(keys.result_key(late))
    async with Submitter(redis_url) as restarted:
        restarted.adopt(early, Mode.MOSAIC, timeout=10)
        restarted.adopt(late, Mode.MOSAIC, timeout=10)
        assert await restarted.result(early) == b"done:early"
        await aredis.set(keys.result_key(late), b"done:late", ex=60)
        assert await restarted.result(late) == b"done:late"
    assert await leftover_keys(aredis, early) == []


async def test_progress_shows_position_then_stage(redis_url: str) -> None:
    from erogaki_common.status import Progress, job_progress

    started, release = asyncio.Event(), asyncio.Event()

    async def hold(job: Job) -> Outcome:
        started.set()
        await release.wait()
        return Forward(Queue.DEEPCREAMPY_BAR, job.data)

    async with Submitter(redis_url) as sub:
        first = await sub.submit(b"1", Mode.BAR, timeout=30)
        second = await sub.submit(b"2", Mode.BAR, timeout=30)
        client = aioredis.Redis.from_url(redis_url)
        assert await job_progress(client, second, Mode.BAR) == Progress("queued", 2)
        async with running_worker(redis_url, [Queue.HENTAI_BAR], hold):
            await asyncio.wait_for(started.wait(), 10)
            assert await job_progress(client, first, Mode.BAR) == Progress("detecting bars", None)
            assert await job_progress(client, second, Mode.BAR) == Progress("queued", 1)
            release.set()
            await wait_for(
                lambda: _progress_is(client, first, Progress("waiting for inpainting", 1)),
                what="the hand-over to DeepCreamPy",
            )
        await client.aclose()
        await sub.cancel(first)
        await sub.cancel(second)


async def _progress_is(client: aioredis.Redis, job_id: str, expected: object) -> bool:
    from erogaki_common.status import job_progress

    return await job_progress(client, job_id, Mode.BAR) == expected


async def test_a_full_redis_refuses_the_job_plainly(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(extra_args=["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"])
    async with Submitter(server.url()) as sub:
        with pytest.raises(RedisUnavailable) as caught:
            for _ in range(10):
                await sub.submit(os.urandom(512 * 1024), Mode.BAR, timeout=5)
        assert sub.pending_ids() == []
    assert str(caught.value) == (
        "Redis refused the job: command not allowed when used memory > 'maxmemory'."
    )


async def test_a_refused_image_is_never_quoted(
    redis_factory: Callable[..., EmbeddedRedis], caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py quotes a failed pipeline's commands in its error, and shortens the quote
    with textwrap: seconds of CPU per MiB of image, on the event loop. Ours names the
    command only."""
    server = redis_factory(extra_args=["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"])
    image = b"\x89PNG" + b"A" * (8 << 20)
    async with Submitter(server.url()) as sub:
        cpu = time.process_time()
        with pytest.raises(RedisUnavailable) as caught:
            await sub.submit(image, Mode.BAR, timeout=5)
        cpu = time.process_time() - cpu
    assert "AAAA" not in str(caught.value) and len(str(caught.value)) < 300
    assert all("AAAA" not in r.getMessage() for r in caplog.records)
    assert cpu < 1.0, f"refusing an 8 MiB image took {cpu:.1f} s of CPU"


async def test_a_full_redis_still_lets_a_cancelled_job_out(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    """A full Redis refuses to queue any command inside MULTI; cancelling must still
    take the job out of its queue, or a worker does it for nobody."""
    server = redis_factory(extra_args=["--maxmemory-policy", "noeviction"])
    client = aioredis.Redis.from_url(server.url())
    try:
        async with Submitter(server.url()) as sub:
            job_id = await sub.submit(b"\x89PNG" + os.urandom(1000), Mode.BAR, timeout=30)
            used = int((await client.info("memory"))["used_memory"])
            await client.config_set("maxmemory", used - 100_000)
            assert await sub.cancel(job_id)
            assert await client.llen(Queue.HENTAI_BAR) == 0
            assert not await client.exists(keys.input_key(job_id))
            with contextlib.suppress(JobCancelled):
                await sub.result(job_id)
    finally:
        await client.aclose()


async def test_workers_carry_on_after_redis_restarts(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    async with all_workers(server.url()), Submitter(server.url()) as sub:
        assert await sub.decensor(b"before", Mode.MOSAIC, timeout=10) == b"done:before"
        server.restart()  # scripts, flags and connections are all gone
        assert await sub.decensor(b"after", Mode.MOSAIC, timeout=20) == b"done:after"
        assert await sub.decensor(b"bar", Mode.BAR, timeout=20) == b"done:masked:bar"


# --- each promise of the protocol, one test that catches its breakage -----------


async def test_the_reaper_leaves_live_workers_alone(redis_url: str, aredis: aioredis.Redis) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def hold(job: Job) -> Outcome:
        started.set()
        await release.wait()
        return Done(b"r")

    await aredis.set(keys.input_key("live1"), b"x", ex=60)
    await aredis.rpush(Queue.HENTAI_MOSAIC, "live1")
    async with running_worker(redis_url, [Queue.HENTAI_MOSAIC], hold, instance="alive") as alive:
        await asyncio.wait_for(started.wait(), 10)
        reaper = Worker(redis_url, [Queue.HENTAI_MOSAIC], echo, component=Component.HENTAI,
                        instance="reaper")  # fmt: skip
        try:
            assert await reaper.reap() == 0
        finally:
            await reaper.redis.aclose()
            await reaper.blocking.aclose()
        held = keys.processing_key(alive.instance, Queue.HENTAI_MOSAIC)
        assert await aredis.lrange(held, 0, -1) == [b"live1"]
        assert await aredis.llen(Queue.HENTAI_MOSAIC) == 0
        assert await aredis.hget(keys.job_key("live1"), "attempts") is None
        release.set()


async def test_the_reaper_returns_jobs_of_queues_it_does_not_know(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    """A rolling upgrade: a newer worker with a queue this version has never heard of
    dies holding jobs; an older worker's reaper still gives them all back."""
    future = "censored-images:hent-ai:future"
    await aredis.hset(keys.INSTANCES, "newer", json.dumps([Queue.HENTAI_BAR.value, future]))
    await aredis.rpush(keys.processing_key("newer", Queue.HENTAI_BAR), "b1")
    await aredis.rpush(keys.processing_key("newer", future), "f1")
    reaper = Worker(redis_url, [Queue.HENTAI_MOSAIC], echo, component=Component.HENTAI,
                    instance="older")  # fmt: skip
    try:
        assert await reaper.reap() == 2
    finally:
        await reaper.redis.aclose()
        await reaper.blocking.aclose()
    assert await aredis.lrange(Queue.HENTAI_BAR, 0, -1) == [b"b1"]
    assert await aredis.lrange(future, 0, -1) == [b"f1"]
    assert not await aredis.hexists(keys.INSTANCES, "newer")


async def test_forward_gives_every_key_it_touches_a_ttl(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    # A foreign submitter that SET the input without EX.
    await aredis.set(keys.input_key("j2"), b"x")
    await aredis.rpush(Queue.HENTAI_BAR, "j2")
    async with running_worker(redis_url, [Queue.HENTAI_BAR], mask_then_forward, burst=True):
        await wait_for(lambda: aredis.llen(Queue.DEEPCREAMPY_BAR), what="the forward")
    assert 0 < await aredis.ttl(keys.input_key("j2")) <= keys.JOB_TTL
    assert 0 < await aredis.ttl(Queue.DEEPCREAMPY_BAR) <= keys.JOB_TTL
    assert 0 < await aredis.ttl(keys.job_key("j2")) <= keys.JOB_TTL


async def test_forward_resets_the_attempt_count(redis_url: str, aredis: aioredis.Redis) -> None:
    # Two crashes on hent-AI must not count against the job on DeepCreamPy.
    await aredis.set(keys.input_key("j3"), b"x", ex=60)
    await aredis.hset(keys.job_key("j3"), mapping={"attempts": 2, "stage": "queued"})
    await aredis.rpush(Queue.HENTAI_BAR, "j3")
    async with running_worker(redis_url, [Queue.HENTAI_BAR], mask_then_forward, burst=True):
        await wait_for(lambda: aredis.llen(Queue.DEEPCREAMPY_BAR), what="the forward")
    assert await aredis.hget(keys.job_key("j3"), "attempts") == b"0"


async def test_a_job_handed_back_at_shutdown_goes_to_the_head(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    started = asyncio.Event()

    async def forever(job: Job) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    for job_id in ("h1", "h2", "h3"):
        await aredis.set(keys.input_key(job_id), b"x", ex=60)
    await aredis.rpush(Queue.HENTAI_MOSAIC, "h1", "h2", "h3")
    async with running_worker(redis_url, [Queue.HENTAI_MOSAIC], forever, grace_seconds=0.1):
        await asyncio.wait_for(started.wait(), 10)
    # Stopped past its grace period: h1 is first in line again, uncounted.
    assert await aredis.lrange(Queue.HENTAI_MOSAIC, 0, -1) == [b"h1", b"h2", b"h3"]
    assert await aredis.hget(keys.job_key("h1"), "attempts") is None


async def test_a_job_handed_back_onto_an_empty_queue_gives_it_a_ttl(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    started = asyncio.Event()

    async def forever(job: Job) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    await aredis.set(keys.input_key("only"), b"x", ex=60)
    await aredis.rpush(Queue.HENTAI_MOSAIC, "only")
    async with running_worker(redis_url, [Queue.HENTAI_MOSAIC], forever, grace_seconds=0.1):
        await asyncio.wait_for(started.wait(), 10)
        assert not await aredis.exists(Queue.HENTAI_MOSAIC)  # claimed: the list is gone
    # The hand-back created the queue anew.
    assert await aredis.lrange(Queue.HENTAI_MOSAIC, 0, -1) == [b"only"]
    assert 0 < await aredis.ttl(Queue.HENTAI_MOSAIC) <= keys.JOB_TTL
    assert [k async for k in aredis.scan_iter("*") if await aredis.ttl(k) == -1] == []


async def test_the_reaper_puts_a_dead_workers_jobs_at_the_head_oldest_first(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    # A dead worker claimed d1 then d2; y was queued after them.
    await aredis.hset(keys.INSTANCES, "dead", json.dumps([Queue.HENTAI_MOSAIC.value]))
    await aredis.rpush(keys.processing_key("dead", Queue.HENTAI_MOSAIC), "d1", "d2")
    await aredis.rpush(Queue.HENTAI_MOSAIC, "y")
    reaper = Worker(redis_url, [Queue.DEEPCREAMPY_BAR], echo, component=Component.DEEPCREAMPY)
    try:
        assert await reaper.reap() == 2
    finally:
        await reaper.redis.aclose()
        await reaper.blocking.aclose()
    assert await aredis.lrange(Queue.HENTAI_MOSAIC, 0, -1) == [b"d1", b"d2", b"y"]


async def test_a_restarted_worker_takes_its_own_jobs_first_oldest_first(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    # What this instance held when it crashed (z1 claimed first), and a job
    # queued later by someone else.
    for job_id in ("z1", "z2", "y"):
        await aredis.set(keys.input_key(job_id), b"x", ex=60)
    await aredis.rpush(keys.processing_key("phoenix", Queue.HENTAI_MOSAIC), "z1", "z2")
    await aredis.rpush(Queue.HENTAI_MOSAIC, "y")
    order: list[str] = []

    async def record(job: Job) -> Outcome:
        order.append(job.id)
        return Done(b"done")

    async with running_worker(
        redis_url, [Queue.HENTAI_MOSAIC], record, instance="phoenix", burst=True
    ) as worker:
        await wait_for(lambda: worker.counts["done"] == 3, what="all three jobs")
    assert order == ["z1", "z2", "y"]


async def test_cancel_takes_a_forwarded_job_off_the_deepcreampy_queue(
    redis_url: str, aredis: aioredis.Redis
) -> None:
    async with (
        running_worker(redis_url, [Queue.HENTAI_BAR], mask_then_forward),
        Submitter(redis_url) as sub,
    ):
        job_id = await sub.submit(b"img", Mode.BAR, timeout=30)
        await wait_for(lambda: aredis.llen(Queue.DEEPCREAMPY_BAR), what="the forward")
        assert await sub.cancel(job_id)
    assert await aredis.llen(Queue.DEEPCREAMPY_BAR) == 0
    assert await aredis.exists(keys.input_key(job_id)) == 0
