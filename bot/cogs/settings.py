"""/erogaki settings: a server's moderators see and change how the bot
behaves there. Only members with Manage Server may use it, checked by the
bot on every use (Discord's default permissions can be changed by any
admin, and don't apply to subcommands anyway)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot import texts
from bot.server_settings import (
    MAX_CHANNELS,
    Feature,
    ServerSettings,
    SpoilerPolicy,
    Where,
)
from erogaki_common.redis_io import REDIS_ERRORS

if TYPE_CHECKING:
    from bot.app import ErogakiBot

log = logging.getLogger(__name__)

NOT_A_MODERATOR = texts.Text(
    "Only for moderators",
    "Changing the bot's settings needs the **Manage Server** permission in this server.",
)
NOT_IN_A_SERVER = texts.Text("Only in a server", "Settings belong to a server; use it in one.")

# What `reset` can put back to its default.
_RESETTABLE = {
    "where": ("where", "channels"),
    "spoiler": ("spoiler",),
    "requests": ("user_requests",),
    "modes": ("features",),
    "role": ("role_id",),
    "everything": ("where", "channels", "spoiler", "user_requests", "features", "role_id"),
}
_DEFAULTS = ServerSettings()

FEATURE_CHOICES = [Choice(name=f.value, value=f.value) for f in Feature]


class _TooManyChannels(Exception):
    """The change would list more than MAX_CHANNELS channels."""


def _embed(title: str, colour: discord.Colour, description: str | None = None) -> discord.Embed:
    return discord.Embed(title=title, description=description, colour=colour)


class SettingsCog(commands.Cog):
    def __init__(self, bot: ErogakiBot) -> None:
        self.bot = bot
        # The command joins the /erogaki group, which StatusCog owns; keep
        # discord.py from also registering it as a top-level /settings.
        self.__cog_app_commands__ = [
            c for c in self.__cog_app_commands__ if c is not self.settings_command
        ]

    async def cog_load(self) -> None:
        status = self.bot.get_cog("StatusCog")
        if status is None:
            raise RuntimeError("SettingsCog needs StatusCog (the /erogaki group) loaded first")
        status.erogaki.add_command(self.settings_command)  # type: ignore[attr-defined]

    async def cog_unload(self) -> None:
        status = self.bot.get_cog("StatusCog")
        if status is not None:
            status.erogaki.remove_command(self.settings_command.name)  # type: ignore[attr-defined]

    @app_commands.command(
        name="settings", description="Show or change how the bot works in this server (moderators)"
    )
    @app_commands.describe(
        where="where the commands work",
        add_channel="allow this channel (and its threads) when 'where' is listed channels",
        remove_channel="stop allowing this channel",
        spoiler="whether results are sent as spoilers",
        requests="requests one member may have in flight here",
        enable="switch a mode on",
        disable="switch a mode off",
        role="a role members need to use the commands",
        reset="put a setting back to its default",
    )
    @app_commands.choices(
        where=[
            Choice(name="any age-restricted channel", value=Where.NSFW.value),
            Choice(name="only listed channels", value=Where.LISTED.value),
        ],
        spoiler=[
            Choice(name="on by default", value=SpoilerPolicy.ON.value),
            Choice(name="off by default", value=SpoilerPolicy.OFF.value),
            Choice(name="always", value=SpoilerPolicy.ALWAYS.value),
        ],
        enable=FEATURE_CHOICES,
        disable=FEATURE_CHOICES,
        reset=[Choice(name=name, value=name) for name in _RESETTABLE],
    )
    async def settings_command(
        self,
        interaction: discord.Interaction,
        where: str | None = None,
        add_channel: discord.TextChannel | None = None,
        remove_channel: discord.TextChannel | None = None,
        spoiler: str | None = None,
        requests: app_commands.Range[int, 1, 100] | None = None,
        enable: str | None = None,
        disable: str | None = None,
        role: discord.Role | None = None,
        reset: str | None = None,
    ) -> None:
        if interaction.guild_id is None:
            await self._reply(interaction, NOT_IN_A_SERVER)
            return
        # Checked here, on every use: whatever Discord's command permissions say.
        if not interaction.permissions.manage_guild:
            await self._reply(interaction, NOT_A_MODERATOR)
            return
        host = self.bot.settings
        store = self.bot.server_settings
        guild_id = interaction.guild_id
        if requests is not None and requests > host.user_jobs:
            await self._reply(
                interaction,
                texts.Text(
                    "More than the host allows",
                    f"The bot's host allows at most {host.user_jobs} request(s) in flight "
                    f"per person (EROGAKI_USER_JOBS); choose {host.user_jobs} or fewer.",
                ),
            )
            return
        notes: list[str] = []
        if add_channel is not None and not add_channel.is_nsfw():
            notes.append(
                f"<#{add_channel.id}> isn't age-restricted: the commands work only in "
                "age-restricted channels, so mark it so in its settings."
            )

        def changes_for(current: ServerSettings) -> dict[str, Any]:
            # Runs again if another moderator's change lands meanwhile, so lists
            # (channels, modes) are edited as they are then, not as first read.
            changes: dict[str, Any] = {}
            if reset is not None:
                for name in _RESETTABLE[reset]:
                    changes[name] = getattr(_DEFAULTS, name)
            if where is not None:
                changes["where"] = Where(where)
            channels = set(changes.get("channels", current.channels))
            if add_channel is not None:
                channels.add(add_channel.id)
            if remove_channel is not None:
                channels.discard(remove_channel.id)
            if len(channels) > MAX_CHANNELS:
                raise _TooManyChannels
            if add_channel is not None or remove_channel is not None:
                changes["channels"] = frozenset(channels)
                if add_channel is not None and "where" not in changes:
                    # Listing a channel means the moderator wants a list.
                    changes["where"] = Where.LISTED
            if spoiler is not None:
                changes["spoiler"] = SpoilerPolicy(spoiler)
            if requests is not None:
                changes["user_requests"] = requests
            features = set(changes.get("features", current.features))
            if enable is not None:
                features.add(Feature(enable))
            if disable is not None:
                features.discard(Feature(disable))
            if enable is not None or disable is not None:
                changes["features"] = frozenset(features)
            if role is not None:
                changes["role_id"] = None if role.is_default() else role.id
            return changes

        asked = any(
            option is not None
            for option in (
                where, add_channel, remove_channel, spoiler, requests, enable, disable, role, reset
            )
        )  # fmt: skip
        try:
            if not asked:
                current = await store.read(guild_id)
                embed = self._overview(current, "Settings for this server")
                embed.set_footer(text="Give options to change them; each change shows old and new.")
                await interaction.response.send_message(embed=embed, ephemeral=True)
                return
            old, new = await store.edit(guild_id, changes_for)
        except REDIS_ERRORS:
            await self._reply(interaction, texts.REDIS_DOWN)
            return
        except _TooManyChannels:
            await self._reply(
                interaction,
                texts.Text("Too many channels", f"At most {MAX_CHANNELS} can be listed."),
            )
            return
        before = old.describe(host.spoiler, host.user_jobs)
        after = new.describe(host.spoiler, host.user_jobs)
        changed = [name for name in after if before[name] != after[name]]
        log.info(
            "settings of server %s changed by user %s: %s",
            guild_id, interaction.user.id, ", ".join(changed) or "nothing",
        )  # fmt: skip
        if not changed:
            embed = _embed("Nothing changed", discord.Colour.light_grey())
            embed.description = "The settings already were as asked."
        else:
            embed = _embed("Settings changed", discord.Colour.green())
            for name in changed:
                embed.add_field(
                    name=name, value=f"**was:** {before[name]}\n**now:** {after[name]}"[:1024],
                    inline=False,
                )  # fmt: skip
        if notes:
            embed.add_field(name="Note", value="\n".join(notes)[:1024], inline=False)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def _overview(self, server: ServerSettings, title: str) -> discord.Embed:
        embed = _embed(title, discord.Colour.blurple())
        for name, value in server.describe(
            self.bot.settings.spoiler, self.bot.settings.user_jobs
        ).items():
            embed.add_field(name=name, value=value[:1024], inline=False)
        return embed

    @staticmethod
    async def _reply(interaction: discord.Interaction, text: texts.Text) -> None:
        await interaction.response.send_message(
            embed=_embed(text.title, discord.Colour.red(), text.body), ephemeral=True
        )


__all__ = ["SettingsCog"]
