"""The ``erogaki`` command line: the one place that knows the bot, the
workers and the protocol package. Subcommands import their package only when
they run, so ``erogaki worker`` never loads discord.py."""
