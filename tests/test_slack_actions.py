"""Card buttons through slack-bolt's own request path: signed requests, real AsyncApp.

Each click is a form-encoded ``payload`` signed with the test signing secret
(`slack_sdk.signature`), dispatched through `AsyncApp.async_dispatch`, so bolt's signature
and timestamp checks, its ack and the listener all run as in production.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_standin import TOKEN, SlackState, signed_action, signed_submission, slack_standin
from sqlalchemy import select
from support import Clock, TextLabels

from bot import effects
from bot.app import build_embedder, build_suggester
from bot.config import load_settings
from bot.delivery import Deliverer
from bot.models import Author, Direction, Mention, Platform
from bot.pipeline import Pipeline
from bot.workbench import Workbench
from handlers.reply_log import LoggedReplies
from handlers.slack_actions import build_app
from handlers.slack_surface import SlackSurface
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage import sla
from storage.database import Database
from storage.schema import AuditEntry, Conversation, InteractionRow, OutboxRow, SlaTimer
from storage.slack import SlackPlaces

SECRET = "test-signing-secret-8f3a"  # noqa: S105 - a test secret
AGENT, OUTSIDER = "U0AGENT", "U0OUTSIDER"
T0 = datetime(2026, 11, 4, 17, 40, tzinfo=UTC)


@pytest.fixture
def slack() -> Iterator[tuple[str, SlackState]]:
    with slack_standin({"#care": "C0CARE", "#care-leads": "C0LEADS"}) as running:
        yield running


def _deliver(database: Database, url: str) -> None:
    surface = SlackSurface(
        client=WebClient(token=TOKEN, base_url=url), places=SlackPlaces(database), min_interval=0
    )
    stats = Deliverer(
        database=database, sinks={kind: surface for kind in effects.TEAM_KINDS}
    ).drain(max_wait=0)
    assert stats.failed == 0


def _pipeline(database: Database, playbooks: Path, *, suggest: bool = False) -> Pipeline:
    decider = PlaybookDecider(load_playbooks(playbooks), triage_channel="#care")
    suggester = None
    if suggest:
        settings = load_settings(environ={})
        suggester = build_suggester(settings, decider, embedder=build_embedder(settings))
    return Pipeline(
        database=database,
        classifier=TextLabels(),
        decider=decider,
        clock=Clock(T0),
        suggester=suggester,
    )


def _card(
    database: Database, playbooks: Path, url: str, state: SlackState, *, suggest: bool = False
) -> tuple[int, str]:
    """A complaint judged, its card posted; returns the interaction id and the card's ts."""
    pipeline = _pipeline(database, playbooks, suggest=suggest)
    pipeline.ingest(
        [
            Mention(
                platform=Platform.X,
                external_id="1880000000000000001",
                text="my router is broken again",
                author=Author(handle="dana_cole", display_name="Dana Cole"),
                created_at=T0,
            )
        ]
    )
    pipeline.process_pending()
    _deliver(database, url)
    (post,) = state.posts()
    ((channel, ts),) = state.messages
    assert channel == "C0CARE"
    interaction_id = int(post.body["blocks"][-1]["elements"][0]["value"])
    return interaction_id, ts


def _app(database: Database, url: str) -> AsyncApp:
    return build_app(
        token=TOKEN,
        signing_secret=SECRET,
        workbench=Workbench(database=database, clock=Clock(T0 + timedelta(minutes=5))),
        agents={AGENT},
        api_url=url,
    )


def _click(
    app: AsyncApp,
    url: str,
    *,
    action: str,
    value: int,
    ts: str,
    user: str = AGENT,
    secret: str | None = SECRET,
    age: float = 0,
) -> int:
    """Send one signed block_actions request through bolt; return the HTTP status."""
    body, headers = signed_action(
        action=action,
        value=value,
        channel="C0CARE",
        ts=ts,
        user=user,
        response_url=url.replace("/api/", "/respond/T0/1/abc"),
        secret=secret,
        age=age,
    )

    return _dispatch(app, body, headers)[0]


def _dispatch(app: AsyncApp, body: str, headers: dict[str, str]) -> tuple[int, str]:
    """Through bolt's request path; waits for the listener that runs after the ack."""

    async def send() -> tuple[int, str]:
        response = await app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
        await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=10)
        return response.status, response.body

    return asyncio.run(send())


def _conversation(database: Database) -> Conversation:
    with database.transaction() as session:
        return session.scalars(select(Conversation)).one()


def _audit(database: Database) -> list[str]:
    with database.transaction() as session:
        return list(session.scalars(select(AuditEntry.action).where(AuditEntry.origin == "slack")))


def test_claim_assigns_the_conversation_and_updates_the_card(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """An agent's Claim: acked, the conversation assigned to them, the card shows who."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    assert _click(app, url, action="claim", value=interaction_id, ts=ts) == 200
    conversation = _conversation(database)
    assert (conversation.state, conversation.assignee) == ("assigned", AGENT)
    assert _audit(database) == ["card.claim"]
    _deliver(database, url)
    (update,) = [c for c in state.calls if c.method == "chat.update"]
    assert (update.body["channel"], update.body["ts"]) == ("C0CARE", ts)
    assert "Claimed by <@U0AGENT>" in json.dumps(update.body["blocks"])


def test_resolve_and_dismiss_close_the_conversation_and_stop_its_timer(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Resolve closes the conversation and cancels its SLA timer; a later claim is refused."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    assert _click(app, url, action="resolve", value=interaction_id, ts=ts) == 200
    conversation = _conversation(database)
    assert conversation.state == "resolved"
    assert conversation.resolved_at == T0 + timedelta(minutes=5)
    with database.transaction() as session:
        timer = session.scalars(select(SlaTimer)).one()
    assert (timer.state, timer.cancel_reason) == (sla.CANCELLED, "resolved")

    assert _click(app, url, action="claim", value=interaction_id, ts=ts) == 200
    refusals = [c.body["text"] for c in state.calls if c.method == "response_url"]
    assert refusals == [
        f"Nothing changed: card {interaction_id}: the conversation is already resolved"
    ]
    assert _conversation(database).assignee is None


def test_dismiss_closes_the_conversation(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    assert _click(_app(database, url), url, action="dismiss", value=interaction_id, ts=ts) == 200
    assert _conversation(database).state == "dismissed"
    assert _audit(database) == ["card.dismiss"]


def test_a_user_outside_the_agent_group_cannot_act(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """The click is acknowledged, the user told privately, and nothing changes."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    assert _click(app, url, action="resolve", value=interaction_id, ts=ts, user=OUTSIDER) == 200
    assert _conversation(database).state == "new"
    assert _audit(database) == []
    (note,) = [c.body for c in state.calls if c.method == "response_url"]
    assert note["response_type"] == "ephemeral"
    assert "agent group" in note["text"]


@pytest.mark.parametrize(
    ("secret", "age"),
    [
        pytest.param("forged-secret", 0, id="forged"),
        pytest.param(None, 0, id="unsigned"),
        pytest.param(SECRET, 6 * 60, id="six-minutes-old"),
    ],
)
def test_forged_unsigned_and_stale_requests_are_rejected(
    database: Database,
    playbooks: Path,
    slack: tuple[str, SlackState],
    secret: str | None,
    age: float,
) -> None:
    """Bolt answers 401 before any listener runs; the conversation is untouched."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    status = _click(app, url, action="resolve", value=interaction_id, ts=ts, secret=secret, age=age)
    assert status == 401
    assert _conversation(database).state == "new"
    assert _audit(database) == []


def _open_reply(
    app: AsyncApp, url: str, state: SlackState, interaction_id: int, ts: str, action: str
) -> dict[str, object]:
    assert _click(app, url, action=action, value=interaction_id, ts=ts) == 200
    (opened,) = [c for c in state.calls if c.method == "views.open"]
    view = opened.body["view"]
    return json.loads(view) if isinstance(view, str) else view


def test_send_suggestion_opens_the_reply_form_and_sending_logs_the_reply(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Send 1 opens the form with suggestion 1; "Send publicly" logs an outbound reply with the
    agent's identity, sends it to the source through the outbox and stops the SLA timer."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state, suggest=True)
    app = _app(database, url)
    view = _open_reply(app, url, state, interaction_id, ts, "send_suggestion_2")
    with database.transaction() as session:
        card = session.scalar(select(OutboxRow.payload).where(OutboxRow.kind == effects.CARD))
    assert card is not None
    element = view["blocks"][1]["element"]  # type: ignore[index]
    assert element["initial_value"] == card["suggestions"][1]["text"]
    assert element["max_length"] == 280
    assert view["submit"]["text"] == "Send publicly"  # type: ignore[index]

    edited = (
        "Hi Dana, sorry about this. Could you DM us your account email? We'll check the router."
    )
    status, answer = _dispatch(
        app, *signed_submission(view, {"reply": {"text": edited}}, user=AGENT, secret=SECRET)
    )
    assert (status, answer) == (200, "")
    pipeline = _pipeline(database, playbooks)
    pipeline.process_pending()  # the reply is logged like any outbound message
    with database.transaction() as session:
        reply = session.scalars(
            select(InteractionRow).where(InteractionRow.direction == Direction.OUTBOUND.value)
        ).one()
        timer = session.scalars(select(SlaTimer)).one()
    assert (reply.text, reply.agent, reply.in_reply_to) == (
        edited,
        "slack:U0AGENT",
        "1880000000000000001",
    )
    assert _conversation(database).state == "responded"
    assert (timer.state, timer.cancel_reason) == (sla.CANCELLED, "responded")

    replies = LoggedReplies()
    surface = SlackSurface(
        client=WebClient(token=TOKEN, base_url=url), places=SlackPlaces(database), min_interval=0
    )
    sinks = {kind: surface for kind in effects.TEAM_KINDS} | {effects.REPLY: replies}
    assert Deliverer(database=database, sinks=sinks).drain(max_wait=0).failed == 0
    (sent,) = replies.sent
    assert (sent.payload["text"], sent.payload["in_reply_to"]) == (edited, "1880000000000000001")
    (update,) = [c for c in state.calls if c.method == "chat.update"]
    assert "Replied by <@U0AGENT>" in json.dumps(update.body["blocks"])


def test_a_reply_over_the_platform_limit_is_refused_in_the_form(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Slack shows the error under the field; nothing is stored or sent."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_reply(app, url, state, interaction_id, ts, "reply")
    status, answer = _dispatch(
        app, *signed_submission(view, {"reply": {"text": "x" * 300}}, user=AGENT, secret=SECRET)
    )
    assert status == 200
    assert json.loads(answer) == {
        "response_action": "errors",
        "errors": {"reply": "300 characters; x allows 280"},
    }
    with database.transaction() as session:
        outbound = session.scalars(
            select(InteractionRow).where(InteractionRow.direction == Direction.OUTBOUND.value)
        ).all()
    assert outbound == []
