"""The Discord bot: thin cogs over plain logic (limits, pending records,
fitting uploads, user-facing texts); the job protocol is erogaki_common's."""
