"""Slack's side of the workbench: a slack-bolt `AsyncApp` turning button clicks into core calls.

Bolt verifies every request's signature (HMAC over the raw body with the signing secret, and a
timestamp no older than five minutes) before any listener runs, so forged, unsigned and
replayed requests are refused with 401. Each listener acknowledges at once (Slack wants an
answer within 3 s) and does the database work afterwards, off the event loop. Only members
of the configured agent group may act; anyone else gets a private note and nothing changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import InputError
from bot.models import Platform
from bot.workbench import CardAction, Draft, Message, Workbench, reply_problem
from handlers.slack_blocks import escape

log = logging.getLogger(__name__)

_ACTIONS = re.compile(r"^earful\.(claim|resolve|dismiss)$")
_REPLIES = re.compile(r"^earful\.(reply|send_suggestion_\d)$")
_SUGGESTION = re.compile(r"^earful\.send_suggestion_(\d)$")
REPLY_MODAL = "earful.reply_modal"
REPLY_BLOCK = "reply"
REPLY_INPUT = "text"


NOT_AN_AGENT = "Only members of the care team's agent group can act on cards."


async def _say(respond: Callable[..., Awaitable[Any]], text: str) -> None:
    """A note only the clicking user sees; the card stays as it is."""
    await respond(text=text, response_type="ephemeral", replace_original=False)


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
            await _say(respond, NOT_AN_AGENT)
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
            await _say(respond, f"Nothing changed: {exc}")
            return
        log.info("card %s: %s", action["value"], name)
        del status  # shown on the card by the outbox's card_status effect

    async def on_reply(
        ack: Callable[[], Awaitable[Any]],
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        await ack()
        if str(body["user"]["id"]) not in allowed:
            await _say(respond, NOT_AN_AGENT)
            return
        number = _SUGGESTION.match(str(action["action_id"]))
        interaction_id = int(action["value"])
        try:
            draft = await asyncio.to_thread(
                workbench.draft, interaction_id, int(number[1]) if number else None
            )
        except InputError as exc:
            await _say(respond, f"Nothing changed: {exc}")
            return
        container = body["container"]
        metadata = {
            "interaction_id": interaction_id,
            "channel": container["channel_id"],
            "ts": container["message_ts"],
        }
        await client.views_open(trigger_id=body["trigger_id"], view=reply_modal(draft, metadata))

    async def on_reply_submitted(
        ack: Callable[..., Awaitable[Any]], body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        user = str(body["user"]["id"])
        text = str(view["state"]["values"][REPLY_BLOCK][REPLY_INPUT]["value"] or "")
        metadata = json.loads(view["private_metadata"])
        if user not in allowed:
            await ack(
                response_action="errors", errors={REPLY_BLOCK: "Only the agent group can reply."}
            )
            return
        platform = Platform(metadata["platform"])
        problem = reply_problem(text, platform)
        if problem:
            await ack(response_action="errors", errors={REPLY_BLOCK: problem})
            return
        await ack()
        try:
            await asyncio.to_thread(
                workbench.reply,
                interaction_id=int(metadata["interaction_id"]),
                agent=user,
                text=text,
                message=Message(str(metadata["channel"]), str(metadata["ts"])),
            )
        except InputError as exc:
            log.warning("reply not sent: %s", exc)

    app.action(_ACTIONS)(on_card_action)
    app.action(_REPLIES)(on_reply)
    app.view(REPLY_MODAL)(on_reply_submitted)
    return app


def reply_modal(draft: Draft, metadata: dict[str, Any]) -> dict[str, Any]:
    """The reply form: the customer's words, the editable reply, the platform's limit."""
    limit = f"up to {draft.limit} characters on {draft.platform.value}" if draft.limit else ""
    said = escape(draft.customer_text[:1500])
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": REPLY_INPUT,
        "multiline": True,
        "initial_value": draft.text,
    }
    if draft.limit:
        element["max_length"] = draft.limit
    return {
        "type": "modal",
        "callback_id": REPLY_MODAL,
        "private_metadata": json.dumps({**metadata, "platform": draft.platform.value}),
        "title": {"type": "plain_text", "text": "Reply"},
        "submit": {"type": "plain_text", "text": "Send publicly"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"*{escape(draft.author)}*: {said}"}],
            },
            {
                "type": "input",
                "block_id": REPLY_BLOCK,
                "label": {"type": "plain_text", "text": "Your public reply"},
                "element": element,
                "hint": {
                    "type": "plain_text",
                    "text": f"Sent publicly under the customer's message, {limit}. "
                    "Chat in the card's thread stays inside Slack.",
                },
            },
        ],
    }
