"""Where cards were posted in Slack: subject → (channel, ts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Clock, now_utc
from storage.database import Database
from storage.schema import SlackMessage
from storage.sql import insert_for


@dataclass(frozen=True, slots=True)
class Posted:
    """A card's place in Slack."""

    channel: str
    ts: str


def find(session: Session, subject: str) -> Posted | None:
    """The card of a conversation or incident, if it was posted."""
    row = session.get(SlackMessage, subject)
    return Posted(row.channel, row.ts) if row is not None else None


def find_by_ts(session: Session, channel: str, ts: str) -> str | None:
    """The subject whose card is this message."""
    return session.scalar(
        select(SlackMessage.subject).where(SlackMessage.channel == channel, SlackMessage.ts == ts)
    )


def remember(session: Session, subject: str, posted: Posted, *, at: datetime) -> None:
    """Record where a subject's card went (the first record wins)."""
    session.execute(
        insert_for(session, SlackMessage)
        .values(subject=subject, channel=posted.channel, ts=posted.ts, posted_at=at)
        .on_conflict_do_nothing(index_elements=["subject"])
    )


class SlackPlaces:
    """`find` and `remember` on the database, for the Slack sink (one short transaction each)."""

    def __init__(self, database: Database, *, clock: Clock = now_utc) -> None:
        self.database = database
        self.clock = clock

    def find(self, subject: str) -> Posted | None:
        """Where the subject's card is, if it was posted."""
        with self.database.transaction() as session:
            return find(session, subject)

    def remember(self, subject: str, posted: Posted) -> None:
        """Record where the subject's card went."""
        with self.database.transaction() as session:
            remember(session, subject, posted, at=self.clock())
