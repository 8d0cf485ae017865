"""Dispatch benchmark: erogaki's submit-to-result round trip against the floor.

The floor issues the same Redis commands with a bare redis-py script and no
protocol logic: SET + RPUSH, a worker doing BLPOP / GET / SET, the submitter
waking on the keyevent and doing GET + DEL. erogaki adds its job hash, the
reliable claim (BLMOVE into a processing list), attempts, the checked finish
(WATCH, a state script, MULTI ... EXEC) and the cleanup of every key.

Both run against one private redis-server with an identity processor in 4
worker processes each; both fleets stay up for the whole run (the floor on a
queue of its own) and the two kinds take turns, floor and erogaki
alternately, in several rounds per image size. Per round and kind: the round
trip with one job in flight, then jobs per second with 16 in flight, and the
CPU each process spent per job in that phase (read from
/proc/<pid>/task/*/schedstat: nanoseconds on a CPU, not wall time). Ratios to
the floor are the median over rounds of each round's pair, so a stall of the
shared machine moves one round, not the figure; the spread of those ratios is
printed beside them. Prints a table on stderr and one JSON line on stdout.

    python bench/dispatch.py [--quick] [--rounds N] [--sizes 1MiB,8MiB]

``--profile DIR`` runs the workers under cProfile and writes one file per
worker process to DIR when the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from erogaki_common.embedded_redis import EmbeddedRedis  # noqa: E402
from erogaki_common.errors import Component  # noqa: E402
from erogaki_common.keys import Queue  # noqa: E402
from erogaki_common.protocol import Mode  # noqa: E402
from erogaki_common.submit import Submitter  # noqa: E402
from erogaki_common.worker import Done, Job, Outcome, Worker  # noqa: E402

# The floor's own queue: erogaki's workers stay up beside it and would take its ids.
QUEUE = "bench-floor:queue"
WORKERS = 4
IN_FLIGHT = 16
SIZES = {"64KiB": 64 * 1024, "1MiB": 1024 * 1024, "8MiB": 8 * 1024 * 1024}
KINDS = ("floor", "erogaki")
# Seconds per round and kind: one job in flight, then IN_FLIGHT in flight; and
# the fewest round trips and answers each phase counts.
FULL = {"rounds": 5, "latency_s": 1.5, "throughput_s": 3.0, "least_trips": 20, "least_jobs": 40}
QUICK = {"rounds": 2, "latency_s": 0.4, "throughput_s": 0.8, "least_trips": 10, "least_jobs": 16}
PROFILE_ENV = "DISPATCH_PROFILE_DIR"


# --- workers (run in their own processes) --------------------------------------


async def floor_worker(url: str) -> None:
    r = aioredis.Redis.from_url(url)
    while True:
        # Not blocking forever: redis-py's 5 s read timeout would end an idle
        # worker while erogaki takes its turn.
        popped = await r.blpop([QUEUE], 1)  # type: ignore[misc]
        if popped is None:
            continue
        job_id = popped[1]
        data = await r.get(b"censored-images:" + job_id)
        await r.set(b"decensored-images:" + job_id, data, ex=3600)


async def erogaki_worker(url: str, n: int) -> None:
    async def identity(job: Job) -> Outcome:
        return Done(job.data)

    worker = Worker(url, [Queue.DEEPCREAMPY_BAR], identity, component=Component.DEEPCREAMPY,
                    instance=f"bench-{os.getpid()}-{n}")  # fmt: skip
    worker.install_signal_handlers()
    await worker.run()


def worker_main(kind: str, url: str, n: int) -> None:
    async def floor_until_stopped() -> None:
        task = asyncio.create_task(floor_worker(url))
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    main = floor_until_stopped() if kind == "floor" else erogaki_worker(url, n)
    profile_dir = os.environ.get(PROFILE_ENV)
    if not profile_dir:
        asyncio.run(main)
        return
    import cProfile

    # CPU time, not wall time: on a loaded machine a send that wakes
    # redis-server often loses the core, and wall time would blame the send.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        asyncio.run(main)
    finally:
        profiler.disable()
        profiler.dump_stats(os.path.join(profile_dir, f"{kind}-{n}.prof"))


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


class ErogakiClient:
    def __init__(self, url: str) -> None:
        self.sub = Submitter(url)

    async def start(self) -> None:
        await self.sub.start()

    async def decensor(self, image: bytes) -> bytes:
        return await self.sub.decensor(image, Mode.BAR_MASKED, timeout=60)

    async def close(self) -> None:
        await self.sub.close()


# --- CPU per process -------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Time on a CPU of every thread of ``pid``, to the nanosecond."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
    return total / 1e9


class Meter:
    """CPU of the submitter (this process), one kind's workers and redis-server."""

    def __init__(self, worker_pids: list[int], redis_pid: int) -> None:
        self.groups = {"submitter": [os.getpid()], "workers": worker_pids, "redis": [redis_pid]}

    def read(self) -> dict[str, float]:
        return {k: sum(cpu_seconds(p) for p in pids) for k, pids in self.groups.items()}


# --- phases ----------------------------------------------------------------------


async def latency(
    decensor: Callable[[bytes], Awaitable[bytes]], image: bytes, seconds: float, least: int
) -> list[float]:
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while len(samples) < least or time.perf_counter() < end:
        t0 = time.perf_counter()
        result = await decensor(image)
        samples.append(time.perf_counter() - t0)
        if result != image:
            raise AssertionError("the result differs from the payload")
    return samples


async def throughput(
    decensor: Callable[[bytes], Awaitable[bytes]],
    image: bytes,
    meter: Meter,
    seconds: float,
    least: int,
) -> dict[str, Any]:
    """IN_FLIGHT jobs kept going for ``seconds`` (and ``least`` answers).

    The rate runs from the first answer to the last; CPU is taken over the
    whole phase and divided by every job in it.
    """
    size = len(image)
    least = max(least, 2)  # a rate needs two answers after the lanes filled
    answers: list[float] = []
    started = 0
    stop_at = time.perf_counter() + seconds

    async def lane() -> None:
        nonlocal started
        while time.perf_counter() < stop_at or started < least + IN_FLIGHT:
            started += 1
            if len(await decensor(image)) != size:
                raise AssertionError("the result differs from the payload")
            answers.append(time.perf_counter())

    cpu0 = meter.read()
    await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))
    cpu1 = meter.read()
    # The first answers come while the lanes fill: the rate counts from the
    # IN_FLIGHT-th answer, when every lane is busy.
    steady = answers[IN_FLIGHT - 1 :]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    return {
        "jobs_per_s": rate,
        "jobs": len(answers),
        "cpu_ms_per_job": {k: (cpu1[k] - cpu0[k]) * 1000 / len(answers) for k in cpu0},
    }


async def phase(
    kind: str,
    url: str,
    image: bytes,
    meter: Meter,
    cfg: dict[str, Any],
    warm: bool,
) -> dict[str, Any]:
    """One kind's turn: its submitter is the only one up (both would see every keyevent)."""
    client: FloorSubmitter | ErogakiClient = (
        FloorSubmitter(url) if kind == "floor" else ErogakiClient(url)
    )
    await client.start()
    try:
        for _ in range(3):  # connections up, workers awake
            assert await client.decensor(image) == image
        if warm:
            await throughput(client.decensor, image, meter, cfg["throughput_s"] / 2, 0)
        samples = await latency(client.decensor, image, cfg["latency_s"], cfg["least_trips"])
        result = await throughput(
            client.decensor, image, meter, cfg["throughput_s"], cfg["least_jobs"]
        )
    finally:
        await client.close()
    result["samples"] = samples
    return result


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in KINDS:
        samples = sorted(s for r in rounds for s in r[kind]["samples"])
        jobs = sum(r[kind]["jobs"] for r in rounds)
        cpu = {
            part: sum(r[kind]["cpu_ms_per_job"][part] * r[kind]["jobs"] for r in rounds) / jobs
            for part in ("submitter", "workers", "redis")
        }
        cpu["total"] = sum(cpu.values())
        out[kind] = {
            "p50_ms": round(statistics.median(samples) * 1000, 3),
            "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))] * 1000, 3),
            "round_trips": len(samples),
            "jobs_per_s": round(statistics.median(r[kind]["jobs_per_s"] for r in rounds), 1),
            "jobs_per_s_rounds": [round(r[kind]["jobs_per_s"], 1) for r in rounds],
            "jobs": jobs,
            "cpu_ms_per_job": {k: round(v, 3) for k, v in cpu.items()},
        }

    def paired(get: Callable[[dict[str, Any]], float]) -> list[float]:
        return [get(r["erogaki"]) / get(r["floor"]) for r in rounds]

    def p50(r: dict[str, Any]) -> float:
        return statistics.median(r["samples"])

    ratios: dict[str, Any] = {}
    for name, values in (
        ("p50", paired(p50)),
        ("throughput", paired(lambda r: r["jobs_per_s"])),
    ):
        ratios[name] = round(statistics.median(values), 3)
        ratios[f"{name}_rounds"] = [round(v, 3) for v in values]
    for part in ("submitter", "workers", "redis", "total"):
        f, o = out["floor"]["cpu_ms_per_job"][part], out["erogaki"]["cpu_ms_per_job"][part]
        ratios[f"cpu_{part}"] = round(o / f, 3)
    out["x_floor"] = ratios
    return out


async def run(sizes: dict[str, int], cfg: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with EmbeddedRedis(notify_flags="E$") as server:
        url = server.url()
        assert server.process is not None
        fleets = {kind: start_workers(kind, url) for kind in KINDS}
        try:
            meters = {k: Meter([p.pid for p in fleets[k]], server.process.pid) for k in KINDS}
            for name, size in sizes.items():
                image = os.urandom(size)
                rounds: list[dict[str, dict[str, Any]]] = []
                for n in range(cfg["rounds"]):
                    # Alternate who goes first, so a trend in the machine's load
                    # does not always favour the same kind.
                    order = KINDS if n % 2 == 0 else KINDS[::-1]
                    rounds.append({
                        kind: await phase(kind, url, image, meters[kind], cfg, warm=n == 0)
                        for kind in order
                    })  # fmt: skip
                report[name] = summarize(rounds)
                print_size(name, report[name])
        finally:
            for procs in fleets.values():
                stop_workers(procs)
    return report


def print_size(name: str, entry: dict[str, Any]) -> None:
    def w(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    w(f"{'size':>6} {'kind':8} {'p50 ms':>8} {'p95 ms':>8} {'jobs/s':>8}   "
      f"{'CPU ms/job: submitter':>21} {'workers':>8} {'redis':>7} {'total':>7}")  # fmt: skip
    for kind in KINDS:
        f, c = entry[kind], entry[kind]["cpu_ms_per_job"]
        w(f"{name:>6} {kind:8} {f['p50_ms']:8.2f} {f['p95_ms']:8.2f} {f['jobs_per_s']:8.1f}   "
          f"{c['submitter']:21.3f} {c['workers']:8.3f} {c['redis']:7.3f} "
          f"{c['total']:7.3f}")  # fmt: skip
    r = entry["x_floor"]
    w(f"{'':>6} {'x floor':8} {r['p50']:8.3f} {'':8} {r['throughput']:8.3f}   "
      f"{r['cpu_submitter']:21.3f} {r['cpu_workers']:8.3f} {r['cpu_redis']:7.3f} "
      f"{r['cpu_total']:7.3f}")  # fmt: skip
    w(f"{'':>6} {'rounds':8} p50 x {min(r['p50_rounds']):.2f}-{max(r['p50_rounds']):.2f}, "
      f"jobs/s x {min(r['throughput_rounds']):.2f}-{max(r['throughput_rounds']):.2f}")  # fmt: skip


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two short rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds per size (default 5, quick 2)")
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated sizes")
    parser.add_argument("--profile", metavar="DIR", help="cProfile the workers into DIR")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, url, n = args.worker
        worker_main(kind, url, int(n))
        return
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    sizes = {name: SIZES[name] for name in args.sizes.split(",")}
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        os.environ[PROFILE_ENV] = os.path.abspath(args.profile)
    load_before = loadavg()
    started = time.monotonic()
    figures = asyncio.run(run(sizes, cfg))
    report = {
        "benchmark": "dispatch",
        "python": sys.version.split()[0],
        "workers": WORKERS,
        "in_flight": IN_FLIGHT,
        "phases": cfg,
        "load_before": load_before,
        "load_after": loadavg(),
        "wall_s": round(time.monotonic() - started, 1),
        "sizes": figures,
    }
    print(f"load average {load_before} before, {report['load_after']} after; "
          f"{report['wall_s']} s", file=sys.stderr)  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()
