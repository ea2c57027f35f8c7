"""The console view of cards: what Slack will show, drawn in the terminal (demo, no-Slack runs)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from bot import effects
from bot.errors import DeliveryRejected
from bot.models import Classification, ContactSnapshot, Interaction
from storage.codec import incident_from_json, interaction_from_json
from storage.outbox import Effect


def label_parts(
    classification: Classification, *, flag: str = "⚑", warn: str = "⚠", people: bool = True
) -> list[str]:
    """What the classifiers found, as short parts; ``people`` adds influence and value."""
    if not classification.classified:
        return ["unclassified"]
    parts = []
    for name in ("sentiment", "intent"):
        score = getattr(classification, name)
        if score is not None:
            parts.append(f"{score.label} {score.score:.2f}")
    if classification.flags:
        parts.append(f"{flag} " + ", ".join(classification.flags))
    if classification.language and classification.language not in ("en", "und"):
        parts.append(f"language {classification.language}")
    influence, value = classification.influence, classification.value
    if influence is not None and people:
        score = f" {influence.score}" if influence.score is not None else ""
        parts.append(f"influence {influence.tier}{score}")
    if value is not None:
        if people:
            score = f" {value.score}" if value.score is not None else ""
            parts.append(f"value {value.tier}{score}")
        if value.deviation:
            parts.append(f"{warn} {value.deviation}")
    return parts


def contact_label(contact: ContactSnapshot) -> str | None:
    """What the history knows of the author, in a few words."""
    if contact.contact_id is None:
        return None
    if contact.from_crm:
        parts = [f"CRM: {contact.name or f'contact {contact.contact_id}'}"]
        if contact.plan:
            parts.append(contact.plan)
        if contact.lifetime_value is not None:
            parts.append(f"LTV {contact.lifetime_value:,.2f}")
        return " · ".join(parts)
    seen = contact.inbound_count
    return "first message" if seen == 0 else f"seen {seen} time{'s' if seen > 1 else ''} before"


def render_card(card: Interaction) -> Panel:
    """A routed interaction as a rich panel: author, text and link, labels, decision, reasons."""
    mention, decision = card.mention, card.decision
    if decision is None or card.classification is None:
        raise ValueError(f"interaction {card.id} has not been routed")
    author = mention.author
    who = Text(author.label, style="bold")
    if author.display_name and author.handle:
        who.append(f" ({author.display_name})")
    if author.followers is not None:
        who.append(f" · {author.followers:,} followers", style="dim")
    label = contact_label(card.contact)
    if label:
        who.append(f" · {label}", style="cyan")
    body = Text(mention.text if len(mention.text) <= 600 else mention.text[:600] + "…")
    lines: list[Text] = [who, body]
    if mention.url:
        lines.append(Text(mention.url, style="blue underline"))
    lines.append(Text(" · ".join(label_parts(card.classification)), style="magenta"))
    outcome = (
        f"{decision.action.value} {decision.priority.value if decision.priority else ''}".strip()
        if decision.action
        else "not judged"
    )
    lines.append(Text(f"Decision: {outcome} → {decision.channel}", style="bold yellow"))
    for reason in decision.reasons:
        lines.append(Text(f"  • {reason.factor}: {reason.value} — {reason.effect}", style="dim"))
    for number, suggestion in enumerate(card.suggestions, start=1):
        lines.append(Text(f"  {number}. {suggestion.text}", style="green"))
    title = (
        f"{decision.channel} · {mention.platform.value} · {mention.created_at:%Y-%m-%d %H:%M} UTC"
    )
    return Panel(Group(*lines), title=title, title_align="left", expand=True)


def render_incident(payload: dict[str, Any], *, opened: bool) -> Panel | Text:
    """An incident card (the first report in full), or a one-line update to it."""
    incident = incident_from_json(payload["incident"])
    latest = interaction_from_json(payload["interaction"])
    priority = incident.priority.value if incident.priority else ""
    head = (
        f"INCIDENT #{incident.id} {priority} · {incident.key} · {incident.reports} "
        f"report{'s' if incident.reports != 1 else ''} since {incident.opened_at:%H:%M} UTC"
    )
    if not opened:
        return Text(
            f"↳ {incident.channel} · incident #{incident.id}: +{payload['joined']} "
            f"({incident.reports} in all) · latest: {latest.mention.text[:100]}",
            style="red",
        )
    card = render_card(latest)
    return Panel(Group(Text(head, style="bold red"), card), title=incident.channel, expand=True)


def render_escalation(payload: dict[str, Any]) -> Text:
    """One line for an escalation step that ran because a first response is overdue."""
    overdue = int(payload["overdue_seconds"]) // 60
    what = f"{payload['action']} {payload['target']}"
    return Text(
        f"⏰ SLA breached {overdue} min ago · {payload['subject']} ({payload['priority']}, "
        f"{payload['playbook']}) · step {payload['step']}/{payload['steps']}: {what}",
        style="bold red",
    )


class ConsoleView:
    """The team surface in the terminal: cards, incidents and escalations instead of Slack."""

    def __init__(self, *, console: Console) -> None:
        self.console = console

    def deliver(self, effect: Effect) -> None:
        """Draw the effect."""
        if effect.kind == effects.CARD:
            self.console.print(render_card(interaction_from_json(effect.payload)))
        elif effect.kind in (effects.INCIDENT, effects.INCIDENT_UPDATE):
            opened = effect.kind == effects.INCIDENT
            self.console.print(render_incident(effect.payload, opened=opened))
        elif effect.kind == effects.ESCALATION:
            self.console.print(render_escalation(effect.payload))
        elif effect.kind == effects.CARD_STATUS:
            card = interaction_from_json(effect.payload["card"])
            self.console.print(Text(f"↳ card {card.id}: {effect.payload['status']}", style="cyan"))
        elif effect.kind == effects.REPLY_FAILED:
            payload = effect.payload
            self.console.print(
                Text(
                    f"⚠ reply {payload['interaction_id']} by {payload.get('agent') or 'an agent'} "
                    f"did not go out on {payload.get('platform')} as sent, and will not be sent "
                    f"again: {payload['reason']}",
                    style="bold red",
                )
            )
        else:
            raise DeliveryRejected(f"the console cannot show {effect.kind!r} effects")
