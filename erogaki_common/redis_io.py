"""Redis connections and the retry policy every component shares."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

# What a dropped or refused connection raises; anything else is a real error.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
)

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


class _Redis(Redis):
    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _QuietPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


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
    if max_connections is None:
        return _Redis.from_url(url, **options)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=None, **options
    )
    return _Redis(connection_pool=pool)


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
