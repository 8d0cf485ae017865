"""Keep interaction tokens out of every log line.

An interaction token is a 15-minute credential: whoever has it can post as the
bot in that channel. discord.py puts it in log lines at several levels: the
URLs of interaction webhooks (``/webhooks/<app>/<token>``,
``/interactions/<id>/<token>/callback``) in its request and rate-limit lines,
and whole INTERACTION_CREATE payloads in its gateway debug lines. A filter on
each discord.py logger (filters on a parent logger don't see records of its
children) rewrites those lines before any handler formats them.
"""

from __future__ import annotations

import logging
import re

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


def install() -> None:
    """Add the filter to every logger under discord, aiohttp and bot (idempotent)."""
    names = [
        name for name in (*_ROOTS, *logging.root.manager.loggerDict) if name.split(".")[0] in _ROOTS
    ]
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
