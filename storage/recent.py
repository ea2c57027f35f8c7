"""Recent judged mentions, for volume (spike) triggers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.schema import InteractionRow


def similar_between(session: Session, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """(created_at, similarity key) of inbound judged mentions created in [start, end]; those
    without a key (unclassified) are left out."""
    rows = session.execute(
        select(InteractionRow.created_at, InteractionRow.similarity_key).where(
            InteractionRow.direction == "inbound",
            InteractionRow.similarity_key.is_not(None),
            InteractionRow.created_at >= start,
            InteractionRow.created_at <= end,
        )
    )
    return [(row.created_at, str(row.similarity_key)) for row in rows]
