"""Times one kind of dispatch (floor, erogaki, arq, celery or rq) for bench/peers.py.

Runs in the kind's own venv, so it imports only the standard library at the
top and the kind's client inside ``make_client``. Takes one JSON argument
(see ``bench/peers.py``) and prints one JSON object: per payload size, the
round trip with one job in flight, jobs per second with ``in_flight`` jobs
in flight, and the CPU each process spent per job during that phase.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import sys
import time
from collections import deque
from typing import Any, Protocol

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
# Throughput is the median of this many equal slices of the phase, so one
# stall (another tenant's burst on this shared machine) moves one slice, not
# the figure.
SLICES = 5
# Longer than any job takes here under load; a job past it counts as lost.
JOB_TIMEOUT_S = 30


# --- CPU time from /proc -----------------------------------------------------------


def _stat_fields(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name may hold spaces or parentheses; fields resume after the last ')'.
    return data[data.rindex(b")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime in seconds: a reaped child (an RQ work
    horse) lands in its parent's c-times, so nothing is lost or counted twice."""
    f = _stat_fields(pid)
    return sum(int(x) for x in f[11:15]) / TICK


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid = int(_stat_fields(int(name))[1])
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    return kids


def tree_cpu(roots: list[int]) -> float:
    """CPU of each root and every live descendant (Celery's prefork children)."""
    kids = _children()
    total, stack = 0.0, list(roots)
    while stack:
        pid = stack.pop()
        try:
            total += process_cpu(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        stack.extend(kids.get(pid, []))
    return total


# --- clients: submit() returns a handle, wait() its result ----------------------------


class Client(Protocol):
    async def start(self) -> None: ...
    async def submit(self, image: bytes) -> Any: ...
    async def wait(self, handle: Any) -> bytes: ...
    async def close(self) -> None: ...


class TaskClient:
    """For asyncio clients: each job is a task running the whole round trip."""

    async def start(self) -> None:
        pass

    async def round_trip(self, image: bytes) -> bytes:
        raise NotImplementedError

    async def submit(self, image: bytes) -> Any:
        return asyncio.create_task(self.round_trip(image))

    async def wait(self, handle: Any) -> bytes:
        return await handle  # type: ignore[no-any-return]

    async def close(self) -> None:
        pass


class FloorClient(TaskClient):
    def __init__(self, url: str) -> None:
        import dispatch

        self.sub = dispatch.FloorSubmitter(url)

    async def start(self) -> None:
        await self.sub.start()

    async def round_trip(self, image: bytes) -> bytes:
        return await self.sub.decensor(image)

    async def close(self) -> None:
        await self.sub.close()


class ErogakiClient(TaskClient):
    def __init__(self, url: str) -> None:
        import dispatch  # puts the project root on sys.path

        from erogaki_common.protocol import Mode
        from erogaki_common.submit import Submitter

        del dispatch
        self.sub = Submitter(url)
        self.mode = Mode.BAR_MASKED

    async def start(self) -> None:
        await self.sub.start()

    async def round_trip(self, image: bytes) -> bytes:
        return await self.sub.decensor(image, self.mode, timeout=JOB_TIMEOUT_S)

    async def close(self) -> None:
        await self.sub.close()


class ArqClient(TaskClient):
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self.pool = await create_pool(RedisSettings.from_dsn(self.url))

    async def round_trip(self, image: bytes) -> bytes:
        from arq.constants import result_key_prefix

        from peers_jobs.arq_jobs import POLL_DELAY_S

        job = await self.pool.enqueue_job("identity", image)
        assert job is not None
        result: bytes = await job.result(timeout=JOB_TIMEOUT_S, poll_delay=POLL_DELAY_S)
        await self.pool.delete(result_key_prefix + job.job_id)
        return result

    async def close(self) -> None:
        await self.pool.aclose()


class CeleryClient:
    """Blocking calls inside the coroutine: nothing else runs on this loop."""

    async def start(self) -> None:
        from peers_jobs.celery_jobs import identity

        self.task = identity

    async def submit(self, image: bytes) -> Any:
        return self.task.delay(image)

    async def wait(self, handle: Any) -> bytes:
        result: bytes = handle.get(timeout=JOB_TIMEOUT_S)
        handle.forget()
        return result

    async def close(self) -> None:
        self.task.app.close()


class RQClient:
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(self.url)
        self.queue = Queue("peers", connection=self.redis)

    async def submit(self, image: bytes) -> Any:
        return self.queue.enqueue(
            "peers_jobs.rq_jobs.identity", image, result_ttl=60, failure_ttl=60
        )

    async def wait(self, handle: Any) -> bytes:
        result = handle.latest_result(timeout=JOB_TIMEOUT_S)
        if result is None or result.return_value is None:
            raise RuntimeError(f"rq job {handle.id}: no result ({result and result.exc_string})")
        handle.delete()
        return result.return_value  # type: ignore[no-any-return]

    async def close(self) -> None:
        self.redis.close()


def make_client(kind: str, url: str) -> Client:
    if kind == "floor":
        return FloorClient(url)
    if kind == "erogaki":
        return ErogakiClient(url)
    if kind == "arq":
        return ArqClient(url)
    if kind == "celery":
        return CeleryClient()
    if kind == "rq":
        return RQClient(url)
    raise ValueError(kind)


# --- phases ------------------------------------------------------------------------


async def one(client: Client, image: bytes) -> bytes:
    return await client.wait(await client.submit(image))


async def latency(client: Client, image: bytes, seconds: float, least: int) -> dict[str, Any]:
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while len(samples) < least or time.perf_counter() < end:
        t0 = time.perf_counter()
        result = await one(client, image)
        samples.append(time.perf_counter() - t0)
        if result != image:
            raise AssertionError("the result differs from the payload")
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))] * 1000, 3),
        "round_trips": len(samples),
    }


async def throughput(
    client: Client, image: bytes, cfg: dict[str, Any], seconds: float, least: int
) -> dict[str, Any]:
    """Keeps ``in_flight`` jobs submitted, waiting on the oldest.

    The rate is taken from the first answer (the pipeline is full) to the
    answer after which no more jobs go in, at least ``seconds`` and ``least``
    answers later; filling and draining the pipeline stay out of it. CPU is
    taken over the whole phase and divided by every job in it.
    """
    size = len(image)

    def cpu() -> tuple[float, float, float]:
        return (
            process_cpu(os.getpid()),
            tree_cpu(cfg["worker_pids"]),
            process_cpu(cfg["redis_pid"]),
        )

    cpu0 = cpu()
    window: deque[Any] = deque()
    done: list[float] = []
    for _ in range(cfg["in_flight"]):
        window.append(await client.submit(image))
    filling = True
    while window:
        result = await client.wait(window.popleft())
        if len(result) != size:
            raise AssertionError("the result differs from the payload")
        if filling:
            done.append(time.perf_counter())
            if done[-1] - done[0] < seconds or len(done) <= least:
                window.append(await client.submit(image))
            else:
                filling = False
        else:
            done.append(math.nan)  # drained: counted for CPU, not for the rate
    cpu1 = cpu()
    steady = [t - done[0] for t in done if not math.isnan(t)]
    elapsed = steady[-1]
    width = elapsed / SLICES
    counts = [0] * SLICES
    for t in steady[1:]:
        counts[min(SLICES - 1, int(t / width))] += 1
    rates = [c / width for c in counts]
    per_job = [(b - a) * 1000 / len(done) for a, b in zip(cpu0, cpu1, strict=True)]
    return {
        "jobs_per_s": round(statistics.median(rates), 1),
        "jobs_per_s_whole": round((len(steady) - 1) / elapsed, 1),
        "slice_jobs_per_s": [round(r, 1) for r in rates],
        "jobs": len(done),
        "seconds": round(elapsed, 2),
        "cpu_ms_per_job": {
            "submitter": round(per_job[0], 3),
            "workers": round(per_job[1], 3),
            "redis": round(per_job[2], 3),
            "total": round(sum(per_job), 3),
        },
    }


async def one_size(client: Client, image: bytes, cfg: dict[str, Any]) -> dict[str, Any]:
    # The first jobs also wait for the workers to come up.
    for _ in range(5):
        if await one(client, image) != image:
            raise AssertionError("the result differs from the payload")
    await throughput(client, image, cfg, cfg["warm_s"], 0)
    entry = await latency(client, image, cfg["latency_s"], cfg["least_round_trips"])
    entry.update(await throughput(client, image, cfg, cfg["throughput_s"], cfg["least_jobs"]))
    return entry


async def run(cfg: dict[str, Any]) -> dict[str, Any]:
    client = make_client(cfg["kind"], cfg["url"])
    await client.start()
    figures: dict[str, Any] = {}
    try:
        for name, size in cfg["sizes"].items():
            try:
                figures[name] = await one_size(client, os.urandom(size), cfg)
            except Exception as e:
                # A job that never comes back is a finding: say so, go on with the next size.
                figures[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    finally:
        await client.close()
    return figures


if __name__ == "__main__":
    sys.path.insert(0, BENCH)
    config = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(run(config))))
