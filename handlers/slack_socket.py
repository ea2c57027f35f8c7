"""How Earful reaches Slack without a public URL: Socket Mode, and the app manifest.

In Socket Mode, Slack sends events, button clicks and slash commands down a WebSocket that
Earful opens itself (``apps.connections.open`` with the app-level token, then slack-bolt's
aiohttp `AsyncSocketModeHandler`), and each one is acknowledged on the same socket. Bolt
checks no signature there: the socket itself was opened with the app-level token. The
manifest (`slack_manifest.yaml`) creates the app with the scopes, command, event and
interactivity Earful uses; `manifest(request_url=…)` turns it into the HTTP-mode variant.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from importlib import resources
from typing import TYPE_CHECKING, Any

import aiohttp
import yaml
from slack_sdk.errors import SlackApiError

from bot.errors import ConfigError

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)

MANIFEST = "slack_manifest.yaml"
CONNECT_TIMEOUT = 30.0
SDK_LOGGER = "slack_sdk.socket_mode.earful"


class SlackSocket:
    """Slack's requests for a bolt app over one Socket Mode connection, opened on demand."""

    def __init__(self, *, app: AsyncApp, app_token: str) -> None:
        self.app = app
        self._app_token = app_token
        self._handler: AsyncSocketModeHandler | None = None

    async def connect(self) -> None:
        """Open the socket; a token Slack refuses or an unreachable Web API stops start-up.

        The first WebSocket URL is asked for here rather than inside slack_sdk, whose
        connect loop would retry a refused token forever instead of saying so.
        """
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        try:
            opened = await self.app.client.apps_connections_open(app_token=self._app_token)
        except SlackApiError as exc:
            error = exc.response.get("error", "error")
            raise ConfigError(
                f"Slack refused EARFUL_SLACK_APP_TOKEN ({error}): use an app-level token "
                "with connections:write, and turn Socket Mode on for the app"
            ) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach Slack's Web API for Socket Mode: {type(exc).__name__}"
            ) from None
        # Built here, in the running loop: the client starts its message task on creation.
        # Its own logger, under slack_sdk (kept at WARNING): at DEBUG it logs whole envelopes,
        # which carry customers' words, and bolt's app logger follows the root level.
        handler = AsyncSocketModeHandler(
            self.app, app_token=self._app_token, logger=logging.getLogger(SDK_LOGGER)
        )
        handler.client.wss_uri = str(opened["url"])
        self._handler = handler
        try:
            # slack_sdk retries a failing WebSocket forever; at start-up, give up and say so.
            connecting = handler.connect_async()  # type: ignore[no-untyped-call]  # bolt: untyped
            await asyncio.wait_for(connecting, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise ConfigError(
                f"Slack's Socket Mode WebSocket did not open within {CONNECT_TIMEOUT:.0f} s"
            ) from None
        log.info("connected to Slack in Socket Mode")

    async def close(self) -> None:
        """Close the socket and the client's HTTP session; safe to call when never connected."""
        if self._handler is not None:
            handler, self._handler = self._handler, None
            await handler.close_async()  # type: ignore[no-untyped-call]  # bolt: untyped
            log.info("Socket Mode connection closed")


def manifest_text() -> str:
    """The bundled manifest (Socket Mode), comments and all."""
    return resources.files("handlers").joinpath(MANIFEST).read_text(encoding="utf-8")


def manifest(*, request_url: str | None = None) -> dict[str, Any]:
    """The app manifest; with ``request_url`` (Earful's ``/slack/events`` behind HTTPS), the
    HTTP-mode variant: Socket Mode off and that URL for events, interactivity and commands."""
    loaded: dict[str, Any] = yaml.safe_load(manifest_text())
    if request_url is None:
        return loaded
    if not request_url.startswith("https://"):
        raise ConfigError(
            f"--request-url must be an https:// URL (Slack requires it): {request_url}"
        )
    variant = copy.deepcopy(loaded)
    settings = variant["settings"]
    settings["socket_mode_enabled"] = False
    settings["interactivity"]["request_url"] = request_url
    settings["event_subscriptions"]["request_url"] = request_url
    for command in variant["features"].get("slash_commands", []):
        command["url"] = request_url
    return variant


def manifest_yaml(*, request_url: str | None = None) -> str:
    """The manifest as YAML to paste into Slack's "Create an app → From a manifest" form."""
    if request_url is None:
        return manifest_text()
    return yaml.safe_dump(
        manifest(request_url=request_url), sort_keys=False, allow_unicode=True, width=100
    )
