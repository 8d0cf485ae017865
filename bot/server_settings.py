"""Each Discord server's own settings for the bot, chosen by its moderators.

A server's settings live in one Redis hash, ``erogaki:guild:<id>``, holding
only what its moderators changed: a server that never changed anything has
no key, and every missing field means "the default" (some defaults follow
the host's environment, so they change with it). Settings are configuration,
not job state: the one kind of key erogaki keeps without a TTL. ``erogaki
settings export|import`` backs them up.

Every bot process reads them through a short in-process cache. A write
publishes the server's id on ``erogaki:guild-changed``, and every process
drops its copy on hearing it, so a change made through one bot process
applies in all of them at once. While a process is not subscribed (Redis
restarting) it reads Redis on every use instead of trusting its cache.

This module imports neither discord.py nor the workers: the command line
uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from erogaki_common import keys
from erogaki_common.protocol import Mode
from erogaki_common.redis_io import REDIS_ERRORS, Outage, backoff

log = logging.getLogger(__name__)

# A cached copy is used for at most this long, even when no change is heard:
# it bounds the harm of a missed message while the subscription looked fine.
CACHE_SECONDS = 60.0
# Waiting for a message this long at a time lets the loop notice a cancel.
_LISTEN_STEP = 1.0
# The most channels a server may list (a hash field stays small).
MAX_CHANNELS = 100


class Where(StrEnum):
    """Where the commands work."""

    NSFW = "nsfw"  # any age-restricted channel
    LISTED = "listed"  # only the listed channels (age-restricted) and their threads


class SpoilerPolicy(StrEnum):
    ON = "on"  # spoiler unless the requester asks for none
    OFF = "off"  # no spoiler unless the requester asks for one
    ALWAYS = "always"  # spoiler whatever the requester asks


class Feature(StrEnum):
    """What a moderator can switch off: one per kind of request."""

    BAR = "bar"
    MOSAIC = "mosaic"
    AUTO = "auto"
    MASKED = "pre-masked"

    @classmethod
    def of(cls, mode: Mode) -> Feature:
        return _FEATURE_OF[mode]


_FEATURE_OF = {
    Mode.BAR: Feature.BAR,
    Mode.MOSAIC: Feature.MOSAIC,
    Mode.AUTO: Feature.AUTO,
    Mode.BAR_MASKED: Feature.MASKED,
}
ALL_FEATURES = frozenset(Feature)


class InvalidSettings(ValueError):
    """A value a moderator or a backup file gave that the bot can't use."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """One server's settings; the defaults are what a server that changed
    nothing gets. ``None`` means "the host's value" (its environment)."""

    where: Where = Where.NSFW
    channels: frozenset[int] = frozenset()
    # None: on or off by default as the host's EROGAKI_SPOILER says.
    spoiler: SpoilerPolicy | None = None
    # Requests one member may have in flight in this server; None: the host's
    # EROGAKI_USER_JOBS, which also caps any number set here.
    user_requests: int | None = None
    features: frozenset[Feature] = ALL_FEATURES
    # A role a member must have to use the commands; None: anyone.
    role_id: int | None = None

    # --- what the bot does with them ---------------------------------------------

    def spoiler_policy(self, host_spoiler: bool) -> SpoilerPolicy:
        if self.spoiler is not None:
            return self.spoiler
        return SpoilerPolicy.ON if host_spoiler else SpoilerPolicy.OFF

    def use_spoiler(self, host_spoiler: bool, asked: bool | None) -> bool:
        """Whether results are sent as spoilers, given what the requester asked (None: nothing)."""
        policy = self.spoiler_policy(host_spoiler)
        if policy is SpoilerPolicy.ALWAYS:
            return True
        if asked is not None:
            return asked
        return policy is SpoilerPolicy.ON

    def user_limit(self, host_limit: int) -> int:
        if self.user_requests is None:
            return host_limit
        return min(self.user_requests, host_limit)

    def allows_channel(self, channel_id: int, parent_id: int | None) -> bool:
        """Whether the listed channels allow this one (always true with Where.NSFW)."""
        if self.where is Where.NSFW:
            return True
        return channel_id in self.channels or (parent_id is not None and parent_id in self.channels)

    # --- the Redis hash -----------------------------------------------------------

    def to_fields(self) -> dict[str, str]:
        """The hash: only what differs from the defaults."""
        out: dict[str, str] = {}
        if self.where is not Where.NSFW:
            out["where"] = self.where.value
        if self.channels:
            out["channels"] = ",".join(str(c) for c in sorted(self.channels))
        if self.spoiler is not None:
            out["spoiler"] = self.spoiler.value
        if self.user_requests is not None:
            out["user_requests"] = str(self.user_requests)
        if self.features != ALL_FEATURES:
            # Empty is a real value (everything off), kept as "-" since a hash
            # field's absence already means "the default".
            out["modes"] = ",".join(f.value for f in Feature if f in self.features) or "-"
        if self.role_id is not None:
            out["role"] = str(self.role_id)
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> ServerSettings:
        """The settings a hash holds. Raises InvalidSettings for values that
        don't parse (the cache logs and uses the defaults for those fields)."""
        data = {_text(k): _text(v) for k, v in raw.items()}
        unknown = set(data) - set(_FIELD_NAMES)
        if unknown:
            raise InvalidSettings(f"unknown setting(s): {', '.join(sorted(unknown))}")
        try:
            return cls(
                where=Where(data.get("where", Where.NSFW.value)),
                channels=_ids(data.get("channels", "")),
                spoiler=SpoilerPolicy(data["spoiler"]) if "spoiler" in data else None,
                user_requests=_positive(data["user_requests"]) if "user_requests" in data else None,
                features=(_features(data["modes"]) if "modes" in data else ALL_FEATURES),
                role_id=_snowflake(data["role"]) if "role" in data else None,
            )
        except ValueError as exc:
            raise InvalidSettings(str(exc)) from None

    @classmethod
    def from_fields_leniently(cls, raw: Mapping[Any, Any]) -> tuple[ServerSettings, list[str]]:
        """The settings a hash holds, field by field: an unknown field (a newer
        version's) is ignored and a value that doesn't parse is that field's
        default, so one bad field never drops the others (the required role,
        the channel list, the modes switched off). Also what was wrong."""
        data = {_text(k): _text(v) for k, v in raw.items()}
        unknown = sorted(set(data) - set(_FIELD_NAMES))
        problems = [f"unknown setting {name!r} ignored" for name in unknown]
        good: dict[str, str] = {}
        for name in _FIELD_NAMES:
            if name not in data:
                continue
            try:
                cls.from_fields({name: data[name]})
            except InvalidSettings as exc:
                problems.append(f"{name}: {exc}; its default is used")
                continue
            good[name] = data[name]
        return cls.from_fields(good), problems

    # --- export and import -----------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """What an export holds: the changed fields, snowflakes as strings."""
        out: dict[str, Any] = {}
        for name, value in self.to_fields().items():
            if name == "channels":
                out[name] = value.split(",")
            elif name == "modes":
                out[name] = [] if value == "-" else value.split(",")
            elif name == "user_requests":
                out[name] = int(value)
            else:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: object) -> ServerSettings:
        if not isinstance(data, dict):
            raise InvalidSettings("a server's settings must be a JSON object")
        raw: dict[str, str] = {}
        for name, value in data.items():
            if name in ("channels", "modes"):
                if not isinstance(value, list):
                    raise InvalidSettings(f"{name} must be a list")
                raw[name] = ",".join(str(v) for v in value) or ("-" if name == "modes" else "")
            else:
                raw[str(name)] = str(value)
        return cls.from_fields({k: v for k, v in raw.items() if v})

    def describe(self, host_spoiler: bool, host_user_jobs: int) -> dict[str, str]:
        """Each setting as a moderator reads it, in the order /erogaki settings shows them."""
        if self.where is Where.NSFW:
            where = "any age-restricted channel"
        elif self.channels:
            where = "only " + ", ".join(f"<#{c}>" for c in sorted(self.channels))
            where += " (and their threads)"
        else:
            where = "only listed channels (none listed yet: nowhere)"
        spoiler = {
            SpoilerPolicy.ON: "on by default",
            SpoilerPolicy.OFF: "off by default",
            SpoilerPolicy.ALWAYS: "always",
        }[self.spoiler_policy(host_spoiler)]
        if self.spoiler is None:
            spoiler += " (the host's default)"
        limit = str(self.user_limit(host_user_jobs))
        if self.user_requests is None:
            limit += " (the host's limit)"
        elif self.user_requests > host_user_jobs:
            limit += f" (set to {self.user_requests}; the host allows {host_user_jobs})"
        features = ", ".join(f.value for f in Feature if f in self.features) or "none"
        role = "none" if self.role_id is None else f"<@&{self.role_id}>"
        return {
            "Where": where,
            "Spoiler": spoiler,
            "Requests per member": limit,
            "Modes": features,
            "Required role": role,
        }


_FIELD_NAMES = ("where", "channels", "spoiler", "user_requests", "modes", "role")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _snowflake(text: str) -> int:
    value = int(text)
    if not 0 < value < 2**64:
        raise ValueError(f"{text!r} is not a Discord id")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"user_requests must be at least 1, got {value}")
    return value


def _ids(text: str) -> frozenset[int]:
    ids = frozenset(_snowflake(t) for t in text.split(",") if t.strip())
    if len(ids) > MAX_CHANNELS:
        raise ValueError(f"at most {MAX_CHANNELS} channels can be listed")
    return ids


def _features(text: str) -> frozenset[Feature]:
    if text == "-":
        return frozenset()
    return frozenset(Feature(t.strip()) for t in text.split(",") if t.strip())


def settings_key(guild_id: int) -> str:
    return f"{keys.GUILD_PREFIX}{guild_id}"


@dataclass
class _Cached:
    settings: ServerSettings
    until: float


@dataclass
class ServerSettingsStore:
    """Read (cached) and write servers' settings; one per bot process."""

    redis: Redis
    cache_seconds: float = CACHE_SECONDS
    _cache: dict[int, _Cached] = field(default_factory=dict)
    # Bumped on every change heard: a read that started before a change must
    # not put what it read into the cache.
    _generation: int = 0
    # Set while the subscription is confirmed; only then is the cache used.
    _live: asyncio.Event = field(default_factory=asyncio.Event)
    _listener: asyncio.Task[None] | None = None
    # What was wrong with each server's hash, each said once.
    _reported: set[tuple[int, tuple[str, ...]]] = field(default_factory=set)

    async def start(self) -> None:
        """Start listening for changes. Returns at once; Redis may be down."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="erogaki-guild-settings")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self._live.clear()

    async def wait_live(self, timeout: float) -> bool:
        """Whether the change subscription is up within ``timeout`` seconds (tests, start-up)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._live.wait(), timeout)
        return self._live.is_set()

    async def get(self, guild_id: int) -> ServerSettings:
        """The server's settings (the defaults when it has none). Raises
        Redis' errors when the settings are not cached and Redis can't answer."""
        now = time.monotonic()
        cached = self._cache.get(guild_id)
        if cached is not None and self._live.is_set() and cached.until > now:
            return cached.settings
        generation = self._generation
        settings = await self.read(guild_id)
        if self._live.is_set() and generation == self._generation:
            self._cache[guild_id] = _Cached(settings, now + self.cache_seconds)
        return settings

    async def read(self, guild_id: int) -> ServerSettings:
        """The server's settings straight from Redis."""
        return self._lenient(guild_id, await self.redis.hgetall(settings_key(guild_id)))

    def _lenient(self, guild_id: int, raw: Mapping[Any, Any]) -> ServerSettings:
        # Written by hand or by a newer version: only what can't be read falls
        # back to its default, and the moderator sees the result.
        settings, problems = ServerSettings.from_fields_leniently(raw)
        if problems:
            said = (guild_id, tuple(problems))
            if said not in self._reported:
                self._reported.add(said)
                log.warning(
                    "server %s has settings the bot can't read: %s", guild_id, "; ".join(problems)
                )
        return settings

    async def update(self, guild_id: int, **changes: Any) -> tuple[ServerSettings, ServerSettings]:
        """Set some settings of a server; (old, new)."""
        return await self.edit(guild_id, lambda _current: changes)

    async def edit(
        self, guild_id: int, changes_for: Callable[[ServerSettings], Mapping[str, Any]]
    ) -> tuple[ServerSettings, ServerSettings]:
        """Change a server's settings by ``changes_for(current)``; (old, new).

        Read and write are one optimistic transaction: if another moderator's
        change lands in between, ``changes_for`` runs again on the new settings,
        so adding a channel while someone else removes another keeps both.
        Only the changed fields are written. ``changes_for`` may raise to refuse.
        """
        key = settings_key(guild_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    old = self._lenient(guild_id, await pipe.hgetall(key))
                    new = replace(old, **changes_for(old))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._queue_write(pipe, key, guild_id, old, new)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        self._forget(guild_id)
        return old, new

    async def put(self, guild_id: int, settings: ServerSettings) -> None:
        """Make a server's settings exactly ``settings`` (import)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            self._queue_write(pipe, settings_key(guild_id), guild_id, None, settings)
            await pipe.execute()
        self._forget(guild_id)

    @staticmethod
    def _queue_write(
        pipe: Pipeline, key: str, guild_id: int, old: ServerSettings | None, new: ServerSettings
    ) -> None:
        before = old.to_fields() if old is not None else None
        after = new.to_fields()
        if before is None:
            pipe.delete(key)
            gone: list[str] = []
        else:
            gone = [name for name in before if name not in after]
        changed = {k: v for k, v in after.items() if before is None or before.get(k) != v}
        if gone:
            pipe.hdel(key, *gone)
        for name, value in changed.items():
            pipe.hset(key, name, value)
        pipe.publish(keys.GUILD_CHANGED_CHANNEL, str(guild_id))

    async def all(self) -> dict[int, ServerSettings]:
        """Every server that has settings (export). A field that can't be read is left
        out (its default applies, as in the bot), with a warning."""
        out: dict[int, ServerSettings] = {}
        async for raw_key in self.redis.scan_iter(match=f"{keys.GUILD_PREFIX}*", count=500):
            suffix = _text(raw_key).removeprefix(keys.GUILD_PREFIX)
            if not suffix.isdigit():
                continue
            raw = await self.redis.hgetall(raw_key)
            if not raw:
                continue
            # One bad field must not lose the server's other settings from the backup.
            settings, problems = ServerSettings.from_fields_leniently(raw)
            if problems:
                log.warning(
                    "server %s: exported without what can't be read: %s",
                    suffix, "; ".join(problems),
                )  # fmt: skip
            out[int(suffix)] = settings
        return out

    def _forget(self, guild_id: int | None) -> None:
        self._generation += 1
        if guild_id is None:
            self._cache.clear()
        else:
            self._cache.pop(guild_id, None)

    async def _listen(self) -> None:
        delays = backoff(0.1, 5.0)
        outage = Outage("listening for settings changes", log)
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.GUILD_CHANGED_CHANNEL)
                # subscribe() only sends; the confirmation is the first message.
                while True:
                    message = await pubsub.get_message(timeout=_LISTEN_STEP)
                    if message is not None and message["type"] == "subscribe":
                        break
                # Changes made while we weren't listening went unheard.
                self._forget(None)
                self._live.set()
                outage.ok()
                delays = backoff(0.1, 5.0)
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_LISTEN_STEP
                    )
                    if message is not None and message["type"] == "message":
                        self._heard(message["data"])
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                outage.failed(exc)
            finally:
                self._live.clear()
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await anext(delays)

    def _heard(self, data: object) -> None:
        text = _text(data)
        self._forget(int(text) if text.isdigit() else None)


def export_json(settings: Mapping[int, ServerSettings]) -> str:
    """The backup file: {"version": 1, "servers": {"<id>": {...changed settings}}}."""
    servers = {str(gid): s.to_json() for gid, s in sorted(settings.items())}
    return json.dumps({"version": 1, "servers": servers}, indent=2, sort_keys=True) + "\n"


def parse_export(text: str) -> dict[int, ServerSettings]:
    """The servers a backup file holds; InvalidSettings says what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidSettings(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise InvalidSettings('not an erogaki settings export (no "version": 1)')
    servers = data.get("servers")
    if not isinstance(servers, dict):
        raise InvalidSettings('"servers" must be an object')
    out: dict[int, ServerSettings] = {}
    for gid, value in servers.items():
        try:
            out[_snowflake(str(gid))] = ServerSettings.from_json(value)
        except (ValueError, InvalidSettings) as exc:
            raise InvalidSettings(f"server {gid}: {exc}") from None
    return out
