"""The playbook engine: the shipped playbooks' decisions, conflict resolution and loader errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.errors import PlaybookError
from bot.models import (
    Action,
    Author,
    Classification,
    ContactSnapshot,
    CustomerValue,
    Decision,
    Influence,
    Mention,
    Platform,
    Priority,
    Reason,
    Score,
)
from bot.traffic import RecentTraffic, similarity_key
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
TRIAGE = "#earful-triage"
BERLIN = ZoneInfo("Europe/Berlin")
STRANGER = ContactSnapshot(contact_id=7, name="Sam Doe", origin="x")
VIP = ContactSnapshot(
    contact_id=3,
    name="Priya Shah",
    origin="crm",
    plan="Business Unlimited",
    lifetime_value=Decimal("18400.00"),
    order_count=31,
    inbound_count=14,
    past_positive=12,
    past_neutral=2,
)


def _mention(
    text: str,
    *,
    in_reply_to: str | None = None,
    created_at: datetime = NOW,
    external_id: str = "1850000000000000001",
) -> Mention:
    return Mention(
        platform=Platform.X,
        external_id=external_id,
        text=text,
        author=Author(handle="sam_doe", display_name="Sam Doe", followers=310),
        created_at=created_at,
        conversation_id="1850000000000000000" if in_reply_to else None,
        in_reply_to=in_reply_to,
    )


def _labels(
    *,
    sentiment: str = "negative",
    sentiment_score: float = 0.91,
    intent: str = "complaint",
    intent_score: float = 0.84,
    flags: tuple[str, ...] = (),
    influence: tuple[str, int | None] = ("low", 18),
    value: tuple[str, int | None] = ("unknown", None),
    deviation: str | None = None,
) -> Classification:
    return Classification(
        classified=True,
        sentiment=Score(sentiment, sentiment_score),
        intent=Score(intent, intent_score),
        flags=flags,
        language="en",
        influence=Influence(influence[0], influence[1]),
        value=CustomerValue(value[0], value[1], deviation),
    )


@pytest.fixture(scope="module")
def decider() -> PlaybookDecider:
    """The shipped playbooks, as a company runs them out of the box."""
    return PlaybookDecider(load_playbooks(), triage_channel=TRIAGE)


def _reason(decision: Decision, factor: str) -> Reason:
    found = [r for r in decision.reasons if r.factor == factor]
    assert len(found) == 1, f"expected one {factor!r} reason in {decision.reasons}"
    return found[0]


def _assert_decision(
    decision: Decision,
    *,
    action: Action,
    priority: Priority,
    channel: str,
    rule: str,
    matched: dict[str, str],
    runner_up: str | None,
) -> None:
    """The outcome, the matched factors (value prefixes), the rule and the runner-up."""
    assert (decision.action, decision.priority, decision.channel) == (action, priority, channel)
    playbook, _, rule_name = rule.partition("/")
    assert (decision.playbook, decision.rule) == (playbook, rule_name)
    assert decision.decided
    assert _reason(decision, "rule").value == rule
    assert _reason(decision, "rule").effect == f"{action.value} {priority.value} in {channel}"
    for factor, prefix in matched.items():
        value = _reason(decision, factor).value
        assert value.startswith(prefix), f"{factor}: {value!r} does not start with {prefix!r}"
    assert decision.runner_up == runner_up
    if runner_up is None:
        assert not [r for r in decision.reasons if r.factor == "runner-up"]
    else:
        assert _reason(decision, "runner-up").value == runner_up


# --- the shipped playbooks, one rule at a time ------------------------------------------------


def test_safety_risk_goes_to_escalations_as_p1(decider: PlaybookDecider) -> None:
    """Sends a complaint that raises a safety flag to #care-escalations as a P1 for the care leads."""
    decision = decider.decide(
        _mention(
            "My @AcmeMobile charger caught fire overnight and burned the desk, I could have been hurt"
        ),
        _labels(flags=("safety",)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P1,
        channel="#care-escalations",
        rule="risk/safety",
        matched={"risk flags": "safety"},
        runner_up="complaints/complaint",
    )
    assert decision.owner == "care-leads"
    assert _reason(decision, "runner-up").effect == "respond P3; lower priority"


def test_legal_risk_goes_to_escalations_as_p1(decider: PlaybookDecider) -> None:
    """Sends a mention that raises a legal flag to #care-escalations as a P1."""
    decision = decider.decide(
        _mention("@AcmeMobile my lawyer is preparing a claim over these charges, see you in court"),
        _labels(flags=("legal",)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P1,
        channel="#care-escalations",
        rule="risk/legal",
        matched={"risk flags": "legal"},
        runner_up="complaints/complaint",
    )


def test_security_risk_goes_to_escalations_as_p1(decider: PlaybookDecider) -> None:
    """Sends a mention that raises a security flag to #care-escalations as a P1."""
    decision = decider.decide(
        _mention("Someone hacked my @AcmeMobile account and moved my number to a new SIM"),
        _labels(flags=("security",)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P1,
        channel="#care-escalations",
        rule="risk/security",
        matched={"risk flags": "security"},
        runner_up="complaints/complaint",
    )


def test_press_goes_to_comms_as_p1(decider: PlaybookDecider) -> None:
    """Sends a journalist's question to #comms as a P1 owned by the comms team."""
    decision = decider.decide(
        _mention(
            "Journalist at the Daily Post here: @AcmeMobile, can you comment on the billing errors?"
        ),
        _labels(sentiment="neutral", sentiment_score=0.77, intent="question", flags=("press",)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P1,
        channel="#comms",
        rule="risk/press",
        matched={"risk flags": "press"},
        runner_up="questions/question",
    )
    assert decision.owner == "comms"


def test_abuse_goes_to_care_as_p3(decider: PlaybookDecider) -> None:
    """Sends an abusive complaint to #care as a P3, ahead of the equally urgent complaint rule that comes later."""
    decision = decider.decide(
        _mention("@AcmeMobile you useless idiots, fix my bill"),
        _labels(sentiment_score=0.97, flags=("abuse",)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="risk/abuse",
        matched={"risk flags": "abuse"},
        runner_up="complaints/complaint",
    )
    assert _reason(decision, "runner-up").effect == "respond P3; comes later"


def test_single_outage_report_goes_to_care_as_p2(decider: PlaybookDecider) -> None:
    """Sends a lone outage report to #care as a P2 while no spike of similar reports exists."""
    decision = decider.decide(
        _mention("@AcmeMobile is the network down? No signal in Leeds since 9am"),
        _labels(flags=("outage",)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P2,
        channel="#care",
        rule="outage/outage report",
        matched={"risk flags": "outage"},
        runner_up="complaints/complaint",
    )


def _outage_traffic(mention: Mention, classification: Classification, count: int) -> RecentTraffic:
    """``count`` similar mentions in the last 15 minutes, this one included (as the pipeline adds it)."""
    key = similarity_key(classification)
    earlier = [(mention.created_at - timedelta(minutes=3 * n), key) for n in range(1, count)]
    # An older report and an unrelated one must not count.
    older = [(mention.created_at - timedelta(minutes=16), key)]
    other = [(mention.created_at - timedelta(minutes=1), "intent:question")]
    traffic = RecentTraffic([*earlier, *older, *other])
    traffic.add(mention.created_at, key)
    return traffic


def test_outage_spike_becomes_an_incident(decider: PlaybookDecider) -> None:
    """Turns the fifth similar outage report within 15 minutes into a P1 for #incidents."""
    mention = _mention("@AcmeMobile no service again in Manchester, is it down for everyone?")
    labels = _labels(flags=("outage",))
    decision = decider.decide(mention, labels, STRANGER, _outage_traffic(mention, labels, 5))
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P1,
        channel="#incidents",
        rule="outage/outage spike",
        matched={"risk flags": "outage", "volume": "5 similar in 15 min"},
        runner_up="outage/outage report",
    )
    assert decision.owner == "on-call"


def test_four_outage_reports_are_not_a_spike(decider: PlaybookDecider) -> None:
    """Keeps the fourth similar outage report within 15 minutes a single P2 report in #care."""
    mention = _mention("@AcmeMobile no service again in Manchester, is it down for everyone?")
    labels = _labels(flags=("outage",))
    decision = decider.decide(mention, labels, STRANGER, _outage_traffic(mention, labels, 4))
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P2,
        channel="#care",
        rule="outage/outage report",
        matched={"risk flags": "outage"},
        runner_up="complaints/complaint",
    )
    assert not [r for r in decision.reasons if r.factor == "volume"]


def test_complaint_spike_becomes_an_incident(decider: PlaybookDecider) -> None:
    """Turns the twentieth negative complaint of the same kind within 15 minutes into a P2 for #incidents."""
    mention = _mention("@AcmeMobile my bill doubled this month and nobody answers the phone")
    labels = _labels()
    key = similarity_key(labels)
    traffic = RecentTraffic((NOW - timedelta(seconds=40 * n), key) for n in range(20))
    decision = decider.decide(mention, labels, STRANGER, traffic)
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P2,
        channel="#incidents",
        rule="outage/complaint spike",
        matched={"intent": "complaint", "sentiment": "negative", "volume": "20 similar in 15 min"},
        runner_up="complaints/complaint",
    )


@pytest.mark.parametrize("tier", ["vip", "high"])
def test_churn_threat_from_a_valuable_customer_is_p1(decider: PlaybookDecider, tier: str) -> None:
    """Sends a high-value or VIP customer's threat to leave to #care-priority as a P1 for retention."""
    decision = decider.decide(
        _mention(
            "After 9 years with @AcmeMobile I'm switching networks, cancelling my contract this week"
        ),
        _labels(intent="churn_threat", intent_score=0.9, value=(tier, 88)),
        VIP,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P1,
        channel="#care-priority",
        rule="retention/churn threat from a valuable customer",
        matched={"intent": "churn_threat", "customer value": f"{tier} (88)"},
        runner_up="retention/churn threat",
    )
    assert decision.owner == "retention"


def test_churn_threat_from_a_stranger_is_p2(decider: PlaybookDecider) -> None:
    """Sends a threat to leave from someone not known as a customer to #care-priority as a P2."""
    decision = decider.decide(
        _mention("@AcmeMobile that's it, I'm cancelling and moving to another provider"),
        _labels(intent="churn_threat", intent_score=0.88),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P2,
        channel="#care-priority",
        rule="retention/churn threat",
        matched={"intent": "churn_threat"},
        runner_up="noise/anything else",
    )


def test_loyal_customer_turning_negative_goes_to_retention(decider: PlaybookDecider) -> None:
    """Sends a loyal customer's first negative message to #care-priority as a P2, ahead of venting."""
    decision = decider.decide(
        _mention("Not sure what has happened to @AcmeMobile lately, used to love you"),
        _labels(
            sentiment_score=0.72,
            intent="other",
            intent_score=0.61,
            value=("standard", 55),
            deviation="turning negative",
        ),
        VIP,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P2,
        channel="#care-priority",
        rule="retention/loyal customer turning negative",
        matched={"deviation": "turning negative", "sentiment": "negative"},
        runner_up="complaints/venting",
    )


def test_complaint_from_a_valuable_customer_goes_to_care_priority(
    decider: PlaybookDecider,
) -> None:
    """Routes a negative complaint from a VIP customer to #care-priority as P2."""
    decision = decider.decide(
        _mention("@AcmeMobile my roaming was charged twice again, third month in a row"),
        _labels(value=("vip", 92)),
        VIP,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P2,
        channel="#care-priority",
        rule="complaints/complaint from a valuable customer",
        matched={"intent": "complaint", "customer value": "vip (92)"},
        runner_up="complaints/complaint",
    )
    assert decision.owner == "care"


def test_complaint_from_an_influencer_goes_to_care_priority(decider: PlaybookDecider) -> None:
    """Routes a complaint from a high-influence author to #care-priority as P2."""
    decision = decider.decide(
        _mention("@AcmeMobile three days without mobile data and support keeps hanging up on me"),
        _labels(influence=("high", 91)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P2,
        channel="#care-priority",
        rule="complaints/complaint from an influencer",
        matched={"intent": "complaint", "influence": "high (91)"},
        runner_up="complaints/complaint",
    )


def test_complaint_from_a_notable_author_goes_to_care(decider: PlaybookDecider) -> None:
    """Routes a complaint from a medium-influence author to #care as P3 by its own rule."""
    decision = decider.decide(
        _mention("@AcmeMobile three days without mobile data and support keeps hanging up on me"),
        _labels(influence=("medium", 52)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="complaints/complaint from a notable author",
        matched={"intent": "complaint", "influence": "medium (52)"},
        runner_up="complaints/complaint",
    )


def test_plain_complaint_goes_to_care(decider: PlaybookDecider) -> None:
    """Routes a complaint from an ordinary customer to #care as P3."""
    decision = decider.decide(
        _mention("@AcmeMobile my bill shows a charge for a plan I never picked"),
        _labels(value=("standard", 40)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="complaints/complaint",
        matched={"intent": "complaint 0.84"},
        runner_up="noise/anything else",
    )


def test_low_value_venting_is_watched(decider: PlaybookDecider) -> None:
    """Keeps a low-value author's negative venting in view in #care-watch as P4 without a reply."""
    decision = decider.decide(
        _mention("mondays and @AcmeMobile hold music, name a worse combo"),
        _labels(sentiment_score=0.8, intent="other", intent_score=0.7, value=("low", 12)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.WATCH,
        priority=Priority.P4,
        channel="#care-watch",
        rule="complaints/venting",
        matched={
            "sentiment": "negative",
            "intent": "other",
            "thread": "first message",
            "influence": "low",
            "customer value": "low (12)",
        },
        runner_up="noise/chatter",
    )
    assert decision.respond_by is None
    assert decision.escalation == ()


def test_question_goes_to_care(decider: PlaybookDecider) -> None:
    """Routes a customer's question to #care as P3."""
    decision = decider.decide(
        _mention("@AcmeMobile how do I turn on wifi calling on my new phone?"),
        _labels(sentiment="neutral", sentiment_score=0.83, intent="question", intent_score=0.93),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="questions/question",
        matched={"intent": "question"},
        runner_up="noise/anything else",
    )


def test_thread_follow_up_gets_an_answer(decider: PlaybookDecider) -> None:
    """Answers a customer who follows up inside a support thread, in #care as P3."""
    decision = decider.decide(
        _mention(
            "@AcmeMobile it's a Galaxy S23 on the 5G plan, bought in March",
            in_reply_to="1850000000000000000",
        ),
        _labels(sentiment="neutral", sentiment_score=0.88, intent="other", intent_score=0.66),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="questions/thread follow-up",
        matched={"sentiment": "neutral", "intent": "other", "thread": "reply in a thread"},
        runner_up="noise/anything else",
    )


def test_mildly_positive_thread_follow_up_gets_an_answer(decider: PlaybookDecider) -> None:
    """Answers a thread reply whose positive tone is not clear enough to read as a sign-off, in #care as P3."""
    decision = decider.decide(
        _mention(
            "@AcmeMobile sure! it's the iPhone 13, updated to the latest iOS yesterday :)",
            in_reply_to="1850000000000000000",
        ),
        _labels(sentiment="positive", sentiment_score=0.58, intent="other", intent_score=0.81),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="questions/mildly positive thread follow-up",
        matched={
            "sentiment": "positive 0.58",
            "sentiment confidence": "0.58",
            "intent": "other",
            "thread": "reply in a thread",
        },
        runner_up="noise/anything else",
    )


def test_feedback_in_a_thread_gets_an_answer(decider: PlaybookDecider) -> None:
    """Answers a suggestion made inside a support thread, in #care as P3."""
    decision = decider.decide(
        _mention(
            "@AcmeMobile ok, but the app should just let me switch roaming off myself",
            in_reply_to="1850000000000000000",
        ),
        _labels(sentiment="neutral", sentiment_score=0.7, intent="feedback", intent_score=0.74),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="questions/feedback in a thread",
        matched={"intent": "feedback", "thread": "reply in a thread"},
        runner_up="noise/anything else",
    )


def test_details_sent_in_a_thread_get_an_answer(decider: PlaybookDecider) -> None:
    """Answers a cheerful "done, DM sent" in a thread in #care as P3, ahead of watching it as a sign-off."""
    decision = decider.decide(
        _mention("@AcmeMobile Done, DM sent! Thanks :)", in_reply_to="1850000000000000000"),
        _labels(sentiment="positive", sentiment_score=0.94, intent="other", intent_score=0.83),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="questions/details sent in a thread",
        matched={"intent": "other", "thread": "reply in a thread", "keyword": '"Done"'},
        runner_up="praise/friendly reply in a thread",
    )
    assert _reason(decision, "runner-up").effect == "watch P4; lower priority"
    assert decision.respond_by == NOW + timedelta(hours=2)


def test_spam_like_reply_in_a_thread_gets_an_answer(decider: PlaybookDecider) -> None:
    """Answers a thread reply that the spam rules catch for its links, in #care as P3 instead of dismissing it."""
    decision = decider.decide(
        _mention(
            "@AcmeMobile screenshots of the error: https://t.co/a1 https://t.co/b2 https://t.co/c3",
            in_reply_to="1850000000000000000",
        ),
        _labels(sentiment="neutral", sentiment_score=0.8, intent="spam", intent_score=1.0),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#care",
        rule="questions/spam-like reply in a thread",
        matched={"intent": "spam", "thread": "reply in a thread"},
        runner_up="noise/anything else",
    )


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        pytest.param(
            "@AcmeMobile still waiting on that engineer visit from Tuesday",
            _labels(sentiment="neutral", sentiment_score=0.81, intent="other", intent_score=0.45),
            id="unsure-chatter",
        ),
        pytest.param(
            "@AcmeMobile I want the address of your office in Lagos and its phone number",
            _labels(sentiment="neutral", sentiment_score=0.9, intent="spam", intent_score=0.43),
            id="unsure-spam",
        ),
    ],
)
def test_unclear_first_message_gets_an_answer(
    decider: PlaybookDecider, text: str, labels: Classification
) -> None:
    """Answers a first message the intent model cannot place with confidence, in #care as P4."""
    decision = decider.decide(_mention(text), labels, STRANGER)
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P4,
        channel="#care",
        rule="questions/unclear first message",
        matched={"intent confidence": "0.4", "thread": "first message"},
        runner_up="noise/anything else",
    )


def test_unsure_venting_gets_an_answer(decider: PlaybookDecider) -> None:
    """Answers a negative first message the model is unsure holds no request, rather than watching it as venting."""
    decision = decider.decide(
        _mention("could have sworn I signed up for @AcmeMobile rewards :( no points for me"),
        _labels(sentiment_score=0.63, intent="other", intent_score=0.49, value=("low", 12)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P4,
        channel="#care",
        rule="questions/unclear first message",
        matched={"intent": "other 0.49", "intent confidence": "0.49"},
        runner_up="noise/anything else",
    )


def test_buying_question_goes_to_sales(decider: PlaybookDecider) -> None:
    """Routes a question about buying to #sales as P3."""
    decision = decider.decide(
        _mention(
            "@AcmeMobile how much is the family plan with 4 lines? Thinking of switching to you"
        ),
        _labels(
            sentiment="positive", sentiment_score=0.7, intent="purchase_intent", intent_score=0.86
        ),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P3,
        channel="#sales",
        rule="sales/buying question",
        matched={"intent": "purchase_intent"},
        runner_up="noise/anything else",
    )
    assert decision.owner == "sales"


def test_buying_question_from_a_notable_author_is_p2(decider: PlaybookDecider) -> None:
    """Raises a buying question from a medium-influence author to P2 in #sales."""
    decision = decider.decide(
        _mention(
            "@AcmeMobile how much is the family plan with 4 lines? Thinking of switching to you"
        ),
        _labels(
            sentiment="positive",
            sentiment_score=0.7,
            intent="purchase_intent",
            intent_score=0.86,
            influence=("medium", 60),
        ),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P2,
        channel="#sales",
        rule="sales/buying question from a notable author",
        matched={"intent": "purchase_intent", "influence": "medium (60)"},
        runner_up="sales/buying question",
    )


def test_praise_gets_a_thank_you(decider: PlaybookDecider) -> None:
    """Answers unprompted praise in #thank-you as P4."""
    decision = decider.decide(
        _mention("Shout out to @AcmeMobile, the new 5G is blazing fast in Bristol!"),
        _labels(sentiment="positive", sentiment_score=0.97, intent="praise", intent_score=0.95),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P4,
        channel="#thank-you",
        rule="praise/praise",
        matched={"intent": "praise", "thread": "first message"},
        runner_up="noise/anything else",
    )
    assert decision.owner == "community"


def test_thanks_closing_a_thread_is_only_watched(decider: PlaybookDecider) -> None:
    """Keeps a customer's thank-you that closes a support thread in #care-watch without a reply."""
    decision = decider.decide(
        _mention("@AcmeMobile that fixed it, thanks so much!", in_reply_to="1850000000000000000"),
        _labels(sentiment="positive", sentiment_score=0.95, intent="praise", intent_score=0.9),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.WATCH,
        priority=Priority.P4,
        channel="#care-watch",
        rule="praise/thanks closing a thread",
        matched={"intent": "praise", "thread": "reply in a thread"},
        runner_up="noise/anything else",
    )
    assert decision.respond_by is None


def test_friendly_reply_in_a_thread_is_only_watched(decider: PlaybookDecider) -> None:
    """Keeps a clearly positive sign-off in a support thread in #care-watch without a reply."""
    decision = decider.decide(
        _mention("@AcmeMobile ok cool, we're all good!", in_reply_to="1850000000000000000"),
        _labels(sentiment="positive", sentiment_score=0.96, intent="other", intent_score=0.85),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.WATCH,
        priority=Priority.P4,
        channel="#care-watch",
        rule="praise/friendly reply in a thread",
        matched={
            "sentiment": "positive 0.96",
            "sentiment confidence": "0.96",
            "intent": "other",
            "thread": "reply in a thread",
        },
        runner_up="noise/anything else",
    )
    assert decision.respond_by is None
    assert decision.escalation == ()


def test_suggestion_goes_to_product_feedback(decider: PlaybookDecider) -> None:
    """Acknowledges a suggestion in #product-feedback as P4."""
    decision = decider.decide(
        _mention("@AcmeMobile would be great if the app showed roaming data used per country"),
        _labels(sentiment="neutral", sentiment_score=0.62, intent="feedback", intent_score=0.81),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.RESPOND,
        priority=Priority.P4,
        channel="#product-feedback",
        rule="feedback/suggestion",
        matched={"intent": "feedback", "sentiment": "neutral", "thread": "first message"},
        runner_up="noise/anything else",
    )


def test_spam_is_dismissed(decider: PlaybookDecider) -> None:
    """Dismisses spam into #earful-noise."""
    decision = decider.decide(
        _mention("@AcmeMobile FREE iPhone 17 giveaway!!! click bit.ly/xx to claim now"),
        _labels(sentiment="positive", sentiment_score=0.6, intent="spam", intent_score=0.99),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.DISMISS,
        priority=Priority.P4,
        channel="#earful-noise",
        rule="noise/spam",
        matched={"intent": "spam"},
        runner_up="noise/anything else",
    )
    assert decision.respond_by is None
    assert decision.escalation == ()


def test_chatter_is_watched(decider: PlaybookDecider) -> None:
    """Keeps neutral chatter that mentions the brand in #care-watch as P4."""
    decision = decider.decide(
        _mention("watching the match at the @AcmeMobile arena tonight"),
        _labels(sentiment="neutral", sentiment_score=0.9, intent="other", intent_score=0.8),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.WATCH,
        priority=Priority.P4,
        channel="#care-watch",
        rule="noise/chatter",
        matched={"intent": "other", "thread": "first message"},
        runner_up="noise/anything else",
    )


def test_anything_else_goes_to_triage_watched(decider: PlaybookDecider) -> None:
    """Sends a mention no specific rule covers (negative feedback on the product) to #earful-triage as a watched P4."""
    decision = decider.decide(
        _mention("@AcmeMobile the new app design is honestly a step backwards"),
        _labels(sentiment_score=0.7, intent="feedback", intent_score=0.7, value=("low", 12)),
        STRANGER,
    )
    _assert_decision(
        decision,
        action=Action.WATCH,
        priority=Priority.P4,
        channel=TRIAGE,
        rule="noise/anything else",
        matched={},
        runner_up=None,
    )


def test_unclassified_mention_goes_to_triage_undecided(decider: PlaybookDecider) -> None:
    """Sends a mention without labels to #earful-triage undecided, and says why."""
    decision = decider.decide(
        _mention("@AcmeMobile my bill shows a charge for a plan I never picked"),
        Classification.unclassified(),
        STRANGER,
    )
    assert (decision.action, decision.priority, decision.channel) == (None, None, TRIAGE)
    assert decision.playbook is None
    assert decision.rule is None
    assert decision.runner_up is None
    assert not decision.decided
    assert decision.respond_by is None
    assert _reason(decision, "classification").value == "unclassified"
    assert _reason(decision, "route").value == TRIAGE


# --- the seed scenario -------------------------------------------------------------------------

SEED_TWEET = "I hate my phone service, @AcmeMobile dropped my calls all week"


@pytest.mark.parametrize(
    ("labels", "action", "priority", "channel", "rule"),
    [
        pytest.param(
            _labels(influence=("high", 88)),
            Action.RESPOND,
            Priority.P2,
            "#care-priority",
            "complaint from an influencer",
            id="influencer-complaint",
        ),
        pytest.param(
            _labels(influence=("low", 15)),
            Action.RESPOND,
            Priority.P3,
            "#care",
            "complaint",
            id="ordinary-complaint",
        ),
        pytest.param(
            _labels(intent="other", intent_score=0.75, influence=("low", 15)),
            Action.WATCH,
            Priority.P4,
            "#care-watch",
            "venting",
            id="ordinary-venting",
        ),
    ],
)
def test_seed_tweet_is_judged_by_who_wrote_it_and_why(
    decider: PlaybookDecider,
    labels: Classification,
    action: Action,
    priority: Priority,
    channel: str,
    rule: str,
) -> None:
    """Judges the same angry tweet by its author's reach and whether it states a real complaint."""
    decision = decider.decide(_mention(SEED_TWEET), labels, STRANGER)
    assert (decision.action, decision.priority, decision.channel) == (action, priority, channel)
    assert (decision.playbook, decision.rule) == ("complaints", rule)
    assert _reason(decision, "rule").value == f"complaints/{rule}"


# --- deadlines and escalation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "playbook", "first_response", "escalation"),
    [
        pytest.param(
            "@AcmeMobile my phone battery swelled up and started smoking on the nightstand",
            _labels(flags=("safety",)),
            "risk",
            timedelta(minutes=15),
            ("notify #care-leads", "mention @care-lead", "page on-call"),
            id="risk",
        ),
        pytest.param(
            "@AcmeMobile is the network down? No signal in Leeds since 9am",
            _labels(flags=("outage",)),
            "outage",
            timedelta(minutes=30),
            (
                "notify #incidents",
                "page on-call",
            ),
            id="outage",
        ),
        pytest.param(
            "@AcmeMobile I am done, porting my number to another network tomorrow",
            _labels(intent="churn_threat"),
            "retention",
            timedelta(minutes=30),
            ("notify #care-leads", "mention @retention-lead"),
            id="retention",
        ),
        pytest.param(
            "@AcmeMobile I was charged twice for October and nobody answers",
            _labels(),
            "complaints",
            timedelta(hours=1),
            ("notify #care-leads", "mention @care-lead"),
            id="complaints",
        ),
        pytest.param(
            "@AcmeMobile how do I turn on wifi calling?",
            _labels(sentiment="neutral", intent="question"),
            "questions",
            timedelta(hours=2),
            ("notify #care-leads",),
            id="questions",
        ),
        pytest.param(
            "@AcmeMobile what does the unlimited plan cost for a business?",
            _labels(sentiment="neutral", intent="purchase_intent"),
            "sales",
            timedelta(hours=2),
            ("mention @sales-lead",),
            id="sales",
        ),
        pytest.param(
            "Big thanks to @AcmeMobile, the shop in Leeds sorted my phone in ten minutes",
            _labels(sentiment="positive", intent="praise"),
            "praise",
            timedelta(days=1),
            (),
            id="praise",
        ),
        pytest.param(
            "@AcmeMobile it would help if the app showed data used per day",
            _labels(sentiment="neutral", intent="feedback"),
            "feedback",
            timedelta(days=1),
            (),
            id="feedback",
        ),
    ],
)
def test_respond_decisions_carry_the_playbook_deadline_and_escalation(
    decider: PlaybookDecider,
    text: str,
    labels: Classification,
    playbook: str,
    first_response: timedelta,
    escalation: tuple[str, ...],
) -> None:
    """Sets the reply deadline from the playbook's first-response SLA and lists its escalation steps."""
    created = datetime(2026, 11, 3, 23, 50, tzinfo=UTC)
    mention = _mention(text, created_at=created)
    decision = decider.decide(mention, labels, STRANGER)
    assert decision.action == Action.RESPOND
    assert decision.playbook == playbook
    assert decision.respond_by == created + first_response
    assert tuple(str(step) for step in decision.escalation) == escalation


def test_decision_carries_the_playbook_guidance(decider: PlaybookDecider) -> None:
    """Shows the playbook's do and don't lines with the decision."""
    decision = decider.decide(
        _mention("@AcmeMobile my bill shows a charge for a plan I never picked"),
        _labels(),
        STRANGER,
    )
    assert decision.guidance == (
        "Do: Acknowledge the problem in the first sentence.",
        "Do: Ask for details by DM, never in public.",
        "Don't: Blame the customer or a third party.",
        "Don't: Paste the same reply twice in one thread.",
    )


# --- conflict resolution ---------------------------------------------------------------------------

GENERAL = """\
name: general
channel: "#care"
rules:
  - name: any complaint
    when: {intent: [complaint]}
    then: {action: respond, priority: P3}
"""
URGENT = """\
name: urgent
channel: "#incidents"
rules:
  - name: outage
    when: {flags: [outage]}
    then: {action: respond, priority: P1}
"""


def _playbook_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "playbooks"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.mark.parametrize(
    ("resolution", "winner", "channel", "priority", "runner_up", "why"),
    [
        pytest.param(
            "highest_priority",
            "urgent/outage",
            "#incidents",
            Priority.P1,
            "general/any complaint",
            "respond P3; lower priority",
            id="highest_priority",
        ),
        pytest.param(
            "first_match",
            "general/any complaint",
            "#care",
            Priority.P3,
            "urgent/outage",
            "respond P1; comes later",
            id="first_match",
        ),
    ],
)
def test_resolution_setting_picks_the_winning_rule(
    tmp_path: Path,
    resolution: str,
    winner: str,
    channel: str,
    priority: Priority,
    runner_up: str,
    why: str,
) -> None:
    """Picks the most urgent matching rule under highest_priority and the first one under first_match, naming the other as runner-up."""
    directory = _playbook_dir(
        tmp_path,
        {
            "10-general.yaml": GENERAL,
            "20-urgent.yaml": URGENT,
            "_settings.yaml": f"resolution: {resolution}\ntimezone: UTC\n",
        },
    )
    decider = PlaybookDecider(load_playbooks(directory), triage_channel=TRIAGE)
    decision = decider.decide(
        _mention("@AcmeMobile no signal anywhere in Leeds, sort it out"),
        _labels(flags=("outage",)),
        STRANGER,
    )
    assert (decision.channel, decision.priority) == (channel, priority)
    assert _reason(decision, "rule").value == winner
    assert decision.runner_up == runner_up
    assert _reason(decision, "runner-up") == Reason("runner-up", runner_up, why)


def test_no_matching_rule_goes_to_triage_undecided(tmp_path: Path) -> None:
    """Sends a mention that no rule of the set matches to the triage channel for a person to judge."""
    decider = PlaybookDecider(
        load_playbooks(_playbook_dir(tmp_path, {"10-general.yaml": GENERAL})),
        triage_channel=TRIAGE,
    )
    decision = decider.decide(
        _mention("@AcmeMobile how do I set up voicemail?"),
        _labels(sentiment="neutral", intent="question"),
        STRANGER,
    )
    assert (decision.action, decision.priority, decision.channel) == (None, None, TRIAGE)
    assert _reason(decision, "playbooks").value == "no rule matched"


# --- loader errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "line", "reason"),
    [
        pytest.param(
            "10-care.yaml",
            'name: care\nchannel: "#care"\nrules:\n  - name: complaint\n'
            "    wehn: {intent: [complaint]}\n"
            "    then: {action: respond, priority: P3}\n",
            5,
            "rules.0.wehn: Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            "10-care.yaml",
            'name: care\nchannel: "#care"\nrules:\n  - name: complaint\n'
            "    when: {intent: [complaint]}\n"
            "    then:\n      action: respond\n      priority: P9\n",
            8,
            "rules.0.then.priority: Input should be 'P1', 'P2', 'P3' or 'P4'",
            id="bad-priority",
        ),
        pytest.param(
            "10-care.yaml",
            'name: care\nchannel: "#care"\nrules:\n  - name: complaint\n'
            "    when: {intent: [complaint}\n"
            "    then: {action: respond, priority: P3}\n",
            5,
            "not valid YAML",
            id="invalid-yaml",
        ),
        pytest.param(
            "10-care.yaml",
            'name: care\nchannel: "#care"\nrules:\n  - name: complaint\n'
            "    when: {intent: [complaint]}\n"
            "    then: {action: respond, priority: P3}\n"
            "templates:\n  - id: order-late\n"
            '    text: "Hi {first_name}, we are checking order {order_number} now."\n',
            9,
            "templates.0.text: unknown slot {order_number}",
            id="unknown-slot",
        ),
        pytest.param(
            "10-care.yaml",
            'name: care\nchannel: "#care"\nrules:\n  - name: complaint\n'
            "    when: {intent: [complaint]}\n"
            "    then: {action: respond, priority: P3}\n"
            'channel: "#care-priority"\n',
            7,
            "key 'channel' repeated",
            id="duplicated-key",
        ),
        pytest.param(
            "10-care.yaml",
            "",
            1,
            "the file is empty",
            id="empty-file",
        ),
        pytest.param(
            "_settings.yaml",
            "timezone: UTC\nresolution: newest_first\n",
            2,
            "resolution: Input should be 'highest_priority' or 'first_match'",
            id="bad-setting",
        ),
    ],
)
def test_invalid_playbook_file_stops_loading_with_file_line_and_reason(
    tmp_path: Path, name: str, text: str, line: int, reason: str
) -> None:
    """Refuses an invalid playbook file, naming the file, the line and what is wrong."""
    files = {"10-care.yaml": GENERAL, name: text}
    directory = _playbook_dir(tmp_path, files)
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(directory)
    assert caught.value.where == f"{directory / name}:{line}"
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{directory / name}:{line}: ")


def test_empty_directory_stops_loading(tmp_path: Path) -> None:
    """Refuses a playbook directory that holds no playbook files, naming the directory."""
    directory = _playbook_dir(tmp_path, {"_settings.yaml": "timezone: UTC\n"})
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(directory)
    assert caught.value.where == str(directory)
    assert caught.value.reason == "no playbook files (*.yaml) in it"


def test_playbook_name_used_twice_stops_loading(tmp_path: Path) -> None:
    """Refuses two playbook files that share a name, naming both files."""
    directory = _playbook_dir(tmp_path, {"10-general.yaml": GENERAL, "20-general.yaml": GENERAL})
    with pytest.raises(PlaybookError) as caught:
        load_playbooks(directory)
    assert caught.value.where == str(directory / "20-general.yaml")
    assert str(directory / "10-general.yaml") in caught.value.reason


# --- keywords and hours ----------------------------------------------------------------------------

KEYWORDS = """\
name: refunds
channel: "#billing"
rules:
  - name: refund request
    when: {keywords: [refund, money back]}
    then: {action: respond, priority: P2}
"""


@pytest.mark.parametrize(
    ("text", "found"),
    [
        pytest.param("@AcmeMobile where is my Refund? It's been a month", '"Refund"', id="capital"),
        pytest.param(
            "@AcmeMobile I want my MONEY BACK for this month", '"MONEY BACK"', id="phrase"
        ),
        pytest.param("@AcmeMobile refund.", '"refund"', id="punctuation"),
        pytest.param("@AcmeMobile do you do refunds on phones?", None, id="plural"),
        pytest.param("@AcmeMobile prerefund check failed", None, id="inside-a-word"),
    ],
)
def test_keywords_match_whole_words_ignoring_case(
    tmp_path: Path, text: str, found: str | None
) -> None:
    """Matches a keyword only as a whole word or phrase, in any letter case."""
    directory = _playbook_dir(tmp_path, {"10-refunds.yaml": KEYWORDS})
    decider = PlaybookDecider(load_playbooks(directory), triage_channel=TRIAGE)
    decision = decider.decide(
        _mention(text), _labels(sentiment="neutral", intent="question"), STRANGER
    )
    if found is None:
        assert decision.channel == TRIAGE
        assert decision.rule is None
    else:
        assert (decision.channel, decision.rule) == ("#billing", "refund request")
        assert _reason(decision, "keyword") == Reason("keyword", found, "in the text")


NIGHT = """\
name: night
channel: "#night-shift"
rules:
  - name: out of hours
    when:
      hours: {{from: {start}, to: {end}}}
    then: {{action: respond, priority: P3}}
"""


@pytest.mark.parametrize(
    ("at_utc", "matches"),
    [
        # Berlin is UTC+1 in January: 17:30 UTC is 18:30 there.
        pytest.param(datetime(2026, 1, 15, 17, 30, tzinfo=UTC), True, id="18:30-local"),
        pytest.param(datetime(2026, 1, 15, 17, 0, tzinfo=UTC), True, id="18:00-local"),
        pytest.param(datetime(2026, 1, 15, 23, 15, tzinfo=UTC), True, id="00:15-local"),
        pytest.param(datetime(2026, 1, 16, 6, 59, tzinfo=UTC), True, id="07:59-local"),
        pytest.param(datetime(2026, 1, 16, 7, 0, tzinfo=UTC), False, id="08:00-local"),
        pytest.param(datetime(2026, 1, 16, 7, 30, tzinfo=UTC), False, id="08:30-local"),
        pytest.param(datetime(2026, 1, 16, 12, 0, tzinfo=UTC), False, id="13:00-local"),
        pytest.param(datetime(2026, 1, 15, 16, 45, tzinfo=UTC), False, id="17:45-local"),
    ],
)
def test_hours_window_wraps_midnight_in_the_set_time_zone(
    tmp_path: Path, at_utc: datetime, matches: bool
) -> None:
    """Matches an 18:00–08:00 window across midnight by the clock of the set's time zone."""
    directory = _playbook_dir(
        tmp_path,
        {
            "10-night.yaml": NIGHT.format(start='"18:00"', end='"08:00"'),
            "_settings.yaml": "timezone: Europe/Berlin\n",
        },
    )
    decider = PlaybookDecider(load_playbooks(directory), triage_channel=TRIAGE)
    decision = decider.decide(
        _mention("@AcmeMobile anyone there?", created_at=at_utc), _labels(), STRANGER
    )
    if matches:
        assert (decision.channel, decision.rule) == ("#night-shift", "out of hours")
        local = at_utc.astimezone(BERLIN).strftime("%H:%M")
        assert _reason(decision, "time of day").value == f"{local} CET"
    else:
        assert decision.channel == TRIAGE
        assert decision.rule is None


def test_unquoted_hours_are_read_as_clock_times(tmp_path: Path) -> None:
    """Reads `from: 18:00` written without quotes as six in the evening, or refuses it with its line."""
    directory = _playbook_dir(
        tmp_path,
        {
            "10-night.yaml": NIGHT.format(start="18:00", end="08:00"),
            "_settings.yaml": "timezone: Europe/Berlin\n",
        },
    )
    refused: PlaybookError | None = None
    try:
        playbooks = load_playbooks(directory)
    except PlaybookError as exc:
        refused = exc
    if refused is not None:
        # Refusing YAML's sexagesimal reading of 18:00 (1080) is fine, with the file and line.
        assert refused.where == f"{directory / '10-night.yaml'}:6"
        return
    decider = PlaybookDecider(playbooks, triage_channel=TRIAGE)
    rules = [
        decider.decide(
            _mention("@AcmeMobile anyone there?", created_at=at), _labels(), STRANGER
        ).rule
        for at in (
            datetime(2026, 1, 15, 18, 30, tzinfo=UTC),  # 19:30 in Berlin
            datetime(2026, 1, 15, 23, 30, tzinfo=UTC),  # 00:30 in Berlin
            datetime(2026, 1, 16, 11, 0, tzinfo=UTC),  # 12:00 in Berlin
        )
    ]
    assert rules == ["out of hours", "out of hours", None]
