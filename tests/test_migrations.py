"""Schema migrations on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
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


def test_upgrade_to_0009_keys_mentions_judged_before_it(database_url: str) -> None:
    """Mentions judged before the similarity key had a column get theirs from their stored
    classification, so a spike that began before the upgrade is still counted after it."""
    db = Database(url=database_url)
    db.upgrade("0008")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    interactions = sa.table(
        "interactions",
        *(sa.column(name) for name in ("platform", "external_id", "direction", "text")),
        sa.column("author", sa.JSON),
        sa.column("raw", sa.JSON),
        sa.column("classification", sa.JSON),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("received_at", sa.DateTime(timezone=True)),
    )
    labels = {
        "1": {"classified": True, "intent": {"label": "complaint", "score": 0.9}, "flags": []},
        "2": {"classified": True, "intent": None, "flags": ["security", "outage"]},
        "3": {"classified": False, "intent": None, "flags": []},
        "4": None,
    }
    with db.engine.begin() as conn:
        conn.execute(
            interactions.insert(),
            [
                {
                    "platform": "x",
                    "external_id": external_id,
                    "direction": "inbound",
                    "text": "the app is down",
                    "author": {"handle": "dana"},
                    "raw": {},
                    "classification": classification,
                    "created_at": at,
                    "received_at": at,
                }
                for external_id, classification in labels.items()
            ],
        )
    db.upgrade("0009")
    with db.transaction() as session:
        keys = dict(
            session.execute(select(InteractionRow.external_id, InteractionRow.similarity_key))
            .tuples()
            .all()
        )
    assert keys == {"1": "intent:complaint", "2": "flags:outage,security", "3": None, "4": None}
    db.dispose()
