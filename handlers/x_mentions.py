"""X through tweepy: the brand account's mentions and recent-search queries, and replies.

Reading uses the app's bearer token. `x_sources` builds one source for the mentions of the
brand account (``x:mentions:<account>``) and one per recent-search query
(``x:search:<query>``). The checkpoint is the newest post id read; a fetch asks for what is
newer (``since_id``), page by page, newest first, to the end of that window:

* the checkpoint moves only when the window was read to its end. A rate limit or failure part
  way returns the posts read so far with no checkpoint, so nothing older is skipped; the posts
  read again next time are stored once.
* A source's first fetch (no checkpoint) reads only the newest page instead of backfilling
  X's whole window (800 mentions, 7 days of search) at X's price per post read.
* The read budget caps the posts a fetch asks for. When it cuts a window short the checkpoint
  still moves to the newest post and the older ones are skipped (and logged as skipped):
  reading them later would spend the next day's budget on stale posts. A page is never
  smaller than X allows (5 mentions, 10 search results), so a budget can be overrun by that.
* A 429, or an answer saying no requests of the window remain, stops every source of that
  endpoint until X's reset time: no request is made before it. tweepy's own sleep-and-retry
  is off; it would hold a worker thread for up to 15 minutes.

With ``stream: true`` `XStream` reads X's filtered stream instead (a pushed source, started
by `earful run`): see its docstring. Replies are posted in the user context (OAuth 1.0a) by
`XReplies`, from the outbox.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
import tweepy

from bot.errors import ConfigError, DeliveryRejected, RetryLater, SourceError
from bot.models import Author, Clock, Direction, Mention, Platform, VerifiedType, now_utc
from bot.sources import Fetched, Rejected, Source, XConfig
from storage.outbox import Effect

log = logging.getLogger(__name__)

EXPANSIONS = ["author_id", "referenced_tweets.id"]
TWEET_FIELDS = [
    "author_id",
    "conversation_id",
    "created_at",
    "entities",
    "in_reply_to_user_id",
    "lang",
    "note_tweet",
    "public_metrics",
    "referenced_tweets",
]
USER_FIELDS = ["created_at", "name", "public_metrics", "username", "verified_type"]
MAX_PAGE = 100
TIMEOUT = 30.0
# X's rate-limit windows last 15 minutes: the wait when a 429 carries no reset time.
WINDOW = timedelta(minutes=15)
# Rate limits X reports in headers; a reply can also hit the app's or user's 24-hour cap.
_LIMITS = ("x-rate-limit", "x-app-limit-24hour", "x-user-limit-24hour")
_FAILURES = (tweepy.HTTPException, requests.RequestException)
_VERIFIED = {kind.value: kind for kind in VerifiedType}


class _BadBody(Exception):
    """X answered 2xx with a body that is not the JSON object of its API."""


class _RulesUnavailable(Exception):
    """X could not sync the stream rules now (down, unreachable, rate limiting)."""

    def __init__(self, ending: _Ending) -> None:
        super().__init__(str(ending))
        self.ending = ending


class _Session(requests.Session):
    """A session whose requests time out: tweepy sets no timeout, and X can hang."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def _client(timeout: float, **credentials: str) -> tweepy.Client:
    client = tweepy.Client(**credentials, return_type=requests.Response, wait_on_rate_limit=False)
    client.session = _Session(timeout)
    return client


class RateLimits:
    """Until when each X endpoint is rate limited; shared by the sources that call it."""

    def __init__(self) -> None:
        self._until: dict[str, datetime] = {}

    def blocked(self, endpoint: str, now: datetime) -> datetime | None:
        """The reset time of ``endpoint`` if it is still ahead, else None."""
        until = self._until.get(endpoint)
        return until if until is not None and until > now else None

    def block(self, endpoint: str, until: datetime) -> None:
        """Make no request to ``endpoint`` before ``until``."""
        self._until[endpoint] = max(until, self._until.get(endpoint, until))


def x_sources(
    config: XConfig,
    *,
    bearer_token: str,
    timeout: float = TIMEOUT,
    clock: Clock = now_utc,
) -> list[Source]:
    """The X sources of ``config``: the account's mentions, then one per search query.

    They share one tweepy client (``source.client``) and its rate limits. The daily read
    budget is X's for the app, so it is split evenly between the sources.
    """
    if config.stream:  # the stream replaces polling: see `XStream`
        return []
    count = (1 if config.account else 0) + len(config.searches)
    if not count:
        return []
    total = config.daily_read_budget
    common = {
        "client": _client(timeout, bearer_token=bearer_token),
        "limits": RateLimits(),
        "brand": config.account,
        "interval": config.interval,
        "daily_read_budget": None if total is None else max(1, total // count),
        "clock": clock,
    }
    sources: list[Source] = []
    if config.account:
        sources.append(MentionsSource(account=config.account, **common))
    sources.extend(SearchSource(query=query, **common) for query in config.searches)
    return sources


@dataclass
class _Window:
    """What one fetch has read so far."""

    mentions: list[Mention] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    reads: int = 0
    newest: int | None = None

    def fetched(self, *, complete: bool, not_before: datetime | None = None) -> Fetched:
        """The fetch's result; only a ``complete`` window moves the checkpoint."""
        checkpoint = str(self.newest) if complete and self.newest is not None else None
        return Fetched(
            mentions=tuple(self.mentions),
            checkpoint=checkpoint,
            rejected=tuple(self.rejected),
            not_before=not_before,
            reads=self.reads,
        )


class _XSource:
    """A polled X timeline; subclasses say which endpoint and how to call it."""

    endpoint: str  # the rate-limit key
    min_page: int  # the smallest max_results the endpoint accepts

    def __init__(
        self,
        *,
        name: str,
        client: tweepy.Client,
        limits: RateLimits,
        brand: str | None,
        interval: float,
        daily_read_budget: int | None,
        clock: Clock,
    ) -> None:
        self.name = name
        self.client = client
        self.limits = limits
        self.brand = brand
        self.interval = interval
        self.daily_read_budget = daily_read_budget
        self.clock = clock

    def _page(self, since_id: str | None, size: int, token: str | None) -> requests.Response:
        raise NotImplementedError

    def _every(self) -> str:
        budget = self.daily_read_budget
        limit = "no read budget" if budget is None else f"budget {budget:,} posts/day"
        return f"every {self.interval:g} s, {limit}"

    def fetch(self, checkpoint: str | None, *, read_budget: int | None) -> Fetched:
        """Read the posts newer than ``checkpoint``; see the module docstring for the rules."""
        now = self.clock()
        blocked = self.limits.blocked(self.endpoint, now)
        if blocked is not None:
            return Fetched(not_before=blocked)
        window = _Window()
        since, token = checkpoint, None
        while True:
            size = MAX_PAGE if read_budget is None else read_budget - window.reads
            size = max(self.min_page, min(MAX_PAGE, size))
            try:
                response = self._page(since, size, token)
                body = _json(response)
                page = _page_of(body)
            except tweepy.TooManyRequests as exc:
                until = _reset(exc.response.headers, now)
                self.limits.block(self.endpoint, until)
                log.warning("%s: rate limited until %s", self.name, until.isoformat())
                return window.fetched(complete=False, not_before=until)
            except (*_FAILURES, _BadBody) as exc:
                if since is not None and not window.reads and _since_too_old(exc):
                    # Recent search forgets posts after 7 days; start again from the newest.
                    log.warning(
                        "%s: checkpoint %s is too old for X; starting over", self.name, since
                    )
                    since = None
                    continue
                if not window.reads:
                    raise SourceError(_reason(exc)) from None
                log.warning("%s: stopped after %d posts: %s", self.name, window.reads, _reason(exc))
                return window.fetched(complete=False)
            data, users, token = page
            window.reads += len(data)
            for item in data:
                self._add(window, item, users)
            spent = _spent(response.headers)
            not_before = _reset(response.headers, now) if spent else None
            if not_before is not None:
                self.limits.block(self.endpoint, not_before)
            if token is None or since is None:  # a first fetch reads the newest page only
                return window.fetched(complete=True, not_before=not_before)
            if read_budget is not None and window.reads >= read_budget:
                log.warning(
                    "%s: read budget reached after %d posts; older posts skipped",
                    self.name,
                    window.reads,
                )
                return window.fetched(complete=True, not_before=not_before)
            if not_before is not None:
                log.warning(
                    "%s: rate limit spent mid-window; resuming at %s", self.name, not_before
                )
                return window.fetched(complete=False, not_before=not_before)

    def _add(self, window: _Window, item: Any, users: Mapping[str, Mapping[str, Any]]) -> None:
        if isinstance(item, Mapping) and isinstance(item.get("id"), str) and item["id"].isdigit():
            window.newest = max(window.newest or 0, int(item["id"]))
        converted = mention_of(item, users, brand=self.brand)
        if isinstance(converted, Rejected):
            window.rejected.append(converted)
        else:
            window.mentions.append(converted)

    def _checked(self, call: Callable[[], requests.Response]) -> dict[str, Any]:
        """Run one check call; any failure becomes a `ConfigError` with X's reason."""
        try:
            return _json(call())
        except tweepy.Unauthorized:
            raise ConfigError("X refused the bearer token (401 Unauthorized)") from None
        except tweepy.TooManyRequests as exc:
            until = _reset(exc.response.headers, self.clock())
            raise ConfigError(f"X is rate limiting this app until {until:%H:%M} UTC") from None
        except (*_FAILURES, _BadBody) as exc:
            raise ConfigError(_reason(exc)) from None


class MentionsSource(_XSource):
    """The brand account's mentions timeline."""

    endpoint = "mentions"
    min_page = 5

    def __init__(self, *, account: str, **kwargs: Any) -> None:
        super().__init__(name=f"x:mentions:{account}", **kwargs)
        self.account = account
        self.user_id: str | None = None

    def describe(self) -> list[str]:
        """One line: whose mentions, how often, what budget."""
        return [f"mentions of @{self.account} {self._every()}"]

    def check(self) -> None:
        """Look the account up with the bearer token (and keep its id)."""
        self.user_id = _user_id(self._checked(self._lookup), self.account, ConfigError)

    def _lookup(self) -> requests.Response:
        response: requests.Response = self.client.get_user(
            username=self.account, user_fields=USER_FIELDS
        )
        return response

    def _page(self, since_id: str | None, size: int, token: str | None) -> requests.Response:
        if self.user_id is None:
            self.user_id = _user_id(_json(self._lookup()), self.account, SourceError)
        response: requests.Response = self.client.get_users_mentions(
            self.user_id,
            since_id=since_id,
            max_results=size,
            pagination_token=token,
            expansions=EXPANSIONS,
            tweet_fields=TWEET_FIELDS,
            user_fields=USER_FIELDS,
        )
        return response


class SearchSource(_XSource):
    """One recent-search query."""

    endpoint = "search"
    min_page = 10

    def __init__(self, *, query: str, **kwargs: Any) -> None:
        super().__init__(name=f"x:search:{query}", **kwargs)
        self.query = query

    def describe(self) -> list[str]:
        """One line: which query, how often, what budget."""
        return [f"search {self.query!r} {self._every()}"]

    def check(self) -> None:
        """Run the query once for its newest 10 posts, so X says whether it is valid."""
        self._checked(lambda: self._page(None, self.min_page, None))

    def _page(self, since_id: str | None, size: int, token: str | None) -> requests.Response:
        response: requests.Response = self.client.search_recent_tweets(
            self.query,
            since_id=since_id,
            max_results=size,
            next_token=token,
            expansions=EXPANSIONS,
            tweet_fields=TWEET_FIELDS,
            user_fields=USER_FIELDS,
        )
        return response


def mention_of(
    tweet: Any, users: Mapping[str, Mapping[str, Any]], *, brand: str | None
) -> Mention | Rejected:
    """One post of a v2 answer (with its expanded author) as a Mention, or why it cannot be.

    ``raw`` keeps the post and its author as a v2 answer of one post would carry them.
    """
    if not isinstance(tweet, Mapping):
        return Rejected("X sent a post that is not an object", raw=tweet)
    tweet_id = tweet.get("id")
    if not isinstance(tweet_id, str) or not tweet_id.isdigit():
        return Rejected("X sent a post without an id", raw=dict(tweet))
    author_id = tweet.get("author_id")
    user = users.get(author_id) if isinstance(author_id, str) else None
    raw = {"data": dict(tweet), "includes": {"users": [dict(user)] if user else []}}
    if user is None:
        return Rejected(f"post {tweet_id} has no author among the expanded users", raw=raw)
    note = tweet.get("note_tweet")
    text = note.get("text") if isinstance(note, Mapping) else None
    text = text if isinstance(text, str) else tweet.get("text")
    if not isinstance(text, str):
        return Rejected(f"post {tweet_id} has no text", raw=raw)
    try:
        author = _author(user)
        created_at = _time(tweet.get("created_at"))
    except (TypeError, ValueError) as exc:
        return Rejected(f"post {tweet_id}: {exc}", raw=raw)
    if created_at is None:
        return Rejected(f"post {tweet_id} has no created_at", raw=raw)
    outbound = brand is not None and (author.handle or "").casefold() == brand.casefold()
    conversation = tweet.get("conversation_id")
    return Mention(
        platform=Platform.X,
        external_id=tweet_id,
        # X escapes &, < and > in post text.
        text=html.unescape(text),
        author=author,
        created_at=created_at,
        conversation_id=conversation if isinstance(conversation, str) else None,
        in_reply_to=_replied_to(tweet.get("referenced_tweets")),
        url=f"https://x.com/{author.handle}/status/{tweet_id}",
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
        engagement=_engagement(tweet.get("public_metrics")),
        raw=raw,
    )


def _author(user: Mapping[str, Any]) -> Author:
    handle = user.get("username")
    if not isinstance(handle, str) or not handle:
        raise ValueError(f"author {user.get('id')} has no username")
    metrics = user.get("public_metrics")
    metrics = metrics if isinstance(metrics, Mapping) else {}
    name = user.get("name")
    return Author(
        handle=handle,
        display_name=name if isinstance(name, str) else None,
        platform_user_id=str(user.get("id")),
        followers=_count(metrics.get("followers_count")),
        following=_count(metrics.get("following_count")),
        posts=_count(metrics.get("tweet_count")),
        listed=_count(metrics.get("listed_count")),
        verified_type=_VERIFIED.get(str(user.get("verified_type")), VerifiedType.NONE),
        account_created=_time(user.get("created_at")),
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"time {value!r} is not a string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value} has no time zone")
    return parsed.astimezone(UTC)


def _replied_to(references: Any) -> str | None:
    if not isinstance(references, list):
        return None
    for ref in references:
        if isinstance(ref, Mapping) and ref.get("type") == "replied_to":
            ref_id = ref.get("id")
            return ref_id if isinstance(ref_id, str) else None
    return None


def _engagement(metrics: Any) -> int | None:
    if not isinstance(metrics, Mapping):
        return None
    counts = [
        _count(metrics.get(name))
        for name in ("like_count", "retweet_count", "reply_count", "quote_count")
    ]
    known = [c for c in counts if c is not None]
    return sum(known) if known else None


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except requests.JSONDecodeError:
        raise _BadBody(f"X answered {response.status_code} with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise _BadBody(f"X answered {response.status_code} with JSON that is not an object")
    return body


def _page_of(
    body: Mapping[str, Any],
) -> tuple[list[Any], dict[str, Mapping[str, Any]], str | None]:
    """A timeline page's posts, its expanded users by id, and the next page's token."""
    data = body.get("data", [])
    includes = body.get("includes", {})
    meta = body.get("meta", {})
    if not isinstance(data, list) or not isinstance(includes, Mapping):
        raise _BadBody("X answered a page whose data or includes are malformed")
    users_list = includes.get("users", [])
    users = {
        u["id"]: u
        for u in (users_list if isinstance(users_list, list) else [])
        if isinstance(u, Mapping) and isinstance(u.get("id"), str)
    }
    token = meta.get("next_token") if isinstance(meta, Mapping) else None
    return data, users, token if isinstance(token, str) and token else None


def _user_id(body: Mapping[str, Any], account: str, error: type[Exception]) -> str:
    data = body.get("data")
    user_id = data.get("id") if isinstance(data, Mapping) else None
    if not isinstance(user_id, str):
        raise error(f"X has no account @{account}")
    return user_id


def _epoch(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _spent(headers: Mapping[str, str]) -> bool:
    return any(headers.get(f"{limit}-remaining") == "0" for limit in _LIMITS)


def _reset(headers: Mapping[str, str], now: datetime) -> datetime:
    """When X accepts requests again: the latest reset of the limits that are spent."""
    spent = [
        _epoch(headers.get(f"{p}-reset")) for p in _LIMITS if headers.get(f"{p}-remaining") == "0"
    ]
    times = [t for t in spent if t is not None]
    if not times:
        fallback = _epoch(headers.get("x-rate-limit-reset"))
        times = [fallback] if fallback is not None else []
    return max(times) if times else now + WINDOW


def _reason(exc: BaseException) -> str:
    """A one-line reason for a failed call, with X's message but never a credential."""
    if isinstance(exc, tweepy.HTTPException):
        response = exc.response
        detail = "; ".join(str(m) for m in exc.api_messages)[:300]
        status = f"{response.status_code} {response.reason}".strip()
        return f"X answered {status}" + (f": {detail}" if detail else "")
    if isinstance(exc, requests.Timeout):
        return "X did not answer in time"
    if isinstance(exc, requests.RequestException):
        return f"X unreachable ({type(exc).__name__})"
    return str(exc)


class XReplies:
    """Posts agents' replies on X as the brand account (OAuth 1.0a user context).

    A reply whose post went through but whose answer was lost (a timeout, a dropped
    connection) is retried by the outbox, and X refuses the retry as duplicate content. So a
    duplicate-content refusal on a retry counts as delivered: the earlier attempt posted it.
    On a first attempt it is a rejection: the brand posted the same text recently, and the
    agent should reword it. The cost of this choice: if a first attempt failed *without*
    posting and the same text was posted elsewhere meanwhile, the reply is marked delivered
    though it was not.
    """

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        access_token: str,
        access_token_secret: str,
        timeout: float = TIMEOUT,
        clock: Clock = now_utc,
        posted: Callable[[int, str, str], None] | None = None,
    ) -> None:
        self.client = _client(
            timeout,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
        )
        self.clock = clock
        # Told (reply interaction id, post id, link) of each post made, so that the stored
        # reply takes the post's id and a search that reads the post back finds it stored.
        self.posted = posted

    def deliver(self, effect: Effect) -> None:
        """Post the reply under the customer's post; raise `RetryLater` / `DeliveryRejected`."""
        payload = effect.payload
        if payload.get("platform") != Platform.X.value:
            raise DeliveryRejected(f"XReplies cannot reply on {payload.get('platform')!r}")
        text, in_reply_to = payload.get("text"), payload.get("in_reply_to")
        if not isinstance(text, str) or not text or not isinstance(in_reply_to, str):
            raise DeliveryRejected("the reply has no text or no post to reply to")
        try:
            response = self.client.create_tweet(
                text=text, in_reply_to_tweet_id=in_reply_to, user_auth=True
            )
        except tweepy.TooManyRequests as exc:
            now = self.clock()
            wait = (_reset(exc.response.headers, now) - now).total_seconds()
            raise RetryLater("X rate limit reached", retry_after=max(1.0, wait)) from None
        except tweepy.TwitterServerError as exc:
            raise RetryLater(_reason(exc)) from None
        except tweepy.Forbidden as exc:
            if effect.attempts > 0 and _duplicate(exc):
                log.info("effect %d: X already has this reply (an earlier attempt)", effect.id)
                return
            raise DeliveryRejected(f"X refused the reply: {_reason(exc)}") from None
        except tweepy.HTTPException as exc:  # 400, 401, 404: retrying will not help
            raise DeliveryRejected(f"X refused the reply: {_reason(exc)}") from None
        except requests.RequestException as exc:
            raise RetryLater(_reason(exc)) from None
        interaction_id = payload.get("interaction_id")
        if self.posted is None or not isinstance(interaction_id, int):
            return
        try:
            post_id = str(response.json()["data"]["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("effect %d: X posted the reply but its answer has no post id", effect.id)
            return
        self.posted(interaction_id, post_id, f"https://x.com/i/web/status/{post_id}")


def _since_too_old(exc: BaseException) -> bool:
    return isinstance(exc, tweepy.BadRequest) and "since_id" in str(exc)


def _duplicate(exc: tweepy.HTTPException) -> bool:
    return any("duplicate content" in str(m) for m in exc.api_messages)


# The filtered stream.

STREAM_PATH = "/2/tweets/search/stream"
# Earful's stream rules carry tags with this prefix; rules without it belong to someone else.
RULE_TAG = "earful:"


@dataclass(frozen=True)
class StreamWaits:
    """X's reconnect rules for the filtered stream, in seconds (tests shrink them).

    Network errors and closed streams back off linearly; 5xx exponentially from 5 s to 320 s;
    429 exponentially from a minute, and never before X's reset time. A connection that stayed
    up ``stable`` seconds starts the linear backoff over; any 200 restarts the others.
    """

    network_step: float = 0.25
    network_max: float = 16.0
    http_start: float = 5.0
    http_max: float = 320.0
    rate_start: float = 60.0
    rate_max: float = 960.0
    stable: float = 60.0


def stream_rules(config: XConfig) -> dict[str, str]:
    """The stream rules ``config`` needs, by tag: ``@account`` and each search query."""
    rules = {f"{RULE_TAG}mentions:{config.account}": f"@{config.account}"} if config.account else {}
    rules.update({f"{RULE_TAG}search:{query}": query for query in config.searches})
    return rules


@dataclass
class _Ending:
    """How one connection ended: ``kind`` is network, closed, http or error."""

    kind: str
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status} {self.detail}".strip() if self.kind == "http" else self.kind


class _StreamClient(tweepy.StreamingClient):  # type: ignore[misc]
    """tweepy's StreamingClient, ended at the first disconnect so that `XStream` picks the wait.

    tweepy's own loop reconnects at once after a stream X closed cleanly (a storm if X keeps
    closing it), waits a flat minute on 429 whatever X's reset time, and retries refusals
    (401/403) forever. Every ``on_*`` hook below stops its loop instead (tweepy then skips its
    sleep), and `XStream` waits by X's rules before calling ``filter`` again.
    """

    def __init__(self, owner: XStream, bearer_token: str, timeout: float) -> None:
        super().__init__(bearer_token, return_type=requests.Response, wait_on_rate_limit=False)
        self.owner = owner
        self.session = _Session(timeout)  # the stream's own call passes X's 21 s read timeout
        self.session.hooks["response"].append(self._seen)
        self.response: requests.Response | None = None

    def _seen(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        if urlsplit(response.url).path == STREAM_PATH:
            self.response = response
            if self.owner.stopping.is_set():
                self.cut()

    def cut(self) -> None:
        """Stop reading now: shut the socket of the open stream, waking a blocked read."""
        self.running = False
        response = self.response
        if response is not None:
            with contextlib.suppress(ValueError, RuntimeError, OSError, AttributeError):
                response.raw.shutdown()

    def _end(self, ending: _Ending) -> None:
        self.owner.ending = self.owner.ending or ending
        self.running = False

    def on_connect(self) -> None:
        if self.owner.stopping.is_set():
            self.running = False
            return
        self.owner.connected()

    def on_data(self, raw_data: bytes) -> None:
        self.owner.line(raw_data)

    def on_keep_alive(self) -> None:
        return

    def on_request_error(self, status_code: int) -> None:
        response = self.response
        headers = dict(response.headers) if response is not None else {}
        detail = ""
        if response is not None:
            with contextlib.suppress(ValueError, requests.RequestException):
                body = response.json()
                detail = str(body.get("title", "")) if isinstance(body, dict) else ""
        self._end(_Ending("http", status_code, headers, detail[:200]))

    def on_connection_error(self) -> None:
        self._end(_Ending("network"))

    def on_closed(self, response: requests.Response) -> None:
        self._end(_Ending("closed"))

    def on_exception(self, exception: Exception) -> None:
        self._end(_Ending("error", detail=type(exception).__name__))

    def on_disconnect(self) -> None:
        return


class XStream:
    """The brand's mentions and the searches through X's filtered stream, a pushed source.

    ``start`` syncs the rules (adds the missing ones, deletes stale ones tagged ``earful:``,
    leaves the rest) and reads the stream in a thread of its own. Each post is stored through
    ``store`` before anything else happens to it; a malformed one is stored as a reject. After
    every disconnect the stream reconnects by X's rules (`StreamWaits`), and each connection
    starts with one poll of the mentions timeline and of each search since the newest post
    stored (X's own recovery and backfill need a higher access level).
    """

    def __init__(
        self,
        config: XConfig,
        *,
        bearer_token: str,
        store: Callable[[str, Fetched], object],
        checkpoint: Callable[[str], str | None],
        timeout: float = TIMEOUT,
        waits: StreamWaits | None = None,
        clock: Clock = now_utc,
    ) -> None:
        self.name = f"x:stream:{config.account or 'searches'}"
        self.brand = config.account
        self.rules = stream_rules(config)
        self.store = store
        self.checkpoint = checkpoint
        self.waits = waits or StreamWaits()
        self.clock = clock
        self.client = _StreamClient(self, bearer_token, timeout)
        polled = x_sources(
            config.model_copy(update={"stream": False}),
            bearer_token=bearer_token,
            timeout=timeout,
            clock=clock,
        )
        self.recovery: list[_XSource] = [s for s in polled if isinstance(s, _XSource)]
        self.stopping = threading.Event()
        self.ending: _Ending | None = None
        self.thread: threading.Thread | None = None
        self._ours: set[str] = set()  # ids of the rules that match what Earful watches
        self._newest: int | None = None
        self._failures = {"network": 0, "http": 0, "rate": 0}
        self._up_since: float | None = None
        self._synced = False

    def describe(self) -> list[str]:
        """One line per rule."""
        return [f"filtered stream rule {value!r}" for value in self.rules.values()]

    # Starting and stopping.

    def start(self) -> None:
        """Sync the rules, then read the stream in a thread; `ConfigError` if X refuses them.

        If X is down, unreachable or rate limiting when Earful starts, the stream's thread
        keeps trying to sync (with the waits of a failed connection) and connects after it, so
        the rest of Earful starts anyway.
        """
        try:
            self.sync_rules()
            self._synced = True
        except _RulesUnavailable as exc:
            log.warning(
                "%s: could not sync the stream rules (%s); retrying before connecting",
                self.name,
                exc.ending,
            )
            self._synced = False
        newest = self.checkpoint(self.name)
        self._newest = int(newest) if newest and newest.isdigit() else None
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Close the stream and wait for its thread to end."""
        self.stopping.set()
        self.client.cut()
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                log.warning("%s: the stream thread did not end in %g s", self.name, timeout)

    # Rules.

    def sync_rules(self) -> None:
        """Make the stream's rules tagged ``earful:`` exactly ``self.rules``."""
        body = self._call(self.client.get_rules)
        existing = [r for r in body.get("data") or [] if isinstance(r, Mapping)]
        wanted = {(tag, value) for tag, value in self.rules.items()}
        stale = [
            str(r.get("id"))
            for r in existing
            if str(r.get("tag") or "").startswith(RULE_TAG)
            and (r.get("tag"), r.get("value")) not in wanted
        ]
        kept = [r for r in existing if str(r.get("id")) not in stale]
        have = {(r.get("tag"), r.get("value")) for r in kept}
        values = set(self.rules.values())
        self._ours = {str(r.get("id")) for r in kept if r.get("value") in values}
        if stale:
            self._call(lambda: self.client.delete_rules(stale))
        missing = [
            tweepy.StreamRule(value=value, tag=tag)
            for tag, value in self.rules.items()
            if (tag, value) not in have
        ]
        if missing:
            added = self._call(lambda: self.client.add_rules(missing))
            self._ours |= {
                str(r.get("id")) for r in added.get("data") or [] if isinstance(r, Mapping)
            }
            for error in added.get("errors") or []:
                if not isinstance(error, Mapping):
                    continue
                if "duplicate" in str(error.get("type", "")):  # same value, someone else's tag
                    self._ours.add(str(error.get("id")))
                    continue
                reason = error.get("details") or error.get("title") or "refused"
                raise ConfigError(f"X refused the stream rule {error.get('value')!r}: {reason}")
        log.info("%s: rules synced (%d added, %d deleted)", self.name, len(missing), len(stale))

    def _call(self, call: Callable[[], requests.Response]) -> dict[str, Any]:
        """One rules call: `ConfigError` if X refuses it, `_RulesUnavailable` if X is down,
        unreachable or rate limiting (worth another try later)."""
        try:
            return _json(call())
        except tweepy.Unauthorized:
            raise ConfigError("X refused the bearer token (401 Unauthorized)") from None
        except tweepy.Forbidden as exc:
            raise ConfigError(
                f"{_reason(exc)} (does this app's access level include the filtered stream?)"
            ) from None
        except tweepy.HTTPException as exc:
            response = exc.response
            if response.status_code < 500 and response.status_code != 429:
                raise ConfigError(f"stream rules: {_reason(exc)}") from None
            ending = _Ending("http", response.status_code, response.headers, response.reason or "")
            raise _RulesUnavailable(ending) from None
        except requests.RequestException as exc:
            raise _RulesUnavailable(_Ending("network", detail=_reason(exc))) from None
        except _BadBody as exc:
            raise _RulesUnavailable(_Ending("error", detail=_reason(exc))) from None

    # Reading (in the stream's thread).

    def _run(self) -> None:
        while not self._synced and not self.stopping.is_set():
            try:
                self.sync_rules()
                self._synced = True
            except ConfigError as exc:
                log.error("%s: %s; not connecting", self.name, exc)  # noqa: TRY400
                return
            except _RulesUnavailable as exc:
                wait = self._wait(exc.ending, doing="syncing the rules failed")
                if wait is None:
                    return
                self.stopping.wait(wait)
        while not self.stopping.is_set():
            self.ending = None
            self._up_since = None
            self.client.filter(
                expansions=EXPANSIONS, tweet_fields=TWEET_FIELDS, user_fields=USER_FIELDS
            )
            if self.stopping.is_set():
                break
            wait = self._wait(self.ending or _Ending("closed"))
            if wait is None:
                return
            self.stopping.wait(wait)
        log.info("%s: stream closed", self.name)

    def _wait(self, ending: _Ending, doing: str = "stream ended") -> float | None:
        """Seconds to wait before reconnecting after ``ending``; None: do not reconnect."""
        up = None if self._up_since is None else time.monotonic() - self._up_since
        if up is not None and up >= self.waits.stable:
            self._failures["network"] = 0
        waits = self.waits
        if ending.kind == "http" and ending.status in (400, 401, 403, 404):
            log.error(
                "%s: X refused the stream (%d %s); not reconnecting",
                self.name,
                ending.status,
                ending.detail,
            )
            return None
        if ending.kind == "http" and ending.status == 429:
            self._failures["rate"] += 1
            wait = min(waits.rate_max, waits.rate_start * 2.0 ** (self._failures["rate"] - 1))
            if any(f"{limit}-reset" in ending.headers for limit in _LIMITS):
                now = self.clock()
                wait = max(wait, (_reset(ending.headers, now) - now).total_seconds())
        elif ending.kind in ("http", "error"):
            self._failures["http"] += 1
            wait = min(waits.http_max, waits.http_start * 2.0 ** (self._failures["http"] - 1))
        else:  # a network error, or X closed the stream
            self._failures["network"] += 1
            wait = min(waits.network_max, waits.network_step * self._failures["network"])
        log.warning("%s: %s (%s); trying again in %.2f s", self.name, doing, ending, wait)
        return wait

    def connected(self) -> None:
        """A connection is open: reset the HTTP backoff and recover what was missed."""
        self._up_since = time.monotonic()
        self._failures["http"] = self._failures["rate"] = 0
        log.info("%s: stream connected", self.name)
        if self._newest is not None:
            self._recover(str(self._newest))

    def _recover(self, since: str) -> None:
        """One poll of the mentions and of each search since ``since``, stored as they come."""
        for source in self.recovery:
            try:
                fetched = source.fetch(since, read_budget=source.daily_read_budget)
            except SourceError as exc:
                log.warning(
                    "%s: could not recover missed posts from %s: %s", self.name, source.name, exc
                )
                continue
            if fetched.checkpoint is None and fetched.reads:
                log.warning("%s: recovery from %s stopped part way", self.name, source.name)
            ids = [int(m.external_id) for m in fetched.mentions]
            if not fetched.reads:
                continue
            self._store(fetched.mentions, fetched.rejected, ids, reads=fetched.reads)
            log.info("%s: recovered %d post(s) from %s", self.name, len(ids), source.name)

    def line(self, raw: bytes) -> None:
        """One line of the stream: a post (stored), or X's notice of an error (logged)."""
        try:
            body = json.loads(raw)
        except ValueError:
            text = raw.decode("utf-8", "replace")
            self._store((), (Rejected("X sent a stream line that is not JSON", raw=text),), [])
            return
        if not isinstance(body, dict):
            self._store((), (Rejected("X sent a stream line that is not an object", raw=body),), [])
            return
        for error in body.get("errors") or []:
            if isinstance(error, Mapping) and "data" not in body:
                log.warning(
                    "%s: X says: %s %s",
                    self.name,
                    error.get("title", ""),
                    error.get("disconnect_type", ""),
                )
        if "data" not in body:
            return
        if not self._matches_ours(body.get("matching_rules")):
            return
        includes = body.get("includes")
        listed = includes.get("users") if isinstance(includes, Mapping) else None
        users = {
            u["id"]: u
            for u in (listed if isinstance(listed, list) else [])
            if isinstance(u, Mapping) and isinstance(u.get("id"), str)
        }
        converted = mention_of(body["data"], users, brand=self.brand)
        if isinstance(converted, Rejected):
            self._store((), (converted,), [], reads=1)
        else:
            self._store((converted,), (), [int(converted.external_id)], reads=1)

    def _matches_ours(self, matching: Any) -> bool:
        if not isinstance(matching, list) or not self._ours:
            return True
        return any(isinstance(r, Mapping) and str(r.get("id")) in self._ours for r in matching)

    def _store(
        self,
        mentions: tuple[Mention, ...],
        rejected: tuple[Rejected, ...],
        ids: list[int],
        *,
        reads: int = 0,
    ) -> None:
        newest = max([*ids, self._newest or 0])
        moved = newest != (self._newest or 0)
        self.store(
            self.name,
            Fetched(
                mentions=mentions,
                rejected=rejected,
                checkpoint=str(newest) if moved else None,
                reads=reads,
            ),
        )
        if moved:
            self._newest = newest
