"""The worker side of protocol v1: one loop primitive both workers plug into.

Claiming is Redis' reliable-queue pattern. A job id moves atomically from the
head of its queue into this instance's processing list (``BLMOVE``), so a
worker killed at any moment still has the id on record. Each instance keeps a
heartbeat key with a TTL; any live worker re-queues (at the head, oldest
first) what a dead instance held. Each claim counts an attempt in the job
hash; a job that keeps killing workers ends as ``JobFailedRepeatedly``.

Finishing is a check-and-set transaction (``WATCH``): the answer is written,
or the job forwarded, only while this instance still holds the claim, nobody
answered the job yet and its submitter neither cancelled nor collected it.
A worker that stalled past its heartbeat and was reaped therefore writes
nothing when it wakes up, and finishing twice writes once.

A worker also reconciles its processing lists with what it is working on:
an id that sits there with no job behind it (a claim whose reply was lost, a
result it could not store) goes back to the head of its queue.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError, WatchError

from erogaki_common import keys
from erogaki_common.errors import Component, ConfigError, ErrorInfo, ErrorName, ProcessingError
from erogaki_common.keys import Queue
from erogaki_common.protocol import Stage, is_job_id
from erogaki_common.redis_io import (
    CONNECTION_ERRORS,
    REDIS_ERRORS,
    Outage,
    backoff,
    connect,
    describe,
    watch_then_read,
)
from erogaki_common.settings import default_instance

log = logging.getLogger(__name__)

# How long a blocked claim waits before looping; bounds how long a silently
# dead connection can go unnoticed.
BLOCK_SECONDS = 5
# How long an interrupted result write is retried before it is given up; the
# id then stays in the processing list and reconciling hands it back.
STORE_RETRY_SECONDS = 60.0
# An id in our processing list with no job behind it for this long lost its
# claim reply (or its store was given up): it goes back to its queue. Longer
# than any claim reply can take on a live connection.
ORPHAN_SECONDS = 2.0
# How often a starting worker looks whether the heartbeat already under its
# instance name is refreshed (a live twin) or expires (a crashed predecessor).
NAME_POLL_SECONDS = 0.05
# The error for an input that was gone lives briefly: when the input is gone
# because a duplicate entry of an answered job came late, nobody reads it.
NOT_FOUND_TTL = 120


# Workers built in one process without a name each need their own: the
# first is <host>-<pid>, the next ones get -2, -3, ...
_unnamed = itertools.count(1)


def _unnamed_instance() -> str:
    n = next(_unnamed)
    return default_instance() if n == 1 else f"{default_instance()}-{n}"


class InstanceInUse(ConfigError):
    """A live worker of another process already runs under this instance name."""


@dataclass(slots=True)
class Job:
    """A claimed job as the processing function sees it."""

    id: str
    queue: Queue
    data: bytes
    # Seconds per processing step (decode, detect, ...), for the job's log line.
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Done:
    """The final decensored PNG."""

    png: bytes


@dataclass(frozen=True, slots=True)
class Forward:
    """Hand the job on: replace its input with ``data`` and push it to ``queue``."""

    queue: Queue
    data: bytes
    stage: Stage = Stage.WAITING_FOR_INPAINTING


Outcome = Done | Forward
Processor = Callable[[Job], Awaitable[Outcome]]


class JobOutcome(StrEnum):
    DONE = "done"
    FORWARDED = "forwarded"
    FAILED = "failed"
    # Cancelled or collected meanwhile, answered already (a duplicate queue
    # entry), or a malformed queue entry: nothing written.
    DROPPED = "dropped"
    # Our claim was taken while we worked (we stalled past the heartbeat TTL
    # and were reaped): another worker answers; nothing written.
    LOST_CLAIM = "lost-claim"
    # Given back to its queue: shutdown, or Redis failed under the job.
    HANDED_BACK = "handed-back"


@dataclass(slots=True)
class JobReport:
    """What the loop logs and reports per job (never the payload)."""

    id: str
    queue: str
    outcome: JobOutcome
    error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def log_line(self) -> str:
        timings = " ".join(f"{k}_ms={v * 1000:.1f}" for k, v in self.seconds.items())
        error = f" error={self.error}" if self.error else ""
        return f"job id={self.id} queue={self.queue} outcome={self.outcome.value}{error} {timings}"


# KEYS: queue_1..queue_n, processing_1..processing_n. ARGV: the index (0-based)
# of the queue to look at first. Oldest first within a queue; the worker moves
# the start past the queue it last took from, so no queue starves another.
_CLAIM_ANY = """
local n = #KEYS / 2
local start = tonumber(ARGV[1]) or 0
for k = 0, n - 1 do
  local i = (start + k) % n + 1
  local id = redis.call('LMOVE', KEYS[i], KEYS[n + i], 'LEFT', 'RIGHT')
  if id then return {i, id} end
end
return false
"""

# Image bytes never pass through Lua: a script copies its arguments and
# replies, which costs about 1.3 ms per MiB each way. The scripts below only
# do bookkeeping, in the same round trip as a plain SET of the bytes.

# Finishing reads the job's state under WATCH with this read-only script, then
# writes in MULTI only what that state allows; a change to any of the keys in
# between (a reaper, a cancel, a collect) aborts the EXEC and we look again.
# KEYS: processing, input, result, error, job hash. ARGV: id.
_STATE = """
if not redis.call('LPOS', KEYS[1], ARGV[1]) then return 'lost' end
if redis.call('HGET', KEYS[5], 'cancelled') then return 'cancelled' end
if redis.call('EXISTS', KEYS[3], KEYS[4]) > 0 then return 'answered' end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'gone' end
return 'ok'
"""

# Runs in MULTI right after SET of the input with KEEPTTL.
# KEYS: processing, input, job hash, next queue. ARGV: id, ttl, stage, stage channel.
_FORWARD = """
redis.call('LREM', KEYS[1], 1, ARGV[1])
-- A foreign submitter may have set the input without a TTL: every key has one.
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
redis.call('HSET', KEYS[3], 'stage', ARGV[3], 'attempts', 0)
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('EXPIRE', KEYS[4], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[3])
return 1
"""

# Re-queues what a crashed instance held. Each job re-queued this way counts
# an attempt in its job hash; at the limit it is answered with
# JobFailedRepeatedly instead (a poison job). Moves tail-first onto the
# queue's head, so the oldest claim ends up first.
# KEYS: heartbeat, instances, then (processing, queue) pairs.
# ARGV: instance, ttl, 'check' to skip a live instance, 'forget' to
#       unregister it, max attempts ('0': a clean hand-back, not counted),
#       reaping instance, then one component name per pair (for the error JSON).
_REQUEUE = """
if ARGV[3] == 'check' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local moved = 0
for i = 3, #KEYS, 2 do
  local component = ARGV[6 + (i - 1) / 2]
  while true do
    local id = redis.call('RPOP', KEYS[i])
    if not id then break end
    local attempts = 0
    if ARGV[5] ~= '0' then
      local job = 'erogaki:job:' .. id
      attempts = redis.call('HINCRBY', job, 'attempts', 1)
      redis.call('EXPIRE', job, ARGV[2])
    end
    if ARGV[5] ~= '0' and attempts >= tonumber(ARGV[5]) then
      local err = cjson.encode({
        component = component, instance = ARGV[6], name = 'JobFailedRepeatedly',
        description = 'The image stopped a worker ' .. attempts .. ' times and was given up.'})
      redis.call('SET', 'errors:' .. id, err, 'EX', ARGV[2])
    else
      redis.call('LPUSH', KEYS[i + 1], id)
      moved = moved + 1
    end
  end
  redis.call('EXPIRE', KEYS[i + 1], ARGV[2])
end
if ARGV[4] == 'forget' then redis.call('HDEL', KEYS[2], ARGV[1]) end
return moved
"""

# KEYS: processing, queue. ARGV: id, ttl. Shutdown or a dropped connection
# hands a job back: not the job's fault, so no attempt is counted. The LPUSH
# may create the queue anew: every key has a TTL.
_HAND_BACK = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

# The component that answers for each queue in errors written by a reaper.
COMPONENT_OF = {
    Queue.HENTAI_BAR: Component.HENTAI,
    Queue.HENTAI_MOSAIC: Component.HENTAI,
    Queue.HENTAI_AUTO: Component.HENTAI,
    Queue.DEEPCREAMPY_BAR: Component.DEEPCREAMPY,
}


def _component_of(queue: str) -> Component:
    """Who answers for a queue's jobs; hent-AI's queues are all ``hent-ai:`` ones."""
    try:
        return COMPONENT_OF[Queue(queue)]
    except ValueError:
        deepcreampy = queue.startswith(keys.INPUT_PREFIX + "deepcreampy:")
        return Component.DEEPCREAMPY if deepcreampy else Component.HENTAI


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _MaybeExecuted(RedisConnectionError):
    """The connection failed while a finishing ``EXEC`` was on its way: Redis may
    have run it. Carries what the job became if it did."""

    def __init__(self, outcome: JobOutcome, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.outcome = outcome


async def _execute(pipe: Any, outcome: JobOutcome) -> None:
    try:
        await pipe.execute()
    except WatchError as exc:
        # redis-py turns a connection lost under WATCH into a WatchError.
        if isinstance(exc.__context__, CONNECTION_ERRORS):
            raise _MaybeExecuted(outcome, exc.__context__) from exc
        raise
    except CONNECTION_ERRORS as exc:
        raise _MaybeExecuted(outcome, exc) from exc


def _beat_field(raw: bytes, name: str) -> object:
    """One field of a heartbeat's JSON; None if it is missing or unreadable."""
    try:
        beat = json.loads(raw)
    except ValueError:
        return None
    return beat.get(name) if isinstance(beat, dict) else None


def _intended(outcome: Outcome | ErrorInfo) -> JobOutcome:
    if isinstance(outcome, ErrorInfo):
        return JobOutcome.FAILED
    return JobOutcome.FORWARDED if isinstance(outcome, Forward) else JobOutcome.DONE


class Worker:
    """Consume ``queues`` (first listed first) and run ``process`` on each job."""

    def __init__(
        self,
        redis_url: str,
        queues: Sequence[Queue],
        process: Processor,
        *,
        component: Component,
        instance: str | None = None,
        concurrency: int = 1,
        max_attempts: int = 3,
        burst: bool = False,
        grace_seconds: float = 30.0,
        heartbeat_interval: float = keys.HEARTBEAT_INTERVAL,
        heartbeat_ttl: int = keys.HEARTBEAT_TTL,
        on_report: Callable[[JobReport], None] | None = None,
    ) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue")
        self.queues = tuple(queues)
        self.process = process
        self.component = component
        self.instance = instance or _unnamed_instance()
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.burst = burst
        self.grace_seconds = grace_seconds
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_ttl = heartbeat_ttl
        self.on_report = on_report
        self.redis = connect(redis_url)
        # BLMOVE holds its connection while blocked: a client of its own.
        self.blocking = connect(redis_url)
        self.processing = {q: keys.processing_key(self.instance, q) for q in self.queues}
        self.counts = {o.value: 0 for o in JobOutcome}
        self.started = time.time()
        # Tells this process' heartbeats from another's under the same name.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
        self._stop = asyncio.Event()
        # How many of our slots hold each job id: a duplicate queue entry can
        # have two slots on one id, and the list then holds it twice.
        self._in_flight: Counter[str] = Counter()
        self._idle: set[asyncio.Task[Any]] = set()
        # Ids in our processing lists with no job behind them: first seen when.
        self._orphans: dict[tuple[Queue, str], float] = {}
        # Where the next multi-queue claim starts looking (fairness).
        self._next_queue = 0
        self._claim_any = self.redis.register_script(_CLAIM_ANY)
        self._requeue = self.redis.register_script(_REQUEUE)
        self._hand_back = self.redis.register_script(_HAND_BACK)
        self._scripts = (self._claim_any, self._requeue, self._hand_back)

    # --- lifecycle -----------------------------------------------------------

    def stop(self) -> None:
        """Stop taking jobs; the current ones finish (or are handed back)."""
        if not self._stop.is_set():
            log.info("worker %s stopping", self.instance)
            self._stop.set()
            for slot in self._idle:
                slot.cancel()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    async def run(self) -> None:
        """Run until ``stop()`` (or, in burst mode, until the queues are empty)."""
        try:
            await self._until_connected(self._load_scripts)
            named = await self._take_name()
        except BaseException:
            await self._close_clients()
            raise
        if not named:  # stopped while waiting for the name
            await self._close_clients()
            return
        await self._until_connected(self._recover_own)
        await self._until_connected(self._beat)
        heart = asyncio.create_task(self._heartbeat_loop(), name="erogaki-heartbeat")
        slots = [
            asyncio.create_task(self._slot(), name=f"erogaki-slot-{n}")
            for n in range(self.concurrency)
        ]
        log.info(
            "worker %s (%s) consuming %s", self.instance, self.component, ", ".join(self.queues)
        )
        try:
            all_slots = asyncio.ensure_future(asyncio.wait(slots))
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait((all_slots, stopping), return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not all_slots.done():
                # Idle slots end at once; busy ones get the grace period.
                await asyncio.wait(slots, timeout=self.grace_seconds)
        finally:
            for slot in slots:
                slot.cancel()
            await asyncio.gather(*slots, return_exceptions=True)
            heart.cancel()
            await asyncio.gather(heart, return_exceptions=True)
            await self._shut_down()

    async def _shut_down(self) -> None:
        try:
            await self._requeue_lists(self.instance, check=False, forget=True, crashed=False)
            await self.redis.delete(keys.heartbeat_key(self.instance))
        except REDIS_ERRORS as exc:
            log.warning(
                "Redis failed at shutdown (%s); a reaper will re-queue held jobs", describe(exc)
            )
        await self._close_clients()
        log.info("worker %s stopped", self.instance)

    async def _close_clients(self) -> None:
        await self.redis.aclose()
        await self.blocking.aclose()

    async def _take_name(self) -> bool:
        """Start the heartbeat under our instance name, unless a live worker
        of another process has it; False if stopped meanwhile.

        Two live workers under one name would each take the other's claims
        back as their own. A heartbeat left by a crashed predecessor is not
        refreshed: it expires within its TTL, and we take over (and its
        processing lists, at ``_recover_own``). A refreshed one means a twin.
        """
        key = keys.heartbeat_key(self.instance)
        delays = backoff()
        outage = Outage("starting up", log)
        first: tuple[bytes, int] | None = None
        while not self._stop.is_set():
            try:
                if await self.redis.set(key, self._beat_json(), ex=self.heartbeat_ttl, nx=True):
                    outage.ok()
                    return True
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.get(key)
                    pipe.pttl(key)
                    raw, pttl = await pipe.execute()
                outage.ok()
            except REDIS_ERRORS as exc:
                outage.failed(exc)
                await anext(delays)
                continue
            if raw is None or pttl == -2:
                continue  # it expired just now: take it
            holder = _beat_field(raw, "token")
            if holder == self.token:
                return True  # our own SET, whose reply was lost
            if first is None:
                first = (raw, pttl)
                log.warning(
                    "a heartbeat under instance name %s exists (host %s, pid %s); waiting up "
                    "to %.1f s for it to expire, as a crashed worker's does",
                    self.instance, _beat_field(raw, "host"), _beat_field(raw, "pid"),
                    max(pttl, 0) / 1000,
                )  # fmt: skip
            elif raw != first[0] or pttl > first[1] or pttl < 0:
                # Refreshed (or kept without a TTL): a live worker has this name.
                raise InstanceInUse(
                    f"another worker is running under the instance name {self.instance!r} "
                    f"(host {_beat_field(raw, 'host')}, pid {_beat_field(raw, 'pid')}); "
                    "give each worker its own name with EROGAKI_INSTANCE or --instance"
                )
            await asyncio.sleep(NAME_POLL_SECONDS)
        return False

    async def _until_connected(self, step: Callable[[], Awaitable[None]]) -> None:
        delays = backoff()
        outage = Outage("starting up", log)
        while True:
            try:
                await step()
                outage.ok()
                return
            except REDIS_ERRORS as exc:
                # Unreachable, full or read-only: wait it out, as every loop does.
                outage.failed(exc)
                await anext(delays)

    # --- claiming ------------------------------------------------------------

    async def _slot(self) -> None:
        delays = backoff()
        trouble = backoff()
        outage = Outage("claiming jobs", log)
        me = asyncio.current_task()
        assert me is not None
        while not self._stop.is_set():
            # While idle the slot is cancellable by stop(). A BLMOVE cut off
            # that way may still have moved an id: it sits in our processing
            # list and shutdown puts it back on its queue.
            self._idle.add(me)
            try:
                claimed = await (self._try_claim() if self.burst else self._claim())
                delays = backoff()
                outage.ok()
            except asyncio.CancelledError:
                if self._stop.is_set():
                    return
                raise
            except RedisError as exc:
                # A claim whose reply was lost may have moved an id into our
                # processing list anyway: reconciling gives it back.
                outage.failed(exc)
                await anext(delays)
                continue
            finally:
                self._idle.discard(me)
            if claimed is None:
                if self.burst:
                    return
                continue
            queue, job_id = claimed
            try:
                await self._handle(queue, job_id)
                trouble = backoff()
            except RedisError as exc:
                # Redis failed under the job (not the image: processing errors
                # are answered inside _handle). The id is still in our
                # processing list: back to the head of its queue, or left
                # there for reconciling if Redis refuses that too.
                log.warning("job %s interrupted (%s); handing it back", job_id, describe(exc))
                try:
                    await self._give_back(queue, job_id)
                except REDIS_ERRORS as again:
                    log.warning("could not hand back job %s yet (%s)", job_id, describe(again))
                # A Redis that refuses writes (full, read-only replica) would
                # otherwise have us redo the same job in a hot loop.
                await anext(trouble)

    async def _try_claim(self) -> tuple[Queue, str] | None:
        reply = await self._claim_any(
            keys=[*self.queues, *(self.processing[q] for q in self.queues)],
            args=[self._next_queue],
        )
        if not reply:
            return None
        index, job_id = reply
        # Next time, start at the queue after this one.
        self._next_queue = int(index) % len(self.queues)
        return self.queues[int(index) - 1], _text(job_id)

    async def _claim(self) -> tuple[Queue, str] | None:
        if len(self.queues) == 1:
            queue = self.queues[0]
            job_id = await self.blocking.blmove(
                queue, self.processing[queue], BLOCK_SECONDS, "LEFT", "RIGHT"
            )
            return None if job_id is None else (queue, _text(job_id))
        claimed = await self._try_claim()
        if claimed is not None:
            return claimed
        # Block until any queue has an entry without taking it: moving a list's
        # tail onto its own tail changes nothing, so cancelling the other
        # waiters can't lose a job. Then claim atomically.
        waiters: list[asyncio.Future[object]] = [
            asyncio.ensure_future(self.blocking.blmove(q, q, BLOCK_SECONDS, "RIGHT", "RIGHT"))
            for q in self.queues
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            results = await asyncio.gather(*waiters, return_exceptions=True)
        for result in results:
            if isinstance(result, REDIS_ERRORS):
                raise result
        return await self._try_claim()

    # --- one job -------------------------------------------------------------

    async def _handle(self, queue: Queue, job_id: str) -> None:
        # Until the job is finished in Redis it counts as handed back: an
        # exception out of here gives it back to its queue.
        report = JobReport(job_id, queue, JobOutcome.HANDED_BACK)
        processing = self.processing[queue]
        if not is_job_id(job_id):
            await self.redis.lrem(processing, 1, job_id)
            log.warning("dropped a malformed entry from %s", queue)
            report.id, report.outcome = "-", JobOutcome.DROPPED
            self._report(report)
            return
        self._in_flight[job_id] += 1
        t0 = time.perf_counter()
        try:
            fetched = await self._fetch(queue, job_id)
            report.seconds["fetch"] = time.perf_counter() - t0
            outcome: Outcome | ErrorInfo
            if isinstance(fetched, bytes):
                t1 = time.perf_counter()
                job = Job(job_id, queue, fetched)
                outcome = await self._run_processor(job)
                report.seconds.update(job.timings)
                report.seconds["process"] = time.perf_counter() - t1
            else:
                outcome = fetched
            t2 = time.perf_counter()
            report.outcome = await self._store(queue, job_id, outcome)
            report.seconds["store"] = time.perf_counter() - t2
            if report.outcome is JobOutcome.FAILED and isinstance(outcome, ErrorInfo):
                report.error = outcome.name.value
        except asyncio.CancelledError:
            try:
                await asyncio.shield(self._give_back(queue, job_id))
            except REDIS_ERRORS:
                log.warning("could not hand back job %s; it is re-queued at restart", job_id)
            report.outcome = JobOutcome.HANDED_BACK
            raise
        finally:
            self._in_flight[job_id] -= 1
            if self._in_flight[job_id] <= 0:
                del self._in_flight[job_id]
            report.seconds["total"] = time.perf_counter() - t0
            self._report(report)

    async def _fetch(self, queue: Queue, job_id: str) -> bytes | ErrorInfo:
        """The input bytes, or the error that answers a job without usable input."""
        input_key = keys.input_key(job_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(input_key)
                # BLMOVE created the list without one: every key has a TTL.
                pipe.expire(self.processing[queue], keys.JOB_TTL)
                data, _ = await pipe.execute()
        except ResponseError:
            kind = _text(await self.redis.type(input_key))
            if kind in ("string", "none"):
                raise  # Redis refused the read itself: not the job's fault
            # A foreign client stored something else under the input's name.
            return self._error(
                ErrorName.INVALID_IMAGE,
                f"The job's input in Redis is a {kind}, not image bytes.",
            )
        if data is None:
            return self._error(
                ErrorName.IMAGE_NOT_FOUND,
                "The image expired or was deleted before a worker could read it.",
            )
        return bytes(data)

    async def _load_scripts(self) -> None:
        for script in self._scripts:
            await self.redis.script_load(script.script)

    async def _run_processor(self, job: Job) -> Outcome | ErrorInfo:
        try:
            return await self.process(job)
        except ProcessingError as exc:
            return self._error(exc.name, exc.description)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not bad input: log it (never the payload) and answer the user.
            log.exception("processing job %s from %s crashed", job.id, job.queue)
            return self._error(
                ErrorName.PROCESSING_FAILED,
                "The worker hit an unexpected problem with this image.",
            )

    def _error(self, name: ErrorName, description: str) -> ErrorInfo:
        return ErrorInfo(self.component.value, self.instance, name, description)

    async def _store(self, queue: Queue, job_id: str, outcome: Outcome | ErrorInfo) -> JobOutcome:
        """Finish the job in Redis, retrying through outages; says what became of it.

        Gives up after ``STORE_RETRY_SECONDS`` by raising: the id stays in our
        processing list and goes back to its queue.
        """
        deadline = time.monotonic() + STORE_RETRY_SECONDS
        delays = backoff()
        outage = Outage(f"storing job {job_id}", log)
        # What the job became if an EXEC ran although its reply never came.
        # Only a failure during EXEC itself counts: a refused connection
        # before it (Redis down, restarting) wrote nothing.
        sent: JobOutcome | None = None
        while True:
            try:
                result = await self._finish_once(queue, job_id, outcome, sent)
                outage.ok()
                return result
            except WatchError:
                continue  # a key changed under us: look again
            except REDIS_ERRORS as exc:
                if isinstance(exc, _MaybeExecuted):
                    sent = exc.outcome
                outage.failed(exc)
                if time.monotonic() > deadline:
                    log.error("gave up storing job %s (%s)", job_id, describe(exc))
                    raise
                await anext(delays)

    async def _finish_once(
        self, queue: Queue, job_id: str, outcome: Outcome | ErrorInfo, sent: JobOutcome | None
    ) -> JobOutcome:
        processing = self.processing[queue]
        input_key, job_key = keys.input_key(job_id), keys.job_key(job_id)
        result_key, error_key = keys.result_key(job_id), keys.error_key(job_id)
        not_found = isinstance(outcome, ErrorInfo) and outcome.name is ErrorName.IMAGE_NOT_FOUND
        watched = (processing, input_key, result_key, error_key, job_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            state = _text(await watch_then_read(pipe, watched, "EVAL", _STATE, 5, *watched, job_id))
            if state == "lost":
                # Our claim is gone. Either a reaper took it while we stalled
                # (someone else answers), or our own EXEC ran and only its
                # reply was lost: then the job is finished as intended.
                return JobOutcome.LOST_CLAIM if sent is None else sent
            pipe.multi()  # type: ignore[no-untyped-call]
            # Scripts in it go as EVAL, not EVALSHA: a NOSCRIPT inside EXEC
            # would come after the SET had already run.
            if state in ("cancelled", "answered") or (state == "gone" and not not_found):
                # Cancelled, answered through a duplicate entry, or collected: let go.
                pipe.lrem(processing, 1, job_id)
                if state == "cancelled":
                    pipe.delete(input_key, job_key)  # what is left of it
                await _execute(pipe, JobOutcome.DROPPED)
                return JobOutcome.DROPPED
            if isinstance(outcome, Forward):
                pipe.set(input_key, outcome.data, keepttl=True)
                stage = outcome.stage.value
                pipe.eval(_FORWARD, 4, processing, input_key, job_key, outcome.queue, job_id,
                          keys.JOB_TTL, stage, keys.stage_channel(job_id))  # fmt: skip
            elif isinstance(outcome, ErrorInfo):
                ttl = NOT_FOUND_TTL if not_found else keys.JOB_TTL
                pipe.set(error_key, outcome.to_json(), ex=ttl)
                pipe.lrem(processing, 1, job_id)
            else:
                # The claim ends with the answer, in the same MULTI: a plain
                # LREM, as a script call costs Redis several times more.
                pipe.set(result_key, outcome.png, ex=keys.JOB_TTL)
                pipe.lrem(processing, 1, job_id)
            await _execute(pipe, _intended(outcome))
            return _intended(outcome)

    async def _give_back(self, queue: Queue, job_id: str) -> bool:
        return bool(
            await self._hand_back(keys=[self.processing[queue], queue], args=[job_id, keys.JOB_TTL])
        )

    def _report(self, report: JobReport) -> None:
        self.counts[report.outcome.value] += 1
        if log.isEnabledFor(logging.INFO):
            log.info(report.log_line())
        if self.on_report is not None:
            self.on_report(report)

    # --- liveness and reaping ------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        # Nothing may end this loop but cancellation: a worker without a
        # heartbeat looks dead to the whole fleet while it goes on working.
        outage = Outage("heartbeat", log)
        last_beat = steady_since = time.monotonic()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._beat()
                now = time.monotonic()
                if now - last_beat > 2 * self.heartbeat_interval + 1.0:
                    # We could not beat for a while (Redis full, paused or
                    # restarting; this process stopped): neither could the
                    # others. Reaping now would take the jobs of live workers,
                    # so give them one TTL to beat again first.
                    steady_since = now
                last_beat = now
                if now - steady_since >= self.heartbeat_ttl:
                    await self.reap()
                await self._reconcile()
                outage.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # OOM, READONLY, LOADING and bugs alike
                outage.failed(exc)

    async def _reconcile(self) -> None:
        """Give back ids that sit in our processing lists with no job behind them.

        A claim whose reply was lost, or a result whose store was given up,
        leaves its id there; our own heartbeat keeps the list alive, so no
        reaper would ever take it. An id is orphaned once it has been seen
        with no job for ``ORPHAN_SECONDS``, longer than a live claim reply takes.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.lrange(self.processing[queue], 0, -1)
            lists = await pipe.execute()
        now = time.monotonic()
        held = Counter(_text(raw) for ids in lists for raw in ids)
        seen: dict[tuple[Queue, str], float] = {}
        for queue, ids in zip(self.queues, lists, strict=True):
            for raw in ids:
                job_id = _text(raw)
                # Only copies beyond those our slots work on are orphans: one
                # slot finishing a duplicate id must not free the other's claim.
                if held[job_id] > self._in_flight[job_id]:
                    seen[(queue, job_id)] = self._orphans.get((queue, job_id), now)
        self._orphans = seen
        for (queue, job_id), first in list(seen.items()):
            if now - first >= max(ORPHAN_SECONDS, 2 * self.heartbeat_interval):
                if await self._give_back(queue, job_id):
                    log.warning("job %s was held with no work behind it; handed it back", job_id)
                del self._orphans[(queue, job_id)]

    def _beat_json(self) -> str:
        beat = {
            "instance": self.instance,
            "token": self.token,
            "component": self.component.value,
            "queues": list(self.queues),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started,
            "busy": self._in_flight.total(),
            "concurrency": self.concurrency,
            "counts": self.counts,
        }
        return json.dumps(beat)

    async def _beat(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.heartbeat_key(self.instance), self._beat_json(), ex=self.heartbeat_ttl)
            pipe.hset(keys.INSTANCES, self.instance, json.dumps(list(self.queues)))
            pipe.expire(keys.INSTANCES, keys.JOB_TTL)
            for processing in self.processing.values():
                pipe.expire(processing, keys.JOB_TTL)
            await pipe.execute()

    async def reap(self) -> int:
        """Re-queue what dead instances held; returns how many jobs moved."""
        moved = 0
        for raw_instance, raw_queues in (await self.redis.hgetall(keys.INSTANCES)).items():
            instance = _text(raw_instance)
            if instance == self.instance:
                continue
            try:
                names = json.loads(raw_queues)
            except ValueError:
                names = None
            if not isinstance(names, list):
                await self.redis.hdel(keys.INSTANCES, instance)
                continue
            # A newer worker's queues this version does not know still get their
            # jobs back (a fleet is upgraded one worker at a time).
            queues = [q for q in names if isinstance(q, str) and q.startswith(keys.INPUT_PREFIX)]
            count = await self._requeue_lists(instance, check=True, forget=True, queues=queues)
            if count > 0:
                log.warning("re-queued %d job(s) held by dead worker %s", count, instance)
                moved += count
        return moved

    async def _recover_own(self) -> None:
        """A restart under the same instance name takes back what it held."""
        count = await self._requeue_lists(self.instance, check=False, forget=False)
        if count:
            log.warning("re-queued %d job(s) this instance held before it restarted", count)

    async def _requeue_lists(
        self,
        instance: str,
        *,
        check: bool,
        forget: bool,
        crashed: bool = True,
        queues: Sequence[str] | None = None,
    ) -> int:
        """Move ``instance``'s claims back to their queues; ``crashed`` counts
        an attempt for each (a clean shutdown's stray claims don't)."""
        queues = queues or self.queues
        pairs: list[str] = []
        for queue in queues:
            pairs += [keys.processing_key(instance, queue), queue]
        moved = await self._requeue(
            keys=[keys.heartbeat_key(instance), keys.INSTANCES, *pairs],
            args=[
                instance,
                keys.JOB_TTL,
                "check" if check else "",
                "forget" if forget else "",
                self.max_attempts if crashed else 0,
                self.instance,
                *(_component_of(q).value for q in queues),
            ],
        )
        return int(moved)
