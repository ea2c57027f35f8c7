"""The classifiers that are formulas and rules: influence, customer value, risk flags, language."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from bot.models import Author, ContactSnapshot, Mention, Platform, Score, VerifiedType
from classifiers.flags import risk_flags
from classifiers.influence import influence
from classifiers.language import LanguageDetector
from classifiers.value import customer_value

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def _mention(
    author: Author, platform: Platform = Platform.X, engagement: int | None = None
) -> Mention:
    return Mention(
        platform=platform,
        external_id="1",
        text="hi",
        author=author,
        created_at=NOW,
        engagement=engagement,
    )


@pytest.mark.parametrize(
    ("author", "engagement", "tier", "low", "high"),
    [
        (
            Author(
                handle="tariq",
                followers=842_000,
                listed=3_900,
                verified_type=VerifiedType.BUSINESS,
                account_created=datetime(2011, 1, 1, tzinfo=UTC),
            ),
            1_200,
            "high",
            90,
            100,
        ),
        (
            Author(
                handle="local_blogger",
                followers=25_000,
                listed=120,
                verified_type=VerifiedType.BLUE,
                account_created=datetime(2019, 1, 1, tzinfo=UTC),
            ),
            40,
            "medium",
            45,
            69,
        ),
        (
            Author(
                handle="maya",
                followers=1_200,
                listed=4,
                account_created=datetime(2014, 3, 9, tzinfo=UTC),
            ),
            None,
            "low",
            20,
            44,
        ),
        (
            Author(
                handle="new_user",
                followers=3,
                listed=0,
                account_created=datetime(2026, 10, 1, tzinfo=UTC),
            ),
            0,
            "minimal",
            0,
            19,
        ),
    ],
)
def test_influence_tiers(
    author: Author, engagement: int | None, tier: str, low: int, high: int
) -> None:
    """Scores an influencer high, a mid-size account medium, an ordinary customer low and a new account minimal."""
    result = influence(_mention(author, engagement=engagement), now=NOW)
    assert result.tier == tier
    assert result.score is not None
    assert low <= result.score <= high
    assert result.factors[0].factor == "followers"


def test_influence_unknown_without_metrics() -> None:
    """A Telegram member or blog author without audience metrics is unknown, never zero."""
    result = influence(_mention(Author(handle="elena_v"), Platform.TELEGRAM), now=NOW)
    assert (result.tier, result.score) == ("unknown", None)


def test_business_verification_outranks_paid() -> None:
    """Business and government verification count for more than a paid check mark."""
    base = {"handle": "a", "followers": 10_000, "listed": 10}
    business = influence(
        _mention(Author(**base, verified_type=VerifiedType.BUSINESS)), now=NOW
    ).score
    paid = influence(_mention(Author(**base, verified_type=VerifiedType.BLUE)), now=NOW).score
    assert business is not None
    assert paid is not None
    assert business > paid


NEGATIVE = Score("negative", 0.9)


def test_value_tiers() -> None:
    """A premium customer with a large lifetime value is vip; a small recent buyer standard; a stranger unknown."""
    elena = ContactSnapshot(
        contact_id=1,
        origin="crm",
        plan="premium",
        lifetime_value=Decimal("12480"),
        last_order_date=date(2026, 10, 30),
        order_count=146,
    )
    small = ContactSnapshot(
        contact_id=2,
        origin="crm",
        plan="basic",
        lifetime_value=Decimal("120"),
        last_order_date=date(2026, 9, 1),
        order_count=3,
    )
    lapsed = ContactSnapshot(
        contact_id=3,
        origin="crm",
        plan="free",
        lifetime_value=Decimal("15"),
        last_order_date=date(2024, 1, 1),
        order_count=1,
    )
    assert customer_value(elena, None, today=NOW.date()).tier == "vip"
    assert customer_value(small, None, today=NOW.date()).tier == "standard"
    assert customer_value(lapsed, None, today=NOW.date()).tier == "low"
    stranger = customer_value(ContactSnapshot(contact_id=None), NEGATIVE, today=NOW.date())
    assert (stranger.tier, stranger.score, stranger.deviation) == ("unknown", None, None)


def test_deviation_when_a_positive_customer_turns_negative() -> None:
    """Flags a long-positive customer's first negative message as a departure from their baseline."""
    loyal = ContactSnapshot(
        contact_id=1,
        origin="crm",
        plan="premium",
        lifetime_value=Decimal("900"),
        past_positive=5,
        past_neutral=1,
        past_negative=0,
    )
    assert customer_value(loyal, NEGATIVE, today=NOW.date()).deviation == "turning negative"
    assert customer_value(loyal, Score("positive", 0.9), today=NOW.date()).deviation is None
    grumpy = ContactSnapshot(
        contact_id=1, origin="crm", past_positive=1, past_neutral=1, past_negative=4
    )
    assert customer_value(grumpy, NEGATIVE, today=NOW.date()).deviation is None


def test_deviation_when_a_lapsed_frequent_buyer_complains() -> None:
    """Flags a frequent buyer who stopped ordering two months ago and now complains."""
    lapsed = ContactSnapshot(
        contact_id=1, origin="crm", order_count=40, last_order_date=date(2026, 8, 1)
    )
    assert (
        customer_value(lapsed, NEGATIVE, today=NOW.date()).deviation == "lapsed buyer complaining"
    )
    recent = ContactSnapshot(
        contact_id=1, origin="crm", order_count=40, last_order_date=date(2026, 10, 25)
    )
    assert customer_value(recent, NEGATIVE, today=NOW.date()).deviation is None


@pytest.mark.parametrize(
    ("text", "flags"),
    [
        ("My lawyer will be in touch about this contract", {"legal"}),
        ("The brakes failed on the hill and I ended up in hospital", {"safety"}),
        ("Someone did a SIM swap on my number and drained my account, fraud!!", {"security"}),
        ("Is the network down? No signal anywhere in Columbus", {"outage"}),
        ("I'm a reporter at the Herald writing a story about your billing", {"press"}),
        ("you useless idiots, fuck you", {"abuse"}),
        ("Press the power button for ten seconds and it restarts", set()),
        ("My Fire TV stick keeps buffering", set()),
        ("Can we take this offline? I'll DM you", set()),
        ("Found a piece of plastic in my sandwich", {"safety"}),
        ("My son had an allergic reaction after eating your cookies", {"safety"}),
        ("Someone logged into my account and changed the email", {"security"}),
        ("There's a transaction I didn't make on my card", {"security"}),
        ("Is the app down for everyone?", {"outage"}),
        ("Power cut across the whole street since 6am", {"outage"}),
        ("I'm going to contact the local news about this", {"press"}),
        ("I'll be reporting you to the BBB", {"legal"}),
        ("You're pathetic, go to hell", {"abuse"}),
        ("The app crashed on startup", set()),
        ("Sue in the store was lovely", set()),
        ("I didn't get the password reset email", set()),
        ("The TV show keeps buffering", set()),
        ("Please use less plastic in the packaging", set()),
        ("This price is a scam", set()),
    ],
)
def test_risk_flags(text: str, flags: set[str]) -> None:
    """Raises each risk flag on a clear phrase and not on look-alikes (press the button, Fire TV)."""
    assert set(risk_flags(text)) == flags


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("My order still has not arrived and nobody answers", "en"),
        ("Mi pedido todavía no ha llegado y nadie responde", "es"),
        ("Der Akku ist nach zwei Wochen schon kaputt gegangen", "de"),
        ("ok", "und"),
        ("😡😡😡😡", "und"),
    ],
)
def test_language(text: str, code: str) -> None:
    """Names the language of a sentence, and says undetermined for a word or emoji alone."""
    assert LanguageDetector().detect(text)[0] == code


def test_flag_patterns_are_lower_case() -> None:
    """Keeps every flag pattern lower case, since they are matched against lower-cased text."""
    from classifiers.flags import PATTERNS

    upper = [p for patterns in PATTERNS.values() for p in patterns if re.search(r"[A-Z]", p)]
    assert upper == []
