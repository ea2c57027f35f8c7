"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests read ``EARFUL_TEST_POSTGRES_URL``; without it they skip on a laptop and
fail in CI (``CI=true``), where `.ci/run` provides the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from support import PLAYBOOKS

from storage.database import Database, normalise_url

POSTGRES_ENV = "EARFUL_TEST_POSTGRES_URL"
FIXTURES = Path(__file__).parent / "fixtures"


def _postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set: CI must run the PostgreSQL tests")
        pytest.skip(f"{POSTGRES_ENV} not set; PostgreSQL tests skipped (required in CI)")
    return normalise_url(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'earful.db'}"
        return
    base = _postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A database migrated to the newest revision."""
    db = Database(url=database_url)
    db.upgrade()
    yield db
    db.dispose()


Earful = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment for the CLI, with its own data directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EARFUL_")}
    clean["EARFUL_DATA_DIR"] = str(tmp_path / "data")
    clean["COLUMNS"] = "120"
    return clean


@pytest.fixture
def earful() -> Earful:
    """Runs the `earful` command to completion in a real subprocess."""

    def run(
        *args: str, env: dict[str, str], stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    """A directory holding `support.PLAYBOOKS`, the pipeline-level tests' playbook."""
    directory = tmp_path / "playbooks"
    directory.mkdir()
    (directory / "care.yaml").write_text(PLAYBOOKS)
    return directory
