"""The outbox: effects on the outside world, stored with the change that caused them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.schema import OutboxRow
from storage.sql import insert_for


@dataclass(frozen=True, slots=True)
class Effect:
    """One outbox row due for delivery."""

    id: int
    idempotency_key: str
    kind: str
    ordering_key: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


def enqueue_all(session: Session, effects: Sequence[Mapping[str, Any]], *, at: datetime) -> None:
    """Store effects (idempotency_key, kind, ordering_key, payload); each key only once."""
    if not effects:
        return
    rows = [
        {**effect, "state": "pending", "attempts": 0, "next_attempt_at": at, "created_at": at}
        for effect in effects
    ]
    session.execute(
        insert_for(session, OutboxRow).on_conflict_do_nothing(index_elements=["idempotency_key"]),
        rows,
    )


def _heads() -> Any:
    """The oldest pending effect of each ordering key."""
    first_ids = (
        select(func.min(OutboxRow.id))
        .where(OutboxRow.state == "pending")
        .group_by(OutboxRow.ordering_key)
    )
    return select(OutboxRow).where(OutboxRow.id.in_(first_ids))


def due(
    session: Session, *, now: datetime, limit: int = 1000, runs: Collection[str] = ()
) -> list[Effect]:
    """The effects to deliver now: the oldest pending effect of each ordering key, if it is due.

    A later effect of a conversation waits for the earlier one, even when the earlier one is
    backing off, so messages of one conversation keep their order. A head whose kind is in
    ``runs`` comes with the due effects of its ordering key that directly follow it and are of
    its kind (at most `RUN_LIMIT` in all), right after it: a sink may deliver them as one.
    """
    ready = list(
        session.scalars(
            _heads().where(OutboxRow.next_attempt_at <= now).order_by(OutboxRow.id).limit(limit)
        )
    )
    followers = _followers(session, [row for row in ready if row.kind in runs], now=now)
    return [_effect(row) for head in ready for row in (head, *followers.get(head.ordering_key, ()))]


# The most effects of one ordering key `due` hands out at once (the head included).
RUN_LIMIT = 50


def _followers(
    session: Session, heads: Sequence[OutboxRow], *, now: datetime
) -> dict[str, list[OutboxRow]]:
    """Per head, the due pending effects of its kind that directly follow it in its key."""
    if not heads:
        return {}
    rows = session.scalars(
        select(OutboxRow)
        .where(
            OutboxRow.state == "pending",
            OutboxRow.ordering_key.in_([head.ordering_key for head in heads]),
            OutboxRow.id.not_in([head.id for head in heads]),
        )
        .order_by(OutboxRow.id)
    )
    kind_of = {head.ordering_key: head.kind for head in heads}
    runs: dict[str, list[OutboxRow]] = {key: [] for key in kind_of}
    ended: set[str] = set()
    for row in rows:
        key = row.ordering_key
        if key in ended:
            continue
        if row.kind != kind_of[key] or row.next_attempt_at > now or len(runs[key]) + 1 >= RUN_LIMIT:
            ended.add(key)
            continue
        runs[key].append(row)
    return runs


def _effect(row: OutboxRow) -> Effect:
    return Effect(
        id=row.id,
        idempotency_key=row.idempotency_key,
        kind=row.kind,
        ordering_key=row.ordering_key,
        payload=row.payload,
        attempts=row.attempts,
        created_at=row.created_at,
    )


def next_due_at(session: Session) -> datetime | None:
    """When the next deliverable effect becomes due, None if nothing is pending."""
    heads = _heads().subquery()
    return session.scalar(select(func.min(heads.c.next_attempt_at)))


def mark_delivered(session: Session, effect_ids: Sequence[int], *, at: datetime) -> None:
    """The effects reached the outside world (one statement for all)."""
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_(effect_ids))
        .values(state="delivered", delivered_at=at, last_error=None)
    )


def mark_retry(
    session: Session, effects: Sequence[Effect], error: str, *, at: datetime, delay: float
) -> None:
    """A transient failure of these effects: try again after ``delay`` seconds."""
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_([effect.id for effect in effects]))
        .values(
            attempts=OutboxRow.attempts + 1,
            last_error=error[:2000],
            next_attempt_at=at + timedelta(seconds=delay),
        )
    )


def mark_failed(session: Session, effect: Effect, error: str) -> None:
    """A permanent failure: stop retrying and keep the reason for a person to see."""
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == effect.id)
        .values(state="failed", attempts=effect.attempts + 1, last_error=error[:2000])
    )


def retry_failed(session: Session, *, at: datetime, kind: str | None = None) -> list[Effect]:
    """Put failed effects (of ``kind``, if given) back in line, due now; return them."""
    stmt = update(OutboxRow).where(OutboxRow.state == "failed")
    if kind is not None:
        stmt = stmt.where(OutboxRow.kind == kind)
    stmt = stmt.values(state="pending", attempts=0, next_attempt_at=at).returning(OutboxRow)
    return [_effect(row) for row in session.scalars(stmt)]


def failed(session: Session) -> list[tuple[int, str, str, str | None]]:
    """Failed effects, oldest first: (id, kind, ordering key, reason)."""
    rows = session.execute(
        select(OutboxRow.id, OutboxRow.kind, OutboxRow.ordering_key, OutboxRow.last_error)
        .where(OutboxRow.state == "failed")
        .order_by(OutboxRow.id)
    )
    return [(row.id, row.kind, row.ordering_key, row.last_error) for row in rows]
