"""Attacks on redis_io's zero-copy sending path, against real redis-servers.

On Python 3.11 commands with a large argument go to the socket from the
caller's buffers, outside the asyncio transport. Whatever happens to the
connection meanwhile (close, cancel, a stopped or dying Redis, an early error
reply, other tasks on the same client), Redis must never see half a command
followed by another one, no socket may outlive its connection, and the client
must go on working with right values.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.errors import Component
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.redis_io import CONNECTION_ERRORS, REDIS_ERRORS, connect
from erogaki_common.submit import Submitter
from erogaki_common.worker import Done, Job, Outcome, Worker

from .conftest import wait_for

MiB = 1024 * 1024


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _clients(observer: redis.Redis) -> int:
    """Normal clients connected to the server, the observer itself excluded."""
    return len(observer.client_list(_type="normal")) - 1


def _trap(size: int) -> bytes:
    """A payload made of whole RESP commands: if Redis ever read part of it as
    commands (a half-sent command followed by another), it would set PWNED."""
    one = b"*3\r\n$3\r\nSET\r\n$5\r\nPWNED\r\n$1\r\n1\r\n"
    return (one * (size // len(one) + 1))[:size]


async def _connection_of(client: Redis) -> object:
    conn = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    await client.connection_pool.release(conn)
    return conn


async def test_connect_and_close_cycles_leave_no_socket_here_or_on_the_server(
    redis_url: str,
) -> None:
    observer = redis.Redis.from_url(redis_url)
    try:
        observer.ping()
        fds, clients = _open_fds(), _clients(observer)
        big = os.urandom(256 * 1024)
        for cycle in range(40):
            client = connect(redis_url, max_connections=4 if cycle % 2 else None)
            # Several connections, each having sent a large command.
            await asyncio.gather(*(client.set(f"k{i}", big) for i in range(3)))
            way = cycle % 4
            if way == 0:
                await client.aclose()
            elif way == 1:
                await client.connection_pool.disconnect()
                assert await client.get("k0") == big  # reconnects
                await client.aclose()
            elif way == 2:
                # The server drops us: redis-py's next command fails, the one
                # after reconnects.
                observer.client_kill_filter(_type="normal", skipme=True)
                with pytest.raises(CONNECTION_ERRORS):
                    await client.set("k0", big)
                assert await client.set("k0", big) and await client.get("k0") == big
                await client.aclose()
            else:
                # Dropped without closing, inside the running loop.
                del client
                gc.collect()
        gc.collect()
        await wait_for(lambda: _clients(observer) <= clients, what="the server's clients to go")
        await wait_for(lambda: _open_fds() <= fds, what="every socket here to close")
    finally:
        observer.close()


async def test_a_transport_closed_under_the_writer_closes_the_server_connection(
    redis_url: str,
) -> None:
    # asyncio closes a transport itself on a fatal error; the server must see
    # the connection end then, not when redis-py next touches it.
    observer = redis.Redis.from_url(redis_url)
    client = connect(redis_url)
    try:
        observer.ping()
        clients = _clients(observer)
        await client.set("k", os.urandom(256 * 1024))
        conn = await _connection_of(client)
        assert _clients(observer) == clients + 1
        conn._writer.transport.abort()  # type: ignore[attr-defined]
        await wait_for(lambda: _clients(observer) == clients, what="the server to see the close")
        # redis-py notices the dead connection (maybe with one failed command) and reconnects.
        with contextlib.suppress(*CONNECTION_ERRORS):
            await client.get("k")
        assert len(await client.get("k")) == 256 * 1024
    finally:
        await client.aclose()
        observer.close()


@pytest.mark.parametrize("size", [64 * 1024, 8 * MiB])
async def test_cancelled_at_any_moment_a_send_never_desyncs_the_connection(
    redis_url: str, size: int
) -> None:
    client = connect(redis_url, max_connections=1)
    trap = _trap(size)
    try:
        await client.ping()
        delays = [0.0, 1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
        for i, delay in enumerate(delays * 3):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.set("trap", trap), delay)
            # The one connection of the pool is in step: right replies, and
            # nothing of the trap ever ran as a command.
            assert await client.set(f"after{i}", b"v") is True
            assert await client.get(f"after{i}") == b"v"
            assert await client.exists("PWNED") == 0
            value = await client.get("trap")
            assert value is None or value == trap
        # A cancel while a pipeline mixing small and large arguments is sent.
        for delay in delays:

            async def mixed() -> None:
                async with client.pipeline(transaction=True) as pipe:
                    pipe.set("s1", b"1").set("big", trap).set("s2", b"2")
                    await pipe.execute()

            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(mixed(), delay)
            # All of the MULTI or none of it.
            assert await client.mget("s1", "big", "s2") in ([None] * 3, [b"1", trap, b"2"])
            assert await client.exists("PWNED") == 0
    finally:
        await client.aclose()


async def test_a_send_cancelled_while_redis_is_stopped_never_desyncs(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = connect(server.url(), max_connections=1)
    trap = _trap(8 * MiB)
    try:
        await client.ping()
        assert server.process is not None
        for _ in range(3):
            server.process.send_signal(signal.SIGSTOP)
            sending = asyncio.create_task(client.set("trap", trap))
            done, _ = await asyncio.wait({sending}, timeout=0.3)
            assert not done
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            server.process.send_signal(signal.SIGCONT)
            assert await client.set("x", b"y") and await client.get("x") == b"y"
            assert await client.exists("PWNED") == 0
    finally:
        await client.aclose()


async def test_a_send_to_a_paused_server_completes_when_it_resumes(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client, other = connect(server.url()), connect(server.url())
    payload = os.urandom(8 * MiB)
    try:
        await client.ping()
        assert server.process is not None
        await other.execute_command("CLIENT", "PAUSE", 400, "ALL")
        # Sent while Redis is paused (400 ms): it must complete once the pause ends.
        assert await asyncio.wait_for(client.set("k", payload), 20) is True
        server.process.send_signal(signal.SIGSTOP)
        sending = asyncio.create_task(client.set("k2", payload))
        done, _ = await asyncio.wait({sending}, timeout=0.3)
        assert not done
        server.process.send_signal(signal.SIGCONT)
        assert await asyncio.wait_for(sending, 20) is True
        assert await client.mget("k", "k2") == [payload, payload]
    finally:
        await client.aclose()
        await other.aclose()


async def test_an_error_reply_before_the_send_ends_leaves_the_client_usable(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # Redis answers an oversized bulk at once and closes the connection while
    # most of the command is still to be sent.
    server = redis_factory(extra_args=["--proto-max-bulk-len", "1mb"])
    client = connect(server.url(), max_connections=1)
    try:
        await client.ping()
        for _ in range(3):
            with pytest.raises(REDIS_ERRORS):
                await client.set("k", _trap(16 * MiB))
            assert await client.set("k", b"small") and await client.get("k") == b"small"
            assert await client.exists("PWNED") == 0
    finally:
        await client.aclose()


async def test_refusals_of_a_large_command_keep_the_connection_in_step(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    full = redis_factory(extra_args=["--maxmemory-policy", "noeviction"])
    client = connect(full.url(), max_connections=1)
    try:
        await client.set("fill", os.urandom(3 * MiB))
        await client.config_set("maxmemory", "2mb")  # over the limit from now on
        for _ in range(3):
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                await client.set("k", _trap(8 * MiB))
            with pytest.raises(REDIS_ERRORS):
                async with client.pipeline(transaction=True) as pipe:
                    pipe.get("fill").set("k", _trap(4 * MiB)).get("fill")
                    await pipe.execute()
            assert len(await client.get("fill")) == 3 * MiB
            assert await client.exists("PWNED", "k") == 0
    finally:
        await client.aclose()
    replica = redis_factory(extra_args=["--replicaof", "127.0.0.1", "1"])
    client = connect(replica.url(), max_connections=1)
    try:
        for _ in range(3):
            with pytest.raises(redis.exceptions.ReadOnlyError):
                await client.set("k", _trap(8 * MiB))
            assert await client.get("k") is None
            assert await client.exists("PWNED") == 0
    finally:
        await client.aclose()


async def test_concurrent_tasks_pubsub_and_blocking_commands_share_a_pool(
    redis_url: str,
) -> None:
    client = connect(redis_url, max_connections=6)
    payloads = [os.urandom(32 * 1024 + i * 40_000) for i in range(24)]
    try:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe("chan")
            blocked = asyncio.create_task(client.blmove("src", "dst", 10, "LEFT", "RIGHT"))

            async def one(i: int) -> None:
                data = payloads[i]
                if i % 3 == 0:
                    async with client.pipeline(transaction=bool(i % 2)) as pipe:
                        pipe.set(f"a{i}", b"s").set(f"b{i}", data).rpush(f"l{i}", b"x", data)
                        pipe.publish("chan", data)
                        await pipe.execute()
                    assert await client.lrange(f"l{i}", 0, -1) == [b"x", data]
                else:
                    await client.set(f"b{i}", data)
                assert await client.get(f"b{i}") == data

            await asyncio.gather(*(one(i) for i in range(len(payloads))))
            await client.rpush("src", payloads[5])
            assert await asyncio.wait_for(blocked, 10) == payloads[5]
            got: list[bytes] = []

            async def heard() -> bool:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message is not None:
                    got.append(message["data"])
                return len(got) == 8

            await wait_for(heard, what="every published payload")
            assert sorted(got) == sorted(payloads[i] for i in range(0, 24, 3))
    finally:
        await client.aclose()


async def test_a_forked_child_exiting_does_not_break_the_parents_connection(
    redis_url: str,
) -> None:
    observer = redis.Redis.from_url(redis_url)
    client = connect(redis_url)
    try:
        observer.ping()
        clients = _clients(observer)
        payload = os.urandom(MiB)
        await client.set("k", payload)
        pid = os.fork()
        if pid == 0:
            os._exit(0)  # inherits every socket; closes them all on exit
        await asyncio.to_thread(os.waitpid, pid, 0)
        assert await client.get("k") == payload
        await client.set("k", payload[::-1])
        assert await client.get("k") == payload[::-1]
        await client.aclose()
        await wait_for(lambda: _clients(observer) <= clients, what="the close to reach the server")
    finally:
        await client.aclose()
        observer.close()


async def test_the_writer_keeps_the_order_of_what_it_is_given(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # Below redis-py: bytes the transport still holds go before a large
    # command, and a small write after a large one that is not all sent goes
    # after it. A stopped server keeps both unsent.
    server = redis_factory()
    client = connect(server.url(), max_connections=1)
    first, second = os.urandom(16 * MiB), os.urandom(4 * MiB)
    try:
        conn = await _connection_of(client)
        await client.ping()
        writer = conn._writer  # type: ignore[attr-defined]
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        # Pieces under the direct threshold: the transport takes them and
        # buffers what the socket refuses.
        small = conn.pack_command("SET", "k", first)  # type: ignore[attr-defined]
        pieces = [p for piece in small for p in _split(piece, 16 * 1024)]
        writer.writelines(pieces)
        assert writer.transport.get_write_buffer_size() > 0
        writer.writelines(conn.pack_command("SET", "k", second))  # type: ignore[attr-defined]
        writer.write(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        draining = asyncio.create_task(writer.drain())
        server.process.send_signal(signal.SIGCONT)
        await asyncio.wait_for(draining, 20)
        assert await conn.read_response() == b"OK"  # type: ignore[attr-defined]
        assert await conn.read_response() == b"OK"  # type: ignore[attr-defined]
        assert await conn.read_response() == second  # type: ignore[attr-defined]
        assert await client.get("k") == second
    finally:
        await client.aclose()


async def test_a_transport_closed_mid_send_ends_the_send_and_the_connection(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # Redis is stopped, so the send waits on its duplicate descriptor; asyncio
    # closing the transport then must end the wait and release the socket at
    # once, without waiting for Redis to read.
    server = redis_factory()
    observer = redis.Redis.from_url(server.url())
    client = connect(server.url(), max_connections=1)
    try:
        observer.ping()
        clients = _clients(observer)
        conn = await _connection_of(client)
        await client.ping()
        transport = conn._writer.transport  # type: ignore[attr-defined]
        this = os.readlink(f"/proc/self/fd/{transport.get_extra_info('socket').fileno()}")
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        sending = asyncio.create_task(client.set("trap", _trap(32 * MiB)))
        done, _ = await asyncio.wait({sending}, timeout=0.3)
        assert not done
        transport.abort()
        done, _ = await asyncio.wait({sending}, timeout=5)
        assert done, "the send still waits for a stopped Redis on a closed connection"
        assert isinstance(sending.exception(), CONNECTION_ERRORS)
        assert this not in _fd_targets()
        server.process.send_signal(signal.SIGCONT)
        await wait_for(lambda: _clients(observer) == clients, what="the server to see the close")
        assert await client.set("k", b"v") and await client.get("k") == b"v"
        assert await client.exists("PWNED", "trap") == 0
    finally:
        await client.aclose()
        observer.close()


def _fd_targets() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    return targets


def _split(piece: bytes, size: int) -> list[bytes]:
    return [piece[i : i + size] for i in range(0, len(piece), size)]


async def test_no_duplicate_descriptor_outlives_a_send(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = connect(server.url(), max_connections=1)
    try:
        conn = await _connection_of(client)
        await client.ping()
        sock = conn._writer.transport.get_extra_info("socket")  # type: ignore[attr-defined]
        this = os.readlink(f"/proc/self/fd/{sock.fileno()}")  # socket:[inode]

        def descriptors() -> int:
            """Descriptors here of this connection's socket."""
            return _fd_targets().count(this)

        assert descriptors() == 1
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        sending = asyncio.create_task(client.set("k", os.urandom(32 * MiB)))
        done, _ = await asyncio.wait({sending}, timeout=0.3)
        assert not done
        assert descriptors() == 2  # the wait's duplicate
        server.process.send_signal(signal.SIGCONT)
        assert await asyncio.wait_for(sending, 20) is True
        assert descriptors() == 1
    finally:
        await client.aclose()


@pytest.mark.parametrize("cancel_first", [False, True])
async def test_two_tasks_draining_one_writer_both_finish(
    redis_factory: Callable[..., EmbeddedRedis], cancel_first: bool
) -> None:
    # redis-py drains from one task at a time, but a StreamWriter allows more
    # (a pubsub connection is written from any task): a second drain while a
    # large send waits must wait for the same bytes, not orphan the first.
    server = redis_factory()
    client = connect(server.url(), max_connections=1)
    a, b = os.urandom(16 * MiB), os.urandom(16 * MiB)
    try:
        conn = await _connection_of(client)
        await client.ping()
        writer = conn._writer  # type: ignore[attr-defined]
        this = os.readlink(f"/proc/self/fd/{writer.get_extra_info('socket').fileno()}")
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        writer.writelines(conn.pack_command("SET", "a", a))  # type: ignore[attr-defined]
        first = asyncio.create_task(writer.drain())
        done, _ = await asyncio.wait({first}, timeout=0.2)
        assert not done
        writer.writelines(conn.pack_command("SET", "b", b))  # type: ignore[attr-defined]
        second = asyncio.create_task(writer.drain())
        done, _ = await asyncio.wait({second}, timeout=0.2)
        assert not done
        if cancel_first:
            # The second drain takes over the wait; the bytes stay queued.
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            await wait_for(lambda: _fd_targets().count(this) == 2, what="the second's wait")
        server.process.send_signal(signal.SIGCONT)
        await asyncio.wait_for(asyncio.gather(second, *([] if cancel_first else [first])), 20)
        assert await conn.read_response() == b"OK"  # type: ignore[attr-defined]
        assert await conn.read_response() == b"OK"  # type: ignore[attr-defined]
        assert _fd_targets().count(this) == 1
        assert await client.mget("a", "b") == [a, b]
    finally:
        await client.aclose()


async def test_a_unix_socket_connection_sends_large_commands_whole(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    path = tmp_path / "redis.sock"
    server = redis_factory(extra_args=["--unixsocket", str(path), "--unixsocketperm", "700"])
    client = connect(f"unix://{path}", max_connections=1)
    trap = _trap(8 * MiB)
    try:
        conn = await _connection_of(client)
        assert type(conn._writer).__name__ == "_DirectWriter"  # type: ignore[attr-defined]
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        sending = asyncio.create_task(client.set("trap", trap))
        done, _ = await asyncio.wait({sending}, timeout=0.3)
        assert not done
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        server.process.send_signal(signal.SIGCONT)
        assert await client.set("k", trap) and await client.get("k") == trap
        assert await client.exists("PWNED", "trap") == 0
    finally:
        await client.aclose()


async def test_a_job_goes_round_over_a_unix_socket(
    redis_factory: Callable[..., EmbeddedRedis], tmp_path: Path
) -> None:
    # REDIS_URL may be unix:// (settings accept it); every component connects with it.
    path = tmp_path / "redis.sock"
    redis_factory(extra_args=["--unixsocket", str(path), "--unixsocketperm", "700"])
    url = f"unix://{path}?db=0"
    payload = os.urandom(MiB)

    async def echo(job: Job) -> Outcome:
        return Done(job.data[::-1])

    worker = Worker(url, [Queue.HENTAI_MOSAIC], echo, component=Component.HENTAI, burst=True)
    async with Submitter(url) as sub:
        job_id = await sub.submit(payload, Mode.MOSAIC, timeout=30)
        await asyncio.wait_for(worker.run(), 30)
        assert await asyncio.wait_for(sub.result(job_id), 30) == payload[::-1]


async def test_a_pool_reset_during_a_send_fails_it_cleanly(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = connect(server.url(), max_connections=1)
    try:
        conn = await _connection_of(client)
        await client.ping()
        sock = conn._writer.get_extra_info("socket")  # type: ignore[attr-defined]
        this = os.readlink(f"/proc/self/fd/{sock.fileno()}")
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        sending = asyncio.create_task(client.set("trap", _trap(32 * MiB)))
        done, _ = await asyncio.wait({sending}, timeout=0.3)
        assert not done
        await client.connection_pool.disconnect()
        done, _ = await asyncio.wait({sending}, timeout=5)
        assert done, "the send outlived its connection"
        assert isinstance(sending.exception(), CONNECTION_ERRORS)
        server.process.send_signal(signal.SIGCONT)
        assert await client.set("k", b"v") and await client.get("k") == b"v"
        assert await client.exists("PWNED", "trap") == 0
        await wait_for(lambda: this not in _fd_targets(), what="the first socket to close")
    finally:
        await client.aclose()
