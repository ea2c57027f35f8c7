"""The durable pipeline, end to end through replay, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from support import TextLabels

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
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
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


class DuringClassify(TextLabels):
    """Labels from the text, after running ``meanwhile`` once, as another writer would."""

    def __init__(self, meanwhile: Callable[[], None]) -> None:
        self.meanwhile: Callable[[], None] | None = meanwhile

    def classify(self, batch: Sequence[tuple[Mention, ContactSnapshot]]) -> list[Classification]:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        return super().classify(batch)


def _customer(number: int, text: str) -> Mention:
    return Mention(
        platform=Platform.X,
        external_id=f"18700000000000{number:05d}",
        text=text,
        author=Author(handle=f"customer{number}"),
        created_at=NOW,
    )


def _care_pipeline(database: Database, playbooks: Path, classifier: TextLabels) -> Pipeline:
    return Pipeline(
        database=database,
        classifier=classifier,
        decider=PlaybookDecider(load_playbooks(playbooks), triage_channel="#earful-triage"),
        clock=lambda: NOW,
    )


def _job_of(session: Session, external_id: str) -> Job:
    job = session.scalar(
        select(Job)
        .join(InteractionRow, InteractionRow.id == Job.interaction_id)
        .where(InteractionRow.external_id == external_id)
    )
    assert job is not None
    return job


def test_sources_store_while_the_models_run(database: Database, playbooks: Path) -> None:
    """A source stores new mentions while the classifier runs, and the same pass handles them."""
    late = _customer(2, "my router is broken")
    pipeline = _care_pipeline(database, playbooks, DuringClassify(lambda: None))
    assert isinstance(pipeline.classifier, DuringClassify)
    pipeline.classifier.meanwhile = lambda: pipeline.ingest([late])
    pipeline.ingest([_customer(1, "my router is broken")])
    stats = pipeline.process_pending()
    assert (stats.processed, stats.failed, stats.effects) == (2, 0, 2)


def test_skips_a_mention_another_pass_finished_meanwhile(
    database: Database, playbooks: Path
) -> None:
    """Stores, routes and counts nothing for a mention whose job another process finished while the models ran."""
    taken, other = _customer(1, "my router is broken"), _customer(2, "my router is broken too")

    def finish_elsewhere() -> None:
        with database.transaction() as session:
            _job_of(session, taken.external_id).state = "done"

    pipeline = _care_pipeline(database, playbooks, DuringClassify(finish_elsewhere))
    pipeline.ingest([taken, other])
    stats = pipeline.process_pending()
    assert (stats.processed, stats.effects, stats.timers_armed) == (1, 1, 1)
    with database.transaction() as session:
        decided = session.execute(
            select(InteractionRow.external_id, InteractionRow.decision.is_not(None))
        ).all()
        cards = session.scalars(select(OutboxRow.idempotency_key)).all()
    assert dict(decided) == {taken.external_id: False, other.external_id: True}
    assert len(cards) == 1


def test_a_failure_after_another_pass_retried_the_job_is_not_counted_twice(
    database: Database, playbooks: Path
) -> None:
    """Leaves a job alone when another process recorded an attempt on it while the models ran."""
    broken = _customer(1, "my router is broken")

    def retried_elsewhere() -> None:
        with database.transaction() as session:
            _job_of(session, broken.external_id).attempts = 1

    pipeline = _care_pipeline(database, playbooks, DuringClassify(retried_elsewhere))
    pipeline.ingest([broken])
    stats = pipeline.process_pending()  # skipped by the first batch, judged by the second
    assert (stats.processed, stats.effects) == (1, 1)
    with database.transaction() as session:
        job = _job_of(session, broken.external_id)
        assert (job.state, job.attempts) == ("done", 1)


def test_arms_no_timer_for_a_conversation_answered_while_the_models_ran(
    database: Database, playbooks: Path
) -> None:
    """Posts the card but starts no SLA timer when an agent answered the conversation meanwhile."""
    mention = _customer(1, "my router is broken")

    def answered() -> None:
        with database.transaction() as session:
            conversation = session.scalar(
                select(Conversation).where(Conversation.thread_key == mention.external_id)
            )
            assert conversation is not None
            transition(session, conversation, ConversationState.RESPONDED, at=NOW)

    pipeline = _care_pipeline(database, playbooks, DuringClassify(answered))
    pipeline.ingest([mention])
    stats = pipeline.process_pending()
    assert (stats.processed, stats.effects, stats.timers_armed) == (1, 1, 0)


def test_a_retried_mention_does_not_count_itself_in_its_contact_history(
    database: Database, playbooks: Path
) -> None:
    """Judges a retried mention against its author's history without the mention itself."""
    seen: list[int] = []

    class FailsOnce(TextLabels):
        def classify(
            self, batch: Sequence[tuple[Mention, ContactSnapshot]]
        ) -> list[Classification]:
            seen.extend(contact.inbound_count for _, contact in batch)
            if len(seen) <= 2:  # the batch, then the mention alone
                raise RuntimeError("model exploded")
            return super().classify(batch)

    pipeline = _care_pipeline(database, playbooks, FailsOnce())
    pipeline.ingest([_customer(1, "my router is broken")])
    stats = pipeline.process_pending()
    assert (stats.processed, stats.failed) == (1, 1)
    assert seen == [0, 0, 0]  # its retry, too, finds no earlier message
