"""Moderators' controls through the fake Discord: /erogaki settings, what
each setting does to the next command, the Delete button, the audit trail
and this server's figures in /erogaki status. Real Redis, real cpu workers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from bot.app import sync_commands
from bot.delete import PREFIX
from erogaki_common import keys
from tests.conftest import wait_for
from tests.fake_discord import (
    DEFAULT_MEMBER_PERMISSIONS,
    MANAGE_MESSAGES,
    FakeChannel,
    FakeDiscord,
    FakeRole,
    FakeUser,
    InteractionHandle,
)
from tests.imaging import png
from tests.test_bot import (
    DEFERRED,
    World,
    barred,
    bot_settings,
    cpu_workers,
    final,
    make_world,
    pretend_busy_workers,
    running_bot,
)
from workers.imageops import synthetic as syn

MANAGE_GUILD = 1 << 5
MODERATOR = DEFAULT_MEMBER_PERMISSIONS | MANAGE_GUILD
HINT = "`/erogaki settings`"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def world(fake: FakeDiscord, redis_url: str) -> AsyncIterator[World]:
    guild, nsfw, sfw, thread = make_world(fake)
    # The host allows 2 requests per person; a server may allow fewer.
    settings = bot_settings(fake, redis_url, EROGAKI_USER_JOBS="2")
    async with running_bot(settings) as bot:
        yield World(fake, guild, nsfw, sfw, thread, settings, bot)


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[None]:
    async with cpu_workers(redis_url):
        yield


async def settings(world: World, options: dict[str, Any], **kwargs: Any) -> Any:
    """Run /erogaki settings as a moderator (unless told otherwise); its reply."""
    kwargs.setdefault("member_permissions", MODERATOR)
    handle = await world.fake.slash_command(
        "erogaki settings", options, channel=world.sfw, **kwargs
    )
    reply = await handle.wait_callback()
    assert reply.ephemeral
    return reply.embeds[0]


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def decensor(
    world: World, user: FakeUser, *, channel: FakeChannel | None = None,
    command: str = "decensor bar", **options: Any,
) -> InteractionHandle:  # fmt: skip
    image = world.fake.add_attachment(barred(), "secret-name.png")
    return await world.fake.slash_command(
        command, {"image": image, **options}, channel=channel or world.nsfw, user=user
    )


async def refusal(handle: InteractionHandle) -> dict[str, Any]:
    callback = await handle.wait_callback()
    assert callback.ephemeral, callback.embeds
    embed: dict[str, Any] = callback.embeds[0]
    return embed


async def accepted(handle: InteractionHandle) -> bool:
    return (await handle.wait_callback()).callback_type == DEFERRED


async def guild_keys(client: aioredis.Redis) -> list[bytes]:
    return [k async for k in client.scan_iter(match=keys.GUILD_PREFIX + "*")]


# --- who may change them ---------------------------------------------------------------


async def test_only_members_with_manage_server(world: World, aredis: aioredis.Redis) -> None:
    member = world.fake.add_user("member")
    embed = await settings(
        world, {"spoiler": "always"}, user=member, member_permissions=DEFAULT_MEMBER_PERMISSIONS
    )
    assert embed["title"] == "Only for moderators" and "Manage Server" in embed["description"]
    # Even just looking needs it.
    embed = await settings(world, {}, user=member, member_permissions=DEFAULT_MEMBER_PERMISSIONS)
    assert embed["title"] == "Only for moderators"
    # A moderator looking at the defaults writes nothing.
    embed = await settings(world, {})
    assert fields(embed)["Where"] == "any age-restricted channel"
    assert fields(embed)["Spoiler"] == "on by default (the host's default)"
    assert fields(embed)["Requests per member"] == "2 (the host's limit)"
    assert await guild_keys(aredis) == []

    embed = await settings(world, {"requests": 3})
    assert embed["title"] == "More than the host allows"
    assert await guild_keys(aredis) == []


# --- each setting changes what the next command does ----------------------------------------


async def test_listed_channels_and_their_threads(
    world: World, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.audit")
    await pretend_busy_workers(aredis)
    other = world.fake.add_text_channel(world.guild, "more-art", nsfw=True)
    user = world.fake.add_user("user")
    assert await accepted(await decensor(world, user, channel=other))

    embed = await settings(world, {"add_channel": world.nsfw})
    assert embed["title"] == "Settings changed"
    assert fields(embed)["Where"] == (
        f"**was:** any age-restricted channel\n**now:** only <#{world.nsfw.id}> (and their threads)"
    )
    said = await refusal(await decensor(world, world.fake.add_user("u2"), channel=other))
    assert said["title"] == "Not in this channel"
    assert f"<#{world.nsfw.id}>" in said["description"] and HINT in said["description"]
    await wait_for(lambda: "reason=channel" in caplog.text, what="the refusal's audit line")
    [line] = [r.getMessage() for r in caplog.records if "reason=channel" in r.getMessage()]
    assert f"channel={other.id} " in line and " images=1 outcome=refused" in line
    assert await accepted(await decensor(world, world.fake.add_user("u3"), channel=world.thread))
    assert await guild_keys(aredis) == [f"{keys.GUILD_PREFIX}{world.guild.id}".encode()]

    await settings(world, {"reset": "where"})
    assert await accepted(await decensor(world, world.fake.add_user("u4"), channel=other))
    assert await guild_keys(aredis) == []


async def test_a_disabled_mode_and_a_required_role(world: World, aredis: aioredis.Redis) -> None:
    await pretend_busy_workers(aredis)
    embed = await settings(world, {"disable": "mosaic"})
    assert fields(embed)["Modes"].endswith("**now:** bar, auto, pre-masked")
    said = await refusal(await decensor(world, world.fake.add_user("a"), command="decensor mosaic"))
    assert said["title"] == "That mode is switched off here"
    assert "Mosaic" in said["description"] and HINT in said["description"]
    assert await accepted(await decensor(world, world.fake.add_user("b")))

    role = world.fake.add_role(world.guild, "artists")
    embed = await settings(world, {"role": role})
    assert fields(embed)["Required role"] == f"**was:** none\n**now:** <@&{role.id}>"
    without = world.fake.add_user("c")
    said = await refusal(await decensor(world, without))
    assert said["title"] == "A role is required" and HINT in said["description"]
    member = world.fake.add_user("d")
    world.fake.give_role(world.guild, member, role)
    assert await accepted(await decensor(world, member))


async def test_the_servers_limit_per_member(world: World, aredis: aioredis.Redis) -> None:
    await pretend_busy_workers(aredis)
    user = world.fake.add_user("busy")
    embed = await settings(world, {"requests": 1})
    assert fields(embed)["Requests per member"] == "**was:** 2 (the host's limit)\n**now:** 1"
    assert await accepted(await decensor(world, user))
    said = await refusal(await decensor(world, user))
    assert said["title"] == "You have too many requests running"
    assert "the limit is 1 per person" in said["description"]
    assert "Requests per member" in said["description"] and HINT in said["description"]

    # Back to the host's 2: the second request goes ahead.
    await settings(world, {"reset": "requests"})
    assert await accepted(await decensor(world, user))

    # /erogaki status: this server's requests of the last hour next to everyone's.
    handle = await world.fake.slash_command("erogaki status", {}, channel=world.sfw)
    await wait_for(
        lambda: _hour_field(handle) is not None, what="the status reply"
    )  # fmt: skip
    hour = _hour_field(handle)
    assert hour is not None
    assert hour.startswith("This server: 1 request(s), 0 image(s) (1 refused)")
    assert "All servers: 1 request(s)" in hour


def _hour_field(handle: InteractionHandle) -> str | None:
    if handle.callback is None:
        return None
    return fields(handle.callback.embeds[0]).get("Requests in the last hour")


def masked_scene(seed: int) -> bytes:
    # Pre-masked: straight to inpainting, the quickest job there is.
    scene = syn.draw_scene(seed, (96, 96))
    scene[30:50, 20:70] = (0, 255, 0)
    return png(scene)


async def masked(world: World, user: FakeUser, **options: Any) -> Any:
    image = world.fake.add_attachment(masked_scene(len(options) + 3), "private.png")
    handle = await world.fake.slash_command(
        "decensor bar", {"image": image, "masked": True, **options}, channel=world.nsfw, user=user
    )
    return await final(handle)


async def test_spoiler_policy_on_the_uploaded_file_names(world: World, workers: None) -> None:
    user = world.fake.add_user("viewer")
    [file] = (await masked(world, user)).attachments
    assert file.filename == "SPOILER_decensored-1.png"  # the host's default: on

    await settings(world, {"spoiler": "off"})
    [file] = (await masked(world, user)).attachments
    assert file.filename == "decensored-1.png"
    [file] = (await masked(world, user, spoiler=True)).attachments
    assert file.filename == "SPOILER_decensored-1.png"

    embed = await settings(world, {"spoiler": "always"})
    assert fields(embed)["Spoiler"] == "**was:** off by default\n**now:** always"
    [file] = (await masked(world, user, spoiler=False)).attachments
    assert file.filename == "SPOILER_decensored-1.png"


# --- the Delete button and the audit trail ---------------------------------------------------


async def test_delete_button_for_requester_and_moderator_not_strangers(
    world: World, workers: None, caplog: pytest.LogCaptureFixture
) -> None:
    requester = world.fake.add_user("requester")
    with caplog.at_level(logging.INFO, logger="bot"):
        result = await masked(world, requester)
        [button] = result.custom_ids
        assert button == f"{PREFIX}{requester.id}"

        stranger = world.fake.add_user("stranger")
        click = await world.fake.click_button(result, button, user=stranger)
        said = await click.wait_callback()
        assert said.ephemeral and "Only the person who asked" in (said.content or "")
        assert not result.deleted

        moderator = world.fake.add_user("moderator")
        click = await world.fake.click_button(
            result, button, user=moderator,
            member_permissions=DEFAULT_MEMBER_PERMISSIONS | MANAGE_MESSAGES,
        )  # fmt: skip
        await world.fake.wait_for(lambda: result.deleted, 10)

        # An error message has one too, and its requester can delete it.
        ramp = np.linspace(0, 255, 96, dtype=np.uint8)
        plain = np.ascontiguousarray(np.stack(np.broadcast_arrays(
            ramp[None, :], ramp[:, None], ramp[None, ::-1]), -1))  # fmt: skip
        handle = await world.fake.slash_command(
            "decensor bar", {"image": world.fake.add_attachment(png(plain), "plain.png")},
            channel=world.nsfw, user=requester,
        )  # fmt: skip
        error = await final(handle)
        assert error.embeds and not error.attachments
        await world.fake.click_button(error, error.custom_ids[0], user=requester)
        await world.fake.wait_for(lambda: error.deleted, 10)

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit ")]
    assert len(lines) == 2
    assert lines[0].startswith(
        f"audit request={result.interaction_id} server={world.guild.id} "
        f"channel={world.nsfw.id} user={requester.id} mode=bar-masked images=1 outcome=done "
    )
    assert lines[1].split()[7] == "outcome=failed"
    everything = caplog.text
    assert "private.png" not in everything and "plain.png" not in everything
    assert handle.token not in everything


async def test_settings_is_a_subcommand_of_erogaki(world: World) -> None:
    await sync_commands(world.bot, world.guild.id)
    commands = {c["name"]: c for c in world.fake.guild_commands[world.guild.id]}
    assert "settings" not in commands
    erogaki = {o["name"]: o for o in commands["erogaki"]["options"]}
    assert set(erogaki) == {"status", "settings"}
    options = {o["name"] for o in erogaki["settings"]["options"]}
    assert options == {
        "where", "add_channel", "remove_channel", "spoiler", "requests", "enable", "disable",
        "role", "reset",
    }  # fmt: skip
    # Anyone may see it; the bot checks Manage Server on every use.
    assert not commands["erogaki"].get("nsfw")


async def test_one_unreadable_field_leaves_the_others_in_force(
    world: World, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A newer version's field and a bad value beside a required role: the role
    still applies (falling back to all the defaults would open the server)."""
    await pretend_busy_workers(aredis)
    role = world.fake.add_role(world.guild, "artists")
    await settings(world, {"role": role})
    key = keys.GUILD_PREFIX + str(world.guild.id)
    await aredis.hset(key, mapping={"priority": "1", "spoiler": "sometimes"})
    caplog.set_level(logging.WARNING, logger="bot")
    store = world.bot.server_settings

    def told() -> list[str]:
        return [r.getMessage() for r in caplog.records if "can't read" in r.getMessage()]

    async def heard() -> bool:
        await store.get(world.guild.id)
        return bool(told())

    await aredis.publish(keys.GUILD_CHANGED_CHANNEL, str(world.guild.id))
    await wait_for(heard, 5, "the bot to read the changed hash")
    await store.read(world.guild.id)  # the same problems again: not said twice
    for name in ("a", "b"):
        said = await refusal(await decensor(world, world.fake.add_user(name)))
        assert said["title"] == "A role is required"
    member = world.fake.add_user("c")
    world.fake.give_role(world.guild, member, role)
    assert await accepted(await decensor(world, member))
    said_once = told()
    assert len(said_once) == 1, said_once
    assert "priority" in said_once[0] and "spoiler" in said_once[0]


async def test_a_required_role_the_bot_has_not_cached(world: World, aredis: aioredis.Redis) -> None:
    """The role check reads the interaction's role ids: the bot's cache has no
    role of a guild it wasn't sent (here, a role it never heard created)."""
    await pretend_busy_workers(aredis)
    unheard = FakeRole(987_654_321_987_654_321, "artists", position=9)
    await world.bot.server_settings.update(world.guild.id, role_id=unheard.id)
    member = world.fake.add_user("d")
    world.fake.give_role(world.guild, member, unheard)
    assert await accepted(await decensor(world, member))
    said = await refusal(await decensor(world, world.fake.add_user("e")))
    assert said["title"] == "A role is required"
