"""The worker side of protocol v1: one loop primitive both workers plug into.

Claiming is Redis' reliable-queue pattern. A job id moves atomically from the
head of its queue into this instance's processing list (``BLMOVE``), so a
worker killed at any moment still has the id on record. Each instance keeps a
heartbeat key with a TTL; any live worker re-queues (at the head, oldest
first) what a dead instance held. Each claim counts an attempt in the job
hash; a job that keeps killing workers ends as ``JobFailedRepeatedly``.

Finishing is one Lua script: drop the id from the processing list and set the
result or error, or forward the job to the next queue, unless the submitter
cancelled it meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.asyncio.client import Pipeline
from redis.exceptions import ExecAbortError, NoScriptError, RedisError, ResponseError

from erogaki_common import keys
from erogaki_common.errors import Component, ErrorInfo, ErrorName, ProcessingError
from erogaki_common.keys import Queue
from erogaki_common.protocol import Stage, is_job_id
from erogaki_common.redis_io import CONNECTION_ERRORS, backoff, connect, describe
from erogaki_common.settings import default_instance

log = logging.getLogger(__name__)

# How long a blocked claim waits before looping; bounds how long a silently
# dead connection can go unnoticed.
BLOCK_SECONDS = 5
# How long an interrupted result write is retried before it is given up.
STORE_RETRY_SECONDS = 60.0


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
    # Cancelled by its submitter, or a malformed queue entry.
    DROPPED = "dropped"
    # Given back to its queue at shutdown.
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


# KEYS: queue_1..queue_n, processing_1..processing_n. Oldest first, first queue first.
_CLAIM_ANY = """
local n = #KEYS / 2
for i = 1, n do
  local id = redis.call('LMOVE', KEYS[i], KEYS[n + i], 'LEFT', 'RIGHT')
  if id then return {i, id} end
end
return false
"""

# Image bytes never pass through Lua: a script copies its arguments and
# replies, which costs about 1.3 ms per MiB each way. The scripts below only
# do bookkeeping, in the same round trip as a plain SET of the bytes.

# Runs in one MULTI right after SET of the result or error key.
# KEYS: processing, the key just set, job hash, input. ARGV: id.
# A job its submitter cancelled meanwhile is wiped instead of answered.
_FINISH = """
redis.call('LREM', KEYS[1], 1, ARGV[1])
if redis.call('HGET', KEYS[3], 'cancelled') then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  return 0
end
return 1
"""

# Runs in one MULTI right after SET of the input with KEEPTTL.
# KEYS: processing, input, job hash, next queue. ARGV: id, ttl, stage, stage channel.
_FORWARD = """
redis.call('LREM', KEYS[1], 1, ARGV[1])
if redis.call('HGET', KEYS[3], 'cancelled') then
  redis.call('DEL', KEYS[2], KEYS[3])
  return 0
end
-- KEEPTTL on an input that expired meanwhile would leave it without a TTL.
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

# KEYS: processing, queue. ARGV: id. Shutdown or a dropped connection hands
# a job back: not the job's fault, so no attempt is counted.
_HAND_BACK = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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
        self.instance = instance or default_instance()
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
        self._stop = asyncio.Event()
        self._in_flight: dict[str, Queue] = {}
        self._idle: set[asyncio.Task[Any]] = set()
        self._claim_any = self.redis.register_script(_CLAIM_ANY)
        self._finish = self.redis.register_script(_FINISH)
        self._forward = self.redis.register_script(_FORWARD)
        self._requeue = self.redis.register_script(_REQUEUE)
        self._hand_back = self.redis.register_script(_HAND_BACK)
        self._scripts = (self._finish, self._forward)

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
        await self._until_connected(self._load_scripts)
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
        except CONNECTION_ERRORS:
            log.warning("Redis unreachable at shutdown; a reaper will re-queue held jobs")
        await self.redis.aclose()
        await self.blocking.aclose()
        log.info("worker %s stopped", self.instance)

    async def _until_connected(self, step: Callable[[], Awaitable[None]]) -> None:
        delays = backoff()
        while True:
            try:
                return await step()
            except CONNECTION_ERRORS as exc:
                log.warning("Redis unreachable (%s); retrying", exc)
                await anext(delays)

    # --- claiming ------------------------------------------------------------

    async def _slot(self) -> None:
        delays = backoff()
        trouble = backoff()
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
            except asyncio.CancelledError:
                if self._stop.is_set():
                    return
                raise
            except RedisError as exc:
                log.warning("claim failed (%s); retrying", describe(exc))
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
                # processing list; put it back on its queue once Redis answers.
                log.warning("job %s interrupted (%s); handing it back", job_id, describe(exc))
                await self._until_connected(functools.partial(self._give_back, queue, job_id))
                # A Redis that refuses writes (full, read-only replica) would
                # otherwise have us redo the same job in a hot loop.
                await anext(trouble)

    async def _try_claim(self) -> tuple[Queue, str] | None:
        reply = await self._claim_any(
            keys=[*self.queues, *(self.processing[q] for q in self.queues)]
        )
        if not reply:
            return None
        index, job_id = reply
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
            if isinstance(result, CONNECTION_ERRORS):
                raise result
        return await self._try_claim()

    # --- one job -------------------------------------------------------------

    async def _handle(self, queue: Queue, job_id: str) -> None:
        report = JobReport(job_id, queue, JobOutcome.DONE)
        processing = self.processing[queue]
        if not is_job_id(job_id):
            await self.redis.lrem(processing, 1, job_id)
            log.warning("dropped a malformed entry from %s", queue)
            report.id, report.outcome = "-", JobOutcome.DROPPED
            self._report(report)
            return
        self._in_flight[job_id] = queue
        t0 = time.perf_counter()
        try:
            outcome: Outcome | ErrorInfo | None
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.get(keys.input_key(job_id))
                    # BLMOVE created the list without one: every key has a TTL.
                    pipe.expire(processing, keys.JOB_TTL)
                    data, _ = await pipe.execute()
            except ResponseError:
                # A foreign client stored something other than a string there.
                data = None
            report.seconds["fetch"] = time.perf_counter() - t0
            if data is None:
                outcome = self._error(
                    ErrorName.IMAGE_NOT_FOUND,
                    "The image expired or was deleted before a worker could read it.",
                )
            else:
                t1 = time.perf_counter()
                job = Job(job_id, queue, data)
                outcome = await self._run_processor(job)
                report.seconds.update(job.timings)
                report.seconds["process"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            stored = await self._store(queue, job_id, outcome)
            report.seconds["store"] = time.perf_counter() - t2
            if isinstance(outcome, ErrorInfo):
                report.outcome, report.error = JobOutcome.FAILED, outcome.name.value
            elif isinstance(outcome, Forward):
                report.outcome = JobOutcome.FORWARDED
            if not stored:
                report.outcome = JobOutcome.DROPPED
        except asyncio.CancelledError:
            try:
                await asyncio.shield(self._give_back(queue, job_id))
            except CONNECTION_ERRORS:
                log.warning("could not hand back job %s; it is re-queued at restart", job_id)
            report.outcome = JobOutcome.HANDED_BACK
            raise
        finally:
            self._in_flight.pop(job_id, None)
            report.seconds["total"] = time.perf_counter() - t0
            self._report(report)

    async def _pipeline(self, transaction: bool, build: Callable[[Pipeline], object]) -> list[Any]:
        """Run a pipeline that calls our scripts by sha, loading them if Redis
        forgot them (a restart or SCRIPT FLUSH): pipelines can't do that alone."""
        for attempt in (1, 2):
            async with self.redis.pipeline(transaction=transaction) as pipe:
                build(pipe)
                try:
                    return await pipe.execute()
                except (NoScriptError, ExecAbortError, ResponseError) as exc:
                    if attempt == 2 or "No matching script" not in str(exc):
                        raise
            await self._load_scripts()
        raise AssertionError("unreachable")

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

    async def _store(self, queue: Queue, job_id: str, outcome: Outcome | ErrorInfo | None) -> bool:
        """Finish the job in Redis, retrying through short outages. False: dropped."""
        processing = self.processing[queue]
        job_key, input_key = keys.job_key(job_id), keys.input_key(job_id)
        deadline = time.monotonic() + STORE_RETRY_SECONDS
        delays = backoff()
        while True:
            try:
                if outcome is None:
                    await self.redis.lrem(processing, 1, job_id)
                    return False
                if isinstance(outcome, Forward):
                    fwd = outcome
                    replies = await self._pipeline(
                        True,
                        lambda pipe, fwd=fwd: (  # type: ignore[misc]
                            pipe.set(input_key, fwd.data, keepttl=True),
                            pipe.evalsha(self._forward.sha, 4, processing, input_key, job_key,
                                         fwd.queue, job_id, keys.JOB_TTL, fwd.stage.value,
                                         keys.stage_channel(job_id)),
                        ),
                    )  # fmt: skip
                else:
                    target, value = (
                        (keys.error_key(job_id), outcome.to_json())
                        if isinstance(outcome, ErrorInfo)
                        else (keys.result_key(job_id), outcome.png)
                    )
                    replies = await self._pipeline(
                        True,
                        lambda pipe, target=target, value=value: (  # type: ignore[misc]
                            pipe.set(target, value, ex=keys.JOB_TTL),
                            pipe.evalsha(self._finish.sha, 4, processing, target, job_key,
                                         input_key, job_id),
                        ),
                    )  # fmt: skip
                return bool(replies[1])
            except CONNECTION_ERRORS as exc:
                if time.monotonic() > deadline:
                    log.error(
                        "gave up storing job %s: Redis unreachable (%s)", job_id, describe(exc)
                    )
                    return False
                await anext(delays)

    async def _give_back(self, queue: Queue, job_id: str) -> None:
        await self._hand_back(keys=[self.processing[queue], queue], args=[job_id])

    def _report(self, report: JobReport) -> None:
        self.counts[report.outcome.value] += 1
        if log.isEnabledFor(logging.INFO):
            log.info(report.log_line())
        if self.on_report is not None:
            self.on_report(report)

    # --- liveness and reaping ------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._beat()
                await self.reap()
            except CONNECTION_ERRORS as exc:
                log.warning("heartbeat failed (%s)", exc)

    async def _beat(self) -> None:
        beat = {
            "instance": self.instance,
            "component": self.component.value,
            "queues": list(self.queues),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started,
            "busy": len(self._in_flight),
            "concurrency": self.concurrency,
            "counts": self.counts,
        }
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.heartbeat_key(self.instance), json.dumps(beat), ex=self.heartbeat_ttl)
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
                queues = [Queue(q) for q in json.loads(raw_queues)]
            except (ValueError, TypeError):
                await self.redis.hdel(keys.INSTANCES, instance)
                continue
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
        queues: Sequence[Queue] | None = None,
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
                *(COMPONENT_OF[q].value for q in queues),
            ],
        )
        return int(moved)
