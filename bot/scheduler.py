"""The in-process scheduler (APScheduler): SLA timers now; polling and digests join it later.

The database holds the timers; APScheduler only decides when to look. A sweep job runs at
start and every ``sweep`` seconds: it fires what is overdue (after a restart, what fell due
while the process was down) and puts an exact date job on each timer due before the next
sweep, so a breach runs on time rather than up to a sweep late. Timers armed by another
process are found by the next sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

from bot.sla import Breach, SlaTimers

log = logging.getLogger(__name__)

SWEEP_JOB = "sla-sweep"


class SlaScheduler:
    """Wakes `SlaTimers` on APScheduler; ``on_breach`` hears of each step that ran."""

    def __init__(
        self,
        *,
        timers: SlaTimers,
        scheduler: BaseScheduler,
        sweep: timedelta = timedelta(seconds=30),
        on_breach: Callable[[list[Breach]], None] = lambda _b: None,
    ) -> None:
        self.timers = timers
        self.scheduler = scheduler
        self.sweep_every = sweep
        self.on_breach = on_breach

    def start(self) -> None:
        """Add the sweep (first run now) and start the scheduler if it is not running."""
        self.scheduler.add_job(
            self.sweep,
            "interval",
            seconds=self.sweep_every.total_seconds(),
            id=SWEEP_JOB,
            replace_existing=True,
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        if not self.scheduler.running:
            self.scheduler.start()

    def sweep(self) -> None:
        """Fire overdue timers, then put a date job on each timer due before the next sweep."""
        self.fire()
        horizon = self.timers.clock() + self.sweep_every
        for timer in self.timers.pending(before=horizon):
            self.scheduler.add_job(
                self.fire,
                "date",
                run_date=timer.due_at,
                id=f"sla:{timer.id}:{timer.generation}:{timer.step}",
                replace_existing=True,
                misfire_grace_time=None,
            )

    def fire(self) -> None:
        """Run the next step of every overdue timer."""
        try:
            fired = self.timers.fire_due()
        except Exception:  # the scheduler must keep running; the next sweep tries again
            log.exception("SLA check failed")
            return
        if fired:
            self.on_breach(fired)
