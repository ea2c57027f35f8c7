"""Suggested replies: filled templates and past replies, checked before they are shown."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from bot.models import (
    Action,
    Author,
    Classification,
    ContactSnapshot,
    Decision,
    Mention,
    Platform,
    Priority,
    Score,
)
from playbooks.schema import Template
from playbooks.suggest import PastReply, Suggester, load_bundled

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """A fake sentence embedding: hashed words, L2-normalised (similar words → similar vectors)."""
    vectors = np.zeros((len(texts), 256), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            vectors[
                row, int(hashlib.blake2b(word.encode(), digest_size=8).hexdigest(), 16) % 256
            ] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-9)


TEMPLATES = [
    Template(id="sorry", text="Hi {first_name}, sorry about the signal. Please DM us your area."),
    Template(id="order", text="Hi {first_name}, which order is it? We see {order_ref}."),
    Template(id="telegram-only", text="Hello {first_name}!", platforms=[Platform.TELEGRAM]),
    Template(id="long", text="Hi {first_name}. " + "We are on it. " * 30, max_chars=280),
]


def _decision(action: Action) -> Decision:
    return Decision(
        action=action, priority=Priority.P3, channel="#care", playbook="complaints", reasons=()
    )


def _item(
    text: str, action: Action = Action.RESPOND, intent: str = "complaint"
) -> tuple[Mention, ContactSnapshot, Classification, Decision]:
    mention = Mention(
        platform=Platform.X,
        external_id="1",
        text=text,
        author=Author(handle="maya", display_name="Maya Okafor"),
        created_at=NOW,
    )
    classification = Classification(classified=True, intent=Score(intent, 0.9))
    return mention, ContactSnapshot(contact_id=None), classification, _decision(action)


def _suggester(past: Sequence[PastReply] = ()) -> Suggester:
    return Suggester(
        embed=bag_of_words,
        slots={"status_url": "https://status.example.com"},
        templates=lambda decision: TEMPLATES if decision.playbook == "complaints" else [],
        past=past,
    )


def test_suggests_filled_templates_and_the_closest_past_reply() -> None:
    """Fills the first name, leaves out templates with unknown slots, wrong platform or length."""
    past = [
        PastReply(
            "no signal on my phone since monday",
            "So sorry about the signal! DM us.",
            "history",
            "complaint",
        ),
        PastReply("love the new app", "Thank you so much!", "history", "praise"),
    ]
    (suggestions,) = _suggester(past).suggest([_item("@acme no signal on my phone again")])
    texts = [s.text for s in suggestions]
    assert "Hi Maya, sorry about the signal. Please DM us your area." in texts
    assert "So sorry about the signal! DM us." in texts
    assert "Thank you so much!" not in texts  # answered a message of another intent
    assert not any("{" in t or "Hello Maya" in t or len(t) > 280 for t in texts)
    assert [s.score for s in suggestions] == sorted((s.score for s in suggestions), reverse=True)
    assert {s.source for s in suggestions} == {"template:complaints/sorry", "history reply"}


def test_suggests_nothing_unless_the_decision_is_to_respond() -> None:
    """Watch and dismiss decisions get no suggested replies."""
    results = _suggester().suggest(
        [_item("meh", Action.WATCH), _item("buy followers", Action.DISMISS, "spam")]
    )
    assert results == [(), ()]


def test_keeps_at_most_three_distinct_suggestions() -> None:
    """Never offers the same reply twice and never more than three."""
    past = [PastReply(f"signal gone {i}", "We're on it, DM us.", "history", None) for i in range(5)]
    past += [
        PastReply(f"signal gone again {i}", f"Reply number {i}", "history", None) for i in range(5)
    ]
    (suggestions,) = _suggester(past).suggest([_item("signal gone")])
    assert len(suggestions) == 3
    assert len({s.text for s in suggestions}) == 3


def test_bundled_replies_fit_a_tweet() -> None:
    """The cold-start replies that ship with Earful are all postable on X."""
    bundled = load_bundled()
    assert len(bundled) >= 150
    assert all(0 < len(r.reply) <= 280 and r.intent for r in bundled)
