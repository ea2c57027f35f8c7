"""Dialect helpers shared by the repositories (SQLite and PostgreSQL spell upserts alike)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, entity: Any) -> Any:
    """An INSERT with ``on_conflict_do_nothing``/``_do_update`` for the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(entity)
    return sqlite.insert(entity)
