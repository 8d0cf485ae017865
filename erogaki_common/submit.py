"""The submit side of protocol v1: queue an image, await its result.

One ``Submitter`` per process. It holds one keyevent subscription
(``__keyevent@<db>__:set``) that serves every pending job, so finishing a job
never unsubscribes anything. The flow per job:

1. the job is registered locally, then the subscription is confirmed ready;
2. one MULTI: ``SET censored-images:<id> EX``, the job hash, ``RPUSH`` queue,
   so a Redis that refuses the image (full, read-only) queues nothing;
3. a ``set`` keyevent for ``decensored-images:<id>`` or ``errors:<id>``
   triggers a ``GET`` of it, retried until it answers, and only then a
   ``DEL`` of every key of the job: a lost reply can never lose an answer.

Notifications are fire-and-forget, so after every (re)subscribe all pending
jobs are re-checked with MGET. Where keyevents cannot be enabled (``CONFIG``
refused by a managed Redis) the submitter says so once and polls the result
keys instead. Every wait ends at the job's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ReadOnlyError, ResponseError

from erogaki_common import keys
from erogaki_common.errors import (
    DeadlineExceeded,
    ErrorInfo,
    JobCancelled,
    JobFailed,
    JobLost,
    RedisUnavailable,
)
from erogaki_common.protocol import Mode, Stage, new_job_id
from erogaki_common.redis_io import (
    CONNECTION_ERRORS,
    REDIS_ERRORS,
    Outage,
    backoff,
    connect,
    describe,
    safe_url,
)
from erogaki_common.settings import redis_db_from_url

log = logging.getLogger(__name__)

# An idle subscription is PINGed this often so a dead peer is noticed.
IDLE_PING_SECONDS = 15.0
# How long a cancelled job's hash stays, so a worker still on it drops its result.
CANCELLED_TTL = 300
_RECHECK_CHUNK = 256
# How long deleting an answered job's keys is retried; they expire anyway.
COLLECT_RETRY_SECONDS = 30.0


# KEYS: job hash, queue. ARGV: id, ttl, then the job hash's field/value pairs.
# The image itself is SET beside it: Lua would copy its bytes twice.
_QUEUE_JOB = """
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


# KEYS: an answer's key, then the job's other keys. The others go only if the
# answer is there: a set event can outlive its write (a Redis that syncs its
# append-only file once a second, restarted), and the job is then done again
# from its input. No image passes through it: the GET beside it reads the answer.
_DROP_THE_REST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('DEL', unpack(KEYS, 2))
"""


def missing_flags(flags: str) -> str:
    """The flags to add to ``notify-keyspace-events`` for string keyevents."""
    missing = "" if "E" in flags else "E"
    if "$" not in flags and "A" not in flags:  # A is an alias that includes $
        missing += "$"
    return missing


@dataclass(eq=False)
class _Pending:
    job_id: str
    mode: Mode
    deadline: float  # event loop time
    future: asyncio.Future[tuple[str, bytes]]
    # True once the submit MULTI ran: only then may a missing input mean "lost".
    submitted: bool = False
    # True while a GET+DEL for this job is in flight; avoids fetching twice.
    fetching: bool = False


@dataclass
class _Tasks:
    """Background tasks, kept referenced so they are not garbage collected."""

    running: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.running.add(task)
        task.add_done_callback(self.running.discard)


class Submitter:
    """Submits jobs and delivers their results; use as an async context manager."""

    def __init__(
        self,
        redis_url: str,
        *,
        poll_interval: float = 0.1,
        connect_timeout: float = 10.0,
    ) -> None:
        self._url = redis_url
        self._db = redis_db_from_url(redis_url)
        self._redis = connect(redis_url, max_connections=64)
        self._queue_job = self._redis.register_script(_QUEUE_JOB)
        self._channel = keys.keyevent_channel(self._db).encode()
        self._poll_interval = poll_interval
        self._connect_timeout = connect_timeout
        self._pending: dict[str, _Pending] = {}
        self._ready = asyncio.Event()
        self._polling = False
        self._wake_poller = asyncio.Event()
        self._tasks = _Tasks()
        self._listener: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        # Set when keyevents cannot be enabled; shown once.
        self.fallback_reason: str | None = None

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start listening. Returns at once; Redis may still be down."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="erogaki-keyevents")

    async def close(self) -> None:
        for task in (self._listener, self._poller, *self._tasks.running):
            if task is not None:
                task.cancel()
        for task in (self._listener, self._poller, *self._tasks.running):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for p in self._pending.values():
            if not p.future.done():
                p.future.cancel()
        await self._redis.aclose()

    async def __aenter__(self) -> Submitter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def redis(self) -> Redis:
        """The command client, for callers that read status next to submitting."""
        return self._redis

    @property
    def polling(self) -> bool:
        return self._polling

    # --- public API ----------------------------------------------------------

    async def decensor(self, image: bytes, mode: Mode, *, timeout: float) -> bytes:
        """Submit ``image`` and return the decensored PNG, or raise a typed error."""
        job_id = await self.submit(image, mode, timeout=timeout)
        return await self.result(job_id)

    async def submit(
        self,
        image: bytes,
        mode: Mode,
        *,
        timeout: float,
        job_id: str | None = None,
        info: Mapping[str, str] | None = None,
    ) -> str:
        """Queue ``image``; returns the job id. ``timeout`` bounds the whole job.

        ``info`` adds fields to the job hash (the bot records who asked).
        """
        loop = asyncio.get_running_loop()
        job_id = job_id or new_job_id()
        pending = _Pending(job_id, mode, loop.time() + timeout, loop.create_future())
        self._pending[job_id] = pending
        try:
            await self._wait_ready(pending.deadline)
            async with asyncio.timeout_at(pending.deadline):
                await self._enqueue(pending, image, info or {})
        except TimeoutError:
            self._pending.pop(job_id, None)
            raise RedisUnavailable(
                f"Redis at {safe_url(self._url)} did not answer; the job may not be queued."
            ) from None
        except BaseException:
            self._pending.pop(job_id, None)
            raise
        pending.submitted = True
        if self._polling:
            self._wake_poller.set()
        return job_id

    def adopt(self, job_id: str, mode: Mode, *, timeout: float) -> None:
        """Wait for a job another process submitted (a bot restarted after a
        crash picks up its jobs this way); then ``result(job_id)`` as usual."""
        loop = asyncio.get_running_loop()
        pending = _Pending(job_id, mode, loop.time() + timeout, loop.create_future())
        pending.submitted = True
        self._pending[job_id] = pending
        if self._polling:
            self._wake_poller.set()
        elif self._ready.is_set():
            # Its result may have landed while nobody listened.
            self._tasks.spawn(self._recheck_quietly([job_id]))

    async def _recheck_quietly(self, job_ids: list[str]) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self._recheck(job_ids)

    async def result(self, job_id: str) -> bytes:
        """Wait for ``job_id``'s outcome. Every key of the job is gone afterwards."""
        pending = self._pending[job_id]
        try:
            async with asyncio.timeout_at(pending.deadline):
                kind, value = await pending.future
        except TimeoutError:
            stage = await self._abandon(pending)
            raise DeadlineExceeded(_deadline_message(pending, stage)) from None
        finally:
            self._pending.pop(job_id, None)
        if kind == "error":
            raise JobFailed(ErrorInfo.from_json(value))
        return value

    async def cancel(self, job_id: str) -> bool:
        """Withdraw a job: a queued one is removed, a running one is discarded
        when it ends. Returns False when the job already finished."""
        pending = self._pending.get(job_id)
        if pending is None or pending.future.done():
            return False
        await self._abandon(pending)
        if not pending.future.done():
            pending.future.set_exception(JobCancelled(f"Job {job_id} was cancelled."))
        return True

    def pending_ids(self) -> list[str]:
        return list(self._pending)

    def forget(self, job_id: str) -> None:
        """Stop waiting for ``job_id`` without touching Redis: the caller
        withdrew it already, or another process awaits it now."""
        pending = self._pending.pop(job_id, None)
        if pending is None:
            return
        if not pending.future.done():
            pending.future.cancel()
        elif not pending.future.cancelled():
            pending.future.exception()  # seen: no "never retrieved" warning

    # --- submitting ----------------------------------------------------------

    async def _wait_ready(self, deadline: float) -> None:
        if self._ready.is_set():
            return
        remaining = min(deadline - asyncio.get_running_loop().time(), self._connect_timeout)
        try:
            await asyncio.wait_for(self._ready.wait(), max(remaining, 0.0))
        except TimeoutError:
            raise RedisUnavailable(
                f"Redis at {safe_url(self._url)} is unreachable; the job was not queued."
            ) from None

    async def _enqueue(self, pending: _Pending, image: bytes, info: Mapping[str, str]) -> None:
        job_id, queue = pending.job_id, pending.mode.queue
        fields = {
            "submitted": f"{time.time():.3f}",
            "mode": pending.mode.value,
            "stage": Stage.QUEUED.value,
            **info,
        }
        flat = [item for pair in fields.items() for item in pair]
        sent = False
        async for _ in _retries(pending.deadline, self._connect_timeout, self._url):
            try:
                if sent and await self._redis.exists(keys.job_key(job_id)):
                    return  # the transaction ran; only its reply was lost
                sent = True
                # One MULTI: Redis refuses all of it (full, read-only) or runs
                # all of it, so a job is never queued without its image. EVAL,
                # not EVALSHA: a NOSCRIPT at EXEC would come after the SET ran.
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.set(keys.input_key(job_id), image, ex=keys.JOB_TTL)
                    pipe.eval(_QUEUE_JOB, 2, keys.job_key(job_id), queue,
                              job_id, keys.JOB_TTL, *flat)  # fmt: skip
                    await pipe.execute()
                return
            except ResponseError as exc:
                # Full (noeviction), read-only replica, ACLs: said plainly.
                raise RedisUnavailable(f"Redis refused the job: {describe(exc)}") from None
            except CONNECTION_ERRORS:
                continue

    async def _abandon(self, pending: _Pending) -> str | None:
        """Take the job back out of Redis; returns the stage it had reached."""
        job_id = pending.job_id
        try:
            # Nothing here needs memory, so a full Redis (noeviction) still lets the
            # job out. Not in a MULTI: a full Redis refuses to queue any command in
            # one, and the job would stay queued for a worker to do for nobody.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hget(keys.job_key(job_id), "stage")
                pipe.lrem(pending.mode.queue, 0, job_id)
                pipe.lrem(keys.Queue.DEEPCREAMPY_BAR, 0, job_id)
                pipe.delete(keys.input_key(job_id), keys.result_key(job_id), keys.error_key(job_id))
                replies = await pipe.execute()
        except REDIS_ERRORS:
            return None
        with contextlib.suppress(*REDIS_ERRORS):
            # A worker holding the job sees the flag and drops its result.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.job_key(job_id), "cancelled", "1")
                pipe.expire(keys.job_key(job_id), CANCELLED_TTL)
                await pipe.execute()
        stage = replies[0]
        return stage.decode() if isinstance(stage, bytes) else None

    # --- receiving -----------------------------------------------------------

    async def _listen(self) -> None:
        """Keep one confirmed subscription, for as long as the submitter lives."""
        delays = backoff()
        outage = Outage("keyevent subscription", log)
        while True:
            conn = None
            try:
                await self._redis.script_load(_QUEUE_JOB)
                events_ok = await self._ensure_notifications()
                conn = cast(AbstractConnection, self._redis.connection_pool.make_connection())  # type: ignore[no-untyped-call]
                await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_command("SUBSCRIBE", self._channel)
                reply = await _read(conn, self._connect_timeout)
                if not (isinstance(reply, list) and reply[0] == b"subscribe"):
                    raise ConnectionError(f"unexpected reply to SUBSCRIBE: {reply!r:.80}")
                if not events_ok and not await self._probe(conn):
                    await self._fall_back_to_polling()
                    return
                self._ready.set()
                delays = backoff()
                outage.ok()
                # Whatever was answered while we were not subscribed.
                await self._recheck(self._waiting_ids())
                await self._read_events(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Any failure at all (unreachable, full, read-only, a bug):
                # the subscription is what delivers every result, so it must
                # come back, and the fleet must not be told it is gone forever.
                outage.failed(exc)
                self._ready.clear()
            finally:
                if conn is not None:
                    await conn.disconnect()
            await anext(delays)

    async def _ensure_notifications(self) -> bool:
        """Add E and $ to notify-keyspace-events (never removing a flag).

        Returns True when the flags are known to be on, False when CONFIG is
        refused and only a probe can tell.
        """
        try:
            current = await self._redis.config_get("notify-keyspace-events")
            flags = str(next(iter(current.values()), "") if current else "")
            if isinstance(flags, bytes):
                flags = flags.decode()
            add = missing_flags(flags)
            if add:
                await self._redis.config_set("notify-keyspace-events", flags + add)
                log.info("enabled keyevent notifications: notify-keyspace-events=%s", flags + add)
            return True
        except ResponseError as exc:
            log.info("CONFIG refused (%s); probing for keyevents instead", exc)
            return False

    async def _probe(self, conn: AbstractConnection) -> bool:
        """Whether a SET we make reaches the subscription within a second."""
        probe = keys.PROBE_PREFIX + uuid.uuid4().hex
        await self._redis.set(probe, b"1", ex=keys.PROBE_TTL)
        deadline = asyncio.get_running_loop().time() + 1.0
        try:
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                msg = await _read(conn, left)
                if isinstance(msg, list) and msg[0] == b"message":
                    if msg[2] == probe.encode():
                        return True
                    self._on_key(msg[2])
            return False
        finally:
            await self._redis.delete(probe)

    async def _fall_back_to_polling(self) -> None:
        self.fallback_reason = (
            "Redis refuses CONFIG and does not publish keyevents for SET, so results are "
            "polled. Set notify-keyspace-events to include 'E$' in the server's "
            "configuration (parameter group) to get them without polling."
        )
        log.warning(self.fallback_reason)
        self._polling = True
        self._poller = asyncio.create_task(self._poll(), name="erogaki-poll")
        self._ready.set()

    async def _read_events(self, conn: AbstractConnection) -> None:
        awaiting_pong = False
        while True:
            msg = await _read(conn, IDLE_PING_SECONDS)
            if msg is None:
                if awaiting_pong:
                    raise ConnectionError("no answer to PING on the subscription")
                await conn.send_command("PING")
                awaiting_pong = True
                continue
            awaiting_pong = False
            if isinstance(msg, list) and msg[0] == b"message":
                self._on_key(msg[2])

    def _on_key(self, key: bytes) -> None:
        if key.startswith(b"decensored-images:"):
            kind, job_id = "result", key[18:]
        elif key.startswith(b"errors:"):
            kind, job_id = "error", key[7:]
        else:
            return
        pending = self._pending.get(job_id.decode(errors="replace"))
        if pending is not None and not pending.fetching and not pending.future.done():
            pending.fetching = True
            self._tasks.spawn(self._fetch(pending, kind))

    async def _fetch(self, pending: _Pending, kind: str) -> None:
        """GET the answer, retried until it comes; only then DEL the answer's key.

        The job's other keys go in the same round trip, if the answer is
        there. The answer's own key goes only once its bytes are here: a DEL
        whose reply was lost would have taken the answer with it.
        """
        job_id = pending.job_id
        key = keys.result_key(job_id) if kind == "result" else keys.error_key(job_id)
        others = [k for k in keys.job_keys(job_id) if k != key]
        loop = asyncio.get_running_loop()
        delays = backoff(cap=1.0)
        while True:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    # The GET first: its large reply at the head of the read
                    # costs the submitter less CPU (bench/dispatch.py at
                    # 8 MiB: about 15 ms per job with the script first, 10 ms so).
                    pipe.get(key)
                    pipe.eval(_DROP_THE_REST, 1 + len(others), key, *others)
                    # A full or read-only Redis refuses the script but still
                    # answers the GET: take the answer; _collect's plain DELs
                    # (allowed when full) or the TTLs do the cleanup.
                    replies = await pipe.execute(raise_on_error=False)
                if isinstance(replies[0], Exception):
                    raise replies[0]
                value = cast(bytes | None, replies[0])
                break
            except REDIS_ERRORS:
                if pending.future.done() or loop.time() >= pending.deadline:
                    pending.fetching = False
                    return
                await anext(delays)
        if value is None:
            # Gone already (cancelled meanwhile): the next event or re-check decides.
            pending.fetching = False
            return
        await self._collect(pending)
        if not pending.future.done():
            pending.future.set_result((kind, value))

    async def _collect(self, pending: _Pending) -> None:
        """Delete every key of an answered job, and any duplicate queue entry of it."""
        job_id = pending.job_id
        give_up = asyncio.get_running_loop().time() + COLLECT_RETRY_SECONDS
        delays = backoff(cap=1.0)
        while True:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.delete(*keys.job_keys(job_id))
                    pipe.lrem(pending.mode.queue, 0, job_id)
                    pipe.lrem(keys.Queue.DEEPCREAMPY_BAR, 0, job_id)
                    replies = await pipe.execute(raise_on_error=False)
                refused = [r for r in replies if isinstance(r, Exception)]
                # A replica (READONLY) refuses every delete until someone fails it
                # back, a Redis that cannot persist (MISCONF) until a save succeeds,
                # often hours later: the answer must not wait for either. The TTLs
                # clean up. (The replies unannotated: a pipeline's raised error
                # carries the command, and the job id, in front of Redis's words.)
                if not refused or any(_writes_stopped(r) for r in refused):
                    return
                raise refused[0]
            except REDIS_ERRORS:
                if asyncio.get_running_loop().time() >= give_up:
                    return  # every key has a TTL; they go by themselves
                await anext(delays)

    def _waiting_ids(self) -> list[str]:
        return [i for i, p in self._pending.items() if not p.fetching and not p.future.done()]

    async def _recheck(self, job_ids: Iterable[str]) -> None:
        """Deliver what finished while no notification could reach us."""
        # Only jobs queued before the MGET runs may count as lost when their
        # input is missing: a submit racing this check has not SET it yet.
        ids = [i for i in job_ids if i in self._pending]
        submitted = {i for i in ids if self._pending[i].submitted}
        for start in range(0, len(ids), _RECHECK_CHUNK):
            chunk = ids[start : start + _RECHECK_CHUNK]
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.mget(
                        keys.result_key(job_id), keys.error_key(job_id), keys.input_key(job_id)
                    )
                rows = await pipe.execute()
            for job_id, (result, error, image) in zip(chunk, rows, strict=True):
                pending = self._pending.get(job_id)
                if pending is None or pending.fetching or pending.future.done():
                    continue
                if result is not None or error is not None:
                    pending.fetching = True
                    self._tasks.spawn(self._fetch(pending, "result" if result else "error"))
                elif image is None and job_id in submitted:
                    pending.future.set_exception(
                        JobLost(
                            "Redis lost the job (restarted without persistence, flushed, or "
                            "its keys expired); please submit it again."
                        )
                    )

    async def _poll(self) -> None:
        """The fallback when keyevents are unavailable: re-check pending jobs."""
        while True:
            waiting = [i for i in self._waiting_ids() if self._pending[i].submitted]
            if not waiting:
                self._wake_poller.clear()
                await self._wake_poller.wait()
                continue
            with contextlib.suppress(*REDIS_ERRORS):
                await self._recheck(waiting)
            await asyncio.sleep(self._poll_interval)


def _writes_stopped(error: Exception) -> bool:
    """Whether Redis refuses writes until someone acts: a read-only replica, or
    ``stop-writes-on-bgsave-error`` after a failed save."""
    return isinstance(error, ReadOnlyError) or str(error).startswith("MISCONF")


async def _read(conn: AbstractConnection, timeout: float) -> Any:
    """One reply or pub/sub message; None when ``timeout`` passes first."""
    return await conn.read_response(timeout=timeout, disconnect_on_error=False, push_request=True)


async def _retries(deadline: float, connect_timeout: float, url: str) -> AsyncIterator[None]:
    """Yield once per attempt until the deadline; then raise RedisUnavailable."""
    loop = asyncio.get_running_loop()
    give_up = min(deadline, loop.time() + connect_timeout)
    yield None
    async for _ in backoff():
        if loop.time() >= give_up:
            raise RedisUnavailable(
                f"Redis at {safe_url(url)} stopped answering; the job was not queued."
            )
        yield None


def _deadline_message(pending: _Pending, stage: str | None) -> str:
    if stage in (None, Stage.QUEUED.value):
        return (
            f"No worker took the {pending.mode.value} job in time: it was still queued "
            f"on {pending.mode.queue}. Check that a worker is running (`erogaki status`)."
        )
    return (
        f"The {pending.mode.value} job did not finish in time (last stage: {stage}). "
        "The workers may be overloaded or down; try again later."
    )
