"""The audit trail: one log line per request, and the last hour's figures
per server that ``/erogaki status`` shows.

A line says who asked where, for what, and how it ended:

    audit request=1234 server=42 channel=43 user=44 mode=bar images=2 outcome=done
    wait=12.3s total=14.0s

Only ids, counts, enum values and seconds can go in (the fields are typed so),
so a line can never carry an image, a file name or an interaction token.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from erogaki_common import keys
from erogaki_common.protocol import Mode
from erogaki_common.redis_io import REDIS_ERRORS

log = logging.getLogger(__name__)

HOUR = 3600
# Refusal reasons are the bot's own words, never the user's: this keeps them so.
_REASON = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class Outcome(StrEnum):
    DONE = "done"  # every image came back
    PARTIAL = "partial"  # some images came back, some failed
    FAILED = "failed"  # every image failed (a worker's error, the deadline, ...)
    CANCELLED = "cancelled"
    REFUSED = "refused"  # never queued: a setting, a limit, no worker, Redis down
    HANDED_OVER = "handed-over"  # this bot stopped; the next one delivers it
    ERROR = "error"  # the bot itself failed (Discord refused the upload, ...)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    request: int
    guild_id: int  # 0 in DMs
    channel_id: int
    user_id: int
    mode: Mode
    images: int
    outcome: Outcome
    # Why a request was refused: a setting or limit's short name.
    reason: str | None = None
    # Seconds from the command to its results, and to the answer shown.
    wait: float | None = None
    total: float | None = None

    def line(self) -> str:
        parts = [
            f"request={self.request}",
            f"server={self.guild_id}",
            f"channel={self.channel_id}",
            f"user={self.user_id}",
            f"mode={self.mode.value}",
            f"images={self.images}",
            f"outcome={self.outcome.value}",
        ]
        if self.reason is not None:
            if not _REASON.match(self.reason):
                raise ValueError(f"not a refusal reason: {self.reason!r}")
            parts.append(f"reason={self.reason}")
        if self.wait is not None:
            parts.append(f"wait={self.wait:.1f}s")
        if self.total is not None:
            parts.append(f"total={self.total:.1f}s")
        return "audit " + " ".join(parts)


async def record(redis: Redis | None, entry: AuditRecord) -> None:
    """Log the line, and count the request for /erogaki status (best effort:
    a Redis that can't count it never fails the request)."""
    log.info("%s", entry.line())
    if redis is None or entry.outcome is Outcome.HANDED_OVER:
        # Not an end: the next bot process records how the request ends, and
        # counting both would make it two requests.
        return
    now = time.time()
    member = f"{entry.request}:{entry.outcome.value}:{entry.images}"
    targets = [keys.BOT_SERVED_ALL]
    if entry.guild_id:
        targets.append(f"{keys.BOT_SERVED_PREFIX}{entry.guild_id}")
    with contextlib.suppress(*REDIS_ERRORS):
        async with redis.pipeline(transaction=False) as pipe:
            for key in targets:
                pipe.zadd(key, {member: now})
                pipe.zremrangebyscore(key, "-inf", now - HOUR)
                pipe.expire(key, HOUR)
            await pipe.execute()


@dataclass(frozen=True, slots=True)
class HourFigures:
    """Requests of the last hour: one server's, and everyone's."""

    server_requests: int
    server_images: int
    server_outcomes: Counter[str]
    all_requests: int

    def server_line(self) -> str:
        if not self.server_requests:
            return "no requests"
        text = f"{self.server_requests} request(s), {self.server_images} image(s)"
        details = [
            f"{n} {name}" for name, n in sorted(self.server_outcomes.items()) if name != "done"
        ]
        return text + (f" ({', '.join(details)})" if details else "")


async def last_hour(redis: Redis, guild_id: int | None) -> HourFigures:
    """Raises Redis' connection errors."""
    since = time.time() - HOUR
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(keys.BOT_SERVED_ALL, since, "+inf")
        if guild_id:
            pipe.zrangebyscore(f"{keys.BOT_SERVED_PREFIX}{guild_id}", since, "+inf")
        replies = await pipe.execute()
    raw = replies[1] if guild_id else []
    members = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
    outcomes: Counter[str] = Counter()
    images = 0
    for member in members:
        _, outcome, count = member.rsplit(":", 2)
        outcomes[outcome] += 1
        if outcome != Outcome.REFUSED and count.isdigit():
            images += int(count)
    return HourFigures(len(members), images, outcomes, int(replies[0]))


__all__ = ["AuditRecord", "HourFigures", "Outcome", "last_hour", "record"]
