"""Keep interaction tokens out of every log line.

An interaction token is a 15-minute credential: whoever has it can post as the
bot in that channel. discord.py puts it in log lines at several levels: the
URLs of interaction webhooks (``/webhooks/<app>/<token>``,
``/interactions/<id>/<token>/callback``) in its request and rate-limit lines,
and whole INTERACTION_CREATE payloads in its gateway debug lines. Those lines
are rewritten as each record is made (the log record factory), so every
logger under these names is covered, also one created after ``install`` (a
cog's module imported later): a filter on a parent logger never sees its
children's records, and a filter on handlers misses handlers added later.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

_URL_TOKEN = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?'\"]+")
_FIELD_TOKEN = re.compile(r"""(['"]token['"]\s*:\s*)(['"])[^'"]*\2""")
REDACTED = "[token]"


def redact(text: str) -> str:
    text = _URL_TOKEN.sub(rf"\g<1>{REDACTED}", text)
    return _FIELD_TOKEN.sub(rf"\g<1>\g<2>{REDACTED}\g<2>", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks carry exception texts, which may hold URLs: format now, redacted.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact(text), None
        return True


_FILTER = RedactTokens()
# Loggers that may see a token: discord.py's, aiohttp's client, ours.
_ROOTS = ("discord", "aiohttp", "bot")


class _RedactingFactory:
    """Wraps the record factory in place; records of the loggers above are redacted."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if record.name.split(".")[0] in _ROOTS:
            _FILTER.filter(record)
        return record


def install() -> None:
    """Redact every record of a logger under discord, aiohttp and bot (idempotent)."""
    if not isinstance(logging.getLogRecordFactory(), _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(logging.getLogRecordFactory()))
