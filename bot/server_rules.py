"""What a server's settings allow, as plain logic (no discord.py): which
setting refuses a request, and the text that tells the member so.

Every refusal names the setting and says that a moderator can change it
with ``/erogaki settings``: a member refused by their server's choice must
not think the bot is broken.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bot.server_settings import Feature, ServerSettings, Where
from bot.texts import Text
from erogaki_common.protocol import Mode

CHANGE_HINT = "A moderator (Manage Server) can change this with `/erogaki settings`."

_FEATURE_NAMES = {
    Feature.BAR: "Bar decensoring",
    Feature.MOSAIC: "Mosaic decensoring",
    Feature.AUTO: "Automatic decensoring",
    Feature.MASKED: "Pre-masked (green) images",
}


@dataclass(frozen=True, slots=True)
class Refused:
    """A request a setting refuses: which setting (audit reason) and what to say."""

    setting: str
    text: Text


def check(
    server: ServerSettings,
    *,
    mode: Mode,
    channel_id: int,
    parent_id: int | None,
    role_ids: Collection[int],
) -> Refused | None:
    """The first setting that refuses this request, or None. The order is the
    one a member can act on: where, who, then what."""
    if not server.allows_channel(channel_id, parent_id):
        if server.channels:
            listed = ", ".join(f"<#{c}>" for c in sorted(server.channels))
            where = f"only in {listed} and their threads"
        else:
            where = "in no channel yet (none is listed)"
        return Refused(
            "channel",
            Text(
                "Not in this channel",
                f"This server's **Where** setting allows the bot {where}. {CHANGE_HINT}",
            ),
        )
    if server.role_id is not None and server.role_id not in role_ids:
        return Refused(
            "role",
            Text(
                "A role is required",
                f"This server's **Required role** setting lets only members with "
                f"<@&{server.role_id}> use the bot. {CHANGE_HINT}",
            ),
        )
    feature = Feature.of(mode)
    if feature not in server.features:
        enabled = ", ".join(f"`{f.value}`" for f in Feature if f in server.features)
        return Refused(
            "mode",
            Text(
                "That mode is switched off here",
                f"{_FEATURE_NAMES[feature]} is off in this server's **Modes** setting "
                f"(enabled: {enabled or 'none'}). {CHANGE_HINT}",
            ),
        )
    return None


def user_limit_text(current: int, limit: int, host_limit: int) -> Text:
    """The per-member limit; when the server's own setting is the lower one, say so."""
    plural = "request" if current == 1 else "requests"
    body = f"You have {current} {plural} in progress; the limit is {limit} per person. "
    body += "Wait for one to finish."
    if limit < host_limit:
        body += f" (This server's **Requests per member** setting. {CHANGE_HINT})"
    return Text("You have too many requests running", body)


def where_is_empty(server: ServerSettings) -> bool:
    return server.where is Where.LISTED and not server.channels
