"""The durable pipeline, end to end through replay, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import build, build_decider
from bot.config import load_settings
from bot.delivery import Deliverer
from bot.errors import PipelineError, RetryLater
from bot.models import (
    Author,
    Classification,
    ContactSnapshot,
    ConversationState,
    Mention,
    Platform,
    now_utc,
)
from bot.pipeline import Pipeline
from bot.replay import ReplayReport, replay
from handlers.crm_import import read_crm_csv
from handlers.file_import import read_file
from storage import contacts, status
from storage.conversations import transition
from storage.database import Database
from storage.outbox import Effect
from storage.schema import Contact, Conversation, InteractionRow, Job, OutboxRow

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


class RecordingSink:
    """Keeps every delivered effect, in delivery order."""

    def __init__(self) -> None:
        self.delivered: list[Effect] = []

    def deliver(self, effect: Effect) -> None:
        self.delivered.append(effect)


def _replay(
    database: Database, path: Path, sink: RecordingSink, *, dry_run: bool = False
) -> ReplayReport:
    # The pass-through classifier: these tests are about storage, threading and delivery.
    settings = load_settings(environ={}, database_url=database.url, classifier="none")
    services = build(settings=settings, team_sink=sink, dry_run=dry_run, database=database)
    with path.open("rb") as stream:
        records = read_file(path, stream, max_text_chars=20_000, received_at=NOW)
        return replay(
            records,
            pipeline=services.pipeline,
            deliverer=None if dry_run else services.deliverer,
            source=f"replay:{path.name}",
            batch_size=2,
        )


def _import_crm(database: Database) -> None:
    with (FIXTURES / "crm" / "customers.csv").open("rb") as stream:
        records, errors = read_crm_csv(stream)
    assert errors == []
    with database.transaction() as session:
        contacts.import_crm_records(session, records, at=NOW)


def test_replay_threads_mentions_and_replies(database: Database) -> None:
    """Threads a reply chain into one conversation and marks it responded at the agent's reply."""
    report = _replay(database, FIXTURES / "replay" / "thread.jsonl", RecordingSink())
    assert (report.stored, report.outbound_logged, report.failed) == (6, 1, 0)
    with database.transaction() as session:
        x_thread = session.scalar(
            select(Conversation).where(Conversation.thread_key == "1853000000000000001")
        )
        assert x_thread is not None
        assert (
            x_thread.state == ConversationState.NEW.value
        )  # the customer wrote again after the reply
        assert x_thread.first_response_at == datetime(2026, 11, 2, 8, 31, tzinfo=UTC)
        members = session.scalars(
            select(InteractionRow.external_id).where(InteractionRow.conversation_id == x_thread.id)
        ).all()
        assert sorted(members) == [f"185300000000000000{i}" for i in (1, 2, 3)]
        telegram = session.scalars(
            select(InteractionRow.conversation_id).where(InteractionRow.platform == "telegram")
        ).all()
        assert len(set(telegram)) == 1
        assert session.scalar(select(func.count()).select_from(Conversation)) == 3


def test_replay_twice_stores_every_mention_once(database: Database) -> None:
    """Replaying the same file again stores nothing new and sends no second card."""
    sink = RecordingSink()
    first = _replay(database, FIXTURES / "replay" / "thread.jsonl", sink)
    second = _replay(database, FIXTURES / "replay" / "thread.jsonl", sink)
    assert (first.stored, second.stored, second.duplicates) == (6, 0, 6)
    assert len(sink.delivered) == 5  # one card per inbound mention, none for the agent reply
    assert len({e.idempotency_key for e in sink.delivered}) == 5
    with database.transaction() as session:
        counts = status.counts(session, now=now_utc())
        assert counts.mentions == 5
        assert counts.interactions == {"inbound": 5, "outbound": 1}
        assert counts.jobs_pending == counts.outbox_pending == 0
        assert counts.checkpoints == {"replay:thread.jsonl": "6"}


def test_authors_resolve_to_crm_contacts(database: Database) -> None:
    """Matches X and Telegram authors to imported CRM contacts by handle, and learns their user ids."""
    _import_crm(database)
    sink = RecordingSink()
    _replay(database, FIXTURES / "replay" / "thread.jsonl", sink)
    with database.transaction() as session:
        maya = session.scalar(select(Contact).where(Contact.name == "Maya Okafor"))
        elena = session.scalar(select(Contact).where(Contact.name == "Elena Varga"))
        assert maya is not None
        assert elena is not None
        by_contact = dict(
            session.execute(select(InteractionRow.external_id, InteractionRow.contact_id)).all()
        )
        assert by_contact["1853000000000000001"] == maya.id
        assert (
            by_contact["1853000000000000002"] == maya.id
        )  # the agent's reply is logged on her history
        assert by_contact["-1001:17"] == elena.id
        # The blog commenter gives no handle or id; the brand account is not a contact.
        assert session.scalar(select(func.count()).select_from(Contact)) == 3
        snap = contacts.snapshots(session, [maya.id])[maya.id]
    assert snap.from_crm
    assert snap.plan == "basic"
    assert snap.inbound_count == 2
    cards = {e.payload["mention"]["external_id"]: e.payload for e in sink.delivered}
    first, follow_up = cards["1853000000000000001"], cards["1853000000000000003"]
    assert first["contact"]["name"] == "Maya Okafor"
    assert first["contact"]["lifetime_value"] == "640.00"
    assert (first["contact"]["inbound_count"], follow_up["contact"]["inbound_count"]) == (0, 1)


def test_mentions_are_marked_unclassified_and_sent_to_triage(database: Database) -> None:
    """With the classifier turned off, says so on every card instead of judging without labels."""
    sink = RecordingSink()
    _replay(database, FIXTURES / "replay" / "thread.jsonl", sink)
    for effect in sink.delivered:
        assert effect.payload["classification"]["classified"] is False
        assert effect.payload["classification"]["sentiment"] is None
        assert effect.payload["decision"]["action"] is None
        assert effect.payload["decision"]["channel"] == "#earful-triage"
        assert effect.payload["decision"]["reasons"][0]["factor"] == "classification"
    with database.transaction() as session:
        stored = session.scalars(
            select(InteractionRow.classification).where(InteractionRow.direction == "inbound")
        ).all()
    assert all(c is not None and c["classified"] is False for c in stored)


def test_dry_run_stores_and_judges_but_sends_nothing(database: Database) -> None:
    """A dry run stores mentions and decisions but leaves no effect for the outside world."""
    sink = RecordingSink()
    report = _replay(database, FIXTURES / "replay" / "thread.jsonl", sink, dry_run=True)
    assert report.stored == 6
    assert sum(report.routed.values()) == 5
    assert sink.delivered == []
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 0
        assert session.scalar(select(func.count()).where(InteractionRow.decision.is_not(None))) == 5


class FailsOnWord:
    """A fake classifier that fails for any mention containing a word."""

    name = "fails-on-word"

    def __init__(self, word: str) -> None:
        self.word = word

    def classify(self, batch: Sequence[tuple[Mention, ContactSnapshot]]) -> list[Classification]:
        if any(self.word in mention.text for mention, _ in batch):
            raise RuntimeError("model exploded")
        return [Classification.unclassified() for _ in batch]


def test_one_failing_mention_does_not_stop_the_others(database: Database) -> None:
    """Records the failure with its interaction and processes the rest of the batch."""
    pipeline = Pipeline(
        database=database,
        classifier=FailsOnWord("Brakes"),
        decider=build_decider(load_settings({}, triage_channel="#triage")),
        batch_size=50,
        clock=lambda: NOW,
    )
    mentions = [
        Mention(
            platform=Platform.BLOG,
            external_id=str(i),
            text=text,
            author=Author(display_name="reader"),
            created_at=NOW,
        )
        for i, text in enumerate(["fine post", "Brakes failed", "another fine post"])
    ]
    assert pipeline.ingest(mentions) == 3
    stats = pipeline.process_pending()
    assert stats.routed["#triage"] == 2
    assert stats.failed == 5  # the bad one is retried up to five times, then left for a person
    with database.transaction() as session:
        failed = session.execute(
            select(Job.state, Job.last_error, Job.attempts).where(Job.state != "done")
        ).all()
        effects = session.scalar(select(func.count()).select_from(OutboxRow))
    assert [(state, attempts) for state, _, attempts in failed] == [("failed", 5)]
    assert "model exploded" in failed[0][1]
    assert effects == 2


def test_outbox_keeps_conversation_order_through_retries(database: Database) -> None:
    """Delivers a conversation's cards in order even when the first one must wait and retry."""

    class FlakyFirst:
        def __init__(self) -> None:
            self.delivered: list[str] = []
            self.refused = 0

        def deliver(self, effect: Effect) -> None:
            if (
                effect.payload["mention"]["external_id"] == "1853000000000000001"
                and self.refused < 2
            ):
                self.refused += 1
                raise RetryLater("rate limited", retry_after=0)
            self.delivered.append(effect.payload["mention"]["external_id"])

    sink = FlakyFirst()
    settings = load_settings(environ={}, database_url=database.url, classifier="none")
    services = build(settings=settings, team_sink=sink, database=database)
    path = FIXTURES / "replay" / "thread.jsonl"
    with path.open("rb") as stream:
        records = read_file(path, stream, max_text_chars=20_000, received_at=NOW)
        report = replay(
            records, pipeline=services.pipeline, deliverer=None, source="t", batch_size=10
        )
    assert report.stored == 6
    deliverer = Deliverer(database=database, sinks={"card": sink}, sleep=lambda _s: None)
    stats = deliverer.drain()
    assert (stats.delivered, stats.retried) == (5, 2)
    x_cards = [i for i in sink.delivered if i.startswith("1853")]
    assert x_cards == ["1853000000000000001", "1853000000000000003"]


def test_conversation_life_cycle_rules(database: Database) -> None:
    """Allows new → assigned → responded → resolved, reopens on a new message, refuses resolved → assigned."""
    with database.transaction() as session:
        conversation = Conversation(
            id=1,
            platform="x",
            thread_key="1",
            state="new",
            created_at=NOW,
            updated_at=NOW,
            last_activity_at=NOW,
        )
        transition(session, conversation, ConversationState.ASSIGNED, at=NOW)
        transition(session, conversation, ConversationState.RESPONDED, at=NOW)
        assert conversation.first_response_at == NOW
        later = datetime(2026, 11, 4, tzinfo=UTC)
        transition(session, conversation, ConversationState.RESOLVED, at=later)
        assert conversation.resolved_at == later
        with pytest.raises(PipelineError, match="cannot go from resolved to assigned"):
            transition(session, conversation, ConversationState.ASSIGNED, at=later)
        transition(session, conversation, ConversationState.NEW, at=later)
        assert conversation.resolved_at is None
        assert conversation.first_response_at == NOW


def test_known_customer_turning_negative_is_flagged(database: Database) -> None:
    """With the shipped classifiers, a premium customer's first complaint after weeks of praise carries a deviation signal."""
    _import_crm(database)
    sink = RecordingSink()
    settings = load_settings(environ={}, database_url=database.url)
    services = build(settings=settings, team_sink=sink, database=database)
    path = FIXTURES / "replay" / "elena_turns.jsonl"
    with path.open("rb") as stream:
        records = read_file(path, stream, max_text_chars=20_000, received_at=NOW)
        replay(
            records,
            pipeline=services.pipeline,
            deliverer=services.deliverer,
            source="t",
            batch_size=1,
        )
    cards = [e.payload for e in sink.delivered]
    assert [c["classification"]["sentiment"]["label"] for c in cards] == ["positive"] * 3 + [
        "negative"
    ]
    last = cards[-1]
    assert last["classification"]["value"]["tier"] == "vip"
    assert last["classification"]["value"]["deviation"] == "turning negative"
    assert last["contact"]["past_sentiment"] == [3, 0, 0]
    assert cards[0]["classification"]["value"]["deviation"] is None
