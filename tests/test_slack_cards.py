"""Cards in Slack: the real slack_sdk WebClient against a local stand-in of the Web API.

The pipeline stores and judges mentions, the outbox delivers through `SlackSurface`, and the
stand-in answers in Slack's wire format (and with 429s when told to).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_standin import TOKEN, SlackState, slack_standin
from sqlalchemy import select
from support import Clock, TextLabels

from bot import effects
from bot.delivery import Deliverer
from bot.logs import configure_logging
from bot.models import Author, Mention, Platform
from bot.pipeline import Pipeline
from bot.sla import SlaTimers
from classifiers.unclassified import Unclassified
from handlers.slack_surface import SlackSurface, channel_map
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage.database import Database
from storage.schema import OutboxRow
from storage.slack import SlackPlaces

FIXTURES = Path(__file__).parent / "fixtures"
Earful = Callable[..., subprocess.CompletedProcess[str]]  # the `earful` fixture (conftest)
T0 = datetime(2026, 11, 4, 17, 40, tzinfo=UTC)
CHANNELS = {
    "#care": "C0CARE",
    "#incidents": "C0INCIDENTS",
    "#care-leads": "C0LEADS",
    "#earful-triage": "C0TRIAGE",
}


@pytest.fixture
def slack() -> Iterator[tuple[str, SlackState]]:
    with slack_standin(CHANNELS) as running:
        yield running


def _deliverer(database: Database, url: str, clock: Clock | None = None) -> Deliverer:
    surface = SlackSurface(
        client=WebClient(token=TOKEN, base_url=url), places=SlackPlaces(database), min_interval=0
    )
    kwargs = {"clock": clock} if clock is not None else {}
    return Deliverer(
        database=database, sinks={kind: surface for kind in effects.TEAM_KINDS}, **kwargs
    )


def _mention(number: int, text: str, at: datetime, *, in_reply_to: str | None = None) -> Mention:
    return Mention(
        platform=Platform.X,
        external_id=f"18700000000000{number:05d}",
        text=text,
        author=Author(handle=f"customer{number}", display_name="Dana Cole", followers=812),
        created_at=at,
        in_reply_to=in_reply_to,
        url=f"https://x.com/customer{number}/status/18700000000000{number:05d}",
    )


def _pipeline(database: Database, playbooks: Path, clock: Clock) -> Pipeline:
    decider = PlaybookDecider(load_playbooks(playbooks), triage_channel="#earful-triage")
    return Pipeline(database=database, classifier=TextLabels(), decider=decider, clock=clock)


def _run(pipeline: Pipeline, *mentions: Mention) -> None:
    pipeline.ingest(list(mentions))
    pipeline.process_pending()


def _texts(blocks: list[dict[str, object]]) -> str:
    """Every text of a message's blocks, joined, to search in."""
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(str(node["text"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(out)


def _action_ids(blocks: list[dict[str, object]]) -> list[str]:
    ids: list[str] = []
    for block in blocks:
        for element in block.get("elements", []) or []:  # type: ignore[attr-defined]
            if isinstance(element, dict) and "action_id" in element:
                ids.append(element["action_id"])
        accessory = block.get("accessory")
        if isinstance(accessory, dict):
            ids.append(accessory["action_id"])
    return ids


def test_card_goes_to_its_channel_and_later_messages_to_its_thread(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """The first card of a conversation opens a thread in the playbook's channel; the next one
    lands in that thread."""
    url, state = slack
    clock = Clock(T0)
    pipeline = _pipeline(database, playbooks, clock)
    first = _mention(1, "my router is broken again <!channel> & nobody cares", T0)
    _run(pipeline, first)
    _run(
        pipeline,
        _mention(2, "still broken", T0 + timedelta(minutes=5), in_reply_to=first.external_id),
    )
    stats = _deliverer(database, url).drain(max_wait=0)
    assert (stats.delivered, stats.failed) == (2, 0)

    parent, follow_up = state.posts()
    assert parent.body["channel"] == "#care"
    assert "thread_ts" not in parent.body
    text = _texts(parent.body["blocks"])
    assert "@customer1" in text
    assert "&lt;!channel&gt; &amp; nobody cares" in text  # customer text can never ping
    assert "complaint 0.90" in text
    assert "*respond P2*" in text
    assert "care/complaint" in text
    assert "Escalation: notify #care-leads → mention @care-lead" in text
    assert f"<{first.url}|Open on x>" in text
    assert _action_ids(parent.body["blocks"]) == [
        "earful.claim",
        "earful.reply",
        "earful.escalate",
        "earful.snooze",
        "earful.dismiss",
        "earful.resolve",
        "earful.correct",
    ]
    parent_ts = next(ts for (channel, ts), m in state.messages.items() if "thread_ts" not in m)
    assert follow_up.body["thread_ts"] == parent_ts
    assert follow_up.body["channel"] == "C0CARE"
    assert "still broken" in _texts(follow_up.body["blocks"])


def test_incident_has_one_card_updated_in_place(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Outage reports after the spike update one incident card and add to its thread; updates
    due together go out as one update and one thread post holding their reports."""
    url, state = slack
    clock = Clock(T0)
    pipeline = _pipeline(database, playbooks, clock)
    minute = timedelta(minutes=1)
    _run(
        pipeline,
        *(_mention(n, f"network outage in Leeds #{n}", T0 + n * minute) for n in (1, 2, 3)),
    )
    _run(pipeline, _mention(4, "outage here too #4", T0 + 4 * minute))
    assert _deliverer(database, url).drain(max_wait=0).failed == 0
    _run(pipeline, _mention(5, "outage here too #5", T0 + 5 * minute))
    _run(pipeline, _mention(6, "outage here too #6", T0 + 6 * minute))
    stats = _deliverer(database, url).drain(max_wait=0)
    assert (stats.delivered, stats.failed) == (2, 0)  # two updates, delivered as one

    incident_posts = [p for p in state.posts() if p.body["channel"] == "#incidents"]
    assert len(incident_posts) == 1  # one incident card, not one per report
    card_ts = next(
        ts
        for (channel, ts), m in state.messages.items()
        if channel == "C0INCIDENTS" and "thread_ts" not in m
    )
    assert "*Incident #1* P1" in _texts(incident_posts[0].body["blocks"])
    assert "*1* report since" in _texts(incident_posts[0].body["blocks"])
    updates = [c for c in state.calls if c.method == "chat.update"]
    assert [u.body["ts"] for u in updates] == [card_ts, card_ts]
    assert "*2* reports" in _texts(updates[0].body["blocks"])
    assert "*4* reports" in _texts(updates[1].body["blocks"])
    card = state.messages[("C0INCIDENTS", card_ts)]
    assert "*4* reports" in _texts(card["blocks"])  # as it stands after the last update
    thread = [p for p in state.posts() if p.body.get("thread_ts") == card_ts]
    assert len(thread) == 2
    assert "#4" in thread[0].body["text"]
    assert thread[1].body["text"].startswith("2 more reports: ")
    together = [_texts([block]) for block in thread[1].body["blocks"]]
    assert ["#5" in text for text in together] == [True, False]
    assert ["#6" in text for text in together] == [False, True]


def test_escalation_is_posted_in_the_thread_and_to_the_notified_channel(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """A breached SLA shows up under the card and in #care-leads with a link to the card."""
    url, state = slack
    clock = Clock(T0)
    _run(_pipeline(database, playbooks, clock), _mention(1, "my router is broken again", T0))
    deliverer = _deliverer(database, url, clock)
    deliverer.drain(max_wait=0)
    clock.now = T0 + timedelta(minutes=31)
    SlaTimers(database=database, clock=clock).fire_due()
    clock.now = T0 + timedelta(minutes=46)
    SlaTimers(database=database, clock=clock).fire_due()
    stats = deliverer.drain(max_wait=0)
    assert (stats.delivered, stats.failed) == (2, 0)

    card, *rest = state.posts()
    card_ts = next(
        ts
        for (channel, ts), m in state.messages.items()
        if "thread_ts" not in m and channel == "C0CARE"
    )
    in_thread = [p.body["text"] for p in rest if p.body.get("thread_ts") == card_ts]
    leads = [p.body["text"] for p in rest if p.body["channel"] == "#care-leads"]
    assert [("step 1/3: notify #care-leads" in t) for t in in_thread] == [True, False]
    assert "@care-lead SLA breached 16 min ago" in in_thread[1]
    assert len(leads) == 1
    assert "SLA breached 1 min ago: P2 (care)" in leads[0]
    assert f"https://earful-test.slack.com/archives/C0CARE/p{card_ts.replace('.', '')}" in leads[0]


def test_rate_limited_posts_are_delivered_once_each_and_in_order(
    database: Database, slack: tuple[str, SlackState]
) -> None:
    """With 30% of posts answered 429 (Retry-After: 1), 500 cards in 50 conversations all arrive
    exactly once, each conversation's in order."""
    url, state = slack
    state.rate_limit_share = 0.3
    pipeline = Pipeline(
        database=database,
        classifier=Unclassified(),
        decider=PlaybookDecider(load_playbooks(None), triage_channel="#earful-triage"),
    )
    roots = [_mention(c * 100, f"conversation {c} message 0", T0) for c in range(50)]
    pipeline.ingest(roots)
    later = [
        _mention(
            c * 100 + i,
            f"conversation {c} message {i}",
            T0 + timedelta(minutes=i),
            in_reply_to=roots[c].external_id,
        )
        for i in range(1, 10)
        for c in range(50)
    ]
    pipeline.ingest(later)
    pipeline.process_pending()
    stats = _deliverer(database, url).drain(max_wait=300)
    assert stats.failed == 0
    assert stats.delivered == 500
    assert state.rate_limited > 50  # the 429s really happened
    # First cards go out several to a message (one channel's, due together); each card once.
    texts = [
        found.group(0)
        for post in state.posts()
        for found in re.finditer(r"conversation \d+ message \d+", json.dumps(post.body["blocks"]))
    ]
    assert len(texts) == 500
    assert len(set(texts)) == 500  # exactly once each
    for c in range(50):
        mine = [t for t in texts if t.startswith(f"conversation {c} ")]
        assert mine == [f"conversation {c} message {i}" for i in range(10)]
    with database.transaction() as session:
        assert session.scalar(select(OutboxRow.state).where(OutboxRow.state != "delivered")) is None


def test_slack_refusals_fail_the_card_with_the_reason(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """A channel Slack does not know fails for good, with Slack's error kept for a person."""
    url, state = slack
    del state.channels["#care"]
    _run(_pipeline(database, playbooks, Clock(T0)), _mention(1, "my router is broken again", T0))
    stats = _deliverer(database, url).drain(max_wait=0)
    assert (stats.delivered, stats.failed) == (0, 1)
    with database.transaction() as session:
        error = session.scalar(select(OutboxRow.last_error))
    assert error == "Slack refused the message: channel_not_found"


def test_posts_are_paced_to_one_per_second_per_channel(
    database: Database, slack: tuple[str, SlackState]
) -> None:
    """A second post to the same channel waits out the second; another channel does not wait."""
    url, _ = slack
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    surface = SlackSurface(
        client=WebClient(token=TOKEN, base_url=url),
        places=SlackPlaces(database),
        clock=lambda: now[0],
        sleep=sleep,
    )
    surface._post("#care", "one", None)
    now[0] += 0.25
    surface._post("#care", "two", None)
    surface._post("#incidents", "three", None)
    assert waits == [pytest.approx(0.75)]


def test_no_token_or_customer_text_reaches_the_logs(
    database: Database,
    playbooks: Path,
    slack: tuple[str, SlackState],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """slack_sdk logs request bodies (a customer's words) at DEBUG; Earful keeps it quiet."""
    url, _ = slack
    surface = SlackSurface(
        client=WebClient(token=TOKEN, base_url=url), places=SlackPlaces(database), min_interval=0
    )
    logging.getLogger("slack_sdk").setLevel(logging.DEBUG)  # as a library left alone would
    with caplog.at_level(logging.DEBUG):
        surface._post("#care", "words a customer wrote", None)
    assert "words a customer wrote" in caplog.text  # the leak this test guards against
    caplog.clear()
    configure_logging("DEBUG")
    try:
        with caplog.at_level(logging.DEBUG):
            _run(
                _pipeline(database, playbooks, Clock(T0)),
                _mention(1, "my router is broken again", T0),
            )
            assert _deliverer(database, url).drain(max_wait=0).delivered == 1
        assert "my router is broken again" not in caplog.text
        assert TOKEN not in caplog.text
    finally:
        configure_logging("WARNING")


def test_channel_map_setting() -> None:
    """Queue names map to Slack channel ids; a malformed entry is refused with the entry named."""
    assert channel_map("#care=C0CARE, #incidents=C0INC") == {
        "#care": "C0CARE",
        "#incidents": "C0INC",
    }
    assert channel_map(None) == {}
    with pytest.raises(ValueError, match="'#care' is not QUEUE=CHANNEL_ID"):
        channel_map("#care")


def test_replay_posts_cards_to_slack_when_a_token_is_configured(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """The real command, configured only by the environment, delivers its cards to Slack."""
    with slack_standin({"#earful-triage": "C0TRIAGE"}) as (url, state):
        env = {
            **env,
            "EARFUL_CLASSIFIER": "none",
            "EARFUL_SLACK_BOT_TOKEN": TOKEN,
            "EARFUL_SLACK_API_URL": url,
            "EARFUL_SLACK_CHANNELS": "#earful-triage=C0TRIAGE",
        }
        result = earful("replay", str(FIXTURES / "replay" / "thread.jsonl"), env=env)
        assert result.returncode == 0, result.stderr
        posts = state.posts()
        # Five inbound messages in three conversations: three cards, due together, go out as
        # one message; the two later messages are cards in its thread.
        assert [p.body["channel"] for p in posts] == ["C0TRIAGE"] * 3
        (first, *later) = posts
        assert [b["type"] for b in first.body["blocks"]].count("actions") == 3
        root = next(ts for (_, ts), m in state.messages.items() if "thread_ts" not in m)
        assert [p.body.get("thread_ts") for p in later] == [root] * 2
        assert TOKEN not in result.stdout + result.stderr

        env["EARFUL_SLACK_BOT_TOKEN"] = "xoxb-revoked"  # noqa: S105 - a wrong test token
        env["EARFUL_DATABASE_URL"] = f"sqlite:///{tmp_path / 'other.db'}"
        refused = earful("replay", str(FIXTURES / "replay" / "thread.jsonl"), env=env)
        assert "deliveries failed" in refused.stdout
        assert re.search(r"deliveries failed\s*│\s*5", refused.stdout)
