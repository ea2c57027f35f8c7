"""What agents do to a card (claim, resolve, dismiss, reply, escalate, snooze, correct), as
plain calls on the core.

Slack's action handlers call these; so could any other team surface. Each call changes the
conversation in one transaction with its audit entry and a `card_status` effect that shows the
new state on the card the agent clicked; resolving or dismissing stops the SLA timer.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import effects
from bot.errors import InputError
from bot.models import (
    Author,
    Clock,
    ConversationState,
    Direction,
    EscalationStep,
    Interaction,
    Mention,
    Platform,
    Priority,
    now_utc,
)
from classifiers.intent import INTENTS
from classifiers.text_model import SENTIMENT_LABELS
from playbooks.suggest import PLATFORM_LIMITS, fits
from storage import audit, corrections, ingest, outbox, replies, sla
from storage.codec import interaction_from_json
from storage.conversations import transition
from storage.database import Database
from storage.outbox import Effect as OutboxEffect
from storage.schema import Conversation, InteractionRow, OutboxRow


class CardAction(StrEnum):
    """The actions this module carries out."""

    CLAIM = "claim"
    RESOLVE = "resolve"
    DISMISS = "dismiss"


_TARGET = {
    CardAction.RESOLVE: ConversationState.RESOLVED,
    CardAction.DISMISS: ConversationState.DISMISSED,
}


@dataclass(frozen=True, slots=True)
class Message:
    """The Slack message that was clicked: where the card is to be updated."""

    channel: str
    ts: str


# Why an agent dismissed a mention: code → what the card and the audit log say.
DISMISS_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "spam": "Spam",
        "not_for_us": "Not for us",
        "already_handled": "Already handled",
        "no_reply_needed": "No reply needed",
        "other": "Other",
    }
)

# The labels an agent may correct, with their choices.
LABEL_CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "sentiment": SENTIMENT_LABELS,
        "intent": INTENTS,
        "priority": tuple(p.value for p in Priority),
    }
)


class SnoozeFor(StrEnum):
    """How long a snooze holds the next escalation."""

    HALF_HOUR = "30m"
    TWO_HOURS = "2h"
    TOMORROW = "tomorrow"  # 9:00 the next day


SNOOZE_LABELS: Mapping[SnoozeFor, str] = MappingProxyType(
    {
        SnoozeFor.HALF_HOUR: "30 minutes",
        SnoozeFor.TWO_HOURS: "2 hours",
        SnoozeFor.TOMORROW: "Tomorrow 9:00",
    }
)


def snooze_until(choice: SnoozeFor, now: datetime, zone: tzinfo = UTC) -> datetime:
    """When a snooze chosen at ``now`` ends (``tomorrow``: 9:00 the next day in ``zone``)."""
    if choice == SnoozeFor.HALF_HOUR:
        return now + timedelta(minutes=30)
    if choice == SnoozeFor.TWO_HOURS:
        return now + timedelta(hours=2)
    local = now.astimezone(zone)
    nine = datetime.combine(local.date() + timedelta(days=1), time(9), tzinfo=zone)
    return nine.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Ladder:
    """A conversation's escalation steps, and the index of the one its SLA timer runs next
    (None when no timer is pending)."""

    steps: tuple[EscalationStep, ...]
    next: int | None

    def labels(self) -> list[str]:
        """Each step as people may see it (a ticket step shows its webhook's host only)."""
        return [effects.step_label(step) for step in self.steps]


def _plain(text: str, limit: int = 500) -> str:
    """An agent's note, trimmed and unable to ping or link in Slack's mrkdwn."""
    flat = " ".join(text.split())[:limit]
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _subject(row: InteractionRow) -> str:
    """The SLA subject a mention belongs to: its incident's, else its conversation's."""
    if row.incident_id is not None:
        return f"incident:{row.incident_id}"
    return f"conversation:{row.conversation_id}"


def _current_labels(card: Interaction, corrected: Mapping[str, str]) -> dict[str, str | None]:
    """The labels a card has now: the last correction of each, else what Earful said."""
    classification, decision = card.classification, card.decision
    said = {
        "sentiment": classification.sentiment.label
        if classification and classification.sentiment
        else None,
        "intent": classification.intent.label if classification and classification.intent else None,
        "priority": decision.priority.value if decision and decision.priority else None,
    }
    return {field: corrected.get(field, value) for field, value in said.items()}


def _card_payload(session: Session, interaction_id: int) -> dict[str, Any] | None:
    """The card of an interaction as it was posted (the outbox keeps its payload)."""
    return session.scalar(
        select(OutboxRow.payload).where(
            OutboxRow.idempotency_key == f"{effects.CARD}:{interaction_id}"
        )
    )


def reply_undelivered_status(
    session: Session, reply: OutboxEffect, *, reopened: bool
) -> list[effects.Effect]:
    """The status of the card a reply that failed for good was sent from (none if it was sent
    from no card): not delivered, and awaiting a response if its conversation was reopened."""
    status = f"Reply by {_sender(reply)} not delivered"
    if reopened:
        status += ": awaiting a response"
    return _reply_card_status(session, reply, status)


def reply_retried_status(session: Session, reply: OutboxEffect) -> list[effects.Effect]:
    """The status of the card a failed reply was sent from, once it is queued again."""
    return _reply_card_status(session, reply, f"Replied by {_sender(reply)} (sent again)")


def slack_mention(agent: object) -> str | None:
    """How Slack pings an agent named as the interaction log names them (``slack:U0AGENT`` →
    ``<@U0AGENT>``); None for anyone else."""
    name = str(agent or "")
    return f"<@{name.removeprefix('slack:')}>" if name.startswith("slack:") else None


def _sender(reply: OutboxEffect) -> str:
    return slack_mention(reply.payload.get("agent")) or "an agent"


def _reply_card_status(session: Session, reply: OutboxEffect, status: str) -> list[effects.Effect]:
    card, conversation_id = reply.payload.get("card"), reply.payload.get("conversation_id")
    if not isinstance(card, dict) or not isinstance(conversation_id, int):
        return []  # queued before replies named their card
    posted = _card_payload(session, int(card["id"]))
    if posted is None:
        return []
    return [
        effects.card_status(posted, conversation_id, status, str(card["channel"]), str(card["ts"]))
    ]


@dataclass(frozen=True, slots=True)
class Draft:
    """A reply about to be written: the starting text and where it will go."""

    text: str
    platform: Platform
    limit: int | None
    author: str
    customer_text: str


class Workbench:
    """Card actions on the database; the clock is injected for tests."""

    def __init__(self, *, database: Database, clock: Clock = now_utc) -> None:
        self.database = database
        self.clock = clock

    def act(
        self,
        action: CardAction,
        *,
        interaction_id: int,
        agent: str,
        message: Message,
        reason: str | None = None,
        by: str | None = None,
        note: str | None = None,
    ) -> str:
        """Carry out ``action`` for ``agent``; return the status line now shown on the card.

        ``by``: who acted, when not ``agent`` (a claim made for an agent is an assignment).
        ``reason`` and the agent's ``note`` are shown on the card and kept in the audit log.
        Raises `InputError` for a card Earful does not know or a conversation that is closed.
        """
        now = self.clock()
        with self.database.transaction() as session:
            conversation = session.scalar(
                select(Conversation)
                .join(InteractionRow, InteractionRow.conversation_id == Conversation.id)
                .where(InteractionRow.id == interaction_id)
            )
            card = _card_payload(session, interaction_id)
            if conversation is None or card is None:
                raise InputError(f"card {interaction_id}", "Earful has no such card")
            state = ConversationState(conversation.state)
            if action == CardAction.CLAIM:
                if state in (ConversationState.RESOLVED, ConversationState.DISMISSED):
                    raise InputError(
                        f"card {interaction_id}", f"the conversation is already {state.value}"
                    )
                conversation.assignee = agent
                conversation.updated_at = now
                if state == ConversationState.NEW:
                    transition(session, conversation, ConversationState.ASSIGNED, at=now)
                status = f"Assigned to <@{agent}> by <@{by}>" if by else f"Claimed by <@{agent}>"
            else:
                transition(session, conversation, _TARGET[action], at=now)
                status = f"{_TARGET[action].value.capitalize()} by <@{agent}>"
                if reason:
                    status += f": {reason}"
                if note:
                    status += f" ({_plain(note)})"
            audit.record(
                session,
                actor=f"slack:{by or agent}",
                origin="slack",
                action="card.assign" if by else f"card.{action.value}",
                target=f"conversation:{conversation.id}",
                details={
                    "interaction_id": interaction_id,
                    "reason": reason,
                    "agent": agent,
                    **({"note": note} if note else {}),
                },
                at=now,
            )
            outbox.enqueue_all(
                session,
                [effects.card_status(card, conversation.id, status, message.channel, message.ts)],
                at=now,
            )
        return status

    def draft(self, interaction_id: int, suggestion: int | None) -> Draft:
        """What the reply form starts from: the card's suggestion number ``suggestion`` (1-based;
        None: the best one, if any)."""
        with self.database.transaction() as session:
            card = _card_payload(session, interaction_id)
        if card is None:
            raise InputError(f"card {interaction_id}", "Earful has no such card")
        shown = interaction_from_json(card)
        index = (suggestion or 1) - 1
        text = shown.suggestions[index].text if 0 <= index < len(shown.suggestions) else ""
        platform = shown.mention.platform
        return Draft(
            text=text,
            platform=platform,
            limit=PLATFORM_LIMITS.get(platform),
            author=shown.mention.author.label,
            customer_text=shown.mention.text,
        )

    def reply(self, *, interaction_id: int, agent: str, text: str, message: Message) -> str:
        """Send ``text`` publicly under the customer's message, as ``agent``.

        The reply is logged as an outbound interaction with the agent's identity (the pipeline
        then marks the conversation responded, which stops its SLA timer) and goes to the
        source through the outbox. Raises `InputError` if the reply cannot be sent as it is.
        """
        now = self.clock()
        with self.database.transaction() as session:
            row = session.get(InteractionRow, interaction_id)
            card = _card_payload(session, interaction_id)
            if row is None or card is None or row.conversation_id is None:
                raise InputError(f"card {interaction_id}", "Earful has no such card")
            platform = Platform(row.platform)
            problem = reply_problem(text, platform)
            if problem:
                raise InputError("reply", problem)
            outbound = Mention(
                platform=platform,
                external_id=f"{replies.PENDING_ID}{uuid.uuid4().hex}",
                text=text.strip(),
                author=Author(display_name=f"slack:{agent}"),
                created_at=now,
                conversation_id=row.platform_conversation_id,
                in_reply_to=row.external_id,
                direction=Direction.OUTBOUND,
            )
            (reply_id,) = ingest.ingest(session, [outbound], received_at=now)
            status = f"Replied by <@{agent}>"
            audit.record(
                session,
                actor=f"slack:{agent}",
                origin="slack",
                action="card.reply",
                target=f"conversation:{row.conversation_id}",
                details={"interaction_id": interaction_id, "reply_id": reply_id},
                at=now,
            )
            outbox.enqueue_all(
                session,
                [
                    effects.reply(
                        interaction_id=reply_id,
                        conversation_id=row.conversation_id,
                        platform=platform.value,
                        in_reply_to=row.external_id,
                        text=outbound.text,
                        agent=f"slack:{agent}",
                        card=(interaction_id, message.channel, message.ts),
                    ),
                    effects.card_status(
                        card, row.conversation_id, status, message.channel, message.ts
                    ),
                ],
                at=now,
            )
        return status

    def _open(
        self, session: Session, interaction_id: int
    ) -> tuple[InteractionRow, Conversation, Interaction]:
        """The mention behind a card, its conversation and the card as posted."""
        row = session.get(InteractionRow, interaction_id)
        card = _card_payload(session, interaction_id)
        conversation = (
            session.get(Conversation, row.conversation_id)
            if row is not None and row.conversation_id is not None
            else None
        )
        if row is None or card is None or conversation is None:
            raise InputError(f"card {interaction_id}", "Earful has no such card")
        return row, conversation, interaction_from_json(card)

    def _still_open(self, conversation: Conversation, interaction_id: int) -> None:
        state = ConversationState(conversation.state)
        if state in (ConversationState.RESOLVED, ConversationState.DISMISSED):
            raise InputError(f"card {interaction_id}", f"the conversation is already {state.value}")

    def _done(
        self,
        session: Session,
        *,
        action: str,
        agent: str,
        conversation: Conversation,
        card: Interaction,
        status: str,
        details: dict[str, Any],
        message: Message,
        at: datetime,
        before: tuple[effects.Effect, ...] = (),
    ) -> str:
        """Audit the action and show ``status`` on the clicked card (after ``before``)."""
        audit.record(
            session,
            actor=f"slack:{agent}",
            origin="slack",
            action=f"card.{action}",
            target=f"conversation:{conversation.id}",
            details={"interaction_id": card.id, **details},
            at=at,
        )
        # The card_status effect carries the card's JSON as it was posted.
        posted = _card_payload(session, card.id)
        assert posted is not None  # noqa: S101 - `_open` found it in this transaction
        status_effect = effects.card_status(
            posted, conversation.id, status, message.channel, message.ts
        )
        outbox.enqueue_all(session, [*before, status_effect], at=at)
        return status

    def dismiss(
        self, *, interaction_id: int, agent: str, reason: str, note: str | None, message: Message
    ) -> str:
        """Dismiss with one of `DISMISS_REASONS` (a code) and an optional note."""
        label = DISMISS_REASONS.get(reason)
        if label is None:
            raise InputError("dismiss", f"{reason!r} is not a dismiss reason")
        return self.act(
            CardAction.DISMISS,
            interaction_id=interaction_id,
            agent=agent,
            message=message,
            reason=label,
            note=(note or "").strip() or None,
        )

    def ladder(self, interaction_id: int) -> Ladder:
        """The card's escalation steps: its SLA timer's, else its decision's."""
        with self.database.transaction() as session:
            row, _, card = self._open(session, interaction_id)
            timer = sla.find(session, _subject(row))
        if timer is not None:
            return Ladder(timer.steps, timer.step if timer.state == sla.PENDING else None)
        return Ladder(card.decision.escalation if card.decision else (), None)

    def escalate(
        self,
        *,
        interaction_id: int,
        agent: str,
        step: int | None,
        person: str | None,
        message: Message,
    ) -> str:
        """Run escalation step number ``step`` (1-based) of the card's ladder now, and/or
        mention ``person`` (a Slack user id) in the card's thread, through the outbox.

        A step run by hand counts as run: the SLA timer moves past it, so the automatic ladder
        never repeats it nor falls back to a lower step, and the next step still waits for the
        deadline and at least ``escalate_after`` from now (`storage.sla.mark_step_run`). Picking
        a person leaves the timer as it is. Raises `InputError` if there is nothing to run.
        """
        if step is None and not person:
            raise InputError("escalation", "pick a step or a person")
        now = self.clock()
        with self.database.transaction() as session:
            row, conversation, card = self._open(session, interaction_id)
            self._still_open(conversation, interaction_id)
            timer = sla.find(session, _subject(row))
            steps = timer.steps if timer else card.decision.escalation if card.decision else ()
            subject = f"conversation:{conversation.id}"  # the card's thread
            runs: list[effects.Effect] = []
            targets: list[str] = []
            details: dict[str, Any] = {}
            if step is not None:
                if not 1 <= step <= len(steps):
                    raise InputError("escalation", f"this conversation has no step {step}")
                chosen = steps[step - 1]
                if timer is not None and not sla.mark_step_run(session, timer, step - 1, at=now):
                    raise InputError("escalation", "the SLA timer moved meanwhile; try again")
                runs.append(
                    effects.escalation_by_hand(
                        subject=subject,
                        step=chosen,
                        number=step,
                        timer=timer,
                        card=card,
                        agent=agent,
                        at=now,
                    )
                )
                targets.append(effects.step_label(chosen))
                details |= {"step": step, "of": len(steps), "action": chosen.kind}
                details["to"] = effects.step_label(chosen)
            if person:
                runs.append(
                    effects.escalation_by_hand(
                        subject=subject,
                        step=EscalationStep("mention", f"<@{person}>"),
                        number=None,
                        timer=timer,
                        card=card,
                        agent=agent,
                        at=now,
                    )
                )
                targets.append(f"<@{person}>")
                details["person"] = person
            return self._done(
                session,
                action="escalate",
                agent=agent,
                conversation=conversation,
                card=card,
                status=f"Escalated by <@{agent}> to {' and '.join(targets)}",
                details=details,
                message=message,
                at=now,
                before=tuple(runs),
            )

    def snooze(
        self, *, interaction_id: int, agent: str, choice: SnoozeFor, message: Message
    ) -> str:
        """Hold the conversation's next escalation until the snooze ends (times in UTC).

        A breached timer is re-armed; a customer message meanwhile brings the deadline forward
        (see `storage.sla.snooze`). Raises `InputError` when no SLA timer runs.
        """
        now = self.clock()
        until = snooze_until(choice, now)
        with self.database.transaction() as session:
            row, conversation, card = self._open(session, interaction_id)
            self._still_open(conversation, interaction_id)
            timer = sla.find(session, _subject(row))
            if timer is None or timer.state == sla.CANCELLED:
                raise InputError(
                    f"card {interaction_id}", "no SLA timer runs for this conversation to snooze"
                )
            if not sla.snooze(session, timer, until, at=now):
                raise InputError("snooze", "the SLA timer moved meanwhile; try again")
            return self._done(
                session,
                action="snooze",
                agent=agent,
                conversation=conversation,
                card=card,
                status=f"Snoozed until {until:%Y-%m-%d %H:%M} UTC by <@{agent}>",
                details={"until": until.isoformat(), "was_due": timer.due_at.isoformat()},
                message=message,
                at=now,
            )

    def labels(self, interaction_id: int) -> dict[str, str | None]:
        """The card's sentiment, intent and priority now (corrections applied)."""
        with self.database.transaction() as session:
            _, _, card = self._open(session, interaction_id)
            return _current_labels(card, corrections.latest(session, interaction_id))

    def correct(
        self,
        *,
        interaction_id: int,
        agent: str,
        labels: Mapping[str, str],
        note: str | None,
        message: Message,
    ) -> str:
        """Store the labels that differ from the card's current ones as corrections (one row
        per field); the mention's classification itself stays as the models made it."""
        for field, value in labels.items():
            if value not in LABEL_CHOICES.get(field, ()):
                raise InputError("correction", f"{value!r} is not a {field}")
        now = self.clock()
        with self.database.transaction() as session:
            _, conversation, card = self._open(session, interaction_id)
            current = _current_labels(card, corrections.latest(session, interaction_id))
            changes = {f: (current[f], v) for f, v in labels.items() if v != current[f]}
            if not changes:
                raise InputError("correction", "nothing changed: pick the right label")
            note = (note or "").strip() or None
            corrections.record(
                session,
                interaction_id=interaction_id,
                changes=changes,
                agent=f"slack:{agent}",
                note=note,
                at=now,
            )
            shown = ", ".join(f"{f} {old or 'none'} → {new}" for f, (old, new) in changes.items())
            return self._done(
                session,
                action="correct",
                agent=agent,
                conversation=conversation,
                card=card,
                status=f"Corrected by <@{agent}>: {shown}",
                details={"changes": {f: list(pair) for f, pair in changes.items()}},
                message=message,
                at=now,
            )


def reply_problem(text: str, platform: Platform) -> str | None:
    """Why a reply cannot be sent on ``platform`` as it is, or None (a length and slot check
    until the guardrail policy lands)."""
    stripped = text.strip()
    limit = PLATFORM_LIMITS.get(platform)
    if not stripped:
        return "the reply is empty"
    if limit is None:
        return f"Earful cannot reply on {platform.value}; answer on the page itself"
    if len(stripped) > limit:
        return f"{len(stripped)} characters; {platform.value} allows {limit}"
    if not fits(stripped, platform):
        return "the reply still has an unfilled {slot}"
    return None
