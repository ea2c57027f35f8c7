"""X through the real tweepy client against a local stand-in of the X API v2."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from poll_child import kill_after_fetch, poll_in_child
from sqlalchemy import func, select
from support import Clock
from x_standin import (
    CREDENTIALS,
    REPLY_ENVIRON,
    Answer,
    XStandin,
    fixture,
    rate_limited,
    route_to,
    unavailable,
)

from bot import effects
from bot.app import build_reply_sink
from bot.config import load_settings
from bot.delivery import Deliverer
from bot.errors import ConfigError
from bot.logs import QUIET_LOGGERS, configure_logging
from bot.models import Author, Direction, Mention, Platform, VerifiedType
from bot.polling import Intake, Poller
from bot.sources import Fetched, Source, XConfig
from handlers.x_mentions import XReplies, x_sources
from storage import ingest, outbox, replies
from storage.database import Database
from storage.schema import InteractionRow, OutboxRow, SourceReject

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
MENTIONS = "/2/users/1410000000000000001/mentions"
SEARCH = "/2/tweets/search/recent"
# Older than every fixture post: a source that has polled before.
EARLIER = "1860000000000000000"


@pytest.fixture
def standin() -> Iterator[XStandin]:
    """A running stand-in of the X API."""
    with XStandin() as running:
        yield running


def _sources(
    standin: XStandin,
    config: XConfig | None = None,
    *,
    clock: Clock | None = None,
    timeout: float = 5.0,
) -> list[Any]:
    built: list[Any] = x_sources(
        config or XConfig(account="acme"),
        bearer_token=CREDENTIALS.bearer_token,
        timeout=timeout,
        clock=clock or Clock(START),
    )
    for source in built:
        standin.route(source.client.session)
    return built


def _poller(database: Database, source: Source, clock: Clock) -> Poller:
    return Poller(
        source=source, intake=Intake(database=database, clock=clock), rng=random.Random(1)
    )


def _stored(database: Database) -> dict[str, str]:
    with database.transaction() as session:
        rows = session.execute(select(InteractionRow.external_id, InteractionRow.direction))
        return {external_id: direction for external_id, direction in rows}


def _replies(standin: XStandin, *, timeout: float = 5.0, clock: Clock | None = None) -> XReplies:
    sink = XReplies(
        consumer_key=CREDENTIALS.consumer_key,
        consumer_secret=CREDENTIALS.consumer_secret,
        access_token=CREDENTIALS.access_token,
        access_token_secret=CREDENTIALS.access_token_secret,
        timeout=timeout,
        clock=clock or Clock(START),
    )
    standin.route(sink.client.session)
    return sink


def test_mentions_arrive_with_author_metrics_and_threading(standin: XStandin) -> None:
    """Turns the account's mentions into Mentions with the author's metrics, thread and link."""
    (source,) = _sources(standin)
    fetched = source.fetch(EARLIER, read_budget=None)

    by_id = {m.external_id: m for m in fetched.mentions}
    assert list(by_id) == [f"186100000000000000{n}" for n in (7, 6, 5, 3, 1)]
    first = by_id["1861000000000000001"]
    assert first.platform is Platform.X
    assert first.text == "@acme my order #4411 never arrived & support hasn't answered in 3 days"
    assert first.created_at == datetime(2026, 11, 22, 8, 1, 12, tzinfo=UTC)
    assert first.url == "https://x.com/dana_k/status/1861000000000000001"
    assert first.engagement == 14 + 2 + 1 + 1
    assert first.direction is Direction.INBOUND
    assert first.author.handle == "dana_k"
    assert first.author.display_name == "Dana K"
    assert first.author.platform_user_id == "1420000000000000002"
    assert (first.author.followers, first.author.following) == (2310, 488)
    assert (first.author.posts, first.author.listed) == (15032, 17)
    assert first.author.verified_type is VerifiedType.BLUE
    assert first.author.account_created == datetime(2016, 7, 1, 18, 22, 41, tzinfo=UTC)
    assert first.raw["data"]["edit_history_tweet_ids"] == ["1861000000000000001"]
    assert first.raw["includes"]["users"][0]["username"] == "dana_k"

    follow_up = by_id["1861000000000000003"]
    assert follow_up.conversation_id == "1861000000000000001"
    assert follow_up.in_reply_to == "1861000000000000002"
    assert by_id["1861000000000000006"].author.verified_type is VerifiedType.GOVERNMENT
    assert by_id["1861000000000000007"].text.endswith("Give me a reason to stay.")  # long post
    assert fetched.checkpoint == "1861000000000000007"
    assert fetched.reads == 5

    (call,) = standin.calls(MENTIONS)
    assert call.query["since_id"] == EARLIER
    assert call.query["expansions"] == "author_id,referenced_tweets.id"
    assert {"created_at", "conversation_id", "public_metrics", "referenced_tweets"} <= set(
        call.query["tweet.fields"].split(",")
    )
    assert {"public_metrics", "verified_type", "created_at"} <= set(
        call.query["user.fields"].split(",")
    )


def test_resolves_the_account_once(standin: XStandin) -> None:
    """Looks the brand account's id up on the first fetch only."""
    (source,) = _sources(standin)
    source.fetch(EARLIER, read_budget=None)
    source.fetch("1861000000000000007", read_budget=None)

    assert len(standin.calls("/2/users/by/username/acme")) == 1
    assert len(standin.calls(MENTIONS)) == 2


def test_search_marks_the_brands_own_posts_outbound(standin: XStandin) -> None:
    """Finds posts by search query and marks the brand's own replies as outbound."""
    (source,) = _sources(standin, XConfig(account="acme", searches=("acme",)))[1:]
    fetched = source.fetch(EARLIER, read_budget=None)

    directions = {m.external_id: m.direction for m in fetched.mentions}
    assert directions["1861000000000000002"] is Direction.OUTBOUND
    assert directions["1861000000000000004"] is Direction.INBOUND
    assert len(directions) == 7
    assert standin.calls(SEARCH)[0].query["query"] == "acme"


def test_names_and_describes_the_sources(standin: XStandin) -> None:
    """Names one source per timeline and describes each on one line, with its budget share."""
    config = XConfig(
        account="acme", searches=("acme outage",), interval=60, daily_read_budget=10_000
    )
    mentions, search = _sources(standin, config)

    assert (mentions.name, search.name) == ("x:mentions:acme", "x:search:acme outage")
    assert mentions.describe() == ["mentions of @acme every 60 s, budget 5,000 posts/day"]
    assert search.describe() == ["search 'acme outage' every 60 s, budget 5,000 posts/day"]
    assert x_sources(XConfig(), bearer_token="unused") == []


def test_first_poll_reads_only_the_newest_page(database: Database, standin: XStandin) -> None:
    """Starts a new source from X's newest page instead of paying for the whole backlog."""
    standin.page_size = 2
    clock = Clock(START)
    (source,) = _sources(standin, clock=clock)
    _poller(database, source, clock).poll()

    assert set(_stored(database)) == {"1861000000000000007", "1861000000000000006"}
    assert Intake(database=database).checkpoint(source.name) == "1861000000000000007"
    assert len(standin.calls(MENTIONS)) == 1


def test_pages_to_the_end_of_the_window(database: Database, standin: XStandin) -> None:
    """Reads every page newer than the checkpoint, then moves the checkpoint to the newest."""
    standin.page_size = 2
    clock = Clock(START)
    (source,) = _sources(standin, clock=clock)
    Intake(database=database).store(source.name, Fetched(checkpoint="1861000000000000007"))
    new = [standin.mention(n) for n in range(1, 6)]

    _poller(database, source, clock).poll()

    assert set(_stored(database)) == set(new)
    assert Intake(database=database).checkpoint(source.name) == new[-1]
    calls = standin.calls(MENTIONS)
    assert len(calls) == 3
    assert {c.query["since_id"] for c in calls} == {"1861000000000000007"}
    assert [c.query.get("pagination_token") is None for c in calls] == [True, False, False]


def test_checkpoint_moves_only_when_stored(database: Database, standin: XStandin) -> None:
    """Leaves the checkpoint where it was until what was fetched is stored."""
    (source,) = _sources(standin)
    intake = Intake(database=database)
    intake.store(source.name, Fetched(checkpoint=EARLIER))

    fetched = source.fetch(intake.checkpoint(source.name), read_budget=None)
    assert intake.checkpoint(source.name) == EARLIER
    intake.store(source.name, fetched)
    assert intake.checkpoint(source.name) == "1861000000000000007"

    source.fetch(intake.checkpoint(source.name), read_budget=None)
    assert standin.calls(MENTIONS)[-1].query["since_id"] == "1861000000000000007"


def test_rate_limit_mid_window_waits_for_the_reset(database: Database, standin: XStandin) -> None:
    """Keeps what was read before a 429, makes no request before the reset, then reads it all."""
    standin.page_size = 2
    clock = Clock(START)
    (source,) = _sources(standin, clock=clock)
    Intake(database=database).store(source.name, Fetched(checkpoint="1861000000000000007"))
    new = [standin.mention(n) for n in range(1, 6)]
    reset = START + timedelta(minutes=12)
    standin.queue("GET", MENTIONS, rate_limited(int(reset.timestamp())), after=1)
    poller = _poller(database, source, clock)

    assert poller.poll() == reset
    assert set(_stored(database)) == set(new[3:])  # the newest page
    assert Intake(database=database).checkpoint(source.name) == "1861000000000000007"

    clock.now = START + timedelta(minutes=5)  # polled early, e.g. by a restarted scheduler
    assert poller.poll() == reset
    assert len(standin.calls(MENTIONS)) == 2

    clock.now = reset
    assert poller.poll() == reset + timedelta(seconds=60)
    assert set(_stored(database)) == set(new)
    assert Intake(database=database).checkpoint(source.name) == new[-1]


def test_a_failure_mid_window_keeps_what_was_read(database: Database, standin: XStandin) -> None:
    """Stores the pages read before a 5xx and leaves the checkpoint, so nothing older is skipped."""
    standin.page_size = 2
    clock = Clock(START)
    (source,) = _sources(standin, clock=clock)
    Intake(database=database).store(source.name, Fetched(checkpoint="1861000000000000007"))
    new = [standin.mention(n) for n in range(1, 6)]
    standin.queue("GET", MENTIONS, unavailable(), after=1)
    poller = _poller(database, source, clock)

    assert poller.poll() == START + timedelta(seconds=60)
    assert set(_stored(database)) == set(new[3:])
    assert Intake(database=database).checkpoint(source.name) == "1861000000000000007"

    clock.now = START + timedelta(seconds=60)
    poller.poll()
    assert set(_stored(database)) == set(new)
    assert Intake(database=database).checkpoint(source.name) == new[-1]


def test_a_rate_limited_query_holds_the_others(standin: XStandin) -> None:
    """Stops every search query of the app until the reset of the search endpoint's limit."""
    clock = Clock(START)
    config = XConfig(searches=("acme outage", "acme app"))
    first, second = _sources(standin, config, clock=clock)
    reset = START + timedelta(minutes=9)
    standin.queue("GET", SEARCH, rate_limited(int(reset.timestamp())))

    assert first.fetch(EARLIER, read_budget=None).not_before == reset
    assert second.fetch(EARLIER, read_budget=None).not_before == reset
    assert len(standin.calls(SEARCH)) == 1


def test_a_spent_window_stops_before_the_429(standin: XStandin) -> None:
    """Waits for the reset when X says no requests remain, rather than asking for a 429."""
    clock = Clock(START)
    (source,) = _sources(standin, clock=clock)
    reset = START + timedelta(minutes=3)
    spent = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(reset.timestamp()))}
    standin.queue(
        "GET",
        MENTIONS,
        Answer(
            200,
            {
                "data": [fixture("tweets.json")[6]],
                "includes": {"users": [fixture("users.json")[3]]},
                "meta": {"result_count": 1, "next_token": "7140dibdnow9c7btw41"},
            },
            spent,
        ),
    )
    fetched = source.fetch(EARLIER, read_budget=None)

    assert [m.external_id for m in fetched.mentions] == ["1861000000000000007"]
    assert fetched.checkpoint is None
    assert fetched.not_before == reset
    assert len(standin.calls(MENTIONS)) == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (unavailable(), "X answered 503"),
        (Answer(200, b"<html>upstream error</html>"), "not JSON"),
        (Answer(200, {"meta": {}}, delay=1.0), "did not answer in time"),
    ],
    ids=["5xx", "malformed body", "timeout"],
)
def test_failures_back_off_and_store_nothing(
    database: Database,
    standin: XStandin,
    answer: Answer,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Backs off after a 5xx, a body that is not JSON or a timeout, and stores nothing."""
    clock = Clock(START)
    (source,) = _sources(standin, clock=clock, timeout=0.3)
    Intake(database=database).store(source.name, Fetched(checkpoint=EARLIER))
    standin.queue("GET", MENTIONS, answer)
    poller = _poller(database, source, clock)

    next_poll = poller.poll()

    assert START + timedelta(seconds=0.5) <= next_poll <= START + timedelta(seconds=1)
    assert poller.failures == 1
    assert _stored(database) == {}
    assert reason in caplog.text
    assert poller.poll() == START + timedelta(seconds=60)
    assert len(_stored(database)) == 5


def test_malformed_posts_are_rejected_and_the_rest_stored(
    database: Database, standin: XStandin
) -> None:
    """Records posts without text, id or author as rejects with a reason and stores the rest."""
    clock = Clock(START)
    (source,) = _sources(standin, clock=clock)
    Intake(database=database).store(source.name, Fetched(checkpoint=EARLIER))
    mention = {"mentions": [{"start": 0, "end": 5, "username": "acme"}]}
    standin.add_tweet(
        {"id": "1861000000000000008", "author_id": "1440000000000000004", "entities": mention}
    )
    standin.add_tweet(
        {"id": "1861000000000000009", "text": "@acme hi", "author_id": "404", "entities": mention}
    )
    standin.add_tweet(
        {"text": "@acme no id", "author_id": "1440000000000000004", "entities": mention}
    )

    _poller(database, source, clock).poll()

    assert len(_stored(database)) == 5
    with database.transaction() as session:
        reasons = sorted(session.scalars(select(SourceReject.reason)))
    assert reasons == [
        "X sent a post without an id",
        "post 1861000000000000008 has no text",
        "post 1861000000000000009 has no author among the expanded users",
    ]
    assert Intake(database=database).checkpoint(source.name) == "1861000000000000009"


def test_read_budget_caps_what_a_poll_asks_for(database: Database, standin: XStandin) -> None:
    """Asks X for no more posts than the day's budget leaves, then waits for midnight."""
    clock = Clock(START)
    (source,) = _sources(standin, XConfig(account="acme", daily_read_budget=7), clock=clock)
    Intake(database=database).store(source.name, Fetched(checkpoint="1861000000000000007"))
    new = [standin.mention(n) for n in range(1, 11)]
    poller = _poller(database, source, clock)

    poller.poll()
    assert standin.calls(MENTIONS)[0].query["max_results"] == "7"
    assert set(_stored(database)) == set(new[3:])
    assert Intake(database=database, clock=clock).reads_today(source.name) == 7
    assert Intake(database=database).checkpoint(source.name) == new[-1]

    assert poller.poll() == datetime(2026, 11, 23, tzinfo=UTC)
    assert len(standin.calls(MENTIONS)) == 1


def test_an_old_search_checkpoint_starts_over(standin: XStandin) -> None:
    """Starts a search again from the newest posts when X says the checkpoint is too old."""
    (source,) = _sources(standin, XConfig(searches=("acme outage",)))
    too_old = {
        "errors": [
            {
                "parameters": {"since_id": ["1"]},
                "message": "Invalid 'since_id':'1'. 'since_id' must be a tweet id created after 2026-11-15T09:00Z.",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    standin.queue("GET", SEARCH, Answer(400, too_old))

    fetched = source.fetch("1", read_budget=None)

    assert [m.external_id for m in fetched.mentions] == ["1861000000000000004"]
    assert fetched.checkpoint == "1861000000000000004"
    assert "since_id" not in standin.calls(SEARCH)[-1].query


def test_check_accepts_good_credentials(standin: XStandin) -> None:
    """Passes the check with a valid bearer token, an existing account and a valid query."""
    for source in _sources(standin, XConfig(account="acme", searches=("acme",))):
        source.check()
    assert standin.calls("/2/users/by/username/acme")


def test_check_names_what_is_wrong(standin: XStandin) -> None:
    """Fails the check with a one-line reason: a refused token, an unknown account, a bad query."""
    bad: Any = x_sources(XConfig(account="acme"), bearer_token="wrong-token-1234")[0]
    standin.route(bad.client.session)
    with pytest.raises(
        ConfigError, match=r"^X refused the bearer token \(401 Unauthorized\)$"
    ) as err:
        bad.check()
    assert "wrong-token-1234" not in str(err.value)

    (missing,) = _sources(standin, XConfig(account="nobody_here"))
    with pytest.raises(ConfigError, match="X has no account @nobody_here"):
        missing.check()

    (query,) = _sources(standin, XConfig(searches=("acme lang:zz place:nowhere",)))
    body = fixture("invalid_query.json")
    standin.queue("GET", SEARCH, Answer(400, body))
    with pytest.raises(
        ConfigError, match="X answered 400 Bad Request: .*Reference to invalid operator"
    ):
        query.check()


def _enqueue_reply(database: Database, *, text: str = "Sorry Dana, we're on it. DM us?") -> None:
    reply = effects.reply(
        interaction_id=41,
        conversation_id=7,
        platform="x",
        in_reply_to="1861000000000000003",
        text=text,
        agent="slack:U0AGENT",
    )
    with database.transaction() as session:
        outbox.enqueue_all(session, [reply], at=START)


def _outbox_row(database: Database) -> tuple[str, int, str | None, datetime]:
    with database.transaction() as session:
        row = session.scalars(select(OutboxRow)).one()
        at = row.next_attempt_at
        return row.state, row.attempts, row.last_error, at if at.tzinfo else at.replace(tzinfo=UTC)


def test_reply_reaches_x_under_the_customers_post(database: Database, standin: XStandin) -> None:
    """Posts the reply, signed as the brand account, in reply to the customer's post."""
    clock = Clock(START)
    _enqueue_reply(database)
    deliverer = Deliverer(database=database, sinks={"reply": _replies(standin)}, clock=clock)

    assert deliverer.deliver_due().delivered == 1
    (posted,) = standin.created
    assert posted["text"] == "Sorry Dana, we're on it. DM us?"
    assert posted["in_reply_to_tweet_id"] == "1861000000000000003"
    (call,) = standin.calls("/2/tweets", "POST")
    assert call.body == {
        "text": posted["text"],
        "reply": {"in_reply_to_tweet_id": "1861000000000000003"},
    }
    assert _outbox_row(database)[0] == "delivered"


def test_reply_rate_limit_retries_at_the_reset(database: Database, standin: XStandin) -> None:
    """Retries a rate-limited reply at X's reset time, the 24-hour cap's when that is spent."""
    clock = Clock(START)
    _enqueue_reply(database)
    daily = START + timedelta(hours=5)
    standin.queue(
        "POST",
        "/2/tweets",
        rate_limited(
            int((START + timedelta(minutes=2)).timestamp()),
            **{
                "x-user-limit-24hour-remaining": "0",
                "x-user-limit-24hour-reset": str(int(daily.timestamp())),
            },
        ),
    )
    deliverer = Deliverer(
        database=database, sinks={"reply": _replies(standin, clock=clock)}, clock=clock
    )

    assert deliverer.deliver_due().retried == 1
    state, attempts, error, next_at = _outbox_row(database)
    assert (state, attempts, error) == ("pending", 1, "X rate limit reached")
    assert next_at == daily
    assert standin.created == []


def test_reply_server_error_is_retried(database: Database, standin: XStandin) -> None:
    """Retries a reply that X answered with a 5xx, and posts it on the next attempt."""
    clock = Clock(START)
    _enqueue_reply(database)
    standin.queue("POST", "/2/tweets", unavailable())
    deliverer = Deliverer(database=database, sinks={"reply": _replies(standin)}, clock=clock)

    assert deliverer.deliver_due().retried == 1
    clock.now = START + timedelta(minutes=10)
    assert deliverer.deliver_due().delivered == 1
    assert len(standin.created) == 1


def test_reply_refused_by_x_fails_with_the_reason(database: Database, standin: XStandin) -> None:
    """Fails a reply X does not allow, keeping X's reason for the agent."""
    clock = Clock(START)
    _enqueue_reply(database)
    standin.queue("POST", "/2/tweets", Answer(403, fixture("reply_not_allowed.json")))
    deliverer = Deliverer(database=database, sinks={"reply": _replies(standin)}, clock=clock)

    assert deliverer.deliver_due().failed == 1
    state, _, error, _ = _outbox_row(database)
    assert state == "failed"
    assert error is not None
    assert error.startswith(
        "X refused the reply: X answered 403 Forbidden: Reply to this conversation is not allowed"
    )


def test_a_reply_whose_answer_was_lost_is_posted_once(
    database: Database, standin: XStandin
) -> None:
    """Counts X's duplicate refusal on a retry as delivered, so a lost answer posts once."""
    clock = Clock(START)
    _enqueue_reply(database)
    standin.queue("POST", "/2/tweets", Answer(delay=1.0, process=True))
    deliverer = Deliverer(
        database=database, sinks={"reply": _replies(standin, timeout=0.3)}, clock=clock
    )

    assert deliverer.deliver_due().retried == 1
    clock.now = START + timedelta(minutes=10)
    assert deliverer.deliver_due().delivered == 1
    assert len(standin.created) == 1
    assert len(standin.calls("/2/tweets", "POST")) == 2


def test_a_duplicate_first_reply_is_rejected(database: Database, standin: XStandin) -> None:
    """Fails a first attempt X refuses as duplicate content: the agent must reword it."""
    clock = Clock(START)
    sink = _replies(standin)
    _enqueue_reply(database)
    Deliverer(database=database, sinks={"reply": sink}, clock=clock).deliver_due()
    second = effects.reply(
        interaction_id=42,
        conversation_id=8,
        platform="x",
        in_reply_to="1861000000000000005",
        text="Sorry Dana, we're on it. DM us?",
        agent="slack:U0AGENT",
    )
    with database.transaction() as session:
        outbox.enqueue_all(session, [second], at=START)

    assert (
        Deliverer(database=database, sinks={"reply": sink}, clock=clock).deliver_due().failed == 1
    )
    assert len(standin.created) == 1


def test_no_secret_or_customer_text_in_debug_logs(
    database: Database, standin: XStandin, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs no token, key or customer text at DEBUG through a full fetch, failure and reply."""
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    caplog.set_level(logging.DEBUG)
    try:
        configure_logging("DEBUG")
        clock = Clock(START)
        mentions, search = _sources(
            standin, XConfig(account="acme", searches=("acme",)), clock=clock
        )
        for source in (mentions, search):
            source.check()
            _poller(database, source, clock).poll()
        standin.queue("GET", MENTIONS, unavailable())
        _poller(database, mentions, clock).poll()
        _enqueue_reply(database)
        Deliverer(database=database, sinks={"reply": _replies(standin)}, clock=clock).deliver_due()
        bad: Any = x_sources(
            XConfig(account="acme"), bearer_token=CREDENTIALS.bearer_token + "-old"
        )[0]
        standin.route(bad.client.session)
        with pytest.raises(ConfigError):
            bad.check()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

    assert len(standin.created) == 1
    assert caplog.records  # it did log
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in vars(CREDENTIALS).values():
        assert secret not in logged
    assert "never arrived" not in logged
    assert "DM us" not in logged


def crash_source(url: str) -> Source:
    """The mentions source the crash test's child process polls, aimed at the stand-in."""
    (source,) = x_sources(XConfig(account="acme"), bearer_token=CREDENTIALS.bearer_token)
    route_to(cast(Any, source).client.session, url)
    return source


@pytest.mark.slow
def test_a_kill_between_fetch_and_store_loses_and_repeats_nothing(
    database: Database, database_url: str, standin: XStandin
) -> None:
    """After a SIGKILL between fetching and storing, the restarted poll stores each post once."""
    intake = Intake(database=database)
    intake.store("x:mentions:acme", Fetched(checkpoint=EARLIER))

    kill_after_fetch(database_url, "test_x_source:crash_source", standin.url)
    assert _stored(database) == {}
    assert intake.checkpoint("x:mentions:acme") == EARLIER

    poll_in_child(database_url, "test_x_source:crash_source", standin.url)
    poll_in_child(database_url, "test_x_source:crash_source", standin.url)

    assert len(_stored(database)) == 5
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(InteractionRow)) == 5
    assert intake.checkpoint("x:mentions:acme") == "1861000000000000007"
    since = [c.query["since_id"] for c in standin.calls(MENTIONS)]
    assert since == [EARLIER, EARLIER, "1861000000000000007"]


def test_a_posted_reply_takes_its_post_id_and_is_not_stored_again_when_read_back(
    database: Database, standin: XStandin
) -> None:
    """The reply an agent sent is stored before it is posted; once X has it, the stored reply
    takes the post's id and link, so a search that finds the brand's post later skips it
    instead of storing the reply a second time."""
    clock = Clock(START)
    reply = Mention(
        platform=Platform.X,
        external_id=f"{replies.PENDING_ID}0001",
        text="Sorry about this, acme is on it. DM us?",
        author=Author(display_name="slack:U0AGENT"),
        created_at=START,
        in_reply_to="1861000000000000003",
        direction=Direction.OUTBOUND,
    )
    with database.transaction() as session:
        (reply_id,) = ingest.ingest(session, [reply], received_at=START)
        outbox.enqueue_all(
            session,
            [
                effects.reply(
                    interaction_id=reply_id,
                    conversation_id=7,
                    platform="x",
                    in_reply_to="1861000000000000003",
                    text=reply.text,
                    agent="slack:U0AGENT",
                )
            ],
            at=START,
        )
    settings = load_settings(environ=REPLY_ENVIRON)
    sink: Any = build_reply_sink(settings, database).sinks["x"]
    standin.route(sink.client.session)
    deliverer = Deliverer(database=database, sinks={"reply": sink}, clock=clock)
    assert deliverer.deliver_due().delivered == 1
    (posted,) = standin.created
    with database.transaction() as session:
        row = session.get(InteractionRow, reply_id)
        assert row is not None
        assert (row.external_id, row.url) == (
            posted["id"],
            f"https://x.com/i/web/status/{posted['id']}",
        )

    (search,) = _sources(standin, XConfig(account="acme", searches=("acme is on it",)))[1:]
    _poller(database, search, clock).poll()
    with database.transaction() as session:
        stored = session.scalars(
            select(InteractionRow.external_id).where(InteractionRow.direction == "outbound")
        ).all()
    assert stored == [posted["id"]]
    assert [c.query["query"] for c in standin.calls(SEARCH)] == ["acme is on it"]
