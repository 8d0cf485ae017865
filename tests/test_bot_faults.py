"""The bot under faults and load (issue 12): through the fake Discord, with real
Redis and real processes. Each test names the fault it pins."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import os
import signal
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import discord
import numpy as np
import pytest
import redis.asyncio as aioredis
import yarl
from PIL import Image

from bot import audit, texts
from bot.app import ErogakiBot
from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.keys import Queue
from tests.conftest import wait_for
from tests.fake_discord import FakeDiscord, InteractionHandle
from tests.test_bot import (
    DEFERRED,
    ROOT,
    World,
    barred,
    bot_settings,
    cpu_workers,
    final,
    make_world,
    pretend_busy_workers,
    running_bot,
)

MiB = 1024 * 1024


# The same fixtures as tests/test_bot.py's, built from its helpers.
@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def world(fake: FakeDiscord, redis_url: str) -> AsyncIterator[World]:
    guild, nsfw, sfw, thread = make_world(fake)
    settings = bot_settings(fake, redis_url)
    async with running_bot(settings) as bot:
        yield World(fake, guild, nsfw, sfw, thread, settings, bot)


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[None]:
    async with cpu_workers(redis_url):
        yield


def noise_png(size: int) -> bytes:
    """Noise: PNG can't shrink it, so fitting it under a small limit is real work."""
    pixels = np.random.default_rng(4).integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


async def queued(client: aioredis.Redis, queue: Queue = Queue.HENTAI_BAR) -> list[str]:
    return [j.decode() for j in await client.lrange(queue, 0, -1)]


async def answer_job(client: aioredis.Redis, job_id: str, result: bytes) -> None:
    """Do what a worker does when it finishes: the result key, whose keyevent the bot hears."""
    await client.lrem(Queue.HENTAI_BAR, 0, job_id)
    await client.set(keys.result_key(job_id), result, ex=60)


async def nothing_held(client: aioredis.Redis) -> bool:
    """No limit slot and no pending record is left."""
    held = [k async for k in client.scan_iter(keys.BOT_INFLIGHT_ALL + "*")]
    return not held and not await client.exists(keys.BOT_PENDING)


class StallMeter:
    """The event loop's longest stall: a task asks to run every 5 ms and notes
    how late it ran. A measurement, not a synchronisation."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.005)
            now = loop.time()
            self.longest = max(self.longest, now - last - 0.005)
            last = now

    async def __aenter__(self) -> StallMeter:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# --- 1. image work never runs on the event loop -----------------------------------------


async def test_refitting_a_large_result_leaves_the_event_loop_free(
    world: World, aredis: aioredis.Redis
) -> None:
    await pretend_busy_workers(aredis)
    handle = await world.fake.slash_command(
        "decensor bar", {"image": world.fake.add_attachment(barred(), "a.png")},
        channel=world.nsfw, attachment_size_limit=200_000,
    )  # fmt: skip
    await handle.wait_followups(1)
    await wait_for(lambda: aredis.llen(Queue.HENTAI_BAR), what="the queued job")
    [job_id] = await queued(aredis)
    async with StallMeter() as meter:
        await answer_job(aredis, job_id, noise_png(1200))  # about a second of re-encoding
        answer = await final(handle)
    assert "downscaled" in answer.content
    assert meter.longest < 0.3, f"the event loop stalled for {meter.longest:.2f} s"


# --- 2. Ctrl-C and SIGTERM hand requests to the next bot -------------------------------


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_stopped_bot_leaves_its_requests_to_the_next(
    sig: signal.Signals,
    fake: FakeDiscord,
    redis_url: str,
    aredis: aioredis.Redis,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    _, nsfw, _, _ = make_world(fake)
    await pretend_busy_workers(aredis)
    env = {**os.environ, "REDIS_URL": redis_url, "DISCORD_TOKEN": fake.token,
           "DISCORD_API_BASE": fake.api_base, "EROGAKI_INSTANCE": "stopping-bot"}  # fmt: skip
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "erogaki", "bot"], cwd=ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    processes.append(proc)
    await fake.wait_ready(30)
    handle = await fake.slash_command(
        "decensor bar", {"image": fake.add_attachment(barred(), "a.png")}, channel=nsfw
    )
    await handle.wait_followups(1, timeout=20)
    await wait_for(lambda: aredis.llen(Queue.HENTAI_BAR), what="the queued job")

    proc.send_signal(sig)
    code = await asyncio.to_thread(proc.wait, 20)
    assert code == 0, log.read_text()
    progress = handle.original
    assert progress is not None and "restarting" in progress.content
    assert not progress.custom_ids  # no dead Cancel button
    assert await aredis.hlen(keys.BOT_PENDING) == 1
    assert await aredis.llen(Queue.HENTAI_BAR) == 1  # the job still waits for a worker
    # A clean stop gives up its heartbeat, so the next bot adopts at once.
    assert not [k async for k in aredis.scan_iter(keys.BOT_ALIVE_PREFIX + "*")]

    async with running_bot(bot_settings(fake, redis_url)):
        [job_id] = await queued(aredis)
        await answer_job(aredis, job_id, barred(5))
        answer = await final(handle)  # the result replaces the "restarting" line
        await wait_for(lambda: nothing_held(aredis), what="slots and record released")
    assert len(answer.attachments) == 1 and f"<@{handle.user.id}>" in answer.content
    assert "restarting" not in answer.content


async def test_commands_during_a_stop_are_refused_plainly(
    world: World, aredis: aioredis.Redis
) -> None:
    await pretend_busy_workers(aredis)
    decensor = world.bot.get_cog("DecensorCog")
    assert decensor is not None
    await decensor.hand_over(1.0)  # type: ignore[attr-defined]
    handle = await world.fake.slash_command(
        "decensor bar", {"image": world.fake.add_attachment(barred(), "a.png")},
        channel=world.nsfw,
    )  # fmt: skip
    callback = await handle.wait_callback()
    assert callback.ephemeral and callback.embeds[0]["title"] == texts.RESTARTING.title
    assert await aredis.llen(Queue.HENTAI_BAR) == 0 and await nothing_held(aredis)


# --- 3. every submitted job is awaited or withdrawn ---------------------------------------


async def test_a_refused_second_image_takes_the_first_back_out(
    fake: FakeDiscord, redis_factory: Callable[..., EmbeddedRedis]
) -> None:
    url = redis_factory().url()  # a server of its own: its memory limit changes
    client = aioredis.Redis.from_url(url)
    _, nsfw, _, _ = make_world(fake)
    await pretend_busy_workers(client)
    try:
        async with running_bot(bot_settings(fake, url)) as bot:
            small = fake.add_attachment(barred(), "small.png")
            # Kept small: redis-py quotes a refused command's arguments in its error,
            # through textwrap, for seconds per MiB.
            big = fake.add_attachment(b"\x89PNG\r\n\x1a\n" + os.urandom(MiB), "big.png")
            used = int((await client.info("memory"))["used_memory"])
            # Room for the first image, not the second: Redis refuses it (noeviction).
            await client.config_set("maxmemory", used + MiB // 2)
            handle = await fake.slash_command(
                "decensor bar", {"image": small, "image2": big}, channel=nsfw
            )
            [said] = await handle.wait_followups(1)
            await client.config_set("maxmemory", 0)
            assert said.embeds[0]["title"] == texts.REDIS_DOWN.title
            await wait_for(lambda: nothing_held(client), what="slots and record released")
            assert await client.llen(Queue.HENTAI_BAR) == 0
            assert not [k async for k in client.scan_iter(keys.input_key("*"))]
            assert bot.submitter.pending_ids() == []
    finally:
        await client.aclose()


async def test_a_progress_line_that_cannot_be_sent_withdraws_the_jobs(
    world: World, aredis: aioredis.Redis
) -> None:
    await pretend_busy_workers(aredis)
    refused = world.fake.fail("followup", 404)
    images = {"image": world.fake.add_attachment(barred(11), "a.png"),
              "image2": world.fake.add_attachment(barred(12), "b.png")}  # fmt: skip
    await world.fake.slash_command("decensor bar", images, channel=world.nsfw)
    await world.fake.wait_for(lambda: refused.hits == 1, what="the refused progress line")
    await wait_for(lambda: nothing_held(aredis), what="slots and record released")
    assert await aredis.llen(Queue.HENTAI_BAR) == 0
    await wait_for(lambda: world.bot.submitter.pending_ids() == [], what="the jobs forgotten")


# --- 4. limit slots are released on every path --------------------------------------------


class LateReplies:
    """A TCP proxy in front of Redis that can hold back one reply: the command
    runs in Redis at once, its answer reaches the bot late, as over a slow link."""

    def __init__(self, redis_url: str) -> None:
        self._target = yarl.URL(redis_url)
        self._server: asyncio.Server | None = None
        self._marker: bytes | None = None
        self._delay = 0.0
        self.held = 0  # replies held back and then sent
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return str(self._target.with_port(port))

    def hold_reply_to(self, marker: bytes, seconds: float) -> None:
        """Hold back for ``seconds`` the reply to the next command containing ``marker``."""
        self._marker, self._delay = marker, seconds

    async def __aenter__(self) -> LateReplies:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        host, port = self._target.host or "127.0.0.1", self._target.port or 6379
        server_in, server_out = await asyncio.open_connection(host, port)
        late = asyncio.Queue[float]()

        async def up() -> None:
            while data := await client_in.read(1 << 16):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    late.put_nowait(self._delay)
                server_out.write(data)
                await server_out.drain()
            server_out.close()

        async def down() -> None:
            while data := await server_in.read(1 << 16):
                if not late.empty():
                    # Latency being simulated, not a synchronisation.
                    await asyncio.sleep(late.get_nowait())
                    self.held += 1
                client_out.write(data)
                await client_out.drain()
            client_out.close()

        with contextlib.suppress(ConnectionError):
            await asyncio.gather(up(), down())
        self._tasks.discard(task)


async def test_a_late_reservation_reply_gives_its_slots_back(
    fake: FakeDiscord, redis_url: str, aredis: aioredis.Redis
) -> None:
    _, nsfw, _, _ = make_world(fake)
    await pretend_busy_workers(aredis)
    async with LateReplies(redis_url) as proxy, running_bot(bot_settings(fake, proxy.url)):
        # The reservation runs in Redis; its reply comes after the bot's 2 s.
        proxy.hold_reply_to(b"EVALSHA", 2.8)
        handle = await fake.slash_command(
            "decensor bar", {"image": fake.add_attachment(barred(), "a.png")}, channel=nsfw
        )
        callback = await handle.wait_callback()
        assert callback.ephemeral and callback.embeds[0]["title"] == texts.REDIS_DOWN.title
        await wait_for(lambda: proxy.held == 1, 5, what="the late reply")
        await wait_for(lambda: nothing_held(aredis), 5, what="the late reservation released")


async def test_a_failed_acknowledgement_gives_its_slots_back(
    world: World, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await pretend_busy_workers(aredis)
    expired = world.fake.fail("callback", 404)  # as an interaction past its 3 s
    await world.fake.slash_command(
        "decensor bar", {"image": world.fake.add_attachment(barred(), "a.png")},
        channel=world.nsfw,
    )  # fmt: skip
    await world.fake.wait_for(lambda: expired.hits == 1, what="the refused defer")
    await wait_for(lambda: nothing_held(aredis), 5, what="the slots released")
    # Reserving again for the same user works (the default limit is 2).
    for n in range(2):
        handle = await world.fake.slash_command(
            "decensor bar", {"image": world.fake.add_attachment(barred(), f"{n}.png")},
            channel=world.nsfw,
        )  # fmt: skip
        assert (await handle.wait_callback()).callback_type == DEFERRED
    # 9: the error log names the command, not its object's repr.
    [line] = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert "decensor bar" in line and " object at 0x" not in line


# --- 5. the per-user limit counts requests ------------------------------------------------


async def test_four_images_work_at_the_default_limits(world: World, aredis: aioredis.Redis) -> None:
    await pretend_busy_workers(aredis)

    def four(tag: str) -> dict[str, Any]:
        return {name: world.fake.add_attachment(barred(), f"{tag}{n}.png")
                for n, name in enumerate(("image", "image2", "image3", "image4"))}  # fmt: skip

    for tag in "ab":
        handle = await world.fake.slash_command("decensor bar", four(tag), channel=world.nsfw)
        assert (await handle.wait_callback()).callback_type == DEFERRED
    refused = await world.fake.slash_command("decensor bar", four("c"), channel=world.nsfw)
    callback = await refused.wait_callback()
    assert callback.ephemeral
    assert callback.embeds[0]["description"].startswith(
        "You have 2 requests in progress; the limit is 2 per person."
    )
    await wait_for(lambda: _eq(aredis.llen(Queue.HENTAI_BAR), 8), what="8 images queued")


# --- 6. a request taken over by another bot is left to it ---------------------------------


@contextlib.asynccontextmanager
async def rest_only_bot(fake: FakeDiscord, redis_url: str) -> AsyncIterator[ErogakiBot]:
    """A second bot process's logic, without a gateway: it adopts and delivers over REST."""
    bot = ErogakiBot(bot_settings(fake, redis_url, EROGAKI_JOB_TIMEOUT="8"))
    async with bot:
        await bot.login(fake.token)
        yield bot


@pytest.mark.parametrize(
    "noticed", [True, False], ids=["noticed-before-the-result", "result-arrives-at-once"]
)
async def test_a_bot_whose_request_was_taken_over_stays_silent(
    noticed: bool, fake: FakeDiscord, redis_url: str, aredis: aioredis.Redis
) -> None:
    _, nsfw, _, _ = make_world(fake)
    await pretend_busy_workers(aredis)
    async with running_bot(bot_settings(fake, redis_url, EROGAKI_JOB_TIMEOUT="8")) as first:
        handle = await fake.slash_command(
            "decensor bar", {"image": fake.add_attachment(barred(), "a.png")}, channel=nsfw
        )
        await handle.wait_followups(1)
        await wait_for(lambda: aredis.llen(Queue.HENTAI_BAR), what="the queued job")
        # The first bot stalls: its heartbeat lapses while it still waits.
        assert first._liveness is not None
        first._liveness.cancel()
        await aredis.delete(keys.BOT_ALIVE_PREFIX + first.jobs.owner)
        async with rest_only_bot(fake, redis_url) as second:

            async def owner() -> str:
                raw = await aredis.hget(keys.BOT_PENDING, str(handle.id))
                return str(json.loads(raw)["owner"]) if raw else ""

            await wait_for(
                lambda: _eq(owner(), second.jobs.owner), what="the second bot's takeover"
            )
            if noticed:
                # The first bot sees the new owner's name and stops waiting...
                await wait_for(lambda: not first.submitter.pending_ids(), what="the notice")
            # ...or not yet: then whichever bot hears the result first fetches it,
            # and the first one hands it back.
            [job_id] = await queued(aredis)
            await answer_job(aredis, job_id, barred(5))
            await handle.wait_for(lambda h: any(c.files for c in h.calls if c.ok), 15)

            def idle() -> bool:
                return not first.submitter.pending_ids() and not second.submitter.pending_ids()

            await wait_for(idle, 15, what="both bots done with the request")
            await wait_for(lambda: nothing_held(aredis), what="slots and record released")
    delivered = [c for c in handle.calls if c.ok and c.files]
    said = [e.get("title") for c in handle.calls if c.ok for e in c.embeds]
    assert len(delivered) == 1 and said == []


async def _eq(value: Any, expected: object) -> bool:
    return bool(await value == expected)


# --- 7. inputs are dropped once submitted --------------------------------------------------


async def test_attachments_are_dropped_once_submitted(world: World, aredis: aioredis.Redis) -> None:
    await pretend_busy_workers(aredis)
    image = world.fake.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(20 * MiB), "big.png")
    tracemalloc.start()
    try:
        handle = await world.fake.slash_command(
            "decensor bar", {"image": image}, channel=world.nsfw
        )
        await handle.wait_followups(1)
        await wait_for(lambda: aredis.llen(Queue.HENTAI_BAR), what="the queued job")
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 8 * MiB, f"{held / MiB:.1f} MiB still held while the job waits"


# --- 8. rate limits and server errors -------------------------------------------------------


async def test_rate_limits_and_server_errors_still_deliver_and_never_log_tokens(
    world: World, workers: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = [
        world.fake.fail("callback", 429, retry_after=0.2),
        world.fake.fail("followup", 429, retry_after=0.1, is_global=True),
        world.fake.fail("edit", 429, retry_after=0.1, with_files=True),
        world.fake.fail("edit", 502, with_files=True),
    ]
    handle = await world.fake.slash_command(
        "decensor bar", {"image": world.fake.add_attachment(barred(), "a.png")},
        channel=world.nsfw,
    )  # fmt: skip
    answer = await final(handle, 30)
    assert len(answer.attachments) == 1
    assert [f.hits for f in faults] == [1, 1, 1, 1]
    assert any(r.levelno == logging.WARNING and "rate limited" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert_no_token(caplog, handle)


def assert_no_token(caplog: pytest.LogCaptureFixture, handle: InteractionHandle) -> None:
    leaked = [
        f"{r.name} {r.levelname}: {r.getMessage()[:200]}"
        for r in caplog.records
        if handle.token in r.getMessage() or handle.token in (r.exc_text or "")
    ]
    assert not leaked and handle.token not in caplog.text, leaked[:3]


async def test_a_progress_line_gone_by_delivery_time_still_gets_the_result(
    world: World, workers: None
) -> None:
    # The progress message was deleted (a moderator, a purge): the result comes as
    # a new message instead of an edit that can't land.
    gone = world.fake.fail("edit", 404, with_files=True, times=5)
    handle = await world.fake.slash_command(
        "decensor bar", {"image": world.fake.add_attachment(barred(), "a.png")},
        channel=world.nsfw,
    )  # fmt: skip
    await handle.wait_for(lambda h: any(c.files for c in h.followups), 30)
    assert gone.hits >= 1
    [delivered] = [c for c in handle.followups if c.files]
    assert f"<@{handle.user.id}>" in (delivered.content or "")


# --- 9. smaller things ---------------------------------------------------------------------


async def test_the_bot_asks_for_the_guilds_intent_only(world: World) -> None:
    [conn] = world.fake.connections
    identify = next(p["d"] for p in conn.received if p.get("op") == 2)
    assert identify["intents"] == discord.Intents(guilds=True).value


async def test_a_result_refused_as_too_large_is_refitted(world: World, workers: None) -> None:
    # The interaction's limit was too generous: Discord answers 413 and the bot
    # tries again with half the budget.
    too_large = world.fake.fail("edit", 413, with_files=True)
    handle = await world.fake.slash_command(
        "decensor bar", {"image": world.fake.add_attachment(barred(), "a.png")},
        channel=world.nsfw,
    )  # fmt: skip
    answer = await final(handle)
    assert too_large.hits == 1 and len(answer.attachments) == 1


async def test_the_health_check_reads_one_key(world: World, aredis: aioredis.Redis) -> None:
    await aredis.config_resetstat()
    env = {**os.environ, "REDIS_URL": world.settings.redis_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erogaki", "health", "bot", cwd=ROOT, env=env,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    stats = await aredis.info("commandstats")
    assert "cmdstat_scan" not in stats and "cmdstat_keys" not in stats, sorted(stats)


async def test_the_heartbeat_outlives_a_full_redis(
    fake: FakeDiscord,
    redis_factory: Callable[..., EmbeddedRedis],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full Redis refuses the heartbeat with OOM, a ResponseError, not a connection
    error; the keep-alive must ride it out, or other bots adopt a live bot's requests."""
    import bot.app

    monkeypatch.setattr(bot.app, "ALIVE_INTERVAL", 0.1)
    caplog.set_level(logging.DEBUG, logger="bot.app")
    server = redis_factory(extra_args=["--maxmemory-policy", "noeviction"])
    client = aioredis.Redis.from_url(server.url())
    async with running_bot(bot_settings(fake, server.url())) as running:
        alive = keys.BOT_ALIVE_PREFIX + running.jobs.owner
        await wait_for(lambda: client.exists(alive), what="the first heartbeat")
        # Full: well past maxmemory, so no freed buffer makes room by chance.
        await client.set("ballast", os.urandom(2 << 20))
        used = int((await client.info("memory"))["used_memory"])
        await client.config_set("maxmemory", used - (1 << 20))
        with pytest.raises(aioredis.ResponseError, match="maxmemory"):
            await client.set("probe", "x")
        await client.delete(alive)

        def refusals() -> int:
            return sum("heartbeat failed" in r.getMessage() for r in caplog.records)

        await wait_for(lambda: refusals() >= 1, 10, "the heartbeat to be refused")
        assert not await client.exists(alive)
        await client.config_set("maxmemory", 0)
        await wait_for(lambda: client.exists(alive), 10, "the heartbeat after Redis had room")
        assert running._liveness is not None and not running._liveness.done()
    await client.aclose()


def pending_record(key: str, owner: str, **extra: object) -> str:
    record = {
        "key": key, "user_id": "1", "channel_id": "2", "mode": "bar", "application_id": "3",
        "token": "t", "created": 1.0, "owner": owner, "job_ids": [], **extra,
    }  # fmt: skip
    return json.dumps(record)


async def test_a_record_the_bot_cannot_read_stops_neither_heartbeat_nor_adoption(
    fake: FakeDiscord,
    redis_url: str,
    aredis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A newer version's record (an unknown field), its owner gone: it is left as it
    was, logged once, and the loop goes on beating and adopting the others."""
    import bot.app

    monkeypatch.setattr(bot.app, "ALIVE_INTERVAL", 0.05)
    caplog.set_level(logging.INFO, logger="bot")
    newer = pending_record("111", "old/dead", priority=1)
    await aredis.hset(keys.BOT_PENDING, "111", newer)
    await aredis.hset(keys.BOT_PENDING, "222", pending_record("222", "old/dead"))
    async with running_bot(bot_settings(fake, redis_url)) as running:
        owner = running.jobs.owner

        async def adopted() -> bool:
            raw = await aredis.hget(keys.BOT_PENDING, "222")
            return raw is not None and json.loads(raw)["owner"] == owner

        await wait_for(adopted, 10, "the readable record to be adopted")
        alive = keys.BOT_ALIVE_PREFIX + owner
        for _ in range(3):  # several beats after the bad record was seen
            await aredis.delete(alive)
            await wait_for(lambda: aredis.exists(alive), 10, "the next heartbeat")
        assert running._liveness is not None and not running._liveness.done()
        assert (await aredis.hget(keys.BOT_PENDING, "111")) == newer.encode()
        told = [r for r in caplog.records if "record b'111'" in r.getMessage()]
        assert len(told) == 1 and "priority" in (told[0].exc_text or ""), told


async def test_a_delivery_cut_off_by_a_stop_is_left_to_the_next_bot(
    fake: FakeDiscord, redis_url: str, aredis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discord rate-limits the upload past the stop's grace: the results go back to
    Redis with the record, the user sees the restarting line, the next bot delivers."""
    import bot.app

    monkeypatch.setattr(bot.app, "STOP_GRACE", 0.3)
    guild, nsfw, _, _ = make_world(fake)
    await pretend_busy_workers(aredis)
    async with running_bot(bot_settings(fake, redis_url)) as first:
        handle = await fake.slash_command(
            "decensor bar", {"image": fake.add_attachment(barred(), "a.png")}, channel=nsfw
        )
        await handle.wait_followups(1)
        [job_id] = await queued(aredis)
        # Both ways of uploading are rate-limited for far longer than the grace.
        limits = [fake.fail(kind, 429, retry_after=60, with_files=True, times=5)
                  for kind in ("edit", "followup")]  # fmt: skip
        await answer_job(aredis, job_id, barred(5))
        await wait_for(lambda: sum(f.hits for f in limits) > 0, what="the rate-limited upload")
        await first.stop()
        assert await aredis.hlen(keys.BOT_PENDING) == 1
        assert await aredis.exists(keys.result_key(job_id))
        progress = handle.original
        assert progress is not None and "restarting" in progress.content
        assert not progress.custom_ids
    for fault in limits:
        fault.times = 0
    async with running_bot(bot_settings(fake, redis_url)):
        answer = await final(handle)
        await wait_for(lambda: nothing_held(aredis), what="slots and record released")
    assert len(answer.attachments) == 1 and "restarting" not in answer.content

    async def ended() -> bool:
        return bool((await audit.last_hour(aredis, guild.id)).server_outcomes["done"])

    await wait_for(ended, what="the request's end counted")
    # Handed over, then delivered: one request in /erogaki status.
    assert (await audit.last_hour(aredis, guild.id)).server_requests == 1


async def test_a_request_whose_record_redis_lost_says_so(
    world: World, aredis: aioredis.Redis
) -> None:
    """Redis restarted without persistence (or was flushed): the record is gone
    and no bot finished it. The user hears it was lost instead of "Working…" with a
    live Cancel button forever."""
    await pretend_busy_workers(aredis)
    handle = await world.fake.slash_command(
        "decensor bar", {"image": world.fake.add_attachment(barred(), "a.png")},
        channel=world.nsfw,
    )  # fmt: skip
    await handle.wait_followups(1)
    await wait_for(lambda: aredis.llen(Queue.HENTAI_BAR), what="the queued job")
    await aredis.flushall()
    await pretend_busy_workers(aredis)

    def told() -> bool:
        original = handle.original
        return original is not None and any(
            e.get("title") == texts.LOST.title for e in original.embeds
        )

    await handle.wait_for(lambda h: told(), 15)
    assert handle.original is not None
    assert [c for c in handle.original.custom_ids if "delete" in c.lower()]
    assert not [c for c in handle.original.custom_ids if "delete" not in c.lower()]
    await wait_for(lambda: nothing_held(aredis), what="slots released")


async def test_tokens_are_redacted_in_every_bot_logger(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The cogs' loggers exist only once setup_hook imports them, after the bot
    installed its redaction; one made even later is covered too."""
    caplog.set_level(logging.DEBUG)
    token = "aW50ZXJhY3Rpb246c2VjcmV0LXRva2Vu"
    url = f"https://discord.com/api/v10/webhooks/123456/{token}/messages/@original"
    for name in ("bot.cogs.decensor", "bot.cogs.settings", "bot.later.made"):
        logging.getLogger(name).warning("could not deliver: %s", url)
        try:
            raise RuntimeError(f"429 on {url}")
        except RuntimeError:
            logging.getLogger(name).exception("delivery failed")
    lines = [r for r in caplog.records if r.name.startswith("bot.")]
    assert len(lines) == 6
    for record in lines:
        text = logging.Formatter().format(record)
        assert token not in text and "/webhooks/123456/[token]" in text, text
