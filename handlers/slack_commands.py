"""The ``/earful`` slash command and the App Home tab, on the bolt `AsyncApp` of `slack_actions`.

``/earful queue`` lists the caller's open conversations, ``/earful find @handle|email`` shows a
contact's history, ``/earful assign <card link|#number> @user`` assigns a conversation,
``/earful help`` prints the usage. Slack sends commands to the same request URL as actions
and events, so bolt checks their signature before any of this runs. Each command is
acknowledged at once; the database work runs afterwards in a thread and the answer goes to the
command's ``response_url``, visible only to the caller. Only the configured agents may use
them; the App Home shows an agent's queue, the team's counts, today's SLA breaches and the
open incidents.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import InputError
from bot.queues import ContactCard, Home, Queues
from bot.workbench import Message
from handlers.slack_blocks import escape
from storage.queues import UNTRIAGED, OpenIncident, QueueItem
from storage.slack import Posted

log = logging.getLogger(__name__)

COMMAND = "/earful"
USAGE = (
    "*Earful commands*\n"
    "`/earful queue`: your open conversations, the soonest SLA first\n"
    "`/earful find @handle` or `/earful find email@example.com`: a contact's history\n"
    "`/earful assign <card link or #number> @user`: give a conversation to an agent\n"
    "`/earful help`: this list"
)
NOT_AN_AGENT = (
    "Only members of the care team's agent group can use `/earful queue`, `find` and `assign`."
)
NEEDS_ESCAPING = (
    "Slack sent the name without its user id: pick the person from Slack's @ list, and turn on "
    "*Escape channels, users, and links* for /earful in the app's settings."
)
FAILED = "Earful could not answer that: an internal error, written to its log."
EXCERPT = 90

_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{2,})$")
_LINK = re.compile(r"/archives/([A-Z0-9]+)/p(\d{10})(\d{6})")
_THREAD = re.compile(r"[?&]thread_ts=(\d{10}\.\d{6})")

Respond = Callable[..., Awaitable[Any]]


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """One line of customer text, shortened and escaped so it can never ping or link."""
    line = " ".join(text.split())
    return escape(line if len(line) <= limit else line[: limit - 1] + "…")


def _date(at: datetime) -> str:
    return f"<!date^{int(at.timestamp())}^{{date_short}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def _due(item: QueueItem, now: datetime) -> str:
    if item.due_at is None:
        return "no SLA"
    minutes = int((now - item.due_at).total_seconds() // 60)
    if minutes >= 0:
        return f":alarm_clock: *overdue {minutes} min* (due {_date(item.due_at)})"
    return f"due {_date(item.due_at)}"


def queue_line(item: QueueItem, now: datetime, link: str | None) -> str:
    """One conversation of a queue: priority, author, excerpt, SLA, link to the card."""
    card = f"<{link}|card>" if link else f"conversation {item.conversation_id}"
    return (
        f"• *{item.priority or UNTRIAGED}* {escape(item.author)}: “{excerpt(item.text)}” · "
        f"{_due(item, now)} · {card}"
    )


def queue_text(items: Sequence[QueueItem], now: datetime, links: Sequence[str | None]) -> str:
    """The answer to ``/earful queue``."""
    if not items:
        return "Your queue is empty: no open conversations are assigned to you."
    head = f"*Your queue: {len(items)} open conversation{'s' if len(items) != 1 else ''}*"
    lines = [queue_line(i, now, link) for i, link in zip(items, links, strict=True)]
    return "\n".join([head, *lines])


def contact_text(card: ContactCard) -> str:
    """The contact history card of ``/earful find``."""
    history, snapshot, value = card.history, card.snapshot, card.value
    name = escape(snapshot.name or f"contact {history.contact_id}")
    origin = "CRM" if snapshot.origin == "crm" else "seen in messages"
    head = f"*{name}* ({origin})"
    if snapshot.organisation:
        head += f" · {escape(snapshot.organisation)}"
    identities = " · ".join(
        f"{kind} {'@' if kind not in ('email',) else ''}{escape(handle)}"
        for kind, handle in history.identities
    )
    score = f" {value.score}" if value.score is not None else ""
    worth = [f"customer value *{value.tier}{score}*"]
    worth.append(f"plan {escape(snapshot.plan)}" if snapshot.plan else "no plan")
    if snapshot.lifetime_value is not None:
        worth.append(f"lifetime value {snapshot.lifetime_value:,.2f}")
    opened = snapshot.open_conversations
    lines = [
        head,
        f"Identities: {identities or 'none'}",
        " · ".join(worth),
        f"Messages: {snapshot.inbound_count} inbound · {snapshot.outbound_count} outbound · "
        f"{opened} open conversation{'s' if opened != 1 else ''}",
    ]
    if history.recent:
        lines.append(f"Last {len(history.recent)}:")
        for entry in history.recent:
            arrow = "← in" if entry.direction == "inbound" else "→ out"
            if entry.undelivered is not None:
                arrow += " (not delivered)"
            lines.append(
                f"• {arrow} {entry.created_at:%Y-%m-%d} {entry.platform}: “{excerpt(entry.text)}”"
            )
    else:
        lines.append("No messages yet.")
    return "\n".join(lines)


def parse_assign(args: str, *, agents: Collection[str]) -> tuple[int | Message, str]:
    """``<card link or #number> <@user>`` → the card and the user id; `InputError` if
    either is missing or malformed, or the user is not one of ``agents``."""
    words = args.split()
    if len(words) != 2:
        raise InputError("assign", "usage: `/earful assign <card link or #number> @user`")
    target, person = words
    user = _USER.match(person)
    if user is None:
        if person.startswith("@"):
            raise InputError("assign", NEEDS_ESCAPING)
        raise InputError("assign", f"{escape(person)} is not a Slack user")
    assignee = user[1] or user[2]
    if assignee not in agents:
        raise InputError(f"<@{assignee}>", "is not in the agent group")
    target = target.strip("<>").split("|", 1)[0]
    if target.removeprefix("#").isdigit():  # the card's number, as the card shows it
        return int(target.removeprefix("#")), assignee
    link = _LINK.search(target)
    if link is None:
        raise InputError(
            "assign", "give the card's link (Copy link) or its number (#123 on the card)"
        )
    thread = _THREAD.search(target)
    ts = thread[1] if thread else f"{link[2]}.{link[3]}"
    return Message(link[1], ts), assignee


async def _permalinks(client: AsyncWebClient, places: Sequence[Posted | None]) -> list[str | None]:
    """Slack's link to each card (None where it has no card or Slack would not say)."""

    async def one(place: Posted | None) -> str | None:
        if place is None:
            return None
        try:
            found = await client.chat_getPermalink(channel=place.channel, message_ts=place.ts)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("no permalink for a card: %s", type(exc).__name__)
            return None
        return str(found["permalink"])

    return list(await asyncio.gather(*(one(p) for p in places)))


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _incident_line(incident: OpenIncident, link: str | None) -> str:
    where = f" · <{link}|card>" if link else ""
    return (
        f"• *{incident.priority or UNTRIAGED}* #{incident.id} {escape(incident.key)}: "
        f"{incident.reports} report{'s' if incident.reports != 1 else ''} since "
        f"{_date(incident.opened_at)}{where}"
    )


def home_view(
    home: Home, mine: Sequence[str | None], incidents: Sequence[str | None]
) -> dict[str, Any]:
    """The App Home: my queue (top 10), the team's counts, SLA breaches today, open incidents."""
    queue = [queue_line(i, home.now, link) for i, link in zip(home.mine, mine, strict=True)]
    if not queue:
        queue = ["Nothing is assigned to you."]
    elif home.mine_total > len(home.mine):
        queue.append(f"… and {home.mine_total - len(home.mine)} more: `/earful queue`")
    order = ["P1", "P2", "P3", "P4", UNTRIAGED]
    counts = " · ".join(f"*{p}* {home.team.get(p, 0)}" for p in order)
    waiting = sum(home.team.values())
    open_incidents = [
        _incident_line(i, link) for i, link in zip(home.incidents, incidents, strict=True)
    ]
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Earful"}},
            _section(f"*My queue ({home.mine_total})*\n" + "\n".join(queue)),
            {"type": "divider"},
            _section(f"*Team queue: {waiting} awaiting a response*\n{counts}"),
            _section(f"*SLA breaches today (UTC):* {home.breaches_today}"),
            _section(
                f"*Open incidents ({len(home.incidents)})*\n"
                + ("\n".join(open_incidents) or "None.")
            ),
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Updated {_date(home.now)}"}],
            },
        ],
    }


NOT_AN_AGENT_HOME: dict[str, Any] = {
    "type": "home",
    "blocks": [_section("Earful's queues are shown to the care team's agent group only.")],
}


def register(app: AsyncApp, *, queues: Queues, agents: Collection[str]) -> None:
    """Add ``/earful`` and the App Home to ``app``, for the members of ``agents``."""
    allowed = frozenset(agents)

    async def queue(user: str, _args: str, respond: Respond, client: AsyncWebClient) -> None:
        items = await asyncio.to_thread(queues.mine, user)
        links = await _permalinks(client, [i.place for i in items])
        await respond(text=queue_text(items, queues.clock(), links), response_type="ephemeral")

    async def find(_user: str, args: str, respond: Respond, _client: AsyncWebClient) -> None:
        query = args.strip().strip("<>").removeprefix("mailto:").split("|", 1)[0]
        if not query:
            await respond(text="Usage: `/earful find @handle` or `/earful find email@example.com`")
            return
        try:
            cards = await asyncio.to_thread(queues.find, query)
        except InputError:
            await respond(
                text=f"Earful knows no contact with the handle or email {escape(query)}.",
                response_type="ephemeral",
            )
            return
        text = "\n\n".join(contact_text(c) for c in cards)
        await respond(text=text, response_type="ephemeral")

    async def assign(user: str, args: str, respond: Respond, _client: AsyncWebClient) -> None:
        try:
            target, assignee = parse_assign(args, agents=allowed)
            status = await asyncio.to_thread(
                queues.assign,
                assignee=assignee,
                by=user,
                interaction_id=target if isinstance(target, int) else None,
                message=target if isinstance(target, Message) else None,
            )
        except InputError as exc:
            await respond(text=f"Nothing changed: {exc}", response_type="ephemeral")
            return
        await respond(text=f"Done. {status}.", response_type="ephemeral")

    subcommands = {"queue": queue, "find": find, "assign": assign}

    async def on_command(
        ack: Callable[..., Awaitable[Any]],
        command: dict[str, Any],
        respond: Respond,
        client: AsyncWebClient,
    ) -> None:
        name, _, args = str(command.get("text") or "").strip().partition(" ")
        user = str(command["user_id"])
        run = subcommands.get(name.lower())
        if run is None:
            unknown = f"Unknown subcommand `{escape(name)}`.\n\n" if name and name != "help" else ""
            await ack(text=unknown + USAGE, response_type="ephemeral")
            return
        if user not in allowed:
            log.warning("/earful %s refused for a user outside the agent group", name)
            await ack(text=NOT_AN_AGENT, response_type="ephemeral")
            return
        await ack()
        try:
            await run(user, args, respond, client)
        except Exception:  # the caller must hear of a failure; details go to the log only
            log.exception("/earful %s failed", name)
            await respond(text=FAILED, response_type="ephemeral")

    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = str(event["user"])
        if user not in allowed:
            await client.views_publish(user_id=user, view=NOT_AN_AGENT_HOME)
            return
        home = await asyncio.to_thread(queues.home, user)
        links = await _permalinks(
            client, [i.place for i in home.mine] + [i.place for i in home.incidents]
        )
        view = home_view(home, links[: len(home.mine)], links[len(home.mine) :])
        await client.views_publish(user_id=user, view=view)

    app.command(COMMAND)(on_command)
    app.event("app_home_opened")(on_home_opened)
