"""Queues and lookups for the team surface: my queue, the team's counts, a contact's history,
and assigning a conversation to an agent (a claim made on their behalf, see `bot.workbench`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time

from bot.errors import InputError
from bot.models import Clock, ContactSnapshot, CustomerValue, now_utc
from bot.workbench import CardAction, Message, Workbench
from classifiers.value import customer_value
from storage import contacts, queues
from storage.database import Database
from storage.queues import ContactHistory, OpenIncident, QueueItem

HOME_QUEUE = 10


@dataclass(frozen=True, slots=True)
class Home:
    """What an agent's App Home shows."""

    mine: tuple[QueueItem, ...]  # the first `HOME_QUEUE` of their queue
    mine_total: int
    team: Counter[str]  # open conversations awaiting a response, by priority
    breaches_today: int  # SLA timers that went overdue today (UTC)
    incidents: tuple[OpenIncident, ...]
    now: datetime


@dataclass(frozen=True, slots=True)
class ContactCard:
    """A contact's history with its counts and customer value."""

    history: ContactHistory
    snapshot: ContactSnapshot
    value: CustomerValue


class Queues:
    """Read queues and assign conversations; the clock is injected for tests."""

    def __init__(self, *, database: Database, workbench: Workbench, clock: Clock = now_utc) -> None:
        self.database = database
        self.workbench = workbench
        self.clock = clock

    def mine(self, agent: str) -> list[QueueItem]:
        """The agent's open conversations, soonest SLA due first, then by priority."""
        with self.database.transaction() as session:
            return queues.assigned(session, agent)

    def home(self, agent: str) -> Home:
        """The agent's queue, the team's counts, today's SLA breaches and the open incidents."""
        now = self.clock()
        midnight = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
        with self.database.transaction() as session:
            mine = queues.assigned(session, agent)
            return Home(
                mine=tuple(mine[:HOME_QUEUE]),
                mine_total=len(mine),
                team=queues.awaiting_by_priority(session),
                breaches_today=queues.breaches_since(session, midnight, now),
                incidents=tuple(queues.open_incidents(session)),
                now=now,
            )

    def find(self, query: str) -> list[ContactCard]:
        """The contacts with this handle or email (any platform); `InputError` when none."""
        with self.database.transaction() as session:
            ids = queues.find_contacts(session, query)
            snapshots = contacts.snapshots(session, ids)
            found = [queues.history(session, cid) for cid in ids if cid in snapshots]
        if not found:
            raise InputError(query, "no contact has this handle or email")
        today = self.clock().date()
        return [
            ContactCard(
                history=h,
                snapshot=snapshots[h.contact_id],
                value=customer_value(snapshots[h.contact_id], None, today=today),
            )
            for h in found
        ]

    def assign(
        self,
        *,
        assignee: str,
        by: str,
        interaction_id: int | None = None,
        message: Message | None = None,
    ) -> str:
        """Assign the conversation of a card (given by an interaction id or by its Slack
        message) to ``assignee``: Claim's transition, audited as ``by``'s assignment, the card
        updated through the outbox. Returns the card's new status line."""
        with self.database.transaction() as session:
            if interaction_id is not None:
                card = queues.card_of_interaction(session, interaction_id)
                where = f"card {interaction_id}"
            elif message is not None:
                cards = queues.cards_of_message(session, message.channel, message.ts)
                where = "that message"
                if len(cards) > 1:
                    numbers = ", ".join(f"#{c.interaction_id}" for c in cards)
                    raise InputError(
                        where, f"it holds {len(cards)} cards ({numbers}): give the card's number"
                    )
                card = cards[0] if cards else None
            else:
                raise InputError("assign", "name a card by its link or its number")
        if card is None:
            raise InputError(where, "Earful has no card for it in Slack")
        return self.workbench.act(
            CardAction.CLAIM,
            interaction_id=card.interaction_id,
            agent=assignee,
            by=by,
            message=Message(card.place.channel, card.place.ts),
        )
