"""``erogaki``: argument parsing and exit codes; the work lives in the packages.

Exit codes: 0 success; 1 the job failed (a worker's error); 2 bad usage,
settings or input file; 3 Redis unreachable or the job was lost; 4 the
deadline passed with no answer; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from erogaki_common.errors import (
    ConfigError,
    DeadlineExceeded,
    JobFailed,
    JobLost,
    RedisUnavailable,
)
from erogaki_common.keys import HEARTBEAT_INTERVAL, HEARTBEAT_TTL
from erogaki_common.settings import Settings, get_settings

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_REDIS, EXIT_DEADLINE = 0, 1, 2, 3, 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erogaki",
        description="Self-hosted decensoring bot for Discord, with Redis-connected workers.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only problems")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    decensor = commands.add_parser(
        "decensor",
        help="submit one image through Redis, as the bot does, and wait for the result",
        description="Submit one image through Redis exactly as the bot does and wait for it.",
    )
    decensor.add_argument(
        "mode",
        choices=["bar", "mosaic", "auto"],
        help="what censors the image (auto: look for both and remove whichever is found)",
    )
    decensor.add_argument("input", type=Path, help="PNG, JPEG, WebP, GIF or AVIF file")
    decensor.add_argument(
        "-o", "--output", type=Path, help="where to write the PNG (default: INPUT.decensored.png)"
    )
    decensor.add_argument(
        "--masked",
        action="store_true",
        help="bar mode: the bars are already painted pure green (0,255,0); skip detection",
    )
    decensor.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="seconds to wait for the result (default: EROGAKI_JOB_TIMEOUT, 300)",
    )

    commands.add_parser(
        "up",
        help="run everything on this machine: Redis (embedded if REDIS_URL is unset), "
        "both workers on the cpu backend, and the bot if DISCORD_TOKEN is set",
        description="Run Redis (embedded when REDIS_URL is unset), both workers on the cpu "
        "backend and, when DISCORD_TOKEN is set, the bot. Ctrl-C stops everything.",
    )
    demo = commands.add_parser(
        "demo",
        help="decensor the shipped synthetic sample image on a private local stack",
        description="Start a private stack (as `erogaki up`, without the bot), decensor the "
        "shipped synthetic sample in bar and mosaic mode, write the results, stop.",
    )
    demo.add_argument(
        "-o", "--output", type=Path, default=Path("erogaki-demo"),
        help="folder for the results (default: ./erogaki-demo)",
    )  # fmt: skip

    bot = commands.add_parser(
        "bot",
        help="run the Discord bot",
        description="Run the Discord bot (needs DISCORD_TOKEN). Sync commands once with --sync.",
    )
    bot.add_argument(
        "--sync",
        action="store_true",
        help="register the slash commands with Discord, then exit (do it after each upgrade)",
    )
    bot.add_argument(
        "--guild", type=int, metavar="ID",
        help="with --sync: register for this server only (appears at once; global takes longer)",
    )  # fmt: skip

    worker = commands.add_parser(
        "worker",
        help="run a hent-AI or DeepCreamPy worker loop",
        description="Run one worker loop until SIGTERM or Ctrl-C (the current job finishes).",
    )
    worker.add_argument("name", choices=["hent-ai", "deepcreampy"], help="which worker")
    worker.add_argument(
        "--backend", choices=["cpu", "onnx"], help="model backend (default: EROGAKI_BACKEND, cpu)"
    )
    worker.add_argument(
        "--instance", help="name in errors, logs and status (default: EROGAKI_INSTANCE, host-pid)"
    )
    worker.add_argument(
        "--concurrency", type=int, default=1, metavar="N",
        help="jobs processed at once (default 1: one GPU job at a time)",
    )  # fmt: skip
    worker.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on this port"
    )
    worker.add_argument(
        "--burst", action="store_true", help="exit once the queues are empty (for tests, batches)"
    )
    worker.add_argument(
        "--heartbeat-interval", type=float, default=HEARTBEAT_INTERVAL, metavar="S",
        help=f"seconds between heartbeats (default {HEARTBEAT_INTERVAL:g})",
    )  # fmt: skip
    worker.add_argument(
        "--heartbeat-ttl", type=int, default=HEARTBEAT_TTL, metavar="S",
        help=f"seconds without a heartbeat before others re-queue this worker's jobs "
        f"(default {HEARTBEAT_TTL})",
    )  # fmt: skip

    health = commands.add_parser(
        "health",
        help="exit 0 if a worker or bot on this host is alive (container health checks)",
        description="Exit 0 when Redis holds a live heartbeat of a worker (or bot) running on "
        "this host, 1 otherwise. Meant for container health checks.",
    )
    health.add_argument("what", choices=["worker", "bot"])

    commands.add_parser(
        "status",
        help="queue lengths, live workers, oldest waiting job",
        description="Show queue lengths, live workers and the oldest waiting job.",
    )

    models = commands.add_parser(
        "models",
        help="check the onnx backend's model files (docs/models.md)",
        description="Work with the onnx backend's model files (docs/models.md).",
    )
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    check = models_commands.add_parser(
        "check",
        help="load, validate and run every model the configured workers would load",
        description="Load every model the configured onnx workers would load, check it "
        "against its contract, run it once on a synthetic picture, and print file, contract, "
        "execution provider, load time, latency and licence note. Exit 2 if any fails.",
    )
    check.add_argument(
        "--bench", action="store_true", help="run each model 20 times and print p50 and p95"
    )
    backup = commands.add_parser(
        "settings",
        help="export or import every Discord server's bot settings (JSON)",
        description="Back up (export) or restore (import) the settings each Discord server's "
        "moderators chose with /erogaki settings. They are the one kind of key kept without "
        "a TTL. Import restores each server in the file exactly; other servers are untouched.",
    )
    backup.add_argument("action", choices=["export", "import"])
    backup.add_argument("file", nargs="?", default="-", help="JSON file (default: - for stdio)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(sys.argv[1:] if argv is None else argv))


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    # Long-running commands log their work; one-shot commands only problems.
    quiet = args.quiet or args.command in (
        "decensor", "status", "demo", "health", "models", "settings"
    )  # fmt: skip
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"erogaki: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "decensor":
            return asyncio.run(decensor(args, settings))
        if args.command == "status":
            return asyncio.run(status(settings))
        if args.command == "health":
            return asyncio.run(health(args.what, settings))
        if args.command == "worker":
            return worker(args, settings)
        if args.command == "bot":
            return run_bot(args, settings)
        if args.command == "up":
            from erogaki.up import up

            return asyncio.run(up(settings))
        if args.command == "demo":
            from erogaki.up import demo

            return demo(settings, args.output)
        if args.command == "settings":
            from erogaki import settings_backup as sb

            go = sb.export_settings if args.action == "export" else sb.import_settings
            return go(settings, args.file)
        if args.command == "models":
            from erogaki.models_check import check

            return check(settings, args.bench)
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


async def decensor(args: argparse.Namespace, settings: Settings) -> int:
    from erogaki_common.images import ImageError, Limits, check_bytes
    from erogaki_common.protocol import Mode
    from erogaki_common.submit import Submitter

    if args.masked and args.mode != "bar":
        print("erogaki: --masked only applies to bar mode", file=sys.stderr)
        return EXIT_USAGE
    try:
        image = args.input.read_bytes()
    except OSError as exc:
        print(f"erogaki: cannot read {args.input}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        check_bytes(image, Limits(settings.max_image_bytes, settings.max_image_pixels))
    except ImageError as exc:
        print(f"erogaki: {args.input}: {exc.description}", file=sys.stderr)
        return EXIT_USAGE
    mode = Mode.BAR_MASKED if args.masked else Mode(args.mode)
    timeout = args.timeout or settings.job_timeout
    beside_input = args.input.with_name(args.input.stem + ".decensored.png")
    output = args.output or beside_input
    # Said now, not after both workers spent their time on the job.
    problem = _unwritable(output)
    if problem:
        print(f"erogaki: cannot write the result to {output}: {problem}", file=sys.stderr)
        return EXIT_USAGE

    started = time.monotonic()
    async with Submitter(settings.redis_url) as submitter:
        job_id: str | None = None
        try:
            job_id = await submitter.submit(image, mode, timeout=timeout)
            result = await submitter.result(job_id)
        except JobFailed as exc:
            print(f"erogaki: the job failed\n{exc.info.format()}", file=sys.stderr)
            return EXIT_JOB_FAILED
        except (RedisUnavailable, JobLost) as exc:
            print(f"erogaki: {exc}", file=sys.stderr)
            return EXIT_REDIS
        except DeadlineExceeded as exc:
            print(f"erogaki: timed out after {timeout:g} s. {exc}", file=sys.stderr)
            return EXIT_DEADLINE
        except asyncio.CancelledError:
            # Ctrl-C: take the job back out of the queue before leaving.
            if job_id is not None:
                await asyncio.shield(submitter.cancel(job_id))
            raise
    try:
        output.write_bytes(result)
    except OSError as exc:
        # The path went bad while the job ran: keep the result anyway.
        if output == beside_input:
            print(f"erogaki: cannot write {output}: {exc.strerror}", file=sys.stderr)
            return EXIT_JOB_FAILED
        try:
            beside_input.write_bytes(result)
        except OSError as again:
            print(f"erogaki: cannot write {output} ({exc.strerror}) nor {beside_input} "
                  f"({again.strerror}); the result is lost", file=sys.stderr)  # fmt: skip
            return EXIT_JOB_FAILED
        print(f"erogaki: cannot write {output} ({exc.strerror}); saved the result as "
              f"{beside_input}", file=sys.stderr)  # fmt: skip
        return EXIT_JOB_FAILED
    print(f"wrote {output} ({len(result)} bytes) in {time.monotonic() - started:.2f} s")
    return EXIT_OK


def _unwritable(output: Path) -> str | None:
    """Why ``output`` can't take a file, or None. Tries a scratch file in its
    directory: permission bits say nothing for root or read-only mounts."""
    if output.is_dir():
        return "it is a directory"
    parent = output.parent
    if not parent.exists():
        return f"the directory {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    scratch = parent / f".erogaki-write-test-{os.getpid()}"
    try:
        scratch.write_bytes(b"")
        scratch.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    if output.exists() and not os.access(output, os.W_OK):
        return "the file is not writable"
    return None


def run_bot(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.discord_token:
        print(
            "erogaki: DISCORD_TOKEN is not set. Create a bot in the Discord developer portal "
            "(see the README) and put its token in .env.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.guild is not None and not args.sync:
        print("erogaki: --guild only applies with --sync", file=sys.stderr)
        return EXIT_USAGE
    from bot.app import run_bot as run

    try:
        asyncio.run(run(settings, sync=args.sync, guild_id=args.guild))
    except ConfigError as exc:
        print(f"erogaki: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.runner import WorkerOptions, run

    if args.concurrency < 1:
        print("erogaki: --concurrency must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    options = WorkerOptions(
        worker=args.name,
        backend=args.backend or settings.backend,
        instance=args.instance or settings.instance,
        concurrency=args.concurrency,
        metrics_port=args.metrics_port,
        burst=args.burst,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_ttl=args.heartbeat_ttl,
    )
    try:
        asyncio.run(run(options, settings))
    except ConfigError as exc:
        print(f"erogaki: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


async def health(what: str, settings: Settings) -> int:
    import socket

    from bot.jobs import host_key
    from erogaki_common.redis_io import CONNECTION_ERRORS, connect
    from erogaki_common.status import fleet_status

    host = socket.gethostname()
    client = connect(settings.redis_url)
    try:
        if what == "worker":
            alive = any(w.get("host") == host for w in (await fleet_status(client)).workers)
        else:
            alive = bool(await client.exists(host_key(host)))
    except CONNECTION_ERRORS as exc:
        print(f"erogaki: Redis unreachable: {exc}", file=sys.stderr)
        return EXIT_JOB_FAILED
    finally:
        await client.aclose()
    if not alive:
        print(f"erogaki: no live {what} on {host}", file=sys.stderr)
    return EXIT_OK if alive else EXIT_JOB_FAILED


async def status(settings: Settings) -> int:
    from erogaki_common.redis_io import CONNECTION_ERRORS, connect, safe_url
    from erogaki_common.status import fleet_status

    client = connect(settings.redis_url)
    try:
        report = await fleet_status(client)
    except CONNECTION_ERRORS as exc:
        url = safe_url(settings.redis_url)
        print(f"erogaki: Redis at {url} is unreachable: {exc}", file=sys.stderr)
        return EXIT_REDIS
    finally:
        await client.aclose()
    print(report.format())
    return EXIT_OK
