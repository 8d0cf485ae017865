"""A worker process running the real loop with a simple test processor.

``python -m tests.worker_proc URL BEHAVIOUR INSTANCE [QUEUE ...]``; tests start
it to SIGKILL or SIGTERM a real process. Behaviours:

- ``echo``: the result is ``b"done:" + input``
- ``slow``: like echo after one second of work
- ``crash``: the process dies (``os._exit``) in the middle of the job
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from erogaki_common.errors import Component
from erogaki_common.keys import Queue
from erogaki_common.worker import Done, Job, Outcome, Worker


async def echo(job: Job) -> Outcome:
    return Done(b"done:" + job.data)


async def slow(job: Job) -> Outcome:
    await asyncio.to_thread(time.sleep, 1.0)  # stands for a second of GPU work
    return Done(b"done:" + job.data)


async def crash(job: Job) -> Outcome:
    os._exit(17)


BEHAVIOURS = {"echo": echo, "slow": slow, "crash": crash}


async def main(url: str, behaviour: str, instance: str, queues: list[Queue]) -> None:
    worker = Worker(
        url,
        queues or [Queue.DEEPCREAMPY_BAR],
        BEHAVIOURS[behaviour],
        component=Component.DEEPCREAMPY,
        instance=instance,
        heartbeat_interval=0.2,
        heartbeat_ttl=1,
        max_attempts=2,
    )
    worker.install_signal_handlers()
    await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    url, behaviour, instance, *names = sys.argv[1:]
    asyncio.run(main(url, behaviour, instance, [Queue(n) for n in names]))
