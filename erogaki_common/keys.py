"""Every Redis key erogaki reads or writes, with its TTL.

The first block is protocol v1 as the seed names it (typos settled in
``docs/protocol.md``); other clients of the protocol depend on these names.
The second block is erogaki's own bookkeeping, all under ``erogaki:`` so it can
never collide with the protocol's keys.

Every key anyone writes carries a TTL: an abandoned job leaves nothing behind
for longer than ``JOB_TTL``. The one exception is a server's settings
(``GUILD_PREFIX``), which are configuration.
"""

from __future__ import annotations

from enum import StrEnum

# --- protocol v1 -------------------------------------------------------------

# String: the input image bytes; hent-AI `bar` overwrites it with the
# green-masked PNG (KEEPTTL).
INPUT_PREFIX = "censored-images:"
# String: the decensored PNG, set by the last worker of the job.
RESULT_PREFIX = "decensored-images:"
# String: the error JSON a worker sets when the job failed.
ERROR_PREFIX = "errors:"


class Queue(StrEnum):
    """The job queues: lists of uuids, RPUSH in, the head out."""

    HENTAI_BAR = "censored-images:hent-ai:bar"
    HENTAI_MOSAIC = "censored-images:hent-ai:mosaic"
    DEEPCREAMPY_BAR = "censored-images:deepcreampy:bar"
    # erogaki's addition to the seed: hent-AI looks for both bars and mosaic and
    # does whichever it finds. Clients that only know the three above never see it.
    HENTAI_AUTO = "censored-images:hent-ai:auto"


# --- erogaki's own keys --------------------------------------------------------

# Hash per job: submitted (epoch s), mode, stage, attempts, worker, cancelled.
# Workers tolerate its absence: jobs from foreign submitters have none.
JOB_PREFIX = "erogaki:job:"
# List per (worker instance, queue): the uuids that instance has claimed from
# that queue with BLMOVE and not yet finished (Redis' reliable-queue pattern).
PROCESSING_PREFIX = "erogaki:processing:"
# String per worker instance: its heartbeat JSON; expiry means the worker is dead.
HEARTBEAT_PREFIX = "erogaki:worker:"
# Hash: worker instance -> JSON list of the queues it consumes; lets a reaper
# find the processing lists of workers whose heartbeat expired.
INSTANCES = "erogaki:instances"
# String: a throwaway key set once at start-up to prove keyevents reach us.
PROBE_PREFIX = "erogaki:probe:"
# Pub/sub channel per job: stage changes, published by workers.
STAGE_CHANNEL_PREFIX = "erogaki:stage:"

# The bot's keys, shared by every bot process.
# Sorted set per user, and one for everyone: job ids in flight, scored by the
# epoch second their deadline passes (so a crashed bot's entries age out).
BOT_INFLIGHT_PREFIX = "erogaki:bot:inflight:"
BOT_INFLIGHT_ALL = "erogaki:bot:inflight"
# Hash: interaction id -> JSON record of a request whose results are still due,
# so a bot started after a crash can deliver them.
BOT_PENDING = "erogaki:bot:pending"
# String per finished request (TTL BOT_DONE_TTL): lets a bot whose record is gone tell
# "another bot delivered it" from "Redis lost it".
BOT_DONE_PREFIX = "erogaki:bot:pending:done:"
# Longer than any stall a bot lives through.
BOT_DONE_TTL = 600
# String per bot process: its heartbeat; a record whose owner has none is orphaned.
BOT_ALIVE_PREFIX = "erogaki:bot:alive:"
# List: seconds from submit to result of the most recent jobs, newest first,
# for the median wait that /erogaki status shows.
BOT_RECENT_WAITS = "erogaki:bot:recent-waits"
RECENT_WAITS_KEPT = 100
# Hash per Discord server: the settings its moderators changed (absent: all
# defaults). Configuration, not job state: the one kind of key kept without a
# TTL (``erogaki settings export`` backs them up). See bot/server_settings.py.
GUILD_PREFIX = "erogaki:guild:"
# Pub/sub channel: a server's id, published when its settings change, so every
# bot process drops its cached copy.
GUILD_CHANGED_CHANNEL = "erogaki:guild-changed"
# Sorted set per server, and one for all: requests answered in the last hour,
# scored by epoch second, for /erogaki status.
BOT_SERVED_PREFIX = "erogaki:bot:served:"
BOT_SERVED_ALL = "erogaki:bot:served"

# --- TTLs (seconds) ------------------------------------------------------------

# Inputs, results, errors, job hashes, queues and processing lists: long enough
# for a restarted bot to deliver a result, short enough that nothing piles up.
JOB_TTL = 3600
# A heartbeat outlives three missed beats before its worker counts as dead.
HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = 15
PROBE_TTL = 10


def input_key(job_id: str) -> str:
    return INPUT_PREFIX + job_id


def result_key(job_id: str) -> str:
    return RESULT_PREFIX + job_id


def error_key(job_id: str) -> str:
    return ERROR_PREFIX + job_id


def job_key(job_id: str) -> str:
    return JOB_PREFIX + job_id


def heartbeat_key(instance: str) -> str:
    return HEARTBEAT_PREFIX + instance


def processing_key(instance: str, queue: str) -> str:
    return f"{PROCESSING_PREFIX}{instance}:{queue}"


def stage_channel(job_id: str) -> str:
    return STAGE_CHANNEL_PREFIX + job_id


def keyevent_channel(db: int, event: str = "set") -> str:
    """The keyevent channel for ``event`` in database ``db``."""
    return f"__keyevent@{db}__:{event}"


def job_keys(job_id: str) -> tuple[str, ...]:
    """Every key a finished job may have left; the submitter deletes them all."""
    return (input_key(job_id), result_key(job_id), error_key(job_id), job_key(job_id))
