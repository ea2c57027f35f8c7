"""Slack's one post per second per channel, kept without holding up other channels' cards:
cards that wait for their channel go out together, as one message."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.models.blocks import SectionBlock
from slack_standin import TOKEN, SlackState, slack_standin
from support import Clock, TextLabels

from bot import effects
from bot.delivery import Deliverer
from bot.models import Author, Mention, Platform
from bot.pipeline import Pipeline
from bot.workbench import CardAction, Message, Workbench
from handlers.slack_surface import SlackSurface
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage import outbox
from storage.database import Database
from storage.slack import SlackPlaces

T0 = datetime(2026, 11, 4, 17, 40, tzinfo=UTC)
CHANNELS = {"#care": "C0CARE", "#thank-you": "C0THANKS"}
PLAYBOOK = """\
name: care
channel: "#care"
rules:
  - name: complaint
    when: {intent: [complaint]}
    then: {action: respond, priority: P2}
  - name: praise
    when: {intent: [praise]}
    then: {action: watch, priority: P4, channel: "#thank-you"}
"""


@pytest.fixture
def slack() -> Iterator[tuple[str, SlackState]]:
    with slack_standin(CHANNELS) as running:
        yield running


def _mention(number: int, text: str) -> Mention:
    return Mention(
        platform=Platform.X,
        external_id=f"18800000000000{number:05d}",
        text=text,
        author=Author(handle=f"customer{number}", followers=10),
        created_at=T0,
        url=f"https://x.com/customer{number}/status/18800000000000{number:05d}",
    )


def _setup(
    database: Database, tmp_path: Path, url: str, now: list[float], waits: list[float]
) -> tuple[Pipeline, Deliverer, Clock]:
    clock = Clock(T0)
    (tmp_path / "care.yaml").write_text(PLAYBOOK)
    decider = PlaybookDecider(load_playbooks(tmp_path), triage_channel="#earful-triage")
    pipeline = Pipeline(database=database, classifier=TextLabels(), decider=decider, clock=clock)
    surface = SlackSurface(
        client=WebClient(token=TOKEN, base_url=url),
        places=SlackPlaces(database),
        channels=CHANNELS,
        clock=lambda: now[0],
        sleep=waits.append,
    )
    deliverer = Deliverer(
        database=database, sinks={kind: surface for kind in effects.TEAM_KINDS}, clock=clock
    )
    return pipeline, deliverer, clock


def _card_ids(blocks: list[dict[str, Any]]) -> list[str]:
    """The interaction ids of the cards in a message, in order: each card has one block whose
    id is ``earful.card.<id>`` (its buttons, or its row with the menu)."""
    return [
        str(b["block_id"]).rsplit(".", 1)[1]
        for b in blocks
        if re.fullmatch(r"earful\.card\.\d+", str(b.get("block_id", "")))
    ]


def test_cards_due_together_for_one_channel_share_one_message(
    database: Database, tmp_path: Path, slack: tuple[str, SlackState]
) -> None:
    """Two #care cards due in the same pass go out as one message holding both cards, each with
    its own buttons; the #thank-you card goes out beside it."""
    url, state = slack
    now, waits = [100.0], []
    pipeline, deliverer, _ = _setup(database, tmp_path, url, now, waits)
    pipeline.ingest(
        [
            _mention(1, "my router is broken again"),
            _mention(2, "my phone is broken again"),
            _mention(3, "thanks, the new router is great"),
        ]
    )
    pipeline.process_pending()

    stats = deliverer.deliver_due()
    assert (stats.delivered, stats.retried, stats.failed) == (3, 0, 0)
    care, thanks = state.posts()
    assert (care.body["channel"], thanks.body["channel"]) == ("C0CARE", "C0THANKS")
    blocks = care.body["blocks"]
    assert len(_card_ids(blocks)) == 2
    text = json.dumps(blocks)
    assert text.index("customer1") < text.index("customer2")
    assert care.body["text"].startswith("2 new mentions: ")
    assert "customer3" in json.dumps(thanks.body["blocks"])
    assert waits == []


def test_cards_that_come_while_the_channel_waits_go_out_together_when_it_is_free(
    database: Database, tmp_path: Path, slack: tuple[str, SlackState]
) -> None:
    """After a post in #care, later #care cards wait for the channel's next second without
    holding up delivery (no sleep), then go out as one message; a card for #thank-you is not
    held up by them."""
    url, state = slack
    now, waits = [100.0], []
    pipeline, deliverer, clock = _setup(database, tmp_path, url, now, waits)
    pipeline.ingest([_mention(1, "my router is broken again")])
    pipeline.process_pending()
    assert deliverer.deliver_due().delivered == 1

    now[0] += 0.3
    pipeline.ingest([_mention(2, "my phone is broken again")])
    pipeline.process_pending()
    waiting = deliverer.deliver_due()
    assert (waiting.delivered, waiting.retried) == (0, 1)
    now[0] += 0.3
    pipeline.ingest(
        [_mention(3, "my modem is broken again"), _mention(4, "thanks, the new router is great")]
    )
    pipeline.process_pending()
    more = deliverer.deliver_due()
    assert (more.delivered, more.retried) == (1, 1)  # #thank-you went out, #care waits
    assert deliverer.deliver_due().delivered == 0  # not before its second

    now[0] += 0.4
    clock.now = T0 + timedelta(seconds=1)
    assert deliverer.deliver_due().delivered == 2
    posts = state.posts()
    assert [p.body["channel"] for p in posts] == ["C0CARE", "C0THANKS", "C0CARE"]
    assert "customer2" in json.dumps(posts[-1].body["blocks"])
    assert "customer3" in json.dumps(posts[-1].body["blocks"])
    assert waits == []


def test_cards_that_fit_in_one_message_stay_full_cards(
    database: Database, tmp_path: Path, slack: tuple[str, SlackState]
) -> None:
    """Eight cards due at once fit in 50 blocks as full cards: one message, each with its
    buttons."""
    url, state = slack
    now, waits = [100.0], []
    pipeline, deliverer, _ = _setup(database, tmp_path, url, now, waits)
    pipeline.ingest([_mention(n, f"my router number {n} is broken again") for n in range(8)])
    pipeline.process_pending()
    assert deliverer.deliver_due().delivered == 8
    (post,) = state.posts()
    blocks = post.body["blocks"]
    assert len(_card_ids(blocks)) == 8
    assert [b["type"] for b in blocks].count("actions") == 8
    assert len(blocks) <= 50


def test_a_burst_goes_out_as_rows_of_twenty_five_a_message(
    database: Database, tmp_path: Path, slack: tuple[str, SlackState]
) -> None:
    """Sixty cards due at once for one channel: more than fit as full cards, so a message shows
    25 of them as rows (two blocks each, a menu instead of buttons), one message a second; the
    last ten fit as full cards. Each card exactly once and in order."""
    url, state = slack
    now, waits = [100.0], []
    pipeline, deliverer, clock = _setup(database, tmp_path, url, now, waits)
    pipeline.ingest([_mention(n, f"my router number {n} is broken again") for n in range(60)])
    pipeline.process_pending()

    first = deliverer.deliver_due()
    assert (first.delivered, first.retried) == (25, 35)
    # The rest come back a message's worth per second, not all of them every second.
    for second in range(1, 10):
        now[0] += 1.0
        clock.now = T0 + timedelta(seconds=second)
        with database.transaction() as session:
            due = outbox.due(session, now=clock.now)
        assert len(due) <= 25
        if deliverer.deliver_due().failed or not due:
            break
    posts = state.posts()
    held = [_card_ids(p.body["blocks"]) for p in posts]
    assert [len(ids) for ids in held] == [25, 25, 10]
    assert [len(p.body["blocks"]) for p in posts[:2]] == [50, 50]
    assert [b["type"] for b in posts[2].body["blocks"]].count("actions") == 10
    assert len(posts[2].body["blocks"]) <= 50
    flat = [card for ids in held for card in ids]
    assert flat == sorted(flat, key=int)
    assert len(set(flat)) == 60
    assert waits == []
    row, labels = posts[0].body["blocks"][:2]
    assert "customer0" in row["text"]["text"]
    assert labels["block_id"] == f"earful.card.{flat[0]}.labels"
    # Valid Block Kit by slack_sdk's own models: a section with a menu of the card's actions.
    section = SectionBlock(**{k: v for k, v in row.items() if k != "type"})
    section.validate_json()
    options = [o["value"] for o in row["accessory"]["options"]]
    assert options[:2] == [f"claim:{flat[0]}", f"reply:{flat[0]}"]
    assert f"resolve:{flat[0]}" in options


def test_a_later_message_in_a_shared_thread_names_the_card_it_follows(
    database: Database, tmp_path: Path, slack: tuple[str, SlackState]
) -> None:
    """Three conversations open in one message and share its thread: a later message of the
    second is posted there naming the second card (``follows #<id>``), and keeps naming it
    when its status changes."""
    url, state = slack
    now, waits = [100.0], []
    pipeline, deliverer, clock = _setup(database, tmp_path, url, now, waits)
    openers = [_mention(n, f"my router number {n} is broken again") for n in range(3)]
    pipeline.ingest(openers)
    pipeline.process_pending()
    assert deliverer.deliver_due().delivered == 3
    (message,) = state.posts()
    opened = _card_ids(message.body["blocks"])

    later = Mention(
        platform=Platform.X,
        external_id="1880000000000099999",
        text="still broken, any news?",
        author=Author(handle="customer1", followers=10),
        created_at=T0 + timedelta(minutes=5),
        in_reply_to=openers[1].external_id,
    )
    pipeline.ingest([later])
    pipeline.process_pending()
    now[0] += 1.0
    clock.now = T0 + timedelta(seconds=1)
    assert deliverer.deliver_due().delivered == 1
    reply = state.posts()[-1]
    ((_, message_ts),) = [key for key, m in state.messages.items() if "thread_ts" not in m]
    assert reply.body["thread_ts"] == message_ts
    labels = json.dumps(reply.body["blocks"])
    assert f"(follows #{opened[1]})" in labels

    (thread_card,) = _card_ids(reply.body["blocks"])
    ((_, reply_ts),) = [key for key, m in state.messages.items() if "thread_ts" in m]
    Workbench(database=database, clock=clock).act(
        CardAction.CLAIM,
        interaction_id=int(thread_card),
        agent="U0AGENT",
        message=Message("C0CARE", reply_ts),
    )
    now[0] += 1.0
    assert deliverer.deliver_due().delivered == 1
    (update,) = [c for c in state.calls if c.method == "chat.update"]
    assert update.body["ts"] == reply_ts
    assert "Claimed by <@U0AGENT>" in json.dumps(update.body["blocks"])
    assert f"(follows #{opened[1]})" in json.dumps(update.body["blocks"])
