"""A fake Discord on 127.0.0.1 (REST + gateway) that the real, unmodified discord.py talks to.

Tests run the bot exactly as in production, pointed here with
``bot.discord_api.use_api_base(fake.api_base)``: what the fake records is what went over
the wire. Usage::

    async with FakeDiscord() as fake:
        guild = fake.add_guild("lab")
        channel = fake.add_text_channel(guild, "nsfw-art", nsfw=True)
        ...start the bot against fake.api_base with fake.token...
        await fake.wait_ready()
        image = fake.add_attachment(png_bytes, "cat.png")
        handle = await fake.slash_command("decensor bar", {"image": image}, channel=channel)
        callback = await handle.wait_callback()
        [followup] = await handle.wait_followups(1)
        assert followup.files[0].data.startswith(b"\\x89PNG")

Wire facts that the fake reproduces because discord.py depends on them:

* responses are JSON only with a Content-Type of exactly ``application/json`` (discord.py
  compares the header verbatim; a ``; charset=`` suffix makes it a string);
* READY, GUILD_CREATE and INTERACTION_CREATE carry every field discord.py's parsers index
  directly (``attachment_size_limit``, a member's ``flags``, ``resume_gateway_url``, ...);
* the gateway speaks ``zlib-stream`` when asked (discord.py always asks): one deflate
  stream per connection, each message ending in a Z_SYNC_FLUSH;
* interaction callbacks are answered per ``?with_response=1``; webhooks per ``?wait=``;
* the first follow-up after a deferred (type 5) response replaces the "thinking" message and
  keeps the defer's ephemeral flag, whatever flags the follow-up sends;
* follow-ups and original-message routes need the interaction acknowledged first (else
  Unknown Webhook), a second acknowledgement fails with 40060, and an acknowledgement after
  ``callback_deadline`` seconds fails with Unknown Interaction, as on Discord;
* uploads above the limit (an interaction's ``attachment_size_limit`` for its routes,
  ``upload_limit`` for channel messages) are answered 413 / 40005; empty messages, content
  over 2000 characters, oversized embeds and more than 10 files are answered 400.

* :meth:`FakeDiscord.fail` answers chosen routes with 429 (per-route or global, with
  ``retry_after`` in the body and the ``Via`` header discord.py insists on) or a 5xx.

Events queued while the bot is disconnected are replayed when it RESUMEs, as Discord does.
Nothing here sleeps to synchronise: :meth:`FakeDiscord.wait_for` wakes on every recorded
change (and re-checks briefly, so predicates may also look at the bot's own state).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import mimetypes
import re
import secrets
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import BodyPartReader, WSMsgType, web

JSON = dict[str, Any]

API_VERSION = 10
API_PREFIX = f"/api/v{API_VERSION}"
DISCORD_EPOCH_MS = 1_420_070_400_000
MiB = 1024 * 1024

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Interaction types and callback types.
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7

# Channel types.
GUILD_TEXT = 0
DM = 1
PUBLIC_THREAD = 11

# Permission bits.
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
DEFAULT_BOT_PERMISSIONS = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | SEND_MESSAGES_IN_THREADS
)
DEFAULT_MEMBER_PERMISSIONS = DEFAULT_BOT_PERMISSIONS | USE_APPLICATION_COMMANDS

# Gateway intents.
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Gateway opcodes.
OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE_UPDATE = 3
OP_VOICE_STATE_UPDATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_GUILD_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
_SAME_NAME_COMMAND_TYPES = {1: "chat input", 2: "user", 3: "message"}


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class _Snowflakes:
    """Increasing snowflakes that decode to the current time, like Discord's."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last


# -- the configured world ---------------------------------------------------------------


@dataclass(eq=False)
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class FakeRole:
    id: int
    name: str
    position: int = 1

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": "0",
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner_id: int
    bot_permissions: int = DEFAULT_BOT_PERMISSIONS
    preferred_locale: str = "en-US"
    joined_at: str = field(default_factory=_now_iso)
    channels: list[FakeChannel] = field(default_factory=list)
    roles: list[FakeRole] = field(default_factory=list)
    # user id -> the ids of the roles that member has (besides @everyone).
    member_roles: dict[int, list[int]] = field(default_factory=dict)

    def everyone_role(self) -> JSON:
        return {
            "id": str(self.id),
            "name": "@everyone",
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": 0,
            # The bot's guild permissions come from @everyone: it has no roles here.
            "permissions": str(self.bot_permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeChannel:
    id: int
    type: int
    name: str
    guild: FakeGuild | None = None
    nsfw: bool = False
    parent: FakeChannel | None = None
    recipient: FakeUser | None = None
    owner_id: int | None = None
    position: int = 0
    # None: the guild's bot_permissions apply.
    bot_permissions: int | None = None
    created_at: str = field(default_factory=_now_iso)

    @property
    def is_thread(self) -> bool:
        return self.type in (10, 11, 12)

    @property
    def is_dm(self) -> bool:
        return self.type == DM

    @property
    def effective_nsfw(self) -> bool:
        """What Discord enforces: a thread is NSFW when its parent is."""
        if self.parent is not None:
            return self.parent.effective_nsfw
        return self.nsfw

    def effective_bot_permissions(self) -> int:
        if self.bot_permissions is not None:
            return self.bot_permissions
        if self.parent is not None:
            return self.parent.effective_bot_permissions()
        if self.guild is not None:
            return self.guild.bot_permissions
        return DEFAULT_BOT_PERMISSIONS

    def payload(self) -> JSON:
        """The full channel object (REST, GUILD_CREATE, CHANNEL_* events)."""
        if self.is_dm:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self.recipient.payload()],
            }
        assert self.guild is not None
        if self.is_thread:
            assert self.parent is not None
            # Threads have no nsfw of their own: clients read the parent's.
            return {
                "id": str(self.id),
                "type": self.type,
                "guild_id": str(self.guild.id),
                "parent_id": str(self.parent.id),
                "owner_id": str(self.owner_id or self.guild.owner_id),
                "name": self.name,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "message_count": 0,
                "member_count": 1,
                "total_message_sent": 0,
                "flags": 0,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": self.created_at,
                    "locked": False,
                    "create_timestamp": self.created_at,
                },
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild.id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": self.nsfw,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }

    def interaction_payload(self, member_permissions: int) -> JSON:
        """The partial channel an interaction carries (with the invoker's permissions)."""
        data = self.payload()
        if not self.is_dm:
            data["permissions"] = str(member_permissions)
            data.pop("permission_overwrites", None)
        return data


@dataclass(eq=False)
class FakeAttachment:
    """A file Discord hosts: test-supplied input or a file the bot uploaded."""

    id: int
    filename: str
    data: bytes = field(repr=False)
    content_type: str | None
    url: str
    width: int | None = None
    height: int | None = None
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        if self.width is not None and self.height is not None:
            data["width"] = self.width
            data["height"] = self.height
        if self.description is not None:
            data["description"] = self.description
        return data


# -- records ----------------------------------------------------------------------------

CallKind = Literal[
    "callback",
    "followup",
    "edit",
    "delete",
    "fetch",
    "channel_message",
    "command_sync",
    "other",
]


@dataclass(eq=False)
class Fault:
    """An answer the fake gives instead of serving matching requests (see
    :meth:`FakeDiscord.fail`): a rate limit (429) or a server error (5xx)."""

    kind: CallKind
    status: int
    times: int
    retry_after: float
    is_global: bool
    # Only requests that upload files (True), or that don't (False); None: any.
    with_files: bool | None
    hits: int = 0

    def matches(self, kind: CallKind, files: Sequence[UploadedFile]) -> bool:
        if self.hits >= self.times or kind != self.kind:
            return False
        return self.with_files is None or self.with_files == bool(files)

    def reply(self) -> tuple[int, Any, dict[str, str]]:
        if self.status != 429:
            return self.status, {"message": f"{self.status}: Server Error", "code": 0}, {}
        # What Discord sends, down to the Via header: discord.py treats a 429 without
        # it as a Cloudflare ban and gives up instead of waiting.
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(self.retry_after))),
            "X-RateLimit-Scope": "global" if self.is_global else "user",
        }
        if self.is_global:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers |= {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": f"{self.retry_after:.3f}",
                "X-RateLimit-Bucket": f"fake-{self.kind}",
            }
        body = {
            "message": "You are being rate limited.",
            "retry_after": self.retry_after,
            "global": self.is_global,
            "code": 0,
        }
        return 429, body, headers


def _kind_of(method: str, parts: Sequence[str]) -> CallKind:
    """The kind of a request, from its route alone (before it is served)."""
    if parts[0] == "interactions":
        return "callback"
    message_route = len(parts) >= 4 and parts[-2] == "messages"
    if message_route and parts[0] in ("webhooks", "channels"):
        return {"PATCH": "edit", "GET": "fetch", "DELETE": "delete"}.get(  # type: ignore[return-value]
            method, "other"
        )
    if parts[0] == "webhooks" and len(parts) == 3 and method == "POST":
        return "followup"
    if parts[0] == "channels" and len(parts) == 3 and parts[2] == "messages" and method == "POST":
        return "channel_message"
    if parts[0] == "applications" and parts[-1] == "commands":
        return "command_sync"
    return "other"


@dataclass(frozen=True, eq=False)
class UploadedFile:
    part: str  # the multipart field, "files[n]"
    filename: str
    content_type: str | None
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


class _MessageFields:
    """What tests read off a message body, recorded call or stored message alike."""

    @property
    def message_body(self) -> JSON:
        raise NotImplementedError

    @property
    def embeds(self) -> list[JSON]:
        return list(self.message_body.get("embeds") or [])

    @property
    def components(self) -> list[JSON]:
        return list(self.message_body.get("components") or [])

    @property
    def flags(self) -> int:
        return int(self.message_body.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def custom_ids(self) -> list[str]:
        return _custom_ids(self.components)


@dataclass(eq=False)
class Call(_MessageFields):
    """One REST request as the fake received and answered it."""

    kind: CallKind
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any  # the JSON body; for multipart requests the parsed payload_json
    files: list[UploadedFile]
    status: int
    response: Any
    interaction_id: int | None = None
    message_id: int | None = None
    channel_id: int | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def callback_type(self) -> int | None:
        if self.kind != "callback" or not isinstance(self.body, dict):
            return None
        value = self.body.get("type")
        return value if isinstance(value, int) else None

    @property
    def message_body(self) -> JSON:
        """The message part of the body (a callback's ``data``, else the body itself)."""
        body = self.body if isinstance(self.body, dict) else {}
        if self.kind == "callback":
            data = body.get("data")
            return data if isinstance(data, dict) else {}
        return body

    @property
    def content(self) -> str | None:
        value = self.message_body.get("content")
        return value if isinstance(value, str) else None


@dataclass(eq=False)
class StoredMessage(_MessageFields):
    """A message as Discord holds it now; ``history`` keeps the versions before edits."""

    data: JSON
    attachments: list[FakeAttachment]
    interaction_id: int | None = None
    deleted: bool = False
    history: list[JSON] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def channel_id(self) -> int:
        return int(self.data["channel_id"])

    @property
    def author_id(self) -> int:
        return int(self.data["author"]["id"])

    @property
    def content(self) -> str:
        return str(self.data.get("content", ""))

    @property
    def message_body(self) -> JSON:
        return self.data

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)


def _custom_ids(components: Iterable[Any]) -> list[str]:
    found: list[str] = []
    for component in components:
        if not isinstance(component, dict):
            continue
        if isinstance(component.get("custom_id"), str):
            found.append(component["custom_id"])
        found.extend(_custom_ids(component.get("components") or []))
        if isinstance(component.get("accessory"), dict):
            found.extend(_custom_ids([component["accessory"]]))
    return found


@dataclass(eq=False)
class GatewayConnection:
    """One websocket the client opened, with everything it sent us."""

    path: str
    query: dict[str, str]
    received: list[JSON] = field(default_factory=list)
    sent: list[JSON] = field(default_factory=list)
    heartbeats: int = 0
    identified: bool = False
    resumed: bool = False
    closed: bool = False
    close_code: int | None = None
    session: GatewaySession | None = field(default=None, repr=False)
    _ws: web.WebSocketResponse | None = field(default=None, repr=False)
    _outbox: asyncio.Queue[JSON | None] = field(default_factory=asyncio.Queue, repr=False)
    _compressor: Any = field(default=None, repr=False)

    @property
    def compress(self) -> str | None:
        return self.query.get("compress")

    @property
    def ops(self) -> list[int]:
        return [int(p.get("op", -1)) for p in self.received]


@dataclass(eq=False)
class GatewaySession:
    id: str
    intents: int
    identify: JSON
    seq: int = 0
    events: list[JSON] = field(default_factory=list, repr=False)
    connection: GatewayConnection | None = field(default=None, repr=False)

    @property
    def live(self) -> bool:
        return self.connection is not None and not self.connection.closed


class InteractionHandle:
    """An interaction the fake dispatched; await what the bot does with it."""

    def __init__(
        self,
        fake: FakeDiscord,
        payload: JSON,
        *,
        channel: FakeChannel,
        user: FakeUser,
        message: StoredMessage | None,
    ) -> None:
        self.fake = fake
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.channel = channel
        self.user = user
        self.message = message  # the message a component sits on
        self.attachment_size_limit: int = payload["attachment_size_limit"]
        self.created_at = time.monotonic()
        self.callback: Call | None = None
        self.original_message_id: int | None = None
        self.message_ids: list[int] = []

    def __repr__(self) -> str:
        return f"<InteractionHandle id={self.id} type={self.type} callback={self.callback_type}>"

    @property
    def acknowledged(self) -> bool:
        return self.callback is not None

    @property
    def callback_type(self) -> int | None:
        return None if self.callback is None else self.callback.callback_type

    @property
    def calls(self) -> list[Call]:
        return [c for c in self.fake.requests if c.interaction_id == self.id]

    @property
    def followups(self) -> list[Call]:
        return [c for c in self.fake.followups if c.interaction_id == self.id and c.ok]

    @property
    def edits(self) -> list[Call]:
        return [c for c in self.fake.edits if c.interaction_id == self.id and c.ok]

    @property
    def original(self) -> StoredMessage | None:
        if self.original_message_id is None:
            return None
        return self.fake.messages.get(self.original_message_id)

    async def wait_callback(self, timeout: float = 10.0) -> Call:
        await self.fake.wait_for(
            lambda: self.callback is not None, timeout, f"a callback to interaction {self.id}"
        )
        assert self.callback is not None
        return self.callback

    async def wait_followups(self, count: int = 1, timeout: float = 10.0) -> list[Call]:
        await self.fake.wait_for(
            lambda: len(self.followups) >= count,
            timeout,
            f"{count} follow-up(s) to interaction {self.id}",
        )
        return self.followups

    async def wait_for(
        self, predicate: Callable[[InteractionHandle], bool], timeout: float = 10.0
    ) -> None:
        await self.fake.wait_for(lambda: predicate(self), timeout, f"{predicate} on {self!r}")


class _Reply(Exception):
    """Answer the current request with this status and JSON (raised from deep helpers)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _error(status: int, code: int, message: str, errors: JSON | None = None) -> _Reply:
    body: JSON = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return _Reply(status, body)


def _invalid_form(problems: Mapping[str, str]) -> _Reply:
    errors = {
        path: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": text}]}
        for path, text in problems.items()
    }
    return _error(400, 50035, "Invalid Form Body", errors)


def _json_response(data: Any, status: int = 200) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly application/json, so no
    # charset suffix (web.json_response would add one).
    return web.Response(
        status=status,
        body=json.dumps(data, separators=(",", ":")).encode(),
        content_type="application/json",
    )


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.width), int(image.height)
    except Exception:
        return None


def _embed_problems(embeds: Sequence[Any]) -> dict[str, str]:
    problems: dict[str, str] = {}
    if len(embeds) > 10:
        problems["embeds"] = "Must be 10 or fewer in length."
    total = 0
    limits = {"title": 256, "description": 4096}
    for index, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            problems[f"embeds.{index}"] = "Not an object."
            continue
        for key, limit in limits.items():
            text = str(embed.get(key) or "")
            total += len(text)
            if len(text) > limit:
                problems[f"embeds.{index}.{key}"] = f"Must be {limit} or fewer in length."
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems[f"embeds.{index}.fields"] = "Must be 25 or fewer in length."
        for n, item in enumerate(fields):
            name, value = str(item.get("name", "")), str(item.get("value", ""))
            total += len(name) + len(value)
            if not name or len(name) > 256:
                problems[f"embeds.{index}.fields.{n}.name"] = "Must be 1 to 256 in length."
            if not value or len(value) > 1024:
                problems[f"embeds.{index}.fields.{n}.value"] = "Must be 1 to 1024 in length."
        footer = str((embed.get("footer") or {}).get("text") or "")
        author = str((embed.get("author") or {}).get("name") or "")
        total += len(footer) + len(author)
        if len(footer) > 2048:
            problems[f"embeds.{index}.footer.text"] = "Must be 2048 or fewer in length."
        if len(author) > 256:
            problems[f"embeds.{index}.author.name"] = "Must be 256 or fewer in length."
    if total > 6000:
        problems["embeds"] = "Embed size exceeds maximum size of 6000"
    return problems


def _command_problems(command: Any, where: str) -> dict[str, str]:
    """The checks Discord applies to a command definition, in its error shape."""
    if not isinstance(command, dict):
        return {where: "Not an object."}
    problems: dict[str, str] = {}
    kind = command.get("type", 1)
    name = command.get("name")
    if not isinstance(name, str) or (not _COMMAND_NAME.match(name) and kind == 1):
        problems[f"{where}.name"] = "Invalid application command name."
    elif kind == 1 and name != name.lower():
        problems[f"{where}.name"] = "Chat input command names must be lowercase."
    elif kind != 1 and not 1 <= len(name) <= 32:
        problems[f"{where}.name"] = "Must be between 1 and 32 in length."
    description = command.get("description", "")
    if kind == 1 and not 1 <= len(str(description)) <= 100:
        problems[f"{where}.description"] = "Must be between 1 and 100 in length."
    problems.update(_option_problems(command.get("options") or [], f"{where}.options"))
    return problems


def _option_problems(options: Sequence[Any], where: str) -> dict[str, str]:
    problems: dict[str, str] = {}
    if len(options) > 25:
        problems[where] = "Must be 25 or fewer in length."
    seen_optional = False
    names: set[str] = set()
    for index, option in enumerate(options):
        at = f"{where}.{index}"
        if not isinstance(option, dict):
            problems[at] = "Not an object."
            continue
        name = option.get("name")
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            problems[f"{at}.name"] = "Invalid option name."
        elif name in names:
            problems[f"{at}.name"] = "Option names must be unique."
        names.add(str(name))
        if not 1 <= len(str(option.get("description", ""))) <= 100:
            problems[f"{at}.description"] = "Must be between 1 and 100 in length."
        if option.get("type") in (1, 2):
            problems.update(_option_problems(option.get("options") or [], f"{at}.options"))
            continue
        if option.get("required"):
            if seen_optional:
                problems[f"{at}.required"] = (
                    "Required options must be placed before non-required options."
                )
        else:
            seen_optional = True
    return problems


# -- the fake -----------------------------------------------------------------------------


class FakeDiscord:
    """Discord's REST API and gateway for one bot application, on 127.0.0.1.

    Configure the world (:meth:`add_guild`, :meth:`add_text_channel`, :meth:`add_thread`,
    :meth:`dm_channel`, :meth:`add_user`) before the bot connects; later additions are
    announced over the gateway as Discord would. Then dispatch interactions
    (:meth:`slash_command`, :meth:`message_command`, :meth:`click_button`) and inspect the
    records (:attr:`requests` and the per-kind lists, :attr:`messages`, :attr:`uploads`).
    """

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "erogaki",
        upload_limit: int = 10 * MiB,
        callback_deadline: float | None = 3.0,
        heartbeat_interval_ms: int = 41_250,
        privileged_intents: int = PRIVILEGED_INTENTS,
    ) -> None:
        self.token = token
        self.upload_limit = upload_limit
        self.callback_deadline = callback_deadline
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.privileged_intents = privileged_intents
        self._ids = _Snowflakes()
        self.application_id = self._ids.next()
        self.bot_user = FakeUser(self.application_id, bot_name, bot=True)
        self.owner = FakeUser(self._ids.next(), "owner", "Owner")
        self.default_user = FakeUser(self._ids.next(), "tester", "Tester")
        self.users: dict[int, FakeUser] = {
            u.id: u for u in (self.bot_user, self.owner, self.default_user)
        }
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.files: dict[int, FakeAttachment] = {}

        # Records.
        self.requests: list[Call] = []
        self.callbacks: list[Call] = []
        self.followups: list[Call] = []
        self.edits: list[Call] = []
        self.deletes: list[Call] = []
        self.fetches: list[Call] = []
        self.channel_messages: list[Call] = []
        self.command_syncs: list[Call] = []
        self.rejected: list[Call] = []
        self.internal_errors: list[Exception] = []
        self.uploads: list[UploadedFile] = []
        # Ids of hosted files someone fetched from the CDN, in order.
        self.downloads: list[int] = []
        self.messages: dict[int, StoredMessage] = {}
        self.interactions: dict[int, InteractionHandle] = {}
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.connections: list[GatewayConnection] = []
        self.sessions: dict[str, GatewaySession] = {}
        self.session: GatewaySession | None = None

        self.faults: list[Fault] = []

        self._waiters: list[asyncio.Future[None]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        # Uploads above the limit must reach the handler so it can answer 413 as Discord.
        app = web.Application(client_max_size=1024 * MiB)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway-resume", self._gateway)
        app.router.add_get("/attachments/{file_id}/{filename}", self._serve_file)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._api)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def close(self) -> None:
        for conn in self.connections:
            if conn._ws is not None and not conn._ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn._ws.close(code=1001), 2.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        assert self._port is not None, "FakeDiscord is not started"
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """What ``DISCORD_API_BASE`` should be for a bot talking to this fake."""
        return self.url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/gateway"

    @property
    def resume_gateway_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/gateway-resume"

    # -- waiting --------------------------------------------------------------------------

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(
        self, predicate: Callable[[], object], timeout: float = 10.0, what: str = ""
    ) -> None:
        """Return once ``predicate()`` is truthy; raise TimeoutError at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            # Woken by every change the fake records; the short cap re-checks predicates
            # that look at state outside the fake (the bot's caches).
            try:
                await asyncio.wait_for(waiter, min(remaining, 0.05))
            except TimeoutError:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    async def wait_ready(self, timeout: float = 10.0) -> GatewaySession:
        """Wait until a bot identified (or resumed) and is connected."""
        await self.wait_for(
            lambda: self.session is not None and self.session.live, timeout, "a gateway session"
        )
        assert self.session is not None
        return self.session

    # -- faults -----------------------------------------------------------------------------

    def fail(
        self,
        kind: CallKind,
        status: int = 429,
        *,
        times: int = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
        with_files: bool | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests of ``kind`` with ``status`` instead of serving
        them: 429 as a per-route (or, with ``is_global``, the global) rate limit saying
        ``retry_after`` seconds, or a 5xx. Nothing else happens for those requests."""
        fault = Fault(kind, status, times, retry_after, is_global, with_files)
        self.faults.append(fault)
        return fault

    # -- configuring the world ----------------------------------------------------------

    def add_user(self, username: str, global_name: str | None = None) -> FakeUser:
        user = FakeUser(self._ids.next(), username, global_name)
        self.users[user.id] = user
        return user

    def add_guild(
        self, name: str = "guild", *, bot_permissions: int = DEFAULT_BOT_PERMISSIONS
    ) -> FakeGuild:
        guild = FakeGuild(self._ids.next(), name, self.owner.id, bot_permissions)
        self.guilds[guild.id] = guild
        if self.session is not None:
            self._dispatch("GUILD_CREATE", self._guild_create(guild))
        return guild

    def add_role(self, guild: FakeGuild, name: str) -> FakeRole:
        role = FakeRole(self._ids.next(), name, position=len(guild.roles) + 1)
        guild.roles.append(role)
        if self.session is not None:
            self._dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()})
        return role

    def give_role(self, guild: FakeGuild, user: FakeUser, role: FakeRole) -> None:
        """The member has ``role`` in interactions from now on."""
        guild.member_roles.setdefault(user.id, []).append(role.id)

    def add_text_channel(
        self, guild: FakeGuild, name: str, *, nsfw: bool = False, bot_permissions: int | None = None
    ) -> FakeChannel:
        channel = FakeChannel(
            self._ids.next(),
            GUILD_TEXT,
            name,
            guild,
            nsfw=nsfw,
            position=len(guild.channels),
            bot_permissions=bot_permissions,
        )
        self._add_channel(channel, "CHANNEL_CREATE")
        return channel

    def add_thread(self, parent: FakeChannel, name: str) -> FakeChannel:
        """A public thread under ``parent``; it is NSFW exactly when its parent is."""
        if parent.guild is None or parent.is_thread:
            raise ValueError("threads live under a guild text channel")
        thread = FakeChannel(
            self._ids.next(),
            PUBLIC_THREAD,
            name,
            parent.guild,
            parent=parent,
            owner_id=self.owner.id,
        )
        self._add_channel(thread, "THREAD_CREATE")
        return thread

    def dm_channel(self, user: FakeUser | None = None) -> FakeChannel:
        """The DM channel between the bot and ``user`` (created on first use)."""
        user = user or self.default_user
        for channel in self.channels.values():
            if channel.is_dm and channel.recipient is user:
                return channel
        channel = FakeChannel(self._ids.next(), DM, "", recipient=user)
        self.channels[channel.id] = channel
        return channel

    def _add_channel(self, channel: FakeChannel, event: str) -> None:
        assert channel.guild is not None
        channel.guild.channels.append(channel)
        self.channels[channel.id] = channel
        if self.session is not None:
            data = channel.payload()
            if event == "THREAD_CREATE":
                data["newly_created"] = True
            self._dispatch(event, data)

    def set_channel_nsfw(self, channel: FakeChannel, nsfw: bool) -> None:
        if channel.is_thread or channel.is_dm:
            raise ValueError("only guild channels carry an NSFW flag")
        channel.nsfw = nsfw
        if self.session is not None:
            self._dispatch("CHANNEL_UPDATE", channel.payload())

    def add_attachment(
        self,
        data: bytes,
        filename: str = "image.png",
        content_type: str | None = None,
        *,
        description: str | None = None,
    ) -> FakeAttachment:
        """Host ``data`` as Discord's CDN would; use it as an option or message attachment."""
        return self._host_file(data, filename, content_type, description)

    def _host_file(
        self, data: bytes, filename: str, content_type: str | None, description: str | None
    ) -> FakeAttachment:
        file_id = self._ids.next()
        if content_type is None:
            content_type = mimetypes.guess_type(filename)[0]
        size = _image_size(data) if (content_type or "").startswith("image/") else None
        attachment = FakeAttachment(
            file_id,
            filename,
            data,
            content_type,
            f"{self.url}/attachments/{file_id}/{filename}",
            width=size[0] if size else None,
            height=size[1] if size else None,
            description=description,
        )
        self.files[file_id] = attachment
        return attachment

    def post_user_message(
        self,
        channel: FakeChannel,
        *,
        author: FakeUser | None = None,
        content: str = "",
        attachments: Sequence[FakeAttachment] = (),
    ) -> StoredMessage:
        """A message a user posted (e.g. the target of a message context-menu command)."""
        message = self._new_message(channel, author or self.default_user)
        message.data["content"] = content
        message.attachments = list(attachments)
        message.data["attachments"] = [a.payload() for a in attachments]
        self.messages[message.id] = message
        self._emit_message("MESSAGE_CREATE", message)
        self._changed()
        return message

    # -- dispatching interactions ---------------------------------------------------------

    async def slash_command(
        self,
        command: str,
        options: Mapping[str, object] | None = None,
        *,
        channel: FakeChannel,
        user: FakeUser | None = None,
        locale: str = "en-US",
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
        member_permissions: int = DEFAULT_MEMBER_PERMISSIONS,
    ) -> InteractionHandle:
        """Invoke ``/command`` as a user would.

        ``command`` is the full path ("erogaki status", "decensor bar"; three words for a
        subcommand group). ``options`` maps option names to ``str``, ``int``, ``float``,
        ``bool``, :class:`FakeAttachment`, :class:`FakeUser`, :class:`FakeRole` or
        :class:`FakeChannel`. When the bot synced its commands, the path and option names
        are checked against them, as Discord's client would only offer registered ones.
        """
        parts = command.strip().lstrip("/").split()
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"not a command path: {command!r}")
        registered, registered_guild = self._registered(parts[0], 1, channel.guild)
        if registered is not None:
            self._check_invocation(registered, parts, options or {})
        leaf, resolved = self._options(options or {})
        wrapped: list[JSON] = leaf
        if len(parts) == 3:
            sub = {"type": 1, "name": parts[2], "options": leaf}
            wrapped = [{"type": 2, "name": parts[1], "options": [sub]}]
        elif len(parts) == 2:
            wrapped = [{"type": 1, "name": parts[1], "options": leaf}]
        data: JSON = {
            "id": registered["id"] if registered else str(self._ids.next()),
            "name": parts[0],
            "type": 1,
            "options": wrapped,
        }
        if resolved:
            data["resolved"] = resolved
        if registered_guild is not None:
            data["guild_id"] = str(registered_guild.id)
        return await self._dispatch_interaction(
            APPLICATION_COMMAND,
            data,
            channel=channel,
            user=user,
            message=None,
            locale=locale,
            attachment_size_limit=attachment_size_limit,
            app_permissions=app_permissions,
            member_permissions=member_permissions,
        )

    async def message_command(
        self,
        name: str,
        target: StoredMessage,
        *,
        user: FakeUser | None = None,
        locale: str = "en-US",
        attachment_size_limit: int | None = None,
        app_permissions: int | None = None,
        member_permissions: int = DEFAULT_MEMBER_PERMISSIONS,
    ) -> InteractionHandle:
        """Run the message context-menu command ``name`` on ``target``."""
        channel = self.channels[target.channel_id]
        registered, registered_guild = self._registered(name, 3, channel.guild)
        data: JSON = {
            "id": registered["id"] if registered else str(self._ids.next()),
            "name": name,
            "type": 3,
            "target_id": str(target.id),
            # Resolved messages are complete (content included) whatever the intents.
            "resolved": {"messages": {str(target.id): json.loads(json.dumps(target.data))}},
        }
        if registered_guild is not None:
            data["guild_id"] = str(registered_guild.id)
        return await self._dispatch_interaction(
            APPLICATION_COMMAND,
            data,
            channel=channel,
            user=user,
            message=None,
            locale=locale,
            attachment_size_limit=attachment_size_limit,
            app_permissions=app_permissions,
            member_permissions=member_permissions,
        )

    async def click_button(
        self,
        message: StoredMessage | int,
        custom_id: str,
        *,
        user: FakeUser | None = None,
        locale: str = "en-US",
        member_permissions: int = DEFAULT_MEMBER_PERMISSIONS,
    ) -> InteractionHandle:
        """Click the button ``custom_id`` on ``message`` (which must show it)."""
        return await self.component_interaction(
            message, custom_id, user=user, locale=locale, member_permissions=member_permissions
        )

    async def component_interaction(
        self,
        message: StoredMessage | int,
        custom_id: str,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        user: FakeUser | None = None,
        locale: str = "en-US",
        member_permissions: int = DEFAULT_MEMBER_PERMISSIONS,
    ) -> InteractionHandle:
        stored = self.messages[message] if isinstance(message, int) else message
        if stored.deleted:
            raise ValueError(f"message {stored.id} was deleted")
        if custom_id not in stored.custom_ids:
            raise ValueError(f"message {stored.id} has no component {custom_id!r}")
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        return await self._dispatch_interaction(
            MESSAGE_COMPONENT,
            data,
            channel=self.channels[stored.channel_id],
            user=user,
            message=stored,
            locale=locale,
            attachment_size_limit=None,
            app_permissions=None,
            member_permissions=member_permissions,
        )

    def _registered(
        self, name: str, kind: int, guild: FakeGuild | None
    ) -> tuple[JSON | None, FakeGuild | None]:
        if guild is not None:
            for command in self.guild_commands.get(guild.id, []):
                if command["name"] == name and command.get("type", 1) == kind:
                    return command, guild
        for command in self.global_commands:
            if command["name"] == name and command.get("type", 1) == kind:
                return command, None
        if self.global_commands or self.guild_commands:
            raise ValueError(f"the bot registered no {_SAME_NAME_COMMAND_TYPES[kind]} {name!r}")
        return None, None

    @staticmethod
    def _check_invocation(command: JSON, parts: list[str], options: Mapping[str, object]) -> None:
        node = command
        for part in parts[1:]:
            children = [o for o in node.get("options") or [] if o.get("type") in (1, 2)]
            match = next((o for o in children if o["name"] == part), None)
            if match is None:
                raise ValueError(f"/{' '.join(parts)}: no subcommand {part!r} registered")
            node = match
        declared = {o["name"]: o for o in node.get("options") or [] if o.get("type") not in (1, 2)}
        unknown = set(options) - set(declared)
        if unknown:
            raise ValueError(f"/{' '.join(parts)}: options {sorted(unknown)} are not registered")
        missing = [n for n, o in declared.items() if o.get("required") and n not in options]
        if missing:
            raise ValueError(f"/{' '.join(parts)}: required options {missing} are missing")

    def _options(self, options: Mapping[str, object]) -> tuple[list[JSON], JSON]:
        out: list[JSON] = []
        resolved: dict[str, JSON] = {}
        for name, value in options.items():
            option: JSON = {"name": name}
            if isinstance(value, bool):
                option.update(type=5, value=value)
            elif isinstance(value, int):
                option.update(type=4, value=value)
            elif isinstance(value, float):
                option.update(type=10, value=value)
            elif isinstance(value, str):
                option.update(type=3, value=value)
            elif isinstance(value, FakeAttachment):
                option.update(type=11, value=str(value.id))
                resolved.setdefault("attachments", {})[str(value.id)] = value.payload()
            elif isinstance(value, FakeUser):
                option.update(type=6, value=str(value.id))
                resolved.setdefault("users", {})[str(value.id)] = value.payload()
            elif isinstance(value, FakeRole):
                option.update(type=8, value=str(value.id))
                resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            elif isinstance(value, FakeChannel):
                option.update(type=7, value=str(value.id))
                channel = value.interaction_payload(DEFAULT_MEMBER_PERMISSIONS)
                resolved.setdefault("channels", {})[str(value.id)] = channel
            else:
                raise TypeError(f"option {name!r}: unsupported value {value!r}")
            out.append(option)
        return out, resolved

    async def _dispatch_interaction(
        self,
        interaction_type: int,
        data: JSON,
        *,
        channel: FakeChannel,
        user: FakeUser | None,
        message: StoredMessage | None,
        locale: str,
        attachment_size_limit: int | None,
        app_permissions: int | None,
        member_permissions: int,
    ) -> InteractionHandle:
        # A session suffices: while the bot reconnects the event waits in the session and
        # is replayed on RESUME, as Discord does.
        await self.wait_for(lambda: self.session is not None, 10.0, "a gateway session")
        user = user or self.default_user
        guild = channel.guild
        interaction_id = self._ids.next()
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": interaction_type,
            "data": data,
            "token": f"itok.{interaction_id}.{secrets.token_urlsafe(24)}",
            "version": 1,
            "channel_id": str(channel.id),
            "channel": channel.interaction_payload(member_permissions),
            "app_permissions": str(
                channel.effective_bot_permissions() if app_permissions is None else app_permissions
            ),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            # Guild install: the guild, or "0" in the bot's DMs.
            "authorizing_integration_owners": {"0": str(guild.id) if guild else "0"},
            "context": 0 if guild is not None else 1,
            "attachment_size_limit": (
                self.upload_limit if attachment_size_limit is None else attachment_size_limit
            ),
        }
        if guild is not None:
            payload["guild_id"] = str(guild.id)
            payload["guild"] = {
                "id": str(guild.id),
                "locale": guild.preferred_locale,
                "features": [],
            }
            payload["guild_locale"] = guild.preferred_locale
            payload["member"] = self._member(guild, user, member_permissions)
        else:
            payload["user"] = user.payload()
        if message is not None:
            payload["message"] = json.loads(json.dumps(message.data))
        handle = InteractionHandle(self, payload, channel=channel, user=user, message=message)
        self.interactions[handle.id] = handle
        self._dispatch("INTERACTION_CREATE", payload)
        self._changed()
        return handle

    def _member(self, guild: FakeGuild, user: FakeUser, permissions: int | None) -> JSON:
        member: JSON = {
            "user": user.payload(),
            "roles": [str(r) for r in guild.member_roles.get(user.id, [])],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": guild.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if permissions is not None:
            member["permissions"] = str(permissions)
        return member

    # -- gateway ----------------------------------------------------------------------------

    def _guild_create(self, guild: FakeGuild) -> JSON:
        channels = [c for c in guild.channels if not c.is_thread]
        threads = [c for c in guild.channels if c.is_thread]
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": guild.preferred_locale,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500_000,
            "features": [],
            "roles": [guild.everyone_role(), *(r.payload() for r in guild.roles)],
            "emojis": [],
            "stickers": [],
            "application_id": None,
            "joined_at": guild.joined_at,
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "lazy": True,
            "voice_states": [],
            "members": [self._member(guild, self.bot_user, None)],
            "channels": [
                {k: v for k, v in c.payload().items() if k != "guild_id"} for c in channels
            ],
            "threads": [t.payload() for t in threads],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _ready(self, session: GatewaySession, identify: JSON) -> JSON:
        user = self.bot_user.payload() | {"verified": True, "mfa_enabled": False, "flags": 0}
        # Unverified apps get the *_LIMITED application flags for what they enabled.
        flags = (
            (1 << 13 if self.privileged_intents & INTENT_GUILD_PRESENCES else 0)
            | (1 << 15 if self.privileged_intents & INTENT_GUILD_MEMBERS else 0)
            | (1 << 19 if self.privileged_intents & INTENT_MESSAGE_CONTENT else 0)
        )
        ready: JSON = {
            "v": API_VERSION,
            "user": user,
            "user_settings": {},
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": flags},
            "_trace": ['["fake-discord",{"micros":0}]'],
        }
        if "shard" in identify:
            ready["shard"] = identify["shard"]
        return ready

    def _dispatch(self, event: str, data: JSON) -> None:
        """Send an event to the bot, or keep it for replay if it is reconnecting."""
        session = self.session
        if session is None:
            return
        session.seq += 1
        payload: JSON = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        if session.live:
            assert session.connection is not None
            session.connection._outbox.put_nowait(payload)

    async def dispatch(self, event: str, data: JSON) -> None:
        """Dispatch any gateway event (for what the helpers do not cover)."""
        await self.wait_ready()
        self._dispatch(event, data)
        self._changed()

    def connection(self) -> GatewayConnection | None:
        """The live connection of the current session, if any."""
        session = self.session
        return session.connection if session is not None and session.live else None

    async def disconnect(self, code: int = 4000) -> None:
        """Close the bot's websocket as Discord does before asking it to resume.

        4000 ("unknown error") lets the client reconnect and RESUME; codes such as 4004
        are fatal to discord.py.
        """
        conn = self.connection()
        if conn is None or conn._ws is None:
            raise RuntimeError("no live gateway connection to close")
        await conn._ws.close(code=code, message=b"fake disconnect")

    async def request_reconnect(self) -> None:
        """Send opcode 7 RECONNECT: the client should reconnect and RESUME."""
        conn = self.connection()
        if conn is None:
            raise RuntimeError("no live gateway connection")
        conn._outbox.put_nowait({"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    async def invalidate_session(self) -> None:
        """Forget the session and send opcode 9 (not resumable): the client re-identifies."""
        conn = self.connection()
        if conn is None or self.session is None:
            raise RuntimeError("no live gateway connection")
        self.sessions.pop(self.session.id, None)
        conn._outbox.put_nowait({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(path=request.path, query=dict(request.query), _ws=ws)
        self.connections.append(conn)
        writer = asyncio.create_task(self._writer(conn))
        self._tasks.add(writer)
        writer.add_done_callback(self._tasks.discard)
        self._changed()
        try:
            if conn.query.get("v") != str(API_VERSION):
                await ws.close(code=4012, message=b"Invalid API version")
                return ws
            if conn.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Error while decoding payload")
                return ws
            if conn.compress == "zlib-stream":
                conn._compressor = zlib.compressobj()
            # Other compressions (zstd-stream) are answered uncompressed: discord.py reads
            # text frames whatever it asked for, and this Python may lack zstd.
            hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake"]}
            conn._outbox.put_nowait({"op": OP_HELLO, "d": hello, "s": None, "t": None})
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload")
                    break
                conn.received.append(payload)
                await self._on_op(conn, payload)
                self._changed()
        finally:
            conn.closed = True
            conn.close_code = ws.close_code
            conn._outbox.put_nowait(None)
            self._changed()
        return ws

    async def _writer(self, conn: GatewayConnection) -> None:
        ws = conn._ws
        assert ws is not None
        while True:
            payload = await conn._outbox.get()
            if payload is None or ws.closed:
                return
            text = json.dumps(payload, separators=(",", ":"))
            try:
                if conn._compressor is not None:
                    data = conn._compressor.compress(text.encode())
                    data += conn._compressor.flush(zlib.Z_SYNC_FLUSH)
                    await ws.send_bytes(data)
                else:
                    await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            conn.sent.append(payload)

    async def _on_op(self, conn: GatewayConnection, payload: JSON) -> None:
        ws = conn._ws
        assert ws is not None
        op = payload.get("op")
        data = payload.get("d")
        if op == OP_HEARTBEAT:
            conn.heartbeats += 1
            conn._outbox.put_nowait({"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY:
            if conn.session is not None:
                await ws.close(code=4005, message=b"Already authenticated")
                return
            if not isinstance(data, dict) or data.get("token") != self.token:
                await ws.close(code=4004, message=b"Authentication failed")
                return
            intents = int(data.get("intents", 0))
            if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
                await ws.close(code=4014, message=b"Disallowed intent(s)")
                return
            session = GatewaySession(secrets.token_hex(16), intents, data)
            self._attach(conn, session)
            conn.identified = True
            self._dispatch("READY", self._ready(session, data))
            for guild in self.guilds.values():
                self._dispatch("GUILD_CREATE", self._guild_create(guild))
        elif op == OP_RESUME:
            if not isinstance(data, dict) or data.get("token") != self.token:
                await ws.close(code=4004, message=b"Authentication failed")
                return
            found = self.sessions.get(str(data.get("session_id")))
            if found is None:
                invalid = {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None}
                conn._outbox.put_nowait(invalid)
                return
            seq = int(data.get("seq") or 0)
            old = found.connection
            # Attach and replay without awaiting in between, so that nothing dispatched
            # meanwhile can overtake the replayed events.
            self._attach(conn, found)
            conn.resumed = True
            for event in found.events:
                if event["s"] > seq:
                    conn._outbox.put_nowait(event)
            self._dispatch("RESUMED", {"_trace": ["fake"]})
            if old is not None and old is not conn and old._ws is not None and not old.closed:
                await old._ws.close(code=4000)
        elif op in (OP_PRESENCE_UPDATE, OP_VOICE_STATE_UPDATE, OP_REQUEST_GUILD_MEMBERS):
            if conn.session is None:
                await ws.close(code=4003, message=b"Not authenticated")
                return
            if op == OP_REQUEST_GUILD_MEMBERS and isinstance(data, dict):
                chunked = self.guilds.get(int(data.get("guild_id", 0)))
                if chunked is not None:
                    chunk: JSON = {
                        "guild_id": str(chunked.id),
                        "members": [self._member(chunked, self.bot_user, None)],
                        "chunk_index": 0,
                        "chunk_count": 1,
                        "not_found": [],
                    }
                    if "nonce" in data:
                        chunk["nonce"] = data["nonce"]
                    self._dispatch("GUILD_MEMBERS_CHUNK", chunk)
        else:
            await ws.close(code=4001, message=b"Unknown opcode")

    def _attach(self, conn: GatewayConnection, session: GatewaySession) -> None:
        self.sessions[session.id] = session
        self.session = session
        session.connection = conn
        conn.session = session

    def _emit_message(self, event: str, message: StoredMessage) -> None:
        """MESSAGE_CREATE/UPDATE as Discord sends them: per intents, never for ephemerals."""
        session = self.session
        if session is None or message.ephemeral:
            return
        channel = self.channels.get(message.channel_id)
        if channel is None:
            return
        needed = INTENT_DIRECT_MESSAGES if channel.is_dm else INTENT_GUILD_MESSAGES
        if not session.intents & needed:
            return
        data = json.loads(json.dumps(message.data))
        mentioned = any(str(m.get("id")) == str(self.bot_user.id) for m in data["mentions"])
        own = message.author_id == self.bot_user.id
        if not (session.intents & INTENT_MESSAGE_CONTENT or channel.is_dm or own or mentioned):
            data.update(content="", embeds=[], attachments=[], components=[])
        self._dispatch(event, data)

    # -- REST -----------------------------------------------------------------------------

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        attachment = self.files.get(int(request.match_info["file_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        self.downloads.append(attachment.id)
        return web.Response(
            body=attachment.data, content_type=attachment.content_type or "application/octet-stream"
        )

    async def _api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        query = dict(request.query)
        body: Any = None
        files: list[UploadedFile] = []
        call = Call("other", request.method, path, query, None, [], 500, None)
        headers: dict[str, str] = {}
        try:
            body, files = await self._read_body(request)
            call.body, call.files = body, files
            kind = _kind_of(request.method, path.strip("/").split("/"))
            fault = next((f for f in self.faults if f.matches(kind, files)), None)
            if fault is not None:
                fault.hits += 1
                call.kind = kind
                self._note_interaction(call, path)
                status, response, headers = fault.reply()
            else:
                status, response = await self._route(request, call, path, body, files)
        except _Reply as reply:
            status, response = reply.status, reply.body
        except Exception as exc:
            # A bug in the fake: answer 4xx so discord.py fails fast instead of retrying
            # a 5xx, and keep the error for the test to report.
            self.internal_errors.append(exc)
            status, response = 400, {"message": f"fake discord bug: {exc!r}", "code": 0}
        call.status, call.response = status, response
        self.requests.append(call)
        lists = {
            "callback": self.callbacks,
            "followup": self.followups,
            "edit": self.edits,
            "delete": self.deletes,
            "fetch": self.fetches,
            "channel_message": self.channel_messages,
            "command_sync": self.command_syncs,
        }
        if call.kind in lists:
            lists[call.kind].append(call)
        if call.ok:
            self.uploads.extend(files)
        else:
            self.rejected.append(call)
        self._changed()
        if status == 204:
            return web.Response(status=204)
        answer = _json_response(response, status)
        answer.headers.update(headers)
        return answer

    def _note_interaction(self, call: Call, path: str) -> None:
        """Which interaction a refused call was for, so handles list it too."""
        parts = path.strip("/").split("/")
        if parts[0] == "interactions" and len(parts) >= 2 and parts[1].isdigit():
            call.interaction_id = int(parts[1])
        elif parts[0] == "webhooks" and len(parts) >= 3:
            for handle in self.interactions.values():
                if handle.token == parts[2]:
                    call.interaction_id = handle.id

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            files: list[UploadedFile] = []
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                raw = await part.read(decode=True)
                if part.name == "payload_json":
                    payload = json.loads(raw)
                elif part.name is not None and part.filename is not None:
                    content_type = part.headers.get("Content-Type")
                    files.append(UploadedFile(part.name, part.filename, content_type, bytes(raw)))
            return payload, files
        raw = await request.read()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError as exc:
            raise _error(400, 50109, "The request body contains invalid JSON.") from exc

    def _require_bot_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise _error(401, 0, "401: Unauthorized")

    async def _route(
        self, request: web.Request, call: Call, path: str, body: Any, files: list[UploadedFile]
    ) -> tuple[int, Any]:
        method = request.method
        parts = path.strip("/").split("/")

        if parts[0] == "interactions" and len(parts) == 4 and parts[3] == "callback":
            call.kind = "callback"
            if method != "POST":
                raise _error(405, 0, "405: Method Not Allowed")
            return self._callback(call, int(parts[1]), parts[2], body or {}, files)

        if parts[0] == "webhooks" and len(parts) >= 3:
            return self._webhook(call, method, parts, body, files)

        self._require_bot_auth(request)
        if path in ("/gateway", "/gateway/bot") and method == "GET":
            data: JSON = {"url": self.gateway_url}
            if path == "/gateway/bot":
                data["shards"] = 1
                data["session_start_limit"] = {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                }
            return 200, data
        if path == "/users/@me" and method == "GET":
            return 200, self.bot_user.payload() | {"verified": True, "mfa_enabled": False}
        if path in ("/oauth2/applications/@me", "/applications/@me") and method == "GET":
            return 200, self._application()
        if path == "/users/@me/channels" and method == "POST":
            user = self.users.get(int((body or {}).get("recipient_id", 0)))
            if user is None:
                raise _error(400, 50033, "Invalid Recipient(s)")
            return 200, self.dm_channel(user).payload()
        if parts[0] == "applications" and parts[-1] == "commands":
            return self._commands(call, method, parts, body)
        if parts[0] == "channels" and len(parts) >= 2:
            return self._channel_route(call, method, parts, body, files)
        raise _error(404, 0, "404: Not Found")

    def _application(self) -> JSON:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": self.owner.payload(),
            "team": None,
            "bot": self.bot_user.payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": len(self.guilds),
            "integration_types_config": {"0": {}},
        }

    # -- application commands ---------------------------------------------------------------

    def _commands(self, call: Call, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        if parts[1] != str(self.application_id):
            raise _error(403, 50001, "Missing Access")
        guild: FakeGuild | None = None
        if len(parts) == 5 and parts[2] == "guilds":
            guild = self.guilds.get(int(parts[3]))
            if guild is None:
                raise _error(403, 50001, "Missing Access")
        elif len(parts) != 3:
            raise _error(404, 0, "404: Not Found")
        current = self.guild_commands.get(guild.id, []) if guild else self.global_commands
        if method == "GET":
            call.kind = "fetch"
            return 200, current
        if method != "PUT":
            raise _error(405, 0, "405: Method Not Allowed")
        call.kind = "command_sync"
        if not isinstance(body, list):
            raise _invalid_form({"_": "Must be an array."})
        problems: dict[str, str] = {}
        for index, command in enumerate(body):
            problems.update(_command_problems(command, str(index)))
        keys = [(c.get("type", 1), c.get("name")) for c in body if isinstance(c, dict)]
        if len(keys) != len(set(keys)):
            problems["_"] = "Application command names must be unique per type."
        if problems:
            raise _invalid_form(problems)
        previous = {(c.get("type", 1), c["name"]): c["id"] for c in current}
        stored: list[JSON] = []
        for command in body:
            kind = command.get("type", 1)
            item = json.loads(json.dumps(command))
            item.update(
                id=previous.get((kind, command["name"])) or str(self._ids.next()),
                application_id=str(self.application_id),
                version=str(self._ids.next()),
                type=kind,
                description=command.get("description", ""),
                default_member_permissions=command.get("default_member_permissions"),
                nsfw=bool(command.get("nsfw", False)),
            )
            item.setdefault("contexts", None)
            item.setdefault("integration_types", [0])
            if guild is not None:
                item["guild_id"] = str(guild.id)
            stored.append(item)
        if guild is not None:
            self.guild_commands[guild.id] = stored
        else:
            self.global_commands = stored
        return 200, stored

    # -- interactions and their webhook -----------------------------------------------------

    def _interaction_by_token(self, application: str, token: str) -> InteractionHandle:
        if application == str(self.application_id):
            for handle in self.interactions.values():
                if handle.token == token and handle.acknowledged:
                    return handle
        # Discord knows an interaction's webhook only once the interaction is acknowledged.
        raise _error(404, 10015, "Unknown Webhook")

    def _check_uploads(self, files: list[UploadedFile], limit: int) -> None:
        if sum(f.size for f in files) > limit:
            raise _error(413, 40005, "Request entity too large")
        if len(files) > 10:
            raise _invalid_form({"files": "Must be 10 or fewer in length."})

    def _callback(
        self, call: Call, interaction_id: int, token: str, body: JSON, files: list[UploadedFile]
    ) -> tuple[int, Any]:
        handle = self.interactions.get(interaction_id)
        call.interaction_id = interaction_id
        if handle is None or handle.token != token:
            raise _error(404, 10062, "Unknown interaction")
        call.channel_id = handle.channel.id
        if handle.acknowledged:
            raise _error(400, 40060, "Interaction has already been acknowledged.")
        late = time.monotonic() - handle.created_at
        if self.callback_deadline is not None and late > self.callback_deadline:
            raise _error(404, 10062, "Unknown interaction")
        self._check_uploads(files, handle.attachment_size_limit)
        kind = body.get("type")
        data = body.get("data") or {}
        message: StoredMessage | None = None
        if kind == CHANNEL_MESSAGE_WITH_SOURCE:
            self._check_message(data, files, creating=True)
            message = self._interaction_message(
                handle, data, files, flags=int(data.get("flags") or 0)
            )
            handle.original_message_id = message.id
        elif kind == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._interaction_message(handle, {}, [], flags=flags)
            handle.original_message_id = message.id
        elif kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            if handle.type != MESSAGE_COMPONENT or handle.message is None:
                raise _error(400, 40004, "Interaction callback type is not valid here.")
            message = handle.message
            handle.original_message_id = message.id
            if kind == UPDATE_MESSAGE:
                self._check_message(data, files, creating=False)
                self._edit(message, data, files)
        elif kind not in (8, 9, 10, 12):
            raise _invalid_form({"type": f"Value must be one of the callback types, not {kind}."})
        handle.callback = call
        if message is not None:
            call.message_id = message.id
            if message.id not in handle.message_ids:
                handle.message_ids.append(message.id)
        if request_wants(call.query, "with_response"):
            interaction: JSON = {
                "id": str(handle.id),
                "type": handle.type,
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
                "response_message_ephemeral": bool(message and message.ephemeral),
            }
            resource: JSON = {"type": kind}
            if message is not None:
                interaction["response_message_id"] = str(message.id)
                if kind != DEFERRED_UPDATE_MESSAGE:
                    resource["message"] = message.data
            return 200, {"interaction": interaction, "resource": resource}
        return 204, None

    def _webhook(
        self, call: Call, method: str, parts: list[str], body: Any, files: list[UploadedFile]
    ) -> tuple[int, Any]:
        # /webhooks/{app}/{token}[/messages/{id}]
        handle = self._interaction_by_token(parts[1], parts[2])
        call.interaction_id = handle.id
        call.channel_id = handle.channel.id
        if len(parts) == 3 and method == "POST":
            call.kind = "followup"
            self._check_uploads(files, handle.attachment_size_limit)
            self._check_message(body or {}, files, creating=True)
            original = handle.original
            deferred = handle.callback_type == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            if deferred and original is not None and original.loading and not original.deleted:
                # Discord turns the first follow-up after a defer into the deferred
                # message itself, ephemeral or not as the defer said.
                edit = {k: v for k, v in (body or {}).items() if k != "flags"}
                self._edit(original, edit, files)
                original.data["flags"] = original.flags & ~LOADING
                message = original
            else:
                flags = int((body or {}).get("flags") or 0)
                message = self._interaction_message(handle, body or {}, files, flags=flags)
                message.data["interaction_metadata"]["original_response_message_id"] = str(
                    handle.original_message_id or message.id
                )
                handle.message_ids.append(message.id)
            call.message_id = message.id
            if request_wants(call.query, "wait"):
                return 200, message.data
            return 204, None
        if len(parts) == 5 and parts[3] == "messages":
            if parts[4] == "@original":
                message_id = handle.original_message_id
            else:
                message_id = int(parts[4]) if parts[4].isdigit() else None
                if message_id not in handle.message_ids:
                    message_id = None
            stored = self.messages.get(message_id) if message_id is not None else None
            if stored is None or stored.deleted:
                raise _error(404, 10008, "Unknown Message")
            call.message_id = stored.id
            if method == "GET":
                call.kind = "fetch"
                return 200, stored.data
            if method == "PATCH":
                call.kind = "edit"
                self._check_uploads(files, handle.attachment_size_limit)
                self._check_message(body or {}, files, creating=False)
                self._edit(stored, body or {}, files)
                if stored.loading:
                    stored.data["flags"] = stored.flags & ~LOADING
                return 200, stored.data
            if method == "DELETE":
                call.kind = "delete"
                self._delete(stored)
                return 204, None
        raise _error(405, 0, "405: Method Not Allowed")

    # -- channels --------------------------------------------------------------------------

    def _channel_route(
        self, call: Call, method: str, parts: list[str], body: Any, files: list[UploadedFile]
    ) -> tuple[int, Any]:
        channel = self.channels.get(int(parts[1])) if parts[1].isdigit() else None
        if channel is None:
            raise _error(404, 10003, "Unknown Channel")
        call.channel_id = channel.id
        permissions = channel.effective_bot_permissions()
        if len(parts) == 2 and method == "GET":
            call.kind = "fetch"
            return 200, channel.payload()
        if len(parts) == 3 and parts[2] == "messages" and method == "POST":
            call.kind = "channel_message"
            body = body or {}
            if not channel.is_dm:
                send = SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
                needed = VIEW_CHANNEL | send
                needed |= ATTACH_FILES if files else 0
                needed |= EMBED_LINKS if body.get("embeds") else 0
                if permissions & needed != needed:
                    raise _error(403, 50013, "Missing Permissions")
            self._check_uploads(files, self.upload_limit)
            self._check_message(body, files, creating=True)
            message = self._new_message(channel, self.bot_user)
            self._apply(message, body, files)
            reference = body.get("message_reference")
            if isinstance(reference, dict):
                message.data["message_reference"] = reference
                message.data["type"] = 19
            self.messages[message.id] = message
            self._emit_message("MESSAGE_CREATE", message)
            call.message_id = message.id
            return 200, message.data
        if len(parts) == 4 and parts[2] == "messages":
            stored = self.messages.get(int(parts[3])) if parts[3].isdigit() else None
            if stored is None or stored.deleted or stored.channel_id != channel.id:
                raise _error(404, 10008, "Unknown Message")
            call.message_id = stored.id
            if method == "GET":
                call.kind = "fetch"
                return 200, stored.data
            if method == "PATCH":
                call.kind = "edit"
                if stored.author_id != self.bot_user.id:
                    raise _error(403, 50005, "Cannot edit a message authored by another user")
                self._check_uploads(files, self.upload_limit)
                self._check_message(body or {}, files, creating=False)
                self._edit(stored, body or {}, files)
                return 200, stored.data
            if method == "DELETE":
                call.kind = "delete"
                if stored.author_id != self.bot_user.id and not permissions & MANAGE_MESSAGES:
                    raise _error(403, 50013, "Missing Permissions")
                self._delete(stored)
                return 204, None
        raise _error(404, 0, "404: Not Found")

    # -- messages --------------------------------------------------------------------------

    def _new_message(self, channel: FakeChannel, author: FakeUser) -> StoredMessage:
        data: JSON = {
            "id": str(self._ids.next()),
            "channel_id": str(channel.id),
            "author": author.payload(),
            "content": "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        if channel.guild is not None:
            data["guild_id"] = str(channel.guild.id)
        return StoredMessage(data, [])

    def _interaction_message(
        self, handle: InteractionHandle, body: JSON, files: list[UploadedFile], *, flags: int
    ) -> StoredMessage:
        message = self._new_message(handle.channel, self.bot_user)
        message.interaction_id = handle.id
        command_type = (handle.payload.get("data") or {}).get("type", 1)
        if handle.type == APPLICATION_COMMAND:
            message.data["type"] = 20 if command_type == 1 else 23
        message.data["webhook_id"] = str(self.application_id)
        message.data["application_id"] = str(self.application_id)
        metadata: JSON = {
            "id": str(handle.id),
            "type": handle.type,
            "user": handle.user.payload(),
            "authorizing_integration_owners": handle.payload["authorizing_integration_owners"],
        }
        if handle.message is not None:
            metadata["interacted_message_id"] = str(handle.message.id)
        data = handle.payload.get("data") or {}
        if handle.type == APPLICATION_COMMAND and "target_id" in data:
            metadata["target_message_id"] = data["target_id"]
        message.data["interaction_metadata"] = metadata
        self._apply(message, body, files)
        # Only these flags can be set when creating; LOADING is Discord's own.
        allowed = EPHEMERAL | (1 << 2) | (1 << 12) | (1 << 15) | LOADING
        message.data["flags"] = int(flags) & allowed
        self.messages[message.id] = message
        self._emit_message("MESSAGE_CREATE", message)
        return message

    def _check_message(self, body: JSON, files: list[UploadedFile], *, creating: bool) -> None:
        problems: dict[str, str] = {}
        content = body.get("content")
        if content is not None and len(str(content)) > 2000:
            problems["content"] = "Must be 2000 or fewer in length."
        problems.update(_embed_problems(body.get("embeds") or []))
        if len(body.get("components") or []) > 5 and not int(body.get("flags") or 0) & (1 << 15):
            problems["components"] = "Must be 5 or fewer in length."
        if problems:
            raise _invalid_form(problems)
        if creating and not (
            content or body.get("embeds") or files or body.get("components") or body.get("poll")
        ):
            raise _error(400, 50006, "Cannot send an empty message")

    def _apply(self, message: StoredMessage, body: JSON, files: list[UploadedFile]) -> None:
        """Set the fields a create or edit body carries; Discord keeps the ones it omits."""
        for key in ("content", "embeds", "components", "poll"):
            if key in body:
                value = body[key]
                if value is None:
                    value = "" if key == "content" else []
                message.data[key] = value
        by_index = {index: f for index, f in enumerate(files)}
        if "attachments" in body and body["attachments"] is not None:
            existing = {a.id: a for a in message.attachments}
            kept: list[FakeAttachment] = []
            used: set[int] = set()
            for entry in body["attachments"]:
                ident = int(entry["id"])
                if ident in existing:
                    kept.append(existing[ident])
                elif ident in by_index:
                    upload = by_index[ident]
                    used.add(ident)
                    name = entry.get("filename") or upload.filename
                    kept.append(self._host_file(upload.data, name, None, entry.get("description")))
            # Files sent without an attachments entry are still attached, as on Discord.
            for index, upload in by_index.items():
                if index not in used:
                    kept.append(self._host_file(upload.data, upload.filename, None, None))
            message.attachments = kept
        else:
            for upload in files:
                message.attachments.append(
                    self._host_file(upload.data, upload.filename, None, None)
                )
        message.data["attachments"] = [a.payload() for a in message.attachments]

    def _edit(self, message: StoredMessage, body: JSON, files: list[UploadedFile]) -> None:
        message.history.append(json.loads(json.dumps(message.data)))
        self._apply(message, body, files)
        if "flags" in body and body["flags"] is not None:
            # Edits may only toggle SUPPRESS_EMBEDS.
            suppress = 1 << 2
            message.data["flags"] = (message.flags & ~suppress) | (int(body["flags"]) & suppress)
        message.data["edited_timestamp"] = _now_iso()
        self._emit_message("MESSAGE_UPDATE", message)

    def _delete(self, message: StoredMessage) -> None:
        message.deleted = True
        session = self.session
        channel = self.channels.get(message.channel_id)
        if session is None or channel is None or message.ephemeral:
            return
        needed = INTENT_DIRECT_MESSAGES if channel.is_dm else INTENT_GUILD_MESSAGES
        if session.intents & needed:
            data: JSON = {"id": str(message.id), "channel_id": str(channel.id)}
            if channel.guild is not None:
                data["guild_id"] = str(channel.guild.id)
            self._dispatch("MESSAGE_DELETE", data)


def request_wants(query: Mapping[str, str], name: str) -> bool:
    """Discord's boolean query parameters accept true/1 in any case."""
    return query.get(name, "").lower() in ("1", "true")
