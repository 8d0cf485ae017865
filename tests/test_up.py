"""`erogaki up` and `erogaki demo` end to end, as a newcomer runs them."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "erogaki" / "sample.png"


def clean_env() -> dict[str, str]:
    """The environment of a newcomer: no Redis configured, no bot token."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DISCORD_TOKEN")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers; it's gone once reaped or its state is Z.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def children_of(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


async def test_up_runs_a_job_and_stops_cleanly(tmp_path: Path) -> None:
    up = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erogaki", "up",
        cwd=tmp_path, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert up.stdout is not None and up.stderr is not None
    errors: list[str] = []

    async def collect(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            errors.append(line.decode())

    collector = asyncio.create_task(collect(up.stderr))
    lines: list[str] = []
    try:
        while not lines or not lines[-1].startswith("Try it"):
            line = await asyncio.wait_for(up.stdout.readline(), 30)
            assert line, f"erogaki up ended early: {lines}"
            lines.append(line.decode().strip())
        text = "\n".join(lines)
        redis_pid = re.search(r"\(embedded, pid (\d+), keeps nothing on disk\)", text)
        assert redis_pid is not None
        assert "DISCORD_TOKEN is unset" in text
        url = re.search(r"REDIS_URL=(redis://127\.0\.0\.1:(\d+)/0)", text)
        assert url is not None
        pids = [int(p) for p in re.findall(r"worker: pid (\d+)", text)]
        assert len(pids) == 2
        pids.append(int(redis_pid.group(1)))

        out = tmp_path / "result.png"
        decensor = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "erogaki", "decensor", "bar", str(SAMPLE), "-o", str(out),
            cwd=tmp_path, env={**clean_env(), "REDIS_URL": url.group(1)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(decensor.communicate(), 60)
        assert decensor.returncode == 0, err.decode()
        assert Image.open(io.BytesIO(out.read_bytes())).size == Image.open(SAMPLE).size

        # A worker that dies is restarted, and the stack works on.
        os.kill(pids[0], signal.SIGKILL)
        await wait_for(
            lambda: any("hent-AI worker exited with -9; restarting" in e for e in errors),
            30, "the restart",
        )  # fmt: skip
        again = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "erogaki", "decensor", "mosaic", str(SAMPLE), "-o", str(out),
            cwd=tmp_path, env={**clean_env(), "REDIS_URL": url.group(1)},
        )  # fmt: skip
        assert await asyncio.wait_for(again.wait(), 60) == 0
        pids += children_of(up.pid)
    finally:
        if up.returncode is None:
            up.send_signal(signal.SIGTERM)
        await asyncio.wait_for(up.wait(), 60)
        await asyncio.wait_for(collector, 10)
    assert up.returncode == 0
    # No process or port left behind.
    assert not [p for p in pids if alive(p)]
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", int(url.group(2))))


async def test_demo_writes_the_before_and_after(tmp_path: Path) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erogaki", "demo", "-o", str(tmp_path / "out"),
        cwd=tmp_path, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(demo.communicate(), 120)
    assert demo.returncode == 0, err.decode()
    size = Image.open(SAMPLE).size
    for name in ("sample.bar.png", "sample.mosaic.png"):
        result = Image.open(tmp_path / "out" / name)
        assert result.size == size
        assert result.tobytes() != Image.open(SAMPLE).tobytes()  # something was restored
    sheet = Image.open(tmp_path / "out" / "before-after.png")
    assert sheet.width == 3 * size[0]
    assert "before-after.png" in out.decode()


def test_compose_file_parses(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("no docker client with the compose plugin on this machine")
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_PASSWORD=secret\nDISCORD_TOKEN=x\n")
    done = subprocess.run(
        [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(env_file),
         "config", "--quiet"],
        capture_output=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()


def test_compose_file_describes_a_safe_deployment() -> None:
    """What `docker compose config` can't check here: the deployment's promises."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "bot", "hentai", "deepcreampy"}
    redis = services["redis"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-alpine", redis["image"])  # pinned
    assert redis["entrypoint"] == ["/bin/sh", "-c"]
    [command] = redis["command"]
    assert "--notify-keyspace-events 'E$$'" in command  # $$: compose's escape for $
    assert "--maxmemory-policy noeviction" in command  # never evicts queued jobs
    assert "--maxmemory " in command and "--appendonly yes" in command
    # The password reaches Redis through a file, and redis-cli through
    # REDISCLI_AUTH: never as an argument, which `ps` and `docker inspect` show.
    assert "requirepass" in command and "> /tmp/redis-auth.conf" in command
    healthcheck = " ".join(redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH=" in healthcheck and " -a " not in healthcheck
    for text in (command, healthcheck):
        assert "${REDIS_PASSWORD" not in text and "--requirepass" not in text
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD")
    for name in ("bot", "hentai", "deepcreampy"):
        service = services[name]
        assert service["restart"] == "unless-stopped"
        assert service["env_file"] == ".env"
        assert service["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    for name, worker in (("hentai", "hent-ai"), ("deepcreampy", "deepcreampy")):
        service = services[name]
        assert service["command"] == [worker]
        assert any(v.endswith(":/models:ro") for v in service["volumes"])
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"]
    for dockerfile in ("Dockerfile.bot", "Dockerfile.worker"):
        text = (ROOT / dockerfile).read_text()
        assert "HEALTHCHECK" in text and "USER erogaki" in text
        assert re.search(r"^FROM \S+:\d+\.\d+\.\d+", text, re.MULTILINE)  # pinned base


def test_compose_redis_command_keeps_the_password_off_every_command_line(
    tmp_path: Path,
) -> None:
    """Run the compose file's Redis command and health check here, as the
    container's shell would, and look at what `ps` would show."""
    import yaml

    from erogaki_common.embedded_redis import find_binary, free_port

    redis = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]
    port, password = free_port(), 'pw "with" spaces $and\\stuff'
    # Compose turns $$ into $; the container's /tmp becomes ours, its port a free one.
    script = redis["command"][0].replace("$$", "$").replace("/tmp/", f"{tmp_path}/")
    script += f" --port {port} --bind 127.0.0.1 --dir {tmp_path} --save ''"
    env = {
        **os.environ,
        "REDIS_PASSWORD": password,
        "REDIS_MAXMEMORY": "64mb",
        "PATH": f"{Path(find_binary()).parent}:{os.environ['PATH']}",
    }
    server = subprocess.Popen(["/bin/sh", "-c", script], env=env, start_new_session=True)
    try:
        health = redis["healthcheck"]["test"][1].replace("$$", "$")
        health = health.replace("redis-cli", f"redis-cli -p {port}")
        deadline = time.monotonic() + 10
        while subprocess.run(["/bin/sh", "-c", health], env=env, check=False).returncode:
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.05)
        # exec: the server is the shell's own process, and its arguments hold no secret.
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        assert "redis-server" in cmdline and password not in cmdline
        cli = [find_binary("redis-cli"), "-p", str(port)]
        refused = subprocess.run([*cli, "ping"], capture_output=True, check=False)
        assert b"NOAUTH" in refused.stdout + refused.stderr
        flags = subprocess.run(
            [*cli, "config", "get", "notify-keyspace-events"],
            env={**env, "REDISCLI_AUTH": password}, capture_output=True, check=True,
        )  # fmt: skip
        assert flags.stdout.split()[-1] in (b"E$", b"$E")
    finally:
        server.terminate()
        server.wait(10)
