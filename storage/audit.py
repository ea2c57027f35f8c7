"""The audit log: who did what, when, and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from storage.schema import AuditEntry


def record(
    session: Session,
    *,
    actor: str,
    origin: str,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime,
) -> None:
    """Append one entry; never put secrets or a customer's personal data in ``details``."""
    session.add(
        AuditEntry(
            at=at, actor=actor, origin=origin, action=action, target=target, details=details or {}
        )
    )
