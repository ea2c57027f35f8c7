"""Card buttons through slack-bolt's own request path: signed requests, real AsyncApp.

Each click is a form-encoded ``payload`` signed with the test signing secret
(`slack_sdk.signature`), dispatched through `AsyncApp.async_dispatch`, so bolt's signature
and timestamp checks, its ack and the listener all run as in production.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.models.blocks import ActionsBlock
from slack_standin import (
    TOKEN,
    SlackState,
    deliver_cards,
    signed_action,
    signed_submission,
    signed_view_action,
    slack_standin,
)
from sqlalchemy import select
from support import PLAYBOOKS, Clock, TextLabels, awaiting
from x_standin import REPLY_ENVIRON, Answer, XStandin, fixture

from bot import effects
from bot.app import build_deliverer, build_embedder, build_reply_sink, build_suggester
from bot.config import load_settings
from bot.delivery import DeliveryStats
from bot.models import Author, ContactSnapshot, Direction, Interaction, Mention, Platform
from bot.pipeline import Pipeline
from bot.queues import Queues
from bot.sla import SlaTimers
from bot.workbench import Workbench
from handlers.reply_log import LoggedReplies
from handlers.slack_actions import NOT_AN_AGENT, build_app
from handlers.slack_blocks import card_blocks
from handlers.slack_commands import contact_text
from handlers.slack_surface import SlackSurface
from handlers.ticket_webhook import TicketWebhook
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage import replies, sla
from storage.database import Database
from storage.schema import (
    AuditEntry,
    Conversation,
    Correction,
    InteractionRow,
    OutboxRow,
    SlaTimer,
)
from storage.slack import SlackPlaces

Earful = Callable[..., subprocess.CompletedProcess[str]]  # the `earful` fixture (conftest)
SECRET = "test-signing-secret-8f3a"  # noqa: S105 - a test secret
AGENT, OUTSIDER = "U0AGENT", "U0OUTSIDER"
T0 = datetime(2026, 11, 4, 17, 40, tzinfo=UTC)


@pytest.fixture
def slack() -> Iterator[tuple[str, SlackState]]:
    with slack_standin({"#care": "C0CARE", "#care-leads": "C0LEADS"}) as running:
        yield running


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
    deliver_cards(database, url)
    (post,) = state.posts()
    ((channel, ts),) = state.messages
    assert channel == "C0CARE"
    interaction_id = int(post.body["blocks"][-1]["elements"][0]["value"])
    return interaction_id, ts


def _app(database: Database, url: str, clock: Clock | None = None) -> AsyncApp:
    return build_app(
        token=TOKEN,
        signing_secret=SECRET,
        workbench=Workbench(database=database, clock=clock or Clock(T0 + timedelta(minutes=5))),
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
    menu: bool = False,
) -> int:
    """Send one signed block_actions request through bolt (a button, or a row's ``menu``);
    return the HTTP status."""
    body, headers = signed_action(
        action=action,
        value=value,
        channel="C0CARE",
        ts=ts,
        user=user,
        response_url=url.replace("/api/", "/respond/T0/1/abc"),
        secret=secret,
        age=age,
        menu=menu,
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


def _conversation_states(database: Database) -> set[str]:
    with database.transaction() as session:
        return set(session.scalars(select(Conversation.state)))


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
    deliver_cards(database, url)
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
    deliver_cards(database, url, {effects.REPLY: replies})
    (sent,) = replies.sent
    assert (sent.payload["text"], sent.payload["in_reply_to"]) == (edited, "1880000000000000001")
    (update,) = [c for c in state.calls if c.method == "chat.update"]
    assert "Replied by <@U0AGENT>" in json.dumps(update.body["blocks"])


def _send_refused_reply(
    database: Database, playbooks: Path, url: str, state: SlackState, *, threaded_first: bool
) -> tuple[str, DeliveryStats]:
    """A card, its Reply form sent through bolt, and the reply delivered through the real tweepy
    sink to the X stand-in, which refuses it (403). ``threaded_first``: the pipeline logs the
    reply to its conversation before delivery, as it mostly does; else after the failure.
    Returns the card's ts and what delivery did."""
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_reply(app, url, state, interaction_id, ts, "reply")
    text = "Hi Dana, sorry about the router <again>. DM us your account email?"
    assert _dispatch(
        app, *signed_submission(view, {"reply": {"text": text}}, user=AGENT, secret=SECRET)
    ) == (200, "")
    if threaded_first:
        _pipeline(database, playbooks).process_pending()
    surface = SlackSurface(
        client=WebClient(token=TOKEN, base_url=url), places=SlackPlaces(database), min_interval=0
    )
    with XStandin() as x:
        x.queue("POST", "/2/tweets", Answer(403, fixture("reply_not_allowed.json")))
        sink = build_reply_sink(load_settings(environ=REPLY_ENVIRON), database)
        x.route(sink.sinks["x"].client.session)  # type: ignore[attr-defined]
        stats = build_deliverer(database, team_sink=surface, reply_sink=sink).drain(max_wait=0)
        assert len(x.calls("/2/tweets", "POST")) == 1  # refused for good: not tried again
        assert x.created == []
    if not threaded_first:
        _pipeline(database, playbooks).process_pending()
    return ts, stats


def _the_reply(database: Database) -> InteractionRow:
    """The one outbound interaction: the agent's reply."""
    with database.transaction() as session:
        return session.scalars(
            select(InteractionRow).where(InteractionRow.direction == Direction.OUTBOUND.value)
        ).one()


def _last_status(state: SlackState, ts: str) -> str:
    """The status line of the card's latest update (its context block)."""
    updates = [c.body for c in state.calls if c.method == "chat.update" and c.body["ts"] == ts]
    assert updates, "the card was not updated"
    blocks = updates[-1]["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    (status,) = [b for b in blocks if str(b.get("block_id", "")).endswith(".status")]
    return str(status["elements"][0]["text"]).strip("*")


def test_a_reply_x_refuses_is_reported_to_the_agent_and_the_customer_awaits_an_answer_again(
    database: Database,
    playbooks: Path,
    slack: tuple[str, SlackState],
    earful: Earful,
    env: dict[str, str],
) -> None:
    """X refuses the reply (403): the card that said Replied says not delivered, and the agent
    is pinged in its thread with X's reason and their words; nothing is retried. The
    conversation awaits a response again, its SLA timer running, and the reply is marked not
    delivered."""
    url, state = slack
    ts, stats = _send_refused_reply(database, playbooks, url, state, threaded_first=True)
    assert stats.failed == 1

    notice = [c for c in state.posts() if c.body.get("thread_ts") == ts]
    assert len(notice) == 1, [c.body for c in state.posts()]
    said = notice[0].body["text"]
    assert said.startswith(":warning: <@U0AGENT>, your reply did not go out on x as sent")
    assert "not allowed because you have not been mentioned" in said
    assert ">Hi Dana, sorry about the router &lt;again&gt;. DM us your account email?" in said
    with database.transaction() as session:
        kinds = dict(session.execute(select(OutboxRow.kind, OutboxRow.state)).all())
    assert kinds[effects.REPLY] == "failed"  # still listed by `earful outbox failed`
    assert kinds[effects.REPLY_FAILED] == "delivered"
    # The card it was sent from, which said Replied, says so too.
    assert _last_status(state, ts) == "Reply by <@U0AGENT> not delivered: awaiting a response"

    # The customer has no answer: back in the queue, no first response, the timer resumed.
    assert awaiting(database) == ("new", None, "pending")
    # The contact history says the reply was not delivered; the suggester does not learn it.
    undelivered = _the_reply(database).undelivered
    assert undelivered is not None
    assert undelivered.startswith("X refused the reply: X answered 403 Forbidden")
    with database.transaction() as session:
        assert replies.past_replies(session) == []
    workbench = Workbench(database=database, clock=Clock(T0 + timedelta(minutes=5)))
    (found,) = Queues(database=database, workbench=workbench).find("dana_cole")
    assert found.snapshot.outbound_count == 0
    assert "→ out (not delivered) " in contact_text(found)

    # `earful outbox retry` sends it again: responded and counted, unless it fails again.
    result = earful("outbox", "retry", "--kind", "reply", "--database", database.url, env=env)
    assert result.returncode == 0, result.stderr
    assert "1 failed effect(s) queued again" in result.stdout
    assert _the_reply(database).undelivered is None
    with database.transaction() as session:
        state_of = dict(session.execute(select(OutboxRow.kind, OutboxRow.state)).all())
    assert state_of[effects.REPLY] == "pending"
    conversation_state, first_response, timer_state = awaiting(database)
    assert (conversation_state, timer_state) == ("responded", "cancelled")
    assert first_response is not None
    (found,) = Queues(database=database, workbench=workbench).find("dana_cole")
    assert found.snapshot.outbound_count == 1
    assert "• → out 2026-11-04 x: “Hi Dana" in contact_text(found)
    sent = LoggedReplies()
    deliver_cards(database, url, extra={effects.REPLY: sent})
    assert [e.payload["interaction_id"] for e in sent.sent] == [_the_reply(database).id]
    assert _last_status(state, ts) == "Replied by <@U0AGENT> (sent again)"


def test_a_reply_refused_before_the_pipeline_logs_it_never_marks_the_conversation_responded(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Delivery can beat the pipeline: the reply fails first, then is threaded, and the
    conversation is never marked responded."""
    url, state = slack
    _, stats = _send_refused_reply(database, playbooks, url, state, threaded_first=False)
    assert stats.failed == 1
    assert awaiting(database) == ("new", None, "pending")
    reply = _the_reply(database)
    assert reply.conversation_id is not None  # threaded, shown in the history
    assert reply.undelivered is not None


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


# The forms behind Dismiss, Escalate, Snooze and Correct labels, and the reply counter.


def _open_form(
    app: AsyncApp, url: str, state: SlackState, interaction_id: int, ts: str, action: str
) -> dict[str, Any]:
    """Click a card button that opens a form; return the form Slack was asked to open."""
    before = len([c for c in state.calls if c.method == "views.open"])
    assert _click(app, url, action=action, value=interaction_id, ts=ts) == 200
    opened = [c for c in state.calls if c.method == "views.open"]
    assert len(opened) == before + 1, "no form was opened"
    view = opened[-1].body["view"]
    return json.loads(view) if isinstance(view, str) else view


def _chosen(value: str) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": {"value": value}}


def _submit(
    app: AsyncApp, view: dict[str, Any], values: dict[str, Any], user: str = AGENT
) -> tuple[int, dict[str, Any] | None]:
    """Submit a form through bolt; return the status and the answer (None: accepted)."""
    status, answer = _dispatch(app, *signed_submission(view, values, user=user, secret=SECRET))
    return status, json.loads(answer) if answer else None


def _card_update(database: Database, url: str, state: SlackState) -> str:
    """Deliver the outbox; return the blocks of the card's latest update, as JSON text."""
    deliver_cards(database, url)
    updates = [c for c in state.calls if c.method == "chat.update"]
    assert updates, "the card was not updated"
    return json.dumps(updates[-1].body["blocks"], ensure_ascii=False)


def _select_options(view: dict[str, Any], block: str) -> list[str]:
    (found,) = [b for b in view["blocks"] if b.get("block_id") == block]
    return [o["text"]["text"] for o in found["element"]["options"]]


def _audit_details(database: Database, action: str) -> list[dict[str, Any]]:
    with database.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry.details)
                .where(AuditEntry.action == action)
                .order_by(AuditEntry.id)
            )
        )


def test_dismiss_asks_for_a_reason_and_shows_it_on_the_card(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Dismiss opens a form; without a reason it is refused, with one the conversation closes,
    its timer stops, and the reason is in the audit log and on the card."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_form(app, url, state, interaction_id, ts, "dismiss")
    assert _select_options(view, "choice") == [
        "Spam",
        "Not for us",
        "Already handled",
        "No reply needed",
        "Other",
    ]
    assert _conversation(database).state == "new"  # opening the form changes nothing

    assert _submit(app, view, {"note": {"note": "hm"}}) == (
        200,
        {"response_action": "errors", "errors": {"choice": "Pick a reason."}},
    )
    assert _conversation(database).state == "new"

    values = {"choice": {"choice": _chosen("not_for_us")}, "note": {"note": "wrong <company>"}}
    assert _submit(app, view, values) == (200, None)
    assert _conversation(database).state == "dismissed"
    assert _timer(database).cancel_reason == "dismissed"
    (details,) = _audit_details(database, "card.dismiss")
    assert (details["reason"], details["note"]) == ("Not for us", "wrong <company>")
    blocks = _card_update(database, url, state)
    assert "Dismissed by <@U0AGENT>: Not for us (wrong &lt;company&gt;)" in blocks


def _timer(database: Database) -> SlaTimer:
    with database.transaction() as session:
        return session.scalars(select(SlaTimer)).one()


def _fired(database: Database, at: datetime) -> list[str]:
    return [b.description for b in SlaTimers(database=database, clock=Clock(at)).fire_due()]


def test_escalate_runs_the_chosen_step_once_and_the_ladder_moves_on(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Running "notify #care-leads" by hand posts it now; at the breach the timer runs the next
    step, never the notify again."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_form(app, url, state, interaction_id, ts, "escalate")
    assert _select_options(view, "step") == [
        "1. notify #care-leads (next)",
        "2. mention @care-lead",
        "3. page on-call",
    ]
    assert _submit(app, view, {}) == (
        200,
        {"response_action": "errors", "errors": {"person": "Pick a step or a person."}},
    )
    assert _submit(app, view, {"step": {"choice": _chosen("1")}}) == (200, None)

    timer = _timer(database)
    assert (timer.state, timer.step, timer.due_at) == ("pending", 1, T0 + timedelta(minutes=30))
    manual = _effects(database, effects.ESCALATION)
    assert [(e.payload["action"], e.payload["target"], e.payload["by"]) for e in manual] == [
        ("notify", "#care-leads", AGENT)
    ]
    (details,) = _audit_details(database, "card.escalate")
    assert (details["step"], details["to"]) == (1, "notify #care-leads")

    blocks = _card_update(database, url, state)
    assert "Escalated by <@U0AGENT> to notify #care-leads" in blocks
    posts = [c.body for c in state.posts()]
    in_thread = [p for p in posts if p.get("thread_ts") == ts]
    assert [p["text"] for p in in_thread] == [
        ":arrow_up: Escalated by <@U0AGENT>: step 1/3: notify #care-leads"
    ]
    assert [p["channel"] for p in posts if "Escalated by" in p["text"]] == ["C0CARE", "#care-leads"]

    assert _fired(database, T0 + timedelta(minutes=29)) == []
    assert _fired(database, T0 + timedelta(minutes=31)) == [
        "conversation:1 step 2/3 mention @care-lead"
    ]
    assert _fired(database, T0 + timedelta(minutes=32)) == []
    automatic = [e for e in _effects(database, effects.ESCALATION) if "by" not in e.payload]
    assert [(e.payload["action"], e.payload["overdue_seconds"]) for e in automatic] == [
        ("mention", 60)  # a minute past the first-response deadline, as it is
    ]


def test_escalate_to_a_person_mentions_them_in_the_card_thread(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """A person picked in the form is pinged in the card's thread; the SLA ladder is untouched."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_form(app, url, state, interaction_id, ts, "escalate")
    person = {"person": {"person": {"type": "users_select", "selected_user": "U0LEAD"}}}
    assert _submit(app, view, person) == (200, None)
    assert _timer(database).step == 0
    blocks = _card_update(database, url, state)
    assert "Escalated by <@U0AGENT> to <@U0LEAD>" in blocks
    (ping,) = [c.body for c in state.posts() if c.body.get("thread_ts") == ts]
    assert ping["text"] == ":arrow_up: <@U0LEAD>: <@U0AGENT> brings you in on this conversation"


class _Tickets(BaseHTTPRequestHandler):
    """A local ticket system that records each POST."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def tickets() -> Iterator[str]:
    _Tickets.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tickets)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/ticket?token=s3cret"
    server.shutdown()
    server.server_close()


def test_escalating_to_the_ticket_step_posts_to_its_webhook_once(
    database: Database, tmp_path: Path, slack: tuple[str, SlackState], tickets: str
) -> None:
    """The ticket step runs through the outbox to its webhook; its token never reaches Slack, and
    the ladder, climbed to its end by hand, fires nothing more."""
    directory = tmp_path / "ticketing"
    directory.mkdir()
    (directory / "care.yaml").write_text(
        PLAYBOOKS.replace("  - page: on-call", f"  - ticket: {tickets}")
    )
    url, state = slack
    interaction_id, ts = _card(database, directory, url, state)
    app = _app(database, url)
    view = _open_form(app, url, state, interaction_id, ts, "escalate")
    assert _select_options(view, "step")[2] == "3. ticket 127.0.0.1"
    assert _submit(app, view, {"step": {"choice": _chosen("3")}}) == (200, None)
    assert _timer(database).state == sla.EXHAUSTED

    deliver_cards(database, url, {effects.TICKET: TicketWebhook()})
    (ticket,) = _Tickets.received
    assert (ticket["action"], ticket["by"], ticket["step"]) == ("ticket", AGENT, 3)
    assert ticket["mention"]["text"] == "my router is broken again"
    assert _fired(database, T0 + timedelta(hours=3)) == []
    assert len(_Tickets.received) == 1
    slack_text = json.dumps([c.body for c in state.calls])
    assert "Escalated by <@U0AGENT> to ticket 127.0.0.1" in slack_text
    assert "s3cret" not in slack_text
    assert "s3cret" not in json.dumps(_audit_details(database, "card.escalate"))


def _effects(database: Database, kind: str) -> list[OutboxRow]:
    with database.transaction() as session:
        return list(
            session.scalars(select(OutboxRow).where(OutboxRow.kind == kind).order_by(OutboxRow.id))
        )


def test_snooze_moves_the_timer_and_nothing_fires_before_the_new_time(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Snoozing for 2 hours at 17:45 holds the breach due at 18:10 until 19:45."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_form(app, url, state, interaction_id, ts, "snooze")
    assert _select_options(view, "choice") == ["30 minutes", "2 hours", "Tomorrow 9:00"]
    assert _submit(app, view, {"choice": {"choice": _chosen("2h")}}) == (200, None)
    until = T0 + timedelta(minutes=5, hours=2)
    assert _timer(database).due_at == until
    assert "Snoozed until 2026-11-04 19:45 UTC by <@U0AGENT>" in _card_update(database, url, state)
    (details,) = _audit_details(database, "card.snooze")
    assert details["until"] == until.isoformat()

    assert _fired(database, T0 + timedelta(minutes=31)) == []
    assert _fired(database, until - timedelta(seconds=1)) == []
    assert _fired(database, until) == ["conversation:1 step 1/3 notify #care-leads"]
    (breach,) = _effects(database, effects.ESCALATION)
    assert breach.payload["overdue_seconds"] == 95 * 60  # since the deadline, not the snooze


def test_snoozing_a_breached_item_rearms_its_ladder(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """After the first step fired, a snooze holds the rest; when it ends the ladder starts over;
    an exhausted ladder is re-armed the same way (tomorrow 9:00 UTC)."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    assert _fired(database, T0 + timedelta(minutes=31)) == [
        "conversation:1 step 1/3 notify #care-leads"
    ]
    at = T0 + timedelta(minutes=40)
    app = _app(database, url, clock=Clock(at))
    view = _open_form(app, url, state, interaction_id, ts, "snooze")
    assert _submit(app, view, {"choice": {"choice": _chosen("30m")}}) == (200, None)
    timer = _timer(database)
    assert (timer.state, timer.step, timer.generation) == ("pending", 0, 2)
    assert _fired(database, T0 + timedelta(minutes=46)) == []  # step 2 was due now
    assert _fired(database, at + timedelta(minutes=30)) == [
        "conversation:1 step 1/3 notify #care-leads"
    ]
    for minutes in (86, 101):
        _fired(database, T0 + timedelta(minutes=minutes))
    assert _timer(database).state == sla.EXHAUSTED

    assert _submit(app, view, {"choice": {"choice": _chosen("tomorrow")}}) == (200, None)
    timer = _timer(database)
    assert (timer.state, timer.step) == ("pending", 0)
    assert timer.due_at == datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


def test_a_form_that_cannot_act_tells_the_agent_privately(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Snoozing a conversation resolved while the form was open changes nothing and says why."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_form(app, url, state, interaction_id, ts, "snooze")
    assert _click(app, url, action="resolve", value=interaction_id, ts=ts) == 200
    assert _submit(app, view, {"choice": {"choice": _chosen("2h")}}) == (200, None)
    (note,) = [c.body for c in state.calls if c.method == "chat.postEphemeral"]
    assert (note["channel"], note["user"]) == ("C0CARE", AGENT)
    assert (
        note["text"]
        == f"Nothing changed: card {interaction_id}: the conversation is already resolved"
    )
    assert _timer(database).state == sla.CANCELLED
    assert _audit(database) == ["card.resolve"]


def test_a_customer_message_wakes_a_snoozed_item(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Snoozed until tomorrow, the conversation is due again 30 minutes after the customer
    writes again, and escalates then."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_form(app, url, state, interaction_id, ts, "snooze")
    assert _submit(app, view, {"choice": {"choice": _chosen("tomorrow")}}) == (200, None)
    assert _timer(database).due_at == datetime(2026, 11, 5, 9, 0, tzinfo=UTC)

    again = T0 + timedelta(minutes=20)
    pipeline = _pipeline(database, playbooks)
    pipeline.ingest(
        [
            Mention(
                platform=Platform.X,
                external_id="1880000000000000002",
                text="hello?? still broken",
                author=Author(handle="dana_cole", display_name="Dana Cole"),
                created_at=again,
                in_reply_to="1880000000000000001",
            )
        ]
    )
    pipeline.process_pending()
    assert _timer(database).due_at == again + timedelta(minutes=30)
    assert _fired(database, again + timedelta(minutes=31)) == [
        "conversation:1 step 1/3 notify #care-leads"
    ]


def test_correct_labels_stores_a_correction_and_exports_it(
    database: Database,
    playbooks: Path,
    slack: tuple[str, SlackState],
    earful: Earful,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The form starts at the current labels; a changed intent is stored as a correction, shown
    on the card, the new starting value of the form, and exported as JSON Lines."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_form(app, url, state, interaction_id, ts, "correct")
    initial = {
        b["block_id"]: b["element"]["initial_option"]["value"]
        for b in view["blocks"]
        if "initial_option" in b.get("element", {})
    }
    assert initial == {"sentiment": "negative", "intent": "complaint", "priority": "P2"}
    unchanged = {field: {"choice": _chosen(value)} for field, value in initial.items()}
    assert _submit(app, view, unchanged)[1] == {
        "response_action": "errors",
        "errors": {"note": "Nothing changed: set the label that is wrong to the right one."},
    }

    values = unchanged | {
        "intent": {"choice": _chosen("question")},
        "note": {"note": "asks how to reset"},
    }
    assert _submit(app, view, values) == (200, None)
    with database.transaction() as session:
        rows = session.scalars(select(Correction)).all()
    assert [
        (r.interaction_id, r.field, r.old_value, r.new_value, r.agent, r.note) for r in rows
    ] == [(interaction_id, "intent", "complaint", "question", "slack:U0AGENT", "asks how to reset")]
    assert rows[0].at == T0 + timedelta(minutes=5)
    (details,) = _audit_details(database, "card.correct")
    assert details["changes"] == {"intent": ["complaint", "question"]}
    blocks = _card_update(database, url, state)
    assert "Corrected by <@U0AGENT>: intent complaint → question" in blocks
    again = _open_form(app, url, state, interaction_id, ts, "correct")
    (intent,) = [b for b in again["blocks"] if b.get("block_id") == "intent"]
    assert intent["element"]["initial_option"]["value"] == "question"

    out = tmp_path / "corrections.jsonl"
    done = earful("corrections", "export", "--out", str(out), "--database", database.url, env=env)
    assert done.returncode == 0, done.stderr
    assert "1 correction(s) exported" in done.stderr
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line == {
        "interaction_id": interaction_id,
        "text": "my router is broken again",
        "field": "intent",
        "old": "complaint",
        "new": "question",
        "at": (T0 + timedelta(minutes=5)).isoformat(),
    }
    nowhere = str(tmp_path / "missing" / "corrections.jsonl")
    refused = earful("corrections", "export", "--out", nowhere, "--database", database.url, env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == f"error: {nowhere}: No such file or directory"


@pytest.mark.parametrize("action", ["dismiss", "escalate", "snooze", "correct"])
def test_a_user_outside_the_agent_group_cannot_use_the_forms(
    database: Database, playbooks: Path, slack: tuple[str, SlackState], action: str
) -> None:
    """An outsider's click opens no form and gets a private note; an outsider's submission of
    an agent's form is refused in the form; nothing changes."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    assert _click(app, url, action=action, value=interaction_id, ts=ts, user=OUTSIDER) == 200
    assert [c for c in state.calls if c.method == "views.open"] == []
    (note,) = [c.body for c in state.calls if c.method == "response_url"]
    assert (note["response_type"], note["text"]) == ("ephemeral", NOT_AN_AGENT)

    view = _open_form(app, url, state, interaction_id, ts, action)
    values = {
        "dismiss": {"choice": {"choice": _chosen("spam")}},
        "escalate": {"step": {"choice": _chosen("1")}},
        "snooze": {"choice": {"choice": _chosen("2h")}},
        "correct": {"intent": {"choice": _chosen("spam")}},
    }[action]
    status, answer = _submit(app, view, values, user=OUTSIDER)
    assert status == 200
    assert answer is not None
    assert answer["response_action"] == "errors"
    assert list(answer["errors"].values()) == [NOT_AN_AGENT]
    assert _conversation(database).state == "new"
    timer = _timer(database)
    assert (timer.step, timer.generation, timer.due_at) == (0, 1, T0 + timedelta(minutes=30))
    assert _audit(database) == []
    assert _effects(database, effects.ESCALATION) == []
    with database.transaction() as session:
        assert session.scalars(select(Correction)).all() == []


def test_the_reply_form_counts_characters_as_the_agent_types(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Each keystroke updates the line under the field ("120 / 280 characters on x"), with a
    warning past the limit; the form is still sent with "Send publicly"."""
    url, state = slack
    interaction_id, ts = _card(database, playbooks, url, state)
    app = _app(database, url)
    view = _open_reply(app, url, state, interaction_id, ts, "reply")
    reply = view["blocks"][1]  # type: ignore[index]
    assert reply["dispatch_action"] is True
    assert reply["element"]["dispatch_action_config"] == {
        "trigger_actions_on": ["on_character_entered"]
    }
    assert view["blocks"][2]["elements"][0]["text"] == "0 / 280 characters on x"  # type: ignore[index]

    def typed(text: str) -> dict[str, Any]:
        body, headers = signed_view_action(
            view, block="reply", action="text", value=text, user=AGENT, secret=SECRET
        )
        assert _dispatch(app, body, headers)[0] == 200
        update = [c for c in state.calls if c.method == "views.update"][-1].body
        updated = json.loads(update["view"]) if isinstance(update["view"], str) else update["view"]
        assert (update["view_id"], update["hash"]) == ("V0REPLY", "1767225600.abcdef")
        assert updated["callback_id"] == "earful.reply_modal"
        assert [b.get("block_id") for b in updated["blocks"]][1:] == ["reply", "counter"]
        return updated["blocks"][2]["elements"][0]["text"]

    assert typed("y" * 120) == "120 / 280 characters on x"
    assert typed("y" * 300) == ":warning: *300 / 280 characters on x*: 20 too many"
    updates = len([c for c in state.calls if c.method == "views.update"])
    body, headers = signed_view_action(
        view, block="reply", action="text", value="y", user=OUTSIDER, secret=SECRET
    )
    assert _dispatch(app, body, headers)[0] == 200
    assert len([c for c in state.calls if c.method == "views.update"]) == updates

    text = "Hi Dana, sorry about this. Could you DM us your account email?"
    assert _submit(app, view, {"reply": {"text": text}}) == (200, None)
    with database.transaction() as session:
        sent = session.scalars(
            select(InteractionRow.text).where(InteractionRow.direction == "outbound")
        ).all()
    assert sent == [text]


def test_card_buttons_fit_block_kit() -> None:
    """Slack allows 25 elements in an actions block (5 until 2021); the card's buttons pass
    slack_sdk's own Block Kit validation."""
    card = Interaction(
        id=7,
        mention=Mention(
            platform=Platform.X,
            external_id="1",
            text="hi",
            author=Author(handle="dana_cole"),
            created_at=T0,
        ),
        conversation_id=1,
        contact=ContactSnapshot(contact_id=None),
    )
    _, blocks = card_blocks(card)
    actions = ActionsBlock(**{k: v for k, v in blocks[-1].items() if k != "type"})
    actions.validate_json()
    assert [e["action_id"] for e in blocks[-1]["elements"]] == [
        "earful.claim",
        "earful.reply",
        "earful.escalate",
        "earful.snooze",
        "earful.dismiss",
        "earful.resolve",
        "earful.correct",
    ]


def _rows(
    database: Database, playbooks: Path, url: str, state: SlackState
) -> tuple[list[int], str]:
    """Thirty complaints due at once: their first message shows 25 of them as rows; returns
    those cards' interaction ids and the message's ts."""
    pipeline = _pipeline(database, playbooks)
    pipeline.ingest(
        [
            Mention(
                platform=Platform.X,
                external_id=f"18800000000000{n:05d}",
                text=f"my router number {n} is broken again",
                author=Author(handle=f"customer{n}"),
                created_at=T0,
            )
            for n in range(30)
        ]
    )
    pipeline.process_pending()
    deliver_cards(database, url)
    first = state.posts()[0]
    rows = [b for b in first.body["blocks"] if b["type"] == "section" and "accessory" in b]
    assert len(rows) == 25
    (_, ts) = next(iter(state.messages))  # the first message posted
    return [int(str(b["block_id"]).rsplit(".", 1)[1]) for b in rows], ts


def test_a_rows_menu_claims_and_only_that_row_changes(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Claim picked in a row's menu assigns its conversation like the button does; the update
    shows the status in that row (still two blocks) and leaves the other rows as they were."""
    url, state = slack
    ids, ts = _rows(database, playbooks, url, state)
    before = state.posts()[0].body["blocks"]
    app = _app(database, url)
    assert _click(app, url, action="claim", value=ids[2], ts=ts, menu=True) == 200
    with database.transaction() as session:
        (claimed,) = session.scalars(
            select(Conversation).where(Conversation.assignee == AGENT)
        ).all()
        row = session.get(InteractionRow, ids[2])
    assert row is not None
    assert claimed.id == row.conversation_id
    assert _audit(database) == ["card.claim"]
    deliver_cards(database, url)
    (update,) = [c for c in state.calls if c.method == "chat.update"]
    assert update.body["ts"] == ts
    after = update.body["blocks"]
    assert len(after) == len(before) == 50
    changed = [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
    assert changed == [5]  # the third row's second block: its labels and status
    assert "Claimed by <@U0AGENT>" in json.dumps(after[5])
    assert after[4]["accessory"]["action_id"] == "earful.act"


@pytest.mark.parametrize(
    ("action", "callback_id"),
    [
        ("reply", "earful.reply_modal"),
        ("dismiss", "earful.dismiss_modal"),
        ("escalate", "earful.escalate_modal"),
        ("snooze", "earful.snooze_modal"),
        ("correct", "earful.correct_modal"),
    ],
)
def test_a_rows_menu_opens_the_same_forms_as_the_buttons(
    database: Database,
    playbooks: Path,
    slack: tuple[str, SlackState],
    action: str,
    callback_id: str,
) -> None:
    """Each form behind a card button opens from the row's menu, for that row's card."""
    url, state = slack
    ids, ts = _rows(database, playbooks, url, state)
    app = _app(database, url)
    assert _click(app, url, action=action, value=ids[7], ts=ts, menu=True) == 200
    (opened,) = [c for c in state.calls if c.method == "views.open"]
    view = opened.body["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == callback_id
    assert json.loads(view["private_metadata"])["interaction_id"] == ids[7]


def test_a_rows_menu_is_refused_to_a_user_outside_the_agent_group(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    url, state = slack
    ids, ts = _rows(database, playbooks, url, state)
    app = _app(database, url)
    assert _click(app, url, action="claim", value=ids[0], ts=ts, user=OUTSIDER, menu=True) == 200
    assert _conversation_states(database) == {"new"}
    assert not [c for c in state.calls if c.method == "views.open"]
