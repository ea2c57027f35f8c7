"""Earful's domain model: the frozen, typed values that cross every layer.

Dicts stop at the edges: handlers turn platform payloads into these objects, storage turns
them into rows, and everything in between speaks only these types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any


def utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are rejected."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no time zone")
    return value.astimezone(UTC)


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


class Platform(StrEnum):
    """Where a mention was posted."""

    X = "x"
    TELEGRAM = "telegram"
    BLOG = "blog"
    WEBHOOK = "webhook"
    OTHER = "other"  # imported from a file or tool that names no platform


class Direction(StrEnum):
    """Inbound: a customer's message. Outbound: a reply the company sent."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class VerifiedType(StrEnum):
    """X's verification kinds; business and government outrank paid (``blue``)."""

    NONE = "none"
    BLUE = "blue"
    BUSINESS = "business"
    GOVERNMENT = "government"


class ConversationState(StrEnum):
    """Life cycle of a conversation: new → assigned → responded → resolved / dismissed."""

    NEW = "new"
    ASSIGNED = "assigned"
    RESPONDED = "responded"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


# States in which the customer has had an answer: their SLA timers stop.
ANSWERED_STATES = (
    ConversationState.RESPONDED,
    ConversationState.RESOLVED,
    ConversationState.DISMISSED,
)

ALLOWED_TRANSITIONS: Mapping[ConversationState, frozenset[ConversationState]] = MappingProxyType(
    {
        ConversationState.NEW: frozenset(
            {
                ConversationState.ASSIGNED,
                ConversationState.RESPONDED,
                ConversationState.RESOLVED,
                ConversationState.DISMISSED,
            }
        ),
        ConversationState.ASSIGNED: frozenset(
            {
                ConversationState.NEW,
                ConversationState.RESPONDED,
                ConversationState.RESOLVED,
                ConversationState.DISMISSED,
            }
        ),
        # A customer writing again puts an answered or closed conversation back in the queue.
        ConversationState.RESPONDED: frozenset(
            {
                ConversationState.NEW,
                ConversationState.ASSIGNED,
                ConversationState.RESOLVED,
                ConversationState.DISMISSED,
            }
        ),
        ConversationState.RESOLVED: frozenset({ConversationState.NEW}),
        ConversationState.DISMISSED: frozenset({ConversationState.NEW}),
    }
)


class Action(StrEnum):
    """What the team should do with a mention."""

    RESPOND = "respond"
    WATCH = "watch"
    DISMISS = "dismiss"


class Priority(StrEnum):
    """P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


@dataclass(frozen=True, slots=True)
class Author:
    """Who wrote a mention, with the profile metrics the platform gives (None where none)."""

    handle: str | None = None
    display_name: str | None = None
    platform_user_id: str | None = None
    followers: int | None = None
    following: int | None = None
    posts: int | None = None
    listed: int | None = None
    verified_type: VerifiedType = VerifiedType.NONE
    account_created: datetime | None = None

    def __post_init__(self) -> None:
        if self.account_created is not None:
            object.__setattr__(self, "account_created", utc(self.account_created))
        for name in ("followers", "following", "posts", "listed"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"author {name} must not be negative, got {value}")

    @property
    def label(self) -> str:
        """A short human label: ``@handle``, else the display name, else the user id."""
        if self.handle:
            return f"@{self.handle}"
        return self.display_name or self.platform_user_id or "unknown author"


@dataclass(frozen=True, slots=True)
class Mention:
    """One message seen on a source, inbound from a customer or outbound from the company."""

    platform: Platform
    external_id: str
    text: str
    author: Author
    created_at: datetime
    conversation_id: str | None = None
    in_reply_to: str | None = None
    url: str | None = None
    direction: Direction = Direction.INBOUND
    # Likes + reposts + replies + quotes when the mention was fetched; None where not given.
    engagement: int | None = None
    # The platform payload as received; read only by the handler that produced it.
    raw: Mapping[str, Any] = field(
        default_factory=lambda: _frozen_mapping({}), compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.external_id:
            raise ValueError("a mention needs an external id")
        object.__setattr__(self, "created_at", utc(self.created_at))
        object.__setattr__(self, "raw", _frozen_mapping(self.raw))

    @property
    def key(self) -> tuple[str, str]:
        """The mention's identity across the system: (platform, external id)."""
        return (self.platform.value, self.external_id)


@dataclass(frozen=True, slots=True)
class ContactSnapshot:
    """What the contact history knows of a mention's author when it is judged.

    ``contact_id`` is None for a mention whose author cannot be identified (no handle, no id).
    """

    contact_id: int | None
    name: str | None = None
    origin: str = "unknown"
    organisation: str | None = None
    plan: str | None = None
    lifetime_value: Decimal | None = None
    last_order_date: date | None = None
    order_count: int | None = None
    inbound_count: int = 0
    outbound_count: int = 0
    # Sentiment of the contact's recent inbound messages (the newest 50), for deviation signals.
    past_positive: int = 0
    past_neutral: int = 0
    past_negative: int = 0
    open_conversations: int = 0

    @property
    def from_crm(self) -> bool:
        """True when the contact came from an imported CRM record."""
        return self.origin == "crm"


@dataclass(frozen=True, slots=True)
class Score:
    """A label with the model's probability for it."""

    label: str
    score: float


@dataclass(frozen=True, slots=True)
class Classification:
    """What the classifiers made of a mention; ``classified`` is False until they have run."""

    classified: bool
    sentiment: Score | None = None
    intent: Score | None = None
    flags: tuple[str, ...] = ()
    language: str | None = None
    influence: Influence | None = None
    value: CustomerValue | None = None

    @classmethod
    def unclassified(cls) -> Classification:
        """The honest result when no classifier is configured: no labels at all."""
        return cls(classified=False)


@dataclass(frozen=True, slots=True)
class Reason:
    """One factor behind a judgement, its value and its effect on the outcome."""

    factor: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class Influence:
    """How far an author's voice carries: 0–100 and a tier, with the metrics behind it.

    ``tier`` is ``unknown`` (and ``score`` None) where the platform gives no metrics.
    """

    tier: str
    score: int | None
    factors: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomerValue:
    """What a customer is worth to the company: 0–100 and a tier; ``unknown`` for strangers.

    ``deviation`` names a departure from the customer's own baseline (the retention trigger).
    """

    tier: str
    score: int | None
    deviation: str | None = None
    factors: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """One escalation step: notify a channel, mention a lead, page on-call or open a ticket."""

    kind: str  # notify | mention | page | ticket
    target: str  # the channel, person, rota or ticket webhook URL

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


@dataclass(frozen=True, slots=True)
class Decision:
    """Respond, watch or dismiss, with priority, destination and the reasons.

    ``action`` and ``priority`` are None while no playbook has judged the mention: such a
    mention goes to the triage channel for a person to judge.
    """

    action: Action | None
    priority: Priority | None
    channel: str
    playbook: str | None
    reasons: tuple[Reason, ...]
    rule: str | None = None
    # "playbook/rule" of the next-best match, so an agent sees what almost happened.
    runner_up: str | None = None
    owner: str | None = None
    respond_by: datetime | None = None
    # The playbook's escalation steps in order; one runs at each SLA breach.
    escalation: tuple[EscalationStep, ...] = ()
    # Time between escalation steps once the first response is overdue (None: one step only).
    escalate_after: timedelta | None = None
    # "playbook/rule" of a volume-spike rule: such mentions join one incident, not a card each.
    incident: str | None = None
    guidance: tuple[str, ...] = ()

    @property
    def decided(self) -> bool:
        """True when a playbook, not the fallback, produced this decision."""
        return self.action is not None


@dataclass(frozen=True, slots=True)
class Incident:
    """Similar mentions grouped by a volume-spike rule, handled as one card."""

    id: int
    key: str  # "playbook/rule" of the spike rule
    channel: str
    priority: Priority | None
    reports: int
    opened_at: datetime
    last_report_at: datetime


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A reply an agent may send, where it came from and how well it fits (0–1)."""

    text: str
    source: str
    score: float


@dataclass(frozen=True, slots=True)
class Interaction:
    """A message as logged in the contact history, with what Earful made of it.

    For an inbound mention, ``contact`` is its author as the history knew them before it; for
    an outbound reply, the customer replied to, and ``agent`` who replied. The payload of a
    card is the routed interaction itself.
    """

    id: int
    mention: Mention
    conversation_id: int
    contact: ContactSnapshot
    classification: Classification | None = None
    decision: Decision | None = None
    suggestions: tuple[Suggestion, ...] = ()
    agent: str | None = None


Clock = Callable[[], datetime]


def now_utc() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)
