"""The bot end to end: the real discord.py client against a fake Discord on
127.0.0.1, real Redis, and the real cpu workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from bot.app import ErogakiBot, sync_commands
from bot.delete import only_delete
from bot.discord_api import DEFAULT_API_BASE, use_api_base
from bot.jobs import Request
from erogaki_common import keys
from erogaki_common.embedded_redis import free_port
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.settings import Settings, parse_settings
from tests.conftest import wait_for
from tests.fake_discord import FakeChannel, FakeDiscord, FakeGuild, InteractionHandle
from tests.imaging import pixels_of, png
from tests.test_auto import both_censored
from workers.imageops import synthetic as syn
from workers.runner import WorkerOptions, build_worker

ROOT = Path(__file__).resolve().parent.parent
DEFERRED = 5
MESSAGE = 4


def barred(seed: int = 11) -> bytes:
    clean = syn.draw_scene(seed, (256, 256))
    censored, _ = syn.add_bars(clean, np.random.default_rng(3), 1, syn.BLACK, 20.0)
    return png(censored)


def mosaicked(seed: int = 5) -> bytes:
    clean = syn.draw_scene(seed, (256, 256))
    censored, _ = syn.add_mosaic(clean, np.random.default_rng(9), 12, (5, 7))
    return png(censored)


@dataclass
class World:
    fake: FakeDiscord
    guild: FakeGuild
    nsfw: FakeChannel
    sfw: FakeChannel
    thread: FakeChannel
    settings: Settings
    bot: ErogakiBot


def bot_settings(fake: FakeDiscord, redis_url: str, **extra: str) -> Settings:
    return parse_settings(
        {
            "REDIS_URL": redis_url,
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_BASE": fake.api_base,
            "EROGAKI_INSTANCE": "bot-test",
            "EROGAKI_JOB_TIMEOUT": "30",
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[ErogakiBot]:
    use_api_base(settings.discord_api_base)
    bot = ErogakiBot(settings, guild_ready_timeout=0.05)
    task = asyncio.create_task(bot.start(settings.discord_token or ""))
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 15)
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        use_api_base(DEFAULT_API_BASE)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


def make_world(fake: FakeDiscord) -> tuple[FakeGuild, FakeChannel, FakeChannel, FakeChannel]:
    guild = fake.add_guild("lab")
    nsfw = fake.add_text_channel(guild, "art", nsfw=True)
    sfw = fake.add_text_channel(guild, "general")
    thread = fake.add_thread(nsfw, "requests")
    return guild, nsfw, sfw, thread


@pytest.fixture
async def world(fake: FakeDiscord, redis_url: str) -> AsyncIterator[World]:
    guild, nsfw, sfw, thread = make_world(fake)
    settings = bot_settings(fake, redis_url)
    async with running_bot(settings) as bot:
        yield World(fake, guild, nsfw, sfw, thread, settings, bot)


@contextlib.asynccontextmanager
async def cpu_workers(redis_url: str) -> AsyncIterator[None]:
    settings = parse_settings({"REDIS_URL": redis_url})
    workers = [
        build_worker(WorkerOptions(name, "cpu", f"test-{name}"), settings, None)
        for name in ("hent-ai", "deepcreampy")
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    client = aioredis.Redis.from_url(redis_url)
    beats = [keys.heartbeat_key(w.instance) for w in workers]

    async def beating() -> bool:
        return int(await client.exists(*beats)) == len(beats)

    await wait_for(beating, what="the workers' heartbeats")
    await client.aclose()
    try:
        yield
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[None]:
    async with cpu_workers(redis_url):
        yield


async def final(handle: InteractionHandle, timeout: float = 30) -> Any:
    """The answer: the progress message once it shows results or errors and
    no longer has a Cancel button (only its Delete button)."""

    def done(h: InteractionHandle) -> bool:
        o = h.original
        return o is not None and bool(o.attachments or o.embeds) and only_delete(o.custom_ids)

    await handle.wait_for(done, timeout)
    assert handle.original is not None
    return handle.original


async def pretend_busy_workers(client: aioredis.Redis) -> None:
    """A live worker on every queue that takes nothing, so jobs stay queued."""
    queues = json.dumps([q.value for q in Queue])
    beat = json.dumps({"instance": "busy", "component": "test", "queues": [q.value for q in Queue]})
    await client.set(keys.heartbeat_key("busy"), beat, ex=60)
    await client.hset(keys.INSTANCES, "busy", queues)


# --- success ---------------------------------------------------------------------


async def test_decensor_bar_end_to_end(world: World, workers: None) -> None:
    image = world.fake.add_attachment(barred(), "censored.png")
    handle = await world.fake.slash_command("decensor bar", {"image": image}, channel=world.nsfw)
    callback = await handle.wait_callback()
    assert callback.callback_type == DEFERRED and not callback.ephemeral
    [progress] = await handle.wait_followups(1)
    assert "Cancel" in str(progress.components)
    assert world.fake.downloads == [image.id]
    answer = await final(handle)
    [file] = answer.attachments
    assert file.filename == "SPOILER_decensored-1.png"
    result = pixels_of(file.data)
    assert result.shape == (256, 256, 3)
    assert f"<@{handle.user.id}>" in answer.content
    assert not answer.ephemeral


async def test_decensor_mosaic_and_the_context_menus(world: World, workers: None) -> None:
    image = world.fake.add_attachment(mosaicked(), "pixelated.png")
    handle = await world.fake.slash_command("decensor mosaic", {"image": image}, channel=world.nsfw)
    assert len((await final(handle)).attachments) == 1

    posted = world.fake.post_user_message(
        world.nsfw, attachments=[world.fake.add_attachment(mosaicked(6), "posted.png")]
    )
    menu = await world.fake.message_command("Decensor mosaic", posted)
    assert (await menu.wait_callback()).callback_type == DEFERRED
    assert len((await final(menu)).attachments) == 1

    posted = world.fake.post_user_message(
        world.nsfw, attachments=[world.fake.add_attachment(barred(12), "bars.png")]
    )
    menu = await world.fake.message_command("Decensor bars", posted)
    assert len((await final(menu)).attachments) == 1


async def test_decensor_auto_and_its_context_menu(world: World, workers: None) -> None:
    _, censored, mosaic, bar = both_censored()
    image = world.fake.add_attachment(png(censored), "both.png")
    handle = await world.fake.slash_command("decensor auto", {"image": image}, channel=world.nsfw)
    [file] = (await final(handle)).attachments
    result = pixels_of(file.data)
    # The bar went through inpainting (no black, no green left) and the mosaic changed.
    assert not (result[bar] == 0).all(axis=-1).any()
    assert not np.all(result == (0, 255, 0), axis=-1).any()
    assert not np.array_equal(result[mosaic], censored[mosaic])

    posted = world.fake.post_user_message(
        world.nsfw, attachments=[world.fake.add_attachment(mosaicked(6), "posted.png")]
    )
    menu = await world.fake.message_command("Decensor", posted)
    assert (await menu.wait_callback()).callback_type == DEFERRED
    assert len((await final(menu)).attachments) == 1


async def test_several_images_in_one_command(world: World, workers: None) -> None:
    first = world.fake.add_attachment(barred(11), "a.png")
    second = world.fake.add_attachment(barred(13), "b.png")
    handle = await world.fake.slash_command(
        "decensor bar", {"image": first, "image2": second}, channel=world.thread
    )
    answer = await final(handle)
    assert sorted(a.filename for a in answer.attachments) == [
        "SPOILER_decensored-1.png",
        "SPOILER_decensored-2.png",
    ]


async def test_masked_option_goes_straight_to_inpainting(world: World, workers: None) -> None:
    scene = syn.draw_scene(8, (128, 128))
    scene[40:60, 20:100] = (0, 255, 0)
    image = world.fake.add_attachment(png(scene), "green.png")
    handle = await world.fake.slash_command(
        "decensor bar", {"image": image, "masked": True}, channel=world.nsfw
    )
    [file] = (await final(handle)).attachments
    assert not np.all(pixels_of(file.data) == (0, 255, 0), axis=-1).any()


async def test_too_large_result_is_reencoded_and_said_so(world: World, workers: None) -> None:
    noise = np.random.default_rng(1).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    noise[200:300, 100:400] = (0, 255, 0)
    image = world.fake.add_attachment(png(noise), "noise.png")
    limit = 120_000
    assert len(png(noise)) > limit
    handle = await world.fake.slash_command(
        "decensor bar", {"image": image, "masked": True}, channel=world.nsfw,
        attachment_size_limit=limit,
    )  # fmt: skip
    answer = await final(handle)
    [file] = answer.attachments
    assert file.size <= limit and file.filename.endswith(".jpg")
    assert "JPEG" in answer.content
    assert not [c for c in world.fake.rejected if c.status == 413]


# --- refusals -------------------------------------------------------------------------


async def test_refused_outside_nsfw_channels_and_in_dms(world: World) -> None:
    image = world.fake.add_attachment(barred(), "x.png")
    handle = await world.fake.slash_command("decensor bar", {"image": image}, channel=world.sfw)
    callback = await handle.wait_callback()
    assert callback.callback_type == MESSAGE and callback.ephemeral
    assert callback.embeds[0]["title"] == "Only in age-restricted channels"

    dm = world.fake.dm_channel()
    handle = await world.fake.slash_command("decensor bar", {"image": image}, channel=dm)
    callback = await handle.wait_callback()
    assert callback.ephemeral and callback.embeds[0]["title"] == "Not in DMs"

    huge = world.fake.add_attachment(b"\0" * (26 * 1024 * 1024), "huge.png", "image/png")
    handle = await world.fake.slash_command("decensor bar", {"image": huge}, channel=world.nsfw)
    callback = await handle.wait_callback()
    assert callback.ephemeral and callback.embeds[0]["title"] == "That image is too large"
    assert callback.embeds[0]["description"] == "`huge.png` is 26 MiB; the limit is 25 MiB."
    assert huge.id not in world.fake.downloads  # refused before downloading

    text = world.fake.add_attachment(b"hello", "notes.txt", "text/plain")
    handle = await world.fake.slash_command("decensor bar", {"image": text}, channel=world.nsfw)
    callback = await handle.wait_callback()
    assert callback.ephemeral and "isn't an image" in callback.embeds[0]["title"]


async def test_worker_error_is_a_readable_embed(world: World, workers: None) -> None:
    ramp = np.linspace(0, 255, 256, dtype=np.uint8)
    gradient = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[None, ::-1]), -1)
    plain = world.fake.add_attachment(png(np.ascontiguousarray(gradient)), "plain.png")
    handle = await world.fake.slash_command("decensor bar", {"image": plain}, channel=world.nsfw)
    answer = await final(handle)
    [embed] = answer.embeds
    assert embed["title"] == "I couldn't find anything to decensor"
    assert "NoCensoredRegionsFound" in embed["footer"]["text"]
    assert "hent-AI-erogaki-wrapper" in embed["footer"]["text"]
    assert "test-hent-ai" in embed["footer"]["text"]
    assert not answer.attachments


async def test_cancel_button_only_for_the_requester(world: World, aredis: aioredis.Redis) -> None:
    await pretend_busy_workers(aredis)
    image = world.fake.add_attachment(barred(), "x.png")
    handle = await world.fake.slash_command("decensor bar", {"image": image}, channel=world.nsfw)
    [progress] = await handle.wait_followups(1)
    await wait_for(lambda: aredis.llen(Queue.HENTAI_BAR), what="the queued job")
    assert progress.message_id is not None
    [button] = progress.custom_ids
    stranger = world.fake.add_user("stranger")
    other = await world.fake.click_button(progress.message_id, button, user=stranger)
    refusal = await other.wait_callback()
    assert refusal.ephemeral and "Only the person who asked" in (refusal.content or "")
    assert await aredis.llen(Queue.HENTAI_BAR) == 1

    mine = await world.fake.click_button(progress.message_id, button, user=handle.user)
    await mine.wait_callback()
    answer = await final(handle)
    assert answer.embeds[0]["title"] == "Cancelled"
    assert await aredis.llen(Queue.HENTAI_BAR) == 0


async def test_per_user_and_global_limits(
    fake: FakeDiscord, redis_url: str, aredis: aioredis.Redis
) -> None:
    _, nsfw, _, _ = make_world(fake)
    await pretend_busy_workers(aredis)
    # Per user: requests, whatever their images. In all: images.
    settings = bot_settings(fake, redis_url, EROGAKI_USER_JOBS="1", EROGAKI_QUEUE_CAP="3")
    async with running_bot(settings):
        first = await fake.slash_command(
            "decensor bar", {"image": fake.add_attachment(barred(), "a.png")}, channel=nsfw
        )
        assert (await first.wait_callback()).callback_type == DEFERRED
        two = {"image": fake.add_attachment(barred(), "c.png"),
               "image2": fake.add_attachment(barred(), "d.png")}  # fmt: skip
        again = await fake.slash_command("decensor bar", two, channel=nsfw)
        refusal = await again.wait_callback()
        description = refusal.embeds[0]["description"]
        assert refusal.ephemeral and description.startswith(
            "You have 1 request in progress; the limit is 1 per person."
        )

        other = fake.add_user("other")
        granted = await fake.slash_command("decensor bar", two, channel=nsfw, user=other)
        assert (await granted.wait_callback()).callback_type == DEFERRED
        third = fake.add_user("third")
        full = await fake.slash_command("decensor bar", two, channel=nsfw, user=third)
        refusal = await full.wait_callback()
        assert refusal.ephemeral and refusal.embeds[0]["title"] == "The queue is full"
        assert refusal.embeds[0]["description"].startswith(
            "3 images are queued or being worked on, and yours would add 2; the limit is 3."
        )


async def test_no_live_worker_is_said_at_once(world: World, aredis: aioredis.Redis) -> None:
    image = world.fake.add_attachment(barred(), "x.png")
    handle = await world.fake.slash_command("decensor bar", {"image": image}, channel=world.nsfw)
    callback = await handle.wait_callback()
    assert callback.ephemeral and callback.embeds[0]["title"] == "No worker is running right now"
    assert await aredis.llen(Queue.HENTAI_BAR) == 0


async def test_auto_with_workers_from_before_auto_is_refused_by_name(
    world: World, aredis: aioredis.Redis
) -> None:
    """Workers of an older version listen on bar, mosaic and inpainting only: auto
    is refused as not available yet (not as "no worker"), and bar still queues."""
    old = [q.value for q in Queue if q is not Queue.HENTAI_AUTO]
    beat = json.dumps({"instance": "old", "component": "test", "queues": old})
    await aredis.set(keys.heartbeat_key("old"), beat, ex=60)
    await aredis.hset(keys.INSTANCES, "old", json.dumps(old))

    image = world.fake.add_attachment(barred(), "x.png")
    handle = await world.fake.slash_command("decensor auto", {"image": image}, channel=world.nsfw)
    refusal = await handle.wait_callback()
    assert refusal.ephemeral and refusal.embeds[0]["title"] == "The workers here can't do auto yet"
    assert await aredis.llen(Queue.HENTAI_AUTO) == 0

    image = world.fake.add_attachment(barred(), "y.png")
    handle = await world.fake.slash_command("decensor bar", {"image": image}, channel=world.nsfw)
    assert (await handle.wait_callback()).callback_type == DEFERRED

    async def bar_queued() -> bool:
        return bool(await aredis.llen(Queue.HENTAI_BAR) == 1)

    await wait_for(bar_queued, timeout=10, what="the bar job queued")

    status = await world.fake.slash_command("erogaki status", {}, channel=world.sfw)
    embed = (await status.wait_callback()).embeds[0]
    queues = {f["name"]: f["value"] for f in embed["fields"]}["Queues"]
    assert "auto (hent-AI): 0 waiting, 0 worker(s) (the workers predate auto mode)" in queues
    assert embed["color"] == 0x2ECC71  # green: everything the old fleet offers works


async def test_redis_down_is_said_plainly(fake: FakeDiscord) -> None:
    _, nsfw, _, _ = make_world(fake)
    settings = bot_settings(fake, f"redis://127.0.0.1:{free_port()}/0")
    async with running_bot(settings):
        handle = await fake.slash_command(
            "decensor bar", {"image": fake.add_attachment(barred(), "a.png")}, channel=nsfw
        )
        callback = await handle.wait_callback()
    assert callback.ephemeral
    assert callback.embeds[0]["title"] == "The bot can't reach its job queue right now"


async def test_status_command(world: World, workers: None) -> None:
    handle = await world.fake.slash_command("erogaki status", {}, channel=world.sfw)
    callback = await handle.wait_callback()
    assert callback.ephemeral
    fields = {f["name"]: f["value"] for f in callback.embeds[0]["fields"]}
    assert fields["Live workers"] == "2"
    assert "inpainting (DeepCreamPy): 0 waiting, 1 worker(s)" in fields["Queues"]


async def test_commands_sync_with_nsfw_flags(world: World) -> None:
    await sync_commands(world.bot, world.guild.id)
    commands = {c["name"]: c for c in world.fake.guild_commands[world.guild.id]}
    assert set(commands) >= {
        "decensor", "erogaki", "Decensor", "Decensor bars", "Decensor mosaic"
    }  # fmt: skip
    menus = ("Decensor", "Decensor bars", "Decensor mosaic")
    assert all(commands[n]["nsfw"] for n in ("decensor", *menus))
    subcommands = {o["name"] for o in commands["decensor"]["options"]}
    assert subcommands == {"bar", "mosaic", "auto"}


# --- restarts -------------------------------------------------------------------------


@pytest.fixture
def bot_process(fake: FakeDiscord, redis_url: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def test_a_restarted_bot_delivers_pending_jobs(
    fake: FakeDiscord,
    redis_url: str,
    aredis: aioredis.Redis,
    bot_process: list[subprocess.Popen[bytes]],
) -> None:
    _, nsfw, _, _ = make_world(fake)
    await pretend_busy_workers(aredis)
    env = {**os.environ, "REDIS_URL": redis_url, "DISCORD_TOKEN": fake.token,
           "DISCORD_API_BASE": fake.api_base, "EROGAKI_INSTANCE": "crashing-bot"}  # fmt: skip
    crashing = subprocess.Popen(
        [sys.executable, "-m", "erogaki", "bot"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    bot_process.append(crashing)
    await fake.wait_ready(30)
    handle = await fake.slash_command(
        "decensor bar", {"image": fake.add_attachment(barred(), "a.png")}, channel=nsfw
    )
    await handle.wait_followups(1, timeout=20)

    async def progress_recorded() -> bool:
        raw = await aredis.hget(keys.BOT_PENDING, str(handle.id))
        return raw is not None and Request.from_json(raw).message_id != 0

    # The record names the progress line, which the next bot replaces.
    await wait_for(progress_recorded, what="the pending record with its progress line")
    crashing.send_signal(signal.SIGKILL)
    crashing.wait(10)
    # Its heartbeat would expire in 15 s; expire it now.
    [alive] = [k async for k in aredis.scan_iter(keys.BOT_ALIVE_PREFIX + "crashing-bot/*")]
    await aredis.delete(alive)

    async with cpu_workers(redis_url), running_bot(bot_settings(fake, redis_url)) as bot:
        # The result replaces the progress line, whose Cancel button goes.
        answer = await final(handle, 30)
        # Later adoption rounds must not deliver it again.
        assert await bot.jobs.orphans() == []
        await wait_for(lambda: _is(aredis.hlen(keys.BOT_PENDING), 0), what="the record deleted")
    assert len(answer.attachments) == 1 and f"<@{handle.user.id}>" in answer.content
    assert len([c for c in handle.calls if c.ok and c.files]) == 1


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def test_results_after_the_token_expired_go_to_the_channel(
    fake: FakeDiscord, redis_url: str, aredis: aioredis.Redis
) -> None:
    _, nsfw, _, _ = make_world(fake)
    stale = Request(
        key="1", user_id=fake.default_user.id, channel_id=nsfw.id, mode=Mode.BAR,
        application_id=fake.application_id, token="expired-token",
        created=time.time() - 20 * 60, job_ids=["late-job"], owner="dead-bot",
    )  # fmt: skip
    await aredis.hset(keys.BOT_PENDING, stale.key, stale.to_json())
    await aredis.set(keys.input_key("late-job"), barred(), ex=60)
    await aredis.set(keys.result_key("late-job"), barred(), ex=60)
    async with running_bot(bot_settings(fake, redis_url)):
        await fake.wait_for(lambda: any(c.files for c in fake.channel_messages), 20)
        await wait_for(lambda: _is(aredis.hlen(keys.BOT_PENDING), 0), what="the record deleted")
    [message] = [c for c in fake.channel_messages if c.files]
    assert message.channel_id == nsfw.id
    assert f"<@{fake.default_user.id}>" in (message.content or "")


async def test_a_wrong_token_is_said_plainly(fake: FakeDiscord, redis_url: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "DISCORD_TOKEN": "not-the-token",
           "DISCORD_API_BASE": fake.api_base}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erogaki", "bot", cwd=ROOT, env=env,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"Discord refused DISCORD_TOKEN" in err and b"Traceback" not in err


async def test_sync_from_the_command_line(fake: FakeDiscord, redis_url: str) -> None:
    guild, _, _, _ = make_world(fake)
    env = {**os.environ, "REDIS_URL": redis_url, "DISCORD_TOKEN": fake.token,
           "DISCORD_API_BASE": fake.api_base}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erogaki", "bot", "--sync", "--guild", str(guild.id),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert f"to guild {guild.id}" in out.decode()
    assert {c["name"] for c in fake.guild_commands[guild.id]} >= {"decensor", "erogaki"}
    assert not fake.connections  # syncing never opens the gateway


async def test_progress_shows_the_place_in_line(world: World, aredis: aioredis.Redis) -> None:
    await pretend_busy_workers(aredis)
    first = await world.fake.slash_command(
        "decensor mosaic", {"image": world.fake.add_attachment(mosaicked(), "a.png")},
        channel=world.nsfw,
    )  # fmt: skip
    await first.wait_followups(1)
    second = await world.fake.slash_command(
        "decensor mosaic", {"image": world.fake.add_attachment(mosaicked(), "b.png")},
        channel=world.nsfw, user=world.fake.add_user("second"),
    )  # fmt: skip
    await second.wait_for(
        lambda h: h.original is not None and "#2 in line" in h.original.content, timeout=10
    )
    assert second.original is not None
    assert second.original.content == "⏳ Queued: your image is #2 in line"
    assert "Cancel" in str(second.original.components)
