"""arq's identity job: ``arq peers_jobs.arq_jobs.WorkerSettings``."""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings

# arq polls its queue between batches (0.5 s by default), so the default
# alone would put every round trip at a quarter second on average; 10 ms is
# what a latency-minded deployment would pick, and its polling cost shows up
# in redis-server's CPU column.
POLL_DELAY_S = 0.01


async def identity(ctx: dict[str, Any], data: bytes) -> bytes:
    return data


class WorkerSettings:
    functions = [identity]
    redis_settings = RedisSettings.from_dsn(os.environ["PEERS_REDIS_URL"])
    poll_delay = POLL_DELAY_S
    # Long enough for the submitter to read it; the submitter deletes it at once.
    keep_result = 60
