"""SLA timers and incidents: a breach escalates once, a reply cancels, a restart loses nothing.

The pipeline, the timers and delivery run for real on SQLite and PostgreSQL; time is a
controllable clock. The classifier step is replaced by `support.TextLabels`, which reads the
labels from the text, so that each test states exactly which playbook rule a mention meets.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from support import PLAYBOOKS, Clock, TextLabels

from bot import effects
from bot.delivery import Deliverer
from bot.errors import DeliveryRejected, RetryLater
from bot.models import (
    Action,
    Author,
    Decision,
    Direction,
    EscalationStep,
    Mention,
    Platform,
    Priority,
)
from bot.pipeline import Pipeline
from bot.scheduler import SlaScheduler
from bot.sla import Breach, SlaTimers
from handlers.ticket_webhook import TicketWebhook
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage import replies, sla
from storage.database import Database
from storage.outbox import Effect
from storage.schema import AuditEntry, Incident, InteractionRow, OutboxRow, SlaTimer

T0 = datetime(2026, 11, 4, 17, 40, tzinfo=UTC)


def _pipeline(database: Database, playbooks: Path, clock: Clock) -> Pipeline:
    return Pipeline(
        database=database,
        classifier=TextLabels(),
        decider=PlaybookDecider(load_playbooks(playbooks), triage_channel="#earful-triage"),
        clock=clock,
    )


def _mention(
    number: int,
    text: str,
    at: datetime,
    *,
    outbound: bool = False,
    in_reply_to: str | None = None,
    thread: str | None = None,
) -> Mention:
    return Mention(
        platform=Platform.X,
        external_id=f"18600000000000{number:05d}",
        text=text,
        author=Author(handle="brand" if outbound else f"customer{number}", followers=120),
        created_at=at,
        conversation_id=thread,
        in_reply_to=in_reply_to,
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
    )


def _run(pipeline: Pipeline, *mentions: Mention) -> None:
    pipeline.ingest(list(mentions))
    pipeline.process_pending()


def _effects(database: Database, kind: str) -> list[OutboxRow]:
    with database.transaction() as session:
        rows = session.scalars(
            select(OutboxRow).where(OutboxRow.kind == kind).order_by(OutboxRow.id)
        )
        return list(rows)


def _timer(database: Database) -> SlaTimer:
    with database.transaction() as session:
        rows = list(session.scalars(select(SlaTimer)))
    assert len(rows) == 1
    return rows[0]


def _steps(breaches: list[Breach]) -> list[str]:
    return [b.description for b in breaches]


def test_breach_escalates_once_per_step_up_the_ladder(database: Database, playbooks: Path) -> None:
    """Nothing fires before the deadline; each step runs once, 15 minutes apart, then it stops."""
    clock = Clock(T0)
    pipeline = _pipeline(database, playbooks, clock)
    timers = SlaTimers(database=database, clock=clock)
    _run(pipeline, _mention(1, "my router is broken again", T0))
    assert _timer(database).due_at == T0 + timedelta(minutes=30)

    clock.now = T0 + timedelta(minutes=29, seconds=59)
    assert timers.fire_due() == []

    clock.now = T0 + timedelta(minutes=31)
    first = timers.fire_due()
    assert _steps(first) == ["conversation:1 step 1/3 notify #care-leads"]
    assert timers.fire_due() == []  # the same breach, checked again: nothing more
    assert timers.fire_due() == []

    clock.now = T0 + timedelta(minutes=46)
    assert _steps(timers.fire_due()) == ["conversation:1 step 2/3 mention @care-lead"]
    clock.now = T0 + timedelta(minutes=61)
    assert _steps(timers.fire_due()) == ["conversation:1 step 3/3 page on-call"]
    clock.now = T0 + timedelta(hours=5)
    assert timers.fire_due() == []
    assert _timer(database).state == sla.EXHAUSTED

    escalations = _effects(database, effects.ESCALATION)
    assert [(e.payload["action"], e.payload["target"]) for e in escalations] == [
        ("notify", "#care-leads"),
        ("mention", "@care-lead"),
        ("page", "on-call"),
    ]
    first_payload = escalations[0].payload
    assert first_payload["overdue_seconds"] == 60
    assert first_payload["priority"] == "P2"
    assert first_payload["mention"]["text"] == "my router is broken again"
    # The escalation follows the card in the conversation's delivery order.
    card = _effects(database, effects.CARD)[0]
    assert escalations[0].ordering_key == card.ordering_key
    assert escalations[0].id > card.id
    with database.transaction() as session:
        logged = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "sla.escalated").order_by(AuditEntry.id)
        ).all()
    assert [(a.target, a.details["step"], a.details["to"]) for a in logged] == [
        ("conversation:1", 1, "#care-leads"),
        ("conversation:1", 2, "@care-lead"),
        ("conversation:1", 3, "on-call"),
    ]


def test_a_reply_cancels_the_timer_and_a_new_message_rearms_it(
    database: Database, playbooks: Path
) -> None:
    """An agent's reply stops the timer; the customer writing again starts a fresh one."""
    clock = Clock(T0)
    pipeline = _pipeline(database, playbooks, clock)
    timers = SlaTimers(database=database, clock=clock)
    complaint = _mention(1, "my router is broken again", T0)
    _run(pipeline, complaint)

    clock.now = T0 + timedelta(minutes=10)
    reply = _mention(
        2, "Sorry about that! DM us", clock.now, outbound=True, in_reply_to=complaint.external_id
    )
    _run(pipeline, reply)
    timer = _timer(database)
    assert (timer.state, timer.cancel_reason) == (sla.CANCELLED, "responded")

    clock.now = T0 + timedelta(hours=3)
    assert timers.fire_due() == []
    assert _effects(database, effects.ESCALATION) == []

    again = _mention(3, "still broken", clock.now, in_reply_to=reply.external_id)
    _run(pipeline, again)
    timer = _timer(database)
    assert (timer.state, timer.generation, timer.step) == (sla.PENDING, 2, 0)
    assert timer.due_at == clock.now + timedelta(minutes=30)
    clock.now += timedelta(minutes=31)
    assert _steps(timers.fire_due()) == ["conversation:1 step 1/3 notify #care-leads"]
    assert timers.fire_due() == []


def test_reply_in_the_same_batch_as_the_mention_arms_nothing(
    database: Database, playbooks: Path
) -> None:
    """A history import with the complaint and its answer together leaves no timer running."""
    clock = Clock(T0 + timedelta(days=30))
    pipeline = _pipeline(database, playbooks, clock)
    complaint = _mention(1, "my router is broken again", T0)
    reply = _mention(
        2, "Fixed now?", T0 + timedelta(minutes=5), outbound=True, in_reply_to=complaint.external_id
    )
    _run(pipeline, complaint, reply)
    assert SlaTimers(database=database, clock=clock).pending() == []
    assert SlaTimers(database=database, clock=clock).fire_due() == []


def test_restart_between_arming_and_breach_loses_nothing_and_repeats_nothing(
    database: Database, playbooks: Path
) -> None:
    """Timers live in the database: a new process fires what fell due, and never a step twice."""
    clock = Clock(T0)
    _run(_pipeline(database, playbooks, clock), _mention(1, "my router is broken again", T0))
    database.dispose()  # the process stops with the timer pending

    restarted = Database(url=database.url)
    clock.now = T0 + timedelta(minutes=31)
    assert _steps(SlaTimers(database=restarted, clock=clock).fire_due()) == [
        "conversation:1 step 1/3 notify #care-leads"
    ]
    restarted.dispose()

    again = Database(url=database.url)  # and once more, still within the same step
    timers = SlaTimers(database=again, clock=clock)
    assert timers.fire_due() == []
    clock.now = T0 + timedelta(minutes=46)
    assert _steps(timers.fire_due()) == ["conversation:1 step 2/3 mention @care-lead"]
    assert len(_effects(again, effects.ESCALATION)) == 2
    again.dispose()


def test_a_stale_read_cannot_run_a_step_twice(database: Database, playbooks: Path) -> None:
    """Two schedulers that read the same due timer: only one claims the step."""
    clock = Clock(T0)
    _run(_pipeline(database, playbooks, clock), _mention(1, "my router is broken again", T0))
    with database.transaction() as session:
        (read,) = sla.due(session, now=T0 + timedelta(hours=1))
    with database.transaction() as session:
        assert sla.claim_step(session, read, at=T0 + timedelta(hours=1)) is True
    with database.transaction() as session:
        assert sla.claim_step(session, read, at=T0 + timedelta(hours=1)) is False


def test_dry_run_arms_no_timer(database: Database, playbooks: Path) -> None:
    """Backtesting a dump writes nothing for the outside world, escalations included."""
    clock = Clock(T0)
    pipeline = _pipeline(database, playbooks, clock)
    pipeline.dry_run = True
    _run(pipeline, _mention(1, "my router is broken again", T0))
    assert SlaTimers(database=database, clock=clock).pending() == []


def _outage(number: int, at: datetime) -> Mention:
    return _mention(number, f"network outage here too #{number}", at)


def test_outage_spike_becomes_one_incident_card_with_updates(
    database: Database, playbooks: Path
) -> None:
    """Below the spike each report gets a card; from the third on, one incident card and updates."""
    clock = Clock(T0)
    pipeline = _pipeline(database, playbooks, clock)
    minute = timedelta(minutes=1)
    _run(pipeline, _outage(1, T0), _outage(2, T0 + minute))
    _run(pipeline, *(_outage(n, T0 + n * minute) for n in range(3, 8)))  # one batch of five
    for n in range(8, 12):  # then one at a time
        _run(pipeline, _outage(n, T0 + n * minute))

    cards = _effects(database, effects.CARD)
    assert len(cards) == 2  # the two reports before the spike
    (opened,) = _effects(database, effects.INCIDENT)
    assert opened.payload["incident"]["reports"] == 5  # the whole first batch of the spike
    assert opened.payload["incident"]["channel"] == "#incidents"
    updates = _effects(database, effects.INCIDENT_UPDATE)
    assert [u.payload["incident"]["reports"] for u in updates] == [6, 7, 8, 9]
    assert {u.ordering_key for u in updates} == {opened.ordering_key}
    with database.transaction() as session:
        (incident,) = session.scalars(select(Incident)).all()
        members = session.scalars(
            select(InteractionRow.external_id).where(InteractionRow.incident_id == incident.id)
        ).all()
    assert (incident.key, incident.reports, incident.priority) == ("care/outage spike", 9, "P1")
    assert len(members) == 9
    # One timer for the incident, none for its members' conversations.
    timers = SlaTimers(database=database, clock=clock).pending()
    incident_timers = [t for t in timers if t.subject.startswith("incident:")]
    assert [t.subject for t in incident_timers] == [f"incident:{incident.id}"]
    assert len(timers) == 3  # the incident's and the two cards' before the spike


def test_reports_after_a_quiet_window_open_a_new_incident(
    database: Database, playbooks: Path
) -> None:
    """An incident collects reports while they keep coming; a burst hours later is a new one."""
    clock = Clock(T0)
    pipeline = _pipeline(database, playbooks, clock)
    minute = timedelta(minutes=1)
    _run(pipeline, *(_outage(n, T0 + n * minute) for n in range(1, 5)))
    later = T0 + timedelta(hours=3)
    _run(pipeline, *(_outage(n, later + n * minute) for n in range(5, 9)))
    opened = _effects(database, effects.INCIDENT)
    assert [o.payload["incident"]["reports"] for o in opened] == [2, 2]


def _incident(database: Database, playbooks: Path) -> tuple[Pipeline, Clock, list[Mention]]:
    """Four outage reports, an incident from the third; the clock 20 minutes on."""
    clock = Clock(T0)
    pipeline = _pipeline(database, playbooks, clock)
    reports = [_outage(n, T0 + timedelta(minutes=n)) for n in range(1, 5)]
    _run(pipeline, *reports)
    clock.now = T0 + timedelta(minutes=20)
    return pipeline, clock, reports


def test_a_reply_to_an_incident_report_cancels_the_incident_timer(
    database: Database, playbooks: Path
) -> None:
    """Answering the incident (in any report's conversation) stops its escalation."""
    pipeline, clock, reports = _incident(database, playbooks)
    _run(
        pipeline,
        _mention(
            9, "Engineers are on it", clock.now, outbound=True, in_reply_to=reports[3].external_id
        ),
    )
    clock.now = T0 + timedelta(hours=2)
    fired = SlaTimers(database=database, clock=clock).fire_due()
    assert [b.timer.subject for b in fired if b.timer.subject.startswith("incident:")] == []


def _incident_timer(database: Database) -> str:
    with database.transaction() as session:
        (state,) = session.scalars(
            select(SlaTimer.state).where(SlaTimer.incident_id.is_not(None))
        ).all()
        return state


def _fail_reply(database: Database, reply: Mention, at: datetime) -> bool:
    """The platform refused ``reply`` for good (what the deliverer's failure hook records)."""
    with database.transaction() as session:
        reply_id = session.scalars(
            select(InteractionRow.id).where(InteractionRow.external_id == reply.external_id)
        ).one()
        return replies.record_undelivered(session, reply_id, "X refused it", at=at)


def test_a_reply_to_an_incident_report_that_fails_for_good_resumes_the_incident_timer(
    database: Database, playbooks: Path
) -> None:
    """The reply that stopped the incident's escalation never reached the customer: the
    incident's timer runs again, and escalates when it is due."""
    pipeline, clock, reports = _incident(database, playbooks)
    reply = _mention(
        9, "Engineers are on it", clock.now, outbound=True, in_reply_to=reports[3].external_id
    )
    _run(pipeline, reply)
    assert _incident_timer(database) == sla.CANCELLED
    assert _fail_reply(database, reply, clock.now)
    assert _incident_timer(database) == sla.PENDING
    clock.now = T0 + timedelta(hours=2)
    fired = SlaTimers(database=database, clock=clock).fire_due()
    assert [b.timer.subject for b in fired if b.timer.subject.startswith("incident:")] != []


def test_an_incident_answered_in_another_report_stays_stopped_when_one_reply_fails(
    database: Database, playbooks: Path
) -> None:
    """Another report's conversation still has its answer: the incident is answered."""
    pipeline, clock, reports = _incident(database, playbooks)
    first, second = (
        _mention(n, "Engineers are on it", clock.now, outbound=True, in_reply_to=r.external_id)
        for n, r in ((9, reports[3]), (10, reports[2]))
    )
    _run(pipeline, first, second)
    assert _fail_reply(database, first, clock.now)  # its own conversation is reopened
    assert _incident_timer(database) == sla.CANCELLED


class _Hooks(BaseHTTPRequestHandler):
    """A local ticket system: records each POST and answers with the status the test sets."""

    received: list[tuple[dict[str, str], dict[str, object]]] = []
    status = 201

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), json.loads(body)))
        self.send_response(type(self).status)
        if type(self).status == 503:
            self.send_header("Retry-After", "7")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def ticket_server() -> Iterator[str]:
    _Hooks.received = []
    _Hooks.status = 201
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/ticket?token=s3cret"
    server.shutdown()
    server.server_close()


def test_ticket_step_posts_the_breach_to_the_webhook(
    database: Database, tmp_path: Path, ticket_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The "open a ticket" step POSTs JSON with an idempotency key; the URL's token is never logged."""
    directory = tmp_path / "ticketing"
    directory.mkdir()
    (directory / "care.yaml").write_text(
        PLAYBOOKS.replace("  - page: on-call", f"  - ticket: {ticket_server}").replace(
            '  - notify: "#care-leads"\n  - mention: "@care-lead"\n', ""
        )
    )
    clock = Clock(T0)
    _run(_pipeline(database, directory, clock), _mention(1, "my router is broken again", T0))
    clock.now = T0 + timedelta(minutes=31)
    assert _steps(SlaTimers(database=database, clock=clock).fire_due()) == [
        f"conversation:1 step 1/1 ticket {ticket_server}"
    ]
    seen: list[Effect] = []

    class TeamSurface:
        def deliver(self, effect: Effect) -> None:
            seen.append(effect)

    sinks = {kind: TeamSurface() for kind in effects.TEAM_KINDS}
    deliverer = Deliverer(
        database=database, sinks={**sinks, effects.TICKET: TicketWebhook()}, clock=clock
    )
    with caplog.at_level("DEBUG"):
        stats = deliverer.drain(max_wait=0)
    assert (stats.delivered, stats.failed) == (2, 0)  # the card, then the ticket
    assert [e.kind for e in seen] == [effects.CARD]
    ((headers, body),) = _Hooks.received
    assert body["event"] == "sla.escalation"
    assert body["action"] == "ticket"
    assert body["priority"] == "P2"
    assert headers["Idempotency-Key"].startswith("escalation:")
    assert "s3cret" not in caplog.text


def test_ticket_webhook_retries_on_503_and_gives_up_on_400(ticket_server: str) -> None:
    """Retry-After is honoured for a busy ticket system; a refused request is not retried."""
    effect = Effect(
        id=1,
        idempotency_key="escalation:1:1:0",
        kind=effects.TICKET,
        ordering_key="conversation:1",
        payload={"target": ticket_server, "action": "ticket"},
        attempts=0,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    _Hooks.status = 503
    with pytest.raises(RetryLater) as busy:
        TicketWebhook().deliver(effect)
    assert busy.value.retry_after == 7
    assert "s3cret" not in str(busy.value)
    _Hooks.status = 400
    with pytest.raises(DeliveryRejected, match="HTTP 400"):
        TicketWebhook().deliver(effect)


def test_apscheduler_fires_on_time_and_after_a_restart(database: Database) -> None:
    """With real time: a due timer fires once via APScheduler; one that fell due while no
    scheduler ran fires as soon as the next one starts."""
    breaches: list[Breach] = []
    fired = threading.Event()

    def heard(found: list[Breach]) -> None:
        breaches.extend(found)
        fired.set()

    def arm(number: int, due: datetime) -> None:
        with database.transaction() as session:
            row = InteractionRow(
                platform="x",
                external_id=str(number),
                direction="inbound",
                author={},
                text="my router is broken again",
                created_at=due,
                received_at=due,
                raw={},
            )
            session.add(row)
            session.flush()
            decision = Decision(
                action=Action.RESPOND,
                priority=Priority.P2,
                channel="#care",
                playbook="care",
                reasons=(),
                respond_by=due,
                escalation=(EscalationStep("notify", "#care-leads"),),
                escalate_after=timedelta(minutes=15),
            )
            sla.arm_all(
                session,
                [sla.Arming(f"conversation:{number}", None, None, row.id, decision)],
                at=datetime.now(UTC),
            )

    timers = SlaTimers(database=database)
    scheduler = SlaScheduler(
        timers=timers,
        scheduler=BackgroundScheduler(timezone=UTC),
        sweep=timedelta(seconds=30),
        on_breach=heard,
    )
    arm(1, datetime.now(UTC) + timedelta(seconds=1.5))  # due before the first sweep's horizon
    started = time.monotonic()
    scheduler.start()
    try:
        assert fired.wait(10), "the timer did not fire"
        took = time.monotonic() - started
    finally:
        scheduler.scheduler.shutdown(wait=True)
    assert [b.timer.subject for b in breaches] == ["conversation:1"]
    assert 1.0 <= took < 5  # fired at its due time, not at start and not a sweep later

    # The process is down while the second timer falls due …
    breaches.clear()
    fired.clear()
    arm(2, datetime.now(UTC) + timedelta(seconds=0.2))
    time.sleep(0.5)
    restarted = SlaScheduler(
        timers=SlaTimers(database=database),
        scheduler=BackgroundScheduler(timezone=UTC),
        sweep=timedelta(seconds=30),
        on_breach=heard,
    )
    restarted.start()
    try:
        assert fired.wait(10), "the overdue timer did not fire after the restart"
        time.sleep(0.5)
    finally:
        restarted.scheduler.shutdown(wait=True)
    assert [b.timer.subject for b in breaches] == ["conversation:2"]  # and conversation:1 not again
