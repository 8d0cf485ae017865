"""/erogaki status: live workers, queue lengths, median wait of recent jobs,
and the requests of the last hour, this server's and everyone's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import audit, texts
from erogaki_common.keys import Queue
from erogaki_common.redis_io import CONNECTION_ERRORS
from erogaki_common.status import fleet_status

if TYPE_CHECKING:
    from bot.app import ErogakiBot

QUEUE_LABELS = {
    Queue.HENTAI_BAR: "bars (hent-AI)",
    Queue.HENTAI_MOSAIC: "mosaic (hent-AI)",
    Queue.DEEPCREAMPY_BAR: "inpainting (DeepCreamPy)",
    Queue.HENTAI_AUTO: "auto (hent-AI)",
}


class StatusCog(commands.Cog):
    erogaki = app_commands.Group(name="erogaki", description="About the decensoring service")

    def __init__(self, bot: ErogakiBot) -> None:
        self.bot = bot

    @erogaki.command(name="status", description="Workers, queues and recent waiting times")
    async def status(self, interaction: discord.Interaction) -> None:
        redis = self.bot.submitter.redis
        try:
            report = await fleet_status(redis)
            median = await self.bot.jobs.median_wait()
            hour = await audit.last_hour(redis, interaction.guild_id)
        except CONNECTION_ERRORS:
            embed = discord.Embed(
                title=texts.REDIS_DOWN.title, description=texts.REDIS_DOWN.body,
                colour=discord.Colour.red(),
            )  # fmt: skip
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        # Workers from before auto mode don't take its queue; bar and mosaic still work.
        old_fleet = not report.workers_for(Queue.HENTAI_AUTO) and bool(
            report.workers_for(Queue.HENTAI_BAR)
        )
        healthy = all(
            report.workers_for(q) for q in Queue if not (old_fleet and q is Queue.HENTAI_AUTO)
        )
        embed = discord.Embed(
            title="erogaki status",
            colour=discord.Colour.green() if healthy else discord.Colour.orange(),
        )
        embed.add_field(
            name="Queues",
            value="\n".join(
                f"{QUEUE_LABELS[q]}: {report.queue_lengths[q.value]} waiting, "
                f"{report.workers_for(q)} worker(s)"
                + (
                    " (the workers predate auto mode)"
                    if old_fleet and q is Queue.HENTAI_AUTO
                    else ""
                )
                for q in Queue
            ),
            inline=False,
        )
        embed.add_field(name="Live workers", value=str(len(report.workers)))
        embed.add_field(
            name="Median wait (recent jobs)",
            value="no recent jobs" if median is None else f"{median:.1f} s",
        )
        # This server's own figures next to everyone's.
        lines = [f"All servers: {hour.all_requests} request(s)"]
        if interaction.guild_id is not None:
            lines.insert(0, f"This server: {hour.server_line()}")
        embed.add_field(name="Requests in the last hour", value="\n".join(lines), inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)
