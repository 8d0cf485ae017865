"""The protocol under Redis faults, stalls and lost replies (issue 11).

Every test runs real redis-servers of its own, since they fill, pause,
restart or reconfigure them. Lost replies come from a small TCP proxy that
cuts one connection at the chosen moment. Worker processes that must be
paused (SIGSTOP) run this module as a script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.errors import Component, RedisUnavailable
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.submit import Submitter
from erogaki_common.worker import (
    Done,
    Forward,
    InstanceInUse,
    Job,
    JobReport,
    Outcome,
    Processor,
    Worker,
)
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


async def echo(job: Job) -> Outcome:
    return Done(b"done:" + job.data)


@contextlib.asynccontextmanager
async def running_worker(
    url: str, queues: Sequence[Queue], process: Processor = echo, **kwargs: object
) -> AsyncIterator[Worker]:
    options: dict[str, object] = {"heartbeat_interval": 0.1, "heartbeat_ttl": 1}
    options.update(kwargs)
    worker = Worker(url, queues, process, component=Component.DEEPCREAMPY, **options)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


async def job_keys_left(client: aioredis.Redis, job_id: str) -> list[str]:
    """Every key or queue entry the job still has."""
    found = [k.decode() async for k in client.scan_iter(f"*{job_id}*")]
    for key in [*Queue, *[k.decode() async for k in client.scan_iter("erogaki:processing:*")]]:
        if job_id.encode() in await client.lrange(key, 0, -1):
            found.append(key)
    return found


# --- 1. every long-lived loop survives every Redis error ----------------------


async def test_heartbeat_comes_back_after_redis_was_full_for_longer_than_its_ttl(
    redis_factory: Callable[..., EmbeddedRedis], caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    caplog.set_level(logging.INFO, logger="erogaki_common")
    async with running_worker(server.url(), [Queue.HENTAI_MOSAIC], instance="full-1") as worker:
        beat = keys.heartbeat_key(worker.instance)
        await wait_for(lambda: client.exists(beat), what="the first heartbeat")
        # maxmemory 1 byte: every write is refused with OOM, as when Redis is full.
        await client.config_set("maxmemory", 1)
        await wait_for(lambda: _not(client.exists(beat)), what="the heartbeat to expire")
        await client.config_set("maxmemory", 0)
        await wait_for(lambda: client.exists(beat), what="the heartbeat to come back")
        # It still works jobs, and is seen to.
        async with Submitter(server.url()) as sub:
            assert await sub.decensor(b"x", Mode.MOSAIC, timeout=10) == b"done:x"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("heartbeat")]
    # Once per episode, not once per beat (the episode spans 10+ beats), and its end.
    assert len(lines) == 2, lines
    assert lines[0].startswith("heartbeat failed (command not allowed when used memory")
    assert lines[1].startswith("heartbeat works again after")
    await client.aclose()


async def test_heartbeat_comes_back_after_redis_was_read_only(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server, primary = redis_factory(), redis_factory()
    client = aioredis.Redis.from_url(server.url())
    async with running_worker(server.url(), [Queue.HENTAI_MOSAIC], instance="ro-1") as worker:
        beat = keys.heartbeat_key(worker.instance)
        await wait_for(lambda: client.exists(beat), what="the first heartbeat")
        # A replica refuses writes with READONLY, as after a failover.
        await client.replicaof("127.0.0.1", primary.port)
        await wait_for(lambda: _not(client.exists(beat)), what="the heartbeat to go")
        await client.replicaof("NO", "ONE")
        await wait_for(lambda: client.exists(beat), what="the heartbeat to come back")
    await client.aclose()


async def test_submitter_listener_survives_a_full_redis(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # A managed Redis: CONFIG refused, keyevents preset, so the listener
    # proves them with a probe SET, which a full Redis refuses.
    server = redis_factory(
        notify_flags="KEA",
        extra_args=["--rename-command", "CONFIG", "", "--maxmemory", "8mb"],
    )
    client = aioredis.Redis.from_url(server.url())
    async with running_worker(server.url(), [Queue.HENTAI_MOSAIC]), Submitter(server.url()) as sub:
        assert await sub.decensor(b"1", Mode.MOSAIC, timeout=10) == b"done:1"
        ballast = await _fill(client)
        refused = await _refused_sets(client)
        # The subscription drops while Redis is full: its probe SET is refused.
        await client.client_kill_filter(_type="pubsub")
        deadline, top_ups = time.monotonic() + 10, 0
        # Each of our fills ends with one refused SET; any more are the probe's.
        while await _refused_sets(client) - top_ups <= refused:
            assert time.monotonic() < deadline, "the listener never probed while Redis was full"
            # Keep it full: the dropped connection freed a little memory.
            ballast += await _fill(client, start=len(ballast), size=16 * 1024)
            top_ups += 1
        await client.delete(*ballast)
        assert await sub.decensor(b"3", Mode.MOSAIC, timeout=10) == b"done:3"
        assert not sub.polling
    await client.aclose()


async def _refused_sets(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_set", {}).get("rejected_calls", 0))


async def _fill(client: aioredis.Redis, start: int = 0, size: int = 256 * 1024) -> list[str]:
    """Write ballast until Redis refuses writes (noeviction); returns its keys."""
    ballast: list[str] = []
    while True:
        key = f"ballast:{start + len(ballast)}"
        try:
            await client.set(key, os.urandom(size))
        except redis.exceptions.OutOfMemoryError:
            return ballast
        ballast.append(key)


async def _not(value: object) -> bool:
    return not await value  # type: ignore[misc]


# --- 4. a refused submit queues nothing ---------------------------------------


async def test_a_refused_image_write_queues_nothing(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(extra_args=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"])
    client = aioredis.Redis.from_url(server.url())
    refused = 0
    async with Submitter(server.url()) as sub:
        for _ in range(10):
            try:
                await sub.submit(os.urandom(512 * 1024), Mode.BAR, timeout=5)
            except RedisUnavailable:
                refused += 1
    assert refused > 0
    queued = [i.decode() for i in await client.lrange(Queue.HENTAI_BAR, 0, -1)]
    assert queued, "some jobs fit"
    for job_id in queued:
        assert await client.exists(keys.input_key(job_id)), f"{job_id} queued without its image"
    # Nor a job hash without a queued job.
    hashes = {k.decode()[len(keys.JOB_PREFIX) :] async for k in client.scan_iter("erogaki:job:*")}
    assert hashes == set(queued)
    await client.aclose()


# --- 2. a worker that lost its claim writes nothing ----------------------------


class WorkerProcess:
    """A worker in a process of its own (this module run as a script), to pause."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, url: str, instance: str, behaviour: str, queue: Queue) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.test_faults", url, instance, behaviour, queue,
            cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace").rstrip())

    def report(self, job_id: str) -> str | None:
        """The job's log line, once the worker has finished with the job."""
        return next((ln for ln in self.lines if f"job id={job_id} " in ln), None)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 15)
        await self._reader


async def _stalled_worker_scenario(
    url: str, mode: Mode, queue: Queue, behaviour: str, rescuer: Processor
) -> None:
    client = aioredis.Redis.from_url(url)
    stalled = await WorkerProcess.start(url, "stalled", behaviour, queue)
    try:
        async with Submitter(url) as sub:
            job_id = await sub.submit(b"img", mode, timeout=30)
            held = keys.processing_key("stalled", queue)
            await wait_for(lambda: client.llen(held), what="the stalled worker to claim the job")
            # A VM stall, SIGSTOP, a partition: past the heartbeat TTL, mid-job.
            stalled.signal(signal.SIGSTOP)
            async with contextlib.AsyncExitStack() as workers:
                await workers.enter_async_context(
                    running_worker(url, [queue], rescuer, instance="rescuer")
                )
                if queue != Queue.DEEPCREAMPY_BAR:
                    await workers.enter_async_context(
                        running_worker(url, [Queue.DEEPCREAMPY_BAR], instance="inpainter")
                    )
                assert await sub.result(job_id) == b"done:fresh:img"
                assert await job_keys_left(client, job_id) == []
                stalled.signal(signal.SIGCONT)
                await wait_for(
                    lambda: stalled.report(job_id) is not None, 15, "the stalled worker to wake"
                )
                # Its late answer or forward left nothing behind and started nothing.
                assert await job_keys_left(client, job_id) == []
                line = stalled.report(job_id)
                assert line is not None and "outcome=lost-claim" in line, line
    finally:
        await stalled.close()
        await client.aclose()


async def test_a_worker_paused_past_its_ttl_does_not_answer_again(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    async def fresh(job: Job) -> Outcome:
        return Done(b"done:fresh:" + job.data)

    server = redis_factory()
    await _stalled_worker_scenario(
        server.url(), Mode.BAR_MASKED, Queue.DEEPCREAMPY_BAR, "slow", fresh
    )


async def test_a_worker_paused_past_its_ttl_does_not_forward_again(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    async def fresh(job: Job) -> Outcome:
        return Forward(Queue.DEEPCREAMPY_BAR, b"fresh:" + job.data)

    server = redis_factory()
    await _stalled_worker_scenario(server.url(), Mode.BAR, Queue.HENTAI_BAR, "slow-forward", fresh)


# --- 3 and 7. lost replies, and what a worker makes of them -------------------


class CuttingProxy:
    """A TCP proxy in front of Redis that cuts one connection at a chosen moment.

    ``drop_reply_with``: the first reply chunk containing these bytes is not
    delivered and its connection is cut (Redis ran the command; the client
    never hears of it). ``cut_request_with``: the first request chunk
    containing them is not forwarded and its connection is cut.
    ``delay_reply_with``: the first reply chunk containing them arrives
    ``delay_seconds`` late (a slow network), its connection kept.
    ``keep_cutting``: the cut rules stay armed after a cut (every matching
    chunk is cut, not only the first).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.drop_reply_with: bytes | None = None
        self.cut_request_with: bytes | None = None
        self.delay_reply_with: bytes | None = None
        self.delay_seconds = 0.0
        self.keep_cutting = False
        self.cuts = 0
        self.delays = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    def url(self) -> str:
        assert self._server is not None
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends the pumps; cancelling a stream handler
        # would only make asyncio log the cancellation.
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._tasks.add(me)  # type: ignore[arg-type]
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        self._writers.add(server_w)
        try:
            await asyncio.gather(
                self._pump(client_r, server_w, "cut_request_with"),
                self._pump(server_r, client_w, "drop_reply_with"),
            )
        except (OSError, _Cut):
            pass
        finally:
            for writer in (client_w, server_w):
                writer.close()
                self._writers.discard(writer)
            self._tasks.discard(me)  # type: ignore[arg-type]

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, rule: str) -> None:
        while data := await src.read(1 << 16):
            late = self.delay_reply_with
            if rule == "drop_reply_with" and late is not None and late in data:
                self.delay_reply_with = None
                self.delays += 1
                await asyncio.sleep(self.delay_seconds)  # the slow network itself
            needle = getattr(self, rule)
            if needle is not None and needle in data:
                if not self.keep_cutting:
                    setattr(self, rule, None)
                self.cuts += 1
                raise _Cut
            dst.write(data)
            await dst.drain()
        raise _Cut  # one side closed: close the other


class _Cut(Exception):
    pass


@contextlib.asynccontextmanager
async def proxy_to(server: EmbeddedRedis) -> AsyncIterator[CuttingProxy]:
    proxy = await CuttingProxy(server.port).start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_a_claim_whose_reply_was_lost_is_recovered_while_the_worker_lives(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    async with (
        proxy_to(server) as proxy,
        running_worker(proxy.url(), [Queue.HENTAI_MOSAIC]),
        Submitter(server.url()) as sub,
    ):
        job_id = "lost-claim-reply"
        # BLMOVE moves the id into the worker's processing list; the reply
        # that would tell the worker so never arrives.
        proxy.drop_reply_with = job_id.encode()
        await sub.submit(b"img", Mode.MOSAIC, timeout=15, job_id=job_id)
        assert await sub.result(job_id) == b"done:img"
        assert proxy.cuts == 1


async def test_an_orphan_handed_back_onto_an_empty_queue_gives_it_a_ttl(
    redis_factory: Callable[..., EmbeddedRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    import erogaki_common.worker

    monkeypatch.setattr(erogaki_common.worker, "ORPHAN_SECONDS", 0.3)
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    release = asyncio.Event()

    async def busy(job: Job) -> Outcome:
        await release.wait()  # the only slot stays busy: nobody re-claims the orphan
        return Done(b"done:" + job.data)

    await client.set(keys.input_key("busy"), b"img", ex=60)
    await client.rpush(Queue.HENTAI_MOSAIC, "busy")
    async with running_worker(server.url(), [Queue.HENTAI_MOSAIC], busy, instance="w") as worker:
        try:
            await wait_for(lambda: "busy" in worker._in_flight, what="the busy job")
            # A claim whose reply was lost: the id sits in our list, the queue is gone.
            await client.rpush(keys.processing_key("w", Queue.HENTAI_MOSAIC), "orphan")
            assert not await client.exists(Queue.HENTAI_MOSAIC)
            await wait_for(lambda: client.exists(Queue.HENTAI_MOSAIC), what="the hand-back")
            assert await client.lrange(Queue.HENTAI_MOSAIC, 0, -1) == [b"orphan"]
            assert 0 < await client.ttl(Queue.HENTAI_MOSAIC) <= keys.JOB_TTL
        finally:
            release.set()
    await client.aclose()


async def test_a_claim_reply_that_comes_late_is_not_handed_back(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    starts: list[str] = []

    async def record(job: Job) -> Outcome:
        starts.append(job.id)
        return Done(b"done:" + job.data)

    job_id = "slow-claim-reply"
    await client.set(keys.input_key(job_id), b"img", ex=60)
    async with (
        proxy_to(server) as proxy,
        running_worker(proxy.url(), [Queue.HENTAI_MOSAIC], record) as worker,
    ):
        # BLMOVE moved the id; its reply takes 1 s, under the orphan grace
        # period: the id in our list is a claim on its way, not an orphan.
        proxy.delay_reply_with, proxy.delay_seconds = job_id.encode(), 1.0
        await client.rpush(Queue.HENTAI_MOSAIC, job_id)
        await wait_for(lambda: worker.counts["done"] == 1, what="the job")
        assert proxy.delays == 1
    assert starts == [job_id]
    assert {k: v for k, v in worker.counts.items() if v} == {"done": 1}
    assert await client.llen(Queue.HENTAI_MOSAIC) == 0
    await client.aclose()


@pytest.mark.parametrize("concurrency", [1, 2])
async def test_a_job_longer_than_the_orphan_timeout_is_not_handed_back(
    redis_factory: Callable[..., EmbeddedRedis],
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
) -> None:
    import erogaki_common.worker

    monkeypatch.setattr(erogaki_common.worker, "ORPHAN_SECONDS", 0.3)
    server = redis_factory()
    starts: list[str] = []

    async def slow(job: Job) -> Outcome:
        starts.append(job.id)
        await asyncio.sleep(1.2)  # stands for GPU work, four orphan timeouts long
        return Done(b"done:" + job.data)

    async with (
        running_worker(server.url(), [Queue.HENTAI_MOSAIC], slow, concurrency=concurrency) as w,
        Submitter(server.url()) as sub,
    ):
        ids = [await sub.submit(b"%d" % i, Mode.MOSAIC, timeout=10) for i in range(concurrency)]
        assert [await sub.result(i) for i in ids] == [b"done:%d" % i for i in range(concurrency)]
    assert sorted(starts) == sorted(ids)
    assert {k: v for k, v in w.counts.items() if v} == {"done": concurrency}


async def test_a_job_cut_off_by_a_disconnect_is_not_counted_done(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    reports: list[JobReport] = []
    async with (
        proxy_to(server) as proxy,
        running_worker(proxy.url(), [Queue.HENTAI_MOSAIC], on_report=reports.append) as worker,
        Submitter(server.url()) as sub,
    ):
        job_id = "cut-at-fetch"
        # The connection drops as the worker reads the image.
        proxy.cut_request_with = keys.input_key(job_id).encode()
        await sub.submit(b"img", Mode.MOSAIC, timeout=15, job_id=job_id)
        assert await sub.result(job_id) == b"done:img"
        assert proxy.cuts == 1
    assert [r.outcome.value for r in reports] == ["handed-back", "done"]
    assert worker.counts["done"] == 1
    assert worker.counts["handed-back"] == 1


async def test_a_store_that_spans_a_redis_restart_is_not_counted_done(
    redis_factory: Callable[..., EmbeddedRedis], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="erogaki_common")
    server = redis_factory()  # keeps nothing on disk: a restart forgets everything
    client = aioredis.Redis.from_url(server.url())
    reports: list[JobReport] = []

    async def redis_dies_meanwhile(job: Job) -> Outcome:
        await asyncio.to_thread(server.kill)
        return Done(b"done:" + job.data)

    job_id = "store-across-restart"
    await client.set(keys.input_key(job_id), b"img", ex=60)
    await client.rpush(Queue.HENTAI_MOSAIC, job_id)
    async with running_worker(
        server.url(), [Queue.HENTAI_MOSAIC], redis_dies_meanwhile, on_report=reports.append
    ) as worker:
        # Connections are refused: no EXEC was ever sent, nothing written.
        await wait_for(
            lambda: any(r.getMessage().startswith(f"storing job {job_id} failed")
                        for r in caplog.records),
            what="the store to fail",
        )  # fmt: skip
        await asyncio.to_thread(server.start)
        await wait_for(lambda: bool(reports), what="the job's report")
    assert [r.outcome.value for r in reports] == ["lost-claim"]
    assert worker.counts["done"] == 0
    await client.aclose()


async def test_a_store_whose_exec_reply_was_lost_is_counted_done(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    reports: list[JobReport] = []
    job_id = "exec-reply-lost"
    await client.set(keys.input_key(job_id), b"img", ex=60)
    async with (
        proxy_to(server) as proxy,
        set_events(server.url()) as events,
        running_worker(proxy.url(), [Queue.HENTAI_MOSAIC], on_report=reports.append) as worker,
    ):
        # EXEC's reply to SET result + the finishing script: Redis ran it, the
        # worker never hears so. Looking again, its claim is gone: its own doing.
        proxy.drop_reply_with = b"*2\r\n+OK\r\n:1\r\n"
        await client.rpush(Queue.HENTAI_MOSAIC, job_id)
        await wait_for(lambda: bool(reports), what="the job's report")
        assert proxy.cuts == 1
        await _settle(client)
    assert [r.outcome.value for r in reports] == ["done"]
    assert worker.counts["done"] == 1
    assert events.count(keys.result_key(job_id)) == 1, events
    await client.aclose()


async def test_a_job_whose_store_was_given_up_is_answered_later(
    redis_factory: Callable[..., EmbeddedRedis],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import erogaki_common.worker

    caplog.set_level(logging.WARNING, logger="erogaki_common")
    monkeypatch.setattr(erogaki_common.worker, "STORE_RETRY_SECONDS", 0.3)
    server = redis_factory()
    admin = aioredis.Redis.from_url(server.url())
    calls = 0

    async def fill_then_answer(job: Job) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            await admin.config_set("maxmemory", 1)  # full as the answer is stored
        return Done(b"done:" + job.data)

    async with (
        running_worker(server.url(), [Queue.HENTAI_MOSAIC], fill_then_answer) as worker,
        Submitter(server.url()) as sub,
    ):
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=20)
        waiting = asyncio.create_task(sub.result(job_id))
        await wait_for(
            lambda: any("gave up storing" in r.getMessage() for r in caplog.records),
            what="the store to be given up",
        )
        await wait_for(lambda: worker.counts["handed-back"] == 1, what="the report")
        assert worker.counts["done"] == 0
        await admin.config_set("maxmemory", 0)
        assert await waiting == b"done:img"
    assert calls == 2
    await admin.aclose()


async def test_reaping_waits_a_ttl_after_a_gap_in_our_own_heartbeats(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    # Another worker, alive but unable to beat while Redis is full, holds x.
    other = keys.heartbeat_key("other")
    await client.set(other, "{}", px=1500)
    await client.hset(keys.INSTANCES, "other", json.dumps([Queue.HENTAI_MOSAIC.value]))
    held = keys.processing_key("other", Queue.HENTAI_MOSAIC)
    await client.rpush(held, "x")
    ttl = 2
    async with running_worker(
        server.url(), [Queue.DEEPCREAMPY_BAR], instance="reaper", heartbeat_ttl=ttl
    ):
        beat = keys.heartbeat_key("reaper")
        await wait_for(lambda: client.exists(beat), what="the reaper's heartbeat")
        await client.config_set("maxmemory", 1)  # full: no one can beat
        await wait_for(lambda: _not(client.exists(beat)), what="the heartbeats to expire")
        assert not await client.exists(other)
        await client.config_set("maxmemory", 0)
        await wait_for(lambda: client.exists(beat), what="the reaper to beat again")
        back = time.monotonic()
        # The other worker would beat again within this TTL, as the reaper
        # did; here it stays silent, so x is reaped, but only after one TTL.
        await wait_for(lambda: _not(client.llen(held)), ttl + 5, "x to be reaped")
        waited = time.monotonic() - back
    assert waited >= ttl / 2, f"reaped {waited:.2f} s after the gap"
    assert await client.lrange(Queue.HENTAI_MOSAIC, 0, -1) == [b"x"]
    await client.aclose()


# --- 5. a fetch that fails is retried --------------------------------------------


async def test_a_failed_fetch_of_the_result_is_retried(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    async with proxy_to(server) as proxy, Submitter(proxy.url()) as sub:
        job_id = "fetch-cut"
        await sub.submit(b"img", Mode.MOSAIC, timeout=10, job_id=job_id)
        # The keyevent arrives; the connection drops as the submitter asks for
        # the result. The subscription itself stays up: no re-check comes.
        proxy.cut_request_with = keys.result_key(job_id).encode()
        await client.lpop(Queue.HENTAI_MOSAIC)
        await client.set(keys.result_key(job_id), b"answer", ex=60)
        assert await sub.result(job_id) == b"answer"
        assert proxy.cuts == 1
    assert await job_keys_left(client, job_id) == []
    await client.aclose()


async def test_collecting_an_answer_removes_a_duplicate_queue_entry(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    async with Submitter(server.url()) as sub:
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=10)
        await client.rpush(Queue.HENTAI_MOSAIC, job_id)  # a foreign client pushes it again
        # A worker takes one entry and answers; the other still waits in line.
        assert await client.lpop(Queue.HENTAI_MOSAIC) == job_id.encode()
        await client.set(keys.result_key(job_id), b"answer", ex=60)
        assert await sub.result(job_id) == b"answer"
    assert await job_keys_left(client, job_id) == []
    await client.aclose()


# --- 6. finishing is idempotent ---------------------------------------------------


@contextlib.asynccontextmanager
async def set_events(url: str) -> AsyncIterator[list[str]]:
    """Every key a `set` keyevent names while the block runs."""
    client = aioredis.Redis.from_url(url)
    await client.config_set("notify-keyspace-events", "E$")
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.keyevent_channel(0))
    seen: list[str] = []

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                seen.append(message["data"].decode())

    task = asyncio.create_task(listen())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()
        await client.aclose()


async def test_finishing_after_redis_forgot_its_scripts_writes_the_answer_once(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())

    async def forget_scripts(job: Job) -> Outcome:
        # As after a restart: every script the worker loaded is gone.
        await client.script_flush()
        return Done(b"done:" + job.data)

    async with (
        set_events(server.url()) as events,
        running_worker(server.url(), [Queue.HENTAI_MOSAIC], forget_scripts),
        Submitter(server.url()) as sub,
    ):
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=10)
        assert await sub.result(job_id) == b"done:img"
        await _settle(client)
    assert events.count(keys.result_key(job_id)) == 1, events
    assert await job_keys_left(client, job_id) == []
    await client.aclose()


async def test_a_job_pushed_twice_is_answered_once(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    job_id = "pushed-twice"
    await client.set(keys.input_key(job_id), b"img", ex=60)
    await client.rpush(Queue.HENTAI_MOSAIC, job_id, job_id)
    async with (
        set_events(server.url()) as events,
        running_worker(server.url(), [Queue.HENTAI_MOSAIC], burst=True) as worker,
    ):
        await wait_for(lambda: sum(worker.counts.values()) == 2, what="both entries")
        await _settle(client)
    assert (worker.counts["done"], worker.counts["dropped"]) == (1, 1)
    assert [e for e in events if job_id in e] == [keys.result_key(job_id)]
    assert await client.get(keys.result_key(job_id)) == b"done:img"
    await client.aclose()


async def test_two_slots_holding_the_same_id_answer_once(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    both = asyncio.Barrier(2)

    async def together(job: Job) -> Outcome:
        await asyncio.wait_for(both.wait(), 10)  # both copies are being worked on
        return Done(b"done:" + job.data)

    async with (
        set_events(server.url()) as events,
        running_worker(server.url(), [Queue.HENTAI_MOSAIC], together, concurrency=2) as worker,
        Submitter(server.url()) as sub,
    ):
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=10)
        await client.rpush(Queue.HENTAI_MOSAIC, job_id)  # a foreign client pushes it again
        assert await sub.result(job_id) == b"done:img"
        await wait_for(lambda: sum(worker.counts.values()) == 2, what="both copies")
        await _settle(client)
    assert events.count(keys.result_key(job_id)) == 1, events
    assert await job_keys_left(client, job_id) == []
    await client.aclose()


async def test_a_duplicate_still_being_worked_on_is_not_handed_back(
    redis_factory: Callable[..., EmbeddedRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    import erogaki_common.worker

    # Orphans are handed back after 0.5 s instead of 2 s, to keep the test short.
    monkeypatch.setattr(erogaki_common.worker, "ORPHAN_SECONDS", 0.5)
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    starts: list[str] = []
    second_started = asyncio.Event()

    async def first_fast_then_slow(job: Job) -> Outcome:
        starts.append(job.id)
        if len(starts) == 1:
            # Both slots hold the id before the first copy ends.
            await asyncio.wait_for(second_started.wait(), 10)
            return Done(b"done:" + job.data)
        second_started.set()
        # The second copy outlasts the orphan timeout three times over while
        # the first copy's slot is long done with the id.
        await asyncio.sleep(1.5)  # stands for GPU work
        return Done(b"done:" + job.data)

    async with (
        set_events(server.url()) as events,
        running_worker(
            server.url(), [Queue.HENTAI_MOSAIC], first_fast_then_slow, concurrency=2
        ) as worker,
        Submitter(server.url()) as sub,
    ):
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=10)
        await client.rpush(Queue.HENTAI_MOSAIC, job_id)  # a foreign client pushes it again
        assert await sub.result(job_id) == b"done:img"
        await wait_for(
            lambda: sum(worker.counts.values()) >= 2 and not worker._in_flight, what="both copies"
        )
        await _settle(client)
    assert len(starts) == 2, starts
    assert {k: v for k, v in worker.counts.items() if v} == {"done": 1, "dropped": 1}
    assert events.count(keys.result_key(job_id)) == 1, events
    assert keys.error_key(job_id) not in events, events
    assert await job_keys_left(client, job_id) == []
    await client.aclose()


async def _settle(client: aioredis.Redis) -> None:
    """A round trip through Redis, so every keyevent already published has arrived."""
    await client.ping()


# --- one instance name, one live worker -------------------------------------------


async def test_a_second_live_worker_under_the_same_name_refuses_to_start(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    starts: list[str] = []
    release = asyncio.Event()

    async def held(job: Job) -> Outcome:
        starts.append(job.id)
        await release.wait()
        return Done(b"done:" + job.data)

    async with (
        running_worker(server.url(), [Queue.HENTAI_MOSAIC], held, instance="twin") as first,
        Submitter(server.url()) as sub,
    ):
        job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=15)
        await wait_for(lambda: starts == [job_id], what="the first worker to take the job")
        second = Worker(
            server.url(), [Queue.HENTAI_MOSAIC], held, component=Component.HENTAI,
            instance="twin", heartbeat_interval=0.1, heartbeat_ttl=1,
        )  # fmt: skip
        with pytest.raises(InstanceInUse, match="EROGAKI_INSTANCE or --instance"):
            await asyncio.wait_for(second.run(), 10)
        # It took nothing back from the live worker's list on its way out.
        release.set()
        assert await sub.result(job_id) == b"done:img"
        assert starts == [job_id]
        assert first.counts["done"] == 1


async def test_the_cli_worker_refuses_a_name_in_use_with_a_plain_message(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    async with running_worker(server.url(), [Queue.DEEPCREAMPY_BAR], instance="twin"):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "EROGAKI"))}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "erogaki", "worker", "deepcreampy", "--backend", "cpu",
            "--instance", "twin", cwd=ROOT, env={**env, "REDIS_URL": server.url()},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = (out + err).decode()
    assert proc.returncode == 2, text
    assert "EROGAKI_INSTANCE" in text and "--instance" in text, text
    assert "Traceback" not in text, text


async def test_a_crashed_worker_restarted_at_once_under_its_name_recovers_its_job(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    crashed = await WorkerProcess.start(server.url(), "phoenix", "slow", Queue.HENTAI_MOSAIC)
    try:
        async with Submitter(server.url()) as sub:
            job_id = await sub.submit(b"img", Mode.MOSAIC, timeout=15)
            held = keys.processing_key("phoenix", Queue.HENTAI_MOSAIC)
            await wait_for(lambda: client.llen(held), what="the worker to claim the job")
            crashed.signal(signal.SIGKILL)
            await asyncio.wait_for(crashed.proc.wait(), 10)
            # Its heartbeat still lives: the new process waits it out, then
            # takes back what the old one held.
            assert await client.exists(keys.heartbeat_key("phoenix"))
            async with running_worker(server.url(), [Queue.HENTAI_MOSAIC], instance="phoenix"):
                assert await sub.result(job_id) == b"done:img"
    finally:
        await crashed.close()
        await client.aclose()


# --- 8. odd inputs -----------------------------------------------------------------


async def test_an_input_key_of_the_wrong_type_is_not_called_expired(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = aioredis.Redis.from_url(server.url())
    # A foreign client stored a list and a hash where the image belongs.
    await client.rpush(keys.input_key("as-list"), b"x")
    await client.hset(keys.input_key("as-hash"), "a", "b")
    await client.rpush(Queue.HENTAI_MOSAIC, "as-list", "as-hash")
    async with running_worker(server.url(), [Queue.HENTAI_MOSAIC], burst=True) as worker:
        await wait_for(lambda: worker.counts["failed"] == 2, what="both answered")
    for job_id, kind in (("as-list", "list"), ("as-hash", "hash")):
        error = json.loads(await client.get(keys.error_key(job_id)))
        assert error["name"] == "InvalidImage", error
        assert kind in error["description"] and "expired" not in error["description"]
    await client.aclose()


# --- this module as a worker process --------------------------------------------


async def _slow(job: Job) -> Outcome:
    await asyncio.to_thread(time.sleep, 1.5)  # stands for GPU work
    return Done(b"done:stale:" + job.data)


async def _slow_forward(job: Job) -> Outcome:
    await asyncio.to_thread(time.sleep, 1.5)
    return Forward(Queue.DEEPCREAMPY_BAR, b"stale:" + job.data)


BEHAVIOURS: dict[str, Processor] = {"slow": _slow, "slow-forward": _slow_forward, "echo": echo}


async def _main(url: str, instance: str, behaviour: str, queue: str) -> None:
    worker = Worker(
        url, [Queue(queue)], BEHAVIOURS[behaviour], component=Component.DEEPCREAMPY,
        instance=instance, heartbeat_interval=0.2, heartbeat_ttl=1,
    )  # fmt: skip
    worker.install_signal_handlers()
    await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(_main(*sys.argv[1:5]))
