"""Errors: the exception hierarchy and the error JSON of protocol v1.

Exceptions raised by erogaki code::

    ErogakiError
    ├── ConfigError              a setting has a bad value (names the variable)
    ├── RedisUnavailable         Redis could not be reached before the deadline
    ├── DeadlineExceeded         no result or error before the job's deadline
    ├── JobLost                  the job's keys vanished (Redis restarted or flushed)
    ├── JobCancelled             the job was cancelled
    ├── JobFailed                a worker answered with an error JSON (``.info``)
    └── ProcessingError          raised inside workers; becomes an error JSON
        └── ImageError           bad input image (see ``images``)

The error JSON (``errors:<uuid>``) has four string fields: ``component``,
``instance``, ``name`` (one of ``ErrorName``) and ``description`` (one sentence
a user can read: no stack traces, paths or secrets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum


class Component(StrEnum):
    """The ``component`` field: who wrote the error."""

    HENTAI = "hent-AI-erogaki-wrapper"
    DEEPCREAMPY = "DeepCreamPy-erogaki-wrapper"


class ErrorName(StrEnum):
    """The closed set of error names. ``docs/protocol.md`` documents each."""

    # The input is not a decodable PNG, JPEG, WebP or GIF.
    INVALID_IMAGE = "InvalidImage"
    # The input is over the byte limit.
    IMAGE_TOO_LARGE = "ImageTooLarge"
    # The input's width x height is over the pixel limit (decompression bombs).
    IMAGE_DIMENSIONS_TOO_LARGE = "ImageDimensionsTooLarge"
    # The input is smaller than the models can work with.
    IMAGE_TOO_SMALL = "ImageTooSmall"
    # The input key was gone (expired) when the worker fetched it.
    IMAGE_NOT_FOUND = "ImageNotFound"
    # hent-AI found no bars or mosaic to remove.
    NO_CENSORED_REGIONS_FOUND = "NoCensoredRegionsFound"
    # DeepCreamPy got an image without pure-green (0,255,0) regions.
    NO_MASKED_REGIONS_FOUND = "NoMaskedRegionsFound"
    # The green mask covers (nearly) the whole image: nothing is left to fill it from.
    MASK_COVERS_IMAGE = "MaskCoversImage"
    # The job crashed or stalled workers too many times (a poison job).
    JOB_FAILED_REPEATEDLY = "JobFailedRepeatedly"
    # An unexpected failure inside the worker; the job was not retried.
    PROCESSING_FAILED = "ProcessingFailed"
    # Read side only: a malformed error value or a name outside this set.
    UNKNOWN = "UnknownError"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One error JSON value, as a worker writes it and a submitter reads it."""

    component: str
    instance: str
    name: ErrorName
    description: str
    # The name exactly as written, kept when a foreign worker used one outside
    # ``ErrorName`` (then ``name`` is UNKNOWN).
    raw_name: str = ""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "component": self.component,
                "instance": self.instance,
                "name": self.name.value,
                "description": self.description,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ErrorInfo:
        """Parse an error value; never raises, whatever a foreign worker wrote."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            return cls(
                component="unknown",
                instance="unknown",
                name=ErrorName.UNKNOWN,
                description=_readable(raw) or "The worker reported an error it did not describe.",
            )
        fields = {k: _readable(data.get(k)) for k in ("component", "instance", "name")}
        raw_name = fields["name"]
        try:
            name = ErrorName(raw_name)
        except ValueError:
            name = ErrorName.UNKNOWN
        description = _readable(data.get("description"))
        if not description:
            description = f"The worker reported {raw_name or 'an error'}."
        return cls(
            component=fields["component"] or "unknown",
            instance=fields["instance"] or "unknown",
            name=name,
            description=description,
            raw_name=raw_name if name is ErrorName.UNKNOWN else "",
        )

    def format(self) -> str:
        """A readable multi-line rendering for terminals and logs."""
        name = self.raw_name or self.name.value
        return f"{name}: {self.description}\n  (from {self.component}, instance {self.instance})"


def _readable(value: object, limit: int = 300) -> str:
    """A printable, bounded string from whatever a foreign worker put there."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else json.dumps(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ErogakiError(Exception):
    """Base of every error erogaki raises on purpose."""


class ConfigError(ErogakiError):
    """A setting has a bad value; the message names the variable."""


class RedisUnavailable(ErogakiError):
    """Redis could not be reached before the deadline."""


class DeadlineExceeded(ErogakiError):
    """Neither a result nor an error arrived before the job's deadline."""


class JobLost(ErogakiError):
    """The job's keys disappeared: Redis restarted without persistence or was flushed."""


class JobCancelled(ErogakiError):
    """The job was cancelled before it finished."""


class JobFailed(ErogakiError):
    """A worker answered the job with an error JSON."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(info.format())
        self.info = info


class ProcessingError(ErogakiError):
    """Raised inside a worker's processing; the loop turns it into an error JSON."""

    name: ErrorName = ErrorName.PROCESSING_FAILED

    def __init__(self, description: str, name: ErrorName | None = None) -> None:
        super().__init__(description)
        self.description = description
        if name is not None:
            self.name = name
