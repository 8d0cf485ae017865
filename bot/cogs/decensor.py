"""/decensor bar, /decensor mosaic, /decensor auto and the message context menus."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import io
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import audit, server_rules, texts
from bot.delete import delete_view
from bot.fit import Fitted, fit_off_loop, human_size
from bot.jobs import LimitRefused, Ownership, Request
from bot.limits import Refusal
from bot.server_rules import Refused
from bot.server_settings import ServerSettings
from erogaki_common.errors import (
    DeadlineExceeded,
    ErogakiError,
    ErrorName,
    JobCancelled,
    JobFailed,
    JobLost,
    RedisUnavailable,
)
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.redis_io import CONNECTION_ERRORS
from erogaki_common.status import Progress

if TYPE_CHECKING:
    from bot.app import ErogakiBot

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
# Discord allows editing often, but a progress line needn't change faster.
PROGRESS_EVERY = 2.0
# Interaction tokens last 15 minutes; past this, results go to the channel.
TOKEN_LIFETIME = 15 * 60 - 30
# Without an interaction to tell us, Discord's default upload limit.
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
# Checking for workers and taking slots must answer within this, so that the
# acknowledgement still reaches Discord within its 3 s.
RESERVE_TIMEOUT = 2.0
SPOILER_HELP = "send the result as a spoiler (the server decides the default, or always)"
REDIS_TROUBLE: tuple[type[BaseException], ...] = (
    TimeoutError,
    RedisUnavailable,
    *CONNECTION_ERRORS,
)
PROGRESS_TROUBLE: tuple[type[BaseException], ...] = (discord.HTTPException, *CONNECTION_ERRORS)
# The help of the image and spoiler options every /decensor command shares.
IMAGES_HELP = {
    "image": "the image to decensor", "image2": "another image", "image3": "another image",
    "image4": "another image", "spoiler": SPOILER_HELP,
}  # fmt: skip


def embed_for(text: texts.Text, *, colour: discord.Colour | None = None) -> discord.Embed:
    return discord.Embed(
        title=text.title, description=text.body, colour=colour or discord.Colour.red()
    )


def error_embed(error: ErogakiError) -> discord.Embed:
    """One embed per failed image; worker errors carry their details."""
    if isinstance(error, JobFailed):
        info = error.info
        embed = embed_for(texts.ERRORS[info.name])
        embed.add_field(name="Details", value=info.description[:1000], inline=False)
        embed.set_footer(
            text=f"{info.raw_name or info.name.value} · {info.component} · {info.instance}"
        )
        return embed
    if isinstance(error, JobCancelled):
        return embed_for(texts.CANCELLED, colour=discord.Colour.light_grey())
    if isinstance(error, DeadlineExceeded):
        return embed_for(texts.NO_WORKER if "No worker took" in str(error) else texts.DEADLINE)
    if isinstance(error, JobLost):
        return embed_for(texts.LOST)
    if isinstance(error, RedisUnavailable):
        return embed_for(texts.REDIS_DOWN)
    return embed_for(texts.ERRORS[ErrorName.UNKNOWN])


def progress_line(progress: Progress | None, count: int) -> str:
    what = "your image" if count == 1 else f"your {count} images"
    if progress is None:
        return f"⏳ Working on {what}…"
    if progress.position is not None:
        verb = "is" if count == 1 else "are"
        return f"⏳ {progress.stage.capitalize()}: {what} {verb} #{progress.position} in line"
    return f"⚙️ {progress.stage.capitalize()}…"


class CancelView(discord.ui.View):
    """A Cancel button only the requester can use."""

    def __init__(self, owner_id: int, cancel: Callable[[], Awaitable[None]]) -> None:
        super().__init__(timeout=None)
        self.owner_id = owner_id
        self._cancel = cancel

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "Only the person who asked can cancel this.", ephemeral=True
        )
        return False

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.danger)
    async def cancel_button(
        self, interaction: discord.Interaction, button: discord.ui.Button[CancelView]
    ) -> None:
        await interaction.response.defer()
        await self._cancel()
        self.stop()


class DecensorCog(commands.Cog):
    decensor = app_commands.Group(
        name="decensor", description="Remove censor bars or mosaic from images", nsfw=True
    )

    def __init__(self, bot: ErogakiBot) -> None:
        self.bot = bot
        self.menus = [
            app_commands.ContextMenu(name="Decensor", callback=self.menu_auto, nsfw=True),
            app_commands.ContextMenu(name="Decensor bars", callback=self.menu_bars, nsfw=True),
            app_commands.ContextMenu(name="Decensor mosaic", callback=self.menu_mosaic, nsfw=True),
        ]
        self._tasks: set[asyncio.Task[None]] = set()
        self._flights: dict[str, Flight] = {}
        # Set when the process stops (SIGINT, SIGTERM): see hand_over.
        self.stopping = asyncio.Event()

    async def cog_load(self) -> None:
        for menu in self.menus:
            self.bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)
        for task in self._tasks:
            task.cancel()

    # --- commands: thin, all the same flow -----------------------------------

    @decensor.command(name="bar", description="Remove censor bars (black, white, any flat colour)")
    @app_commands.describe(
        **IMAGES_HELP, masked="the bars are already painted pure green (0,255,0)"
    )
    async def bar(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        masked: bool = False,
        spoiler: bool | None = None,
    ) -> None:
        mode = Mode.BAR_MASKED if masked else Mode.BAR
        images = [a for a in (image, image2, image3, image4) if a]
        await self.run(interaction, mode, images, spoiler)

    @decensor.command(name="mosaic", description="Remove mosaic (pixelation)")
    @app_commands.describe(**IMAGES_HELP)
    async def mosaic(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        spoiler: bool | None = None,
    ) -> None:
        images = [a for a in (image, image2, image3, image4) if a]
        await self.run(interaction, Mode.MOSAIC, images, spoiler)

    @decensor.command(name="auto", description="Find bars, mosaic or both, and remove them")
    @app_commands.describe(**IMAGES_HELP)
    async def auto(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        spoiler: bool | None = None,
    ) -> None:
        images = [a for a in (image, image2, image3, image4) if a]
        await self.run(interaction, Mode.AUTO, images, spoiler)

    async def menu_auto(self, interaction: discord.Interaction, message: discord.Message) -> None:
        await self.run(interaction, Mode.AUTO, _images_of(message))

    async def menu_bars(self, interaction: discord.Interaction, message: discord.Message) -> None:
        await self.run(interaction, Mode.BAR, _images_of(message))

    async def menu_mosaic(self, interaction: discord.Interaction, message: discord.Message) -> None:
        await self.run(interaction, Mode.MOSAIC, _images_of(message))

    # --- the flow ---------------------------------------------------------------

    def refusal(
        self, interaction: discord.Interaction, attachments: list[discord.Attachment]
    ) -> texts.Text | None:
        """Why this request can't go ahead, decided before deferring."""
        settings = self.bot.settings
        if self.stopping.is_set():
            return texts.RESTARTING
        if interaction.guild is None:
            if not settings.allow_dms:
                return texts.NO_DMS
        elif not _is_nsfw(interaction.channel):
            return texts.NOT_NSFW
        if not attachments:
            return texts.NO_IMAGES
        for attachment in attachments[:4]:
            if (attachment.content_type or "").split(";")[0].strip() not in IMAGE_TYPES:
                return texts.not_an_image(attachment.filename)
            if attachment.size > settings.max_image_bytes:
                return texts.too_large(
                    attachment.filename,
                    human_size(attachment.size),
                    human_size(settings.max_image_bytes),
                )
        return None

    async def run(
        self,
        interaction: discord.Interaction,
        mode: Mode,
        attachments: list[discord.Attachment],
        spoiler: bool | None = None,
    ) -> None:
        attachments = attachments[:4]
        request = Request(
            key=str(interaction.id),
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            mode=mode,
            application_id=interaction.application_id,
            token=interaction.token,
            created=time.time(),
            guild_id=interaction.guild_id or 0,
        )
        refusal = self.refusal(interaction, attachments)
        if refusal is not None:
            reason = _REASONS.get(refusal, "input")
            self._audit(request, audit.Outcome.REFUSED, reason, count=len(attachments))
            await interaction.response.send_message(embed=embed_for(refusal), ephemeral=True)
            return
        started = time.monotonic()
        server, refused = await self._server_check(interaction, mode)
        if refused is not None:
            self._audit(request, audit.Outcome.REFUSED, refused.setting, count=len(attachments))
            await interaction.response.send_message(embed=embed_for(refused.text), ephemeral=True)
            return
        request.spoiler = server.use_spoiler(self.bot.settings.spoiler, spoiler)
        async with self._flight(request) as flight:
            # One budget for both, so the acknowledgement still makes Discord's 3 s.
            budget = max(0.1, RESERVE_TIMEOUT - (time.monotonic() - started))
            refused = await self._reserve(request, len(attachments), server.user_requests, budget)
            if refused is not None:
                flight.reserved = False
                self._audit(request, audit.Outcome.REFUSED, refused.setting, count=len(attachments))
                embed = embed_for(refused.text)
                await interaction.response.send_message(embed=embed, ephemeral=True)
                return
            # The slots are ours from here: every way out releases them or hands
            # them, with the record, to the next bot.
            await interaction.response.defer(thinking=True)
            await self._work(interaction, flight, attachments)

    async def _server_check(
        self, interaction: discord.Interaction, mode: Mode
    ) -> tuple[ServerSettings, Refused | None]:
        """The server's settings, and the one that refuses this request (if any)."""
        if interaction.guild_id is None:
            return ServerSettings(), None  # DMs (when the host allows them): the defaults
        try:
            server = await asyncio.wait_for(
                self.bot.server_settings.get(interaction.guild_id), RESERVE_TIMEOUT
            )
        except REDIS_TROUBLE:
            return ServerSettings(), Refused("redis", texts.REDIS_DOWN)
        member = interaction.user
        # The ids the interaction carries: Member.roles keeps only roles in the
        # bot's cache, which is empty for a guild it has not (yet) been sent.
        roles = set(_role_ids(member)) if isinstance(member, discord.Member) else set()
        refused = server_rules.check(
            server,
            mode=mode,
            channel_id=interaction.channel_id or 0,
            parent_id=getattr(interaction.channel, "parent_id", None),
            role_ids=roles,
        )
        return server, refused

    def _audit(
        self,
        request: Request,
        outcome: audit.Outcome,
        reason: str | None = None,
        *,
        count: int | None = None,
        wait: float | None = None,
    ) -> None:
        """The request's audit line, and its count for /erogaki status."""
        entry = audit.AuditRecord(
            request=int(request.key) if request.key.isdigit() else 0,
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            user_id=request.user_id,
            mode=request.mode,
            images=len(request.job_ids) if count is None else count,
            outcome=outcome,
            reason=reason,
            wait=wait,
            total=None if outcome is audit.Outcome.REFUSED else time.time() - request.created,
        )
        self._spawn(audit.record(self.bot.submitter.redis, entry))

    @contextlib.asynccontextmanager
    async def _flight(self, request: Request) -> AsyncIterator[Flight]:
        flight = Flight(request, asyncio.current_task())
        self._flights[request.key] = flight
        try:
            yield flight
        finally:
            del self._flights[request.key]
            if flight.reserved and not flight.kept:
                await self.bot.jobs.finish(request)

    async def _reserve(
        self,
        request: Request,
        count: int,
        server_limit: int | None = None,
        timeout: float = RESERVE_TIMEOUT,
    ) -> Refused | None:
        """Check for workers and take limit slots; a refusal to show, or None.

        The reservation is never cut off half way: when Redis answers too late
        for Discord's 3 s, the user hears that now, and whatever the late answer
        granted is given back when it arrives.
        """

        async def attempt() -> Refused | None:
            missing = await self.bot.jobs.missing_workers(request.mode)
            if missing == [Queue.HENTAI_AUTO] and await self.bot.jobs.predates_auto():
                return Refused("auto-unsupported", texts.AUTO_UNSUPPORTED)
            if missing:
                return Refused("workers-down", texts.WORKERS_DOWN)
            await self.bot.jobs.reserve(request, count, server_limit)
            return None

        task = asyncio.create_task(attempt())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            self._spawn(self._release_when_granted(request, task))
            return Refused("redis", texts.REDIS_DOWN)
        try:
            return task.result()
        except LimitRefused as refused:
            hit = refused.hit
            if hit.which is Refusal.USER:
                return Refused("user-limit", texts.user_limit(hit.current, hit.limit))
            if hit.which is Refusal.SERVER:
                text = server_rules.user_limit_text(
                    hit.current, hit.limit, self.bot.settings.user_jobs
                )
                return Refused("server-user-limit", text)
            return Refused("queue-full", texts.queue_full(hit.current, hit.adding, hit.limit))
        except REDIS_TROUBLE:
            return Refused("redis", texts.REDIS_DOWN)

    async def _release_when_granted(
        self, request: Request, task: asyncio.Task[Refused | None]
    ) -> None:
        with contextlib.suppress(Exception):
            if await task is None:
                await self.bot.jobs.release(request)

    async def _work(
        self,
        interaction: discord.Interaction,
        flight: Flight,
        attachments: list[discord.Attachment],
    ) -> None:
        request = flight.request
        try:
            images = [await a.read() for a in attachments]
        except discord.HTTPException:
            self._audit(request, audit.Outcome.FAILED, "download", count=len(attachments))
            await interaction.followup.send(
                embed=embed_for(texts.Text("Couldn't download the image", "Please try again.")),
                view=delete_view(request.user_id),
            )
            return
        try:
            await self.bot.jobs.submit(request, images)  # empties `images`
        except REDIS_TROUBLE:
            self._audit(request, audit.Outcome.FAILED, "redis")
            await interaction.followup.send(
                embed=embed_for(texts.REDIS_DOWN), view=delete_view(request.user_id)
            )
            return
        count = len(request.job_ids)
        view = CancelView(request.user_id, lambda: self.bot.jobs.cancel(request))
        progress = await interaction.followup.send(progress_line(None, count), view=view, wait=True)
        request.message_id = progress.id
        with contextlib.suppress(*REDIS_TROUBLE):
            await self.bot.jobs.save(request)
        outcome = await self._wait(request, progress)
        view.stop()
        await self._conclude(flight, outcome, progress, interaction.filesize_limit)

    async def _conclude(
        self,
        flight: Flight,
        outcome: list[bytes | ErogakiError] | Outcome,
        message: discord.WebhookMessage | None,
        upload_limit: int,
    ) -> None:
        request = flight.request
        if outcome is Outcome.TAKEN_OVER:
            flight.kept = True  # the new owner delivers and releases
            return
        if outcome is Outcome.HANDED_OVER:
            flight.kept = True
            self._audit(request, audit.Outcome.HANDED_OVER)
            try:
                await self._edit_progress(request, message, texts.HANDED_OVER)
            except discord.HTTPException as exc:
                log.warning("could not tell request %s about the restart: %s", request.key, exc)
            return
        if outcome is Outcome.LOST:
            # Redis lost the record (and so, most likely, the jobs): nobody would
            # ever answer, so say so, and give the slots back.
            log.warning("request %s: its record is gone from Redis", request.key)
            self._audit(request, audit.Outcome.FAILED, "lost")
            try:
                await self._edit_progress(
                    request, message, "", embed=embed_for(texts.LOST),
                    view=delete_view(request.user_id),
                )  # fmt: skip
            except discord.HTTPException as exc:
                log.warning("could not tell request %s it was lost: %s", request.key, exc)
            return
        assert isinstance(outcome, list)
        if not await self.bot.jobs.owns(request):
            # Taken over while we fetched the results: they go back to Redis for
            # the new owner, and we say nothing.
            flight.kept = True
            log.info("request %s was taken over; its results go back to Redis", request.key)
            with contextlib.suppress(*REDIS_TROUBLE):
                await self.bot.jobs.hand_back(request, outcome)
            return
        waited = time.time() - request.created
        # If the process stops before this delivery ends, hand_over gives these back.
        flight.results, flight.message = outcome, message
        try:
            await self._deliver(request, outcome, message, upload_limit)
        except BaseException:
            if flight.kept:  # cut off by a stop: the next bot process delivers
                self._audit(request, audit.Outcome.HANDED_OVER)
            else:
                self._audit(request, audit.Outcome.ERROR, "delivery", wait=waited)
            raise
        self._audit(request, _outcome_of(outcome), wait=waited)

    async def _wait(
        self, request: Request, message: discord.WebhookMessage | None
    ) -> list[bytes | ErogakiError] | Outcome:
        """The results, showing progress meanwhile; or why we stopped waiting:
        this process is stopping, or another bot took the request over."""
        waiting = asyncio.create_task(self.bot.jobs.results(request))
        stopping = asyncio.create_task(self.stopping.wait())
        shown = ""
        try:
            while True:
                await asyncio.wait({waiting, stopping}, timeout=PROGRESS_EVERY)
                if waiting.done():
                    return waiting.result()
                if stopping.done():
                    return Outcome.HANDED_OVER
                whose = await self.bot.jobs.ownership(request)
                if whose is Ownership.OTHER:
                    return Outcome.TAKEN_OVER
                if whose is Ownership.MISSING:
                    return Outcome.LOST
                if message is None:
                    continue
                try:
                    line = progress_line(
                        await self.bot.jobs.progress(request), len(request.job_ids)
                    )
                    if line != shown:
                        await message.edit(content=line)
                        shown = line
                except PROGRESS_TROUBLE as exc:
                    log.debug("progress update skipped: %s", exc)
        finally:
            stopping.cancel()
            if not waiting.done():
                # Stops waiting here only; the jobs run on for whoever delivers them.
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting

    async def _edit_progress(
        self,
        request: Request,
        message: discord.WebhookMessage | None,
        line: str,
        *,
        embed: discord.Embed | None = None,
        view: discord.ui.View | None = None,
    ) -> None:
        embeds = [] if embed is None else [embed]
        if message is not None:
            await message.edit(content=line, embeds=embeds, view=view)
        elif request.message_id and _fresh(request):
            await self._webhook(request).edit_message(
                request.message_id, content=line, embeds=embeds, view=view
            )

    def _webhook(self, request: Request) -> discord.Webhook:
        return discord.Webhook.partial(request.application_id, request.token, client=self.bot)

    async def _deliver(
        self,
        request: Request,
        results: list[bytes | ErogakiError],
        message: discord.WebhookMessage | None,
        upload_limit: int,
    ) -> None:
        """Send the images and errors: as an edit of the progress message while
        the interaction lasts (else a new follow-up), after it as a channel
        message. Results over the upload limit are re-encoded off the event loop."""
        images = [r for r in results if isinstance(r, bytes)]
        errors = [r for r in results if not isinstance(r, bytes)]
        embeds = [error_embed(e) for e in errors][:10]
        budget = upload_limit // max(1, len(images))
        ways = self._ways(request, message)
        for attempt in range(3):
            fitted = await asyncio.gather(*(fit_off_loop(png, budget) for png in images))
            content = self._content(request, fitted)
            while ways:
                try:
                    await ways[0](content, self._files(fitted, request.spoiler), embeds)
                    return
                except discord.HTTPException as exc:
                    if exc.status == 413 and attempt < 2:
                        break  # the limit we were told was too generous: halve it
                    if len(ways) == 1:
                        raise
                    log.warning(
                        "could not deliver request %s this way (%s %s); trying another",
                        request.key, exc.status, exc.text,
                    )  # fmt: skip
                    ways.pop(0)
            budget //= 2

    def _ways(self, request: Request, message: discord.WebhookMessage | None) -> list[Send]:
        """How a result can reach the user, best first."""
        mentions = discord.AllowedMentions(users=True, everyone=False, roles=False)
        ways: list[Send] = []
        if _fresh(request):
            webhook = self._webhook(request)
            if message is not None or request.message_id:
                message_id = message.id if message is not None else request.message_id

                async def edit(content: str, files: list[discord.File], embeds: Embeds) -> None:
                    await webhook.edit_message(
                        message_id, content=content, attachments=files, embeds=embeds,
                        view=delete_view(request.user_id), allowed_mentions=mentions,
                    )  # fmt: skip

                ways.append(edit)

            async def follow_up(content: str, files: list[discord.File], embeds: Embeds) -> None:
                await webhook.send(
                    content=content, files=files, embeds=embeds, allowed_mentions=mentions,
                    view=delete_view(request.user_id),
                )  # fmt: skip

            ways.append(follow_up)

        async def to_channel(content: str, files: list[discord.File], embeds: Embeds) -> None:
            channel = self.bot.get_channel(request.channel_id) or await self.bot.fetch_channel(
                request.channel_id
            )
            if not isinstance(channel, discord.abc.Messageable):
                log.error("cannot deliver request %s: channel is gone", request.key)
                return
            await channel.send(
                content=content, files=files, embeds=embeds, allowed_mentions=mentions,
                view=delete_view(request.user_id),
            )  # fmt: skip

        ways.append(to_channel)
        return ways

    def _files(self, fitted: list[Fitted], spoiler: bool) -> list[discord.File]:
        # New File objects for every attempt: discord.py closes them after a request.
        return [
            discord.File(
                io.BytesIO(f.data),
                filename=f"decensored-{n}.{f.extension}",
                spoiler=spoiler,
            )
            for n, f in enumerate(fitted, start=1)
        ]

    def _content(self, request: Request, fitted: list[Fitted]) -> str:
        if not fitted:
            return f"<@{request.user_id}>"
        lines = [f"<@{request.user_id}> here {'it is' if len(fitted) == 1 else 'they are'}."]
        for n, f in enumerate(fitted, start=1):
            if f.note:
                which = f"image {n} " if len(fitted) > 1 else ""
                lines.append(f"Note: {which}{f.note}.")
        return "\n".join(lines)

    # --- restarts -----------------------------------------------------------------

    def adopt(self, request: Request) -> None:
        """Deliver a request that a stopped bot process accepted."""
        if self.stopping.is_set():
            return
        self._spawn(self._deliver_adopted(request))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_adopted(self, request: Request) -> None:
        try:
            async with self._flight(request) as flight:
                outcome = await self._wait(request, None)
                await self._conclude(flight, outcome, None, DEFAULT_UPLOAD_LIMIT)
        except Exception:
            log.exception("could not deliver adopted request %s", request.key)

    async def hand_over(self, timeout: float) -> None:
        """Stop taking requests; those waiting for workers are left, with their
        records and slots, to the next bot process (their users are told);
        those being delivered finish first, for at most ``timeout`` seconds."""
        self.stopping.set()
        tasks = [f.task for f in self._flights.values() if f.task is not None]
        tasks += list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        # Deliveries still going (Discord rate-limiting the upload, a slow link):
        # the results were taken out of Redis, so they go back there with the
        # record and slots, for the next bot process; a cut delivery's cleanup
        # would otherwise delete the record and lose the request.
        late = [
            f for f in self._flights.values()
            if f.task is not None and not f.task.done() and f.results is not None
        ]  # fmt: skip
        for flight in late:
            flight.kept = True
            assert flight.task is not None
            flight.task.cancel()
        if not late:
            return
        await asyncio.wait([f.task for f in late if f.task is not None], timeout=1.0)
        await asyncio.gather(*(self._give_back(f) for f in late))

    async def _give_back(self, flight: Flight) -> None:
        request = flight.request
        assert flight.results is not None
        log.info("request %s was still being delivered; the next bot delivers it", request.key)
        try:
            await asyncio.wait_for(self.bot.jobs.hand_back(request, flight.results), 2.0)
        except REDIS_TROUBLE as exc:
            log.error("could not give back the results of request %s: %s", request.key, exc)
        try:
            # Bounded: Discord may be rate-limiting this route too, and the
            # process must exit before docker stop kills it.
            await asyncio.wait_for(
                self._edit_progress(request, flight.message, texts.HANDED_OVER), 1.5
            )
        except (TimeoutError, discord.HTTPException) as exc:
            log.warning("could not tell request %s about the restart: %r", request.key, exc)


class Outcome(enum.Enum):
    HANDED_OVER = "handed over"  # this process is stopping
    TAKEN_OVER = "taken over"  # another bot process owns the request now
    LOST = "lost"  # its record vanished from Redis (restarted without persistence, flushed)


@dataclass(eq=False)
class Flight:
    """A request this process is working on."""

    request: Request
    task: asyncio.Task[Any] | None
    reserved: bool = True
    # Its record and slots stay for another bot process (not finished here).
    kept: bool = False
    # Set while its results are being delivered (taken out of Redis by then).
    results: list[bytes | ErogakiError] | None = None
    message: discord.WebhookMessage | None = None


Embeds = list[discord.Embed]
Send = Callable[[str, list[discord.File], Embeds], Awaitable[None]]


def _outcome_of(results: list[bytes | ErogakiError]) -> audit.Outcome:
    failed = [r for r in results if not isinstance(r, bytes)]
    if not failed:
        return audit.Outcome.DONE
    if all(isinstance(r, JobCancelled) for r in failed):
        return audit.Outcome.CANCELLED
    return audit.Outcome.FAILED if len(failed) == len(results) else audit.Outcome.PARTIAL


# The audit reason of each refusal decided before deferring (others: "input").
_REASONS = {
    texts.RESTARTING: "restarting",
    texts.NO_DMS: "dms",
    texts.NOT_NSFW: "not-nsfw",
    texts.NO_IMAGES: "no-images",
}


def _role_ids(member: discord.Member) -> list[int]:
    raw = getattr(member, "_roles", None)  # discord.py keeps the payload's ids here
    if raw is None:
        return [r.id for r in member.roles]
    return [int(r) for r in raw]


def _fresh(request: Request) -> bool:
    return time.time() - request.created < TOKEN_LIFETIME


def _images_of(message: discord.Message) -> list[discord.Attachment]:
    return [
        a for a in message.attachments
        if (a.content_type or "").split(";")[0].strip() in IMAGE_TYPES
    ]  # fmt: skip


def _is_nsfw(channel: object) -> bool:
    # Threads answer with their parent's flag; DMs and unknown channels have none.
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


__all__ = ["DecensorCog"]
