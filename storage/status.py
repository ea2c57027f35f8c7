"""Counts of what the database holds, for `earful status` and the end of a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import incidents, sla, sources
from storage.schema import (
    Checkpoint,
    Contact,
    Conversation,
    Incident,
    InteractionRow,
    Job,
    OutboxRow,
    SlaTimer,
)


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """What `earful status --json` prints."""

    mentions: int
    conversations: int
    contacts: int
    interactions: dict[str, int]
    outbox_pending: int
    outbox_failed: int
    jobs_pending: int
    jobs_failed: int
    checkpoints: dict[str, str]
    sla_pending: int
    sla_overdue: int
    incidents_open: int
    # Posts read today (UTC) per source, against a budget where the platform bills per read.
    source_reads_today: dict[str, int]
    # Payloads each source could not use, kept with their reasons.
    source_rejects: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """A plain JSON object."""
        return asdict(self)


def _count(session: Session, stmt: Any) -> int:
    return int(session.scalar(stmt) or 0)


def _grouped(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column)).tuples()
    return {str(key): int(n) for key, n in rows}


def counts(session: Session, *, now: datetime) -> StatusCounts:
    """Count mentions, conversations, contacts, interactions, pending work and checkpoints."""
    by_direction = _grouped(session, InteractionRow.direction)
    jobs = _grouped(session, Job.state)
    outbox = _grouped(session, OutboxRow.state)
    return StatusCounts(
        mentions=int(by_direction.get("inbound", 0)),
        conversations=_count(session, select(func.count()).select_from(Conversation)),
        contacts=_count(session, select(func.count()).select_from(Contact)),
        interactions={
            "inbound": int(by_direction.get("inbound", 0)),
            "outbound": int(by_direction.get("outbound", 0)),
        },
        outbox_pending=int(outbox.get("pending", 0)),
        outbox_failed=int(outbox.get("failed", 0)),
        jobs_pending=int(jobs.get("pending", 0)),
        jobs_failed=int(jobs.get("failed", 0)),
        sla_pending=_count(session, select(func.count()).where(SlaTimer.state == sla.PENDING)),
        sla_overdue=_count(
            session,
            select(func.count()).where(SlaTimer.state == sla.PENDING, SlaTimer.due_at <= now),
        ),
        incidents_open=_count(
            session, select(func.count()).where(Incident.state == incidents.OPEN)
        ),
        checkpoints=dict(
            session.execute(select(Checkpoint.source, Checkpoint.value)).tuples().all()
        ),
        source_reads_today=sources.reads_on(session, now.date()),
        source_rejects=sources.rejects_by_source(session),
    )
