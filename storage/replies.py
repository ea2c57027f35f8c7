"""Replies agents sent, with the customer message each answered: the suggester's memory."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from storage import conversations
from storage.schema import InteractionRow

# The external id of a reply Earful stored before the platform gave it one of its own.
PENDING_ID = "earful-reply-"


def past_replies(
    session: Session, *, ids: Sequence[int] | None = None, limit: int = 20_000
) -> list[tuple[str, str, str | None]]:
    """(customer message, agent reply, intent of the message), newest first; only ``ids`` if given.

    The customer message is the latest inbound message of the same conversation before the
    reply.
    """
    reply = aliased(InteractionRow)
    inbound = aliased(InteractionRow)
    earlier = aliased(InteractionRow)
    latest_before = (
        select(earlier.id)
        .where(
            earlier.conversation_id == reply.conversation_id,
            earlier.direction == "inbound",
            earlier.created_at <= reply.created_at,
        )
        .order_by(earlier.created_at.desc(), earlier.id.desc())
        .limit(1)
        .correlate(reply)
        .scalar_subquery()
    )
    query = (
        select(inbound.text, inbound.classification, reply.text)
        .select_from(reply)
        .join(inbound, inbound.id == latest_before)
        .where(
            reply.direction == "outbound",
            reply.conversation_id.is_not(None),
            reply.undelivered.is_(None),
        )
    )
    if ids is not None:
        query = query.where(reply.id.in_(ids))
    rows = session.execute(query.order_by(reply.created_at.desc()).limit(limit))
    return [
        (customer, text, ((judged or {}).get("intent") or {}).get("label"))
        for customer, judged, text in rows
    ]


def record_posted(session: Session, interaction_id: int, external_id: str, url: str | None) -> bool:
    """Give a reply Earful posted the id and link the platform gave it, so that reading the
    post back later (an X search finds the brand's own replies) finds it already stored.

    Returns False, changing nothing, when the post was already read back and stored meanwhile,
    or the reply is not an outbound interaction still waiting for its id.
    """
    row = session.get(InteractionRow, interaction_id)
    if row is None or row.direction != "outbound" or not row.external_id.startswith(PENDING_ID):
        return False
    taken = session.scalar(
        select(InteractionRow.id).where(
            InteractionRow.platform == row.platform, InteractionRow.external_id == external_id
        )
    )
    if taken is not None:
        return False
    row.external_id = external_id
    row.url = url
    row.undelivered = None
    return True


def record_undelivered(session: Session, interaction_id: int, reason: str, *, at: datetime) -> bool:
    """A reply Earful logged never reached the platform, for good: keep why (the contact
    history shows it, the counts and the suggester leave it out), and its conversation awaits a
    response again (`conversations.reopen_unanswered`), if the pipeline has threaded it yet.
    Returns whether the conversation was reopened.

    The mark and the read of the reply's conversation are one statement, which waits for a
    pipeline threading the reply at this moment (`failed_for_good`): either this sees the
    thread, or the pipeline sees the mark.
    """
    conversation_id = session.scalar(
        update(InteractionRow)
        .where(InteractionRow.id == interaction_id, InteractionRow.direction == "outbound")
        .values(undelivered=reason[:500])
        .returning(InteractionRow.conversation_id)
        .execution_options(synchronize_session=False)
    )
    if conversation_id is None:
        return False
    return conversations.reopen_unanswered(session, conversation_id, at=at)


def failed_for_good(session: Session, interaction_ids: Sequence[int]) -> set[int]:
    """Which of these replies failed for good (`record_undelivered`), read with a write lock on
    their rows held to the end of the transaction (a no-op update: PostgreSQL locks the rows,
    SQLite the database), so that a failure recorded meanwhile waits for the threading."""
    if not interaction_ids:
        return set()
    rows = session.execute(
        update(InteractionRow)
        .where(InteractionRow.id.in_(interaction_ids))
        .values(undelivered=InteractionRow.undelivered)
        .returning(InteractionRow.id, InteractionRow.undelivered)
        .execution_options(synchronize_session=False)
    )
    return {row_id for row_id, reason in rows if reason is not None}


def clear_undelivered(session: Session, interaction_ids: Sequence[int], *, at: datetime) -> None:
    """These replies are on their way again (`earful outbox retry`): no longer undelivered,
    and their conversations responded, as when the agent first sent them."""
    if not interaction_ids:
        return
    threads = session.scalars(
        update(InteractionRow)
        .where(InteractionRow.id.in_(interaction_ids), InteractionRow.undelivered.is_not(None))
        .values(undelivered=None)
        .returning(InteractionRow.conversation_id)
        .execution_options(synchronize_session=False)
    )
    conversations.responded_again(session, [c for c in threads if c is not None], at=at)
