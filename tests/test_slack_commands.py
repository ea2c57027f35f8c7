"""`/earful` and the App Home through slack-bolt's own request path: signed requests, real AsyncApp.

Commands are form-encoded and events JSON, both signed with the test signing secret
(`slack_sdk.signature`) and dispatched through `AsyncApp.async_dispatch`; answers reach the
stand-in's response URL, card updates and App Home views its Web API.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from earful_run import earful_run, http_status, wait_for
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_standin import (
    TOKEN,
    SlackState,
    deliver_cards,
    signed_command,
    signed_event,
    slack_standin,
)
from sqlalchemy import select
from support import Clock, TextLabels

from bot.models import Author, Direction, Mention, Platform
from bot.pipeline import Pipeline
from bot.service import SLACK_PATH
from bot.sla import SlaTimers
from bot.workbench import Workbench
from handlers.slack_actions import build_app
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage.contacts import CrmRecord, import_crm_records
from storage.database import Database
from storage.schema import AuditEntry, Conversation, InteractionRow

FIXTURES = Path(__file__).parent / "fixtures"
Earful = Callable[..., subprocess.CompletedProcess[str]]
SECRET = "test-signing-secret-8f3a"  # noqa: S105 - a test secret
AGENT, LEAD, OUTSIDER = "U0AGENT", "U0LEAD", "U0OUTSIDER"
T0 = datetime(2026, 11, 4, 17, 40, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)


@pytest.fixture
def slack() -> Iterator[tuple[str, SlackState]]:
    channels = {"#care": "C0CARE", "#care-leads": "C0LEADS", "#incidents": "C0INC"}
    with slack_standin(channels) as running:
        yield running


def _mention(external_id: str, text: str, handle: str, minutes_ago: int, **extra: Any) -> Mention:
    return Mention(
        platform=Platform.X,
        external_id=external_id,
        text=text,
        author=Author(handle=handle, display_name=handle.title()),
        created_at=T0 - timedelta(minutes=minutes_ago),
        **extra,
    )


def _cards(database: Database, playbooks: Path, url: str) -> dict[str, int]:
    """Three conversations and an outage incident, judged and posted; handle → interaction id.

    Complaints are P2 with a 30-minute SLA: @old_pete's was due at T0-10 min, @dana_cole's is
    due at T0+10 min; @fan_amy's praise is watched (no SLA); of three outage reports the first
    two get P2 cards of their own and the third, the spike, opens an incident.
    """
    pipeline = Pipeline(
        database=database,
        classifier=TextLabels(),
        decider=PlaybookDecider(load_playbooks(playbooks), triage_channel="#care"),
        clock=Clock(T0),
    )
    pipeline.ingest(
        [
            _mention("1001", "my router is broken again <!channel> & more", "dana_cole", 20),
            _mention("1002", "still waiting for my refund after two weeks", "old_pete", 40),
            _mention("1003", "thanks for the quick fix", "fan_amy", 30),
            *(
                _mention(f"20{n}", "outage here, nothing loads", f"user{n}", 5 - n)
                for n in range(3)
            ),
        ]
    )
    pipeline.process_pending()
    deliver_cards(database, url)
    with database.transaction() as session:
        rows = session.execute(
            select(InteractionRow.author, InteractionRow.id).where(
                InteractionRow.direction == Direction.INBOUND.value
            )
        ).tuples()
        return {author["handle"]: interaction_id for author, interaction_id in rows}


def _app(database: Database, url: str, clock: Clock | None = None) -> AsyncApp:
    return build_app(
        token=TOKEN,
        signing_secret=SECRET,
        workbench=Workbench(database=database, clock=clock or Clock(NOW)),
        agents={AGENT, LEAD},
        api_url=url,
    )


def _dispatch(app: AsyncApp, body: str, headers: dict[str, str]) -> tuple[int, str]:
    """Through bolt's request path; waits for the listener that runs after the ack."""

    request_headers: dict[str, str | Sequence[str]] = dict(headers)

    async def send() -> tuple[int, str]:
        response = await app.async_dispatch(AsyncBoltRequest(body=body, headers=request_headers))
        await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=10)
        return response.status, response.body

    return asyncio.run(send())


def _command(
    app: AsyncApp, url: str, text: str, *, user: str = AGENT, secret: str | None = SECRET
) -> tuple[int, str]:
    response_url = url.replace("/api/", "/respond/T0/cmd/abc")
    return _dispatch(
        app, *signed_command(text, user=user, response_url=response_url, secret=secret)
    )


def _answers(state: SlackState) -> list[dict[str, Any]]:
    return [c.body for c in state.calls if c.method == "response_url"]


def _assign(app: AsyncApp, url: str, target: str, user: str = AGENT) -> None:
    assert _command(app, url, f"assign {target} <@{user}|{user.lower()}>", user=LEAD) == (200, "")


def test_queue_lists_my_open_conversations_by_sla_then_priority(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """`/earful queue` answers privately with the caller's open conversations, overdue first,
    each with priority, author, escaped excerpt, SLA and a link to the card."""
    url, state = slack
    ids = _cards(database, playbooks, url)
    app = _app(database, url)
    for handle in ("fan_amy", "dana_cole", "old_pete"):
        _assign(app, url, str(ids[handle]))
    _assign(app, url, str(ids["user0"]), user=LEAD)
    state.calls.clear()

    assert _command(app, url, "queue") == (200, "")
    (answer,) = _answers(state)
    assert answer["response_type"] == "ephemeral"
    head, pete, dana, amy = answer["text"].split("\n")
    assert head == "*Your queue: 3 open conversations*"
    assert pete.startswith("• *P2* @old_pete: “still waiting for my refund after two weeks” · ")
    assert ":alarm_clock: *overdue 15 min*" in pete
    pete_ts = _message_of(state, "old_pete")
    assert (
        f"<https://earful-test.slack.com/archives/C0CARE/p{pete_ts.replace('.', '')}|card>" in pete
    )
    assert "“my router is broken again &lt;!channel&gt; &amp; more”" in dana
    assert "due <!date^" in dana
    assert "overdue" not in dana
    assert amy.startswith("• *P4* @fan_amy: “thanks for the quick fix” · no SLA · <https://")


def test_an_empty_queue_says_so(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """An agent with nothing assigned is told their queue is empty."""
    url, state = slack
    _cards(database, playbooks, url)
    assert _command(_app(database, url), url, "queue") == (200, "")
    assert [a["text"] for a in _answers(state)] == [
        "Your queue is empty: no open conversations are assigned to you."
    ]


def _message_of(state: SlackState, handle: str) -> str:
    """The ts of the top-level message holding the card of ``handle``'s mention."""
    return next(
        ts
        for (_, ts), message in state.messages.items()
        if "thread_ts" not in message and f"@{handle}" in json.dumps(message["blocks"])
    )


def _link(ts: str) -> str:
    return f"<https://earful-test.slack.com/archives/C0CARE/p{ts.replace('.', '')}>"


def test_assign_by_number_or_link_changes_the_assignee_and_updates_the_card(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """`/earful assign #number @user` assigns the conversation, audits who did it and only that
    card of its message shows the new assignee; a link names a card when its message holds
    one, and is refused, with the cards' numbers, when the message holds several."""
    url, state = slack
    ids = _cards(database, playbooks, url)
    app = _app(database, url)
    shared = _message_of(state, "dana_cole")
    assert _message_of(state, "old_pete") == shared  # the cards went out together
    _assign(app, url, _link(shared))
    (refused,) = _answers(state)
    assert refused["text"].startswith("Nothing changed: that message: it holds ")
    assert f"#{ids['dana_cole']}" in refused["text"]

    state.calls.clear()
    _assign(app, url, f"#{ids['dana_cole']}")
    assert [a["text"] for a in _answers(state)] == ["Done. Assigned to <@U0AGENT> by <@U0LEAD>."]
    with database.transaction() as session:
        conversation = session.scalars(
            select(Conversation)
            .join(InteractionRow, InteractionRow.conversation_id == Conversation.id)
            .where(InteractionRow.id == ids["dana_cole"])
        ).one()
        audit = session.scalars(select(AuditEntry).where(AuditEntry.origin == "slack")).one()
    assert (conversation.state, conversation.assignee) == ("assigned", AGENT)
    assert (audit.actor, audit.action) == ("slack:U0LEAD", "card.assign")
    before = state.messages["C0CARE", shared]["blocks"]
    deliver_cards(database, url)
    (update,) = [c for c in state.calls if c.method == "chat.update"]
    assert (update.body["channel"], update.body["ts"]) == ("C0CARE", shared)
    status = [b for b in update.body["blocks"] if "Assigned to" in json.dumps(b)]
    assert [b["block_id"] for b in status] == [f"earful.card.{ids['dana_cole']}.status"]
    others = [b for b in update.body["blocks"] if b not in status]
    assert others == before  # every other block, the other cards', as it was

    # A card that went out on its own is named by its link.
    pipeline = Pipeline(
        database=database,
        classifier=TextLabels(),
        decider=PlaybookDecider(load_playbooks(playbooks), triage_channel="#care"),
        clock=Clock(NOW),
    )
    pipeline.ingest([_mention("1009", "my modem is broken too", "late_lou", 0)])
    pipeline.process_pending()
    deliver_cards(database, url)
    state.calls.clear()
    _assign(app, url, _link(_message_of(state, "late_lou")))
    assert [a["text"] for a in _answers(state)] == ["Done. Assigned to <@U0AGENT> by <@U0LEAD>."]


@pytest.mark.parametrize(
    ("text", "note"),
    [
        pytest.param(
            "assign 999999 <@U0AGENT>", "Nothing changed: card 999999: Earful has no card"
        ),
        pytest.param(
            "assign 1 <@U0OUTSIDER>", "Nothing changed: <@U0OUTSIDER>: is not in the agent"
        ),
        pytest.param("assign 1 @dana", "Nothing changed: assign: Slack sent the name without"),
        pytest.param("assign 1", "Nothing changed: assign: usage: `/earful assign"),
        pytest.param(
            "find @nobody_here", "Earful knows no contact with the handle or email @nobody"
        ),
    ],
)
def test_bad_arguments_get_a_clear_private_answer(
    database: Database, playbooks: Path, slack: tuple[str, SlackState], text: str, note: str
) -> None:
    """Unknown cards, non-agent assignees, unescaped names and unknown contacts are explained."""
    url, state = slack
    _cards(database, playbooks, url)
    assert _command(_app(database, url), url, text) == (200, "")
    (answer,) = _answers(state)
    assert answer["text"].startswith(note)
    assert answer["response_type"] == "ephemeral"


def test_find_shows_the_contact_history_card(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """`/earful find @handle` (or the email) shows identities, value, plan, counts and the last
    five messages, to the caller only."""
    url, state = slack
    with database.transaction() as session:
        import_crm_records(
            session,
            [
                CrmRecord(
                    line=2,
                    name="Dana Cole",
                    email="dana@example.com",
                    x_handle="dana_cole",
                    telegram_handle=None,
                    company="Cole Bakery",
                    plan="premium",
                    lifetime_value=Decimal("2400.00"),
                    last_order_date=T0.date() - timedelta(days=10),
                    order_count=14,
                )
            ],
            at=T0,
        )
    _cards(database, playbooks, url)
    app = _app(database, url)
    for query in ("@Dana_Cole", "<mailto:dana@example.com|dana@example.com>"):
        state.calls.clear()
        assert _command(app, url, f"find {query}") == (200, "")
        (answer,) = _answers(state)
        assert answer["response_type"] == "ephemeral"
        assert answer["text"].split("\n") == [
            "*Dana Cole* (CRM) · Cole Bakery",
            "Identities: email dana@example.com · x @dana_cole",
            "customer value *vip 73* · plan premium · lifetime value 2,400.00",
            "Messages: 1 inbound · 0 outbound · 1 open conversation",
            "Last 1:",
            "• ← in 2026-11-04 x: “my router is broken again &lt;!channel&gt; &amp; more”",
        ]


def test_outsiders_are_refused_and_help_lists_the_commands(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """A user outside the agent group is refused in the ack; help and unknown subcommands
    answer with the usage, nothing is changed."""
    url, state = slack
    ids = _cards(database, playbooks, url)
    app = _app(database, url)
    status, body = _command(app, url, f"assign {ids['dana_cole']} <@U0AGENT>", user=OUTSIDER)
    assert status == 200
    assert json.loads(body) == {
        "text": "Only members of the care team's agent group can use `/earful queue`, `find` "
        "and `assign`.",
        "response_type": "ephemeral",
    }
    for text in ("", "help"):
        assert json.loads(_command(app, url, text)[1])["text"].startswith("*Earful commands*")
    unknown = json.loads(_command(app, url, "frobnicate now")[1])["text"]
    assert unknown.startswith("Unknown subcommand `frobnicate`.\n\n*Earful commands*")
    assert _answers(state) == []
    with database.transaction() as session:
        assert session.scalars(select(Conversation.assignee)).all() == [None] * 6


def test_forged_command_is_rejected(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """A command signed with another secret gets 401 before any listener runs."""
    url, state = slack
    ids = _cards(database, playbooks, url)
    app = _app(database, url)
    text = f"assign {ids['dana_cole']} <@U0AGENT>"
    assert _command(app, url, text, user=LEAD, secret="forged-secret")[0] == 401
    assert _answers(state) == []
    with database.transaction() as session:
        assert set(session.scalars(select(Conversation.assignee))) == {None}


def test_app_home_shows_my_queue_team_counts_breaches_and_incidents(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """Opening the App Home publishes the agent's queue, the team's open conversations by
    priority, today's SLA breaches and the open incident."""
    url, state = slack
    ids = _cards(database, playbooks, url)
    app = _app(database, url)
    _assign(app, url, str(ids["dana_cole"]))
    assert len(SlaTimers(database=database, clock=Clock(NOW)).fire_due()) == 1  # @old_pete's
    state.calls.clear()

    event = {"type": "app_home_opened", "user": AGENT, "channel": "D0HOME", "tab": "home"}
    assert _dispatch(app, *signed_event(event, secret=SECRET))[0] == 200
    (publish,) = [c for c in state.calls if c.method == "views.publish"]
    assert publish.body["user_id"] == AGENT
    view = publish.body["view"]
    view = json.loads(view) if isinstance(view, str) else view
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    mine, team, breaches, incidents = texts
    assert mine.startswith("*My queue (1)*\n• *P2* @dana_cole: ")
    assert (
        team
        == "*Team queue: 4 awaiting a response*\n*P1* 0 · *P2* 4 · *P3* 0 · *P4* 0 · *untriaged* 0"
    )
    assert breaches == "*SLA breaches today (UTC):* 1"
    assert incidents.startswith("*Open incidents (1)*\n• *P1* #1 care/outage spike: 1 report since")
    assert "<https://earful-test.slack.com/archives/C0INC/" in incidents


def test_app_home_of_an_outsider_shows_no_queues(
    database: Database, playbooks: Path, slack: tuple[str, SlackState]
) -> None:
    """A user outside the agent group sees a note instead of the queues."""
    url, state = slack
    _cards(database, playbooks, url)
    event = {"type": "app_home_opened", "user": OUTSIDER, "tab": "home"}
    assert _dispatch(_app(database, url), *signed_event(event, secret=SECRET))[0] == 200
    (publish,) = [c for c in state.calls if c.method == "views.publish"]
    assert "agent group only" in json.dumps(publish.body["view"])


def test_earful_run_takes_commands_on_the_slack_events_path(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """`earful run` hands a signed `/earful assign` on /slack/events to bolt (no extra route):
    the answer reaches the response URL and the card update reaches Slack."""
    database = tmp_path / "run.db"
    with slack_standin({"#earful-triage": "C0TRIAGE"}) as (api, state):
        env = {
            **env,
            "EARFUL_DATABASE_URL": f"sqlite:///{database}",
            "EARFUL_CLASSIFIER": "none",
            "EARFUL_SLACK_BOT_TOKEN": TOKEN,
            "EARFUL_SLACK_SIGNING_SECRET": SECRET,
            "EARFUL_SLACK_AGENTS": f"{AGENT},{LEAD}",
            "EARFUL_SLACK_API_URL": api,
        }
        replayed = earful("replay", str(FIXTURES / "replay" / "thread.jsonl"), env=env)
        assert replayed.returncode == 0, replayed.stderr
        interaction_id = int(state.posts()[0].body["blocks"][-1]["elements"][0]["value"])
        with earful_run(env) as run:
            body, headers = signed_command(
                f"assign {interaction_id} <@{AGENT}>",
                user=LEAD,
                response_url=api.replace("/api/", "/respond/T0/cmd/abc"),
                secret=SECRET,
            )
            assert http_status(f"{run.base}{SLACK_PATH}", body, headers) == 200
            wait_for(lambda: bool(_answers(state)), "the answer on the response URL")
            assert [a["text"] for a in _answers(state)] == [
                "Done. Assigned to <@U0AGENT> by <@U0LEAD>."
            ]
            wait_for(
                lambda: any(
                    c.method == "chat.update" and "Assigned to <@U0AGENT>" in json.dumps(c.body)
                    for c in state.calls
                ),
                "the card update",
            )
        assert run.returncode == 0, run.err
        assert TOKEN not in run.out + run.err
        assert SECRET not in run.out + run.err
