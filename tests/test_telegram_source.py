"""Telegram: updates in as mentions through python-telegram-bot, replies out, against a stand-in."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from poll_child import kill_after_fetch, poll_in_child
from sqlalchemy import select
from support import Clock
from telegram_standin import TOKEN, Failure, TelegramState, telegram_standin

from bot.errors import ConfigError, DeliveryRejected, RetryLater, SourceError
from bot.models import Platform
from bot.polling import Intake, Poller
from bot.sources import TelegramConfig
from handlers.telegram_updates import (
    SECRET_HEADER,
    TelegramReplies,
    TelegramSource,
    telegram_webhook_handler,
)
from storage.database import Database
from storage.outbox import Effect
from storage.schema import InteractionRow, SourceReject

FIXTURES = Path(__file__).parent / "fixtures"
START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
GROUP = -1001234567890
SECRET = "webhook-secret-0123"  # noqa: S105 - a test secret
KEPT = ["-1001234567890:311", "-1001234567890:315", "-1001234567890:316", "90004:17", "-4012345:44"]


def _updates() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "telegram" / "updates.json").read_text())


def _dm(update_id: int, message_id: int, text: str) -> dict[str, Any]:
    user = {"id": 90010, "is_bot": False, "first_name": "Kai", "username": "kai_m"}
    chat = {"id": 90010, "first_name": "Kai", "username": "kai_m", "type": "private"}
    message = {"message_id": message_id, "from": user, "chat": chat, "date": 1795342000}
    return {"update_id": update_id, "message": {**message, "text": text}}


def _source(url: str, *, token: str = TOKEN, clock: Clock | None = None) -> TelegramSource:
    config = TelegramConfig(keywords=("acme",), poll_timeout=0)
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return TelegramSource(config, token=token, api_url=url, request_timeout=2.0, **kwargs)


def crash_source(url: str) -> TelegramSource:
    """The source `poll_child` builds in a child process, aimed at the test's stand-in."""
    return _source(url)


def _reply(in_reply_to: str, text: str = "Sorry about that, we're on it.") -> Effect:
    payload = {
        "interaction_id": 1,
        "platform": "telegram",
        "in_reply_to": in_reply_to,
        "text": text,
    }
    return Effect(
        id=1,
        idempotency_key="reply:1",
        kind="reply",
        ordering_key="conversation:1",
        payload=payload,
        attempts=0,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """PTB 22 warns when a time period is read as an int; opt in to timedeltas as it advises."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def standin() -> Iterator[tuple[str, TelegramState]]:
    """The Bot API stand-in, loaded with the fixture updates."""
    with telegram_standin() as (url, state):
        state.add(*_updates())
        yield url, state


def _stored(database: Database) -> list[str]:
    with database.transaction() as session:
        rows = session.scalars(select(InteractionRow.external_id).order_by(InteractionRow.id))
        return list(rows)


def test_keeps_messages_meant_for_the_bot(standin: tuple[str, TelegramState]) -> None:
    """Keeps group mentions, replies to the bot, keywords and direct messages, skips the rest."""
    url, state = standin
    fetched = _source(url).fetch(None, read_budget=None)

    by_id = {m.external_id: m for m in fetched.mentions}
    assert list(by_id) == KEPT
    mention = by_id["-1001234567890:311"]
    assert mention.platform == Platform.TELEGRAM
    assert mention.text == "@acme_care_bot my order 4471 never arrived"
    assert (mention.author.handle, mention.author.display_name) == ("dana_r", "Dana Ruiz")
    assert mention.author.platform_user_id == "90001"
    assert mention.author.followers is None
    assert mention.created_at == datetime.fromtimestamp(1795341600, UTC)
    assert mention.url == "https://t.me/acme_users/311"
    assert mention.conversation_id == "-1001234567890:311"
    assert mention.raw["update_id"] == 500101
    reply = by_id["-1001234567890:315"]
    assert (reply.conversation_id, reply.in_reply_to) == (
        "-1001234567890:300",
        "-1001234567890:312",
    )
    direct = by_id["90004:17"]
    assert (direct.conversation_id, direct.url) == ("90004", None)
    caption = by_id["-4012345:44"]
    assert caption.text == "same here @acme_care_bot, see photo"
    assert (caption.conversation_id, caption.in_reply_to) == (None, "-4012345:40")
    assert [r.reason for r in fetched.rejected] == ["update 500107: message has no chat id"]
    assert fetched.checkpoint == "500109"
    (call,) = state.called("getUpdates")
    assert call.params["allowed_updates"] == ["message", "edited_message"]
    assert "offset" not in call.params


def test_checkpoint_confirms_updates_only_once_stored(
    standin: tuple[str, TelegramState], database: Database
) -> None:
    """Re-reads unstored updates, then confirms stored ones with the next offset: no gaps, no repeats."""
    url, state = standin
    source = _source(url)
    source.fetch(None, read_budget=None)  # read, never stored: Telegram keeps the updates
    poller = Poller(source=source, intake=Intake(database=database, clock=Clock(START)))

    poller.poll()
    state.add(_dm(500110, 18, "and the refund?"))
    poller.poll()
    poller.poll()

    assert _stored(database) == [*KEPT, "90010:18"]
    offsets = [c.params.get("offset") for c in state.called("getUpdates")]
    assert offsets == [None, None, 500110, 500111]
    with database.transaction() as session:
        assert session.scalars(select(SourceReject.reason)).all() == [
            "update 500107: message has no chat id"
        ]


def test_unparseable_update_is_rejected_and_the_rest_kept(
    standin: tuple[str, TelegramState],
) -> None:
    """Rejects an update PTB cannot parse, moves past it, and keeps the next one."""
    url, state = standin
    state.updates.clear()
    broken = _dm(600001, 20, "@acme_care_bot hello")
    broken["message"]["entities"] = "not a list"
    state.add(broken, _dm(600002, 21, "my router is down"), {"update_id": 600003})

    fetched = _source(url).fetch(None, read_budget=None)

    assert [m.external_id for m in fetched.mentions] == ["90010:21"]
    reasons = [r.reason for r in fetched.rejected]
    assert reasons[0].startswith("update 600001: unparseable (")
    assert reasons[1:] == ["update 600003 carries no message"]
    assert fetched.checkpoint == "600003"


def test_rate_limit_defers_the_next_poll(
    standin: tuple[str, TelegramState], database: Database
) -> None:
    """Waits the retry_after Telegram gives on a 429 before polling again, storing nothing."""
    url, state = standin
    clock = Clock(START)
    state.fail("getUpdates", Failure(429, "Too Many Requests: retry after 7", retry_after=7))
    poller = Poller(source=_source(url, clock=clock), intake=Intake(database=database, clock=clock))

    assert poller.poll() == START + timedelta(seconds=7)
    assert _stored(database) == []
    assert poller.failures == 0


def test_server_errors_back_off_then_recover(
    standin: tuple[str, TelegramState], database: Database
) -> None:
    """Backs off after a 502 and stores everything on the next poll."""
    url, state = standin
    clock = Clock(START)
    state.fail("getUpdates", Failure(502, "Bad Gateway"))
    poller = Poller(source=_source(url), intake=Intake(database=database, clock=clock))

    assert poller.poll() > START
    assert (poller.failures, _stored(database)) == (1, [])
    poller.poll()
    assert (poller.failures, _stored(database)) == (0, KEPT)


def test_slow_answer_is_a_source_error(standin: tuple[str, TelegramState]) -> None:
    """Reports a timeout as a source error when Telegram answers too slowly."""
    url, state = standin
    state.fail("getUpdates", Failure(200, delay=0.8))
    config = TelegramConfig(poll_timeout=0)
    source = TelegramSource(config, token=TOKEN, api_url=url, request_timeout=0.3)
    with pytest.raises(SourceError, match="TimedOut"):
        source.fetch(None, read_budget=None)


def test_unreadable_answer_is_a_source_error_and_not_logged(
    standin: tuple[str, TelegramState], caplog: pytest.LogCaptureFixture
) -> None:
    """Treats a body that is not JSON as a source error, without logging the customer text in it."""
    url, state = standin
    state.fail(
        "getUpdates",
        Failure(200, body=b'{"ok":true,"result":[{"message":{"text":"my card was charged twice'),
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError, match="cannot read Telegram"):
        _source(url).fetch(None, read_budget=None)
    assert "charged twice" not in caplog.text


def test_webhook_conflict_is_reported(standin: tuple[str, TelegramState]) -> None:
    """Says a webhook is set when polling a bot whose updates go to a webhook."""
    url, _ = standin
    source = _source(url)
    asyncio.run(source.set_webhook(url="https://care.example.com/telegram", secret_token=SECRET))
    with pytest.raises(SourceError, match="webhook is set"):
        source.fetch(None, read_budget=None)


def test_reply_goes_under_the_customer_message(standin: tuple[str, TelegramState]) -> None:
    """Sends the agent's reply to the chat as a reply to the customer's message."""
    url, state = standin
    TelegramReplies(token=TOKEN, api_url=url).deliver(_reply(f"{GROUP}:311", "We're on it, Dana."))

    (call,) = state.called("sendMessage")
    assert call.params["chat_id"] == GROUP
    assert call.params["text"] == "We're on it, Dana."
    assert call.params["reply_parameters"]["message_id"] == 311


def test_reply_waits_for_the_chat_limit_without_calling_telegram(
    standin: tuple[str, TelegramState],
) -> None:
    """Puts off a second reply in the same chat within a second without calling Telegram."""
    url, state = standin
    now = [100.0]
    replies = TelegramReplies(token=TOKEN, api_url=url, clock=lambda: now[0])
    replies.deliver(_reply("90004:17"))
    now[0] += 0.25
    with pytest.raises(RetryLater) as caught:
        replies.deliver(_reply("90004:17"))
    assert caught.value.retry_after == pytest.approx(0.75)
    replies.deliver(_reply("90010:18"))  # another chat is not held up
    assert len(state.called("sendMessage")) == 2


def test_group_replies_are_held_to_twenty_a_minute(standin: tuple[str, TelegramState]) -> None:
    """Holds the 21st reply in a group within a minute until the first is a minute old."""
    url, state = standin
    now = [0.0]
    replies = TelegramReplies(token=TOKEN, api_url=url, clock=lambda: now[0])
    for _ in range(20):
        replies.deliver(_reply(f"{GROUP}:311"))
        now[0] += 1.5
    with pytest.raises(RetryLater) as caught:
        replies.deliver(_reply(f"{GROUP}:311"))
    assert caught.value.retry_after == pytest.approx(30.0)
    assert len(state.called("sendMessage")) == 20


@pytest.mark.parametrize(
    ("failure", "error", "retry_after"),
    [
        (Failure(429, "Too Many Requests: retry after 5", retry_after=5), RetryLater, 5.0),
        (Failure(502, "Bad Gateway"), RetryLater, None),
        (Failure(400, "Bad Request: message to be replied not found"), DeliveryRejected, None),
        (Failure(400, "Bad Request: chat not found"), DeliveryRejected, None),
        (
            Failure(403, "Forbidden: bot was kicked from the supergroup chat"),
            DeliveryRejected,
            None,
        ),
    ],
)
def test_reply_failures(
    standin: tuple[str, TelegramState],
    failure: Failure,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    """Retries rate limits and server errors later, and gives up on what Telegram refuses."""
    url, state = standin
    state.fail("sendMessage", failure)
    with pytest.raises(error) as caught:
        TelegramReplies(token=TOKEN, api_url=url).deliver(_reply(f"{GROUP}:311"))
    if retry_after is not None:
        assert getattr(caught.value, "retry_after", None) == retry_after
    if failure.status == 400:
        said = failure.description.removeprefix("Bad Request: ")
        assert said.lower() in str(caught.value).lower()


def test_a_reply_telegram_got_but_answered_too_late_is_not_sent_twice(
    standin: tuple[str, TelegramState],
) -> None:
    """Fails a send Telegram received but did not answer in time (it may be posted) instead of
    retrying it into a second copy; a reply that never reached Telegram is retried."""
    url, state = standin
    state.fail("sendMessage", Failure(200, delay=0.8))  # a slow answer, but the message is sent
    replies = TelegramReplies(token=TOKEN, api_url=url, request_timeout=0.3)
    with pytest.raises(DeliveryRejected, match="may or may not have been posted"):
        replies.deliver(_reply(f"{GROUP}:311"))
    assert len(state.called("sendMessage")) == 1

    closed = TelegramReplies(token=TOKEN, api_url="http://127.0.0.1:9/bot", request_timeout=0.3)
    with pytest.raises(RetryLater, match="Telegram unreachable"):
        closed.deliver(_reply(f"{GROUP}:312"))


def test_reply_to_something_not_telegram_is_rejected(standin: tuple[str, TelegramState]) -> None:
    """Refuses a reply whose target is not a Telegram message, without calling Telegram."""
    url, state = standin
    with pytest.raises(DeliveryRejected, match="not a Telegram message"):
        TelegramReplies(token=TOKEN, api_url=url).deliver(_reply("1730000000000000000"))
    assert state.called("sendMessage") == []


async def _post_update(
    source: TelegramSource, store: Any, headers: dict[str, str], update: Any
) -> int:
    app = web.Application()
    app.router.add_post(
        "/telegram", telegram_webhook_handler(source, secret_token=SECRET, store=store)
    )
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/telegram", json=update, headers=headers)
        return response.status


@pytest.mark.parametrize(
    ("headers", "status"),
    [({SECRET_HEADER: SECRET}, 200), ({}, 401), ({SECRET_HEADER: "guessed"}, 401)],
)
def test_webhook_checks_the_secret_and_stores_before_answering(
    standin: tuple[str, TelegramState], database: Database, headers: dict[str, str], status: int
) -> None:
    """Stores a webhook update before answering 200, and refuses posts without the right secret."""
    url, _ = standin
    source = _source(url)
    store = functools.partial(Intake(database=database).store, source.name)
    update = _updates()[0]

    assert asyncio.run(_post_update(source, store, headers, update)) == status
    assert _stored(database) == (["-1001234567890:311"] if status == 200 else [])


def test_webhook_records_a_malformed_update(
    standin: tuple[str, TelegramState], database: Database
) -> None:
    """Answers 200 to a malformed update and records it as rejected, so Telegram stops resending."""
    url, _ = standin
    source = _source(url)
    store = functools.partial(Intake(database=database).store, source.name)
    update = copy.deepcopy(_updates()[6])

    assert asyncio.run(_post_update(source, store, {SECRET_HEADER: SECRET}, update)) == 200
    with database.transaction() as session:
        assert session.scalars(select(SourceReject.reason)).all() == [
            "update 500107: message has no chat id"
        ]


def test_set_webhook_sends_the_secret(standin: tuple[str, TelegramState]) -> None:
    """Points Telegram's webhook at Earful with the secret token Telegram must send back."""
    url, state = standin
    asyncio.run(
        _source(url).set_webhook(url="https://care.example.com/telegram", secret_token=SECRET)
    )
    (call,) = state.called("setWebhook")
    assert call.params["url"] == "https://care.example.com/telegram"
    assert call.params["secret_token"] == SECRET


def test_check_and_describe(standin: tuple[str, TelegramState]) -> None:
    """Checks the token with getMe and describes what the bot watches by its username."""
    url, _ = standin
    source = _source(url)
    source.check()
    assert source.name == "telegram:7001"
    assert source.describe() == [
        "direct messages to @acme_care_bot, and group messages that mention @acme_care_bot, "
        "reply to it or contain: acme",
        "polled every 1 s (long poll of 0 s)",
    ]


def test_check_refuses_a_bad_token_without_echoing_it(standin: tuple[str, TelegramState]) -> None:
    """Fails the check with a one-line reason that does not contain the token."""
    url, _ = standin
    wrong = "7001:AAE-revoked-token-9999"
    with pytest.raises(ConfigError) as caught:
        _source(url, token=wrong).check()
    assert str(caught.value) == "Telegram refused the bot token"


@pytest.mark.parametrize("library_level", [None, logging.DEBUG])
def test_token_never_reaches_the_logs(
    standin: tuple[str, TelegramState], caplog: pytest.LogCaptureFixture, library_level: int | None
) -> None:
    """Logs neither the token nor customers' words from a fetch and a reply, even at DEBUG."""
    url, state = standin
    caplog.set_level(logging.DEBUG)
    source = _source(url)
    replies = TelegramReplies(token=TOKEN, api_url=url)
    if library_level is not None:  # someone turned the libraries' loggers up on purpose
        for name in ("telegram", "httpx", "httpcore"):
            caplog.set_level(library_level, logger=name)
    state.fail("getUpdates", Failure(502, "Bad Gateway"))
    with pytest.raises(SourceError):
        source.fetch(None, read_budget=None)
    source.fetch(None, read_budget=None)
    replies.deliver(_reply(f"{GROUP}:311"))

    assert caplog.records  # the libraries did log
    assert TOKEN not in caplog.text
    assert "never arrived" not in caplog.text
    if library_level is not None:
        assert "<token>" in caplog.text


@pytest.mark.slow
def test_crash_between_fetch_and_store_loses_and_repeats_nothing(
    standin: tuple[str, TelegramState], database: Database, database_url: str
) -> None:
    """After a SIGKILL between fetching and storing, a restart stores every update exactly once."""
    url, state = standin

    kill_after_fetch(database_url, "test_telegram_source:crash_source", url)
    assert _stored(database) == []
    poll_in_child(database_url, "test_telegram_source:crash_source", url)
    state.add(_dm(500110, 18, "and the refund?"))
    poll_in_child(database_url, "test_telegram_source:crash_source", url)

    assert _stored(database) == [*KEPT, "90010:18"]
    offsets = [c.params.get("offset") for c in state.called("getUpdates")]
    assert offsets == [None, None, 500110]
