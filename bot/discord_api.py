"""Point discord.py at a Discord API other than discord.com (``DISCORD_API_BASE``).

discord.py has two independent notions of "where Discord is":

* the REST base, ``discord.http.Route.BASE``, read each time a route is built;
* the gateway. A plain :class:`discord.Client` / :class:`commands.Bot` never asks the API for
  it: fresh (non-resume) connections go to the hard-coded
  ``DiscordWebSocket.DEFAULT_GATEWAY``; resumes go to the ``resume_gateway_url`` that READY
  named. ``AutoShardedClient`` asks ``GET /gateway/bot`` once, but re-identifies after an
  invalidated session at ``DEFAULT_GATEWAY`` too.

So a bot honouring ``DISCORD_API_BASE`` must take its gateway from that API as well, or it
would log in over REST at one Discord and open its websocket at another. Neither Client nor
AutoShardedClient offers a per-instance hook for the gateway URL (``Client.connect`` builds
its websocket parameters locally), so :class:`GatewayFromApiMixin` asks the configured API
(``GET {base}/gateway/bot``, as Discord documents for bots) when connecting and installs the
answer as ``DiscordWebSocket.DEFAULT_GATEWAY``: the one value every fresh connection of
either client class reads. It is process-wide, exactly like ``Route.BASE`` it derives from.
With Discord's own base nothing is requested or changed, so discord.py behaves as shipped.

How the bot uses it (the order matters: the mixin comes first so its ``connect`` runs)::

    from discord.ext import commands

    from bot.discord_api import GatewayFromApiMixin, api_base_from_env, use_api_base

    class ErogakiBot(GatewayFromApiMixin, commands.Bot):
        ...

    use_api_base(api_base_from_env())  # before the bot logs in
    bot = ErogakiBot(command_prefix=..., intents=...)
    await bot.start(token)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import INTERNAL_API_VERSION, Route

__all__ = [
    "DEFAULT_API_BASE",
    "ENV_VAR",
    "GatewayFromApiMixin",
    "api_base_from_env",
    "current_api_base",
    "use_api_base",
    "uses_default_api",
]

ENV_VAR = "DISCORD_API_BASE"
DEFAULT_API_BASE = f"https://discord.com/api/v{INTERNAL_API_VERSION}"

# Captured at import so that switching back to Discord's own API restores the shipped
# gateway even after a custom one was installed in this process (tests do both).
_SHIPPED_GATEWAY: yarl.URL = DiscordWebSocket.DEFAULT_GATEWAY


def api_base_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The API base named by ``DISCORD_API_BASE``, or Discord's own when unset or blank."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_VAR, "").strip()
    return value or DEFAULT_API_BASE


def _normalise(base: str) -> str:
    url = yarl.URL(base.strip().rstrip("/"))
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{ENV_VAR} must be an http(s) URL, got {base!r}")
    if url.query_string or url.fragment:
        raise ValueError(f"{ENV_VAR} must not carry a query or fragment, got {base!r}")
    # discord.py speaks one API version (payload shapes, gateway ?v=); another version's
    # base would fail in confusing ways far from the configuration.
    if not url.path.endswith(f"/v{INTERNAL_API_VERSION}"):
        raise ValueError(
            f"{ENV_VAR} must end with /v{INTERNAL_API_VERSION} "
            f"(the API version discord.py {discord.__version__} speaks), got {base!r}"
        )
    return str(url)


def use_api_base(base: str) -> None:
    """Send every REST request (bot, webhook and interaction routes) to ``base``.

    Call it before the client logs in. Selecting Discord's own base also restores the
    shipped gateway, so a process can switch back after using a custom API.
    """
    normalised = _normalise(base)
    Route.BASE = normalised
    if normalised == DEFAULT_API_BASE:
        DiscordWebSocket.DEFAULT_GATEWAY = _SHIPPED_GATEWAY


def current_api_base() -> str:
    return Route.BASE


def uses_default_api() -> bool:
    return Route.BASE == DEFAULT_API_BASE


class GatewayFromApiMixin(discord.Client):
    """Connect to the gateway that the configured API names (see the module docstring).

    Mix into a :class:`discord.Client` or :class:`commands.Bot` subclass, before the
    discord.py base class. Works for the auto-sharded classes as well.
    """

    async def connect(self, *, reconnect: bool = True) -> None:
        if not uses_default_api():
            await self.use_gateway_from_api()
        await super().connect(reconnect=reconnect)

    async def use_gateway_from_api(self) -> yarl.URL:
        """Ask ``GET /gateway/bot`` of the configured API and connect there from now on.

        Needs a logged-in client (the route wants the bot token). Raises
        :class:`discord.GatewayNotFound` when the API does not answer.
        """
        _shards, url, _limits = await self.http.get_bot_gateway()
        gateway = yarl.URL(url)
        DiscordWebSocket.DEFAULT_GATEWAY = gateway
        return gateway
