"""Per-user and global limits on jobs in flight, kept in Redis so that every
bot process shares them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from erogaki_common import keys

# KEYS: the user's set, everyone's set. ARGV: now, expiry, user limit, cap, ids...
# Entries past their expiry are dropped first, so a crashed bot can't hold
# slots for longer than its jobs' deadlines.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local n = #ARGV - 4
local mine = redis.call('ZCARD', KEYS[1])
if mine + n > tonumber(ARGV[3]) then return {1, mine} end
local all = redis.call('ZCARD', KEYS[2])
if all + n > tonumber(ARGV[4]) then return {2, all} end
for i = 5, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
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
    # Jobs already in flight (the user's, or everyone's) and the limit.
    current: int
    limit: int


class Limits:
    def __init__(self, redis: Redis, *, per_user: int, cap: int) -> None:
        self.redis = redis
        self.per_user = per_user
        self.cap = cap
        self._reserve = redis.register_script(_RESERVE)

    async def reserve(self, user_id: int, job_ids: list[str], ttl: float) -> LimitHit | None:
        """Take slots for ``job_ids`` for at most ``ttl`` seconds; None if granted."""
        now = time.time()
        which, current = await self._reserve(
            keys=[f"{keys.BOT_INFLIGHT_PREFIX}{user_id}", keys.BOT_INFLIGHT_ALL],
            args=[now, now + ttl, self.per_user, self.cap, *job_ids],
        )
        if which == 0:
            return None
        refusal = Refusal.USER if which == 1 else Refusal.QUEUE
        limit = self.per_user if refusal is Refusal.USER else self.cap
        return LimitHit(refusal, int(current), limit)

    async def release(self, user_id: int, job_ids: list[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(f"{keys.BOT_INFLIGHT_PREFIX}{user_id}", *job_ids)
            pipe.zrem(keys.BOT_INFLIGHT_ALL, *job_ids)
            await pipe.execute()
