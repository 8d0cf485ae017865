"""A Discord request's jobs, without Discord: limits, pending records that
survive a bot restart, submitting, progress, results, cancelling."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import socket
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bot.limits import LimitHit, Limits
from erogaki_common import keys
from erogaki_common.errors import ErogakiError, JobFailed
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode, new_job_id
from erogaki_common.redis_io import CONNECTION_ERRORS
from erogaki_common.status import Progress, fleet_status, job_progress
from erogaki_common.submit import Submitter

log = logging.getLogger(__name__)

_CANCEL_TROUBLE: tuple[type[BaseException], ...] = (ResponseError, *CONNECTION_ERRORS)

# Heartbeat of a bot process; records of a process without one are adopted.
ALIVE_TTL = 15
ALIVE_INTERVAL = 5.0

# KEYS: pending hash. ARGV: field, new owner, alive prefix. Takes a record
# whose owner process is dead; returns it (false: ours already, or alive).
# This is the one way a request changes owner, so the old owner, if it was
# only stalled, sees someone else's name in the record and stays silent.
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


# KEYS: pending hash, the request's done mark. ARGV: field, owner. 1 when the
# record names the owner, 0 when another owner has or had it, -1 when it is
# gone without a bot having finished it (Redis lost it: restarted without
# persistence, flushed).
_OWNS = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  return -1
end
if cjson.decode(raw).owner == ARGV[2] then return 1 end
return 0
"""

# KEYS: pending hash. ARGV: field, owner, record. Writes the record unless
# another bot took the request over.
_SAVE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cjson.decode(raw).owner ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS: pending hash, the request's done mark. ARGV: field, owner, the mark's
# TTL. Deletes the record if it is ours, and leaves a mark saying a bot
# finished it, so a previous owner that was stalled tells this apart from a
# record Redis lost.
_FORGET = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cjson.decode(raw).owner == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
end
return 1
"""


def done_key(request_key: str) -> str:
    return keys.BOT_DONE_PREFIX + request_key


class Ownership(enum.Enum):
    OURS = 1
    OTHER = 0  # another bot process took the request over (and may have finished it)
    MISSING = -1  # its record is gone and no bot finished it: Redis lost it


def host_key(host: str) -> str:
    """Set while a bot process runs on ``host`` (what ``erogaki health bot`` reads).
    Owners have a slash in their name, so this never names an owner's heartbeat."""
    return f"{keys.BOT_ALIVE_PREFIX}host:{host}"


# KEYS: our heartbeat, our host's key. ARGV: owner. The host key goes only if
# it names us: another bot on this host keeps it.
_RETIRE = """
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
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
    # The interaction token, valid for 15 minutes from `created`; never in a repr or log.
    token: str = field(repr=False)
    created: float
    job_ids: list[str] = field(default_factory=list)
    owner: str = ""
    # The progress message, which the result replaces (0: none sent yet).
    message_id: int = 0
    # The server (0: DMs), for its limits and audit line after a restart too.
    guild_id: int = 0
    # Whether the results go as spoilers: the server's policy and the requester's choice.
    spoiler: bool = True
    # Fitting notes etc. are not kept; only what a restarted bot needs.

    # Snowflakes travel as strings: the adoption script re-encodes the record
    # with Lua's cjson, which would round 64-bit integers to 14 digits.
    _SNOWFLAKES = ("user_id", "channel_id", "application_id", "message_id", "guild_id")

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
            data[name] = int(data.get(name, 0))
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
        self._owns = redis.register_script(_OWNS)
        self._save = redis.register_script(_SAVE)
        self._forget = redis.register_script(_FORGET)
        self._retire = redis.register_script(_RETIRE)
        # Pending records we could not read, by field and content: each is logged once.
        self._unreadable: set[tuple[bytes | str, bytes | str]] = set()

    async def missing_workers(self, mode: Mode) -> list[Queue]:
        """The queues this mode needs that no live worker consumes."""
        needed = [mode.queue]
        if mode in (Mode.BAR, Mode.AUTO):
            needed.append(Queue.DEEPCREAMPY_BAR)
        report = await fleet_status(self.redis)
        return [q for q in needed if not report.workers_for(q)]

    async def predates_auto(self) -> bool:
        """Whether hent-AI workers are live but none takes ``auto`` (an older fleet)."""
        report = await fleet_status(self.redis)
        return not report.workers_for(Queue.HENTAI_AUTO) and bool(
            report.workers_for(Queue.HENTAI_BAR) or report.workers_for(Queue.HENTAI_MOSAIC)
        )

    async def reserve(self, request: Request, count: int, server_limit: int | None = None) -> None:
        """Take limit slots: one request, ``count`` images (raises LimitRefused);
        ``server_limit``: the server's own limit per member. Repeating it for
        the same request takes nothing more."""
        if len(request.job_ids) != count:
            request.job_ids = [new_job_id() for _ in range(count)]
        request.owner = self.owner
        hit = await self.limits.reserve(
            request.user_id, request.key, request.job_ids, self.timeout + 60,
            guild_id=request.guild_id, server_limit=server_limit,
        )  # fmt: skip
        if hit is not None:
            raise LimitRefused(hit)

    async def release(self, request: Request) -> None:
        try:
            await self.limits.release(
                request.user_id, request.key, request.job_ids, guild_id=request.guild_id
            )
        except CONNECTION_ERRORS:
            log.warning("could not release request %s; its slots expire by themselves", request.key)

    async def submit(self, request: Request, images: list[bytes]) -> None:
        """Record the request (so a restarted bot delivers it), then queue each image.

        ``images`` is emptied as they are queued: the inputs (up to 4 x 25 MiB)
        are not kept for the minutes the jobs may take. If any image can't be
        queued, those already queued are withdrawn before the error is raised.
        """
        await self.save(request)
        await self.redis.expire(keys.BOT_PENDING, keys.JOB_TTL)
        info = {"user": str(request.user_id), "request": request.key}
        try:
            for job_id in request.job_ids:
                image = images.pop(0)
                await self.submitter.submit(
                    image, request.mode, timeout=self.timeout, job_id=job_id, info=info
                )
                del image
        except BaseException:
            images.clear()
            await asyncio.shield(self.withdraw(request))
            raise

    async def save(self, request: Request) -> bool:
        """Write the record, unless another bot took the request over."""
        saved = await self._save(
            keys=[keys.BOT_PENDING], args=[request.key, self.owner, request.to_json()]
        )
        return bool(saved)

    async def owns(self, request: Request) -> bool:
        """Whether the request is still ours (or nobody's: its record was lost)."""
        return await self.ownership(request) is not Ownership.OTHER

    async def ownership(self, request: Request) -> Ownership:
        """Whose the request is. When Redis can't say, ours: a rare second
        delivery beats a lost one."""
        try:
            answer = await self._owns(
                keys=[keys.BOT_PENDING, done_key(request.key)], args=[request.key, self.owner]
            )
        except CONNECTION_ERRORS:
            return Ownership.OURS
        return Ownership(int(answer))

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
        """The Cancel button: withdraw the jobs, unless another bot has the request now."""
        if await self.owns(request):
            for job_id in request.job_ids:
                await self.submitter.cancel(job_id)

    async def withdraw(self, request: Request) -> None:
        """Take back every job of the request that nobody awaits: out of the
        queue, its keys deleted, and no longer waited for here."""
        waiting = set(self.submitter.pending_ids())
        for job_id in request.job_ids:
            if job_id not in waiting:
                continue
            try:
                await self.submitter.cancel(job_id)
            except _CANCEL_TROUBLE:
                # A full Redis refuses the cancel flag (a write); deleting still works.
                with contextlib.suppress(*CONNECTION_ERRORS):
                    async with self.redis.pipeline(transaction=False) as pipe:
                        pipe.lrem(request.mode.queue, 0, job_id)
                        pipe.lrem(Queue.DEEPCREAMPY_BAR, 0, job_id)
                        pipe.delete(*keys.job_keys(job_id))
                        await pipe.execute()
            self.submitter.forget(job_id)

    async def finish(self, request: Request) -> None:
        """Done with the request: withdraw jobs nobody awaited, release its limit
        slots, delete its record (if it is still ours)."""
        await self.withdraw(request)
        await self.release(request)
        try:
            await self._forget(
                keys=[keys.BOT_PENDING, done_key(request.key)],
                args=[request.key, self.owner, keys.BOT_DONE_TTL],
            )
        except CONNECTION_ERRORS:
            log.warning("could not delete the record of request %s", request.key)

    async def hand_back(self, request: Request, results: list[bytes | ErogakiError]) -> None:
        """We fetched results of a request another bot took over: put them back
        where its submitter finds them (the keyevent wakes it)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, result in zip(request.job_ids, results, strict=True):
                if isinstance(result, bytes):
                    pipe.set(keys.result_key(job_id), result, ex=keys.JOB_TTL)
                elif isinstance(result, JobFailed):
                    pipe.set(keys.error_key(job_id), result.info.to_json(), ex=keys.JOB_TTL)
            await pipe.execute()

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
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.BOT_ALIVE_PREFIX + self.owner, socket.gethostname(), ex=ALIVE_TTL)
            # A container's health check reads this one key, never the keyspace.
            pipe.set(host_key(socket.gethostname()), self.owner, ex=ALIVE_TTL)
            await pipe.execute()

    async def retire(self) -> None:
        """A clean stop: without our heartbeat the next bot adopts our requests at once."""
        await self._retire(
            keys=[keys.BOT_ALIVE_PREFIX + self.owner, host_key(socket.gethostname())],
            args=[self.owner],
        )

    async def orphans(self) -> list[Request]:
        """Requests whose bot died; they become ours and their jobs are adopted."""
        adopted = []
        for field_name, current in (await self.redis.hgetall(keys.BOT_PENDING)).items():
            # Parsed before the owner changes: a record we can't read (another
            # version's, or damaged) stays as it is, for a bot that can, instead of
            # becoming ours and then stopping this loop on every beat.
            if _readable(current, field_name, self._unreadable) is None:
                continue
            raw = await self._adopt(
                keys=[keys.BOT_PENDING],
                args=[field_name, self.owner, keys.BOT_ALIVE_PREFIX],
            )
            if not raw:
                continue
            request = _readable(raw, field_name, self._unreadable)
            if request is None:
                continue
            remaining = request.created + self.timeout - time.time()
            for job_id in request.job_ids:
                self.submitter.adopt(job_id, request.mode, timeout=max(remaining, 1.0))
            adopted.append(request)
        return adopted


def _readable(
    raw: bytes | str, field_name: bytes | str, seen: set[tuple[bytes | str, bytes | str]]
) -> Request | None:
    """The record, or None (logged once per field and content) when it can't be read."""
    try:
        request = Request.from_json(raw)
        name = field_name.decode() if isinstance(field_name, bytes) else field_name
        if request.key != name:
            raise ValueError(f"the record names request {request.key!r}")
        return request
    except Exception:
        if (field_name, raw) not in seen:
            seen.add((field_name, raw))
            log.exception(
                "pending record %s can't be read by this bot version; left for one that can",
                field_name,
            )
        return None
