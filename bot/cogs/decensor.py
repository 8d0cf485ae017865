"""/decensor bar, /decensor mosaic, /decensor auto and the message context menus."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import texts
from bot.fit import fit, human_size
from bot.jobs import LimitRefused, Request
from bot.limits import Refusal
from erogaki_common.errors import (
    DeadlineExceeded,
    ErogakiError,
    ErrorName,
    JobCancelled,
    JobFailed,
    JobLost,
    RedisUnavailable,
)
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
RESERVE_TIMEOUT = 1.5
REDIS_TROUBLE: tuple[type[BaseException], ...] = (
    TimeoutError,
    RedisUnavailable,
    *CONNECTION_ERRORS,
)
PROGRESS_TROUBLE: tuple[type[BaseException], ...] = (discord.HTTPException, *CONNECTION_ERRORS)


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
        image="the image to decensor",
        image2="another image",
        image3="another image",
        image4="another image",
        masked="the bars are already painted pure green (0,255,0)",
    )
    async def bar(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        masked: bool = False,
    ) -> None:
        mode = Mode.BAR_MASKED if masked else Mode.BAR
        await self.run(interaction, mode, [a for a in (image, image2, image3, image4) if a])

    @decensor.command(name="mosaic", description="Remove mosaic (pixelation)")
    @app_commands.describe(
        image="the image to decensor", image2="another image", image3="another image",
        image4="another image",
    )  # fmt: skip
    async def mosaic(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
    ) -> None:
        await self.run(interaction, Mode.MOSAIC, [a for a in (image, image2, image3, image4) if a])

    @decensor.command(name="auto", description="Find bars, mosaic or both, and remove them")
    @app_commands.describe(
        image="the image to decensor", image2="another image", image3="another image",
        image4="another image",
    )  # fmt: skip
    async def auto(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
    ) -> None:
        await self.run(interaction, Mode.AUTO, [a for a in (image, image2, image3, image4) if a])

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
        self, interaction: discord.Interaction, mode: Mode, attachments: list[discord.Attachment]
    ) -> None:
        refusal = self.refusal(interaction, attachments)
        if refusal is not None:
            await interaction.response.send_message(embed=embed_for(refusal), ephemeral=True)
            return
        attachments = attachments[:4]
        request = Request(
            key=str(interaction.id),
            user_id=interaction.user.id,
            channel_id=interaction.channel_id or 0,
            mode=mode,
            application_id=interaction.application_id,
            token=interaction.token,
            created=time.time(),
        )
        try:
            async with asyncio.timeout(RESERVE_TIMEOUT):
                missing = await self.bot.jobs.missing_workers(mode)
                if not missing:
                    await self.bot.jobs.reserve(request, len(attachments))
        except LimitRefused as refused:
            hit = refused.hit
            text = (texts.user_limit if hit.which is Refusal.USER else texts.queue_full)(
                hit.current, hit.limit
            )
            await interaction.response.send_message(embed=embed_for(text), ephemeral=True)
            return
        except REDIS_TROUBLE:
            await interaction.response.send_message(
                embed=embed_for(texts.REDIS_DOWN), ephemeral=True
            )
            return
        if missing:
            await interaction.response.send_message(
                embed=embed_for(texts.WORKERS_DOWN), ephemeral=True
            )
            return
        await interaction.response.defer(thinking=True)
        try:
            await self._work(interaction, request, attachments)
        finally:
            await self.bot.jobs.finish(request)

    async def _work(
        self,
        interaction: discord.Interaction,
        request: Request,
        attachments: list[discord.Attachment],
    ) -> None:
        try:
            images = [await a.read() for a in attachments]
        except discord.HTTPException:
            await interaction.followup.send(
                embed=embed_for(texts.Text("Couldn't download the image", "Please try again."))
            )
            return
        try:
            await self.bot.jobs.submit(request, images)
        except REDIS_TROUBLE:
            await interaction.followup.send(embed=embed_for(texts.REDIS_DOWN))
            return
        view = CancelView(request.user_id, lambda: self.bot.jobs.cancel(request))
        progress = await interaction.followup.send(
            progress_line(None, len(images)), view=view, wait=True
        )
        results = await self._wait_showing_progress(request, progress)
        view.stop()
        await self._deliver(request, results, progress, interaction.filesize_limit)

    async def _wait_showing_progress(
        self, request: Request, message: discord.WebhookMessage
    ) -> list[bytes | ErogakiError]:
        waiting = asyncio.create_task(self.bot.jobs.results(request))
        shown = ""
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=PROGRESS_EVERY)
            if done:
                return waiting.result()
            try:
                line = progress_line(await self.bot.jobs.progress(request), len(request.job_ids))
                if line != shown:
                    await message.edit(content=line)
                    shown = line
            except PROGRESS_TROUBLE as exc:
                log.debug("progress update skipped: %s", exc)

    async def _deliver(
        self,
        request: Request,
        results: list[bytes | ErogakiError],
        message: discord.WebhookMessage | None,
        upload_limit: int,
    ) -> None:
        """Send the images and errors: as an edit of the progress message
        while the interaction lasts, else as a channel message."""
        images = [r for r in results if isinstance(r, bytes)]
        errors = [r for r in results if not isinstance(r, bytes)]
        embeds = [error_embed(e) for e in errors][:10]
        budget = upload_limit // max(1, len(images))
        for attempt in range(3):
            files, notes = self._files(images, budget)
            content = self._content(request, images, notes)
            try:
                await self._send(request, message, content, files, embeds)
                return
            except discord.HTTPException as exc:
                if exc.status != 413 or attempt == 2:
                    raise
                # The limit we were told was too generous: halve it, never fail.
                budget //= 2

    def _files(self, images: list[bytes], budget: int) -> tuple[list[discord.File], list[str]]:
        files, notes = [], []
        for n, png in enumerate(images, start=1):
            fitted = fit(png, budget)
            if fitted.note:
                notes.append(f"image {n} {fitted.note}" if len(images) > 1 else fitted.note)
            files.append(
                discord.File(
                    io.BytesIO(fitted.data),
                    filename=f"decensored-{n}.{fitted.extension}",
                    spoiler=self.bot.settings.spoiler,
                )
            )
        return files, notes

    def _content(self, request: Request, images: list[bytes], notes: list[str]) -> str:
        if not images:
            return f"<@{request.user_id}>"
        lines = [f"<@{request.user_id}> here {'it is' if len(images) == 1 else 'they are'}."]
        lines += [f"Note: {n}." for n in notes]
        return "\n".join(lines)

    async def _send(
        self,
        request: Request,
        message: discord.WebhookMessage | None,
        content: str,
        files: list[discord.File],
        embeds: list[discord.Embed],
    ) -> None:
        fresh = time.time() - request.created < TOKEN_LIFETIME
        mentions = discord.AllowedMentions(users=True, everyone=False, roles=False)
        if fresh and message is not None:
            await message.edit(
                content=content, attachments=files, embeds=embeds, view=None,
                allowed_mentions=mentions,
            )  # fmt: skip
        elif fresh:
            webhook = discord.Webhook.partial(
                request.application_id, request.token, client=self.bot
            )
            await webhook.send(
                content=content, files=files, embeds=embeds, allowed_mentions=mentions
            )
        else:
            channel = self.bot.get_channel(request.channel_id) or await self.bot.fetch_channel(
                request.channel_id
            )
            if not isinstance(channel, discord.abc.Messageable):
                log.error("cannot deliver request %s: channel is gone", request.key)
                return
            await channel.send(
                content=content, files=files, embeds=embeds, allowed_mentions=mentions
            )

    # --- restarts -----------------------------------------------------------------

    def adopt(self, request: Request) -> None:
        """Deliver a request that a stopped bot process accepted."""
        task = asyncio.create_task(self._deliver_adopted(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_adopted(self, request: Request) -> None:
        try:
            results = await self.bot.jobs.results(request)
            await self._deliver(request, results, None, DEFAULT_UPLOAD_LIMIT)
        except Exception:
            log.exception("could not deliver adopted request %s", request.key)
        finally:
            await self.bot.jobs.finish(request)


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
