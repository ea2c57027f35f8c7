"""Incidents: mentions that a volume-spike rule matched, grouped while reports keep coming."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Decision, Incident, Priority
from storage.schema import Incident as IncidentRow

OPEN = "open"


@dataclass(frozen=True, slots=True)
class Report:
    """A mention a spike rule matched, about to join an incident."""

    created_at: datetime
    decision: Decision


@dataclass(frozen=True, slots=True)
class Joined:
    """The incident a report joined, as it stands once the whole batch has joined."""

    incident: Incident
    opened: bool  # this batch opened the incident


def _incident(row: IncidentRow) -> Incident:
    return Incident(
        id=row.id,
        key=row.key,
        channel=row.channel,
        priority=Priority(row.priority) if row.priority else None,
        reports=row.reports,
        opened_at=row.opened_at,
        last_report_at=row.last_report_at,
    )


def join_all(session: Session, reports: Sequence[Report], *, window: timedelta) -> list[Joined]:
    """The incident of each report, in order: the open one of its rule if its last report is
    within ``window`` of this one, else a new one."""
    keys = {r.decision.incident for r in reports if r.decision.incident}
    current: dict[str, IncidentRow] = {}
    for row in session.scalars(
        select(IncidentRow)
        .where(IncidentRow.key.in_(keys), IncidentRow.state == OPEN)
        .order_by(IncidentRow.last_report_at)
    ):
        current[row.key] = row  # the latest open incident of each rule
    opened: set[int] = set()
    joined: list[IncidentRow] = []
    for report in reports:
        key = report.decision.incident
        if key is None:
            raise ValueError("a report needs a decision from a spike rule")
        found = current.get(key)
        if found is not None and report.created_at - found.last_report_at <= window:
            row = found
        else:
            priority = report.decision.priority
            row = IncidentRow(
                key=key,
                state=OPEN,
                channel=report.decision.channel,
                priority=priority.value if priority else None,
                reports=0,
                opened_at=report.created_at,
                last_report_at=report.created_at,
            )
            session.add(row)
            session.flush()
            current[key] = row
            opened.add(row.id)
        row.reports += 1
        row.last_report_at = max(row.last_report_at, report.created_at)
        joined.append(row)
    session.flush()
    return [Joined(_incident(row), row.id in opened) for row in joined]
