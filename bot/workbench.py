"""What agents do to a card (claim, resolve, dismiss), as plain calls on the core.

Slack's action handlers call these; so could any other team surface. Each call changes the
conversation in one transaction with its audit entry and a `card_status` effect that shows the
new state on the card the agent clicked; resolving or dismissing stops the SLA timer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select

from bot import effects
from bot.errors import InputError
from bot.models import Clock, ConversationState, now_utc
from storage import audit, outbox
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
            card = session.scalar(
                select(OutboxRow.payload).where(
                    OutboxRow.idempotency_key == f"{effects.CARD}:{interaction_id}"
                )
            )
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
