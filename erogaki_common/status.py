"""What the fleet is doing: queue lengths, live workers, the oldest waiting job.

Read by ``erogaki status`` and the bot's ``/erogaki status``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from erogaki_common import keys
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode, Stage


@dataclass(frozen=True, slots=True)
class WaitingJob:
    queue: str
    job_id: str
    # None for jobs from foreign submitters, which write no job hash.
    age_seconds: float | None


@dataclass(frozen=True, slots=True)
class FleetStatus:
    queue_lengths: dict[str, int]
    workers: list[dict[str, Any]] = field(default_factory=list)
    oldest: WaitingJob | None = None

    def workers_for(self, queue: Queue) -> int:
        return sum(1 for w in self.workers if queue.value in w.get("queues", ()))

    def format(self) -> str:
        lines = ["queues:"]
        for name, length in self.queue_lengths.items():
            lines.append(
                f"  {name:<36} {length:>5} waiting  {self.workers_for(Queue(name))} worker(s)"
            )
        lines.append(f"workers: {len(self.workers)} alive")
        for w in sorted(self.workers, key=lambda w: str(w.get("instance"))):
            counts = w.get("counts", {})
            lines.append(
                f"  {w.get('instance')} ({w.get('component')}) busy {w.get('busy', 0)}/"
                f"{w.get('concurrency', 1)}, done {counts.get('done', 0)}, "
                f"failed {counts.get('failed', 0)}, up {_ago(w.get('started'))}"
            )
        if self.oldest is None:
            lines.append("oldest waiting job: none")
        else:
            age = (
                "age unknown"
                if self.oldest.age_seconds is None
                else f"{self.oldest.age_seconds:.1f} s"
            )
            lines.append(f"oldest waiting job: {self.oldest.job_id} on {self.oldest.queue} ({age})")
        return "\n".join(lines)


def _ago(started: object) -> str:
    if not isinstance(started, int | float):
        return "?"
    return f"{time.time() - started:.0f} s"


async def fleet_status(redis: Redis) -> FleetStatus:
    async with redis.pipeline(transaction=False) as pipe:
        for queue in Queue:
            pipe.llen(queue)
            pipe.lindex(queue, 0)
        pipe.hkeys(keys.INSTANCES)
        replies = await pipe.execute()
    lengths = {q.value: int(replies[2 * i]) for i, q in enumerate(Queue)}
    heads = {q.value: replies[2 * i + 1] for i, q in enumerate(Queue)}
    instances = [i.decode() if isinstance(i, bytes) else i for i in replies[-1]]

    workers: list[dict[str, Any]] = []
    if instances:
        beats = await redis.mget([keys.heartbeat_key(i) for i in instances])
        for beat in beats:
            if beat is None:
                continue
            try:
                workers.append(json.loads(beat))
            except ValueError:
                continue

    oldest: WaitingJob | None = None
    now = time.time()
    for queue_name, head in heads.items():
        if head is None:
            continue
        job_id = head.decode(errors="replace")
        submitted = await redis.hget(keys.job_key(job_id), "submitted")
        age = now - float(submitted) if submitted else None
        # A job of unknown age ranks below any job whose age is known.
        if oldest is None or (age or -1.0) > (oldest.age_seconds or -1.0):
            oldest = WaitingJob(queue_name, job_id, age)
    return FleetStatus(lengths, workers, oldest)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where one job is: its stage, and its place in line while it waits."""

    stage: str
    # 1 = next in line; None while a worker has it.
    position: int | None


# The stage a job is in once a worker took it from the queue its stage names.
_WORKING = {
    (Stage.QUEUED.value, Queue.HENTAI_BAR): "detecting bars",
    (Stage.QUEUED.value, Queue.HENTAI_MOSAIC): "restoring mosaic",
    (Stage.QUEUED.value, Queue.HENTAI_AUTO): "looking for bars and mosaic",
    (Stage.QUEUED.value, Queue.DEEPCREAMPY_BAR): "inpainting",
    (Stage.WAITING_FOR_INPAINTING.value, Queue.DEEPCREAMPY_BAR): "inpainting",
}


async def job_progress(redis: Redis, job_id: str, mode: Mode) -> Progress:
    """The job's stage and queue position, from its hash and the queues.

    Workers only write the stage when a job changes queues; whether a worker
    holds it shows in its absence from the queue its stage names.
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hget(keys.job_key(job_id), "stage")
        pipe.lpos(mode.queue, job_id)
        pipe.lpos(Queue.DEEPCREAMPY_BAR, job_id)
        raw_stage, first_pos, dcp_pos = await pipe.execute()
    stage = raw_stage.decode() if isinstance(raw_stage, bytes) else Stage.QUEUED.value
    if stage == Stage.WAITING_FOR_INPAINTING.value:
        queue, pos = Queue.DEEPCREAMPY_BAR, dcp_pos
    else:
        queue, pos = mode.queue, first_pos
    if pos is not None:
        label = "waiting for inpainting" if queue != mode.queue else "queued"
        return Progress(label, int(pos) + 1)
    return Progress(_WORKING.get((stage, queue), stage), None)
