"""Real redis-server processes for the tests: never a mock, never a shared one.

``redis_url`` gives a flushed database on one server per test session;
``redis_factory`` starts servers of a test's own for tests that kill,
restart or reconfigure Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis

from erogaki_common.embedded_redis import EmbeddedRedis, RedisNotFound


def _start(**kwargs: object) -> EmbeddedRedis:
    try:
        return EmbeddedRedis(**kwargs).start()  # type: ignore[arg-type]
    except RedisNotFound as exc:
        pytest.fail(f"the tests need a real Redis: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    # Started without keyevents: the submitter must turn them on itself.
    server = _start(notify_flags="")
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    client = redis.Redis.from_url(redis_server.url())
    client.flushall()
    client.close()
    return redis_server.url()


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., EmbeddedRedis]]:
    servers: list[EmbeddedRedis] = []

    def make(**kwargs: object) -> EmbeddedRedis:
        server = _start(**kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


async def wait_for(
    condition: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0, what: str = ""
) -> None:
    """Wait until ``condition()`` is true, failing the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()
