"""SQLAlchemy 2.x tables of the contact history, the pipeline's jobs, the outbox and the audit log.

Migrations in ``storage/migrations`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints alike."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Organisation(Base):
    """A company or account that contacts belong to."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]


class Contact(Base):
    """A person Earful knows, from the CRM or from their messages."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    # "crm" when imported from a CRM file, "observed" when first seen in a message.
    origin: Mapped[str] = mapped_column(String(16))
    plan: Mapped[str | None] = mapped_column(String(40))
    lifetime_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    last_order_date: Mapped[date | None] = mapped_column(Date)
    order_count: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Identity(Base):
    """One of a contact's identities: an X or Telegram account, a forum name, an email address."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("kind", "handle"),
        UniqueConstraint("kind", "platform_user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Lower-cased handle without "@" (or the email address); None when only the id is known.
    handle: Mapped[str | None] = mapped_column(String(320))
    platform_user_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Conversation(Base):
    """A thread of mentions and replies on one platform, with its life cycle."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "thread_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    thread_key: Mapped[str] = mapped_column(String(200))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(80))
    assignee: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_activity_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class InteractionRow(Base):
    """Every inbound mention and outbound reply, with its classification and decision."""

    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("platform", "external_id"),
        Index("ix_interactions_direction_created_at", "direction", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(8))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    platform_conversation_id: Mapped[str | None] = mapped_column(String(200))
    in_reply_to: Mapped[str | None] = mapped_column(String(200))
    author: Mapped[dict[str, Any]]
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(2048))
    engagement: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    received_at: Mapped[datetime]
    raw: Mapped[dict[str, Any]]
    classification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What makes a judged mention alike for spike counts (`bot.traffic.similarity_key`).
    similarity_key: Mapped[str | None] = mapped_column(String(200))
    agent: Mapped[str | None] = mapped_column(String(120))
    # An outbound reply the platform never got: why (`storage.replies.record_undelivered`).
    undelivered: Mapped[str | None] = mapped_column(String(500))
    # Set when the mention joined an incident instead of getting a card of its own.
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)


class AuditEntry(Base):
    """Who did what, when, and from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(120))
    origin: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(400))
    details: Mapped[dict[str, Any]]


class Job(Base):
    """A pipeline job, stored in the same transaction as the interaction it processes."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("interaction_id"),
        Index("ix_jobs_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Checkpoint(Base):
    """How far a source has been read (since_id, update offset, feed entry id …)."""

    __tablename__ = "checkpoints"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class SourceReject(Base):
    """A payload a source could not turn into a mention, with the reason; the source went on."""

    __tablename__ = "source_rejects"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[Any | None] = mapped_column(JSON)
    at: Mapped[datetime]


class SourceReads(Base):
    """Posts read from a source per UTC day (X bills per read; a budget caps it)."""

    __tablename__ = "source_reads"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reads: Mapped[int] = mapped_column(Integer)


class OutboxRow(Base):
    """A side effect on the outside world, delivered at least once and keyed for idempotency."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    # Effects with the same ordering key are delivered in id order (one conversation).
    ordering_key: Mapped[str] = mapped_column(String(200), index=True)
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class SlaTimer(Base):
    """The first-response timer of a conversation or incident, and its escalation ladder.

    One row per subject (``conversation:<id>`` or ``incident:<id>``), re-armed in place when the
    subject needs a response again. ``step`` is the index of the next escalation step to run;
    firing moves it on with a conditional update, so each step runs once.
    """

    __tablename__ = "sla_timers"
    __table_args__ = (
        UniqueConstraint("subject"),
        Index("ix_sla_timers_state_due_at", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(80))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    # The interaction whose decision armed the timer (its card is where escalations point).
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"))
    # pending → (fired steps) → exhausted, or cancelled by a response or resolution.
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    step: Mapped[int] = mapped_column(Integer)
    # Bumped at each re-arm, so an escalation of an earlier arming can never run twice or late.
    generation: Mapped[int] = mapped_column(Integer)
    # [{"kind", "target"}, …] from the playbook; escalate_after seconds between steps.
    steps: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    escalate_after: Mapped[int | None] = mapped_column(Integer)
    playbook: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str | None] = mapped_column(String(4))
    channel: Mapped[str] = mapped_column(String(80))
    armed_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    cancel_reason: Mapped[str | None] = mapped_column(String(40))
    # When the first response was due (``due_at`` moves with each step, a snooze or an escalation
    # run by hand); None on timers armed before it was recorded.
    response_due_at: Mapped[datetime | None]


class Incident(Base):
    """Many similar mentions in a short window (a volume-spike rule): one card, not fifty."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_key_state", "key", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "playbook/rule" of the spike rule that opened it.
    key: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))  # open | resolved
    channel: Mapped[str] = mapped_column(String(80))
    priority: Mapped[str | None] = mapped_column(String(4))
    reports: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime]
    last_report_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class SlackMessage(Base):
    """Where a conversation's or incident's card was posted, so later messages thread under it."""

    __tablename__ = "slack_messages"

    # "conversation:<id>" or "incident:<id>".
    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    channel: Mapped[str] = mapped_column(String(40))
    ts: Mapped[str] = mapped_column(String(40))
    posted_at: Mapped[datetime]
    # The interaction whose card opened the subject there (None for posts before 0010): a
    # message may hold several cards, and a later message in its thread names its own.
    card_id: Mapped[int | None] = mapped_column(Integer)


class SlackPost(Base):
    """A message Earful posted in Slack as it shows now (fallback text and blocks), so that one
    card of a message holding several can change without touching the others."""

    __tablename__ = "slack_posts"

    channel: Mapped[str] = mapped_column(String(40), primary_key=True)
    ts: Mapped[str] = mapped_column(String(40), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    blocks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class Correction(Base):
    """An agent's fix of one label of a mention (sentiment, intent or priority), kept beside
    what the classifiers and playbooks said, for evaluation and retraining."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"), index=True)
    field: Mapped[str] = mapped_column(String(16))
    old_value: Mapped[str | None] = mapped_column(String(40))
    new_value: Mapped[str] = mapped_column(String(40))
    agent: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(index=True)
    note: Mapped[str | None] = mapped_column(Text)
