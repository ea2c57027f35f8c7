"""Delivery: drain the outbox to its sinks with retries, backoff and per-conversation order."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

from bot.errors import DeliveryRejected, RetryLater
from bot.models import now_utc
from storage import outbox
from storage.database import Database

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Delivers one effect; raises `RetryLater` or `DeliveryRejected` when it cannot."""

    def deliver(self, effect: outbox.Effect) -> None:
        """Perform the effect on the outside world."""
        ...


@runtime_checkable
class GroupingSink(Sink, Protocol):
    """A sink that can deliver several effects as one (Slack: cards for one channel in one
    message, when they come faster than the channel's one post per second; successive updates
    of one incident in one update).

    ``runs``: the kinds whose successive due effects of one ordering key are offered together
    (after the first, they are delivered only in a group with it, so their order holds).
    """

    runs: frozenset[str]

    def group_keys(self, effects: Sequence[outbox.Effect]) -> list[str | None]:
        """Per effect, a key: effects due together with the same key may go out as one; None:
        on its own."""
        ...

    def deliver_group(self, group: Sequence[outbox.Effect]) -> int:
        """Deliver the leading effects of ``group`` as one and return how many (at least one);
        raises like `Sink.deliver`, for all of them."""
        ...


# What else changes when an effect fails for good, in the transaction that marks it failed
# (session, the effect, the reason, now): e.g. tell people, correct the record.
FailureHook = Callable[[Session, outbox.Effect, str, datetime], None]


@dataclass
class DeliveryStats:
    """What delivery did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0


def backoff_delay(attempts: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter: a random wait up to ``base * 2**attempts``."""
    return random.uniform(0, min(cap, base * 2**attempts))  # noqa: S311 - jitter, not crypto


class Deliverer:
    """Delivers due outbox effects to the sink registered for their kind."""

    def __init__(
        self,
        *,
        database: Database,
        sinks: Mapping[str, Sink],
        on_failure: Mapping[str, FailureHook] | None = None,
        give_up_after: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = now_utc,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.database = database
        self.sinks = dict(sinks)
        # Per kind, what else a failure for good changes (in the transaction that records it).
        self.on_failure = dict(on_failure or {})
        # The kinds whose successive effects of one ordering key a grouping sink takes as one.
        self._runs: frozenset[str] = frozenset().union(
            *(sink.runs for sink in self.sinks.values() if isinstance(sink, GroupingSink))
        )
        # Transient failures (Slack down, 429s) are retried this long after the effect was
        # written, so an outage of hours still ends with every card delivered, in order.
        self.give_up_after = give_up_after
        self.clock = clock
        self.sleep = sleep

    def deliver_due(self, stats: DeliveryStats | None = None) -> DeliveryStats:
        """One pass over the effects due now; each outcome is committed as it happens."""
        stats = stats or DeliveryStats()
        with self.database.transaction() as session:
            due = outbox.due(session, now=self.clock(), runs=self._runs)
        for sink, batch in self._batches(due):
            if sink is None:
                self._fail(batch[0], f"no sink for effect kind {batch[0].kind!r}", stats)
            elif isinstance(sink, GroupingSink) and len(batch) > 1:
                self._deliver_group(sink, batch, stats)
            else:
                self._deliver_one(sink, batch[0], stats)
        return stats

    def _batches(
        self, due: Sequence[outbox.Effect]
    ) -> list[tuple[Sink | None, list[outbox.Effect]]]:
        """The due effects in order, those a grouping sink puts in one group side by side (at
        the place of the group's first). An effect that follows the head of its ordering key
        (see `outbox.due`) goes only in its head's group, else it waits for its turn."""
        keys: dict[int, str | None] = {}
        for grouping in {id(s): s for s in self.sinks.values()}.values():
            if isinstance(grouping, GroupingSink):
                mine = [e for e in due if self.sinks.get(e.kind) is grouping]
                keys.update(zip((e.id for e in mine), grouping.group_keys(mine), strict=True))
        batches: list[tuple[Sink | None, list[outbox.Effect]]] = []
        groups: dict[tuple[int, str], list[outbox.Effect]] = {}
        head_of: dict[str, tuple[int, str | None]] = {}  # ordering key → its head's group
        for effect in due:
            sink = self.sinks.get(effect.kind)
            key = keys.get(effect.id)
            if effect.ordering_key in head_of:
                if key is not None and head_of[effect.ordering_key] == (id(sink), key):
                    groups[id(sink), key].append(effect)
                continue
            head_of[effect.ordering_key] = (id(sink), key)
            if key is None:
                batches.append((sink, [effect]))
            elif (id(sink), key) in groups:
                groups[id(sink), key].append(effect)
            else:
                groups[id(sink), key] = [effect]
                batches.append((sink, groups[id(sink), key]))
        return batches

    def _deliver_group(
        self, sink: GroupingSink, group: list[outbox.Effect], stats: DeliveryStats
    ) -> None:
        """Deliver a group in as few goes as its sink needs. A group the sink rejects is tried
        one effect at a time, so that one bad effect fails alone.

        When a go held ``n`` effects and the sink then asks to wait (Retry-After), the rest
        wait one such interval per ``n`` of them: a backlog comes back a go's worth at a time,
        not all of it at every interval."""
        per_go: int | None = None
        while group:
            try:
                held = sink.deliver_group(group)
            except RetryLater as exc:
                if per_go is None or exc.retry_after is None:
                    self._retry(group, exc, stats)
                    return
                for turn, start in enumerate(range(0, len(group), per_go), start=1):
                    later = RetryLater(str(exc), exc.retry_after * turn)
                    self._retry(group[start : start + per_go], later, stats)
                return
            except DeliveryRejected:
                # One at a time; an effect waiting to be retried holds back the rest of its key.
                held_back: set[str] = set()
                for effect in group:
                    if effect.ordering_key not in held_back and not self._deliver_one(
                        sink, effect, stats
                    ):
                        held_back.add(effect.ordering_key)
                return
            self._delivered(group[:held], stats)
            per_go = held
            group = group[held:]

    def _deliver_one(self, sink: Sink, effect: outbox.Effect, stats: DeliveryStats) -> bool:
        """Deliver one effect; False when it waits to be retried."""
        try:
            sink.deliver(effect)
        except RetryLater as exc:
            self._retry([effect], exc, stats)
            return False
        except DeliveryRejected as exc:
            self._fail(effect, str(exc), stats)
        else:
            self._delivered([effect], stats)
        return True

    def _delivered(self, done: Sequence[outbox.Effect], stats: DeliveryStats) -> None:
        with self.database.transaction() as session:
            outbox.mark_delivered(session, [effect.id for effect in done], at=self.clock())
        stats.delivered += len(done)

    def _retry(self, batch: Sequence[outbox.Effect], exc: RetryLater, stats: DeliveryStats) -> None:
        """A transient failure: each effect waits (Retry-After, else backoff), or fails once it
        has been retried for `give_up_after`."""
        now = self.clock()
        expired = [e for e in batch if now - e.created_at >= self.give_up_after]
        for effect in expired:
            self._fail(effect, f"gave up after {effect.attempts + 1} attempts: {exc}", stats)
        waiting = [e for e in batch if e not in expired]
        if not waiting:
            return
        # One wait for all (Retry-After, else the backoff of the most tried), one statement.
        delay = (
            exc.retry_after
            if exc.retry_after is not None
            else backoff_delay(max(e.attempts for e in waiting))
        )
        ids = ", ".join(str(e.id) for e in waiting[:5]) + (", …" if len(waiting) > 5 else "")
        log.info("effect(s) %s retrying in %.1fs: %s", ids, delay, exc)
        with self.database.transaction() as session:
            outbox.mark_retry(session, waiting, str(exc), at=now, delay=delay)
        stats.retried += len(waiting)

    def _fail(self, effect: outbox.Effect, reason: str, stats: DeliveryStats) -> None:
        log.warning("effect %d failed for good: %s", effect.id, reason)
        hook = self.on_failure.get(effect.kind)
        with self.database.transaction() as session:
            outbox.mark_failed(session, effect, reason)
            if hook is not None:
                hook(session, effect, reason, self.clock())
        stats.failed += 1

    def drain(self, *, max_wait: float = 30.0) -> DeliveryStats:
        """Deliver until nothing is pending, waiting out backoffs for up to ``max_wait`` s."""
        stats = DeliveryStats()
        waited = 0.0
        while True:
            self.deliver_due(stats)
            with self.database.transaction() as session:
                next_at = outbox.next_due_at(session)
            if next_at is None:
                return stats
            pause = max(0.0, (next_at - self.clock()).total_seconds())
            if waited + pause > max_wait:
                return stats
            self.sleep(pause)
            waited += pause


class PlatformReplies:
    """Sends each reply effect to the sink of its platform; ``fallback`` takes the rest."""

    def __init__(self, *, sinks: Mapping[str, Sink], fallback: Sink) -> None:
        self.sinks = dict(sinks)
        self.fallback = fallback

    def deliver(self, effect: outbox.Effect) -> None:
        """Deliver through the platform's sink (X, Telegram), else the fallback."""
        self.sinks.get(str(effect.payload["platform"]), self.fallback).deliver(effect)
