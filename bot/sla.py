"""SLA escalation: when a first response is overdue, run the next escalation step, once.

The timers live in the database (`storage.sla`), so they survive a restart; `bot.scheduler`
wakes this up on time. Each breach claims its step with a conditional update and, in the same
transaction, writes the step's effect to the outbox and an audit entry: a step runs once even
if two schedulers race or a process dies half-way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bot import effects
from bot.models import Clock, now_utc
from storage import audit, outbox, sla
from storage.database import Database
from storage.schema import InteractionRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Breach:
    """One escalation step that ran."""

    timer: sla.Timer
    breached_at: datetime

    @property
    def description(self) -> str:
        """E.g. ``conversation:12 step 1/3 notify #care-leads``."""
        step = self.timer.next_step
        what = str(step) if step else "breach noted (no escalation steps)"
        return f"{self.timer.subject} step {self.timer.step + 1}/{len(self.timer.steps)} {what}"


class SlaTimers:
    """Fires the steps of overdue timers; the clock is injected so tests can move time."""

    def __init__(self, *, database: Database, clock: Clock = now_utc) -> None:
        self.database = database
        self.clock = clock

    def fire_due(self, *, limit: int = 100) -> list[Breach]:
        """Run the next step of every overdue timer (one step per timer per call)."""
        now = self.clock()
        with self.database.transaction() as session:
            timers = sla.due(session, now=now, limit=limit)
        fired = []
        for timer in timers:
            with self.database.transaction() as session:
                if not sla.claim_step(session, timer, at=now):
                    continue  # another scheduler ran it, or a reply stopped it meanwhile
                row = session.scalar(
                    select(InteractionRow).where(InteractionRow.id == timer.interaction_id)
                )
                mention = (
                    {"text": row.text, "url": row.url, "platform": row.platform}
                    if row is not None
                    else {}
                )
                outbox.enqueue_all(
                    session, [effects.escalation(timer, breached_at=now, mention=mention)], at=now
                )
                step = timer.next_step
                audit.record(
                    session,
                    actor="earful",
                    origin="sla",
                    action="sla.escalated",
                    target=timer.subject,
                    details={
                        "step": timer.step + 1,
                        "of": len(timer.steps),
                        "action": step.kind if step else "breach",
                        "to": step.target if step else timer.channel,
                        "due_at": timer.due_at.isoformat(),
                        "priority": timer.priority,
                        "playbook": timer.playbook,
                    },
                    at=now,
                )
            breach = Breach(timer, now)
            log.info("SLA breached: %s", breach.description)
            fired.append(breach)
        return fired

    def pending(self, *, before: datetime | None = None) -> list[sla.Timer]:
        """Timers still waiting for a response, soonest first."""
        with self.database.transaction() as session:
            return sla.pending(session, before=before)
