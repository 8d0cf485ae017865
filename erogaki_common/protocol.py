"""What goes over the wire besides raw image bytes: modes, stages, job ids."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum

from erogaki_common.keys import Queue


class Mode(StrEnum):
    """What the user asked for; decides the first queue of the job."""

    BAR = "bar"
    MOSAIC = "mosaic"
    # Bars already painted pure green by the user: straight to DeepCreamPy.
    BAR_MASKED = "bar-masked"
    # Bars, mosaic or both, whichever hent-AI finds (an erogaki addition).
    AUTO = "auto"

    @property
    def queue(self) -> Queue:
        return _FIRST_QUEUE[self]


_FIRST_QUEUE = {
    Mode.BAR: Queue.HENTAI_BAR,
    Mode.MOSAIC: Queue.HENTAI_MOSAIC,
    Mode.BAR_MASKED: Queue.DEEPCREAMPY_BAR,
    Mode.AUTO: Queue.HENTAI_AUTO,
}


class Stage(StrEnum):
    """The ``stage`` field of a job hash, also published on its stage channel."""

    QUEUED = "queued"
    # Set by hent-AI when it hands a bar job on to DeepCreamPy.
    WAITING_FOR_INPAINTING = "waiting-for-inpainting"


# uuids in any spelling, and the short ids people type into redis-cli; never a
# colon, so an id can't make ``censored-images:<id>`` name a queue.
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    """Whether ``value`` can name a job; workers drop queue entries that can't."""
    return bool(_JOB_ID.match(value))
