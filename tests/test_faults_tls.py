"""rediss:// with a password, against a real redis-server with TLS on (issue 11).

The test makes its own CA and server certificate with the openssl command
line, starts redis-server with TLS on a port of its own, and runs the
submitter, a worker and the command line over it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from erogaki_common.embedded_redis import EmbeddedRedis, free_port
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.submit import Submitter
from tests.test_faults import running_worker

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "tls-Pa55-word"


def make_certificates(where: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for localhost/127.0.0.1 signed by it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make the test's certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=where, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=erogaki-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    (where / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return where / "ca.pem", where / "server.pem", where / "server.key"


@pytest.fixture
def tls_server(redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path) -> tuple[int, Path]:
    ca, cert, key = make_certificates(tmp_path)
    tls_port = free_port()
    args = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file",
            str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--requirepass", PASSWORD]  # fmt: skip
    try:
        redis_factory(extra_args=args)
    except Exception as exc:  # the message is all we need from pytest.fail
        if "tls" in str(exc).lower():
            pytest.skip(f"this redis-server has no TLS support: {exc}")
        raise
    return tls_port, ca


def tls_url(port: int, ca: Path | None) -> str:
    query = f"?ssl_ca_certs={quote(str(ca))}" if ca else ""
    return f"rediss://:{PASSWORD}@localhost:{port}/0{query}"


async def test_jobs_go_through_over_tls_with_a_password(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    url = tls_url(port, ca)
    async with running_worker(url, [Queue.HENTAI_MOSAIC]), Submitter(url) as sub:
        assert await sub.decensor(b"over-tls", Mode.MOSAIC, timeout=20) == b"done:over-tls"
        assert not sub.polling  # keyevents arrive over TLS too


async def erogaki(url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "REDIS_URL": url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "erogaki", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_command_line_over_tls(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    async with running_worker(tls_url(port, ca), [Queue.HENTAI_MOSAIC], instance="tls-w"):
        code, out = await erogaki(tls_url(port, ca), "status")
    assert code == 0, out
    assert "tls-w" in out and PASSWORD not in out
    # Without the CA the server's certificate can't be verified: said plainly.
    code, out = await erogaki(tls_url(port, None), "status")
    assert code == 3, out
    assert "Traceback" not in out and PASSWORD not in out
    assert "certificate" in out.lower()
