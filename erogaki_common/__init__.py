"""The erogaki job protocol, shared by the bot, the workers and the CLI.

Nothing in this package imports Discord, OpenCV or the workers: it knows Redis,
images and protocol v1 (see ``docs/protocol.md``).
"""

PROTOCOL_VERSION = 1
