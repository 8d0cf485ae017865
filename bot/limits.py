"""Per-user and global limits on requests in flight, kept in Redis so that
every bot process shares them.

A user may have ``per_user`` requests (commands) in flight, whatever their
number of images, and no more in one server than that server's own setting;
the queue cap counts images, because images are what the workers spend
time on. A reservation is keyed by its request, so repeating
it (a retry after a lost reply) takes nothing more, and releasing it twice
is harmless.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from erogaki_common import keys

# KEYS: the user's set (request keys), everyone's set (job ids), the user's
# set in this server (request keys).
# ARGV: now, expiry, user limit, cap, server's user limit, request key, job ids...
# Entries past their expiry are dropped first, so a crashed bot can't hold
# slots for longer than its jobs' deadlines.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[6]) then return {0, 0} end
local n = #ARGV - 6
local mine = redis.call('ZCARD', KEYS[1])
if mine + 1 > tonumber(ARGV[3]) then return {1, mine} end
local here = redis.call('ZCARD', KEYS[3])
if here + 1 > tonumber(ARGV[5]) then return {3, here} end
local all = redis.call('ZCARD', KEYS[2])
if all + n > tonumber(ARGV[4]) then return {2, all} end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[6])
for i = 7, #ARGV do
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[i])
end
local ttl = math.ceil(tonumber(ARGV[2]) - tonumber(ARGV[1])) + 60
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
return {0, 0}
"""


class Refusal(StrEnum):
    USER = "user"
    QUEUE = "queue"
    # The server's own, lower, limit per member (its /erogaki settings).
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class LimitHit:
    which: Refusal
    # In flight already: the user's requests (in all, or in the server), or everyone's images.
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
        self,
        user_id: int,
        request_key: str,
        job_ids: list[str],
        ttl: float,
        *,
        guild_id: int = 0,
        server_limit: int | None = None,
    ) -> LimitHit | None:
        """Take one request slot (the user's, and the user's in ``guild_id``)
        and a queue slot per job for at most ``ttl`` seconds; None if granted
        (or granted before, to the same request). ``server_limit`` is the
        server's own limit per member, below the host's ``per_user``."""
        now = time.time()
        here = self.per_user if server_limit is None else min(server_limit, self.per_user)
        which, current = await self._reserve(
            keys=[_user_key(user_id), keys.BOT_INFLIGHT_ALL, _user_key(user_id, guild_id)],
            args=[now, now + ttl, self.per_user, self.cap, here, request_key, *job_ids],
        )
        if which == 0:
            return None
        refusal = {1: Refusal.USER, 2: Refusal.QUEUE, 3: Refusal.SERVER}[int(which)]
        limit = {Refusal.USER: self.per_user, Refusal.QUEUE: self.cap, Refusal.SERVER: here}
        return LimitHit(refusal, int(current), limit[refusal], len(job_ids))

    async def release(
        self, user_id: int, request_key: str, job_ids: list[str], *, guild_id: int = 0
    ) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(_user_key(user_id), request_key)
            pipe.zrem(_user_key(user_id, guild_id), request_key)
            if job_ids:
                pipe.zrem(keys.BOT_INFLIGHT_ALL, *job_ids)
            await pipe.execute()


def _user_key(user_id: int, guild_id: int | None = None) -> str:
    """The user's requests in flight, in all or in one server (0: DMs)."""
    if guild_id is None:
        return f"{keys.BOT_INFLIGHT_PREFIX}{user_id}"
    return f"{keys.BOT_INFLIGHT_PREFIX}{user_id}:{guild_id}"
