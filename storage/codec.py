"""JSON forms of domain values for the database's JSON columns and the outbox payloads."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.models import (
    Action,
    Author,
    Classification,
    ContactSnapshot,
    CustomerValue,
    Decision,
    Direction,
    EscalationStep,
    Incident,
    Influence,
    Interaction,
    Mention,
    Platform,
    Priority,
    Reason,
    Score,
    Suggestion,
    VerifiedType,
)


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def author_to_json(author: Author) -> dict[str, Any]:
    """An author as a JSON object."""
    return {
        "handle": author.handle,
        "display_name": author.display_name,
        "platform_user_id": author.platform_user_id,
        "followers": author.followers,
        "following": author.following,
        "posts": author.posts,
        "listed": author.listed,
        "verified_type": author.verified_type.value,
        "account_created": _dt(author.account_created),
    }


def author_from_json(data: dict[str, Any]) -> Author:
    """The inverse of :func:`author_to_json`."""
    return Author(
        handle=data.get("handle"),
        display_name=data.get("display_name"),
        platform_user_id=data.get("platform_user_id"),
        followers=data.get("followers"),
        following=data.get("following"),
        posts=data.get("posts"),
        listed=data.get("listed"),
        verified_type=VerifiedType(data.get("verified_type") or "none"),
        account_created=_parse_dt(data.get("account_created")),
    )


def mention_to_json(mention: Mention) -> dict[str, Any]:
    """A mention as a JSON object (the raw payload is left out: it stays in its own column)."""
    return {
        "platform": mention.platform.value,
        "external_id": mention.external_id,
        "text": mention.text,
        "author": author_to_json(mention.author),
        "created_at": _dt(mention.created_at),
        "conversation_id": mention.conversation_id,
        "in_reply_to": mention.in_reply_to,
        "url": mention.url,
        "direction": mention.direction.value,
        "engagement": mention.engagement,
    }


def mention_from_json(data: dict[str, Any]) -> Mention:
    """The inverse of :func:`mention_to_json`."""
    created = _parse_dt(data["created_at"])
    assert created is not None  # noqa: S101 - always written by mention_to_json
    return Mention(
        platform=Platform(data["platform"]),
        external_id=data["external_id"],
        text=data["text"],
        author=author_from_json(data["author"]),
        created_at=created,
        conversation_id=data.get("conversation_id"),
        in_reply_to=data.get("in_reply_to"),
        url=data.get("url"),
        direction=Direction(data.get("direction", "inbound")),
        engagement=data.get("engagement"),
    )


def _score(value: Score | None) -> dict[str, Any] | None:
    return {"label": value.label, "score": value.score} if value else None


def _parse_score(data: dict[str, Any] | None) -> Score | None:
    return Score(label=data["label"], score=float(data["score"])) if data else None


def _reasons(values: tuple[Reason, ...]) -> list[dict[str, str]]:
    return [{"factor": r.factor, "value": r.value, "effect": r.effect} for r in values]


def _parse_reasons(data: list[dict[str, str]] | None) -> tuple[Reason, ...]:
    return tuple(Reason(**r) for r in data or ())


def influence_to_json(value: Influence) -> dict[str, Any]:
    """An influence score as a JSON object."""
    return {"tier": value.tier, "score": value.score, "factors": _reasons(value.factors)}


def value_to_json(value: CustomerValue) -> dict[str, Any]:
    """A customer value as a JSON object."""
    return {
        "tier": value.tier,
        "score": value.score,
        "deviation": value.deviation,
        "factors": _reasons(value.factors),
    }


def classification_to_json(value: Classification) -> dict[str, Any]:
    """A classification as a JSON object."""
    return {
        "classified": value.classified,
        "sentiment": _score(value.sentiment),
        "intent": _score(value.intent),
        "flags": list(value.flags),
        "language": value.language,
        "influence": influence_to_json(value.influence) if value.influence else None,
        "value": value_to_json(value.value) if value.value else None,
    }


def classification_from_json(data: dict[str, Any]) -> Classification:
    """The inverse of :func:`classification_to_json`."""
    influence, customer = data.get("influence"), data.get("value")
    return Classification(
        classified=bool(data["classified"]),
        sentiment=_parse_score(data.get("sentiment")),
        intent=_parse_score(data.get("intent")),
        flags=tuple(data.get("flags", ())),
        language=data.get("language"),
        influence=(
            Influence(
                influence["tier"], influence["score"], _parse_reasons(influence.get("factors"))
            )
            if influence
            else None
        ),
        value=(
            CustomerValue(
                customer["tier"],
                customer["score"],
                customer.get("deviation"),
                _parse_reasons(customer.get("factors")),
            )
            if customer
            else None
        ),
    )


def decision_to_json(value: Decision) -> dict[str, Any]:
    """A decision as a JSON object, reasons included."""
    return {
        "action": value.action.value if value.action else None,
        "priority": value.priority.value if value.priority else None,
        "channel": value.channel,
        "playbook": value.playbook,
        "reasons": _reasons(value.reasons),
        "rule": value.rule,
        "runner_up": value.runner_up,
        "owner": value.owner,
        "respond_by": _dt(value.respond_by),
        "escalation": [{"kind": step.kind, "target": step.target} for step in value.escalation],
        "escalate_after": (
            value.escalate_after.total_seconds() if value.escalate_after is not None else None
        ),
        "incident": value.incident,
        "guidance": list(value.guidance),
    }


def decision_from_json(data: dict[str, Any]) -> Decision:
    """The inverse of :func:`decision_to_json`."""
    return Decision(
        action=Action(data["action"]) if data.get("action") else None,
        priority=Priority(data["priority"]) if data.get("priority") else None,
        channel=data["channel"],
        playbook=data.get("playbook"),
        reasons=_parse_reasons(data.get("reasons")),
        rule=data.get("rule"),
        runner_up=data.get("runner_up"),
        owner=data.get("owner"),
        respond_by=_parse_dt(data.get("respond_by")),
        escalation=tuple(
            EscalationStep(step["kind"], step["target"]) for step in data.get("escalation") or ()
        ),
        escalate_after=(
            timedelta(seconds=data["escalate_after"])
            if data.get("escalate_after") is not None
            else None
        ),
        incident=data.get("incident"),
        guidance=tuple(data.get("guidance") or ()),
    )


def snapshot_to_json(value: ContactSnapshot) -> dict[str, Any]:
    """A contact snapshot as a JSON object (money as a string, to keep every cent)."""
    return {
        "contact_id": value.contact_id,
        "name": value.name,
        "origin": value.origin,
        "organisation": value.organisation,
        "plan": value.plan,
        "lifetime_value": str(value.lifetime_value) if value.lifetime_value is not None else None,
        "last_order_date": value.last_order_date.isoformat() if value.last_order_date else None,
        "order_count": value.order_count,
        "inbound_count": value.inbound_count,
        "outbound_count": value.outbound_count,
        "past_sentiment": [value.past_positive, value.past_neutral, value.past_negative],
        "open_conversations": value.open_conversations,
    }


def snapshot_from_json(data: dict[str, Any]) -> ContactSnapshot:
    """The inverse of :func:`snapshot_to_json`."""
    ltv, last_order = data.get("lifetime_value"), data.get("last_order_date")
    past = data.get("past_sentiment") or (0, 0, 0)
    return ContactSnapshot(
        contact_id=data.get("contact_id"),
        name=data.get("name"),
        origin=data.get("origin", "unknown"),
        organisation=data.get("organisation"),
        plan=data.get("plan"),
        lifetime_value=Decimal(ltv) if ltv is not None else None,
        last_order_date=date.fromisoformat(last_order) if last_order else None,
        order_count=data.get("order_count"),
        inbound_count=int(data.get("inbound_count", 0)),
        outbound_count=int(data.get("outbound_count", 0)),
        past_positive=int(past[0]),
        past_neutral=int(past[1]),
        past_negative=int(past[2]),
        open_conversations=int(data.get("open_conversations", 0)),
    )


def interaction_to_json(value: Interaction) -> dict[str, Any]:
    """An interaction as a JSON object: the payload of its card in the outbox."""
    return {
        "id": value.id,
        "mention": mention_to_json(value.mention),
        "conversation_id": value.conversation_id,
        "contact": snapshot_to_json(value.contact),
        "classification": (
            classification_to_json(value.classification) if value.classification else None
        ),
        "decision": decision_to_json(value.decision) if value.decision else None,
        "suggestions": [
            {"text": s.text, "source": s.source, "score": s.score} for s in value.suggestions
        ],
        "agent": value.agent,
    }


def interaction_from_json(data: dict[str, Any]) -> Interaction:
    """The inverse of :func:`interaction_to_json`."""
    classification, decision = data.get("classification"), data.get("decision")
    return Interaction(
        id=int(data["id"]),
        mention=mention_from_json(data["mention"]),
        conversation_id=int(data["conversation_id"]),
        contact=snapshot_from_json(data["contact"]),
        classification=classification_from_json(classification) if classification else None,
        decision=decision_from_json(decision) if decision else None,
        suggestions=tuple(Suggestion(**s) for s in data.get("suggestions", ())),
        agent=data.get("agent"),
    )


def incident_to_json(value: Incident) -> dict[str, Any]:
    """An incident as a JSON object."""
    return {
        "id": value.id,
        "key": value.key,
        "channel": value.channel,
        "priority": value.priority.value if value.priority else None,
        "reports": value.reports,
        "opened_at": _dt(value.opened_at),
        "last_report_at": _dt(value.last_report_at),
    }


def incident_from_json(data: dict[str, Any]) -> Incident:
    """The inverse of :func:`incident_to_json`."""
    return Incident(
        id=data["id"],
        key=data["key"],
        channel=data["channel"],
        priority=Priority(data["priority"]) if data.get("priority") else None,
        reports=data["reports"],
        opened_at=datetime.fromisoformat(data["opened_at"]),
        last_report_at=datetime.fromisoformat(data["last_report_at"]),
    )
