"""Slack's one post per second per channel, kept without holding up other channels' cards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_standin import TOKEN, SlackState, slack_standin
from support import Clock, TextLabels

from bot import effects
from bot.delivery import Deliverer
from bot.models import Author, Mention, Platform
from bot.pipeline import Pipeline
from handlers.slack_surface import SlackSurface
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
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


def test_a_paced_card_waits_its_turn_while_other_channels_go_out(
    database: Database, tmp_path: Path, slack: tuple[str, SlackState]
) -> None:
    """A second card for #care within the second comes back when the channel is free, after
    the #thank-you card behind it went out, and delivery never sleeps for it."""
    url, state = slack
    clock = Clock(T0)
    (tmp_path / "care.yaml").write_text(PLAYBOOK)
    decider = PlaybookDecider(load_playbooks(tmp_path), triage_channel="#earful-triage")
    pipeline = Pipeline(database=database, classifier=TextLabels(), decider=decider, clock=clock)
    pipeline.ingest(
        [
            _mention(1, "my router is broken again"),
            _mention(2, "my phone is broken again"),
            _mention(3, "thanks, the new router is great"),
        ]
    )
    pipeline.process_pending()
    now = [100.0]
    waits: list[float] = []
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

    first = deliverer.deliver_due()
    assert (first.delivered, first.retried) == (2, 1)
    assert [p.body["channel"] for p in state.posts()] == ["C0CARE", "C0THANKS"]
    assert deliverer.deliver_due().delivered == 0  # not before its second

    now[0] += 1.0
    clock.now = T0 + timedelta(seconds=1)
    assert deliverer.deliver_due().delivered == 1
    posts = state.posts()
    assert [p.body["channel"] for p in posts] == ["C0CARE", "C0THANKS", "C0CARE"]
    assert "customer2" in str(posts[-1].body["blocks"])
    assert waits == []
