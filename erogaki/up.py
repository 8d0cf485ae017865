"""``erogaki up`` and ``erogaki demo``: everything on one machine.

An embedded Redis when ``REDIS_URL`` is unset, both workers on the cpu
backend, and the bot when ``DISCORD_TOKEN`` is set, each a child process
that is restarted if it dies, all stopped in order on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.redis_io import safe_url
from erogaki_common.settings import Settings

SAMPLE = Path(__file__).with_name("sample.png")
# A child that dies is restarted, but not in a tight loop.
RESTART_DELAY = 2.0
STOP_TIMEOUT = 40.0


@dataclass
class Child:
    label: str
    args: list[str]
    process: asyncio.subprocess.Process | None = None


@dataclass
class Stack:
    settings: Settings
    # False for the demo: no bot, and children that only log problems.
    with_bot: bool = True
    redis: EmbeddedRedis | None = None
    children: list[Child] = field(default_factory=list)
    url: str = ""
    _stopping: bool = False
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, out: object = sys.stdout) -> None:
        if self.settings.redis_url_set:
            self.url = self.settings.redis_url
            where = f"Redis: {safe_url(self.url)} (from REDIS_URL)"
        else:
            self.redis = EmbeddedRedis(notify_flags="E$")
            await asyncio.to_thread(self.redis.start)
            self.url = self.redis.url()
            pid = self.redis.process.pid if self.redis.process else "?"
            where = f"Redis: {self.url} (embedded, pid {pid}, keeps nothing on disk)"
        cli = [sys.executable, "-m", "erogaki", *([] if self.with_bot else ["--quiet"])]
        self.children = [
            Child("hent-AI worker", [*cli, "worker", "hent-ai", "--backend", "cpu",
                                     "--instance", f"up-hentai-{os.getpid()}"]),
            Child("DeepCreamPy worker", [*cli, "worker", "deepcreampy", "--backend", "cpu",
                                         "--instance", f"up-deepcreampy-{os.getpid()}"]),
        ]  # fmt: skip
        if self.with_bot and self.settings.discord_token:
            self.children.append(Child("Discord bot", [*cli, "bot"]))
        for child in self.children:
            await self._spawn(child)
            self._watchers.append(asyncio.create_task(self._watch(child)))
        lines = [where]
        lines += [f"{c.label}: pid {c.process.pid}" for c in self.children if c.process]
        if self.with_bot and not self.settings.discord_token:
            lines.append(
                "Discord bot: not started, DISCORD_TOKEN is unset. Create a bot at "
                "https://discord.com/developers/applications and put its token in .env "
                "(see the README's 'Running the bot')."
            )
        if self.with_bot:
            # A REDIS_URL of the user's own may hold a password: never print it.
            env = "" if self.settings.redis_url_set else f"REDIS_URL={self.url} "
            same = " (with the same REDIS_URL)" if self.settings.redis_url_set else ""
            lines.append(
                f"Try it from another terminal{same}: {env}erogaki decensor bar picture.png"
            )
        print("\n".join(lines), file=out, flush=True)  # type: ignore[call-overload]

    async def _spawn(self, child: Child) -> None:
        env = {**os.environ, "REDIS_URL": self.url}
        child.process = await asyncio.create_subprocess_exec(*child.args, env=env)

    async def _watch(self, child: Child) -> None:
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping:
                return
            print(f"{child.label} exited with {code}; restarting", file=sys.stderr, flush=True)
            await asyncio.sleep(RESTART_DELAY)
            if self._stopping:
                return
            await self._spawn(child)

    async def stop(self) -> None:
        """The bot first, then the workers (they finish their jobs), then Redis."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        for group in (self.children[2:], self.children[:2]):
            for child in group:
                if child.process is not None and child.process.returncode is None:
                    child.process.send_signal(signal.SIGTERM)
            for child in group:
                if child.process is None:
                    continue
                try:
                    await asyncio.wait_for(child.process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    child.process.kill()
                    await child.process.wait()
        if self.redis is not None:
            await asyncio.to_thread(self.redis.close)


async def up(settings: Settings) -> int:
    stack = Stack(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stack.start()
        await stop.wait()
        print("stopping…", flush=True)
    finally:
        await stack.stop()
    print("stopped", flush=True)
    return 0


async def decensor_sample(settings: Settings) -> tuple[bytes, bytes, bytes]:
    """The shipped sample and its bar and mosaic results, on a private stack."""
    from erogaki_common.protocol import Mode
    from erogaki_common.submit import Submitter

    image = SAMPLE.read_bytes()
    stack = Stack(settings, with_bot=False)
    await stack.start(out=sys.stderr)
    try:
        async with Submitter(stack.url) as submitter:
            bar, mosaic = await asyncio.gather(
                submitter.decensor(image, Mode.BAR, timeout=120),
                submitter.decensor(image, Mode.MOSAIC, timeout=120),
            )
    finally:
        await stack.stop()
    return image, bar, mosaic


def demo(settings: Settings, out_dir: Path) -> int:
    started = time.monotonic()
    image, bar, mosaic = asyncio.run(decensor_sample(settings))
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {
        "sample.png": image,
        "sample.bar.png": bar,
        "sample.mosaic.png": mosaic,
    }
    for name, data in outputs.items():
        (out_dir / name).write_bytes(data)
    side_by_side(image, bar, mosaic, out_dir / "before-after.png")
    print(f"decensored the sample in {time.monotonic() - started:.1f} s; wrote:")
    for name in [*outputs, "before-after.png"]:
        print(f"  {out_dir / name}")
    return 0


def side_by_side(before: bytes, bar: bytes, mosaic: bytes, target: Path) -> None:
    """One picture: the censored sample, then each mode's result, labelled."""
    import io

    from PIL import Image, ImageDraw

    panels = [
        ("censored", before),
        ("/decensor bar", bar),
        ("/decensor mosaic", mosaic),
    ]
    images = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in panels]
    width, height = images[0].size
    sheet = Image.new("RGB", (width * len(images), height + 28), "white")
    draw = ImageDraw.Draw(sheet)
    for n, ((label, _), image) in enumerate(zip(panels, images, strict=True)):
        sheet.paste(image, (n * width, 28))
        draw.text((n * width + 8, 6), label, fill="black")
    sheet.save(target, "PNG")
