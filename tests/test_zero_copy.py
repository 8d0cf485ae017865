"""An image is not copied on its way from our code to the socket.

redis-py hands a command's pieces to ``StreamWriter.writelines``; Python 3.11's
socket transport joins them into one new bytes object (a full copy of the image)
and copies what the socket cannot take at once into its buffer. Our connections
send large commands from the caller's buffers instead (Python 3.12's transport
does the same by itself). tracemalloc sees every Python allocation: what is
allocated while an image goes out must stay well under the image's size. What
does get allocated is the 256 KiB receive buffer of the reply's read.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import tracemalloc
from collections.abc import Callable

import pytest

from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.errors import Component
from erogaki_common.keys import Queue
from erogaki_common.protocol import Mode
from erogaki_common.redis_io import CONNECTION_ERRORS, connect
from erogaki_common.submit import Submitter
from erogaki_common.worker import Done, Forward, Job, JobReport, Outcome, Worker

MiB = 1024 * 1024
# Well under one image: a copy of a 1 MiB image alone would pass it.
CEILING = 512 * 1024


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _finish_peak(url: str, payload: bytes, outcome: Callable[[Job], Outcome]) -> int:
    """Peak allocation from the moment the processor returns ``outcome`` until
    the worker reports the job finished in Redis."""
    peaks: list[int] = []
    reports: list[JobReport] = []

    async def process(job: Job) -> Outcome:
        result = outcome(job)
        gc.collect()
        tracemalloc.start()
        return result

    def on_report(report: JobReport) -> None:
        if tracemalloc.is_tracing():
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        reports.append(report)

    submitter = Submitter(url)
    await submitter.start()
    job_id = await submitter.submit(payload, Mode.BAR_MASKED, timeout=60)
    # The submitter would GET the answer inside the measured window.
    await submitter.close()
    worker = Worker(url, [Queue.DEEPCREAMPY_BAR], process, component=Component.DEEPCREAMPY,
                    burst=True, on_report=on_report)  # fmt: skip
    try:
        await asyncio.wait_for(worker.run(), 30)
    finally:
        tracemalloc.stop()
    assert [r.id for r in reports] == [job_id]
    assert len(peaks) == 1
    return peaks[0]


async def test_the_workers_result_write_does_not_copy_a_1_mib_image(redis_url: str) -> None:
    payload = os.urandom(MiB)
    peak = await _finish_peak(redis_url, payload, lambda job: Done(payload))
    assert peak < CEILING, f"{peak / 1024:.0f} KiB allocated while storing a 1024 KiB result"
    client = connect(redis_url)
    try:
        ids = await client.keys(keys.result_key("*"))
        assert len(ids) == 1
        assert await client.get(ids[0]) == payload
    finally:
        await client.aclose()


async def test_forwarding_does_not_copy_a_1_mib_image(redis_url: str) -> None:
    payload = os.urandom(MiB)
    peak = await _finish_peak(redis_url, payload, lambda job: Forward(Queue.HENTAI_MOSAIC, payload))
    assert peak < CEILING, f"{peak / 1024:.0f} KiB allocated while forwarding 1024 KiB"
    client = connect(redis_url)
    try:
        (job_id,) = await client.lrange(Queue.HENTAI_MOSAIC.value, 0, -1)
        assert await client.get(keys.input_key(job_id.decode())) == payload
    finally:
        await client.aclose()


async def test_submitting_does_not_copy_a_1_mib_image(redis_url: str) -> None:
    payload = os.urandom(MiB)
    async with Submitter(redis_url) as submitter:
        # Connected and subscribed before measuring.
        await submitter.submit(b"warm", Mode.BAR_MASKED, timeout=60)
        gc.collect()
        tracemalloc.start()
        try:
            job_id = await submitter.submit(payload, Mode.BAR_MASKED, timeout=60)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < CEILING, f"{peak / 1024:.0f} KiB allocated while submitting 1024 KiB"
        assert await submitter.redis.get(keys.input_key(job_id)) == payload


async def test_images_larger_than_the_socket_buffer_arrive_whole_and_in_order(
    redis_url: str,
) -> None:
    # 32 MiB is more than a loopback socket takes at once: the rest waits for
    # the socket to drain, still without a copy. Small and large arguments
    # mixed in one MULTI must reach Redis in order.
    big = [os.urandom(32 * MiB), os.urandom(40 * 1024), os.urandom(3 * MiB)]
    client = connect(redis_url)
    try:
        await client.ping()
        gc.collect()
        tracemalloc.start()
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set("a", big[0])
                pipe.set("small", b"x")
                pipe.set("b", big[1])
                pipe.rpush("list", b"1", big[2], b"2")
                await pipe.execute()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < CEILING, f"{peak / 1024:.0f} KiB allocated while sending 35 MiB"
        assert await client.mget("a", "small", "b") == [big[0], b"x", big[1]]
        assert await client.lrange("list", 0, -1) == [b"1", big[2], b"2"]
        # The connection is still in step: a plain command after them.
        assert await client.set("after", b"y") and await client.get("after") == b"y"
    finally:
        await client.aclose()


async def test_a_send_cut_off_by_a_dead_redis_fails_cleanly_and_leaks_nothing(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = connect(server.url())
    try:
        await client.ping()
        before = _open_fds()
        assert server.process is not None
        # A stopped server reads nothing: the send stalls with most of it unsent.
        server.process.send_signal(signal.SIGSTOP)
        sending = asyncio.create_task(client.set("k", os.urandom(64 * MiB)))
        done, _ = await asyncio.wait({sending}, timeout=0.5)
        assert not done, "64 MiB cannot fit in the socket buffers of a stopped server"
        server.kill()
        with pytest.raises(CONNECTION_ERRORS):
            await asyncio.wait_for(sending, 10)
        server.start()
        assert await client.set("k", b"v") and await client.get("k") == b"v"
        # The failed connection's socket and its duplicate are both closed.
        assert _open_fds() <= before
    finally:
        await client.aclose()


async def test_a_cancelled_send_leaves_the_client_usable(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    client = connect(server.url())
    try:
        await client.ping()
        before = _open_fds()
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        sending = asyncio.create_task(client.set("k", os.urandom(64 * MiB)))
        done, _ = await asyncio.wait({sending}, timeout=0.5)
        assert not done
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        server.process.send_signal(signal.SIGCONT)
        # The half-sent command went with its connection; the next one is whole.
        assert await client.set("k", b"v") and await client.get("k") == b"v"
        # No duplicate of a socket outlives the send it was made for.
        assert _open_fds() <= before
    finally:
        await client.aclose()
