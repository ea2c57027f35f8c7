"""Polling the sources on APScheduler, storing what they read before their checkpoint moves.

Each source gets its own chain of date jobs: a poll runs ``fetch`` in the scheduler's worker
thread, stores the result, and schedules the next poll at a time that depends on what
happened:

* normally, ``interval`` seconds later;
* after a `SourceError` (network, 5xx, timeout), an exponential backoff (1 s doubling up to
  5 minutes, with jitter), or the wait the platform asked for;
* after a rate limit, at its reset time (``Fetched.not_before``), never earlier, so a
  limited source makes no requests until then;
* when the day's read budget is spent, at the next UTC midnight.

What a fetch read (mentions, the new checkpoint, rejected payloads, posts read) is stored in
one transaction, so a crash between fetching and storing repeats the fetch and loses nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from apscheduler.schedulers.base import BaseScheduler

from bot.errors import SourceError
from bot.models import Clock, now_utc
from bot.sources import Fetched, Source
from storage import ingest, sources
from storage.database import Database

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 300.0


class Intake:
    """Stores what sources read: mentions and checkpoint together, rejects and reads beside."""

    def __init__(
        self,
        *,
        database: Database,
        clock: Clock = now_utc,
        on_new: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.clock = clock
        # Called after a store that added mentions (`earful run` wakes the pipeline with it).
        self.on_new = on_new

    def store(self, source: str, fetched: Fetched) -> list[int]:
        """Store one fetch in one transaction; return the ids of the new mentions."""
        now = self.clock()
        checkpoint = (source, fetched.checkpoint) if fetched.checkpoint is not None else None
        with self.database.transaction() as session:
            new_ids = ingest.ingest(
                session, fetched.mentions, received_at=now, checkpoint=checkpoint
            )
            sources.reject_all(
                session, source, ((r.reason, r.raw) for r in fetched.rejected), at=now
            )
            sources.add_reads(session, source, now.date(), fetched.reads)
        for rejected in fetched.rejected:
            log.warning("%s: payload rejected: %s", source, rejected.reason)
        if new_ids:
            self.on_new()
        return new_ids

    def checkpoint(self, source: str) -> str | None:
        """Where ``source`` left off."""
        with self.database.transaction() as session:
            return ingest.read_checkpoint(session, source)

    def reads_today(self, source: str) -> int:
        """Posts ``source`` has read today (UTC)."""
        with self.database.transaction() as session:
            return sources.reads_on(session, self.clock().date()).get(source, 0)


class Poller:
    """One source's polls: fetch, store, and decide when to poll next."""

    def __init__(self, *, source: Source, intake: Intake, rng: random.Random | None = None) -> None:
        self.source = source
        self.intake = intake
        self.failures = 0
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def poll(self) -> datetime:
        """Poll once; return when to poll next. Never raises for a source's failure."""
        now = self.intake.clock()
        name = self.source.name
        budget = self.source.daily_read_budget
        left = None if budget is None else budget - self.intake.reads_today(name)
        if left is not None and left <= 0:
            midnight = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)
            log.warning(
                "%s: daily read budget of %d spent; next poll at %s", name, budget, midnight
            )
            return midnight
        try:
            fetched = self.source.fetch(self.intake.checkpoint(name), read_budget=left)
            new = self.intake.store(name, fetched)
        except SourceError as exc:
            return self._backoff(now, str(exc), exc.retry_after)
        except Exception as exc:  # a bug in a handler must not stop the source for good
            log.exception("%s: poll failed", name)
            return self._backoff(now, type(exc).__name__, None)
        self.failures = 0
        if new:
            log.info("%s: %d new mention(s)", name, len(new))
        later = now + timedelta(seconds=self.source.interval)
        if fetched.not_before is not None and fetched.not_before > later:
            log.warning("%s: rate limited; next poll at %s", name, fetched.not_before)
            return fetched.not_before
        return later

    def _backoff(self, now: datetime, reason: str, retry_after: float | None) -> datetime:
        self.failures += 1
        wait = min(BACKOFF_MAX, BACKOFF_START * 2 ** (self.failures - 1))
        wait = wait * (0.5 + self.rng.random() / 2)
        if retry_after is not None:
            wait = max(wait, retry_after)
        log.warning(
            "%s: cannot read (%s); attempt %d, next in %.1f s",
            self.source.name,
            reason,
            self.failures,
            wait,
        )
        return now + timedelta(seconds=wait)


class SourceScheduler:
    """Puts each poller on APScheduler as a chain of date jobs."""

    def __init__(self, *, pollers: list[Poller], scheduler: BaseScheduler) -> None:
        self.pollers = pollers
        self.scheduler = scheduler

    def start(self) -> None:
        """Schedule the first poll of every source now."""
        for poller in self.pollers:
            self._schedule(poller, datetime.now(UTC))

    def _schedule(self, poller: Poller, at: datetime) -> None:
        self.scheduler.add_job(
            self._run,
            "date",
            run_date=at,
            args=[poller],
            id=f"poll:{poller.source.name}",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def _run(self, poller: Poller) -> None:
        self._schedule(poller, poller.poll())
