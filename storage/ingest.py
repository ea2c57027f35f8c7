"""Ingest: store mentions with their jobs in one transaction, and move source checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, tuple_, update
from sqlalchemy.orm import Session

from bot.models import Mention
from storage.codec import author_to_json
from storage.schema import Checkpoint, InteractionRow, Job
from storage.sql import insert_for


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A stored interaction still waiting for the pipeline."""

    job_id: int
    interaction_id: int
    attempts: int


def ingest(
    session: Session,
    mentions: Sequence[Mention],
    *,
    received_at: datetime,
    checkpoint: tuple[str, str] | None = None,
) -> list[int]:
    """Store new mentions and a pending job for each; return the new interaction ids.

    A mention already stored (same platform and external id) is skipped, so a source that
    delivers twice, or a replay run again, stores it once. The checkpoint, when given,
    moves in the same transaction, so it never runs ahead of what was stored.
    """
    unique: dict[tuple[str, str], Mention] = {}
    for mention in mentions:
        unique.setdefault(mention.key, mention)
    new_ids: list[int] = []
    if unique:
        rows = [
            {
                "platform": m.platform.value,
                "external_id": m.external_id,
                "direction": m.direction.value,
                "platform_conversation_id": m.conversation_id,
                "in_reply_to": m.in_reply_to,
                "author": author_to_json(m.author),
                "text": m.text,
                "url": m.url,
                "engagement": m.engagement,
                "created_at": m.created_at,
                "received_at": received_at,
                "raw": dict(m.raw),
            }
            for m in unique.values()
        ]
        # Core inserts on the tables: the ORM's bulk path costs more than the insert itself.
        table = InteractionRow.__table__
        stmt = (
            insert_for(session, table)
            .on_conflict_do_nothing(index_elements=["platform", "external_id"])
            .returning(table.c.id)
        )
        new_ids = sorted(session.execute(stmt, rows).scalars().all())
    if new_ids:
        session.execute(
            insert_for(session, Job.__table__),
            [
                {
                    "interaction_id": interaction_id,
                    "state": "pending",
                    "attempts": 0,
                    "created_at": received_at,
                    "updated_at": received_at,
                }
                for interaction_id in new_ids
            ],
        )
    if checkpoint is not None:
        advance_checkpoint(session, checkpoint[0], checkpoint[1], at=received_at)
    return new_ids


def advance_checkpoint(session: Session, source: str, value: str, *, at: datetime) -> None:
    """Record how far ``source`` has been read."""
    stmt = insert_for(session, Checkpoint).values(source=source, value=value, updated_at=at)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["source"], set_={"value": value, "updated_at": at}
        )
    )


def read_checkpoint(session: Session, source: str) -> str | None:
    """The stored position of ``source``, None if it was never read."""
    return session.scalar(select(Checkpoint.value).where(Checkpoint.source == source))


def pending_jobs(session: Session, *, limit: int, max_attempts: int = 5) -> list[PendingJob]:
    """The oldest pending jobs, in the order their mentions were stored."""
    rows = session.execute(
        select(Job.id, Job.interaction_id, Job.attempts)
        .where(Job.state == "pending", Job.attempts < max_attempts)
        .order_by(Job.id)
        .limit(limit)
    ).all()
    return [PendingJob(job_id=r[0], interaction_id=r[1], attempts=r[2]) for r in rows]


def _as_read(jobs: Sequence[PendingJob]) -> Any:
    """Jobs still pending with the attempts they had when read: no other pass touched them."""
    return and_(
        Job.state == "pending",
        tuple_(Job.id, Job.attempts).in_([(j.job_id, j.attempts) for j in jobs]),
    )


def still_pending(session: Session, jobs: Sequence[PendingJob]) -> list[PendingJob]:
    """Those of ``jobs`` that are still pending as they were read, in the same order."""
    if not jobs:
        return []
    untouched = set(session.scalars(select(Job.id).where(_as_read(jobs))))
    return [job for job in jobs if job.job_id in untouched]


def finish_jobs(session: Session, jobs: Sequence[PendingJob], *, at: datetime) -> set[int]:
    """Mark done those of ``jobs`` still pending as they were read; return their ids.

    A job another pass or process finished, failed or retried meanwhile is left as it is, so
    the caller stores nothing for it.
    """
    if not jobs:
        return set()
    finished = session.scalars(
        update(Job)
        .where(_as_read(jobs))
        .values(state="done", updated_at=at, last_error=None)
        .returning(Job.id)
    )
    return set(finished)


def fail_job(
    session: Session, job: PendingJob, error: str, *, at: datetime, max_attempts: int = 5
) -> bool:
    """Record a failed attempt; after ``max_attempts`` the job stays ``failed`` for a person.

    Only if the job is still pending as it was read; returns whether it was.
    """
    attempts = job.attempts + 1
    result = session.execute(
        update(Job)
        .where(_as_read([job]))
        .values(
            attempts=attempts,
            last_error=error[:2000],
            updated_at=at,
            state="failed" if attempts >= max_attempts else "pending",
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
