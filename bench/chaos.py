"""Chaos scenarios: the job protocol under Redis faults and worker stalls.

Each scenario runs a private redis-server, a fleet of workers with stand-in
processors (a few milliseconds of "work"), one submitter, and a fault in the
middle of the load:

- ``restart``: Redis with persistence (AOF, fsync always) SIGKILLed and
  restarted under the jobs in flight;
- ``full``: Redis refuses every write (over ``maxmemory``, noeviction) for a
  while during the load;
- ``pause``: ``CLIENT PAUSE`` longer than the heartbeat TTL, so workers reap
  each other's live jobs when it ends;
- ``stall``: one of two worker processes SIGSTOPped past its heartbeat TTL,
  mid-job, again and again.

Every run counts what the user would see: answers, ``DeadlineExceeded``,
``JobLost``, refusals at submit time; answers written more than once (the
workers' own reports); and keys left behind once the fleet is idle.
``tests/test_faults_chaos.py`` runs each in a short form; this script runs
them at full size and prints the figures:

    python bench/chaos.py [--quick] [--runs 3] [--only restart,full,...]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field

import redis.asyncio as aioredis

from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.errors import (
    Component,
    DeadlineExceeded,
    JobFailed,
    JobLost,
    RedisUnavailable,
)
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.submit import Submitter
from erogaki_common.worker import Done, Forward, Job, JobOutcome, JobReport, Outcome, Worker

MODES = (Mode.BAR, Mode.MOSAIC, Mode.AUTO, Mode.BAR_MASKED)
HENTAI_QUEUES = (Queue.HENTAI_BAR, Queue.HENTAI_MOSAIC, Queue.HENTAI_AUTO)


@dataclass
class Figures:
    scenario: str
    jobs: int
    answered: int = 0
    wrong_answer: int = 0
    deadline_exceeded: int = 0
    lost: int = 0
    refused_at_submit: int = 0
    failed: int = 0
    duplicate_answers: int = 0
    keys_left: int = 0
    seconds: float = 0.0
    # A promise the fault checks that did not hold (heartbeats not back, ...).
    problem: str = ""
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return (
            self.answered + self.refused_at_submit == self.jobs
            and self.wrong_answer == self.deadline_exceeded == self.lost == 0
            and self.duplicate_answers == self.keys_left == self.failed == 0
            and not self.problem
        )


# --- the stand-in fleet ---------------------------------------------------------


async def _work(seconds: tuple[float, float]) -> None:
    # Stands for GPU time; it is what keeps jobs in flight when the fault hits.
    await asyncio.sleep(random.uniform(*seconds))


def hentai(work: tuple[float, float]) -> Callable[[Job], Awaitable[Outcome]]:
    async def process(job: Job) -> Outcome:
        await _work(work)
        if job.queue == Queue.HENTAI_MOSAIC:
            return Done(b"done:" + job.data)
        return Forward(Queue.DEEPCREAMPY_BAR, b"masked:" + job.data)

    return process


def deepcreampy(work: tuple[float, float]) -> Callable[[Job], Awaitable[Outcome]]:
    async def process(job: Job) -> Outcome:
        await _work(work)
        return Done(b"done:" + job.data)

    return process


def expected(mode: Mode, image: bytes) -> bytes:
    if mode in (Mode.BAR, Mode.AUTO):
        return b"done:masked:" + image
    return b"done:" + image


class Fleet:
    """In-process workers on both stages; records every answer they write."""

    def __init__(
        self,
        url: str,
        *,
        workers: int = 2,
        concurrency: int = 2,
        work: tuple[float, float] = (0.002, 0.02),
        heartbeat_interval: float = 0.2,
        heartbeat_ttl: int = 1,
    ) -> None:
        self.answers: collections.Counter[str] = collections.Counter()
        self.outcomes: collections.Counter[str] = collections.Counter()
        options = {
            "concurrency": concurrency,
            "heartbeat_interval": heartbeat_interval,
            "heartbeat_ttl": heartbeat_ttl,
            "on_report": self._record,
        }
        self.workers = [
            Worker(url, HENTAI_QUEUES, hentai(work), component=Component.HENTAI,
                   instance=f"chaos-hentai-{n}", **options)  # type: ignore[arg-type]
            for n in range(workers)
        ] + [
            Worker(url, [Queue.DEEPCREAMPY_BAR], deepcreampy(work),
                   component=Component.DEEPCREAMPY, instance=f"chaos-dcp-{n}",
                   **options)  # type: ignore[arg-type]
            for n in range(workers)
        ]  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []

    def _record(self, report: JobReport) -> None:
        self.outcomes[report.outcome.value] += 1
        if report.outcome in (JobOutcome.DONE, JobOutcome.FAILED):
            self.answers[report.id] += 1

    @property
    def duplicate_answers(self) -> int:
        return sum(n - 1 for n in self.answers.values() if n > 1)

    def idle(self) -> bool:
        return all(not w._in_flight for w in self.workers)

    async def __aenter__(self) -> Fleet:
        self._tasks = [asyncio.create_task(w.run()) for w in self.workers]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for worker in self.workers:
            worker.stop()
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 60)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def job_keys(client: aioredis.Redis) -> list[str]:
    """Keys any job left: inputs, answers, job hashes, queue and processing entries."""
    found: list[str] = []
    for pattern in ("censored-images:*", "decensored-images:*", "errors:*", "erogaki:job:*"):
        async for key in client.scan_iter(pattern):
            if key.decode() not in set(Queue):
                found.append(key.decode())
    for queue in Queue:
        found += [f"{queue}:{i.decode()}" for i in await client.lrange(queue, 0, -1)]
    async for key in client.scan_iter(keys.PROCESSING_PREFIX + "*"):
        found += [f"{key.decode()}:{i.decode()}" for i in await client.lrange(key, 0, -1)]
    return found


async def drained(client: aioredis.Redis, fleet: Fleet) -> bool:
    """Nothing queued, held or in flight: whatever is left now stays."""
    if not fleet.idle():
        return False
    for queue in Queue:
        if await client.llen(queue):
            return False
    async for key in client.scan_iter(keys.PROCESSING_PREFIX + "*"):
        if await client.llen(key):
            return False
    return True


async def run_load(
    name: str,
    server: EmbeddedRedis,
    jobs: int,
    fault: Callable[[Submitter, Callable[[], int]], Awaitable[None]],
    *,
    timeout: float = 60.0,
    fleet_options: dict[str, object] | None = None,
    extra_answers: Callable[[], collections.Counter[str]] | None = None,
) -> Figures:
    """Submit ``jobs`` jobs at once, run ``fault`` while they are in flight,
    wait for every outcome, then for the fleet to idle, and count."""
    figures = Figures(name, jobs)
    client = aioredis.Redis.from_url(server.url())
    started = time.monotonic()
    async with (
        Fleet(server.url(), **(fleet_options or {})) as fleet,
        Submitter(server.url()) as sub,
    ):
        answered = 0

        async def one(n: int) -> None:
            nonlocal answered
            mode = MODES[n % len(MODES)]
            image = os.urandom(16) + b"%d" % n
            try:
                value = await sub.decensor(image, mode, timeout=timeout)
            except RedisUnavailable:
                figures.refused_at_submit += 1
                return
            except DeadlineExceeded:
                figures.deadline_exceeded += 1
                return
            except JobLost:
                figures.lost += 1
                return
            except JobFailed:
                figures.failed += 1
                return
            answered += 1
            if value == expected(mode, image):
                figures.answered += 1
            else:
                figures.wrong_answer += 1

        load = [asyncio.create_task(one(n)) for n in range(jobs)]
        try:
            await fault(sub, lambda: answered)
        except TimeoutError as exc:
            figures.problem = str(exc)
        await asyncio.gather(*load)
        try:
            await until(lambda: drained(client, fleet), 30, "the fleet to idle")
        except TimeoutError as exc:
            figures.problem = figures.problem or str(exc)
        answers = fleet.answers + (extra_answers() if extra_answers else collections.Counter())
        figures.duplicate_answers = sum(n - 1 for n in answers.values() if n > 1)
        figures.notes.update({f"reports_{k}": v for k, v in fleet.outcomes.items()})
    figures.keys_left = len(await job_keys(client))
    figures.seconds = round(time.monotonic() - started, 2)
    await client.aclose()
    return figures


# --- the scenarios -----------------------------------------------------------------


async def restart(jobs: int = 100) -> Figures:
    """Redis with persistence SIGKILLed and restarted under ``jobs`` jobs."""
    server = EmbeddedRedis(extra_args=["--appendonly", "yes", "--appendfsync", "always"]).start()
    try:

        async def fault(sub: Submitter, answered: Callable[[], int]) -> None:
            await until(_at_least(answered, jobs // 4), 60, "a quarter of the answers")
            await asyncio.to_thread(server.restart)

        return await run_load("restart", server, jobs, fault)
    finally:
        server.close()


async def full(jobs: int = 200, seconds: float = 10.0) -> Figures:
    """Every write refused for ``seconds`` while jobs are in flight."""
    server = EmbeddedRedis().start()
    admin = aioredis.Redis.from_url(server.url())
    try:

        async def fault(sub: Submitter, answered: Callable[[], int]) -> None:
            await until(_at_least(answered, jobs // 4), 60, "a quarter of the answers")
            await admin.config_set("maxmemory", 1)
            began = time.monotonic()
            # The fleet must look alive again afterwards: heartbeats expire meanwhile.
            await until(_no_heartbeats(admin), seconds + 10, "the heartbeats to expire")
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - began)))
            await admin.config_set("maxmemory", 0)
            await until(_heartbeats(admin, 4), 15, "every heartbeat to come back")

        return await run_load("full", server, jobs, fault, timeout=seconds + 60)
    finally:
        await admin.aclose()
        server.close()


async def pause(jobs: int = 200, seconds: float = 5.0) -> Figures:
    """CLIENT PAUSE longer than the heartbeat TTL (3 s) while jobs are in flight."""
    server = EmbeddedRedis().start()
    admin = aioredis.Redis.from_url(server.url())
    try:

        async def fault(sub: Submitter, answered: Callable[[], int]) -> None:
            await until(_at_least(answered, jobs // 4), 60, "a quarter of the answers")
            await admin.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")

        return await run_load(
            "pause", server, jobs, fault, timeout=seconds + 60,
            fleet_options={"heartbeat_interval": 1.0, "heartbeat_ttl": 3,
                           "work": (0.05, 0.3)},
        )  # fmt: skip
    finally:
        await admin.aclose()
        server.close()


async def stall(jobs: int = 200, stalls: int = 3) -> Figures:
    """One of two worker processes SIGSTOPped past its TTL, mid-job, ``stalls`` times."""
    server = EmbeddedRedis().start()
    admin = aioredis.Redis.from_url(server.url())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.chaos", "--worker", server.url(), "chaos-stalled",
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []

    async def read() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            lines.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read())

    def process_answers() -> collections.Counter[str]:
        # The process worker's job log lines: the answers it wrote.
        answers: collections.Counter[str] = collections.Counter()
        for line in lines:
            if " outcome=done" in line or " outcome=failed" in line:
                answers[line.split("job id=", 1)[1].split(" ", 1)[0]] += 1
        return answers

    try:
        stopped = 0

        async def fault(sub: Submitter, answered: Callable[[], int]) -> None:
            nonlocal stopped
            holds = _holds(admin, "chaos-stalled")
            for n in range(stalls):

                async def holding_or_late() -> bool:
                    return answered() >= jobs * 0.8 or await holds()

                await until(holding_or_late, 60, "the process worker to hold a job")
                if not await holds():
                    break  # the load is nearly over: no more stalls this run
                proc.send_signal(signal.SIGSTOP)
                stopped += 1
                await until(_not(_exists(admin, keys.heartbeat_key("chaos-stalled"))), 10,
                            "its heartbeat to expire")  # fmt: skip
                # Long enough for a reaper to move its jobs and another to finish them.
                await until(_at_least(answered, (n + 1) * jobs // (stalls + 1)), 60,
                            "others to answer meanwhile")  # fmt: skip
                proc.send_signal(signal.SIGCONT)
                # Awake again, beating, and done with whatever it held when stopped.
                await until(_idle_beat(admin, "chaos-stalled"), 10, "the stalled worker to settle")

        figures = await run_load(
            "stall", server, jobs, fault, timeout=90,
            fleet_options={"workers": 1, "work": (0.02, 0.1)}, extra_answers=process_answers,
        )  # fmt: skip
        figures.notes["stalls"] = stopped
        return figures
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            await proc.wait()
        await reader
        await admin.aclose()
        server.close()


def _at_least(answered: Callable[[], int], n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return answered() >= n

    return check


def _exists(client: aioredis.Redis, key: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bool(await client.exists(key))

    return check


def _not(condition: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not await condition()

    return check


def _heartbeats(client: aioredis.Redis, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len([k async for k in client.scan_iter(keys.HEARTBEAT_PREFIX + "*")]) >= n

    return check


def _no_heartbeats(client: aioredis.Redis) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not [k async for k in client.scan_iter(keys.HEARTBEAT_PREFIX + "*")]

    return check


def _idle_beat(client: aioredis.Redis, instance: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        beat = await client.get(keys.heartbeat_key(instance))
        return beat is not None and json.loads(beat).get("busy") == 0

    return check


def _holds(client: aioredis.Redis, instance: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        for queue in Queue:
            if await client.llen(keys.processing_key(instance, queue)):
                return True
        return False

    return check


SCENARIOS: dict[str, Callable[..., Awaitable[Figures]]] = {
    "restart": restart,
    "full": full,
    "pause": pause,
    "stall": stall,
}
FULL_SIZE: dict[str, dict[str, float]] = {
    "restart": {"jobs": 100},
    "full": {"jobs": 300, "seconds": 10.0},
    "pause": {"jobs": 300, "seconds": 5.0},
    "stall": {"jobs": 300, "stalls": 3},
}
QUICK: dict[str, dict[str, float]] = {
    "restart": {"jobs": 40},
    "full": {"jobs": 60, "seconds": 3.0},
    "pause": {"jobs": 60, "seconds": 4.0},
    "stall": {"jobs": 60, "stalls": 1},
}


# --- a worker process for the stall scenario ----------------------------------------


async def _process_worker(url: str, instance: str) -> None:
    worker = Worker(
        url, HENTAI_QUEUES, hentai((0.05, 0.2)), component=Component.HENTAI,
        instance=instance, concurrency=2, heartbeat_interval=0.2, heartbeat_ttl=1,
    )  # fmt: skip
    worker.install_signal_handlers()
    await worker.run()


@contextlib.asynccontextmanager
async def _quiet() -> AsyncIterator[None]:
    # The fleet logs every outage it rides out; the figures say what matters.
    logging.basicConfig(level=logging.ERROR)
    yield


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL_SIZE
    runs = 1 if args.quick else args.runs
    results: list[Figures] = []
    async with _quiet():
        for name in args.only.split(","):
            for run in range(runs):
                figures = await SCENARIOS[name](**sizes[name])
                results.append(figures)
                print(
                    f"{name:<8} run {run + 1}: {figures.jobs} jobs, {figures.answered} answered, "
                    f"{figures.refused_at_submit} refused at submit, "
                    f"{figures.deadline_exceeded} DeadlineExceeded, {figures.lost} lost, "
                    f"{figures.wrong_answer} wrong, {figures.duplicate_answers} answered twice, "
                    f"{figures.keys_left} keys left, {figures.seconds:.1f} s"
                    + (f" PROBLEM: {figures.problem}" if figures.problem else ""),
                    file=sys.stderr,
                )
    print(json.dumps([asdict(f) for f in results]))
    return 0 if all(f.clean for f in results) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        logging.basicConfig(level=logging.ERROR)
        logging.getLogger("erogaki_common.worker").setLevel(logging.INFO)
        asyncio.run(_process_worker(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(asyncio.run(main()))
