"""Delivery: drain the outbox to its sinks with retries, backoff and per-conversation order."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

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
        give_up_after: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = now_utc,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.database = database
        self.sinks = dict(sinks)
        # Transient failures (Slack down, 429s) are retried this long after the effect was
        # written, so an outage of hours still ends with every card delivered, in order.
        self.give_up_after = give_up_after
        self.clock = clock
        self.sleep = sleep

    def deliver_due(self, stats: DeliveryStats | None = None) -> DeliveryStats:
        """One pass over the effects due now; each outcome is committed as it happens."""
        stats = stats or DeliveryStats()
        with self.database.transaction() as session:
            effects = outbox.due(session, now=self.clock())
        for effect in effects:
            self._deliver_one(effect, stats)
        return stats

    def _deliver_one(self, effect: outbox.Effect, stats: DeliveryStats) -> None:
        sink = self.sinks.get(effect.kind)
        if sink is None:
            self._fail(effect, f"no sink for effect kind {effect.kind!r}", stats)
            return
        try:
            sink.deliver(effect)
        except RetryLater as exc:
            if self.clock() - effect.created_at >= self.give_up_after:
                self._fail(effect, f"gave up after {effect.attempts + 1} attempts: {exc}", stats)
                return
            delay = (
                exc.retry_after if exc.retry_after is not None else backoff_delay(effect.attempts)
            )
            log.info("effect %d retrying in %.1fs: %s", effect.id, delay, exc)
            with self.database.transaction() as session:
                outbox.mark_retry(session, effect, str(exc), at=self.clock(), delay=delay)
            stats.retried += 1
        except DeliveryRejected as exc:
            self._fail(effect, str(exc), stats)
        else:
            with self.database.transaction() as session:
                outbox.mark_delivered(session, effect.id, at=self.clock())
            stats.delivered += 1

    def _fail(self, effect: outbox.Effect, reason: str, stats: DeliveryStats) -> None:
        log.warning("effect %d failed for good: %s", effect.id, reason)
        with self.database.transaction() as session:
            outbox.mark_failed(session, effect, reason)
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
