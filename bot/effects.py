"""The effects the core asks of the outside world, as outbox rows (kind, keys, JSON payload).

Cards, incident cards and escalations go to the team surface (Slack, or the console); a
ticket step goes to its webhook. Effects of one conversation or incident share an ordering
key, so they are delivered in the order they were made.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from bot.models import EscalationStep, Incident, Interaction
from storage.codec import incident_to_json, interaction_to_json
from storage.outbox import Effect as OutboxEffect
from storage.sla import Timer

CARD = "card"
INCIDENT = "incident"
INCIDENT_UPDATE = "incident_update"
ESCALATION = "escalation"
CARD_STATUS = "card_status"
REPLY = "reply"
REPLY_FAILED = "reply_failed"
TICKET = "ticket"
# Kinds the team surface shows; a ticket step is the one escalation that leaves it.
TEAM_KINDS = (CARD, INCIDENT, INCIDENT_UPDATE, ESCALATION, CARD_STATUS, REPLY_FAILED)

Effect = dict[str, Any]


def card(interaction: Interaction) -> Effect:
    """Post a routed mention as a card in its channel."""
    return {
        "idempotency_key": f"{CARD}:{interaction.id}",
        "kind": CARD,
        "ordering_key": f"conversation:{interaction.conversation_id}",
        "payload": interaction_to_json(interaction),
    }


def card_status(
    card: dict[str, Any], conversation_id: int, status: str, channel: str, ts: str
) -> Effect:
    """Show an agent's action on the card they clicked (the card's payload, as posted)."""
    return {
        "idempotency_key": f"{CARD_STATUS}:{uuid.uuid4().hex}",  # each click is its own action
        "kind": CARD_STATUS,
        "ordering_key": f"conversation:{conversation_id}",
        "payload": {"card": card, "status": status, "channel": channel, "ts": ts},
    }


def reply(
    *,
    interaction_id: int,
    conversation_id: int,
    platform: str,
    in_reply_to: str,
    text: str,
    agent: str,
    card: tuple[int, str, str] | None = None,
) -> Effect:
    """Post an agent's reply on the source, under the customer's message (``agent``: who
    sent it, as the interaction log names them, e.g. ``slack:U0AGENT``; ``card``: the card it
    was sent from, as its interaction id, channel and message ts, whose status tells of a
    failure)."""
    payload: dict[str, Any] = {
        "interaction_id": interaction_id,
        "conversation_id": conversation_id,
        "platform": platform,
        "in_reply_to": in_reply_to,
        "text": text,
        "agent": agent,
    }
    if card is not None:
        payload["card"] = {"id": card[0], "channel": card[1], "ts": card[2]}
    return {
        "idempotency_key": f"{REPLY}:{interaction_id}",
        "kind": REPLY,
        "ordering_key": f"conversation:{conversation_id}",
        "payload": payload,
    }


def reply_failed(failed: OutboxEffect, reason: str) -> Effect:
    """Tell the team, in the conversation's thread, that a reply never reached the customer
    (the platform refused it, or it could not be sent for a day)."""
    payload = failed.payload
    return {
        # Enqueued with the failure in one transaction; each failure (also after `earful
        # outbox retry`) is told once.
        "idempotency_key": f"{REPLY_FAILED}:{payload.get('interaction_id')}:{uuid.uuid4().hex}",
        "kind": REPLY_FAILED,
        "ordering_key": failed.ordering_key,
        "payload": {
            "subject": failed.ordering_key,
            "interaction_id": payload.get("interaction_id"),
            "platform": payload.get("platform"),
            "text": payload.get("text"),
            "agent": payload.get("agent"),
            "reason": reason,
        },
    }


def incident_opened(incident: Incident, first: Interaction) -> Effect:
    """Post one card for a new incident, with its first report."""
    return {
        "idempotency_key": f"{INCIDENT}:{incident.id}",
        "kind": INCIDENT,
        "ordering_key": f"incident:{incident.id}",
        "payload": {
            "incident": incident_to_json(incident),
            "interaction": interaction_to_json(first),
        },
    }


def incident_updated(incident: Incident, latest: Interaction, joined: int) -> Effect:
    """Update an incident's card: ``joined`` more reports, the latest of them shown."""
    return {
        "idempotency_key": f"{INCIDENT_UPDATE}:{incident.id}:{latest.id}",
        "kind": INCIDENT_UPDATE,
        "ordering_key": f"incident:{incident.id}",
        "payload": {
            "incident": incident_to_json(incident),
            "interaction": interaction_to_json(latest),
            "joined": joined,
        },
    }


def step_label(step: EscalationStep) -> str:
    """A step as people may see it; a ticket step names only its webhook's host, since webhook
    URLs often carry a token."""
    if step.kind == "ticket":
        return f"ticket {urlsplit(step.target).hostname or 'webhook'}"
    return str(step)


def escalation_by_hand(
    *,
    subject: str,
    step: EscalationStep,
    number: int | None,
    timer: Timer | None,
    card: Interaction,
    agent: str,
    at: datetime,
) -> Effect:
    """Run an escalation step now because an agent asked (``number``: its place in the
    playbook's ladder, None for a person the agent picked). Same kinds as an SLA breach's step:
    a ticket step goes to its webhook, the others to the team surface."""
    decision = card.decision
    mention = card.mention
    return {
        "idempotency_key": f"{ESCALATION}:manual:{uuid.uuid4().hex}",  # each request runs once
        "kind": TICKET if step.kind == "ticket" else ESCALATION,
        "ordering_key": f"conversation:{card.conversation_id}",
        "payload": {
            "subject": subject,
            "conversation_id": card.conversation_id,
            "incident_id": timer.incident_id if timer else None,
            "interaction_id": card.id,
            "step": number,
            "steps": len(timer.steps) if timer else len(decision.escalation) if decision else 0,
            "action": step.kind,
            "target": step.target,
            "by": agent,
            "at": at.isoformat(),
            "due_at": timer.due_at.isoformat() if timer else None,
            "priority": decision.priority.value if decision and decision.priority else None,
            "playbook": decision.playbook if decision else None,
            "channel": decision.channel if decision else None,
            "mention": {
                "text": mention.text,
                "url": mention.url,
                "platform": mention.platform.value,
            },
        },
    }


def escalation(timer: Timer, *, breached_at: datetime, mention: dict[str, Any]) -> Effect:
    """Run one escalation step of a breached SLA (a ticket step goes to its webhook).

    ``mention``: what the card showed of the mention that armed the timer (text, url, author).
    """
    step = timer.next_step
    kind = TICKET if step is not None and step.kind == "ticket" else ESCALATION
    # Timers armed before the deadline was recorded: it was ``step`` escalation periods before.
    response_due = timer.response_due_at or (
        timer.due_at - timer.step * (timer.escalate_after or timedelta(0))
    )
    ordering = (
        f"incident:{timer.incident_id}"
        if timer.incident_id is not None
        else f"conversation:{timer.conversation_id}"
    )
    return {
        "idempotency_key": f"{ESCALATION}:{timer.id}:{timer.generation}:{timer.step}",
        "kind": kind,
        "ordering_key": ordering,
        "payload": {
            "subject": timer.subject,
            "conversation_id": timer.conversation_id,
            "incident_id": timer.incident_id,
            "interaction_id": timer.interaction_id,
            "step": timer.step + 1,
            "steps": len(timer.steps),
            "action": step.kind if step else "breach",
            "target": step.target if step else timer.channel,
            "due_at": timer.due_at.isoformat(),
            "breached_at": breached_at.isoformat(),
            "response_due_at": response_due.isoformat(),
            "overdue_seconds": int((breached_at - response_due).total_seconds()),
            "priority": timer.priority,
            "playbook": timer.playbook,
            "channel": timer.channel,
            "mention": mention,
        },
    }
