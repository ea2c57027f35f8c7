"""Influence of a mention's author: a documented 0–100 score, a tier and the metrics behind it.

Score (X and any platform that gives follower counts), capped at 100:

    followers   60 × min(1, log10(followers + 1) / 6)       1M followers → 60
    listed      10 × min(1, log10(listed + 1) / 4)          10k lists    → 10
    verified    business or government 15, paid ("blue") 5, none 0
    age          5 × min(1, account age in years / 5)
    engagement  10 × min(1, log10(engagement + 1) / 4)      likes+reposts+replies+quotes

Tiers: high ≥ 70 (an influencer), medium ≥ 45, low ≥ 20, minimal below. A Telegram member or
blog author without follower metrics is ``unknown``: no score, never 0.
"""

from __future__ import annotations

import math
from datetime import datetime

from bot.models import Influence, Mention, Reason, VerifiedType

TIERS = ((70, "high"), (45, "medium"), (20, "low"), (0, "minimal"))
VERIFIED_POINTS = {
    VerifiedType.BUSINESS: 15.0,
    VerifiedType.GOVERNMENT: 15.0,
    VerifiedType.BLUE: 5.0,
    VerifiedType.NONE: 0.0,
}


def _log_share(count: int, decades: float) -> float:
    return min(1.0, math.log10(count + 1) / decades)


def tier_of(score: int) -> str:
    """The tier name for a score."""
    return next(name for floor, name in TIERS if score >= floor)


def influence(mention: Mention, *, now: datetime) -> Influence:
    """Score the author of ``mention``; ``now`` dates the account's age."""
    author = mention.author
    if author.followers is None:
        return Influence(
            tier="unknown",
            score=None,
            factors=(
                Reason(
                    "followers", "not given", f"{mention.platform.value} gives no audience metrics"
                ),
            ),
        )
    parts: list[tuple[str, str, float]] = [
        ("followers", f"{author.followers:,}", 60 * _log_share(author.followers, 6))
    ]
    if author.listed is not None:
        parts.append(("listed", f"{author.listed:,}", 10 * _log_share(author.listed, 4)))
    parts.append(("verified", author.verified_type.value, VERIFIED_POINTS[author.verified_type]))
    if author.account_created is not None:
        years = max(0.0, (now - author.account_created).days / 365.25)
        parts.append(("account age", f"{years:.1f} years", 5 * min(1.0, years / 5)))
    if mention.engagement is not None:
        parts.append(
            ("engagement", f"{mention.engagement:,}", 10 * _log_share(mention.engagement, 4))
        )
    score = min(100, round(sum(points for _, _, points in parts)))
    return Influence(
        tier=tier_of(score),
        score=score,
        factors=tuple(Reason(name, value, f"+{points:.1f}") for name, value, points in parts),
    )
