"""The outbox: transient failures retried for a day, failed effects queued again by hand."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from support import Clock

from bot.delivery import Deliverer
from bot.errors import DeliveryRejected, RetryLater
from storage import outbox
from storage.database import Database
from storage.outbox import Effect

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
Earful = Callable[..., subprocess.CompletedProcess[str]]


class Flaky:
    """A sink that is down until ``up`` is set, like Slack during an outage."""

    def __init__(self) -> None:
        self.up = False
        self.delivered: list[str] = []

    def deliver(self, effect: Effect) -> None:
        if not self.up:
            raise RetryLater("HTTP 503 from Slack")
        self.delivered.append(effect.idempotency_key)


def _cards(database: Database, count: int, *, one_conversation: bool = True) -> None:
    """``count`` cards, all of one conversation or each opening its own."""
    with database.transaction() as session:
        outbox.enqueue_all(
            session,
            [
                {
                    "idempotency_key": f"card:{n}",
                    "kind": "card",
                    "ordering_key": "conversation:1" if one_conversation else f"conversation:{n}",
                    "payload": {"n": n},
                }
                for n in range(count)
            ],
            at=START,
        )


def _run_for(deliverer: Deliverer, clock: Clock, hours: float) -> None:
    end = clock.now + timedelta(hours=hours)
    while clock.now < end:
        deliverer.deliver_due()
        clock.now += timedelta(minutes=5)


def test_an_outage_of_hours_ends_with_every_card_delivered_in_order(database: Database) -> None:
    """Keeps retrying through a six-hour outage, then delivers every card once, in order."""
    clock = Clock(START)
    sink = Flaky()
    deliverer = Deliverer(database=database, sinks={"card": sink}, clock=clock)
    _cards(database, 3)
    _run_for(deliverer, clock, hours=6)
    assert sink.delivered == []
    sink.up = True
    _run_for(deliverer, clock, hours=0.5)
    assert sink.delivered == ["card:0", "card:1", "card:2"]


def test_gives_up_after_a_day_and_retries_when_asked(
    database: Database, earful: Earful, env: dict[str, str]
) -> None:
    """Fails an effect still undeliverable after 24 hours; `earful outbox retry` queues it again."""
    clock = Clock(START)
    sink = Flaky()
    deliverer = Deliverer(database=database, sinks={"card": sink}, clock=clock)
    _cards(database, 1)
    _run_for(deliverer, clock, hours=25)
    with database.transaction() as session:
        [(_, kind, _, reason)] = outbox.failed(session)
    assert kind == "card"
    assert reason is not None
    assert "HTTP 503 from Slack" in reason
    listed = earful("outbox", "failed", "--database", database.url, env=env)
    assert "HTTP 503 from Slack" in listed.stdout
    retried = earful("outbox", "retry", "--kind", "card", "--database", database.url, env=env)
    assert retried.returncode == 0, retried.stderr
    assert "1 failed effect(s) queued again" in retried.stdout
    sink.up = True
    clock.now = datetime.now(UTC) + timedelta(seconds=1)
    deliverer.deliver_due()
    assert sink.delivered == ["card:0"]


class Grouping:
    """A sink that sends up to ``per_go`` effects of one group at a time and refuses any group
    holding a ``bad`` effect, as Slack refuses a message with one invalid card."""

    def __init__(
        self,
        *,
        per_go: int,
        bad: set[str],
        runs: frozenset[str] = frozenset(),
        later: set[str] | None = None,
    ) -> None:
        self.per_go = per_go
        self.bad = bad
        self.runs = runs  # kinds whose successive effects of one key it takes as one
        self.later = later or set()  # effects it asks to retry when sent on their own
        self.goes: list[list[str]] = []

    def group_keys(self, effects: Sequence[Effect]) -> list[str | None]:
        return ["channel" if e.kind == "card" else e.ordering_key for e in effects]

    def deliver_group(self, group: Sequence[Effect]) -> int:
        keys = [e.idempotency_key for e in group[: self.per_go]]
        if self.bad & set(keys):
            raise DeliveryRejected("invalid_blocks")
        if len(keys) == 1 and keys[0] in self.later:
            raise RetryLater("Slack answered 503")
        self.goes.append(keys)
        return len(keys)

    def deliver(self, effect: Effect) -> None:
        self.deliver_group([effect])


def test_a_group_goes_out_in_as_few_goes_as_the_sink_needs(database: Database) -> None:
    """Seven due effects of one group, three at a time: three goes, in order, each once."""
    _cards(database, 7, one_conversation=False)
    sink = Grouping(per_go=3, bad=set())
    stats = Deliverer(database=database, sinks={"card": sink}, clock=Clock(START)).deliver_due()
    assert (stats.delivered, stats.retried, stats.failed) == (7, 0, 0)
    assert sink.goes == [["card:0", "card:1", "card:2"], ["card:3", "card:4", "card:5"], ["card:6"]]


def test_a_refused_group_is_tried_one_by_one_so_only_the_bad_effect_fails(
    database: Database,
) -> None:
    """The sink refuses the group holding card:2: each effect is then tried alone, card:2
    fails with the reason and the others are delivered."""
    _cards(database, 4, one_conversation=False)
    sink = Grouping(per_go=10, bad={"card:2"})
    stats = Deliverer(database=database, sinks={"card": sink}, clock=Clock(START)).deliver_due()
    assert (stats.delivered, stats.failed) == (3, 1)
    assert sink.goes == [["card:0"], ["card:1"], ["card:3"]]
    with database.transaction() as session:
        assert outbox.failed(session) == [(3, "card", "conversation:2", "invalid_blocks")]


def _updates(database: Database, count: int, *, then_a_card: bool = False) -> None:
    """``count`` updates of incident 1, in one ordering key, and maybe a card of the same key
    after them."""
    rows = [
        {
            "idempotency_key": f"update:{n}",
            "kind": "incident_update",
            "ordering_key": "incident:1",
            "payload": {"n": n},
        }
        for n in range(count)
    ]
    if then_a_card:
        rows.append(
            {
                "idempotency_key": "card:x",
                "kind": "card",
                "ordering_key": "incident:1",
                "payload": {},
            }
        )
    with database.transaction() as session:
        outbox.enqueue_all(session, rows, at=START)


def test_successive_effects_of_one_key_go_out_as_one_when_the_sink_takes_their_kind(
    database: Database,
) -> None:
    """Three due updates of one incident go out in one go; the card after them in the same
    ordering key waits for the next pass, and a sink that takes no runs gets one at a time."""
    _updates(database, 3, then_a_card=True)
    sink = Grouping(per_go=10, bad=set(), runs=frozenset({"incident_update"}))
    deliverer = Deliverer(
        database=database, sinks={"incident_update": sink, "card": sink}, clock=Clock(START)
    )
    assert deliverer.deliver_due().delivered == 3
    assert sink.goes == [["update:0", "update:1", "update:2"]]
    assert deliverer.deliver_due().delivered == 1
    assert sink.goes[-1] == ["card:x"]


def test_a_sink_that_takes_no_runs_gets_one_effect_of_a_key_per_pass(
    database: Database,
) -> None:
    _updates(database, 3)
    sink = Grouping(per_go=10, bad=set())
    deliverer = Deliverer(database=database, sinks={"incident_update": sink}, clock=Clock(START))
    assert [deliverer.deliver_due().delivered for _ in range(4)] == [1, 1, 1, 0]
    assert sink.goes == [["update:0"], ["update:1"], ["update:2"]]


def test_a_refused_run_is_tried_one_by_one_and_a_retry_holds_back_the_rest(
    database: Database,
) -> None:
    """The sink refuses the run (update:2 is bad) and then asks to retry update:1 on its own:
    update:0 goes, update:1 waits, and update:2 is not even tried before it."""
    _updates(database, 3)
    sink = Grouping(
        per_go=10,
        bad={"update:2"},
        runs=frozenset({"incident_update"}),
        later={"update:1"},
    )
    clock = Clock(START)
    deliverer = Deliverer(database=database, sinks={"incident_update": sink}, clock=clock)
    stats = deliverer.deliver_due()
    assert (stats.delivered, stats.retried, stats.failed) == (1, 1, 0)
    assert sink.goes == [["update:0"]]
    sink.later.clear()
    sink.bad.clear()
    clock.now += timedelta(minutes=10)
    assert deliverer.deliver_due().delivered == 2
    assert sink.goes == [["update:0"], ["update:1", "update:2"]]
