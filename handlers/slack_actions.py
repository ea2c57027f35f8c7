"""Slack's side of the workbench: a slack-bolt `AsyncApp` turning button clicks into core calls.

Bolt verifies every request's signature (HMAC over the raw body with the signing secret, and a
timestamp no older than five minutes) before any listener runs, so forged, unsigned and
replayed requests are refused with 401. Each listener acknowledges at once (Slack wants an
answer within 3 s) and does the database work afterwards, off the event loop. Only members
of the configured agent group may act; anyone else gets a private note and nothing changes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import InputError
from bot.workbench import CardAction, Message, Workbench

log = logging.getLogger(__name__)

_ACTIONS = re.compile(r"^earful\.(claim|resolve|dismiss)$")


def build_app(
    *,
    token: str,
    signing_secret: str,
    workbench: Workbench,
    agents: Collection[str],
    api_url: str = "https://slack.com/api/",
) -> AsyncApp:
    """The Slack app: card buttons for the members of ``agents`` (Slack user ids)."""
    app = AsyncApp(
        signing_secret=signing_secret,
        client=AsyncWebClient(token=token, base_url=api_url),
    )
    allowed = frozenset(agents)

    async def on_card_action(
        ack: Callable[[], Awaitable[Any]],
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        await ack()
        user = str(body["user"]["id"])
        name = str(action["action_id"]).removeprefix("earful.")
        if user not in allowed:
            log.warning("card action %s refused for a user outside the agent group", name)
            await respond(
                text="Only members of the care team's agent group can act on cards.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        message = Message(
            str(body["container"]["channel_id"]), str(body["container"]["message_ts"])
        )
        try:
            status = await asyncio.to_thread(
                workbench.act,
                CardAction(name),
                interaction_id=int(action["value"]),
                agent=user,
                message=message,
            )
        except (InputError, ValueError) as exc:
            await respond(
                text=f"Nothing changed: {exc}", response_type="ephemeral", replace_original=False
            )
            return
        log.info("card %s: %s", action["value"], name)
        del status  # shown on the card by the outbox's card_status effect

    app.action(_ACTIONS)(on_card_action)
    return app
