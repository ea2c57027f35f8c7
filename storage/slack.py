"""Where cards were posted in Slack (subject → channel and ts) and what each post shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Clock, now_utc
from storage.database import Database
from storage.schema import SlackMessage, SlackPost
from storage.sql import insert_for

Block = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Posted:
    """A card's place in Slack."""

    channel: str
    ts: str


@dataclass(frozen=True, slots=True)
class Place(Posted):
    """Where a conversation's or incident's card was posted, and the interaction of that card
    (None for posts recorded before it was kept): a message may hold several cards."""

    card_id: int | None = None


def find(session: Session, subject: str) -> Place | None:
    """The card of a conversation or incident, if it was posted."""
    row = session.get(SlackMessage, subject)
    return Place(row.channel, row.ts, row.card_id) if row is not None else None


def remember(session: Session, opened: Mapping[str, int], posted: Posted, *, at: datetime) -> None:
    """Record where the subjects' cards went, one message, with the interaction of each
    subject's card (the first record of each subject wins)."""
    session.execute(
        insert_for(session, SlackMessage)
        .values(
            [
                {
                    "subject": subject,
                    "channel": posted.channel,
                    "ts": posted.ts,
                    "posted_at": at,
                    "card_id": card_id,
                }
                for subject, card_id in opened.items()
            ]
        )
        .on_conflict_do_nothing(index_elements=["subject"])
    )


def shown(session: Session, posted: Posted) -> tuple[str, list[Block]] | None:
    """The fallback text and blocks a post shows now, if Earful recorded them."""
    row = session.get(SlackPost, (posted.channel, posted.ts))
    return (row.text, list(row.blocks)) if row is not None else None


def show(session: Session, posted: Posted, text: str, blocks: list[Block], *, at: datetime) -> None:
    """Record what a post shows now."""
    row = session.get(SlackPost, (posted.channel, posted.ts))
    if row is None:
        session.add(
            SlackPost(channel=posted.channel, ts=posted.ts, text=text, blocks=blocks, updated_at=at)
        )
    else:
        row.text, row.blocks, row.updated_at = text, blocks, at


class SlackPlaces:
    """`find` and `remember` on the database, for the Slack sink (one short transaction each)."""

    def __init__(self, database: Database, *, clock: Clock = now_utc) -> None:
        self.database = database
        self.clock = clock

    def find(self, subject: str) -> Place | None:
        """Where the subject's card is, if it was posted."""
        with self.database.transaction() as session:
            return find(session, subject)

    def remember(
        self, opened: Mapping[str, int], posted: Posted, text: str, blocks: list[Block]
    ) -> None:
        """Record where the subjects' cards went (subject → the interaction of its card), and
        what the post shows."""
        with self.database.transaction() as session:
            if opened:
                remember(session, opened, posted, at=self.clock())
            show(session, posted, text, blocks, at=self.clock())

    def placed(self, subjects: Sequence[str]) -> set[str]:
        """Those of the subjects whose card was posted."""
        if not subjects:
            return set()
        with self.database.transaction() as session:
            return set(
                session.scalars(
                    select(SlackMessage.subject).where(SlackMessage.subject.in_(set(subjects)))
                )
            )

    def shown(self, posted: Posted) -> tuple[str, list[Block]] | None:
        """What a post shows now, if Earful recorded it."""
        with self.database.transaction() as session:
            return shown(session, posted)

    def show(self, posted: Posted, text: str, blocks: list[Block]) -> None:
        """Record what a post shows after an update."""
        with self.database.transaction() as session:
            show(session, posted, text, blocks, at=self.clock())
