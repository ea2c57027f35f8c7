"""Corrections: agents' fixes of a mention's labels, and their export for evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.schema import Correction, InteractionRow

FIELDS = ("sentiment", "intent", "priority")


@dataclass(frozen=True, slots=True)
class Exported:
    """One correction with the text it is about: a line of ``earful corrections export``."""

    interaction_id: int
    text: str
    field: str
    old: str | None
    new: str
    at: datetime


def record(
    session: Session,
    *,
    interaction_id: int,
    changes: Mapping[str, tuple[str | None, str]],
    agent: str,
    note: str | None,
    at: datetime,
) -> int:
    """Store one row per changed field (``field → (old, new)``); return how many."""
    for field, (old, new) in changes.items():
        if field not in FIELDS:
            raise ValueError(f"{field!r} is not a correctable field")
        session.add(
            Correction(
                interaction_id=interaction_id,
                field=field,
                old_value=old,
                new_value=new,
                agent=agent,
                at=at,
                note=note,
            )
        )
    session.flush()
    return len(changes)


def latest(session: Session, interaction_id: int) -> dict[str, str]:
    """The newest corrected value of each field of an interaction (fields never corrected are
    absent)."""
    rows = session.execute(
        select(Correction.field, Correction.new_value)
        .where(Correction.interaction_id == interaction_id)
        .order_by(Correction.at, Correction.id)
    ).tuples()
    return {field: value for field, value in rows}


def export(session: Session, *, batch: int = 500) -> Iterator[Exported]:
    """Every correction, oldest first, with its mention's text."""
    rows = session.execute(
        select(
            Correction.interaction_id,
            InteractionRow.text,
            Correction.field,
            Correction.old_value,
            Correction.new_value,
            Correction.at,
        )
        .join(InteractionRow, InteractionRow.id == Correction.interaction_id)
        .order_by(Correction.at, Correction.id)
        .execution_options(yield_per=batch)
    ).tuples()
    for interaction_id, text, field, old, new, at in rows:
        yield Exported(interaction_id, text, field, old, new, at)
