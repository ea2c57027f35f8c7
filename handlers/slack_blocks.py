"""Block Kit for Earful's Slack cards: pure functions from the domain model to Slack's JSON.

A card shows the author (handle, influence, customer tier and value), the text with a link to
the source, the labels, priority and SLA due time, the reasons, the suggested replies and the
buttons agents act with. Every button's ``value`` is the interaction id, so the action handler
finds the mention whatever happened to the message since.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.console import contact_label, label_parts
from bot.models import Incident, Interaction

Block = dict[str, Any]
# Slack's limits: section text 3,000 characters, a message 50 blocks, a button value 2,000.
_SECTION_LIMIT = 3000
ACTION_PREFIX = "earful."


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75], "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:_SECTION_LIMIT]}


def _date(at: datetime) -> str:
    """A time each reader sees in their own zone (UTC as the fallback text)."""
    return f"<!date^{int(at.timestamp())}^{{date_short}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def escape(text: str) -> str:
    """Slack's three control characters, so customer text can never ping or link by itself."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _button(action: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"{ACTION_PREFIX}{action}",
        "text": _plain(label),
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _who(card: Interaction) -> str:
    mention = card.mention
    author = mention.author
    parts = [f"*{escape(author.label)}*"]
    if author.display_name and author.handle:
        parts.append(escape(author.display_name))
    classification = card.classification
    if classification and classification.influence:
        influence = classification.influence
        score = f" {influence.score}" if influence.score is not None else ""
        parts.append(f"influence {influence.tier}{score}")
    if classification and classification.value:
        value = classification.value
        score = f" {value.score}" if value.score is not None else ""
        parts.append(f"value {value.tier}{score}")
    label = contact_label(card.contact)
    if label:
        parts.append(escape(label))
    return " · ".join(parts)


def _labels(card: Interaction) -> str:
    if card.classification is None:
        return "unclassified"
    parts = label_parts(
        card.classification, flag=":warning:", warn=":chart_with_downwards_trend:", people=False
    )
    return escape(" · ".join(parts))


def _decision(card: Interaction) -> str:
    decision = card.decision
    if decision is None or decision.action is None:
        return "*Not judged*: triage it"
    line = f"*{decision.action.value} {decision.priority.value if decision.priority else ''}*"
    if decision.respond_by is not None:
        line += f" · reply by {_date(decision.respond_by)}"
    if decision.playbook:
        line += f" · {escape(decision.playbook)}/{escape(decision.rule or '')}"
    return line


def card_blocks(card: Interaction, *, status: str | None = None) -> tuple[str, list[Block]]:
    """The fallback text and the blocks of a mention's card.

    ``status`` is Earful's own mrkdwn (e.g. ``Claimed by <@U123>``), shown as it is.
    """
    mention = card.mention
    text = escape(mention.text if len(mention.text) <= 2500 else mention.text[:2500] + "…")
    link = f"\n<{mention.url}|Open on {mention.platform.value}>" if mention.url else ""
    blocks: list[Block] = [
        {"type": "section", "text": _mrkdwn(_who(card))},
        {"type": "section", "text": _mrkdwn(f"{text}{link}")},
        {"type": "context", "elements": [_mrkdwn(_labels(card))]},
        {"type": "section", "text": _mrkdwn(_decision(card))},
    ]
    decision = card.decision
    if decision is not None and decision.reasons:
        reasons = "\n".join(
            f"• {escape(r.factor)}: {escape(r.value)} — {escape(r.effect)}"
            for r in decision.reasons
        )
        blocks.append({"type": "context", "elements": [_mrkdwn(reasons)]})
    if decision is not None and decision.escalation:
        steps = " → ".join(escape(str(step)) for step in decision.escalation)
        blocks.append({"type": "context", "elements": [_mrkdwn(f"Escalation: {steps}")]})
    value = str(card.id)
    for number, suggestion in enumerate(card.suggestions, start=1):
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(f"*{number}.* {escape(suggestion.text)}"),
                "accessory": _button(f"send_suggestion_{number}", f"Send {number}", value),
            }
        )
    if status:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"*{status}*")]})
    blocks.append(
        {
            "type": "actions",
            "block_id": f"earful.card.{card.id}",
            "elements": [
                _button("claim", "Claim", value, "primary"),
                _button("reply", "Reply…", value),
                _button("escalate", "Escalate…", value),
                _button("snooze", "Snooze", value),
                _button("dismiss", "Dismiss…", value, "danger"),
                _button("resolve", "Resolve", value),
                _button("correct", "Correct labels…", value),
            ],
        }
    )
    author = mention.author.label
    priority = decision.priority.value if decision and decision.priority else "untriaged"
    fallback = f"{priority} · {author}: {mention.text[:150]}"
    return fallback, blocks


def incident_blocks(incident: Incident, first: Interaction) -> tuple[str, list[Block]]:
    """The incident card: what it is, how many reports, and its first report as a card."""
    priority = incident.priority.value if incident.priority else ""
    head = (
        f":rotating_light: *Incident #{incident.id}* {priority} · {escape(incident.key)} · "
        f"*{incident.reports}* report{'s' if incident.reports != 1 else ''} since "
        f"{_date(incident.opened_at)}"
    )
    fallback, blocks = card_blocks(first)
    return f"Incident #{incident.id}: {fallback}", [
        {"type": "section", "text": _mrkdwn(head)},
        {"type": "divider"},
        *blocks,
    ]


def report_blocks(card: Interaction) -> tuple[str, list[Block]]:
    """A later message of a conversation (or report of an incident), posted in the thread."""
    mention = card.mention
    link = f" <{mention.url}|source>" if mention.url else ""
    text = f"{_who(card)}\n{escape(mention.text[:2500])}{link}\n{_labels(card)}"
    return f"{mention.author.label}: {mention.text[:150]}", [
        {"type": "section", "text": _mrkdwn(text)}
    ]


def escalation_text(payload: dict[str, Any]) -> str:
    """An escalation step as a Slack message (``mention`` targets are pinged by name)."""
    overdue = int(payload["overdue_seconds"]) // 60
    target = str(payload["target"])
    ping = f"{target} " if payload["action"] in ("mention", "page") else ""
    return (
        f":alarm_clock: {ping}SLA breached {overdue} min ago: {payload['priority']} "
        f"({payload['playbook']}), step {payload['step']}/{payload['steps']}: "
        f"{payload['action']} {target}"
    )
