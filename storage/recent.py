"""Recent judged mentions, for volume (spike) triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.schema import InteractionRow


def judged_between(
    session: Session, start: datetime, end: datetime
) -> list[tuple[datetime, dict[str, Any]]]:
    """(created_at, classification) of inbound judged mentions created in [start, end]."""
    rows = session.execute(
        select(InteractionRow.created_at, InteractionRow.classification).where(
            InteractionRow.direction == "inbound",
            InteractionRow.classification.is_not(None),
            InteractionRow.created_at >= start,
            InteractionRow.created_at <= end,
        )
    )
    return [(row.created_at, row.classification) for row in rows]
