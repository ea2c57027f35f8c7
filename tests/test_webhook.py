"""The signed webhook: a real aiohttp server on port 0, real requests, a real database."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.errors import ConfigError
from bot.polling import Intake
from bot.sources import Fetched, WebhookConfig
from handlers.webhook import PATH, WebhookReceiver, sign
from storage.database import Database
from storage.schema import InteractionRow

SECRET = "whsec-test-8f1c2a9d4e7b"  # noqa: S105 - a test secret
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
TEXT = "Acme charged me twice for the K2 kettle"
MENTION: dict[str, Any] = {
    "id": "ticket-1042",
    "text": TEXT,
    "author": {"handle": "@dana", "name": "Dana Whitfield"},
    "url": "https://help.example/tickets/1042",
}

Reply = tuple[int, dict[str, Any]]


def receiver(
    store: Callable[[Fetched], list[int]], *, max_body_bytes: int = 4096
) -> WebhookReceiver:
    """A receiver on a fixed clock with a small body limit."""
    return WebhookReceiver(
        WebhookConfig(max_body_bytes=max_body_bytes, tolerance_seconds=300),
        secret=SECRET,
        store=store,
        max_text_chars=500,
        clock=lambda: NOW,
    )


def intake_store(database: Database) -> Callable[[Fetched], list[int]]:
    """The store the service binds: the intake under the source name "webhook"."""
    return functools.partial(Intake(database=database, clock=lambda: NOW).store, "webhook")


@asynccontextmanager
async def serving(webhook: WebhookReceiver) -> AsyncIterator[str]:
    """Serve the webhook on a free port and yield its URL."""
    app = web.Application()
    app.add_routes(webhook.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}{PATH}"
    finally:
        await runner.cleanup()


def signed(body: bytes, *, timestamp: int = TS, secret: str = SECRET) -> dict[str, str]:
    """Headers of a request signed as the README tells senders to."""
    return {
        "Content-Type": "application/json",
        "X-Earful-Timestamp": str(timestamp),
        "X-Earful-Signature": sign(secret, timestamp, body),
    }


def post(webhook: WebhookReceiver, *requests: tuple[Any, dict[str, str]]) -> list[Reply]:
    """Send each (body, headers) in turn to a running webhook; return status and JSON."""

    async def run() -> list[Reply]:
        replies: list[Reply] = []
        async with serving(webhook) as url, aiohttp.ClientSession() as client:
            for body, headers in requests:
                async with client.post(url, data=body, headers=headers) as response:
                    replies.append((response.status, await response.json()))
        return replies

    return asyncio.run(run())


def body_of(data: Any) -> bytes:
    """JSON bytes of ``data``."""
    return json.dumps(data).encode()


def stored(database: Database) -> list[tuple[str, str, str]]:
    """(platform, external id, text) of every stored mention."""
    with database.transaction() as session:
        rows = session.execute(
            select(InteractionRow.platform, InteractionRow.external_id, InteractionRow.text)
        )
        return [tuple(row) for row in rows]


def test_signed_mention_is_stored_once_even_when_retried(database: Database) -> None:
    """Answers 202 after storing a signed mention, and counts a resend as a duplicate."""
    body = body_of(MENTION)
    replies = post(receiver(intake_store(database)), (body, signed(body)), (body, signed(body)))
    assert replies == [(202, {"stored": 1, "duplicates": 0}), (202, {"stored": 0, "duplicates": 1})]
    assert stored(database) == [("webhook", "ticket-1042", MENTION["text"])]


def test_batch_is_stored_in_both_shapes(database: Database) -> None:
    """Stores a JSON array and a {"mentions": [...]} batch, keeping a given platform."""
    array = body_of([MENTION, {"id": 7, "text": "Is the K2 back in stock?", "platform": "x"}])
    wrapped = body_of({"mentions": [{"id": "ticket-1043", "text": "Thanks, Acme!"}]})
    replies = post(
        receiver(intake_store(database)), (array, signed(array)), (wrapped, signed(wrapped))
    )
    assert replies == [(202, {"stored": 2, "duplicates": 0}), (202, {"stored": 1, "duplicates": 0})]
    assert sorted(stored(database)) == [
        ("webhook", "ticket-1042", MENTION["text"]),
        ("webhook", "ticket-1043", "Thanks, Acme!"),
        ("x", "7", "Is the K2 back in stock?"),
    ]


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "missing X-Earful-Timestamp and X-Earful-Signature header; sign every request"),
        ({"X-Earful-Timestamp": str(TS)}, "missing X-Earful-Signature header"),
        (
            {"X-Earful-Timestamp": str(TS), "X-Earful-Signature": "v1=" + "0" * 64},
            "bad signature: X-Earful-Signature does not match the body",
        ),
        (
            {"X-Earful-Timestamp": "yesterday", "X-Earful-Signature": "v1=00"},
            "X-Earful-Timestamp must be unix seconds, e.g. 1700000000",
        ),
    ],
)
def test_unsigned_or_badly_signed_requests_are_refused(
    database: Database, headers: dict[str, str], error: str
) -> None:
    """Answers 401 naming what is wrong with the signature headers, and stores nothing."""
    [reply] = post(receiver(intake_store(database)), (body_of(MENTION), headers))
    assert reply[0] == 401
    assert reply[1]["error"].startswith(error)
    assert stored(database) == []


def test_signature_with_another_secret_or_another_body_is_refused() -> None:
    """Answers 401 when the body was signed with another secret or changed after signing."""
    body = body_of(MENTION)
    other = sign("another-secret-of-16+", TS, body)
    tampered = body_of({**MENTION, "text": "changed"})
    replies = post(
        receiver(lambda fetched: []),
        (body, {**signed(body), "X-Earful-Signature": other}),
        (tampered, signed(body)),
    )
    assert [status for status, _ in replies] == [401, 401]
    assert all("bad signature" in reply["error"] for _, reply in replies)


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_timestamp_is_refused(offset: int) -> None:
    """Answers 401 "stale" for a request signed more than five minutes from now."""
    body = body_of(MENTION)
    [(status, reply)] = post(
        receiver(lambda fetched: []), (body, signed(body, timestamp=TS + offset))
    )
    assert status == 401
    assert reply["error"].startswith("stale timestamp: 301 s from the server's clock")


def test_oversized_body_is_refused_without_reading_it_all(database: Database) -> None:
    """Answers 413 for a body over the limit, whether or not its length is declared."""
    big = body_of({**MENTION, "text": "x" * 5000})

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    replies = post(receiver(intake_store(database)), (big, signed(big)), (chunked(), signed(big)))
    assert replies == [
        (413, {"error": "body is larger than 4,096 bytes; send smaller batches"}),
        (413, {"error": "body is larger than 4,096 bytes; send smaller batches"}),
    ]
    assert stored(database) == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"id": "1", "text": ', "body is not valid JSON (Expecting value at line 1 column 21)"),
        (b"\xff\xfe", "body is not valid UTF-8"),
        (b'"just a string"', 'body must be a mention object, an array, or {"mentions": [...]}'),
        (b"[]", "the batch holds no mentions"),
    ],
)
def test_body_that_is_not_json_is_refused(body: bytes, error: str) -> None:
    """Answers 400 with the reason for a body that is not a JSON mention or batch."""
    assert post(receiver(lambda fetched: []), (body, signed(body))) == [(400, {"error": error})]


def test_invalid_record_is_refused_naming_the_field(database: Database) -> None:
    """Answers 400 naming the missing field of a single mention."""
    body = body_of({"id": "ticket-9"})
    assert post(receiver(intake_store(database)), (body, signed(body))) == [
        (400, {"error": "mention: text is missing"})
    ]
    assert stored(database) == []


def test_batch_with_invalid_records_is_refused_whole_with_every_error(database: Database) -> None:
    """Stores nothing of a batch with invalid records and lists each one by its index."""
    body = body_of(
        {"mentions": [MENTION, {"text": "no id"}, {"id": "t-3", "text": "y" * 501}, "nope"]}
    )
    [(status, reply)] = post(receiver(intake_store(database)), (body, signed(body)))
    assert status == 400
    assert reply == {
        "error": "3 of 4 mentions are invalid; nothing was stored",
        "errors": [
            "mentions[1]: id is missing",
            "mentions[2]: text is 501 characters; the limit is 500 (EARFUL_MAX_TEXT_CHARS)",
            "mentions[3]: expected a JSON object, got str",
        ],
    }
    assert stored(database) == []


def test_database_failure_answers_503_so_the_sender_retries() -> None:
    """Answers 503 with Retry-After when the mentions cannot be stored."""

    def broken(fetched: Fetched) -> list[int]:
        raise RuntimeError("database is down")

    body = body_of(MENTION)
    assert post(receiver(broken), (body, signed(body))) == [
        (503, {"error": "cannot store the mentions now; retry later"})
    ]


def test_secret_and_text_never_reach_the_log(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs what happened to each request without the secret, signature or message text."""
    caplog.set_level(logging.DEBUG)
    body = body_of(MENTION)
    headers = signed(body)
    post(
        receiver(intake_store(database)),
        (body, headers),
        (body, {**headers, "X-Earful-Signature": "v1=" + "1" * 64}),
        (body_of({"id": "x"}), signed(body_of({"id": "x"}))),
    )
    assert "1 mention(s) stored" in caplog.text
    assert "bad signature" in caplog.text
    for secret in (SECRET, headers["X-Earful-Signature"], MENTION["text"], "Dana"):
        assert secret not in caplog.text
    assert SECRET not in repr(receiver(intake_store(database)))


def test_short_secret_is_a_configuration_error() -> None:
    """Refuses to start with a secret shorter than 16 characters."""
    with pytest.raises(ConfigError, match="at least 16 characters"):
        WebhookReceiver(WebhookConfig(), secret="short", store=lambda f: [], max_text_chars=10)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_readme_openssl_recipe_signs_requests_the_webhook_accepts() -> None:
    """Accepts a request signed by the README's openssl command line."""
    body = body_of(MENTION)
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", SECRET, "-hex"],
        input=b"v1:%d:" % TS + body,
        capture_output=True,
        check=True,
    ).stdout.decode()
    signature = "v1=" + digest.strip().split(" ")[-1]
    headers = {"X-Earful-Timestamp": str(TS), "X-Earful-Signature": signature}
    assert post(receiver(lambda fetched: [1]), (body, headers)) == [
        (202, {"stored": 1, "duplicates": 0})
    ]
