"""Conversations: thread mentions and replies, and move a conversation through its life cycle."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import PipelineError
from bot.models import (
    ALLOWED_TRANSITIONS,
    ANSWERED_STATES,
    ConversationState,
    Direction,
    Mention,
)
from storage import sla
from storage.schema import Conversation, InteractionRow


def transition(
    session: Session, conversation: Conversation, target: ConversationState, *, at: datetime
) -> None:
    """Move a conversation to ``target``, stamping first response and resolution times.

    A response, resolution or dismissal stops the conversation's SLA timer.
    """
    current = ConversationState(conversation.state)
    if target == current:
        return
    if target not in ALLOWED_TRANSITIONS[current]:
        raise PipelineError(
            f"conversation {conversation.id} cannot go from {current.value} to {target.value}"
        )
    conversation.state = target.value
    conversation.updated_at = at
    if target == ConversationState.RESPONDED and conversation.first_response_at is None:
        conversation.first_response_at = at
    if target in (ConversationState.RESOLVED, ConversationState.DISMISSED):
        conversation.resolved_at = at
    if target == ConversationState.NEW:
        conversation.resolved_at = None
    if target in ANSWERED_STATES and conversation.id is not None:
        sla.cancel_for_conversations(session, [conversation.id], reason=target.value, at=at)


def _parent_threads(session: Session, mentions: Sequence[Mention]) -> dict[tuple[str, str], str]:
    """Thread keys of the stored messages that these mentions reply to."""
    parents = {m.in_reply_to for m in mentions if m.in_reply_to and not m.conversation_id}
    if not parents:
        return {}
    rows = session.execute(
        select(InteractionRow.platform, InteractionRow.external_id, Conversation.thread_key)
        .join(Conversation, InteractionRow.conversation_id == Conversation.id)
        .where(InteractionRow.external_id.in_(parents))
    ).tuples()
    return {(platform, external_id): key for platform, external_id, key in rows}


def attach_all(
    session: Session,
    mentions: Sequence[Mention],
    contact_ids: Sequence[int | None],
    *,
    at: datetime,
    undelivered: Collection[str] = (),
) -> list[Conversation]:
    """The conversation of each mention, in order, opened where needed, with its activity recorded.

    Thread key: the platform's conversation id (X gives the root tweet's id); else the thread
    of the message replied to, when known; else the id replied to, so a parent arriving later
    lands in the same thread; else the mention's own id. An inbound message puts an answered,
    resolved or dismissed conversation back in the queue (to its assignee if it has one); an
    outbound reply marks it responded, stamping the first response time from the reply itself,
    unless its id is in ``undelivered``: its delivery already failed for good
    (`reopen_unanswered`). ``contact_ids`` is the customer of each inbound mention (ignored for
    outbound ones).
    """
    threads = _parent_threads(session, mentions)
    keys: list[tuple[str, str]] = []
    for mention in mentions:
        platform = mention.platform.value
        if mention.conversation_id:
            key = mention.conversation_id
        elif mention.in_reply_to:
            key = threads.get((platform, mention.in_reply_to), mention.in_reply_to)
        else:
            key = mention.external_id
        threads[(platform, mention.external_id)] = key
        keys.append((platform, key))
    found = {
        (c.platform, c.thread_key): c
        for c in session.scalars(
            select(Conversation).where(Conversation.thread_key.in_({key for _, key in keys}))
        )
    }
    result: list[Conversation] = []
    for mention, contact_id, (platform, key) in zip(mentions, contact_ids, keys, strict=True):
        inbound = mention.direction == Direction.INBOUND
        conversation = found.get((platform, key))
        if conversation is None:
            conversation = Conversation(
                platform=platform,
                thread_key=key,
                contact_id=contact_id if inbound else None,
                state=ConversationState.NEW.value,
                created_at=mention.created_at,
                updated_at=at,
                last_activity_at=mention.created_at,
            )
            session.add(conversation)
            found[(platform, key)] = conversation
        elif conversation.contact_id is None and inbound:
            conversation.contact_id = contact_id
        conversation.last_activity_at = max(conversation.last_activity_at, mention.created_at)
        if mention.external_id not in undelivered:
            _record_activity(session, conversation, mention, at=at)
        result.append(conversation)
    session.flush()
    return result


def reopen_unanswered(session: Session, conversation_id: int, *, at: datetime) -> bool:
    """A reply that marked this conversation responded never reached the platform: unless
    another reply of it is delivered or on its way, it awaits a response again (back to its
    assignee if it has one) with no first response, and its SLA timer resumes where it stopped.
    Returns whether it was reopened."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.state != ConversationState.RESPONDED.value:
        return False
    answered = session.scalar(
        select(InteractionRow.id)
        .where(
            InteractionRow.conversation_id == conversation_id,
            InteractionRow.direction == Direction.OUTBOUND.value,
            InteractionRow.undelivered.is_(None),
        )
        .limit(1)
    )
    if answered is not None:
        return False
    target = ConversationState.ASSIGNED if conversation.assignee else ConversationState.NEW
    transition(session, conversation, target, at=at)
    conversation.first_response_at = None
    sla.resume_for_conversations(
        session, [conversation_id], reason=ConversationState.RESPONDED.value, at=at
    )
    return True


def responded_again(session: Session, conversation_ids: Sequence[int], *, at: datetime) -> None:
    """Replies of these conversations are on their way again (`earful outbox retry`): the ones
    awaiting a response are responded, as when the reply was first sent."""
    for conversation in session.scalars(
        select(Conversation).where(Conversation.id.in_(conversation_ids))
    ):
        if conversation.state in (ConversationState.NEW.value, ConversationState.ASSIGNED.value):
            transition(session, conversation, ConversationState.RESPONDED, at=at)


def _record_activity(
    session: Session, conversation: Conversation, mention: Mention, *, at: datetime
) -> None:
    state = ConversationState(conversation.state)
    if mention.direction == Direction.OUTBOUND:
        if state in (ConversationState.NEW, ConversationState.ASSIGNED):
            transition(session, conversation, ConversationState.RESPONDED, at=mention.created_at)
    elif state in (ConversationState.RESOLVED, ConversationState.DISMISSED):
        transition(session, conversation, ConversationState.NEW, at=at)
    elif state == ConversationState.RESPONDED:
        target = ConversationState.ASSIGNED if conversation.assignee else ConversationState.NEW
        transition(session, conversation, target, at=at)
