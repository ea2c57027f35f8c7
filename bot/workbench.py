"""What agents do to a card (claim, resolve, dismiss), as plain calls on the core.

Slack's action handlers call these; so could any other team surface. Each call changes the
conversation in one transaction with its audit entry and a `card_status` effect that shows the
new state on the card the agent clicked; resolving or dismissing stops the SLA timer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import effects
from bot.errors import InputError
from bot.models import Author, Clock, ConversationState, Direction, Mention, Platform, now_utc
from playbooks.suggest import PLATFORM_LIMITS, fits
from storage import audit, ingest, outbox
from storage.codec import interaction_from_json
from storage.conversations import transition
from storage.database import Database
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


REPLY_PREFIX = "earful-reply-"


def _card_payload(session: Session, interaction_id: int) -> dict[str, Any] | None:
    """The card of an interaction as it was posted (the outbox keeps its payload)."""
    return session.scalar(
        select(OutboxRow.payload).where(
            OutboxRow.idempotency_key == f"{effects.CARD}:{interaction_id}"
        )
    )


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
    ) -> str:
        """Carry out ``action`` for ``agent``; return the status line now shown on the card.

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
                status = f"Claimed by <@{agent}>"
            else:
                transition(session, conversation, _TARGET[action], at=now)
                status = f"{_TARGET[action].value.capitalize()} by <@{agent}>"
                if reason:
                    status += f": {reason}"
            audit.record(
                session,
                actor=f"slack:{agent}",
                origin="slack",
                action=f"card.{action.value}",
                target=f"conversation:{conversation.id}",
                details={"interaction_id": interaction_id, "reason": reason},
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
                external_id=f"{REPLY_PREFIX}{uuid.uuid4().hex}",
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
                    ),
                    effects.card_status(
                        card, row.conversation_id, status, message.channel, message.ts
                    ),
                ],
                at=now,
            )
        return status


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
