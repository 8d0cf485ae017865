"""``erogaki settings export|import``: back up and restore every Discord
server's bot settings (the one kind of key erogaki keeps without a TTL)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.server_settings import (
    InvalidSettings,
    ServerSettings,
    ServerSettingsStore,
    export_json,
    parse_export,
)
from erogaki_common.redis_io import REDIS_ERRORS, connect, describe, safe_url
from erogaki_common.settings import Settings

EXIT_OK, EXIT_USAGE, EXIT_REDIS = 0, 2, 3


def export_settings(settings: Settings, output: str) -> int:
    """Write every server's settings as JSON to ``output`` ("-": standard output)."""
    try:
        servers = asyncio.run(_read_all(settings.redis_url))
    except REDIS_ERRORS as exc:
        return _redis_trouble(settings, exc)
    text = export_json(servers)
    if output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"erogaki: can't write {output}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"exported the settings of {len(servers)} server(s) to {output}", file=sys.stderr)
    return EXIT_OK


def import_settings(settings: Settings, source: str) -> int:
    """Restore the servers a backup holds, each exactly as it was; servers
    the file doesn't name keep their settings. Nothing is written unless the
    whole file is valid."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"erogaki: can't read {source}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        servers = parse_export(text)
    except InvalidSettings as exc:
        print(f"erogaki: {source}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(_write_all(settings.redis_url, servers))
    except REDIS_ERRORS as exc:
        return _redis_trouble(settings, exc)
    print(f"imported the settings of {len(servers)} server(s)", file=sys.stderr)
    return EXIT_OK


async def _read_all(url: str) -> dict[int, ServerSettings]:
    client = connect(url)
    try:
        return await ServerSettingsStore(client).all()
    finally:
        await client.aclose()


async def _write_all(url: str, servers: dict[int, ServerSettings]) -> None:
    client = connect(url)
    store = ServerSettingsStore(client)
    try:
        for guild_id, server in servers.items():
            await store.put(guild_id, server)
    finally:
        await client.aclose()


def _redis_trouble(settings: Settings, exc: BaseException) -> int:
    url = safe_url(settings.redis_url)
    print(f"erogaki: Redis at {url} failed: {describe(exc)}", file=sys.stderr)
    return EXIT_REDIS
