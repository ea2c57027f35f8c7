"""What sources leave behind besides mentions: rejected payloads and posts read per day."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.schema import SourceReads, SourceReject
from storage.sql import insert_for


def reject_all(
    session: Session, source: str, rejected: Iterable[tuple[str, Any]], *, at: datetime
) -> int:
    """Keep each (reason, raw payload) a source could not use; return how many."""
    rows = [
        SourceReject(source=source, reason=reason[:2000], raw=raw, at=at)
        for reason, raw in rejected
    ]
    session.add_all(rows)
    return len(rows)


def add_reads(session: Session, source: str, day: date, reads: int) -> None:
    """Add ``reads`` posts read on ``day`` (UTC) to the source's count."""
    if reads <= 0:
        return
    stmt = insert_for(session, SourceReads).values(source=source, day=day, reads=reads)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["source", "day"],
            set_={"reads": SourceReads.reads + stmt.excluded.reads},
        )
    )


def reads_on(session: Session, day: date) -> dict[str, int]:
    """Posts read per source on ``day``."""
    rows = session.execute(
        select(SourceReads.source, SourceReads.reads).where(SourceReads.day == day)
    )
    return {source: reads for source, reads in rows}


def rejects_by_source(session: Session) -> dict[str, int]:
    """How many payloads each source has rejected, ever."""
    rows = session.execute(select(SourceReject.source, func.count()).group_by(SourceReject.source))
    return {source: int(count) for source, count in rows}
