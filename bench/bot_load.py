"""Load test of the Discord bot: many users at once, through the fake Discord.

The real bot (``erogaki bot``, its own process) talks to the fake Discord of
tests/fake_discord.py (REST + gateway on 127.0.0.1) and to a private
redis-server, with the cpu workers in processes of their own. USERS users each
send one ``/decensor bar`` request of 1 to 4 images (a share of them
4000x3000) at random moments within WINDOW seconds. Then:

* every interaction must be acknowledged within Discord's 3 s;
* every request must end in its images or a readable refusal or error;
* no limit slot, pending record or job key may be left;
* the bot's peak RSS and its event loop's longest stall (its own watch, see
  bot/app.py; target: none over 100 ms) are reported.

Prints a table on stderr and one JSON line on stdout.

    python bench/bot_load.py [--users 50] [--window 10] [--big 0.1] [--seed 1]
    python bench/bot_load.py --quick   # the short form the tests run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.delete import only_delete  # noqa: E402
from erogaki_common import keys  # noqa: E402
from erogaki_common.embedded_redis import EmbeddedRedis  # noqa: E402
from tests.fake_discord import FakeDiscord, InteractionHandle  # noqa: E402
from workers.imageops import synthetic as syn  # noqa: E402

ACK_DEADLINE = 3.0
IMAGE_OPTIONS = ("image", "image2", "image3", "image4")
# Keys that outlive requests by design: worker heartbeats, the wait history and
# the last hour's requests (/erogaki status).
# Keys meant to outlive a request (all with a TTL but the settings and instances).
LASTING = (
    keys.HEARTBEAT_PREFIX, keys.INSTANCES, keys.BOT_RECENT_WAITS, keys.BOT_SERVED_ALL,
    keys.BOT_DONE_PREFIX,
)  # fmt: skip


@dataclass
class Plan:
    users: int = 50
    window: float = 10.0
    big: float = 0.1  # share of images that are 4000x3000
    seed: int = 1
    job_timeout: float = 600.0
    small: int = 384  # side of the other images


QUICK = Plan(users=8, window=2.0, big=0.0, seed=1, job_timeout=120.0, small=256)


@dataclass
class Report:
    users: int
    images: int
    big_images: int
    outcomes: dict[str, int]
    ack_max_s: float
    ack_p95_s: float
    late_acks: int
    unfinished: int
    bot_peak_rss_mib: float
    # The bot's child processes (re-fitting pool, forkserver), each its own peak, summed.
    pool_peak_rss_mib: float
    longest_stall_ms: float
    stall_warnings: int
    # Of the stalls over 100 ms, the most CPU the loop's thread used in one: near
    # the stall's length means work on the loop; near zero, no core was free.
    stall_loop_cpu_max_ms: float
    leftover_keys: list[str]
    wall_s: float
    notes: list[str] = field(default_factory=list)


def barred(seed: int, size: tuple[int, int]) -> bytes:
    scene = syn.draw_scene(seed, size)
    censored, _ = syn.add_bars(scene, np.random.default_rng(seed), 2, syn.BLACK, 20.0)
    out = io.BytesIO()
    Image.fromarray(censored).save(out, "PNG", compress_level=1)
    return out.getvalue()


def _done(handle: InteractionHandle) -> bool:
    original = handle.original
    return (
        original is not None
        and bool(original.attachments or original.embeds)
        and only_delete(original.custom_ids)
    )


async def one_user(
    fake: FakeDiscord, channel: Any, n: int, images: list[bytes], start: float, plan: Plan
) -> tuple[str, float | None]:
    """One user's request: its outcome and how long the acknowledgement took."""
    user = fake.add_user(f"user{n}")
    await asyncio.sleep(start)  # the load's shape: requests spread over the window
    options = {
        name: fake.add_attachment(data, f"u{n}-{i}.png")
        for i, (name, data) in enumerate(zip(IMAGE_OPTIONS, images, strict=False))
    }
    handle = await fake.slash_command("decensor bar", options, channel=channel, user=user)
    try:
        callback = await handle.wait_callback(ACK_DEADLINE + 5)
    except TimeoutError:
        return "unacknowledged", None
    ack = time.monotonic() - handle.created_at
    if callback.ephemeral and callback.embeds:
        return f"refused: {callback.embeds[0].get('title')}", ack
    try:
        await handle.wait_for(_done, plan.job_timeout + 30)
    except TimeoutError:
        return "unfinished", ack
    original = handle.original
    assert original is not None
    if original.embeds:
        titles = sorted({str(e.get("title")) for e in original.embeds})
        kind = "partly delivered" if original.attachments else "error"
        return f"{kind}: {', '.join(titles)}", ack
    return "delivered", ack


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "erogaki", *args], cwd=ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (the bot's re-fitting pool and its forkserver)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


async def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def leftover(client: aioredis.Redis) -> list[str]:
    found = [k.decode() async for k in client.scan_iter("*")]
    return sorted(k for k in found if not k.startswith(LASTING))


async def run(plan: Plan, workdir: Path) -> Report:
    rng = random.Random(plan.seed)
    small = [barred(seed, (plan.small, plan.small)) for seed in range(4)]
    big = barred(99, (3000, 4000)) if plan.big > 0 else b""
    requests: list[list[bytes]] = []
    for _ in range(plan.users):
        count = rng.randint(1, 4)
        requests.append(
            [big if rng.random() < plan.big else rng.choice(small) for _ in range(count)]
        )
    starts = [rng.uniform(0, plan.window) for _ in range(plan.users)]

    redis_server = EmbeddedRedis().start()
    procs: list[subprocess.Popen[bytes]] = []
    began = time.monotonic()
    try:
        async with FakeDiscord() as fake:
            guild = fake.add_guild("load")
            channel = fake.add_text_channel(guild, "art", nsfw=True)
            env = {**os.environ, "REDIS_URL": redis_server.url(), "EROGAKI_BACKEND": "cpu"}
            for name in ("hent-ai", "deepcreampy"):
                args = ["worker", name, "--instance", f"load-{name}"]
                procs.append(spawn(args, env, workdir / f"{name}.log"))
            client = aioredis.Redis.from_url(redis_server.url())

            async def workers_up() -> bool:
                return int(await client.hlen(keys.INSTANCES)) >= 2

            await wait_until(workers_up, 60, "the workers")
            bot_env = {**env, "DISCORD_TOKEN": fake.token, "DISCORD_API_BASE": fake.api_base,
                       "EROGAKI_INSTANCE": "load-bot",
                       "EROGAKI_JOB_TIMEOUT": str(plan.job_timeout)}  # fmt: skip
            bot = spawn(["bot"], bot_env, workdir / "bot.log")
            procs.append(bot)
            await fake.wait_ready(60)
            outcomes = await asyncio.gather(
                *(
                    one_user(fake, channel, n, images, start, plan)
                    for n, (images, start) in enumerate(zip(requests, starts, strict=True))
                )
            )
            rss = peak_rss_mib(bot.pid)
            pool_rss = sum(peak_rss_mib(child) for child in descendants(bot.pid))
            bot.send_signal(signal.SIGTERM)
            await asyncio.to_thread(bot.wait, 30)

            async def settled() -> bool:
                return not await leftover(client)

            # A worker's last cleanup may trail the result the bot heard of.
            with contextlib.suppress(TimeoutError):
                await wait_until(settled, 10, "the keys to go")
            left = await leftover(client)
            await client.aclose()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        redis_server.close()
    wall = time.monotonic() - began

    log = (workdir / "bot.log").read_text(errors="replace")
    longest = re.findall(r"longest event loop stall: (\d+) ms", log)
    acks = sorted(a for _, a in outcomes if a is not None)
    p95 = statistics.quantiles(acks, n=20, method="inclusive")[-1] if len(acks) > 1 else 0.0
    return Report(
        users=plan.users,
        images=sum(len(r) for r in requests),
        big_images=sum(1 for r in requests for i in r if i is big and plan.big > 0),
        outcomes=dict(Counter(o for o, _ in outcomes).most_common()),
        ack_max_s=round(acks[-1], 3) if acks else float("nan"),
        ack_p95_s=round(p95, 3),
        late_acks=sum(1 for a in acks if a > ACK_DEADLINE),
        unfinished=sum(1 for o, _ in outcomes if o in ("unfinished", "unacknowledged")),
        bot_peak_rss_mib=round(rss, 1),
        pool_peak_rss_mib=round(pool_rss, 1),
        longest_stall_ms=float(longest[-1]) if longest else float("nan"),
        stall_warnings=log.count("the event loop stalled for"),
        stall_loop_cpu_max_ms=max(
            (float(ms) for ms in re.findall(r"CPU: (\d+) ms on the loop", log)), default=0.0
        ),
        leftover_keys=left[:20],
        wall_s=round(wall, 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short form the tests run")
    parser.add_argument("--users", type=int, default=Plan.users)
    parser.add_argument("--window", type=float, default=Plan.window)
    parser.add_argument("--big", type=float, default=Plan.big, help="share of 4000x3000 images")
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--logs", type=Path, help="keep the bot's and workers' logs here")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan(args.users, args.window, args.big, args.seed)
    with tempfile.TemporaryDirectory(prefix="erogaki-load-") as tmp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run(plan, logs))
    rows = [(k, v) for k, v in asdict(report).items() if k not in ("outcomes", "notes")]
    for key, value in rows:
        print(f"{key:>18}: {value}", file=sys.stderr)
    for outcome, count in report.outcomes.items():
        print(f"{count:>18}x {outcome}", file=sys.stderr)
    print(json.dumps(asdict(report)))


if __name__ == "__main__":
    main()
