"""SLA timers: arm, cancel, find due, claim one escalation step at a time, snooze."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from bot.models import ANSWERED_STATES, Decision, EscalationStep
from storage.schema import Conversation, InteractionRow, SlaTimer

PENDING = "pending"
EXHAUSTED = "exhausted"
CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Timer:
    """A pending timer as read from the database."""

    id: int
    subject: str
    conversation_id: int | None
    incident_id: int | None
    interaction_id: int
    due_at: datetime
    step: int
    generation: int
    steps: tuple[EscalationStep, ...]
    escalate_after: timedelta | None
    playbook: str | None
    priority: str | None
    channel: str
    state: str = PENDING
    # When the first response was due (None on timers armed before it was recorded).
    response_due_at: datetime | None = None

    @property
    def next_step(self) -> EscalationStep | None:
        """The step this breach runs; None when the playbook lists none (the breach is noted)."""
        return self.steps[self.step] if self.step < len(self.steps) else None


@dataclass(frozen=True, slots=True)
class Arming:
    """A respond decision that starts its subject's first-response timer."""

    subject: str
    conversation_id: int | None
    incident_id: int | None
    interaction_id: int
    decision: Decision


def _timer(row: SlaTimer) -> Timer:
    return Timer(
        id=row.id,
        subject=row.subject,
        conversation_id=row.conversation_id,
        incident_id=row.incident_id,
        interaction_id=row.interaction_id,
        due_at=row.due_at,
        step=row.step,
        generation=row.generation,
        steps=tuple(EscalationStep(s["kind"], s["target"]) for s in row.steps),
        escalate_after=(
            timedelta(seconds=row.escalate_after) if row.escalate_after is not None else None
        ),
        playbook=row.playbook,
        priority=row.priority,
        channel=row.channel,
        state=row.state,
        response_due_at=row.response_due_at,
    )


def _fields(arming: Arming) -> dict[str, object]:
    decision = arming.decision
    assert decision.respond_by is not None  # noqa: S101 - callers arm only timed decisions
    return {
        "conversation_id": arming.conversation_id,
        "incident_id": arming.incident_id,
        "interaction_id": arming.interaction_id,
        "due_at": decision.respond_by,
        "response_due_at": decision.respond_by,
        "step": 0,
        "steps": [{"kind": s.kind, "target": s.target} for s in decision.escalation],
        "escalate_after": (
            int(decision.escalate_after.total_seconds()) if decision.escalate_after else None
        ),
        "playbook": decision.playbook,
        "priority": decision.priority.value if decision.priority else None,
        "channel": decision.channel,
    }


def arm_all(session: Session, armings: Sequence[Arming], *, at: datetime) -> int:
    """Start each subject's timer; return how many were started or tightened.

    A subject with a pending timer keeps it, unless a later decision is due sooner and no step
    has run yet (a P1 in a conversation waiting on a P3). A cancelled or exhausted timer is
    re-armed from scratch with a new generation.
    """
    timed = [a for a in armings if a.decision.respond_by is not None]
    if not timed:
        return 0
    rows = {
        row.subject: row
        for row in session.scalars(
            select(SlaTimer).where(SlaTimer.subject.in_({a.subject for a in timed}))
        )
    }
    changed = 0
    for arming in timed:
        fields = _fields(arming)
        row = rows.get(arming.subject)
        if row is None:
            row = SlaTimer(
                subject=arming.subject, state=PENDING, generation=1, armed_at=at, updated_at=at
            )
            for name, value in fields.items():
                setattr(row, name, value)
            session.add(row)
            rows[arming.subject] = row
        elif row.state != PENDING or (row.step == 0 and fields["due_at"] < row.due_at):  # type: ignore[operator]
            rearm = row.state != PENDING
            for name, value in fields.items():
                setattr(row, name, value)
            row.state, row.cancel_reason, row.updated_at = PENDING, None, at
            if rearm:
                row.generation += 1
                row.armed_at = at
        else:
            continue
        changed += 1
    session.flush()
    return changed


def cancel_for_conversations(
    session: Session, conversation_ids: Collection[int], *, reason: str, at: datetime
) -> int:
    """Stop the timers of these conversations and of the incidents their mentions joined."""
    if not conversation_ids:
        return 0
    incidents = select(InteractionRow.incident_id).where(
        InteractionRow.conversation_id.in_(conversation_ids),
        InteractionRow.incident_id.is_not(None),
    )
    result = session.execute(
        update(SlaTimer)
        .where(
            SlaTimer.state == PENDING,
            or_(
                SlaTimer.conversation_id.in_(conversation_ids), SlaTimer.incident_id.in_(incidents)
            ),
        )
        .values(state=CANCELLED, cancel_reason=reason, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def resume_for_conversations(
    session: Session, conversation_ids: Collection[int], *, reason: str, at: datetime
) -> int:
    """Restart the timers of these conversations that ``reason`` stopped, where they were:
    same deadline and escalation step (a deadline already past is a breach at the next tick).
    So too the timer of an incident their mentions joined, unless a conversation of another of
    its reports is still answered (`cancel_for_conversations` stopped it on the first answer)."""
    if not conversation_ids:
        return 0
    incidents = select(InteractionRow.incident_id).where(
        InteractionRow.conversation_id.in_(conversation_ids),
        InteractionRow.incident_id.is_not(None),
    )
    still_answered = (
        select(InteractionRow.incident_id)
        .join(Conversation, InteractionRow.conversation_id == Conversation.id)
        .where(
            InteractionRow.incident_id.is_not(None),
            Conversation.id.not_in(conversation_ids),
            Conversation.state.in_([state.value for state in ANSWERED_STATES]),
        )
    )
    result = session.execute(
        update(SlaTimer)
        .where(
            SlaTimer.state == CANCELLED,
            SlaTimer.cancel_reason == reason,
            or_(
                SlaTimer.conversation_id.in_(conversation_ids),
                and_(
                    SlaTimer.incident_id.in_(incidents),
                    SlaTimer.incident_id.not_in(still_answered),
                ),
            ),
        )
        .values(state=PENDING, cancel_reason=None, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def due(session: Session, *, now: datetime, limit: int = 100) -> list[Timer]:
    """Pending timers whose deadline has passed, the most overdue first."""
    rows = session.scalars(
        select(SlaTimer)
        .where(SlaTimer.state == PENDING, SlaTimer.due_at <= now)
        .order_by(SlaTimer.due_at, SlaTimer.id)
        .limit(limit)
    )
    return [_timer(row) for row in rows]


def pending(session: Session, *, before: datetime | None = None) -> list[Timer]:
    """Pending timers (due before ``before``, if given), soonest first."""
    query = select(SlaTimer).where(SlaTimer.state == PENDING)
    if before is not None:
        query = query.where(SlaTimer.due_at < before)
    return [_timer(row) for row in session.scalars(query.order_by(SlaTimer.due_at, SlaTimer.id))]


def claim_step(session: Session, timer: Timer, *, at: datetime) -> bool:
    """Move the timer past its current step; False if that step was already claimed or stopped.

    The update only matches the exact state read (pending, same generation and step), so two
    schedulers, or one restarted mid-way, run each step once.
    """
    following = timer.step + 1
    more = following < len(timer.steps) and timer.escalate_after is not None
    values: dict[str, object] = {"step": following, "updated_at": at}
    if more:
        assert timer.escalate_after is not None  # noqa: S101 - checked just above
        values["due_at"] = timer.due_at + timer.escalate_after
    else:
        values["state"] = EXHAUSTED
    result = session.execute(
        update(SlaTimer)
        .where(
            SlaTimer.id == timer.id,
            SlaTimer.state == PENDING,
            SlaTimer.generation == timer.generation,
            SlaTimer.step == timer.step,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def find(session: Session, subject: str) -> Timer | None:
    """The timer of a conversation or incident in whatever state it is, if it ever had one."""
    row = session.scalar(select(SlaTimer).where(SlaTimer.subject == subject))
    return _timer(row) if row is not None else None


def mark_step_run(session: Session, timer: Timer, index: int, *, at: datetime) -> bool:
    """Record that step ``index`` ran by hand, so the automatic ladder never repeats it.

    The timer moves past that step (never back: a step behind the ladder changes nothing) and
    the next step waits at least ``escalate_after`` from now, keeping the ladder's spacing, and
    never runs before it was planned to. After the last step the timer is exhausted. Like
    `claim_step` the update matches only the state read; False if the timer moved meanwhile.
    """
    if timer.state != PENDING or index < timer.step:
        return True
    following = index + 1
    values: dict[str, object] = {"step": following, "updated_at": at}
    if following < len(timer.steps):
        if timer.escalate_after is not None:
            values["due_at"] = max(timer.due_at, at + timer.escalate_after)
    else:
        values["state"] = EXHAUSTED
    return _update_read(session, timer, values)


def snooze(session: Session, timer: Timer, until: datetime, *, at: datetime) -> bool:
    """Hold the timer's next escalation until ``until``; False if the timer moved meanwhile.

    A timer that has breached (a step ran, or the ladder is exhausted) is re-armed: when the
    snooze ends without a response the ladder starts again from its first step. Each snooze
    starts a new generation, so a breach read before it can never run. A customer message
    arriving meanwhile brings the deadline forward (`arm_all` tightens a timer at step 0).
    """
    if timer.state == CANCELLED:
        return False
    values: dict[str, object] = {
        "state": PENDING,
        "due_at": until,
        "step": 0,
        "generation": timer.generation + 1,
        "updated_at": at,
    }
    if timer.state != PENDING:
        values["armed_at"] = at
    return _update_read(session, timer, values)


def _update_read(session: Session, timer: Timer, values: dict[str, object]) -> bool:
    """Update the timer only if it is still as ``timer`` read it."""
    result = session.execute(
        update(SlaTimer)
        .where(
            SlaTimer.id == timer.id,
            SlaTimer.state == timer.state,
            SlaTimer.generation == timer.generation,
            SlaTimer.step == timer.step,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]
