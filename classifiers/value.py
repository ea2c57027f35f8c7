"""Customer value: a documented 0–100 score and tier from CRM fields and the contact history.

Score, capped at 100:

    lifetime value  40 × min(1, log10(LTV + 1) / 4)         10,000 → 40
    plan            free 0, basic 5, plus 10, premium 15, business/enterprise 20
    frequency       15 × min(1, log10(orders + 1) / 2)      99 orders → 15
    recency         last order ≤ 30 days 15, ≤ 90 days 10, ≤ 365 days 5, older 0
    loyalty         5 when the history holds 3+ earlier messages, mostly not negative

Tiers: vip ≥ 70, high ≥ 45, standard ≥ 20, low below; ``unknown`` for a stranger (no CRM
record and no history).

Deviation, the just-in-time retention trigger, compares the mention with the customer's own
baseline:

- ``turning negative``: a negative mention from a customer whose earlier messages (3 or more)
  were at least 60 % positive and at most 20 % negative;
- ``lapsed buyer complaining``: a negative mention from a frequent buyer (10+ orders) who has
  not ordered for 60 days or more.
"""

from __future__ import annotations

import math
from datetime import date

from bot.models import ContactSnapshot, CustomerValue, Reason, Score

TIERS = ((70, "vip"), (45, "high"), (20, "standard"), (0, "low"))
PLAN_POINTS = {"free": 0, "basic": 5, "plus": 10, "premium": 15, "business": 20, "enterprise": 20}


def _recency_points(days: int) -> int:
    if days <= 30:
        return 15
    if days <= 90:
        return 10
    return 5 if days <= 365 else 0


def customer_value(
    contact: ContactSnapshot, sentiment: Score | None, *, today: date
) -> CustomerValue:
    """Score a contact and look for a departure from their baseline in this mention."""
    past = contact.past_positive + contact.past_neutral + contact.past_negative
    if not contact.from_crm and past == 0:
        return CustomerValue(
            tier="unknown",
            score=None,
            factors=(Reason("contact", "stranger", "no CRM record or history"),),
        )
    factors: list[Reason] = []
    score = 0.0
    if contact.lifetime_value is not None:
        points = 40 * min(1.0, math.log10(float(contact.lifetime_value) + 1) / 4)
        score += points
        factors.append(Reason("lifetime value", f"{contact.lifetime_value:,.2f}", f"+{points:.1f}"))
    if contact.plan is not None:
        points = PLAN_POINTS.get(contact.plan.lower(), 0)
        score += points
        factors.append(Reason("plan", contact.plan, f"+{points}"))
    if contact.order_count is not None:
        points = 15 * min(1.0, math.log10(contact.order_count + 1) / 2)
        score += points
        factors.append(Reason("orders", str(contact.order_count), f"+{points:.1f}"))
    days_since_order = (today - contact.last_order_date).days if contact.last_order_date else None
    if days_since_order is not None:
        points = _recency_points(days_since_order)
        score += points
        factors.append(Reason("last order", f"{days_since_order} days ago", f"+{points}"))
    if past >= 3 and contact.past_negative / past < 0.5:
        score += 5
        factors.append(Reason("history", f"{past} earlier messages", "+5"))
    if contact.open_conversations:
        factors.append(
            Reason("open conversations", str(contact.open_conversations), "shown, not scored")
        )
    total = min(100, round(score))
    deviation = _deviation(contact, sentiment, days_since_order)
    if deviation:
        factors.append(Reason("deviation", deviation, "departs from this customer's baseline"))
    tier = next(name for floor, name in TIERS if total >= floor)
    return CustomerValue(tier=tier, score=total, deviation=deviation, factors=tuple(factors))


def _deviation(
    contact: ContactSnapshot, sentiment: Score | None, days_since_order: int | None
) -> str | None:
    if sentiment is None or sentiment.label != "negative":
        return None
    past = contact.past_positive + contact.past_neutral + contact.past_negative
    if past >= 3 and contact.past_positive / past >= 0.6 and contact.past_negative / past <= 0.2:
        return "turning negative"
    if (contact.order_count or 0) >= 10 and days_since_order is not None and days_since_order >= 60:
        return "lapsed buyer complaining"
    return None
