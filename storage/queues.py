"""Work queues as the history holds them: open conversations, SLA breaches, incidents, contacts.

Pure reads on a session, for the agent's queue, the team's counts, the App Home and the contact
history card. A conversation's priority is its pending SLA timer's (the most urgent decision
still waiting), else the decision on its latest inbound message; its card is the first one
posted for it (later cards go into that card's thread).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from bot import effects
from bot.models import Action, ConversationState, Direction, Priority
from storage import sla
from storage.contacts import normalise_handle
from storage.incidents import OPEN
from storage.schema import (
    AuditEntry,
    Conversation,
    Identity,
    Incident,
    InteractionRow,
    OutboxRow,
    SlackMessage,
    SlaTimer,
)
from storage.slack import Posted

CLOSED = (ConversationState.RESOLVED.value, ConversationState.DISMISSED.value)
AWAITING = (ConversationState.NEW.value, ConversationState.ASSIGNED.value)
UNTRIAGED = "untriaged"
_RANK = {p.value: n for n, p in enumerate(Priority)}


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One open conversation in a queue, as its latest inbound message shows it."""

    conversation_id: int
    card_id: int | None  # the interaction whose card stands for the conversation
    priority: str | None
    author: str
    text: str
    state: str
    due_at: datetime | None  # the pending first-response deadline, if any
    place: Posted | None  # where the card is in Slack, if it was posted there


@dataclass(frozen=True, slots=True)
class _Latest:
    interaction_id: int
    author: dict[str, Any]
    text: str
    decision: dict[str, Any] | None
    incident_id: int | None


def _subject(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


def _latest_inbound(session: Session, conversation_ids: Collection[int]) -> dict[int, _Latest]:
    """The newest inbound message of each conversation."""
    if not conversation_ids:
        return {}
    ranked = (
        select(
            InteractionRow.id,
            InteractionRow.conversation_id,
            InteractionRow.author,
            InteractionRow.text,
            InteractionRow.decision,
            InteractionRow.incident_id,
            func.row_number()
            .over(
                partition_by=InteractionRow.conversation_id,
                order_by=(InteractionRow.created_at.desc(), InteractionRow.id.desc()),
            )
            .label("rank"),
        )
        .where(
            InteractionRow.conversation_id.in_(conversation_ids),
            InteractionRow.direction == Direction.INBOUND.value,
        )
        .subquery()
    )
    rows = session.execute(
        select(
            ranked.c.id,
            ranked.c.conversation_id,
            ranked.c.author,
            ranked.c.text,
            ranked.c.decision,
            ranked.c.incident_id,
        ).where(ranked.c.rank == 1)
    ).tuples()
    return {
        conversation_id: _Latest(interaction_id, author or {}, text, decision, incident_id)
        for interaction_id, conversation_id, author, text, decision, incident_id in rows
    }


def _pending_timers(session: Session, conversation_ids: Collection[int]) -> dict[int, SlaTimer]:
    if not conversation_ids:
        return {}
    return {
        row.conversation_id: row
        for row in session.scalars(
            select(SlaTimer).where(
                SlaTimer.conversation_id.in_(conversation_ids), SlaTimer.state == sla.PENDING
            )
        )
        if row.conversation_id is not None
    }


def _first_cards(session: Session, conversation_ids: Collection[int]) -> dict[int, int]:
    """Conversation id → the interaction id of its first card."""
    if not conversation_ids:
        return {}
    keys = {_subject(cid): cid for cid in conversation_ids}
    cards: dict[int, int] = {}
    for key, ordering in session.execute(
        select(OutboxRow.idempotency_key, OutboxRow.ordering_key)
        .where(OutboxRow.kind == effects.CARD, OutboxRow.ordering_key.in_(keys))
        .order_by(OutboxRow.id)
    ).tuples():
        cards.setdefault(keys[ordering], int(key.removeprefix(f"{effects.CARD}:")))
    return cards


def _places(session: Session, conversation_ids: Collection[int]) -> dict[int, Posted]:
    if not conversation_ids:
        return {}
    keys = {_subject(cid): cid for cid in conversation_ids}
    return {
        keys[row.subject]: Posted(row.channel, row.ts)
        for row in session.scalars(select(SlackMessage).where(SlackMessage.subject.in_(keys)))
    }


def _author_label(author: dict[str, Any]) -> str:
    if author.get("handle"):
        return f"@{author['handle']}"
    return str(author.get("display_name") or author.get("platform_user_id") or "unknown author")


def _sort_key(item: QueueItem) -> tuple[bool, datetime | None, int, int]:
    return (
        item.due_at is None,
        item.due_at,
        _RANK.get(item.priority or "", len(_RANK)),
        item.conversation_id,
    )


def _items(session: Session, conversations: Sequence[Conversation]) -> list[QueueItem]:
    ids = [c.id for c in conversations]
    latest = _latest_inbound(session, ids)
    timers = _pending_timers(session, ids)
    cards = _first_cards(session, ids)
    places = _places(session, ids)
    items = []
    for conversation in conversations:
        message = latest.get(conversation.id)
        timer = timers.get(conversation.id)
        decided = (message.decision or {}) if message else {}
        items.append(
            QueueItem(
                conversation_id=conversation.id,
                card_id=cards.get(conversation.id),
                priority=(timer.priority if timer else None) or decided.get("priority"),
                author=_author_label(message.author) if message else "unknown author",
                text=message.text if message else "",
                state=conversation.state,
                due_at=timer.due_at if timer else None,
                place=places.get(conversation.id),
            )
        )
    return sorted(items, key=_sort_key)


def assigned(session: Session, agent: str) -> list[QueueItem]:
    """The agent's open conversations (not resolved or dismissed): soonest SLA due first, then
    by priority."""
    conversations = session.scalars(
        select(Conversation).where(
            Conversation.assignee == agent, Conversation.state.not_in(CLOSED)
        )
    ).all()
    return _items(session, conversations)


def awaiting_by_priority(session: Session) -> Counter[str]:
    """Open conversations waiting for a response, counted by priority (``untriaged`` when no
    playbook judged the latest message). Those last judged watch or dismiss are not waiting, and
    reports that joined an incident are counted once, as the incident."""
    ids = list(session.scalars(select(Conversation.id).where(Conversation.state.in_(AWAITING))))
    latest = _latest_inbound(session, ids)
    timers = _pending_timers(session, ids)
    counts: Counter[str] = Counter()
    for cid in ids:
        message = latest.get(cid)
        decided = (message.decision if message else None) or {}
        if message is not None and message.incident_id is not None:
            continue
        if decided.get("action") in (Action.WATCH.value, Action.DISMISS.value):
            continue
        timer = timers.get(cid)
        counts[(timer.priority if timer else None) or decided.get("priority") or UNTRIAGED] += 1
    return counts


def breaches_since(session: Session, start: datetime, now: datetime) -> int:
    """Timers that went overdue between ``start`` and ``now``: escalated (audited) or past due
    and still waiting for the scheduler's sweep."""
    escalated = set(
        session.scalars(
            select(distinct(AuditEntry.target)).where(
                AuditEntry.action == "sla.escalated", AuditEntry.at >= start, AuditEntry.at <= now
            )
        )
    )
    waiting = set(
        session.scalars(
            select(SlaTimer.subject).where(
                SlaTimer.state == sla.PENDING,
                SlaTimer.step == 0,
                SlaTimer.due_at >= start,
                SlaTimer.due_at <= now,
            )
        )
    )
    return len(escalated | waiting)


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """An incident that is still open."""

    id: int
    key: str
    priority: str | None
    reports: int
    opened_at: datetime
    place: Posted | None


def open_incidents(session: Session) -> list[OpenIncident]:
    """Open incidents, the most recently opened first."""
    rows = session.scalars(
        select(Incident).where(Incident.state == OPEN).order_by(Incident.opened_at.desc())
    ).all()
    subjects = {f"incident:{row.id}": row.id for row in rows}
    places = {
        subjects[m.subject]: Posted(m.channel, m.ts)
        for m in session.scalars(select(SlackMessage).where(SlackMessage.subject.in_(subjects)))
    }
    return [
        OpenIncident(row.id, row.key, row.priority, row.reports, row.opened_at, places.get(row.id))
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Card:
    """A conversation's card: the interaction it shows and where it is in Slack."""

    interaction_id: int
    place: Posted


def card_of_interaction(session: Session, interaction_id: int) -> Card | None:
    """The card of the conversation this interaction belongs to."""
    conversation_id = session.scalar(
        select(InteractionRow.conversation_id).where(InteractionRow.id == interaction_id)
    )
    return _card(session, conversation_id)


def cards_of_message(session: Session, channel: str, ts: str) -> list[Card]:
    """The cards of the conversations whose card (or thread root) is this Slack message: one,
    or several when cards that waited for their channel went out together."""
    subjects = session.scalars(
        select(SlackMessage.subject)
        .where(SlackMessage.channel == channel, SlackMessage.ts == ts)
        .order_by(SlackMessage.subject)
    )
    cards = [
        _card(session, int(subject.removeprefix("conversation:")))
        for subject in subjects
        if subject.startswith("conversation:")
    ]
    return [card for card in cards if card is not None]


def _card(session: Session, conversation_id: int | None) -> Card | None:
    if conversation_id is None:
        return None
    interaction_id = _first_cards(session, [conversation_id]).get(conversation_id)
    place = _places(session, [conversation_id]).get(conversation_id)
    if interaction_id is None or place is None:
        return None
    return Card(interaction_id, place)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One message in a contact's history."""

    direction: str
    platform: str
    created_at: datetime
    text: str
    undelivered: str | None  # a reply the platform never got: why


@dataclass(frozen=True, slots=True)
class ContactHistory:
    """A contact's identities and newest messages, for the contact card (the record itself is
    in its `ContactSnapshot`)."""

    contact_id: int
    identities: tuple[tuple[str, str], ...]  # (kind, handle or user id)
    recent: tuple[HistoryEntry, ...]


def find_contacts(session: Session, query: str, *, limit: int = 3) -> list[int]:
    """Contacts with an identity whose handle or email is ``query`` (any platform)."""
    handle = normalise_handle(query)
    if not handle:
        return []
    return list(
        session.scalars(
            select(distinct(Identity.contact_id))
            .where(or_(Identity.handle == handle, Identity.platform_user_id == handle))
            .order_by(Identity.contact_id)
            .limit(limit)
        )
    )


def history(session: Session, contact_id: int, *, recent: int = 5) -> ContactHistory:
    """A contact's identities and newest ``recent`` messages."""
    identities = tuple(
        (kind, handle or user_id or "")
        for kind, handle, user_id in session.execute(
            select(Identity.kind, Identity.handle, Identity.platform_user_id)
            .where(Identity.contact_id == contact_id)
            .order_by(Identity.kind, Identity.id)
        ).tuples()
    )
    entries = tuple(
        HistoryEntry(direction, platform, created_at, text, undelivered)
        for direction, platform, created_at, text, undelivered in session.execute(
            select(
                InteractionRow.direction,
                InteractionRow.platform,
                InteractionRow.created_at,
                InteractionRow.text,
                InteractionRow.undelivered,
            )
            .where(InteractionRow.contact_id == contact_id)
            .order_by(InteractionRow.created_at.desc(), InteractionRow.id.desc())
            .limit(recent)
        ).tuples()
    )
    return ContactHistory(contact_id=contact_id, identities=identities, recent=entries)
