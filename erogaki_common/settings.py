"""Settings from the environment and a ``.env`` file, read once.

Every variable is listed in ``.env.example`` and in the README's table. A bad
value raises ``ConfigError`` naming the variable and what it expected.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from erogaki_common.errors import ConfigError

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_DISCORD_API_BASE = "https://discord.com/api/v10"
BACKENDS = ("cpu", "onnx")


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str
    # Whether REDIS_URL was set at all: `erogaki up` starts its own Redis if not.
    redis_url_set: bool
    redis_db: int
    discord_token: str | None
    discord_api_base: str
    backend: str
    models_dir: Path
    instance: str
    # Seconds a submitter waits for a job before giving up with a clear error.
    job_timeout: float
    max_image_bytes: int
    max_image_pixels: int
    # Worker crashes one job may cause before it is declared a poison job.
    max_attempts: int
    # The bot: jobs in flight per user and in all, shared by every bot process.
    user_jobs: int
    queue_cap: int
    # Whether the bot answers in DMs (no NSFW flag there to check).
    allow_dms: bool
    # Whether result files are sent as spoilers.
    spoiler: bool


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


# What to tell someone whose password broke the URL's syntax.
_ENCODE_HINT = (
    "percent-encode any / # ? @ % in its password (/ as %2F, # as %23, ? as %3F, "
    "@ as %40, % as %25)"
)


def redis_db_from_url(url: str) -> int:
    """Check a REDIS_URL the way redis-py will read it; returns the database
    index it selects (path or ``?db=``), default 0.

    Every message is about the URL's shape and never quotes it: a password
    with an unencoded ``/``, ``#`` or ``?`` ends up where a host, port or
    database was expected, and an error echoing that part would print it.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' read as an IPv6 host
        raise ConfigError(f"REDIS_URL is not a valid URL; {_ENCODE_HINT}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
    if parts.fragment or "#" in url:
        raise ConfigError(f"REDIS_URL contains '#'; {_ENCODE_HINT}")
    if "@" in parts.path or "@" in parts.query:
        raise ConfigError(f"REDIS_URL has an '@' after its host; {_ENCODE_HINT}")
    if parts.scheme != "unix":
        try:
            parts.port  # noqa: B018 - urllib checks it when it is read
        except ValueError:
            raise ConfigError(
                f"REDIS_URL's port must be a number from 0 to 65535; {_ENCODE_HINT}"
            ) from None
        if not parts.hostname:
            raise ConfigError(f"REDIS_URL names no host; {_ENCODE_HINT}")
    db_text = ""
    for pair in parts.query.split("&"):
        if pair.startswith("db="):
            db_text = pair[3:]
    if not db_text and parts.scheme != "unix":
        db_text = parts.path.strip("/")
    if not db_text:
        return 0
    if not db_text.isdigit():
        raise ConfigError(
            f"REDIS_URL's database (the path after the host, or ?db=) must be a number; "
            f"{_ENCODE_HINT}"
        )
    return int(db_text)


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Settings from a mapping of variables (pure: tests call it directly)."""
    redis_url = env.get("REDIS_URL", "").strip()
    backend = env.get("EROGAKI_BACKEND", "cpu").strip() or "cpu"
    if backend not in BACKENDS:
        raise ConfigError(f"EROGAKI_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")
    api_base = env.get("DISCORD_API_BASE", "").strip() or DEFAULT_DISCORD_API_BASE
    if not api_base.startswith(("http://", "https://")):
        raise ConfigError(f"DISCORD_API_BASE must be an http(s) URL, got {api_base!r}")
    return Settings(
        redis_url=redis_url or DEFAULT_REDIS_URL,
        redis_url_set=bool(redis_url),
        redis_db=redis_db_from_url(redis_url or DEFAULT_REDIS_URL),
        discord_token=env.get("DISCORD_TOKEN", "").strip() or None,
        discord_api_base=api_base.rstrip("/"),
        backend=backend,
        models_dir=Path(env.get("EROGAKI_MODELS_DIR", "").strip() or "models"),
        instance=env.get("EROGAKI_INSTANCE", "").strip() or default_instance(),
        job_timeout=_float(env, "EROGAKI_JOB_TIMEOUT", 300.0),
        max_image_bytes=env_int(env, "EROGAKI_MAX_IMAGE_BYTES", 25 * 1024 * 1024),
        max_image_pixels=env_int(env, "EROGAKI_MAX_IMAGE_PIXELS", 40_000_000),
        max_attempts=env_int(env, "EROGAKI_MAX_ATTEMPTS", 3),
        user_jobs=env_int(env, "EROGAKI_USER_JOBS", 2),
        queue_cap=env_int(env, "EROGAKI_QUEUE_CAP", 100),
        allow_dms=_bool(env, "EROGAKI_ALLOW_DMS", False),
        spoiler=_bool(env, "EROGAKI_SPOILER", True),
    )


def environment(env_file: str = ".env") -> dict[str, str]:
    """The variables settings are read from: ``.env``, overridden by the environment."""
    merged: dict[str, str] = {}
    if Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


@cache
def get_settings(env_file: str = ".env") -> Settings:
    """The process' settings, read once."""
    return parse_settings(environment(env_file))
