"""The bot: configuration loaded once, cogs, the one error handler, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot import logs
from bot.delete import DeleteButton
from bot.discord_api import GatewayFromApiMixin, use_api_base
from bot.jobs import ALIVE_INTERVAL, JobService
from bot.limits import Limits
from bot.server_settings import ServerSettingsStore
from erogaki_common.errors import ConfigError
from erogaki_common.redis_io import CONNECTION_ERRORS, REDIS_ERRORS, Outage
from erogaki_common.settings import Settings
from erogaki_common.submit import Submitter

log = logging.getLogger(__name__)

# On SIGINT / SIGTERM, results already in hand get this long to be delivered;
# those still going then are given back (at most a few seconds more) for the
# next bot process (docker stop waits 10 s before it kills).
STOP_GRACE = 5.0
# The loop watch asks to run this often, and warns when it runs this late.
WATCH_EVERY = 0.05
STALL_WARNING = 0.1


class ErogakiBot(GatewayFromApiMixin, commands.Bot):
    def __init__(
        self, settings: Settings, *, sync_only: bool = False, guild_ready_timeout: float = 2.0
    ) -> None:
        # Application commands only: the guilds intent gives channels (the NSFW
        # check) and nothing else. No message ever arrives, so the prefix is never
        # parsed; it stays when_mentioned, the one prefix discord.py doesn't warn
        # about without the message content intent.
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            help_command=None,
            guild_ready_timeout=guild_ready_timeout,
        )
        logs.install()
        self.settings = settings
        self.sync_only = sync_only
        self.submitter = Submitter(settings.redis_url)
        self.jobs = JobService(
            self.submitter,
            self.submitter.redis,
            Limits(self.submitter.redis, per_user=settings.user_jobs, cap=settings.queue_cap),
            instance=settings.instance,
            timeout=settings.job_timeout,
        )
        # Each server's settings (/erogaki settings), shared by every bot process.
        self.server_settings = ServerSettingsStore(self.submitter.redis)
        self._liveness: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        # The event loop's longest stall so far, in seconds (see _watch_loop).
        self.longest_stall = 0.0
        self._closed = False

    async def setup_hook(self) -> None:
        from bot.cogs.decensor import DecensorCog
        from bot.cogs.settings import SettingsCog
        from bot.cogs.status import StatusCog

        await self.add_cog(DecensorCog(self))
        await self.add_cog(StatusCog(self))
        await self.add_cog(SettingsCog(self))  # joins StatusCog's /erogaki group
        # Delete buttons are routed by their custom id, also those a previous process sent.
        self.add_dynamic_items(DeleteButton)
        self.tree.error(self.on_app_command_error)
        if self.sync_only:
            return
        await self.submitter.start()
        await self.server_settings.start()
        self._liveness = asyncio.create_task(self._keep_alive(), name="erogaki-bot-alive")
        self._watch = asyncio.create_task(self._watch_loop(), name="erogaki-bot-loop-watch")

    def request_stop(self) -> None:
        """SIGINT / SIGTERM: stop as :meth:`stop` says (a second signal changes nothing)."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self.stop(), name="erogaki-bot-stop")

    async def stop(self) -> None:
        """Stop without losing anything: no new commands; waiting users are told
        the bot is restarting; records and slots stay in Redis, and without our
        heartbeat the next bot process adopts them at once."""
        await self._stop_liveness()
        decensor = self.get_cog("DecensorCog")
        if decensor is not None:
            await decensor.hand_over(STOP_GRACE)  # type: ignore[attr-defined]
        with contextlib.suppress(*CONNECTION_ERRORS):
            await asyncio.wait_for(self.jobs.retire(), 2.0)
        await self.close()

    async def _stop_liveness(self) -> None:
        await _cancel(self._liveness)
        self._liveness = None

    async def _watch_loop(self) -> None:
        """Say when the event loop stalls: then commands go unacknowledged for
        Discord's 3 s and the gateway heartbeat is late. It never should."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                asked, on_loop, in_process = loop.time(), time.thread_time(), time.process_time()
                await asyncio.sleep(WATCH_EVERY)
                late = loop.time() - asked - WATCH_EVERY
                self.longest_stall = max(self.longest_stall, late)
                if late > STALL_WARNING:
                    # CPU time tells why: work on the loop (its thread's time is as
                    # long as the stall), other threads of ours (the process' time),
                    # or neither: the machine had no core for us.
                    log.warning(
                        "the event loop stalled for %.0f ms (CPU: %.0f ms on the loop, "
                        "%.0f ms in the whole process)",
                        late * 1000,
                        (time.thread_time() - on_loop) * 1000,
                        (time.process_time() - in_process) * 1000,
                    )
        finally:
            log.info("longest event loop stall: %.0f ms", self.longest_stall * 1000)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._stop_liveness()
        await _cancel(self._watch)
        await super().close()
        await self.server_settings.close()
        await self.submitter.close()

    async def _keep_alive(self) -> None:
        """Heartbeat, and adopt the requests of bot processes that died."""
        decensor = self.get_cog("DecensorCog")
        # Any Redis trouble (unreachable, full, read-only after a failover) is one
        # episode to ride out: a loop that ended here would leave the bot alive but
        # with its requests adopted by others.
        outage = Outage("the bot's heartbeat", log)
        failing = False  # an unexpected error is logged once per episode
        while True:
            try:
                await self.jobs.beat()
                for request in await self.jobs.orphans():
                    log.info("delivering request %s of a stopped bot", request.key)
                    if decensor is None:
                        continue
                    # One request that can't be taken up must not stop the others,
                    # nor the heartbeat: a loop that ended would leave this bot's
                    # own requests to be adopted by others.
                    try:
                        decensor.adopt(request)  # type: ignore[attr-defined]
                    except Exception:
                        log.exception("could not take up request %s", request.key)
                outage.ok()
            except REDIS_ERRORS as exc:
                outage.failed(exc)
            except Exception:
                if not failing:
                    log.exception("the bot's heartbeat failed; it keeps trying")
                failing = True
            else:
                failing = False
            await asyncio.sleep(ALIVE_INTERVAL)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The one error handler: log it, tell the user something readable."""
        if isinstance(error, app_commands.CheckFailure):
            text = str(error) or "You can't use this command here."
        else:
            name = interaction.command.qualified_name if interaction.command else "?"
            log.error("command %r failed", name, exc_info=error)
            text = "Something went wrong on our side. Please try again later."
        embed = discord.Embed(title="Sorry", description=text, colour=discord.Colour.red())
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(embed=embed, ephemeral=True)
            else:
                await interaction.response.send_message(embed=embed, ephemeral=True)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_bot(settings: Settings, *, sync: bool = False, guild_id: int | None = None) -> None:
    """Run until stopped; with ``sync``, register the commands and exit."""
    if not settings.discord_token:
        raise SystemExit("erogaki: DISCORD_TOKEN is not set")
    try:
        use_api_base(settings.discord_api_base)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    bot = ErogakiBot(settings, sync_only=sync)
    if not sync:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, bot.request_stop)
    try:
        async with bot:
            if sync:
                await bot.login(settings.discord_token)  # runs setup_hook: the cogs' commands
                await sync_commands(bot, guild_id)
                return
            await bot.start(settings.discord_token)
    except discord.LoginFailure:
        raise ConfigError(
            "Discord refused DISCORD_TOKEN; copy the bot's token again from the developer portal"
        ) from None


async def sync_commands(bot: commands.Bot, guild_id: int | None) -> list[str]:
    """Register the command tree with Discord, globally or for one guild
    (guild commands appear at once; global ones can take a while)."""
    if guild_id is None:
        synced = await bot.tree.sync()
    else:
        guild = discord.Object(id=guild_id)
        bot.tree.copy_global_to(guild=guild)
        synced = await bot.tree.sync(guild=guild)
    names = [c.name for c in synced]
    where = "globally" if guild_id is None else f"to guild {guild_id}"
    print(f"synced {len(names)} command(s) {where}: {', '.join(names)}")
    return names
