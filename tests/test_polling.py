"""The poller: what it stores, when it polls next, and what a failing source costs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support import Clock

from bot.errors import ConfigError, SourceError
from bot.models import Author, Mention, Platform
from bot.polling import BACKOFF_MAX, Intake, Poller
from bot.sources import Fetched, Rejected, load_sources
from storage import ingest, sources
from storage.database import Database
from storage.schema import InteractionRow, SourceReject

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _mention(n: int) -> Mention:
    return Mention(
        platform=Platform.BLOG,
        external_id=f"entry-{n}",
        text=f"post {n} about the product",
        author=Author(display_name="A. Writer"),
        created_at=START,
    )


@dataclass
class ScriptedSource:
    """A source whose fetches answer from a script: a `Fetched` or an exception each."""

    script: list[Fetched | Exception]
    name: str = "feed:test"
    interval: float = 60.0
    daily_read_budget: int | None = None
    calls: list[tuple[str | None, int | None]] = field(default_factory=list)

    def fetch(self, checkpoint: str | None, *, read_budget: int | None) -> Fetched:
        self.calls.append((checkpoint, read_budget))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def describe(self) -> list[str]:
        return [self.name]

    def check(self) -> None:
        return None


def _poller(database: Database, source: ScriptedSource, clock: Clock) -> Poller:
    return Poller(
        source=source, intake=Intake(database=database, clock=clock), rng=random.Random(1)
    )


def _stored(database: Database) -> int:
    with database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(InteractionRow)) or 0)


def test_stores_mentions_with_their_checkpoint_and_resumes_from_it(database: Database) -> None:
    """Stores a fetch's mentions and checkpoint together and starts the next fetch there."""
    clock = Clock(START)
    source = ScriptedSource(
        [
            Fetched(mentions=(_mention(1), _mention(2)), checkpoint="2"),
            Fetched(mentions=(_mention(2), _mention(3)), checkpoint="3"),
        ]
    )
    poller = _poller(database, source, clock)
    assert poller.poll() == START + timedelta(seconds=60)
    poller.poll()
    assert [checkpoint for checkpoint, _ in source.calls] == [None, "2"]
    assert _stored(database) == 3
    with database.transaction() as session:
        assert ingest.read_checkpoint(session, "feed:test") == "3"


def test_keeps_rejected_payloads_with_their_reason(database: Database) -> None:
    """Records a malformed payload with its reason and still stores the good mentions."""
    clock = Clock(START)
    bad = Rejected("entry has no id, link or title", {"title": ""})
    source = ScriptedSource([Fetched(mentions=(_mention(1),), checkpoint="1", rejected=(bad,))])
    _poller(database, source, clock).poll()
    assert _stored(database) == 1
    with database.transaction() as session:
        row = session.scalars(select(SourceReject)).one()
        assert (row.source, row.reason, row.raw) == ("feed:test", bad.reason, {"title": ""})
        assert sources.rejects_by_source(session) == {"feed:test": 1}


def test_backs_off_exponentially_and_recovers(database: Database) -> None:
    """Waits longer after each failure, up to five minutes, and returns to the interval after."""
    clock = Clock(START)
    failures: list[Fetched | Exception] = [SourceError("HTTP 503") for _ in range(12)]
    source = ScriptedSource([*failures, Fetched()])
    poller = _poller(database, source, clock)
    waits = [(poller.poll() - START).total_seconds() for _ in range(12)]
    for attempt, wait in enumerate(waits):
        ceiling = min(BACKOFF_MAX, 2.0**attempt)
        assert ceiling / 2 <= wait <= ceiling, (attempt, wait)
    assert poller.poll() == START + timedelta(seconds=60)
    assert poller.failures == 0


def test_waits_as_long_as_the_platform_asks(database: Database) -> None:
    """Honours a Retry-After longer than the backoff."""
    clock = Clock(START)
    source = ScriptedSource([SourceError("HTTP 429", retry_after=120)])
    assert _poller(database, source, clock).poll() >= START + timedelta(seconds=120)


def test_polls_after_a_rate_limit_reset_and_not_before(database: Database) -> None:
    """Schedules the next poll at the reset time a rate-limited fetch reports."""
    clock = Clock(START)
    reset = START + timedelta(minutes=14)
    source = ScriptedSource([Fetched(mentions=(_mention(1),), not_before=reset)])
    assert _poller(database, source, clock).poll() == reset
    assert _stored(database) == 1


def test_survives_a_bug_in_a_handler(database: Database) -> None:
    """Backs off after an unexpected exception instead of stopping the source for good."""
    clock = Clock(START)
    source = ScriptedSource([KeyError("data"), Fetched(mentions=(_mention(1),))])
    poller = _poller(database, source, clock)
    assert poller.poll() < START + timedelta(seconds=5)
    poller.poll()
    assert _stored(database) == 1


def test_spends_the_daily_read_budget_then_waits_for_midnight(database: Database) -> None:
    """Passes what is left of the day's budget, and stops polling until UTC midnight once spent."""
    clock = Clock(START)
    source = ScriptedSource(
        [Fetched(mentions=(_mention(1),), reads=70), Fetched(reads=30)], daily_read_budget=100
    )
    poller = _poller(database, source, clock)
    poller.poll()
    poller.poll()
    assert [budget for _, budget in source.calls] == [100, 30]
    assert poller.poll() == datetime(2026, 11, 23, tzinfo=UTC)
    assert len(source.calls) == 2
    with database.transaction() as session:
        assert sources.reads_on(session, START.date()) == {"feed:test": 100}


def test_reads_a_sources_file(tmp_path: Path) -> None:
    """Reads every kind of source from one YAML file."""
    path = tmp_path / "sources.yaml"
    path.write_text(
        "x:\n  account: acme\n  searches: ['acme outage']\n  daily_read_budget: 5000\n"
        "telegram:\n  keywords: [acme]\n"
        "feeds:\n  - url: https://blog.example.com/feed.xml\n    keywords: [acme]\n"
        "webhook: {}\n"
    )
    config = load_sources(path)
    assert config.x is not None
    assert config.x.searches == ("acme outage",)
    assert config.telegram is not None
    assert str(config.feeds[0].url) == "https://blog.example.com/feed.xml"
    assert config.webhook is not None
    assert config.webhook.enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x:\n  intervall: 5\n", "x.intervall: Extra inputs are not permitted"),
        ("feeds:\n  - url: not a url\n", "feeds.0.url"),
        ("x: [1, 2\n", ":2: not valid YAML (expected ',' or ']'"),
        ("- x\n", "expected a mapping of sources"),
        ("x:\n  interval: 1\n", "x.interval: Input should be greater than or equal to 5"),
    ],
)
def test_refuses_a_bad_sources_file_with_the_field(tmp_path: Path, text: str, message: str) -> None:
    """Names the file, the field and the reason for a bad sources file."""
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="sources.yaml") as caught:
        load_sources(path)
    assert message in str(caught.value)
