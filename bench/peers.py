"""Peers benchmark: the same identity job through erogaki, arq, Celery and RQ.

Each job carries random bytes to a worker that returns them unchanged; the
submitter checks it got them back. The bare redis-py floor of
``bench/dispatch.py`` (SET + RPUSH, BLPOP + GET + SET, the keyevent wait)
runs first and again last in the same run, and every ratio is to the mean
of the two, so a change in the machine's load between kinds shows up as a
gap between the two floor rows instead of inside a ratio.

Each peer gets a venv of its own under ``~/.cache/erogaki-bench/peers/<name>``
(made on the first run with ``python -m venv`` and ``pip install`` of the
pinned version below: arq pins an older redis-py than ours) and runs its own
worker command with as many worker processes as ``bench/dispatch.py`` uses.
All of them talk to one private redis-server on a free loopback port,
emptied between kinds.

Per payload size (64 KiB, 1 MiB, 8 MiB): round-trip p50 and p95 with one job
in flight, jobs per second with 16 in flight (the median of five equal
slices of the phase), and CPU milliseconds per job of the submitter, the
workers (with their children) and redis-server during that phase, read from
/proc. Prints a table on stderr and one JSON line on stdout.

    python bench/peers.py [--quick] [--only arq,rq]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import dispatch  # noqa: E402

from erogaki_common.embedded_redis import EmbeddedRedis  # noqa: E402

PEERS = {
    "arq": "arq==0.28.0",
    "celery": "celery[redis]==5.7.0",
    "rq": "rq==3.0.0",
}
KINDS = ["erogaki", *PEERS]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "erogaki-bench" / "peers"
SIZES = {"64KiB": 64 * 1024, "1MiB": 1024 * 1024, "8MiB": 8 * 1024 * 1024}
WORKERS = dispatch.WORKERS
IN_FLIGHT = dispatch.IN_FLIGHT
# per size: seconds of warm-up burst, of one job in flight, of the throughput
# phase, and the fewest answers counted in that phase (eight a slice at least)
FULL = (1.5, 4.0, 8.0, 40)
QUICK = (0.3, 1.0, 2.0, 15)
DRIVER_TIMEOUT_S = 600


def venv_python(peer: str) -> Path:
    """The peer's venv, made and filled on first use; a marker names what is installed."""
    home = CACHE / peer
    python = home / "bin" / "python"
    marker = home / "erogaki-bench-installed"
    spec = PEERS[peer]
    if marker.exists() and marker.read_text() == spec and python.exists():
        return python
    print(f"peers: making {home} with {spec} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec],
        check=True,
    )
    marker.write_text(spec)
    return python


def start_peer_workers(kind: str, url: str, log: Any) -> list[subprocess.Popen[bytes]]:
    bindir = CACHE / kind / "bin"
    if kind == "arq":
        one = [str(bindir / "arq"), "peers_jobs.arq_jobs.WorkerSettings"]
        commands = [one] * WORKERS
    elif kind == "celery":
        # One parent whose prefork pool has WORKERS processes doing the jobs.
        # Gossip and mingle only matter for a cluster; they are off to start fast.
        commands = [
            [str(bindir / "celery"), "-A", "peers_jobs.celery_jobs", "worker",
             "-P", "prefork", "-c", str(WORKERS), "-l", "WARNING",
             "--without-gossip", "--without-mingle"]
        ]  # fmt: skip
    elif kind == "rq":
        # rq's default worker forks a work horse per job: that is how RQ runs.
        commands = [[str(bindir / "rq"), "worker", "-u", url, "--quiet", "peers"]] * WORKERS
    else:
        raise ValueError(kind)
    env = {**os.environ, "PEERS_REDIS_URL": url, "PYTHONPATH": str(BENCH)}
    # Celery will not take pickle as root without it; this redis is private
    # to the run and only listens on loopback.
    env["C_FORCE_ROOT"] = "1"
    return [
        subprocess.Popen(c, cwd=BENCH, env=env, stdout=log, stderr=log, start_new_session=True)
        for c in commands
    ]


def stop_peer_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    for p in procs:
        # Celery's pool children or an RQ horse left behind by a slow shutdown.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)


def run_kind(kind: str, server: EmbeddedRedis, phases: tuple[float, float, float, int]) -> Any:
    url = server.url()
    redis.Redis.from_url(url).flushall()
    if kind in ("floor", "erogaki"):
        python = Path(sys.executable)
        procs = dispatch.start_workers(kind, url)
        stop = dispatch.stop_workers
    else:
        python = venv_python(kind)
        (CACHE / "logs").mkdir(parents=True, exist_ok=True)
        with open(CACHE / "logs" / f"{kind}.log", "ab") as log:
            procs = start_peer_workers(kind, url, log)
        stop = stop_peer_workers
    assert server.process is not None
    warm_s, latency_s, throughput_s, least_jobs = phases
    cfg = {
        "kind": kind,
        "url": url,
        "sizes": SIZES,
        "in_flight": IN_FLIGHT,
        "warm_s": warm_s,
        "latency_s": latency_s,
        "least_round_trips": 20,
        "throughput_s": throughput_s,
        "least_jobs": least_jobs,
        "worker_pids": [p.pid for p in procs],
        "redis_pid": server.process.pid,
    }
    t0 = time.monotonic()
    driver = subprocess.Popen(
        [str(python), str(BENCH / "peers_jobs" / "driver.py"), json.dumps(cfg)],
        cwd=BENCH,
        env={**os.environ, "PEERS_REDIS_URL": url, "PYTHONPATH": str(BENCH)},
        stdout=subprocess.PIPE,
    )
    error = ""
    try:
        # A worker that dies at start (a refused setting) would otherwise
        # leave the driver waiting out its job timeouts.
        while driver.poll() is None and not error:
            dead = [p.returncode for p in procs if p.poll() is not None]
            if dead:
                error = f"worker exited {dead[0]}"
            elif time.monotonic() - t0 > DRIVER_TIMEOUT_S:
                error = f"over {DRIVER_TIMEOUT_S} s"
            else:
                time.sleep(0.2)
        if error:
            driver.kill()
        stdout = driver.communicate()[0]
    finally:
        stop(procs)
    print(f"peers: {kind} took {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if not error and driver.returncode != 0:
        error = f"driver exited {driver.returncode}"
    return {"error": error} if error else json.loads(stdout)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def ratios(fig: dict[str, Any], floor: dict[str, Any]) -> dict[str, float]:
    return {
        "p50": round(fig["p50_ms"] / floor["p50_ms"], 2),
        "p95": round(fig["p95_ms"] / floor["p95_ms"], 2),
        "throughput": round(fig["jobs_per_s"] / floor["jobs_per_s"], 3),
        "cpu": round(fig["cpu_ms_per_job"]["total"] / floor["cpu_ms_per_job"]["total"], 2),
    }


def mean_floor(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    def avg(x: float, y: float) -> float:
        return round((x + y) / 2, 3)

    return {
        "p50_ms": avg(a["p50_ms"], b["p50_ms"]),
        "p95_ms": avg(a["p95_ms"], b["p95_ms"]),
        "jobs_per_s": avg(a["jobs_per_s"], b["jobs_per_s"]),
        "cpu_ms_per_job": {
            k: avg(a["cpu_ms_per_job"][k], b["cpu_ms_per_job"][k]) for k in a["cpu_ms_per_job"]
        },
    }


def print_table(report: dict[str, Any]) -> None:
    def w(line: str) -> None:
        print(line, file=sys.stderr)

    w(f"load average {report['load_before']} before, {report['load_after']} after; "
      f"{WORKERS} worker processes each, {IN_FLIGHT} jobs in flight for jobs/s")  # fmt: skip
    w(f"{'size':>6} {'kind':10} {'p50 ms':>8} {'p95 ms':>8} {'jobs/s':>8} "
      f"{'cpu ms/job: sub':>15} {'workers':>8} {'redis':>7} {'total':>7}   "
      f"{'x floor: p50':>12} {'jobs/s':>7} {'cpu':>6}")  # fmt: skip
    for name, per_kind in report["sizes"].items():
        for kind, fig in per_kind.items():
            if "error" in fig:
                w(f"{name:>6} {kind:10} {fig['error']}")
                continue
            c = fig["cpu_ms_per_job"]
            r = fig.get("x_floor")
            tail = f"   {r['p50']:12.2f} {r['throughput']:7.3f} {r['cpu']:6.2f}" if r else ""
            w(f"{name:>6} {kind:10} {fig['p50_ms']:8.2f} {fig['p95_ms']:8.2f} "
              f"{fig['jobs_per_s']:8.1f} {c['submitter']:15.2f} {c['workers']:8.2f} "
              f"{c['redis']:7.2f} {c['total']:7.2f}{tail}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, for a smoke run")
    parser.add_argument("--only", default=",".join(KINDS), help="comma-separated kinds")
    args = parser.parse_args()
    kinds = [k for k in args.only.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    for peer in kinds:
        if peer in PEERS:
            venv_python(peer)  # before the clock starts: pip is slow

    phases = QUICK if args.quick else FULL
    started = time.monotonic()
    load_before = loadavg()
    results: dict[str, Any] = {}
    (CACHE / "logs").mkdir(parents=True, exist_ok=True)
    redis_log = CACHE / "logs" / "redis-server.log"
    redis_log.write_text("")
    cut: dict[str, int] = {}

    def cut_count() -> int:
        # redis-server drops a subscriber whose unread messages pass
        # client-output-buffer-limit (32 MiB by default): Celery's results
        # travel over PUBLISH, so big ones can be lost this way.
        return redis_log.read_text(errors="replace").count("output buffer limits")

    with EmbeddedRedis(notify_flags="E$", extra_args=["--logfile", str(redis_log)]) as server:
        first = run_kind("floor", server, phases)
        for kind in kinds:
            before = cut_count()
            results[kind] = run_kind(kind, server, phases)
            cut[kind] = cut_count() - before
        last = run_kind("floor", server, phases)
    if "error" in first or "error" in last:
        raise SystemExit(f"the floor failed: {first} {last}")

    report: dict[str, Any] = {
        "benchmark": "peers",
        "quick": args.quick,
        "versions": PEERS,
        "python": sys.version.split()[0],
        "workers": WORKERS,
        "in_flight": IN_FLIGHT,
        "phases": dict(
            zip(("warm_s", "one_in_flight_s", "throughput_s", "least_jobs"), phases, strict=True)
        ),
        "load_before": load_before,
        "load_after": loadavg(),
        "wall_s": round(time.monotonic() - started, 1),
        "subscribers_cut_by_redis": cut,
        "sizes": {},
    }
    for name in SIZES:
        have_floor = "error" not in first[name] and "error" not in last[name]
        floor = mean_floor(first[name], last[name]) if have_floor else None
        per_kind: dict[str, Any] = {"floor (first)": first[name], "floor (last)": last[name]}
        for kind in kinds:
            fig = results[kind].get(name, results[kind])
            if "error" not in fig and floor is not None:
                fig = {**fig, "x_floor": ratios(fig, floor)}
            per_kind[kind] = fig
        report["sizes"][name] = per_kind
    print_table(report)
    for kind, n in cut.items():
        if n:
            print(f"redis-server cut {kind}'s subscriber {n} times (output buffer limit)",
                  file=sys.stderr)  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()
