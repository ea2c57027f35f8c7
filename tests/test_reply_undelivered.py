"""A reply's delivery failing for good at the moment the pipeline threads it.

The failure (`replies.record_undelivered`, run by the deliverer's failure hook) and the
pipeline's threading of the reply run in two transactions at once, on two threads, on SQLite
and PostgreSQL; whichever commits first, the customer ends up awaiting an answer. A listener on
the engine's statements sets the interleaving: it signals a thread's first write, and can hold
a thread just after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from support import Clock, TextLabels, awaiting

from bot.models import Author, Direction, Mention, Platform
from bot.pipeline import Pipeline
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage import replies
from storage.database import Database
from storage.schema import InteractionRow

T0 = datetime(2026, 11, 4, 17, 40, tzinfo=UTC)
WRITES = ("INSERT", "UPDATE", "DELETE")
PATIENCE = 30.0  # seconds a thread may take before the test gives up on it


class Writes:
    """Watches the engine's statements: ``first[name]`` is set as the thread named ``name``
    starts its first write; the thread named ``hold`` waits after that write until released."""

    def __init__(self, names: tuple[str, ...], *, hold: str | None = None) -> None:
        self.first = {name: threading.Event() for name in names}
        self.hold = hold
        self.release = threading.Event()

    def before(self, *args: Any) -> None:
        """Engine event ``before_cursor_execute``."""
        name = threading.current_thread().name
        if name in self.first and args[2].lstrip().upper().startswith(WRITES):
            self.first[name].set()

    def after(self, *args: Any) -> None:
        """Engine event ``after_cursor_execute``."""
        name = threading.current_thread().name
        if name == self.hold and self.first[name].is_set() and not self.release.is_set():
            self.release.wait(PATIENCE)


@contextmanager
def watching(database: Database, writes: Writes) -> Iterator[Writes]:
    event.listen(database.engine, "before_cursor_execute", writes.before)
    event.listen(database.engine, "after_cursor_execute", writes.after)
    try:
        yield writes
    finally:
        writes.release.set()
        event.remove(database.engine, "before_cursor_execute", writes.before)
        event.remove(database.engine, "after_cursor_execute", writes.after)


class Worker(threading.Thread):
    """A named thread that keeps what its target raised, for the test to raise."""

    def __init__(self, name: str, target: Callable[[], object]) -> None:
        super().__init__(name=name, daemon=True)
        self.work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test by `finish`
            self.error = exc

    def finish(self) -> None:
        self.join(PATIENCE)
        assert not self.is_alive(), f"{self.name} is stuck"
        if self.error is not None:
            raise self.error


def _pipeline(database: Database, playbooks: Path) -> Pipeline:
    return Pipeline(
        database=database,
        classifier=TextLabels(),
        decider=PlaybookDecider(load_playbooks(playbooks), triage_channel="#care"),
        clock=Clock(T0),
    )


def _reply_logged(database: Database, playbooks: Path) -> tuple[Pipeline, int]:
    """A complaint judged (its conversation awaits a response, its SLA timer running), then an
    agent's reply stored as the workbench stores it, not yet threaded by the pipeline."""
    pipeline = _pipeline(database, playbooks)
    complaint = Mention(
        platform=Platform.X,
        external_id="1880000000000000001",
        text="my router is broken again",
        author=Author(handle="dana_cole", display_name="Dana Cole"),
        created_at=T0,
    )
    pipeline.ingest([complaint])
    pipeline.process_pending()
    pipeline.ingest(
        [
            Mention(
                platform=Platform.X,
                external_id=f"{replies.PENDING_ID}0001",
                text="Hi Dana, sorry about that. DM us?",
                author=Author(display_name="slack:U0AGENT"),
                created_at=T0 + timedelta(minutes=3),
                in_reply_to=complaint.external_id,
                direction=Direction.OUTBOUND,
            )
        ]
    )
    with database.transaction() as session:
        reply_id = session.scalars(
            select(InteractionRow.id).where(InteractionRow.direction == Direction.OUTBOUND.value)
        ).one()
    assert awaiting(database) == ("new", None, "pending")
    return pipeline, reply_id


def _fail(database: Database, reply_id: int) -> bool:
    with database.transaction() as session:
        return replies.record_undelivered(session, reply_id, "X refused it", at=T0)


def test_a_failure_recorded_while_the_pipeline_reads_the_reply_is_seen_by_it(
    database: Database, playbooks: Path
) -> None:
    """The failure is being recorded (not yet committed) as the pipeline takes the reply: the
    pipeline waits for it and does not mark the conversation responded."""
    pipeline, reply_id = _reply_logged(database, playbooks)
    with watching(database, Writes(("pipeline",))) as writes:
        worker = Worker("pipeline", pipeline.process_pending)
        with database.transaction() as session:
            reopened = replies.record_undelivered(session, reply_id, "X refused it", at=T0)
            assert not reopened  # not threaded yet: nothing to reopen
            worker.start()
            # The pipeline has read the reply and waits to write, behind the failure.
            assert writes.first["pipeline"].wait(PATIENCE)
            worker.join(0.5)
            assert worker.is_alive()
        worker.finish()
    assert awaiting(database) == ("new", None, "pending")
    with database.transaction() as session:
        reply = session.get(InteractionRow, reply_id)
        assert reply is not None
        assert reply.conversation_id is not None  # threaded: the history shows it
        assert reply.undelivered == "X refused it"


def test_a_failure_recorded_while_the_pipeline_threads_the_reply_reopens_its_conversation(
    database: Database, playbooks: Path
) -> None:
    """The pipeline is threading the reply (it has begun to write) when the failure comes: the
    failure waits for it, then finds the thread and reopens the conversation."""
    pipeline, reply_id = _reply_logged(database, playbooks)
    with watching(database, Writes(("pipeline", "failure"), hold="pipeline")) as writes:
        threading_ = Worker("pipeline", pipeline.process_pending)
        threading_.start()
        assert writes.first["pipeline"].wait(PATIENCE)  # and held just after that write
        failure = Worker("failure", lambda: _fail(database, reply_id))
        failure.start()
        assert writes.first["failure"].wait(PATIENCE)
        failure.join(0.5)
        assert failure.is_alive()  # it waits for the pipeline's transaction
        writes.release.set()
        threading_.finish()
        failure.finish()
    assert awaiting(database) == ("new", None, "pending")


def test_a_failure_after_the_reply_is_threaded_reopens_its_conversation(
    database: Database, playbooks: Path
) -> None:
    """Without overlap: the failure finds the thread."""
    pipeline, reply_id = _reply_logged(database, playbooks)
    pipeline.process_pending()
    assert awaiting(database)[0] == "responded"
    assert _fail(database, reply_id)
    assert awaiting(database) == ("new", None, "pending")
