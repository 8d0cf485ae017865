"""Features as cogs: thin command functions over the plain logic in ``bot``."""
