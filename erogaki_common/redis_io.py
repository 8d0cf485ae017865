"""Redis connections and the retry policy every component shares."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

# What a dropped or refused connection raises; anything else is a real error.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    OSError,
)


def connect(url: str, *, blocking: bool = False, max_connections: int = 64) -> Redis:
    """A client for ``url`` with a bounded pool (callers queue for a connection
    instead of opening hundreds).

    Commands are never retried behind our back: a resent RPUSH would queue a
    job twice, so callers own their retries. ``blocking`` clients issue BLMOVE
    and must not time out while blocked.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=None,
        socket_connect_timeout=5,
        socket_timeout=None if blocking else 30,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis(connection_pool=pool)


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
    """The URL without its credentials, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
