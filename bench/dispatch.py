"""Dispatch benchmark: erogaki's submit-to-result round trip against the floor.

The floor issues the same Redis commands with a bare redis-py script and no
protocol logic: SET + RPUSH, a worker doing BLPOP / GET / SET, the submitter
waking on the keyevent and doing GET + DEL. erogaki adds its job hash, the
reliable claim (BLMOVE into a processing list), attempts, the Lua finish and
the cleanup of every key.

Both run against the same private redis-server, with an identity processor in
4 worker processes each. Per image size: round-trip p50/p99 with one job in
flight, and jobs per second with 16 in flight. Prints a table on stderr and
one JSON line on stdout.

    python bench/dispatch.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from erogaki_common.embedded_redis import EmbeddedRedis  # noqa: E402
from erogaki_common.errors import Component  # noqa: E402
from erogaki_common.keys import Queue  # noqa: E402
from erogaki_common.protocol import Mode  # noqa: E402
from erogaki_common.submit import Submitter  # noqa: E402
from erogaki_common.worker import Done, Job, Outcome, Worker  # noqa: E402

QUEUE = Queue.DEEPCREAMPY_BAR.value
WORKERS = 4
IN_FLIGHT = 16
SIZES = {"64KiB": 64 * 1024, "1MiB": 1024 * 1024, "8MiB": 8 * 1024 * 1024}
# (sequential jobs, throughput jobs) per size
COUNTS = {"64KiB": (300, 600), "1MiB": (150, 300), "8MiB": (30, 60)}


# --- workers (run in their own processes) --------------------------------------


async def floor_worker(url: str) -> None:
    r = aioredis.Redis.from_url(url)
    while True:
        _, job_id = await r.blpop([QUEUE], 0)  # type: ignore[misc]
        data = await r.get(b"censored-images:" + job_id)
        await r.set(b"decensored-images:" + job_id, data, ex=3600)


async def erogaki_worker(url: str, n: int) -> None:
    async def identity(job: Job) -> Outcome:
        return Done(job.data)

    worker = Worker(url, [Queue.DEEPCREAMPY_BAR], identity, component=Component.DEEPCREAMPY,
                    instance=f"bench-{os.getpid()}-{n}")  # fmt: skip
    worker.install_signal_handlers()
    await worker.run()


# --- submitters ------------------------------------------------------------------


class FloorSubmitter:
    """The minimal client: one subscription, futures keyed by result key."""

    def __init__(self, url: str) -> None:
        self.r = aioredis.Redis.from_url(url)
        self.waiting: dict[bytes, asyncio.Future[None]] = {}

    async def start(self) -> None:
        self.pubsub = self.r.pubsub()
        await self.pubsub.subscribe("__keyevent@0__:set")
        await self.pubsub.get_message(timeout=5)  # the subscribe confirmation
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.pubsub.listen():
            future = self.waiting.pop(msg["data"], None)
            if future is not None:
                future.set_result(None)

    async def decensor(self, image: bytes) -> bytes:
        job_id = uuid.uuid4().hex
        result_key = f"decensored-images:{job_id}".encode()
        done = asyncio.get_running_loop().create_future()
        self.waiting[result_key] = done
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.set(f"censored-images:{job_id}", image)
            pipe.rpush(QUEUE, job_id)
            await pipe.execute()
        await done
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.get(result_key)
            pipe.delete(result_key, f"censored-images:{job_id}")
            result, _ = await pipe.execute()
        return result  # type: ignore[no-any-return]

    async def close(self) -> None:
        self.reader.cancel()
        await self.pubsub.aclose()
        await self.r.aclose()


async def measure(
    decensor: Callable[[bytes], Awaitable[bytes]], size: int, sequential: int, parallel: int
) -> dict[str, float]:
    image = os.urandom(size)
    for _ in range(5):  # warm connections and caches
        assert await decensor(image) == image
    samples = []
    for _ in range(sequential):
        t0 = time.perf_counter()
        result = await decensor(image)
        samples.append(time.perf_counter() - t0)
        assert len(result) == size
    samples.sort()

    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with gate:
            assert len(await decensor(image)) == size

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(parallel)))
    elapsed = time.perf_counter() - t0
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 3),
        "jobs_per_s": round(parallel / elapsed, 1),
    }


def start_workers(kind: str, url: str) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen([sys.executable, __file__, "--worker", kind, url, str(n)], cwd=ROOT)
        for n in range(WORKERS)
    ]


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(10)


async def run_kind(kind: str, url: str, quick: bool) -> dict[str, dict[str, float]]:
    procs = start_workers(kind, url)
    try:
        if kind == "floor":
            floor = FloorSubmitter(url)
            await floor.start()
            decensor, close = floor.decensor, floor.close
        else:
            sub = Submitter(url)
            await sub.start()

            async def decensor(image: bytes) -> bytes:
                return await sub.decensor(image, Mode.BAR_MASKED, timeout=60)

            close = sub.close
        figures = {}
        for name, size in SIZES.items():
            seq, par = COUNTS[name]
            if quick:
                seq, par = max(10, seq // 10), max(20, par // 10)
            figures[name] = await measure(decensor, size, seq, par)
        await close()
        return figures
    finally:
        stop_workers(procs)


async def main(quick: bool) -> None:
    with EmbeddedRedis(notify_flags="E$") as server:
        url = server.url()
        floor = await run_kind("floor", url, quick)
        ours = await run_kind("erogaki", url, quick)
    report: dict[str, object] = {"benchmark": "dispatch", "workers": WORKERS,
                                 "in_flight": IN_FLIGHT, "sizes": {}}  # fmt: skip
    print(f"{'size':>6} {'':8} {'p50 ms':>9} {'p99 ms':>9} {'jobs/s':>9}", file=sys.stderr)
    for name in SIZES:
        f, o = floor[name], ours[name]
        entry = {
            "floor": f,
            "erogaki": o,
            "p50_ratio": round(o["p50_ms"] / f["p50_ms"], 3),
            "throughput_ratio": round(o["jobs_per_s"] / f["jobs_per_s"], 3),
        }
        report["sizes"][name] = entry  # type: ignore[index]
        for label, fig in (("floor", f), ("erogaki", o)):
            print(f"{name:>6} {label:8} {fig['p50_ms']:9.2f} {fig['p99_ms']:9.2f} "
                  f"{fig['jobs_per_s']:9.1f}", file=sys.stderr)  # fmt: skip
        print(f"{'':>6} {'ratio':8} {entry['p50_ratio']:9.2f} {'':9} "
              f"{entry['throughput_ratio']:9.2f}", file=sys.stderr)  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the jobs")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, url, n = args.worker
        try:
            if kind == "floor":
                asyncio.run(floor_worker(url))
            else:
                asyncio.run(erogaki_worker(url, int(n)))
        except KeyboardInterrupt:
            pass
    else:
        asyncio.run(main(args.quick))
