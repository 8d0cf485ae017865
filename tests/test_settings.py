"""Per-server settings: the model, the Redis hash, the cache shared by bot
processes, export and import; and the audit trail. Real redis-server throughout."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from bot import audit
from bot.limits import Limits, Refusal
from bot.server_settings import (
    ALL_FEATURES,
    Feature,
    InvalidSettings,
    ServerSettings,
    ServerSettingsStore,
    SpoilerPolicy,
    Where,
    settings_key,
)
from erogaki_common import keys
from erogaki_common.embedded_redis import EmbeddedRedis
from erogaki_common.protocol import Mode
from tests.conftest import wait_for
from tests.test_cli import erogaki

GUILD = 111_222_333_444_555_666
OTHER = 999_888_777_666_555_444


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[ServerSettingsStore]:
    client = aioredis.Redis.from_url(redis_url)
    s = ServerSettingsStore(client)
    await s.start()
    assert await s.wait_live(5)
    yield s
    await s.close()
    await client.aclose()


async def guild_keys(client: aioredis.Redis) -> list[bytes]:
    return [k async for k in client.scan_iter(match=keys.GUILD_PREFIX + "*")]


# --- the model ----------------------------------------------------------------------------


def test_defaults_follow_the_host() -> None:
    s = ServerSettings()
    assert s.to_fields() == {}
    assert s.spoiler_policy(True) is SpoilerPolicy.ON
    assert s.spoiler_policy(False) is SpoilerPolicy.OFF
    assert s.user_limit(3) == 3
    assert s.features == ALL_FEATURES
    assert s.allows_channel(1, None)


def test_spoiler_policy_and_what_the_requester_asks() -> None:
    on, off = ServerSettings(spoiler=SpoilerPolicy.ON), ServerSettings(spoiler=SpoilerPolicy.OFF)
    always = ServerSettings(spoiler=SpoilerPolicy.ALWAYS)
    assert on.use_spoiler(False, None) and not on.use_spoiler(False, False)
    assert not off.use_spoiler(True, None) and off.use_spoiler(True, True)
    assert always.use_spoiler(False, False)


def test_the_host_limit_caps_the_servers() -> None:
    assert ServerSettings(user_requests=5).user_limit(2) == 2
    assert ServerSettings(user_requests=1).user_limit(2) == 1


def test_listed_channels_include_their_threads() -> None:
    s = ServerSettings(where=Where.LISTED, channels=frozenset({10}))
    assert s.allows_channel(10, None)
    assert s.allows_channel(11, 10)  # a thread of channel 10
    assert not s.allows_channel(12, None)
    assert not s.allows_channel(13, 12)


def test_fields_round_trip_and_only_changes_are_kept() -> None:
    s = ServerSettings(
        where=Where.LISTED,
        channels=frozenset({GUILD + 1, GUILD + 2}),
        spoiler=SpoilerPolicy.ALWAYS,
        user_requests=1,
        features=frozenset({Feature.BAR, Feature.MASKED}),
        role_id=GUILD + 3,
    )
    assert ServerSettings.from_fields(s.to_fields()) == s
    assert ServerSettings.from_json(json.loads(json.dumps(s.to_json()))) == s
    # Everything switched off is a value of its own, not the default.
    none = ServerSettings(features=frozenset())
    assert none.to_fields() == {"modes": "-"}
    assert ServerSettings.from_fields(none.to_fields()).features == frozenset()
    assert ServerSettings(spoiler=SpoilerPolicy.OFF).to_fields() == {"spoiler": "off"}
    assert Feature.of(Mode.BAR_MASKED) is Feature.MASKED


@pytest.mark.parametrize(
    "raw",
    [
        {"where": "everywhere"},
        {"spoiler": "sometimes"},
        {"user_requests": "0"},
        {"modes": "bar,laser"},
        {"role": "-5"},
        {"colour": "red"},
    ],
)
def test_unusable_values_are_refused(raw: dict[str, str]) -> None:
    with pytest.raises(InvalidSettings):
        ServerSettings.from_fields(raw)


# --- storage --------------------------------------------------------------------------


async def test_no_key_for_a_server_that_never_changed_anything(
    store: ServerSettingsStore, aredis: aioredis.Redis
) -> None:
    assert await store.get(GUILD) == ServerSettings()
    assert await store.read(GUILD) == ServerSettings()
    assert await guild_keys(aredis) == []

    old, new = await store.update(GUILD, user_requests=1)
    assert old == ServerSettings() and new.user_requests == 1
    assert await aredis.hgetall(settings_key(GUILD)) == {b"user_requests": b"1"}
    assert await aredis.ttl(settings_key(GUILD)) == -1  # configuration: no TTL
    # Back to the default: the hash empties, so the key goes with it.
    await store.update(GUILD, user_requests=None)
    assert await guild_keys(aredis) == []


async def test_two_moderators_changing_different_settings_both_keep_theirs(
    store: ServerSettingsStore, aredis: aioredis.Redis
) -> None:
    await asyncio.gather(
        store.update(GUILD, spoiler=SpoilerPolicy.ALWAYS),
        store.update(GUILD, role_id=OTHER),
    )
    s = await store.read(GUILD)
    assert s.spoiler is SpoilerPolicy.ALWAYS and s.role_id == OTHER


async def test_a_list_edited_by_two_moderators_at_once_keeps_both_changes(
    store: ServerSettingsStore, redis_url: str
) -> None:
    """Moderator B adds a channel after A has read the list and before A writes:
    A's edit is made again on the list as B left it, so neither change is lost."""
    other = redis.Redis.from_url(redis_url)
    seen: list[frozenset[int]] = []

    def a_adds(cur: ServerSettings) -> dict[str, object]:
        seen.append(cur.channels)
        if len(seen) == 1:
            # B's whole change lands between A's read and A's write.
            other.hset(settings_key(GUILD), "channels", "2")
        return {"channels": cur.channels | {1}}

    try:
        old, new = await store.edit(GUILD, a_adds)
    finally:
        other.close()
    assert seen == [frozenset(), frozenset({2})]
    assert old.channels == {2} and new.channels == {1, 2}
    assert (await store.read(GUILD)).channels == {1, 2}


async def test_concurrent_channel_edits_all_land(
    store: ServerSettingsStore, redis_url: str
) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(8)]
    stores = [ServerSettingsStore(c) for c in clients]
    try:
        await asyncio.gather(
            *(
                s.edit(GUILD, lambda cur, n=n: {"channels": cur.channels | {100 + n}})
                for n, s in enumerate(stores)
                for _ in range(3)
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    assert (await store.read(GUILD)).channels == {100 + n for n in range(8)}


async def test_unreadable_settings_fall_back_to_the_defaults(
    store: ServerSettingsStore, aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await aredis.hset(settings_key(GUILD), "where", "the-moon")
    with caplog.at_level(logging.WARNING):
        assert await store.get(GUILD) == ServerSettings()
    assert "can't read" in caplog.text


async def test_two_bot_processes_see_each_others_changes_within_a_second(
    redis_url: str,
) -> None:
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    first, second = (ServerSettingsStore(c) for c in clients)
    try:
        for s in (first, second):
            await s.start()
            assert await s.wait_live(5)
        # Both cache the defaults (for a minute, unless told otherwise).
        assert (await first.get(GUILD)).where is Where.NSFW
        assert (await second.get(GUILD)).where is Where.NSFW
        for changer, seer in ((first, second), (second, first)):
            started = time.monotonic()
            _, new = await changer.update(
                GUILD, where=Where.LISTED, channels=frozenset({int(started * 1000)})
            )

            async def sees(seer: ServerSettingsStore = seer, new: ServerSettings = new) -> bool:
                return await seer.get(GUILD) == new

            await wait_for(sees, timeout=1.0, what="the other process to see the change")
        # The other server's cached copy is untouched by this server's changes.
        await first.get(OTHER)
        assert OTHER in first._cache
    finally:
        for s in (first, second):
            await s.close()
        for c in clients:
            await c.aclose()


async def test_a_change_made_while_not_listening_is_not_missed(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory(notify_flags="")
    client = aioredis.Redis.from_url(server.url())
    s = ServerSettingsStore(client)
    await s.start()
    try:
        assert await s.wait_live(5)
        assert await s.get(GUILD) == ServerSettings()  # cached
        server.kill()
        await wait_for(lambda: not s._live.is_set(), what="the store to notice Redis is gone")
        server.start()
        # Nobody heard this change: the store wasn't subscribed.
        writer = aioredis.Redis.from_url(server.url())
        await writer.hset(settings_key(GUILD), "spoiler", "always")
        await writer.aclose()

        async def seen() -> bool:
            try:
                return (await s.get(GUILD)).spoiler is SpoilerPolicy.ALWAYS
            except (ConnectionError, OSError, aioredis.ConnectionError):
                return False

        await wait_for(seen, timeout=10, what="the unheard change")
    finally:
        await s.close()
        await client.aclose()


# --- export and import -------------------------------------------------------------------


async def test_export_then_import_restores_the_settings(
    redis_url: str, store: ServerSettingsStore, aredis: aioredis.Redis, tmp_path: Path
) -> None:
    await store.update(
        GUILD, where=Where.LISTED, channels=frozenset({GUILD + 1}), spoiler=SpoilerPolicy.OFF
    )
    await store.update(OTHER, features=frozenset({Feature.MOSAIC}), role_id=GUILD + 9)
    saved = {g: await store.read(g) for g in (GUILD, OTHER)}
    backup = tmp_path / "settings.json"
    code, _, err = await erogaki(redis_url, "settings", "export", str(backup))
    assert code == 0, err
    assert "2 server(s)" in err
    data = json.loads(backup.read_text())
    assert data["servers"][str(GUILD)]["channels"] == [str(GUILD + 1)]

    # Lost, or changed since: import brings back exactly what was exported.
    await aredis.delete(settings_key(OTHER))
    await store.update(GUILD, user_requests=1, spoiler=SpoilerPolicy.ALWAYS)
    assert (await store.get(GUILD)).user_requests == 1  # cached now
    code, _, err = await erogaki(redis_url, "settings", "import", str(backup))
    assert code == 0, err
    assert {g: await store.read(g) for g in (GUILD, OTHER)} == saved

    # The running store heard the import (a real process) and dropped its copy.
    async def restored() -> bool:
        return await store.get(GUILD) == saved[GUILD]

    await wait_for(restored, timeout=1.0, what="the import to reach the cache")

    # Export to stdout matches the file.
    code, out, _ = await erogaki(redis_url, "settings", "export")
    assert code == 0 and json.loads(out) == data


async def test_export_keeps_a_server_with_one_unreadable_field(
    redis_url: str, aredis: aioredis.Redis, tmp_path: Path
) -> None:
    await aredis.hset(
        settings_key(GUILD), mapping={"where": "the-moon", "spoiler": "off", "role": str(OTHER)}
    )
    backup = tmp_path / "settings.json"
    code, _, err = await erogaki(redis_url, "settings", "export", str(backup))
    assert code == 0, err
    assert "1 server(s)" in err and "where" in err
    server = json.loads(backup.read_text())["servers"][str(GUILD)]
    assert server["spoiler"] == "off" and server["role"] == str(OTHER)
    assert "where" not in server


async def test_a_bad_backup_writes_nothing(
    redis_url: str, aredis: aioredis.Redis, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    servers = {str(GUILD): {"spoiler": "always"}, str(OTHER): {"where": "everywhere"}}
    bad.write_text(json.dumps({"version": 1, "servers": servers}))
    code, _, err = await erogaki(redis_url, "settings", "import", str(bad))
    assert code == 2 and f"server {OTHER}" in err
    assert await guild_keys(aredis) == []
    bad.write_text("[]")
    code, _, err = await erogaki(redis_url, "settings", "import", str(bad))
    assert code == 2 and "not an erogaki settings export" in err


# --- audit ---------------------------------------------------------------------------------


def test_an_audit_line_carries_ids_counts_and_timings_only() -> None:
    entry = audit.AuditRecord(
        request=5, guild_id=GUILD, channel_id=7, user_id=8, mode=Mode.BAR, images=2,
        outcome=audit.Outcome.PARTIAL, wait=12.34, total=14.0,
    )  # fmt: skip
    assert entry.line() == (
        f"audit request=5 server={GUILD} channel=7 user=8 mode=bar images=2 "
        "outcome=partial wait=12.3s total=14.0s"
    )
    refused = audit.AuditRecord(5, GUILD, 7, 8, Mode.AUTO, 1, audit.Outcome.REFUSED, "mode")
    assert refused.line().endswith("outcome=refused reason=mode")
    with pytest.raises(ValueError):
        audit.AuditRecord(5, GUILD, 7, 8, Mode.AUTO, 1, audit.Outcome.REFUSED, "a b.png").line()


async def test_last_hour_per_server_and_for_all(
    aredis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    def entry(n: int, guild: int, outcome: audit.Outcome, images: int) -> audit.AuditRecord:
        return audit.AuditRecord(n, guild, 1, 2, Mode.MOSAIC, images, outcome, total=1.0)

    with caplog.at_level(logging.INFO, logger="bot.audit"):
        await audit.record(aredis, entry(1, GUILD, audit.Outcome.DONE, 2))
        await audit.record(aredis, entry(2, GUILD, audit.Outcome.FAILED, 1))
        await audit.record(aredis, entry(3, GUILD, audit.Outcome.REFUSED, 4))
        await audit.record(aredis, entry(4, OTHER, audit.Outcome.DONE, 1))
    assert caplog.text.count("audit request=") == 4
    # An entry older than an hour no longer counts.
    await aredis.zadd(f"{keys.BOT_SERVED_PREFIX}{GUILD}", {"0:done:3": time.time() - 3700})
    figures = await audit.last_hour(aredis, GUILD)
    assert figures.server_requests == 3 and figures.server_images == 3
    assert figures.all_requests == 4
    assert figures.server_line() == "3 request(s), 3 image(s) (1 failed, 1 refused)"
    assert (await audit.last_hour(aredis, None)).server_requests == 0
    assert 0 < await aredis.ttl(keys.BOT_SERVED_ALL) <= audit.HOUR


async def test_a_servers_limit_counts_only_its_own_requests(aredis: aioredis.Redis) -> None:
    limits = Limits(aredis, per_user=2, cap=10)
    here = {"guild_id": GUILD, "server_limit": 1}
    assert await limits.reserve(7, "r1", ["a"], ttl=60, **here) is None
    hit = await limits.reserve(7, "r2", ["b"], ttl=60, **here)
    assert hit is not None and (hit.which, hit.current, hit.limit) == (Refusal.SERVER, 1, 1)
    # Another server lets the same user in, up to the host's limit across all servers.
    assert await limits.reserve(7, "r3", ["c"], ttl=60, guild_id=OTHER) is None
    hit = await limits.reserve(7, "r4", ["d"], ttl=60, guild_id=OTHER + 1)
    assert hit is not None and (hit.which, hit.limit) == (Refusal.USER, 2)
    # A server can't raise the host's limit.
    generous = {"guild_id": GUILD, "server_limit": 5}
    assert await limits.reserve(8, "r5", [], ttl=60, **generous) is None
    assert await limits.reserve(8, "r6", [], ttl=60, **generous) is None
    hit = await limits.reserve(8, "r7", [], ttl=60, **generous)
    assert hit is not None and (hit.which, hit.limit) == (Refusal.USER, 2)
    await limits.release(7, "r1", ["a"], guild_id=GUILD)
    assert await limits.reserve(7, "r2", ["b"], ttl=60, **here) is None
