"""The database: engine, transactions and schema migrations. The only place that opens sessions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def normalise_url(url: str) -> str:
    """Pick the drivers Earful ships with: psycopg 3 for PostgreSQL, the stdlib for SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database URL is not valid: {url.split('@')[-1]!r}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def alembic_config() -> Config:
    """Alembic configuration pointing at Earful's migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class Database:
    """An engine plus the transactions and migrations Earful runs on it."""

    def __init__(self, *, url: str, echo: bool = False) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(self.url, echo=echo, future=True)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        """The URL with any password hidden, fit for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error."""
        with self._sessions.begin() as session:
            yield session

    def current_revision(self) -> str | None:
        """The schema revision the database is at, None for an empty database."""
        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            raise StorageError(f"cannot open database {self.display_url}: {exc.orig}") from None

    @staticmethod
    def head_revision() -> str:
        """The newest revision this version of Earful knows."""
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert head is not None  # noqa: S101 - the package always ships migrations
        return head

    def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Create or migrate the schema; returns the revisions before and after."""
        before = self.current_revision()
        config = alembic_config()
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        return before, self.current_revision()

    def ensure_ready(self) -> None:
        """Make the schema usable: migrate an embedded SQLite file, refuse a stale server database.

        SQLite is one process's private file, so upgrading it in place is what a user expects;
        a shared PostgreSQL database is migrated only on purpose, with ``earful db upgrade``.
        """
        current, head = self.current_revision(), self.head_revision()
        if current == head:
            return
        if self.is_sqlite:
            log.info("upgrading SQLite schema from %s to %s", current, head)
            self.upgrade()
            return
        raise StorageError(
            f"database {self.display_url} is at revision {current or 'empty'}, "
            f"this Earful needs {head}: run `earful db upgrade`"
        )

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
