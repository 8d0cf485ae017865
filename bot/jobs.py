"""A Discord request's jobs, without Discord: limits, pending records that
survive a bot restart, submitting, progress, results, cancelling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field

from redis.asyncio import Redis

from bot.limits import LimitHit, Limits
from erogaki_common import keys
from erogaki_common.errors import ErogakiError
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode, new_job_id
from erogaki_common.redis_io import CONNECTION_ERRORS
from erogaki_common.status import Progress, fleet_status, job_progress
from erogaki_common.submit import Submitter

log = logging.getLogger(__name__)

# Heartbeat of a bot process; records of a process without one are adopted.
ALIVE_TTL = 15
ALIVE_INTERVAL = 5.0

# KEYS: pending hash. ARGV: field, new owner, alive prefix. Takes a record
# whose owner process is dead; returns it (false: ours already, or alive).
_ADOPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local record = cjson.decode(raw)
if record.owner == ARGV[2] or redis.call('EXISTS', ARGV[3] .. record.owner) == 1 then
  return false
end
record.owner = ARGV[2]
raw = cjson.encode(record)
redis.call('HSET', KEYS[1], ARGV[1], raw)
return raw
"""


class LimitRefused(ErogakiError):
    def __init__(self, hit: LimitHit) -> None:
        super().__init__(f"{hit.which.value} limit: {hit.current}/{hit.limit}")
        self.hit = hit


@dataclass
class Request:
    """One command invocation: its images' jobs and where to deliver them."""

    key: str  # the interaction id
    user_id: int
    channel_id: int
    mode: Mode
    application_id: int
    token: str  # the interaction token, valid for 15 minutes from `created`
    created: float
    job_ids: list[str] = field(default_factory=list)
    owner: str = ""
    # Fitting notes etc. are not kept; only what a restarted bot needs.

    # Snowflakes travel as strings: the adoption script re-encodes the record
    # with Lua's cjson, which would round 64-bit integers to 14 digits.
    _SNOWFLAKES = ("user_id", "channel_id", "application_id")

    def to_json(self) -> str:
        data = asdict(self)
        for name in self._SNOWFLAKES:
            data[name] = str(data[name])
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Request:
        data = json.loads(raw)
        data["mode"] = Mode(data["mode"])
        for name in cls._SNOWFLAKES:
            data[name] = int(data[name])
        return cls(**data)


class JobService:
    def __init__(
        self, submitter: Submitter, redis: Redis, limits: Limits, *, instance: str, timeout: float
    ) -> None:
        self.submitter = submitter
        self.redis = redis
        self.limits = limits
        # One owner name per process: a bot restarted under the same instance
        # name is a new owner, so it adopts what its previous life left.
        self.owner = f"{instance}/{uuid.uuid4().hex[:8]}"
        self.timeout = timeout
        self._adopt = redis.register_script(_ADOPT)

    async def missing_workers(self, mode: Mode) -> list[Queue]:
        """The queues this mode needs that no live worker consumes."""
        needed = [mode.queue]
        if mode in (Mode.BAR, Mode.AUTO):
            needed.append(Queue.DEEPCREAMPY_BAR)
        report = await fleet_status(self.redis)
        return [q for q in needed if not report.workers_for(q)]

    async def reserve(self, request: Request, count: int) -> None:
        """Take limit slots for ``count`` images (raises LimitRefused)."""
        request.job_ids = [new_job_id() for _ in range(count)]
        request.owner = self.owner
        hit = await self.limits.reserve(request.user_id, request.job_ids, self.timeout + 60)
        if hit is not None:
            raise LimitRefused(hit)

    async def submit(self, request: Request, images: list[bytes]) -> None:
        """Record the request (so a restarted bot delivers it), then queue each image."""
        await self.redis.hset(keys.BOT_PENDING, request.key, request.to_json())
        await self.redis.expire(keys.BOT_PENDING, keys.JOB_TTL)
        info = {"user": str(request.user_id), "request": request.key}
        for job_id, image in zip(request.job_ids, images, strict=True):
            await self.submitter.submit(
                image, request.mode, timeout=self.timeout, job_id=job_id, info=info
            )

    async def results(self, request: Request) -> list[bytes | ErogakiError]:
        outcomes = await asyncio.gather(
            *(self.submitter.result(j) for j in request.job_ids), return_exceptions=True
        )
        results: list[bytes | ErogakiError] = []
        for outcome in outcomes:
            if isinstance(outcome, bytes | ErogakiError):
                results.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        await self._record_wait(time.time() - request.created)
        return results

    async def progress(self, request: Request) -> Progress | None:
        """The least advanced unfinished job's progress; None when unknown."""
        worst: Progress | None = None
        for job_id in request.job_ids:
            if job_id not in self.submitter.pending_ids():
                continue
            p = await job_progress(self.redis, job_id, request.mode)
            if worst is None or (p.position or 0) > (worst.position or 0):
                worst = p
        return worst

    async def cancel(self, request: Request) -> None:
        for job_id in request.job_ids:
            await self.submitter.cancel(job_id)

    async def finish(self, request: Request) -> None:
        """Forget the request: release its limit slots and its record."""
        try:
            await self.limits.release(request.user_id, request.job_ids)
            await self.redis.hdel(keys.BOT_PENDING, request.key)
        except CONNECTION_ERRORS:
            log.warning("could not release request %s; its slots expire by themselves", request.key)

    async def _record_wait(self, seconds: float) -> None:
        with contextlib.suppress(*CONNECTION_ERRORS):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.lpush(keys.BOT_RECENT_WAITS, f"{seconds:.2f}")
                pipe.ltrim(keys.BOT_RECENT_WAITS, 0, keys.RECENT_WAITS_KEPT - 1)
                pipe.expire(keys.BOT_RECENT_WAITS, keys.JOB_TTL)
                await pipe.execute()

    async def median_wait(self) -> float | None:
        waits = [float(w) for w in await self.redis.lrange(keys.BOT_RECENT_WAITS, 0, -1)]
        return statistics.median(waits) if waits else None

    # --- restarts --------------------------------------------------------------

    async def beat(self) -> None:
        # The host name lets a container's health check find its own bot.
        await self.redis.set(keys.BOT_ALIVE_PREFIX + self.owner, socket.gethostname(), ex=ALIVE_TTL)

    async def orphans(self) -> list[Request]:
        """Requests whose bot died; they become ours and their jobs are adopted."""
        adopted = []
        for field_name in await self.redis.hkeys(keys.BOT_PENDING):
            raw = await self._adopt(
                keys=[keys.BOT_PENDING],
                args=[field_name, self.owner, keys.BOT_ALIVE_PREFIX],
            )
            if not raw:
                continue
            request = Request.from_json(raw)
            remaining = request.created + self.timeout - time.time()
            for job_id in request.job_ids:
                self.submitter.adopt(job_id, request.mode, timeout=max(remaining, 1.0))
            adopted.append(request)
        return adopted
