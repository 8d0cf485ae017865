"""The fake Discord against the real discord.py client, and bot.discord_api."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import zlib
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.discord_api import (
    DEFAULT_API_BASE,
    GatewayFromApiMixin,
    api_base_from_env,
    use_api_base,
)
from tests.fake_discord import (
    CHANNEL_MESSAGE_WITH_SOURCE,
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
    EPHEMERAL,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


class RetryView(discord.ui.View):
    def __init__(self) -> None:
        # No timeout: a timer would outlive the test's event loop.
        super().__init__(timeout=None)

    @discord.ui.button(label="Retry", custom_id="erogaki:retry")
    async def retry(
        self, interaction: discord.Interaction, button: discord.ui.Button[RetryView]
    ) -> None:
        await interaction.response.send_message("retrying", ephemeral=True)
        assert isinstance(interaction.channel, discord.TextChannel)
        sent = await interaction.channel.send(f"retry requested by {interaction.user.name}")
        await sent.edit(content=sent.content + " (queued)")


class WireBot(GatewayFromApiMixin, commands.Bot):
    """A small bot exercising what erogaki's bot does over the wire."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            help_command=None,
            # on_ready waits this long after the last GUILD_CREATE (default 2 s).
            guild_ready_timeout=0.05,
        )
        self.errors: list[BaseException] = []
        self.events: list[str] = []
        self.upload_errors: list[tuple[int, int]] = []
        self._add_commands()

    def _add_commands(self) -> None:
        decensor = app_commands.Group(name="decensor", description="Decensor images")
        erogaki = app_commands.Group(name="erogaki", description="About the bot")

        @decensor.command(name="bar", description="Remove bar censoring")
        async def bar(
            interaction: discord.Interaction,
            image: discord.Attachment,
            image2: discord.Attachment | None = None,
            masked: bool = False,
        ) -> None:
            await interaction.response.defer(thinking=True)
            data = await image.read()
            message = await interaction.followup.send(
                content=f"bar masked={masked} second={image2 is not None}",
                file=discord.File(io.BytesIO(data[::-1]), "decensored.png"),
                embed=discord.Embed(title="Decensored", description=f"{len(data)} bytes"),
                view=RetryView(),
                wait=True,
            )
            await message.edit(content="bar done")

        @decensor.command(name="mosaic", description="Remove mosaic censoring")
        async def mosaic(interaction: discord.Interaction, image: discord.Attachment) -> None:
            await interaction.response.defer(ephemeral=True)
            data = await image.read()
            try:
                await interaction.followup.send(file=discord.File(io.BytesIO(data * 2), "big.png"))
            except discord.HTTPException as exc:
                self.upload_errors.append((exc.status, exc.code))
                await interaction.followup.send(f"too large ({exc.code})")

        @erogaki.command(name="status", description="Show the status")
        async def status(interaction: discord.Interaction) -> None:
            channel = interaction.channel
            nsfw = (
                channel.is_nsfw()
                if isinstance(channel, discord.TextChannel | discord.Thread)
                else None
            )
            await interaction.response.send_message(
                f"ok nsfw={nsfw} dm={interaction.guild is None} limit={interaction.filesize_limit}",
                ephemeral=True,
            )

        @app_commands.context_menu(name="Decensor (bar)")
        async def from_message(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.defer(ephemeral=True)
            data = await message.attachments[0].read()
            await interaction.edit_original_response(
                content=f"from {message.author.name}",
                attachments=[discord.File(io.BytesIO(data), "ctx.png")],
            )

        self.tree.add_command(decensor)
        self.tree.add_command(erogaki)
        self.tree.add_command(from_message)

        @self.tree.error
        async def on_tree_error(
            interaction: discord.Interaction, error: app_commands.AppCommandError
        ) -> None:
            self.errors.append(error)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py waits 5 s before every IDENTIFY but the first (Discord's identify rate
        # limit); the fake has none, and the test of re-identifying should stay fast.
        return None

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def on_error(self, event_method: str, /, *args: object, **kwargs: object) -> None:
        self.errors.append(RuntimeError(f"error in {event_method}"))

    async def on_resumed(self) -> None:
        self.events.append("resumed")

    async def on_ready(self) -> None:
        self.events.append("ready")


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord) -> AsyncIterator[WireBot]:
    use_api_base(fake.api_base)
    bot = WireBot()
    task = asyncio.create_task(bot.start(fake.token))
    try:
        ready = asyncio.create_task(bot.wait_until_ready())
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # the bot died during login or connect: show why
        assert ready in done, "the bot did not get ready"
        yield bot
        assert bot.errors == []
        assert fake.internal_errors == []
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        use_api_base(DEFAULT_API_BASE)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


def world(fake: FakeDiscord) -> tuple[FakeGuild, FakeChannel, FakeChannel, FakeChannel]:
    guild = fake.add_guild("lab")
    sfw = fake.add_text_channel(guild, "general")
    nsfw = fake.add_text_channel(guild, "art", nsfw=True)
    thread = fake.add_thread(nsfw, "requests")
    return guild, sfw, nsfw, thread


async def test_login_ready_and_guild_cache(fake: FakeDiscord) -> None:
    guild, sfw, nsfw, thread = world(fake)
    async with running(fake) as bot:
        assert bot.user is not None and bot.user.id == fake.bot_user.id
        assert bot.application_id == fake.application_id
        cached = bot.get_guild(guild.id)
        assert cached is not None and cached.me is not None
        sfw_channel = cached.get_channel(sfw.id)
        nsfw_channel = cached.get_channel(nsfw.id)
        assert isinstance(sfw_channel, discord.TextChannel) and not sfw_channel.is_nsfw()
        assert isinstance(nsfw_channel, discord.TextChannel) and nsfw_channel.is_nsfw()
        cached_thread = cached.get_thread(thread.id)
        assert cached_thread is not None and cached_thread.is_nsfw()
        assert sfw_channel.permissions_for(cached.me).attach_files

        # The gateway came from GET /gateway/bot of the fake, over zlib-stream.
        assert any(c.path == "/gateway/bot" for c in fake.requests)
        [conn] = fake.connections
        assert conn.path == "/gateway" and conn.compress == "zlib-stream" and conn.identified
        assert conn.query["v"] == "10" and conn.query["encoding"] == "json"
        identify = conn.received[[p["op"] for p in conn.received].index(2)]["d"]
        assert identify["intents"] == discord.Intents.default().value
        await fake.wait_for(lambda: conn.heartbeats >= 1, what="a heartbeat")

        [sync] = fake.command_syncs
        assert sorted(c["name"] for c in sync.body) == ["Decensor (bar)", "decensor", "erogaki"]
        assert bot.events == ["ready"]


async def test_slash_command_defer_download_followup_edit_and_button(fake: FakeDiscord) -> None:
    _guild, sfw, _nsfw, _thread = world(fake)
    async with running(fake) as bot:
        image = fake.add_attachment(PNG, "in.png")
        handle = await fake.slash_command(
            "decensor bar", {"image": image, "masked": True}, channel=sfw
        )
        callback = await handle.wait_callback()
        assert callback.callback_type == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        assert not callback.ephemeral

        await fake.wait_for(lambda: len(handle.edits) == 1, what="the edit")
        [followup] = handle.followups
        [upload] = followup.files
        assert upload.filename == "decensored.png" and upload.data == PNG[::-1]
        assert followup.content == "bar masked=True second=False"
        assert followup.embeds[0]["title"] == "Decensored"
        assert followup.embeds[0]["description"] == f"{len(PNG)} bytes"
        assert followup.custom_ids == ["erogaki:retry"]
        assert fake.uploads == [upload]

        # The first follow-up after a defer became the deferred message itself.
        original = handle.original
        assert original is not None and followup.message_id == original.id
        assert not original.loading and not original.ephemeral
        assert original.content == "bar done" and len(original.history) == 2
        assert original.attachments[0].data == PNG[::-1]
        assert original.custom_ids == ["erogaki:retry"]

        clicker = fake.add_user("clicker")
        click = await fake.click_button(original, "erogaki:retry", user=clicker)
        response = await click.wait_callback()
        assert response.callback_type == CHANNEL_MESSAGE_WITH_SOURCE
        assert response.flags == EPHEMERAL and response.content == "retrying"
        await fake.wait_for(lambda: len(fake.channel_messages) == 1, what="a channel message")
        [sent] = fake.channel_messages
        assert sent.channel_id == sfw.id and sent.content == "retry requested by clicker"
        assert sent.message_id is not None
        await fake.wait_for(lambda: len(fake.edits) == 2, what="the channel message's edit")
        assert fake.edits[-1].path == f"/channels/{sfw.id}/messages/{sent.message_id}"
        stored = fake.messages[sent.message_id]
        assert stored.author_id == fake.bot_user.id
        assert stored.content == "retry requested by clicker (queued)"
        assert bot.errors == []


async def test_ephemeral_response_in_thread_and_dm(fake: FakeDiscord) -> None:
    _guild, _sfw, _nsfw, thread = world(fake)
    async with running(fake):
        in_thread = await fake.slash_command(
            "erogaki status", channel=thread, attachment_size_limit=25 * 1024 * 1024
        )
        callback = await in_thread.wait_callback()
        assert callback.callback_type == CHANNEL_MESSAGE_WITH_SOURCE and callback.ephemeral
        assert callback.content == f"ok nsfw=True dm=False limit={25 * 1024 * 1024}"
        assert in_thread.original is not None and in_thread.original.ephemeral

        in_dm = await fake.slash_command("erogaki status", channel=fake.dm_channel())
        callback = await in_dm.wait_callback()
        assert callback.content == f"ok nsfw=None dm=True limit={fake.upload_limit}"
        assert "user" in in_dm.payload and "member" not in in_dm.payload


async def test_message_context_menu_and_upload_limit(fake: FakeDiscord) -> None:
    _guild, _sfw, nsfw, _thread = world(fake)
    async with running(fake) as bot:
        image = fake.add_attachment(PNG, "posted.png")
        posted = fake.post_user_message(nsfw, attachments=[image])
        handle = await fake.message_command("Decensor (bar)", posted)
        await fake.wait_for(lambda: len(handle.edits) == 1, what="the edited response")
        original = handle.original
        assert original is not None and original.ephemeral and not original.loading
        assert original.content == "from tester"
        assert [a.data for a in original.attachments] == [PNG]

        big = await fake.slash_command(
            "decensor mosaic",
            {"image": image},
            channel=nsfw,
            attachment_size_limit=len(PNG) * 3 // 2,
        )
        await big.wait_followups(1)
        [rejected] = [c for c in fake.rejected if c.interaction_id == big.id]
        assert rejected.status == 413 and rejected.response["code"] == 40005
        assert bot.upload_errors == [(413, 40005)]
        assert big.original is not None and big.original.content == "too large (40005)"
        assert big.original.ephemeral  # as the defer said


async def test_errors_discord_would_return(fake: FakeDiscord) -> None:
    _guild, sfw, _nsfw, _thread = world(fake)
    async with running(fake) as bot:
        with pytest.raises(ValueError, match="not registered"):
            await fake.slash_command("erogaki status", {"bogus": 1}, channel=sfw)
        channel = bot.get_channel(sfw.id)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as empty:
            await channel.send("")
        assert empty.value.code == 50006
        with pytest.raises(discord.HTTPException) as long:
            await channel.send("x" * 2001)
        assert long.value.code == 50035
        assert [c.status for c in fake.rejected] == [400, 400]


async def test_rate_limits_and_server_errors_on_demand(fake: FakeDiscord) -> None:
    _guild, sfw, _nsfw, _thread = world(fake)
    async with running(fake) as bot:
        channel = bot.get_channel(sfw.id)
        assert isinstance(channel, discord.TextChannel)
        # discord.py waits out a 429 as told and sends again: one message, two requests.
        limited = fake.fail("channel_message", 429, retry_after=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await channel.send("after a rate limit")
        assert loop.time() - started >= 0.2
        assert limited.hits == 1
        sent = [c for c in fake.channel_messages if c.content == "after a rate limit"]
        assert [c.status for c in sent] == [429, 200]
        assert sent[0].response["retry_after"] == 0.2 and not sent[0].response["global"]

        # A global one stops every route until it is over.
        fake.fail("channel_message", 429, retry_after=0.1, is_global=True)
        await channel.send("after a global rate limit")
        assert [c.status for c in fake.channel_messages][-2:] == [429, 200]

        # 503 is not retried by discord.py: the caller sees it.
        down = fake.fail("channel_message", 503)
        with pytest.raises(discord.DiscordServerError):
            await channel.send("during an outage")
        assert down.hits == 1
        assert not any(c.content == "during an outage" and c.ok for c in fake.channel_messages)

        # Only requests uploading files, when asked.
        uploads = fake.fail("channel_message", 503, with_files=True)
        await channel.send("no file")
        assert uploads.hits == 0


async def test_gateway_disconnect_is_survived_and_events_replayed(fake: FakeDiscord) -> None:
    _guild, sfw, _nsfw, _thread = world(fake)
    async with running(fake) as bot:
        first = fake.connections[0]
        await fake.disconnect()
        # Dispatched while the bot is away: Discord replays it on RESUME.
        handle = await fake.slash_command("erogaki status", channel=sfw)
        callback = await handle.wait_callback()
        assert callback.ok and callback.content is not None
        assert first.closed
        second = fake.connections[-1]
        assert second.path == "/gateway-resume" and second.resumed and not second.identified
        await fake.wait_for(lambda: "resumed" in bot.events, what="on_resumed")
        assert bot.events == ["ready", "resumed"]
        assert sum(p.get("t") == "INTERACTION_CREATE" for p in first.sent + second.sent) == 1

        # Opcode 7 RECONNECT: the client closes and resumes on its own.
        await fake.request_reconnect()
        await fake.wait_for(
            lambda: len(fake.connections) == 3 and fake.connections[2].resumed,
            what="a RESUME after RECONNECT",
        )
        again = await fake.slash_command("erogaki status", channel=sfw)
        assert (await again.wait_callback()).ok


async def test_invalid_session_reidentifies_at_gateway_from_api(fake: FakeDiscord) -> None:
    _guild, sfw, _nsfw, _thread = world(fake)
    async with running(fake) as bot:
        await fake.invalidate_session()
        await fake.wait_for(
            lambda: len(fake.connections) == 2 and fake.connections[1].identified,
            what="a second IDENTIFY",
        )
        # discord.py falls back to DiscordWebSocket.DEFAULT_GATEWAY here: the mixin
        # made that the fake's, or this connection would have gone to discord.gg.
        assert fake.connections[1].path == "/gateway"
        await fake.wait_for(lambda: bot.events.count("ready") == 2, what="a second READY")
        handle = await fake.slash_command("erogaki status", channel=sfw)
        assert (await handle.wait_callback()).ok


async def test_gateway_protocol_details(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        url = fake.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
        async with session.ws_connect(url) as ws:
            frame = await ws.receive()
            assert frame.type is aiohttp.WSMsgType.BINARY
            assert frame.data.endswith(b"\x00\x00\xff\xff")  # one sync flush per message
            hello = json.loads(zlib.decompressobj().decompress(frame.data))
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0}})
            closing = await ws.receive()
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4004
        async with session.ws_connect(fake.gateway_url + "?v=9&encoding=json") as ws:
            closing = await ws.receive()
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4012
        async with session.get(fake.api_base + "/gateway/bot") as response:
            assert response.status == 401
            assert response.headers["Content-Type"] == "application/json"


def test_use_api_base_sets_rest_base_and_restores_default() -> None:
    shipped = DiscordWebSocket.DEFAULT_GATEWAY
    try:
        use_api_base("http://127.0.0.1:1234/api/v10/")
        assert Route.BASE == "http://127.0.0.1:1234/api/v10"
        assert Route("GET", "/users/@me").url == "http://127.0.0.1:1234/api/v10/users/@me"
        DiscordWebSocket.DEFAULT_GATEWAY = shipped.with_host("elsewhere.invalid")
        use_api_base(DEFAULT_API_BASE)
        assert Route.BASE == DEFAULT_API_BASE
        assert shipped == DiscordWebSocket.DEFAULT_GATEWAY
    finally:
        use_api_base(DEFAULT_API_BASE)


@pytest.mark.parametrize(
    "bad", ["ftp://x/api/v10", "127.0.0.1:80/api/v10", "http://x/api/v9", "http://x/api/v10?a=1"]
)
def test_use_api_base_rejects_unusable_bases(bad: str) -> None:
    with pytest.raises(ValueError):
        use_api_base(bad)
    assert Route.BASE == DEFAULT_API_BASE


def test_api_base_from_env() -> None:
    assert api_base_from_env({}) == DEFAULT_API_BASE
    assert api_base_from_env({"DISCORD_API_BASE": "  "}) == DEFAULT_API_BASE
    assert api_base_from_env({"DISCORD_API_BASE": "http://h/api/v10"}) == "http://h/api/v10"
