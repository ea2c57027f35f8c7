"""Test doubles shared by the pipeline-level tests (not mocks of Earful's own functions), and
what they read back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from bot.models import Classification, ContactSnapshot, Mention, Score
from storage.database import Database
from storage.schema import Conversation, SlaTimer


class TextLabels:
    """Labels read from the text: "outage" raises the flag, "thanks" is praise, else complaint."""

    name = "text-labels"

    def classify(self, batch: Sequence[tuple[Mention, ContactSnapshot]]) -> list[Classification]:
        """One classification per mention."""
        results = []
        for mention, _ in batch:
            text = mention.text.lower()
            praise = "thanks" in text
            results.append(
                Classification(
                    classified=True,
                    sentiment=Score("positive" if praise else "negative", 0.9),
                    intent=Score("praise" if praise else "complaint", 0.9),
                    flags=("outage",) if "outage" in text else (),
                    language="en",
                )
            )
        return results


def awaiting(database: Database) -> tuple[str, datetime | None, str]:
    """The one conversation's state and first response time, and its one SLA timer's state."""
    with database.transaction() as session:
        conversation = session.scalars(select(Conversation)).one()
        timer = session.scalars(select(SlaTimer)).one()
        return conversation.state, conversation.first_response_at, timer.state


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now


# One playbook for the pipeline-level tests: a spike rule, a timed complaint rule, a watch rule.
PLAYBOOKS = """\
name: care
channel: "#care"
rules:
  - name: outage spike
    when:
      flags: [outage]
      spike: {count: 3, within: 15m}
    then: {action: respond, priority: P1, channel: "#incidents"}
  - name: complaint
    when: {intent: [complaint]}
    then: {action: respond, priority: P2}
  - name: praise
    when: {intent: [praise]}
    then: {action: watch, priority: P4}
sla:
  first_response: 30m
  escalate_after: 15m
escalation:
  - notify: "#care-leads"
  - mention: "@care-lead"
  - page: on-call
templates:
  - id: sorry
    text: "Hi {first_name}, sorry about this. Could you DM us your account email so we can check?"
"""
