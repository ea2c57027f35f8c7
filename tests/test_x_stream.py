"""X's filtered stream through the real tweepy StreamingClient against the local stand-in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from x_standin import CREDENTIALS, RULES, STREAM, Answer, XStandin, rate_limited, unavailable

from bot.app import build_endpoints, build_sources
from bot.config import Settings
from bot.errors import ConfigError
from bot.logs import QUIET_LOGGERS, configure_logging
from bot.models import Mention, VerifiedType
from bot.polling import Intake
from bot.sources import Fetched, SourcesConfig, XConfig
from handlers.x_mentions import StreamWaits, XStream, x_sources
from storage.database import Database
from storage.schema import InteractionRow, SourceReject

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
NAME = "x:stream:acme"
MENTIONS = "/2/users/1410000000000000001/mentions"
SEARCH = "/2/tweets/search/recent"
# Short waits keep the tests fast; their ratios are X's.
WAITS = StreamWaits(network_step=0.05, http_start=0.1, http_max=0.4, rate_start=0.2)


@pytest.fixture
def standin() -> Iterator[XStandin]:
    """A running stand-in of the X API."""
    with XStandin() as running:
        yield running


class Recording:
    """Stores through the real Intake and keeps what was stored, for the tests to read."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.mentions: list[Mention] = []

    def __call__(self, source: str, fetched: Fetched) -> list[int]:
        new = self.intake.store(source, fetched)
        self.mentions.extend(fetched.mentions)
        return new


def _stream(
    standin: XStandin,
    database: Database,
    config: XConfig | None = None,
    *,
    clock: Callable[[], datetime] = lambda: START,
) -> tuple[XStream, Recording]:
    intake = Intake(database=database)
    store = Recording(intake)
    stream = XStream(
        config or XConfig(account="acme", searches=("acme outage",), stream=True),
        bearer_token=CREDENTIALS.bearer_token,
        store=store,
        checkpoint=intake.checkpoint,
        timeout=5.0,
        waits=WAITS,
        clock=clock,
    )
    standin.route(stream.client.session)
    for source in stream.recovery:
        standin.route(source.client.session)
    return stream, store


@pytest.fixture
def running(standin: XStandin, database: Database) -> Iterator[tuple[XStream, Recording]]:
    """A started stream of @acme and "acme outage", stopped at the end."""
    stream, store = _stream(standin, database)
    stream.start()
    _until(lambda: len(standin.stream_connections()) == 1)
    try:
        yield stream, store
    finally:
        stream.stop()


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _post(standin: XStandin, n: int, **changes: Any) -> dict[str, Any]:
    """Dana's complaint (a fixture post) as a new post 1861…(10+n)."""
    tweet_id = str(1861000000000000010 + n)
    base = standin.tweets["1861000000000000001"]
    return {**base, "id": tweet_id, "edit_history_tweet_ids": [tweet_id], **changes}


def _stored(database: Database) -> list[str]:
    with database.transaction() as session:
        return sorted(session.scalars(select(InteractionRow.external_id)))


def _rejects(database: Database) -> list[str]:
    with database.transaction() as session:
        return list(session.scalars(select(SourceReject.reason).order_by(SourceReject.id)))


def test_rules_are_synced(standin: XStandin, database: Database) -> None:
    """Adds the missing rules, deletes stale Earful rules and leaves other tools' rules alone."""
    foreign = standin.add_rule("weather")
    untagged_stale = standin.add_rule("acme old", "other-tool:acme")
    stale = standin.add_rule("acme refund", "earful:search:acme refund")
    current = standin.add_rule("@acme", "earful:mentions:acme")
    stream, _ = _stream(standin, database)

    stream.sync_rules()

    values = {rule["value"]: rule for rule in standin.rules.values()}
    assert set(values) == {"weather", "acme old", "@acme", "acme outage"}
    assert values["@acme"]["id"] == current  # kept, not added again
    assert values["acme outage"]["tag"] == "earful:search:acme outage"
    assert {foreign, untagged_stale} <= set(standin.rules)
    assert stale not in standin.rules
    posts = [call.body for call in standin.calls(RULES, "POST")]
    assert posts == [
        {"delete": {"ids": [stale]}},
        {"add": [{"value": "acme outage", "tag": "earful:search:acme outage"}]},
    ]

    stream.sync_rules()  # in step: nothing to change
    assert len(standin.calls(RULES, "POST")) == 2


def test_streamed_posts_are_stored_with_author_metrics(
    standin: XStandin, database: Database, running: tuple[XStream, Recording]
) -> None:
    """Stores each streamed post as a Mention with its author's metrics and moves the checkpoint."""
    _, store = running
    standin.push(_post(standin, 1))
    standin.push(_post(standin, 2, text="nice weather today", entities={}))  # no rule of ours
    standin.push(_post(standin, 3, text="Acme outage downtown?", entities={}))  # the search

    _until(lambda: len(_stored(database)) == 2)
    assert _stored(database) == ["1861000000000000011", "1861000000000000013"]
    first = store.mentions[0]
    assert first.text.startswith("@acme my order #4411 never arrived & support")
    assert first.author.handle == "dana_k"
    assert (first.author.followers, first.author.following, first.author.listed) == (2310, 488, 17)
    assert first.author.verified_type is VerifiedType.BLUE
    assert first.conversation_id == "1861000000000000001"
    assert first.raw["includes"]["users"][0]["username"] == "dana_k"
    assert Intake(database=database).checkpoint(NAME) == "1861000000000000013"
    assert Intake(database=database).reads_today(NAME) == 2
    (connect,) = standin.stream_connections()
    assert connect.query["expansions"] == "author_id,referenced_tweets.id"
    assert {"created_at", "public_metrics", "conversation_id"} <= set(
        connect.query["tweet.fields"].split(",")
    )
    assert "public_metrics" in connect.query["user.fields"]


def test_posts_matched_only_by_another_tools_rule_are_skipped(
    standin: XStandin, database: Database
) -> None:
    """Ignores posts that reach the app's stream through a rule Earful does not own."""
    standin.add_rule("weather")
    stream, _ = _stream(standin, database)
    stream.start()
    try:
        standin.push(_post(standin, 1, text="nice weather today", entities={}))
        standin.push(_post(standin, 2))
        _until(lambda: len(_stored(database)) == 1)
    finally:
        stream.stop()
    assert _stored(database) == ["1861000000000000012"]


def test_a_malformed_post_is_a_reject_and_the_stream_goes_on(
    standin: XStandin, database: Database, running: tuple[XStream, Recording]
) -> None:
    """Stores a line that is not JSON and a post without its author as rejects, and reads on."""
    standin.push(b"{not json")
    standin.push(_post(standin, 1, author_id="404"))
    standin.push(_post(standin, 2))

    _until(lambda: len(_stored(database)) == 1)
    assert _stored(database) == ["1861000000000000012"]
    assert _rejects(database) == [
        "X sent a stream line that is not JSON",
        "post 1861000000000000011 has no author among the expanded users",
    ]
    assert len(standin.stream_connections()) == 1  # no reconnect


def test_a_disconnect_reconnects_by_xs_rules_and_recovers_the_gap_once(
    standin: XStandin, database: Database
) -> None:
    """Reconnects after a cut with backoff (429 until X's reset, 5xx doubling) and polls the gap once."""
    reset = int(START.timestamp()) + 600
    # The clock stands 0.3 s before X's reset: a 429 waits that long, longer than rate_start.
    clock = datetime.fromtimestamp(reset, UTC) - timedelta(seconds=0.3)
    stream, _ = _stream(standin, database, clock=lambda: clock)
    stream.start()
    try:
        _until(lambda: len(standin.stream_connections()) == 1)
        standin.push(_post(standin, 1))
        _until(lambda: len(_stored(database)) == 1)
        standin.queue("GET", STREAM, rate_limited(reset), unavailable(), unavailable(), exact=True)
        gap = [standin.mention(n) for n in (1, 2)]  # posted while the stream is down
        standin.drop_stream(clean=False)

        _until(lambda: len(_stored(database)) == 3)
        standin.push(_post(standin, 2))
        _until(lambda: len(_stored(database)) == 4)
    finally:
        stream.stop()

    assert _stored(database) == sorted(["1861000000000000011", "1861000000000000012", *gap])
    attempts = [call.at for call in standin.stream_connections()]
    assert len(attempts) == 5  # the first, then: 429, 503, 503, connected
    gaps = [b - a for a, b in zip(attempts[1:], attempts[2:], strict=False)]
    # After the 429 X's reset (0.3 s), then 0.1 s and 0.2 s after the 503s.
    assert gaps[0] >= 0.28
    assert gaps[1] >= 0.09
    assert gaps[2] >= 0.19
    (recovery,) = standin.calls(MENTIONS)
    assert recovery.query["since_id"] == "1861000000000000011"
    (search,) = standin.calls(SEARCH)
    assert search.query["since_id"] == "1861000000000000011"
    assert Intake(database=database).checkpoint(NAME) == gap[-1]  # the newest id stored


def test_a_stream_x_keeps_closing_is_not_a_request_storm(
    standin: XStandin, database: Database
) -> None:
    """Waits longer after each stream X closes at once, rather than reconnecting in a loop."""
    standin.queue("GET", STREAM, *[Answer(200, b"")] * 4, exact=True)
    stream, _ = _stream(standin, database)
    stream.start()
    try:
        _until(lambda: len(standin.stream_connections()) == 5)
        time.sleep(0.1)
    finally:
        stream.stop()

    attempts = [call.at for call in standin.stream_connections()]
    assert len(attempts) == 5
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    for n, gap in enumerate(gaps, start=1):  # 0.05, 0.10, 0.15, 0.20 s: linear
        assert gap >= 0.05 * n - 0.01


def test_a_refused_stream_is_not_retried(standin: XStandin, database: Database) -> None:
    """Stops reconnecting when X refuses the stream (403), instead of retrying forever."""
    forbidden = {"title": "Forbidden", "detail": "client-not-enrolled", "status": 403}
    standin.queue("GET", STREAM, Answer(403, forbidden), exact=True)
    stream, _ = _stream(standin, database)
    stream.start()
    assert stream.thread is not None
    stream.thread.join(5)
    assert not stream.thread.is_alive()
    assert len(standin.stream_connections()) == 1


def test_rules_x_cannot_sync_at_start_are_synced_before_the_stream_connects(
    standin: XStandin, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Starts anyway when X is down for the rules call; the stream's thread syncs, then connects."""
    standin.queue("GET", RULES, unavailable(), unavailable())
    stream, _ = _stream(standin, database)
    with caplog.at_level(logging.WARNING, logger="handlers.x_mentions"):
        stream.start()  # does not raise: the rest of Earful starts
        try:
            _until(lambda: len(standin.stream_connections()) == 1)
            standin.push(_post(standin, 1))
            _until(lambda: len(_stored(database)) == 1)
        finally:
            stream.stop()

    assert len(standin.calls(RULES)) == 3  # 503 at start, 503 in the thread, then synced
    assert {rule["value"] for rule in standin.rules.values()} == {"@acme", "acme outage"}
    warnings = [r.getMessage() for r in caplog.records]
    assert any("could not sync the stream rules (503" in w for w in warnings), warnings
    assert any("syncing the rules failed (503" in w for w in warnings), warnings


def test_rules_x_refuses_at_start_stop_the_start(standin: XStandin, database: Database) -> None:
    """A refused token is a configuration error at once, not something to retry."""
    refused = {"title": "Unauthorized", "detail": "Unauthorized", "status": 401}
    standin.queue("GET", RULES, Answer(401, refused))
    stream, _ = _stream(standin, database)

    with pytest.raises(ConfigError, match="401 Unauthorized"):
        stream.start()

    assert stream.thread is None
    assert standin.stream_connections() == []


def test_stop_closes_the_stream_at_once(
    standin: XStandin, database: Database, running: tuple[XStream, Recording]
) -> None:
    """Closes the open stream without waiting for X's next keep-alive, and reconnects no more."""
    stream, _ = running
    standin.heartbeat = 30.0  # a read would block this long
    standin.push(_post(standin, 1))
    _until(lambda: len(_stored(database)) == 1)

    began = time.monotonic()
    stream.stop()

    assert time.monotonic() - began < 2.0
    assert stream.thread is not None
    assert not stream.thread.is_alive()
    time.sleep(0.1)
    assert len(standin.stream_connections()) == 1


def test_the_stream_replaces_polling_in_the_wiring(database: Database) -> None:
    """Builds no polled X source with ``stream: true``, and one pushed endpoint instead."""
    config = SourcesConfig(x=XConfig(account="acme", searches=("acme outage",), stream=True))
    settings = Settings(x_bearer_token=CREDENTIALS.bearer_token)

    assert x_sources(config.x or XConfig(), bearer_token="unused") == []
    assert build_sources(settings, config) == []
    (endpoint,) = build_endpoints(settings, config, Intake(database=database))
    assert endpoint.label == "X's filtered stream ('@acme', 'acme outage')"
    assert endpoint.routes == []
    assert endpoint.on_start is not None
    assert endpoint.on_stop is not None


def test_no_token_or_customer_text_in_debug_logs(
    standin: XStandin, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs no token or customer text at DEBUG through a sync, posts, a reject, a cut and a stop."""
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    caplog.set_level(logging.DEBUG)
    try:
        configure_logging("DEBUG")
        stream, _ = _stream(standin, database)
        standin.add_rule("acme refund", "earful:search:acme refund")
        stream.start()
        _until(lambda: len(standin.stream_connections()) == 1)
        standin.push(_post(standin, 1))
        standin.push(b"secret-ish line that is not json")
        _until(lambda: len(_stored(database)) == 1)
        standin.queue("GET", STREAM, unavailable(), exact=True)
        standin.drop_stream(clean=False)
        _until(lambda: len(standin.calls(SEARCH)) == 1)
        stream.stop()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

    assert caplog.records
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in vars(CREDENTIALS).values():
        assert secret not in logged
    assert "never arrived" not in logged
    assert "secret-ish" not in logged
