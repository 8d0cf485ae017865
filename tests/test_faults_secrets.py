"""No output of any command shows the Redis password or the Discord token (issue 11).

Every command runs as a real process, verbose, with a password-protected
Redis and a token in its environment; all it prints, on both streams, is
searched. So are the error paths: a wrong password and an unreachable Redis.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from PIL import Image

from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis, free_port
from erogaki_common.errors import ConfigError
from erogaki_common.settings import parse_settings
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pw-Sekr1t-7f3a9c"
TOKEN = "MTAxTOKEN.Gx7q2w.fake-discord-token-value-9z8y"
SECRETS = (PASSWORD, TOKEN, PASSWORD.replace("-", "%2D"))


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "DISCORD"))}
    env.update(
        REDIS_URL=url,
        DISCORD_TOKEN=TOKEN,
        # Nothing listens there: the bot fails fast, without the network.
        DISCORD_API_BASE=f"http://127.0.0.1:{free_port()}/api/v10",
        PYTHONUNBUFFERED="1",
    )
    return env


class Run:
    """One command as a process; ``output`` is everything it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.chunks: list[bytes] = []
        self._readers = [
            asyncio.create_task(self._read(stream)) for stream in (proc.stdout, proc.stderr)
        ]

    @classmethod
    async def start(cls, url: str, *args: str, cwd: Path = ROOT) -> Run:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "erogaki", "-v", *args, cwd=cwd, env=env_for(url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def _read(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        while chunk := await stream.read(4096):
            self.chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    async def finish(self, timeout: float = 30) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.gather(*self._readers)
        return code

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.finish()


def assert_no_secret(run: Run, what: str) -> None:
    for secret in SECRETS:
        assert secret not in run.output, f"{what} printed a secret:\n{run.output[-3000:]}"


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 90)).save(buf, "PNG")
    path = tmp_path / "picture.png"
    path.write_bytes(buf.getvalue())
    return path


async def test_no_command_prints_a_secret(
    redis_factory: Callable[..., EmbeddedRedis], png_file: Path, tmp_path: Path
) -> None:
    server = redis_factory(extra_args=["--requirepass", PASSWORD])
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0"
    client = aioredis.Redis.from_url(url)
    runs: dict[str, Run] = {}

    for name, args in {
        "status": ["status"],
        "health": ["health", "worker"],
        "decensor without workers": ["decensor", "mosaic", str(png_file), "--timeout", "1"],
        "bot": ["bot"],
        "models": ["models", "check"],
    }.items():
        runs[name] = await Run.start(url, *args)
        await runs[name].finish(60)

    worker = await Run.start(url, "worker", "hent-ai", "--backend", "cpu", "--instance", "w")
    runs["worker"] = worker
    await wait_for(lambda: client.exists(keys.heartbeat_key("w")), 30, "the worker")
    runs["decensor"] = await Run.start(url, "decensor", "mosaic", str(png_file), "--timeout", "20")
    await runs["decensor"].finish(60)
    await worker.stop()

    up = await Run.start(url, "up", cwd=tmp_path)
    runs["up"] = up
    await wait_for(lambda: "Try it from another terminal" in up.output, 60, "erogaki up")
    up.proc.send_signal(signal.SIGINT)
    await up.finish(60)

    # The error paths: a wrong password, and no Redis at all.
    for name, bad in {
        "wrong password": f"redis://:{PASSWORD}-wrong@127.0.0.1:{server.port}/0",
        "unreachable": f"redis://user:{PASSWORD}@127.0.0.1:{free_port()}/0?password={PASSWORD}",
    }.items():
        for args in (["status"], ["decensor", "mosaic", str(png_file), "--timeout", "2"]):
            run = runs[f"{name}: {args[0]}"] = await Run.start(bad, *args)
            await run.finish(60)

    await client.aclose()
    for name, run in runs.items():
        assert run.output, f"{name} printed nothing: the test would prove nothing"
        assert_no_secret(run, name)


# Passwords whose characters mean something in a URL, unencoded as compose
# interpolates them: each one lands where a host, port or database belongs.
SYNTAX_PASSWORDS = ("Sekr1t/pw-9c2e", "Sekr1t#pw-9c2e", "Sekr1t?pw-9c2e", "Sekr1t[pw-9c2e")


def _parts(password: str) -> tuple[str, ...]:
    """The password and the pieces it breaks into at its URL character."""
    return (password, *password.split(password[6]))


@pytest.mark.parametrize("password", SYNTAX_PASSWORDS)
def test_a_password_that_breaks_the_url_is_not_in_the_settings_error(password: str) -> None:
    for url in (
        f"redis://:{password}@127.0.0.1:6379/0",
        f"redis://user:{password}@cache:6379/3",
        f"rediss://user:{password}@cache/0",
        f"redis://user:{password}@127.0.0.1:notaport/0",
    ):
        with pytest.raises(ConfigError) as caught:
            parse_settings({"REDIS_URL": url})
        message = str(caught.value)
        assert "percent-encode" in message, message
        for secret in _parts(password):
            assert secret not in message, (url, message)


async def test_a_password_that_breaks_the_url_is_never_printed(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(extra_args=["--requirepass", "Sekr1t/pw#9c?2e"])
    port = server.port
    commands = {
        "status": (SYNTAX_PASSWORDS[0], ["status"]),
        "health": (SYNTAX_PASSWORDS[1], ["health", "worker"]),
        "worker": (SYNTAX_PASSWORDS[2], ["worker", "deepcreampy", "--backend", "cpu"]),
        "decensor": (SYNTAX_PASSWORDS[0], ["decensor", "mosaic", "x.png"]),
    }
    runs = {
        name: await Run.start(f"redis://user:{password}@127.0.0.1:{port}/0", *args)
        for name, (password, args) in commands.items()
    }
    for name, run in runs.items():
        code = await run.finish(30)
        assert code == 2, f"{name} exited {code}:\n{run.output[-3000:]}"
        assert "percent-encode" in run.output, run.output
        assert "Traceback" not in run.output, run.output
        for secret in _parts(commands[name][0]):
            assert secret not in run.output, f"{name} printed it:\n{run.output}"
    # Percent-encoded, the same characters work.
    run = await Run.start(f"redis://:Sekr1t%2Fpw%239c%3F2e@127.0.0.1:{port}/0", "status")
    assert await run.finish(30) == 0, run.output
    assert "workers: 0 alive" in run.output
    assert "Sekr1t" not in run.output
