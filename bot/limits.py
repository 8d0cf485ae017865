"""Per-user and global limits on requests in flight, kept in Redis so that
every bot process shares them.

A user may have ``per_user`` requests (commands) in flight, whatever their
number of images; the queue cap counts images, because images are what the
workers spend time on. A reservation is keyed by its request, so repeating
it (a retry after a lost reply) takes nothing more, and releasing it twice
is harmless.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from erogaki_common import keys

# KEYS: the user's set (request keys), everyone's set (job ids).
# ARGV: now, expiry, user limit, cap, request key, job ids...
# Entries past their expiry are dropped first, so a crashed bot can't hold
# slots for longer than its jobs' deadlines.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[5]) then return {0, 0} end
local n = #ARGV - 5
local mine = redis.call('ZCARD', KEYS[1])
if mine + 1 > tonumber(ARGV[3]) then return {1, mine} end
local all = redis.call('ZCARD', KEYS[2])
if all + n > tonumber(ARGV[4]) then return {2, all} end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5])
for i = 6, #ARGV do
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[i])
end
local ttl = math.ceil(tonumber(ARGV[2]) - tonumber(ARGV[1])) + 60
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {0, 0}
"""


class Refusal(StrEnum):
    USER = "user"
    QUEUE = "queue"


@dataclass(frozen=True, slots=True)
class LimitHit:
    which: Refusal
    # In flight already: the user's requests, or everyone's images.
    current: int
    limit: int
    # Images the refused request would have added.
    adding: int


class Limits:
    def __init__(self, redis: Redis, *, per_user: int, cap: int) -> None:
        self.redis = redis
        self.per_user = per_user
        self.cap = cap
        self._reserve = redis.register_script(_RESERVE)

    async def reserve(
        self, user_id: int, request_key: str, job_ids: list[str], ttl: float
    ) -> LimitHit | None:
        """Take one request slot and a queue slot per job for at most ``ttl``
        seconds; None if granted (or granted before, to the same request)."""
        now = time.time()
        which, current = await self._reserve(
            keys=[f"{keys.BOT_INFLIGHT_PREFIX}{user_id}", keys.BOT_INFLIGHT_ALL],
            args=[now, now + ttl, self.per_user, self.cap, request_key, *job_ids],
        )
        if which == 0:
            return None
        refusal = Refusal.USER if which == 1 else Refusal.QUEUE
        limit = self.per_user if refusal is Refusal.USER else self.cap
        return LimitHit(refusal, int(current), limit, len(job_ids))

    async def release(self, user_id: int, request_key: str, job_ids: list[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(f"{keys.BOT_INFLIGHT_PREFIX}{user_id}", request_key)
            if job_ids:
                pipe.zrem(keys.BOT_INFLIGHT_ALL, *job_ids)
            await pipe.execute()
