"""Schema migrations on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from bot.errors import StorageError
from storage.database import Database, alembic_config
from storage.schema import Base, Contact, InteractionRow


def _revisions() -> list[str]:
    """Every revision from the first to the head."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_upgrade_creates_the_schema_the_models_describe(database_url: str) -> None:
    """Upgrades an empty database to the head, and the result matches the models exactly."""
    db = Database(url=database_url)
    before, after = db.upgrade()
    assert before is None
    assert after == Database.head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    db.dispose()


def test_upgrade_from_each_previous_revision_keeps_data(database_url: str) -> None:
    """Upgrades a database at the previous revision without losing what it held."""
    revisions = _revisions()
    assert len(revisions) >= 2
    db = Database(url=database_url)
    db.upgrade(revisions[0])
    assert db.current_revision() == revisions[0]
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with db.transaction() as session:
        session.add(Contact(name="Elena Varga", origin="crm", created_at=at, updated_at=at))
    for revision in revisions[1:]:
        db.upgrade(revision)
        assert db.current_revision() == revision
    with db.transaction() as session:
        assert session.scalar(select(Contact.name)) == "Elena Varga"
        assert session.scalar(select(func.count()).select_from(InteractionRow)) == 0
    db.dispose()


def test_stale_server_database_is_refused_and_sqlite_is_upgraded(database_url: str) -> None:
    """A PostgreSQL database behind the code must be upgraded on purpose; a SQLite file is upgraded in place."""
    db = Database(url=database_url)
    db.upgrade(_revisions()[0])
    if db.is_sqlite:
        db.ensure_ready()
        assert db.current_revision() == Database.head_revision()
    else:
        with pytest.raises(StorageError, match="earful db upgrade"):
            db.ensure_ready()
    db.dispose()


def test_downgrade_to_empty(database: Database) -> None:
    """Every migration can be undone, down to an empty database."""
    config = alembic_config()
    with database.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert database.current_revision() is None
