"""What the bot says: one friendly text per error, as plain data (the cog
turns it into an embed). Worker descriptions, component and instance are
added by the cog; these texts say what happened and what to do."""

from __future__ import annotations

from dataclasses import dataclass

from erogaki_common.errors import ErrorName


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    body: str


ERRORS: dict[ErrorName, Text] = {
    ErrorName.INVALID_IMAGE: Text(
        "That file isn't an image I can read",
        "Send a PNG, JPEG, WebP or GIF. The file may be damaged or cut short.",
    ),
    ErrorName.IMAGE_TOO_LARGE: Text(
        "That image is too large", "Send a smaller file, or scale the image down first."
    ),
    ErrorName.IMAGE_DIMENSIONS_TOO_LARGE: Text(
        "That image has too many pixels", "Scale it down and try again."
    ),
    ErrorName.IMAGE_TOO_SMALL: Text("That image is too small", "Send a larger image."),
    ErrorName.IMAGE_NOT_FOUND: Text(
        "The image expired before a worker got to it",
        "The queue was too long. Please try again.",
    ),
    ErrorName.NO_CENSORED_REGIONS_FOUND: Text(
        "I couldn't find anything to decensor",
        "No bars or mosaic were detected. If you can see them, try `/decensor bar` for bars "
        "or `/decensor mosaic` for pixelation; `/decensor auto` looks for both.",
    ),
    ErrorName.NO_MASKED_REGIONS_FOUND: Text(
        "No green areas to fill in",
        "With `masked`, paint the censored areas pure green (0,255,0) and upload a PNG; "
        "JPEG changes the green.",
    ),
    ErrorName.MASK_COVERS_IMAGE: Text(
        "The green covers the whole picture",
        "Paint only the censored areas green; the rest of the picture is what fills them in.",
    ),
    ErrorName.JOB_FAILED_REPEATEDLY: Text(
        "This image keeps crashing the workers",
        "It was given up after several tries. The admins can find it in the worker logs.",
    ),
    ErrorName.PROCESSING_FAILED: Text(
        "Something went wrong while processing", "It wasn't your fault. Please try again later."
    ),
    ErrorName.UNKNOWN: Text(
        "A worker reported a problem", "Please try again later, or tell the server's admins."
    ),
}

REDIS_DOWN = Text(
    "The bot can't reach its job queue right now",
    "Redis is unreachable. Nothing was queued; please try again in a minute.",
)
WORKERS_DOWN = Text(
    "No worker is running right now",
    "The workers that do this job are offline, so nothing was queued. "
    "Please try again later, or tell the server's admins.",
)
AUTO_UNSUPPORTED = Text(
    "The workers here can't do auto yet",
    "The running workers are an older version without auto mode, so nothing was queued. "
    "Use /decensor bar or /decensor mosaic, or ask the bot's host to update the workers.",
)
NO_WORKER = Text(
    "No worker is available",
    "Your image waited in the queue, but no worker took it before the deadline. "
    "The workers may be offline; please try again later.",
)
DEADLINE = Text(
    "That took too long",
    "The job didn't finish before its deadline. The workers may be overloaded; "
    "please try again later.",
)
LOST = Text(
    "The job was lost", "The queue restarted while your image waited. Please send it again."
)
CANCELLED = Text("Cancelled", "The job was cancelled.")
NOT_NSFW = Text(
    "Only in age-restricted channels",
    "Decensoring works only in channels marked age-restricted (NSFW).",
)
NO_DMS = Text("Not in DMs", "Use the command in an age-restricted channel of a server.")
NO_IMAGES = Text("No image attached", "Attach a PNG, JPEG, WebP or GIF image.")


RESTARTING = Text(
    "The bot is restarting", "It isn't taking new requests for a moment. Please try again soon."
)
# The progress line of a request that the next bot process will deliver.
HANDED_OVER = "🔄 The bot is restarting; your result will appear here when it is back."


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def user_limit(current: int, limit: int) -> Text:
    return Text(
        "You have too many requests running",
        f"You have {_count(current, 'request')} in progress; the limit is {limit} per person. "
        "Wait for one to finish.",
    )


def queue_full(current: int, adding: int, limit: int) -> Text:
    return Text(
        "The queue is full",
        f"{_count(current, 'image')} {'is' if current == 1 else 'are'} queued or being worked "
        f"on, and yours would add "
        f"{adding}; the limit is {limit}. Please try again in a few minutes.",
    )


def _quoted(name: str) -> str:
    # File names come from users; a backtick would break out of the code span.
    return "`" + name.replace("`", "'")[:100] + "`"


def too_large(name: str, size: str, limit: str) -> Text:
    return Text("That image is too large", f"{_quoted(name)} is {size}; the limit is {limit}.")


def not_an_image(name: str) -> Text:
    return Text(
        "That file isn't an image", f"{_quoted(name)} isn't a PNG, JPEG, WebP or GIF image."
    )
