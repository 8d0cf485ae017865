"""Redis connections and the retry policy every component shares."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import redis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection, Connection, UnixDomainSocketConnection
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.typing import EncodableT, KeyT

# What a dropped or refused connection raises; anything else is a real error.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
)

_REDIS_PY = tuple(int(p) for p in redis.__version__.split(".")[:2] if p.isdigit())

# Everything Redis can answer with besides a reply: connection trouble and
# refusals (OOM when full, READONLY after a failover, LOADING, BUSY, ...).
# Loops that must outlive any episode catch these.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, *CONNECTION_ERRORS)


# A dead peer (host gone, cable cut) is noticed by TCP keepalive within
# about 25 s instead of hours, without putting a timeout on every read:
# per-read timeouts cost a timer per reply on the hot path.
_KEEPALIVE: dict[int, int] = {}
if hasattr(socket, "TCP_KEEPIDLE"):
    _KEEPALIVE = {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3}


class _QuietPipeline(Pipeline):
    """A pipeline whose errors name the failing command but never quote its arguments.

    redis-py puts the whole command, image bytes included, into the message of an
    error inside a pipeline, and shortens it with ``textwrap``: seconds of CPU per MiB,
    on the event loop, and a payload where a log line may print it.
    """

    def annotate_exception(
        self, exception: Exception, number: int, command: Iterable[object]
    ) -> None:
        name = next(iter(command), b"?")
        label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        exception.args = (
            f"Command # {number} ({label}) of pipeline caused error: {exception.args[0]}",
            *exception.args[1:],
        ) if exception.args else (f"Command # {number} ({label}) of pipeline failed",)  # fmt: skip


async def watch_then_read(pipe: Pipeline, keys: Sequence[KeyT], *command: EncodableT) -> Any:
    """``WATCH keys`` and one read-only ``command``, in one round trip.

    The same as ``await pipe.watch(*keys)`` then the command, which costs a
    round trip each: Redis runs a connection's commands in order, so the
    WATCH is in force before the command reads. Leaves ``pipe`` as
    ``watch()`` does: ``multi()`` comes next, and leaving the pipeline's
    ``async with`` unwatches.
    """
    if pipe.watching or pipe.explicit_transaction or pipe.command_stack:
        raise RedisError("watch_then_read starts a check-and-set on a fresh pipeline")
    conn = pipe.connection
    if conn is None:
        # redis-py before 5.3 wants a command name here; later ones warn about it.
        name = ("WATCH",) if _REDIS_PY < (5, 3) else ()
        conn = await pipe.connection_pool.get_connection(*name)  # type: ignore[no-untyped-call]
        pipe.connection = conn
    try:
        await conn.send_packed_command(conn.pack_commands([("WATCH", *keys), command]))
        try:
            await pipe.parse_response(conn, "WATCH")  # sets pipe.watching
        except ResponseError:
            with contextlib.suppress(ResponseError):
                await conn.read_response()  # the command's reply, to stay in step
            raise
        return await pipe.parse_response(conn, command[0])  # type: ignore[arg-type]
    except ResponseError:
        raise
    except BaseException:
        # A broken connection, or a cancel with a reply unread: the connection
        # is out of step. Dropping it drops the WATCH too.
        pipe.watching = False
        await conn.disconnect()
        raise


class _Redis(Redis):
    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _QuietPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


# --- sending images without copying them ------------------------------------------
#
# redis-py hands a command's pieces (the header, each argument of 6000 bytes or
# more as it is, the tail) to StreamWriter.writelines. Python 3.11's socket
# transport joins them into one new bytes object before sending, and copies
# into its buffer whatever the socket does not take at once: one to two copies
# of every image on its way out, on the event loop. Python 3.12's transport sends
# the pieces themselves with sendmsg and buffers views of them. On 3.11 our
# connections get a writer that does the same for commands that carry a large
# argument; everything else, and any other transport (TLS, another event
# loop), goes through the transport as before.

# A command with a piece this large goes out from its own buffers: below it,
# the join is cheaper than what it saves.
DIRECT_MIN_BYTES = 32 * 1024
# Buffers handed to one writev call (IOV_MAX is 1024 on Linux).
_IOV_BATCH = 64
ZERO_COPY_BUILTIN = sys.version_info >= (3, 12)


class _DirectWriter(asyncio.StreamWriter):
    """A StreamWriter that sends large commands from the caller's buffers.

    Only while the transport has nothing buffered, so bytes go out in the
    order they were written; until they are all sent, later writes queue
    behind them, as views (not copies). What the socket takes at once goes
    out from ``writelines`` on the transport's own descriptor, which is open
    for as long as the transport is not closing. Waiting for room needs a
    descriptor of our own (the event loop refuses to watch a transport's):
    a duplicate made for that wait and closed when it ends, so no descriptor
    outlives a send, and a fork or a close elsewhere meets only the
    transport's own socket. redis-py awaits ``drain()`` after every write and
    reads no reply before; it drops the connection on any error or cancel
    there, so half a command is never followed by another. Errors surface as
    OSError from writelines or drain, where redis-py expects them.
    """

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
        fd: int,
    ) -> None:
        transport = writer.transport
        super().__init__(transport, transport.get_protocol(), reader, loop)
        # Kept alive: a StreamWriter closes its transport when it is collected.
        self._replaced = writer
        self._fd = fd  # the transport's: valid only while it is not closing
        self._event_loop = loop
        self._unsent: deque[memoryview] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._dup: int | None = None

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        chunks = data if isinstance(data, list) else list(data)
        if not self._unsent and (
            self.transport.get_write_buffer_size()
            or self.transport.is_closing()
            or not any(len(c) >= DIRECT_MIN_BYTES for c in chunks)
        ):
            super().writelines(chunks)
            return
        self._unsent.extend(memoryview(c) for c in chunks if len(c))
        if self._waiter is None:
            if self.transport.is_closing():
                raise ConnectionResetError("the connection was closed while sending")
            self._push(self._fd)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._unsent:
            self.writelines([data])  # behind what is still unsent
        else:
            super().write(data)

    def _push(self, fd: int) -> None:
        """Send what the socket takes now; raises OSError if the connection broke."""
        unsent = self._unsent
        while unsent:
            try:
                sent = os.writev(fd, list(itertools.islice(unsent, _IOV_BATCH)))
            except (BlockingIOError, InterruptedError):
                return
            while sent:
                head = unsent[0]
                if len(head) <= sent:
                    sent -= len(head)
                    unsent.popleft()
                else:
                    unsent[0] = head[sent:]
                    sent = 0

    async def drain(self) -> None:
        while self._unsent:
            if self.transport.is_closing():
                raise ConnectionResetError("the connection was closed while sending")
            if self._waiter is not None:
                # Another task already waits for room for the same bytes
                # (redis-py drains from one task, but a StreamWriter allows
                # more): share its wait; a second one would orphan the first.
                await asyncio.shield(self._waiter)
            else:
                await self._wait_for_room()
        await super().drain()

    async def _wait_for_room(self) -> None:
        loop = self._event_loop
        waiter = self._waiter = loop.create_future()
        # A transport closed under us (by asyncio on a fatal error, or by
        # anyone's close()) ends the wait: our duplicate must not keep the
        # connection open for the server. Python 3.11's stream protocol
        # resolves this future in connection_lost.
        protocol = self.transport.get_protocol()
        closed: asyncio.Future[None] = protocol._get_close_waiter(self)  # type: ignore[attr-defined]
        closed.add_done_callback(self._on_transport_closed)
        try:
            self._dup = os.dup(self._fd)
            loop.add_writer(self._dup, self._on_writable)
            # Shielded: cancelling this drain must not cancel a wait that
            # other drains share; they take over with a wait of their own.
            await asyncio.shield(waiter)
        finally:
            closed.remove_done_callback(self._on_transport_closed)
            if self._waiter is waiter:
                self._stop_waiting(None)

    def _on_writable(self) -> None:
        try:
            if self._dup is not None:
                self._push(self._dup)
        except OSError as exc:
            self._stop_waiting(exc)
            return
        if not self._unsent:
            self._stop_waiting(None)

    def _on_transport_closed(self, _: object) -> None:
        self._stop_waiting(ConnectionResetError("the connection was closed while sending"))

    def _stop_waiting(self, exc: BaseException | None) -> None:
        waiter, self._waiter = self._waiter, None
        dup, self._dup = self._dup, None
        if dup is not None:
            # Taken out of epoll before it is closed: the transport's socket
            # keeps the file open, and a registration of a closed number
            # would go on firing.
            self._event_loop.remove_writer(dup)
            os.close(dup)
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def close(self) -> None:
        self._stop_waiting(ConnectionResetError("the connection was closed while sending"))
        self._unsent.clear()
        super().close()


def _direct_writer(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader | None
) -> asyncio.StreamWriter:
    """``writer`` with zero-copy sends where they are possible and Python lacks them."""
    transport = writer.transport
    loop = asyncio.get_running_loop()
    sock = transport.get_extra_info("socket")
    if (
        ZERO_COPY_BUILTIN
        or sock is None
        or transport.get_extra_info("ssl_object") is not None
        or not isinstance(loop, asyncio.SelectorEventLoop)
    ):
        return writer
    return _DirectWriter(writer, reader, loop, sock.fileno())


class _TcpConnection(Connection):
    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        if self._writer is not None:
            self._writer = _direct_writer(self._writer, self._reader)


class _UnixConnection(UnixDomainSocketConnection):
    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        if self._writer is not None:
            self._writer = _direct_writer(self._writer, self._reader)


# TLS connections keep redis-py's own class: their bytes are encrypted (copied) anyway.
_DIRECT_CLASSES: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _TcpConnection,
    UnixDomainSocketConnection: _UnixConnection,
}


def connect(url: str, *, max_connections: int | None = None) -> Redis:
    """A client for ``url``.

    With ``max_connections`` callers queue for a free connection instead of
    opening hundreds (the submitter, under bursts); without it the pool grows
    as needed (workers, whose concurrency already bounds it).

    Commands are never retried behind our back: a resent RPUSH would queue a
    job twice, so callers own their retries and deadlines.
    """
    options: dict[str, Any] = {
        # No read timeout (redis-py's default is 5 s): BLMOVE blocks for as
        # long as it likes, and the callers' deadlines bound everything else.
        "socket_timeout": None,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "socket_keepalive_options": _KEEPALIVE,
        "retry": Retry(NoBackoff(), 0),
    }
    if url.lower().startswith("unix:"):
        # A local socket has no peer to vanish, and redis-py's unix
        # connections refuse keepalive options.
        del options["socket_keepalive"], options["socket_keepalive_options"]
    if max_connections is None:
        client = _Redis.from_url(url, **options)
    else:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=None, **options
        )
        client = _Redis(connection_pool=pool)
    made = client.connection_pool
    made.connection_class = _DIRECT_CLASSES.get(made.connection_class, made.connection_class)
    return client


async def backoff(first: float = 0.05, cap: float = 5.0) -> AsyncIterator[float]:
    """Exponential backoff with jitter: sleeps each delay, then yields it.

    Goes on for as long as the caller iterates; callers bound it with their
    own deadline.
    """
    delay = first
    while True:
        pause = delay * random.uniform(0.5, 1.0)
        await asyncio.sleep(pause)
        yield pause
        delay = min(cap, delay * 2)


def safe_url(url: str) -> str:
    """The URL without its credentials, for messages and logs: the user and
    password before ``@`` and any ``password=`` (or ``username=``) in the query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest, qmark, query = rest.partition("?")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    if qmark:
        fields = []
        for field in query.split("&"):
            name, eq, _ = field.partition("=")
            hidden = eq and name.lower() in ("password", "username", "user", "pass")
            fields.append(f"{name}=***" if hidden else field)
        query = "&".join(fields)
    return f"{scheme}{sep}{rest}{qmark}{query}"


def describe(exc: BaseException) -> str:
    """A Redis error's own text, for messages and logs. redis-py prefixes
    pipeline errors with the failing command and its arguments, which may be
    image bytes: never show those."""
    text = str(exc.args[0]) if exc.args else str(exc)
    marker = "of pipeline caused error: "
    if marker in text:
        text = text.split(marker, 1)[1].strip("()',\"")
    return text


class Outage:
    """Logs a run of failures of one loop once: when it starts and when it ends.

    A Redis that is full or read-only for minutes would otherwise print the
    same warning on every retry and bury everything else in the log.
    """

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self.log = logger
        self.since: float | None = None
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning(
                "%s failed (%s); retrying until Redis answers", self.what, _describe_any(exc)
            )
        else:
            self.log.debug("%s failed again (%s)", self.what, _describe_any(exc))

    def ok(self) -> None:
        if self.since is not None:
            self.log.info(
                "%s works again after %.1f s (%d failed tries)",
                self.what, time.monotonic() - self.since, self.failures,
            )  # fmt: skip
            self.since, self.failures = None, 0


def _describe_any(exc: BaseException) -> str:
    if isinstance(exc, REDIS_ERRORS):
        return describe(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {describe(exc)}"
