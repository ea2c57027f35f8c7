"""Slack's side of the workbench: a slack-bolt `AsyncApp` turning button clicks into core calls.

Claim and Resolve act at once; Reply, Dismiss, Escalate, Snooze and Correct labels open a form
(a modal) whose submission acts. The reply form counts characters as the agent types.

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
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import EarfulError, InputError
from bot.models import Platform
from bot.queues import Queues
from bot.workbench import (
    DISMISS_REASONS,
    LABEL_CHOICES,
    SNOOZE_LABELS,
    CardAction,
    Message,
    SnoozeFor,
    Workbench,
    reply_problem,
)
from handlers import slack_commands
from handlers.slack_blocks import (
    ACTION_PREFIX,
    CHOICE,
    CORRECT_MODAL,
    COUNTER_BLOCK,
    DISMISS_MODAL,
    ESCALATE_MODAL,
    NOTE,
    PERSON,
    REPLY_BLOCK,
    REPLY_INPUT,
    REPLY_MODAL,
    ROW_ACTION,
    SNOOZE_MODAL,
    STEP,
    correct_modal,
    dismiss_modal,
    escalate_modal,
    length_counter,
    reply_modal,
    snooze_modal,
)

log = logging.getLogger(__name__)

# A card's buttons are named by their action ids; a row's menu (`card_row`) by its options.
_ACTIONS = re.compile(r"^earful\.(claim|resolve)$")
_FORMS = re.compile(r"^earful\.(dismiss|escalate|snooze|correct)$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_REPLIES = re.compile(r"^earful\.(reply|send_suggestion_\d)$")
_SUGGESTION = re.compile(r"^send_suggestion_(\d)$")
_ROW_MENU = f"{ACTION_PREFIX}{ROW_ACTION}"


NOT_AN_AGENT = "Only members of the care team's agent group can act on cards."


def _clicked(action: dict[str, Any]) -> tuple[str, int]:
    """The card action and interaction id of a click: a button's (``earful.claim``, its value)
    or a row menu's option (``claim:123``)."""
    if action["action_id"] == _ROW_MENU:
        name, _, value = str(action["selected_option"]["value"]).partition(":")
        return name, int(value)
    return str(action["action_id"]).removeprefix(ACTION_PREFIX), int(action["value"])


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
        name="earful",
        signing_secret=signing_secret,
        client=AsyncWebClient(token=token, base_url=api_url),
        # Bolt's own loggers would follow the root level and log whole payloads (customers'
        # words) at DEBUG; based on "slack_bolt" they stay at its level (WARNING, bot.logs).
        logger=logging.getLogger("slack_bolt"),
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
        name, interaction_id = _clicked(action)
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
                interaction_id=interaction_id,
                agent=user,
                message=message,
            )
        except (InputError, ValueError) as exc:
            await _say(respond, f"Nothing changed: {exc}")
            return
        log.info("card %d: %s", interaction_id, name)
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
        name, interaction_id = _clicked(action)
        number = _SUGGESTION.match(name)
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

    on_form = _register_forms(app, workbench=workbench, allowed=allowed)

    async def on_row_menu(
        ack: Callable[[], Awaitable[Any]],
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        """An option picked in a row's menu: the same as the full card's button."""
        try:
            button = ACTION_PREFIX + _clicked(action)[0]
        except (KeyError, ValueError):
            button = "(unreadable)"
        if _ACTIONS.match(button):
            await on_card_action(ack, body, action, respond)
        elif _REPLIES.match(button):
            await on_reply(ack, body, action, client, respond)
        elif _FORMS.match(button):
            await on_form(ack, body, action, client, respond)
        else:
            await ack()
            log.warning("row menu: unknown option %s", button)

    app.action(_ACTIONS)(on_card_action)
    app.action(_REPLIES)(on_reply)
    app.action(_ROW_MENU)(on_row_menu)
    app.view(REPLY_MODAL)(on_reply_submitted)
    queues = Queues(database=workbench.database, workbench=workbench, clock=workbench.clock)
    slack_commands.register(app, queues=queues, agents=allowed)
    return app


def _selected(view: dict[str, Any], block: str, action: str = CHOICE) -> str | None:
    """The value of a select in a submitted form, None when nothing is chosen."""
    field = view["state"]["values"].get(block, {}).get(action, {})
    option = field.get("selected_option")
    return str(option["value"]) if option else None


def _typed(view: dict[str, Any], block: str, action: str) -> str | None:
    """The text of an input in a submitted form, None when empty."""
    field = view["state"]["values"].get(block, {}).get(action, {})
    return str(field.get("value") or "").strip() or None


def _register_forms(
    app: AsyncApp, *, workbench: Workbench, allowed: frozenset[str]
) -> Callable[..., Awaitable[None]]:
    """Dismiss, Escalate, Snooze and Correct labels (a form each), and the reply form's counter;
    returns the listener that opens the forms."""

    async def on_form(
        ack: Callable[[], Awaitable[Any]],
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        await ack()
        name, interaction_id = _clicked(action)
        if str(body["user"]["id"]) not in allowed:
            log.warning("card form %s refused for a user outside the agent group", name)
            await _say(respond, NOT_AN_AGENT)
            return
        metadata: dict[str, Any] = {
            "interaction_id": interaction_id,
            "channel": body["container"]["channel_id"],
            "ts": body["container"]["message_ts"],
        }
        try:
            if name == "dismiss":
                view = dismiss_modal(DISMISS_REASONS, metadata)
            elif name == "escalate":
                ladder = await asyncio.to_thread(workbench.ladder, interaction_id)
                view = escalate_modal(ladder.labels(), ladder.next, metadata)
            elif name == "snooze":
                view = snooze_modal({c.value: SNOOZE_LABELS[c] for c in SnoozeFor}, metadata)
            else:
                current = await asyncio.to_thread(workbench.labels, interaction_id)
                metadata["labels"] = current
                view = correct_modal(current, LABEL_CHOICES, metadata)
        except EarfulError as exc:
            await _say(respond, f"Nothing changed: {exc}")
            return
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    async def carry_out(
        client: AsyncWebClient, user: str, metadata: dict[str, Any], call: Callable[[], str]
    ) -> None:
        """Run a submitted form's action after the ack; tell the agent privately if it fails."""
        try:
            await asyncio.to_thread(call)
        except EarfulError as exc:
            log.warning("card form not carried out: %s", exc)
            await client.chat_postEphemeral(
                channel=str(metadata["channel"]), user=user, text=f"Nothing changed: {exc}"
            )

    def message(metadata: dict[str, Any]) -> Message:
        return Message(str(metadata["channel"]), str(metadata["ts"]))

    def form(
        error_block: str,
        prepare: Callable[[str, dict[str, Any], dict[str, Any]], str | Callable[[], str]],
    ) -> Callable[..., Awaitable[None]]:
        """A form's submission, for agents only: ``prepare(user, view, metadata)`` returns the
        problem to show in the form, or the workbench call to run after the ack."""

        async def on_submit(
            ack: Callable[..., Awaitable[Any]],
            body: dict[str, Any],
            view: dict[str, Any],
            client: AsyncWebClient,
        ) -> None:
            user = str(body["user"]["id"])
            if user not in allowed:
                await ack(response_action="errors", errors={error_block: NOT_AN_AGENT})
                return
            metadata = json.loads(view["private_metadata"])
            call = prepare(user, view, metadata)
            if isinstance(call, str):
                await ack(response_action="errors", errors={error_block: call})
                return
            await ack()
            await carry_out(client, user, metadata, call)

        return on_submit

    def dismiss(
        user: str, view: dict[str, Any], metadata: dict[str, Any]
    ) -> str | Callable[[], str]:
        reason = _selected(view, CHOICE)
        if reason not in DISMISS_REASONS:
            return "Pick a reason."
        return lambda: workbench.dismiss(
            interaction_id=int(metadata["interaction_id"]),
            agent=user,
            reason=str(reason),
            note=_typed(view, NOTE, NOTE),
            message=message(metadata),
        )

    def escalate(
        user: str, view: dict[str, Any], metadata: dict[str, Any]
    ) -> str | Callable[[], str]:
        step = _selected(view, STEP)
        person = view["state"]["values"].get(PERSON, {}).get(PERSON, {}).get("selected_user")
        if step is None and not person:
            return "Pick a step or a person."
        if person and not _SLACK_USER.match(str(person)):
            return "Pick a person from the list."
        return lambda: workbench.escalate(
            interaction_id=int(metadata["interaction_id"]),
            agent=user,
            step=int(step) if step is not None else None,
            person=str(person) if person else None,
            message=message(metadata),
        )

    def snooze(
        user: str, view: dict[str, Any], metadata: dict[str, Any]
    ) -> str | Callable[[], str]:
        choice = _selected(view, CHOICE)
        if choice not in {c.value for c in SnoozeFor}:
            return "Pick how long."
        return lambda: workbench.snooze(
            interaction_id=int(metadata["interaction_id"]),
            agent=user,
            choice=SnoozeFor(str(choice)),
            message=message(metadata),
        )

    def correct(
        user: str, view: dict[str, Any], metadata: dict[str, Any]
    ) -> str | Callable[[], str]:
        shown = metadata.get("labels", {})
        changed = {
            field: value
            for field in LABEL_CHOICES
            if (value := _selected(view, field)) is not None and value != shown.get(field)
        }
        if not changed:
            return "Nothing changed: set the label that is wrong to the right one."
        return lambda: workbench.correct(
            interaction_id=int(metadata["interaction_id"]),
            agent=user,
            labels=changed,
            note=_typed(view, NOTE, NOTE),
            message=message(metadata),
        )

    async def on_reply_typing(
        ack: Callable[[], Awaitable[Any]],
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
    ) -> None:
        await ack()
        if str(body["user"]["id"]) not in allowed:
            return
        view = body["view"]
        metadata = json.loads(view["private_metadata"])
        if not metadata.get("limit"):
            return
        counter = length_counter(
            str(action.get("value") or ""), int(metadata["limit"]), Platform(metadata["platform"])
        )
        kept = ("type", "callback_id", "private_metadata", "title", "submit", "close")
        updated = {key: view[key] for key in kept if key in view}
        # Slack keeps what was typed in an input whose block and action ids stay the same.
        updated["blocks"] = [
            counter if block.get("block_id") == COUNTER_BLOCK else block for block in view["blocks"]
        ]
        try:
            await client.views_update(view_id=view["id"], hash=view.get("hash"), view=updated)
        except SlackApiError as exc:
            # hash_conflict: a newer keystroke's update won; it shows the newer count.
            log.debug("reply counter not updated: %s", exc.response.get("error"))

    app.action(_FORMS)(on_form)
    app.view(DISMISS_MODAL)(form(CHOICE, dismiss))
    app.view(ESCALATE_MODAL)(form(PERSON, escalate))
    app.view(SNOOZE_MODAL)(form(CHOICE, snooze))
    app.view(CORRECT_MODAL)(form(NOTE, correct))
    app.action({"block_id": REPLY_BLOCK, "action_id": REPLY_INPUT})(on_reply_typing)
    return on_form
