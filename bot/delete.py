"""The Delete button on every result and error message.

The requester may delete their message, and so may members who can manage
messages in the channel; anyone else is told so, privately. The button's
custom id carries the requester's id, and discord.py routes it by pattern
(a dynamic item), so buttons keep working after the bot restarts.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

import discord

log = logging.getLogger(__name__)

PREFIX = "erogaki:delete:"
NOT_YOURS = (
    "Only the person who asked, or a moderator who can manage messages here, can delete this."
)


class DeleteButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=PREFIX + r"(?P<owner>[0-9]+)"
):
    def __init__(self, owner_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Delete",
                style=discord.ButtonStyle.secondary,
                emoji="🗑️",
                custom_id=f"{PREFIX}{owner_id}",
            )
        )
        self.owner_id = owner_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> DeleteButton:
        return cls(int(match["owner"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        # Checked on every click: the permissions Discord sends with it are
        # the member's in this channel now.
        allowed = interaction.user.id == self.owner_id or interaction.permissions.manage_messages
        if not allowed:
            await interaction.response.send_message(NOT_YOURS, ephemeral=True)
            return
        await interaction.response.defer()
        # A component interaction's original response is the message it sits on:
        # deleting it needs no channel permission of the bot's.
        with contextlib.suppress(discord.NotFound):  # deleted already (two clicks at once)
            await interaction.delete_original_response()
        log.info(
            "message %s deleted by user %s (requester %s)",
            interaction.message.id if interaction.message else "?",
            interaction.user.id, self.owner_id,
        )  # fmt: skip


def only_delete(custom_ids: list[str]) -> bool:
    """Whether a message's buttons are at most a Delete button (no Cancel left: it's an answer)."""
    return all(c.startswith(PREFIX) for c in custom_ids)


def delete_view(owner_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(DeleteButton(owner_id))
    return view
