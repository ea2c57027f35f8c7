"""A local stand-in of the X API v2, for driving the real tweepy client in tests.

It serves the endpoints Earful calls (user by username, a user's mentions, recent search,
creating a post, the filtered stream and its rules) from fixture users and tweets, in X's wire format: ``data``,
``includes.users`` / ``includes.tweets`` (only what ``expansions`` asks for), ``meta`` with
``newest_id`` / ``oldest_id`` / ``result_count`` / ``next_token``, and only the fields that
``tweet.fields`` / ``user.fields`` request. It checks the bearer token on reads and the
OAuth 1.0a signature on posts, records every request, and answers queued failures first
(429 with reset headers, 5xx, slow answers, bodies that are not JSON).

The filtered stream is a chunked answer of newline-delimited JSON: tests `push` posts (sent
to the open connection if a rule matches, with ``matching_rules``) or raw lines, a keep-alive
``\r\n`` goes out every ``heartbeat`` seconds, and `drop_stream` ends the connection cleanly
or cuts it. Only the newest connection is served, as X allows one per app.

tweepy has no base URL option, so `XStandin.route` mounts a `requests` transport adapter on a
client's session that sends its api.twitter.com (and api.x.com) requests here.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from oauthlib.common import Request as OAuthRequest  # type: ignore[import-untyped]
from oauthlib.oauth1.rfc5849 import signature, utils  # type: ignore[import-untyped]
from requests.adapters import HTTPAdapter

FIXTURES = Path(__file__).parent / "fixtures" / "x"
API_HOSTS = ("https://api.twitter.com", "https://api.x.com")
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_USER_FIELDS = ("id", "name", "username")
STREAM = "/2/tweets/search/stream"
RULES = "/2/tweets/search/stream/rules"
_CLEAN, _CUT = object(), object()


def fixture(name: str) -> Any:
    """A JSON fixture of tests/fixtures/x."""
    return json.loads((FIXTURES / name).read_text())


@dataclass(frozen=True)
class Answer:
    """A queued answer: a status, body and headers, optionally after a delay.

    ``process``: handle the request as usual (e.g. create the post) but answer only after
    ``delay`` seconds, so a client that times out never hears that it worked.
    """

    status: int = 200
    body: Any = None  # a dict/list (sent as JSON) or bytes (sent as is)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    process: bool = False


def rate_limited(reset: int, **extra: str) -> Answer:
    """A 429 whose window resets at epoch second ``reset``."""
    headers = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0"}
    headers["x-rate-limit-reset"] = str(reset)
    return Answer(429, fixture("rate_limited.json"), {**headers, **extra})


def unavailable() -> Answer:
    """A 503 from X's front end."""
    return Answer(503, fixture("service_unavailable.json"))


@dataclass
class _Queued:
    method: str
    prefix: str
    answer: Answer
    after: int  # matching requests to serve as usual first
    exact: bool = False  # match the path exactly, not as a prefix


@dataclass(frozen=True)
class Credentials:
    """The app's bearer token and the brand account's OAuth 1.0a keys that X accepts."""

    bearer_token: str
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str


CREDENTIALS = Credentials(
    bearer_token="test-bearer-token-3f9a",
    consumer_key="test-consumer-key-77c1",
    consumer_secret="test-consumer-secret-0b2e",
    access_token="test-access-token-5d44",
    access_token_secret="test-access-secret-9e08",
)
# The user-context keys as Earful reads them from the environment (`load_settings`).
REPLY_ENVIRON = {
    "EARFUL_X_CONSUMER_KEY": CREDENTIALS.consumer_key,
    "EARFUL_X_CONSUMER_SECRET": CREDENTIALS.consumer_secret,
    "EARFUL_X_ACCESS_TOKEN": CREDENTIALS.access_token,
    "EARFUL_X_ACCESS_TOKEN_SECRET": CREDENTIALS.access_token_secret,
}


@dataclass(frozen=True)
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival


class XStandin:
    """The stand-in server; use as a context manager, which starts and stops it."""

    def __init__(
        self,
        *,
        credentials: Credentials = CREDENTIALS,
        poster: str = "acme",
        page_size: int = 100,
    ) -> None:
        self.credentials = credentials
        self.users: dict[str, dict[str, Any]] = {u["id"]: u for u in fixture("users.json")}
        self.tweets: dict[str, dict[str, Any]] = {t["id"]: t for t in fixture("tweets.json")}
        self.poster = poster  # the account that user-context posts are made as
        # X may return fewer posts than max_results per page; this caps a page.
        self.page_size = page_size
        self.requests: list[Recorded] = []
        self.created: list[dict[str, Any]] = []
        self._queued: list[_Queued] = []
        self._lock = threading.Lock()
        self._next_id = 1869000000000000000
        # The filtered stream: its rules by id, what tests push, and the live connection.
        self.rules: dict[str, dict[str, str]] = {}
        self._next_rule = 1870000000000000000
        self.heartbeat = 0.05
        self._pushed: queue.Queue[Any] = queue.Queue()
        self._live = 0
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The stand-in's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> XStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # What tests set up and read.

    def route(self, session: requests.Session) -> None:
        """Send the session's X API requests to this stand-in instead of X."""
        route_to(session, self.url)

    def queue(
        self, method: str, path_prefix: str, *answers: Answer, after: int = 0, exact: bool = False
    ) -> None:
        """Answer the requests matching ``method`` and ``path_prefix`` with ``answers``.

        ``after``: serve that many matching requests as usual first. ``exact``: match only
        that path (the stream, not its rules).
        """
        with self._lock:
            self._queued.extend(
                _Queued(method, path_prefix, answer, after, exact) for answer in answers
            )

    def add_rule(self, value: str, tag: str | None = None) -> str:
        """Add a stream rule as if another tool had; return its id."""
        with self._lock:
            self._next_rule += 1
            rule_id = str(self._next_rule)
        self.rules[rule_id] = {"id": rule_id, "value": value, **({"tag": tag} if tag else {})}
        return rule_id

    def push(self, item: dict[str, Any] | bytes) -> None:
        """Send a post (kept as X would hold it) or a raw line down the open stream."""
        if isinstance(item, dict):
            self.add_tweet(item)
        self._pushed.put(item)

    def drop_stream(self, *, clean: bool = True) -> None:
        """End the open stream: ``clean`` ends the chunked answer, else the socket is cut."""
        self._pushed.put(_CLEAN if clean else _CUT)

    def stream_connections(self) -> list[Recorded]:
        """The connection attempts to the stream, in order."""
        return [r for r in self.requests if r.path == STREAM]

    def add_tweet(self, tweet: dict[str, Any]) -> None:
        """Add a post as X would hold it (a malformed one too: it is served as given)."""
        self.tweets[str(tweet.get("id", f"bad-{len(self.tweets)}"))] = tweet

    def mention(self, n: int, *, author: str = "1440000000000000004", text: str = "") -> str:
        """Add a plain post mentioning @acme with id 1862…n; return its id."""
        tweet_id = str(1862000000000000000 + n)
        self.add_tweet(
            {
                "id": tweet_id,
                "edit_history_tweet_ids": [tweet_id],
                "text": text or f"@acme question number {n} about my bill",
                "author_id": author,
                "created_at": "2026-11-22T09:00:00.000Z",
                "conversation_id": tweet_id,
                "lang": "en",
                "public_metrics": {
                    "retweet_count": 0,
                    "reply_count": 0,
                    "like_count": 0,
                    "quote_count": 0,
                    "bookmark_count": 0,
                    "impression_count": 1,
                },
                "entities": {
                    "mentions": [
                        {"start": 0, "end": 5, "username": "acme", "id": "1410000000000000001"}
                    ]
                },
            }
        )
        return tweet_id

    def calls(self, path_prefix: str, method: str = "GET") -> list[Recorded]:
        """The requests received for ``path_prefix``."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # Serving.

    def _take(self, method: str, path: str) -> Answer | None:
        with self._lock:
            for queued in self._queued:
                matches = path == queued.prefix if queued.exact else path.startswith(queued.prefix)
                if queued.method == method and matches:
                    if queued.after:
                        queued.after -= 1
                        return None
                    self._queued.remove(queued)
                    return queued.answer
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # keep the test output clean

            def do_GET(self) -> None:
                standin._serve(self, "GET")

            def do_POST(self) -> None:
                standin._serve(self, "POST")

        return Handler

    def _serve(self, http: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(http.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k: v for k, v in http.headers.items()}
        with self._lock:
            self.requests.append(
                Recorded(method, parts.path, query, headers, body, time.monotonic())
            )
        answer = self._take(method, parts.path)
        if answer is not None and not answer.process:
            time.sleep(answer.delay)
            self._send(http, answer.status, answer.body, answer.headers)
            return
        bearer = headers.get("Authorization") == f"Bearer {self.credentials.bearer_token}"
        if answer is None and method == "GET" and parts.path == STREAM and bearer:
            self._stream(http, query)
            return
        status, payload = self._answer(method, parts.path, parts.query, query, headers, body)
        if answer is not None:  # processed, answered late
            time.sleep(answer.delay)
        self._send(http, status, payload, {})

    @staticmethod
    def _send(
        http: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            http.send_response(status)
            kind = "application/problem+json" if status >= 400 else "application/json"
            http.send_header("Content-Type", kind if not isinstance(body, bytes) else "text/html")
            http.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                http.send_header(name, value)
            http.end_headers()
            http.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up waiting

    def _answer(
        self,
        method: str,
        path: str,
        raw_query: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
    ) -> tuple[int, Any]:
        segments = path.strip("/").split("/")
        if method == "POST" and path == "/2/tweets":
            if not self._signed(path, raw_query, headers):
                return 401, fixture("unauthorized.json")
            return self._create(body)
        if headers.get("Authorization") != f"Bearer {self.credentials.bearer_token}":
            return 401, fixture("unauthorized.json")
        if segments[:3] == ["2", "users", "by"] and len(segments) == 5:
            return self._user(segments[4], query)
        if segments[:2] == ["2", "users"] and len(segments) == 4 and segments[3] == "mentions":
            user = self.users.get(segments[2])
            return self._timeline(query, lambda t: _mentions(t, user), minimum=5)
        if path == RULES:
            return self._rules(method, body)
        if path == "/2/tweets/search/recent":
            return self._timeline(query, lambda t: _matches(t, query.get("query", "")), minimum=10)
        return 404, {"title": "Not Found Error", "detail": f"no route {path}", "status": 404}

    def _signed(self, path: str, raw_query: str, headers: dict[str, str]) -> bool:
        """Whether the OAuth 1.0a header is signed with the test app's and user's secrets."""
        header = headers.get("Authorization", "")
        if not header.startswith("OAuth "):
            return False
        params = dict(utils.parse_authorization_header(header))
        if params.get("oauth_consumer_key") != self.credentials.consumer_key:
            return False
        if params.get("oauth_token") != self.credentials.access_token:
            return False
        request = OAuthRequest(f"https://api.twitter.com{path}", http_method="POST")
        request.params = signature.collect_parameters(
            uri_query=raw_query, headers={"Authorization": header}, exclude_oauth_signature=True
        )
        request.signature = utils.unescape(params.get("oauth_signature", ""))
        return bool(
            signature.verify_hmac_sha1(
                request, self.credentials.consumer_secret, self.credentials.access_token_secret
            )
        )

    def _user(self, username: str, query: dict[str, str]) -> tuple[int, Any]:
        for user in self.users.values():
            if user["username"].lower() == username.lower():
                return 200, {"data": _fields(user, query.get("user.fields"), DEFAULT_USER_FIELDS)}
        return 200, json.loads(
            json.dumps(fixture("user_not_found.json")).replace("{username}", username)
        )

    def _timeline(self, query: dict[str, str], keep: Any, *, minimum: int) -> tuple[int, Any]:
        size = int(query.get("max_results", "10"))
        if not minimum <= size <= 100:
            return 400, {
                "errors": [
                    {
                        "parameters": {"max_results": [str(size)]},
                        "message": f"The `max_results` query parameter value [{size}] is not between {minimum} and 100",
                    }
                ],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            }
        since = int(query["since_id"]) if "since_id" in query else -1
        window = sorted(
            (t for t in self.tweets.values() if keep(t) and (_id(t) > since or "id" not in t)),
            key=_id,
            reverse=True,
        )
        token = query.get("next_token") or query.get("pagination_token")
        start = int(token.removeprefix("7140dibdnow9c7btw4"), 16) if token else 0
        page = window[start : start + min(size, self.page_size)]
        if not page:
            return 200, {"meta": {"result_count": 0}}
        expansions = set(filter(None, query.get("expansions", "").split(",")))
        fields = query.get("tweet.fields")
        result: dict[str, Any] = {
            "data": [_fields(t, fields, DEFAULT_TWEET_FIELDS) for t in page],
            "meta": {
                "newest_id": str(page[0].get("id")),
                "oldest_id": str(page[-1].get("id")),
                "result_count": len(page),
            },
        }
        end = start + len(page)
        if end < len(window):
            result["meta"]["next_token"] = f"7140dibdnow9c7btw4{end:x}"
        includes: dict[str, list[Any]] = {}
        if "author_id" in expansions:
            authors = dict.fromkeys(t.get("author_id") for t in page)
            users = [self.users[a] for a in authors if a in self.users]
            includes["users"] = [
                _fields(u, query.get("user.fields"), DEFAULT_USER_FIELDS) for u in users
            ]
        if "referenced_tweets.id" in expansions:
            refs = [r["id"] for t in page for r in t.get("referenced_tweets", [])]
            included = [self.tweets[r] for r in dict.fromkeys(refs) if r in self.tweets]
            if included:
                includes["tweets"] = [_fields(t, fields, DEFAULT_TWEET_FIELDS) for t in included]
        if includes:
            result["includes"] = includes
        return 200, result

    def _rules(self, method: str, body: Any) -> tuple[int, Any]:
        sent = {"sent": "2026-11-22T09:00:00.000Z"}
        if method == "GET":
            rules = list(self.rules.values())
            meta = {**sent, "result_count": len(rules)}
            return 200, ({"data": rules, "meta": meta} if rules else {"meta": meta})
        if isinstance(body, dict) and "delete" in body:
            ids = [i for i in body["delete"].get("ids", []) if i in self.rules]
            for rule_id in ids:
                del self.rules[rule_id]
            summary = {"deleted": len(ids), "not_deleted": len(body["delete"]["ids"]) - len(ids)}
            return 200, {"meta": {**sent, "summary": summary}}
        added, errors = [], []
        for rule in body.get("add", []) if isinstance(body, dict) else []:
            same = next((r for r in self.rules.values() if r["value"] == rule["value"]), None)
            if same is not None:
                errors.append(
                    {
                        "value": rule["value"],
                        "id": same["id"],
                        "title": "DuplicateRule",
                        "type": "https://api.twitter.com/2/problems/duplicate-rules",
                    }
                )
                continue
            added.append(self.rules[self.add_rule(rule["value"], rule.get("tag"))])
        summary = {
            "created": len(added),
            "not_created": len(errors),
            "valid": len(added),
            "invalid": len(errors),
        }
        answer: dict[str, Any] = {"meta": {**sent, "summary": summary}}
        if added:
            answer["data"] = added
        if errors:
            answer["errors"] = errors
        return 201, answer

    def _stream(self, http: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        """Serve the filtered stream until it is dropped, replaced or the stand-in stops."""
        with self._lock:
            self._live += 1
            mine = self._live
        try:
            http.send_response(200)
            http.send_header("Content-Type", "application/json; charset=utf-8")
            http.send_header("Transfer-Encoding", "chunked")
            http.end_headers()
            while not self._closing.is_set() and self._live == mine:
                try:
                    item = self._pushed.get(timeout=self.heartbeat)
                except queue.Empty:
                    _chunk(http, b"\r\n")  # keep-alive
                    continue
                if self._live != mine:  # a newer connection took over: it gets the item
                    self._pushed.put(item)
                    break
                if item is _CLEAN:
                    http.wfile.write(b"0\r\n\r\n")
                    break
                if item is _CUT:
                    http.connection.shutdown(socket.SHUT_RDWR)
                    break
                line = item if isinstance(item, bytes) else self._streamed(item, query)
                if line is not None:
                    _chunk(http, line + b"\r\n")
        except OSError:
            pass  # the client went away
        http.close_connection = True

    def _streamed(self, tweet: dict[str, Any], query: dict[str, str]) -> bytes | None:
        """A post as the stream sends it, or None when no rule matches it."""
        matching = []
        for rule in self.rules.values():
            value = rule["value"]
            account = next((u for u in self.users.values() if "@" + u["username"] == value), None)
            if _mentions(tweet, account) if value.startswith("@") else _matches(tweet, value):
                matching.append({"id": rule["id"], "tag": rule.get("tag", "")})
        if not matching:
            return None
        fields = query.get("tweet.fields")
        body: dict[str, Any] = {
            "data": _fields(tweet, fields, DEFAULT_TWEET_FIELDS),
            "matching_rules": matching,
        }
        author = self.users.get(str(tweet.get("author_id")))
        if author is not None and "author_id" in query.get("expansions", ""):
            user = _fields(author, query.get("user.fields"), DEFAULT_USER_FIELDS)
            body["includes"] = {"users": [user]}
        return json.dumps(body).encode()

    def _create(self, body: Any) -> tuple[int, Any]:
        text = body.get("text", "") if isinstance(body, dict) else ""
        poster = next(u for u in self.users.values() if u["username"] == self.poster)
        if any(t["text"] == text for t in self.created):
            return 403, fixture("duplicate_content.json")
        with self._lock:
            self._next_id += 1
            tweet_id = str(self._next_id)
        reply = body.get("reply", {}) if isinstance(body, dict) else {}
        replied_to = reply.get("in_reply_to_tweet_id")
        tweet = {
            "id": tweet_id,
            "edit_history_tweet_ids": [tweet_id],
            "text": text,
            "author_id": poster["id"],
            "in_reply_to_tweet_id": replied_to,
        }
        self.created.append(tweet)
        # As X holds it from now on: searches and timelines find it.
        parent = self.tweets.get(str(replied_to), {})
        self.tweets[tweet_id] = {
            "id": tweet_id,
            "edit_history_tweet_ids": [tweet_id],
            "text": text,
            "author_id": poster["id"],
            "created_at": "2026-11-22T09:30:00.000Z",
            "conversation_id": parent.get("conversation_id", tweet_id),
            "lang": "en",
            **(
                {"referenced_tweets": [{"type": "replied_to", "id": replied_to}]}
                if replied_to
                else {}
            ),
        }
        return 201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}}


def _chunk(http: BaseHTTPRequestHandler, data: bytes) -> None:
    http.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    http.wfile.flush()


def route_to(session: requests.Session, url: str) -> None:
    """Send a session's requests for X's API hosts to the stand-in at ``url``."""
    adapter = _Redirect(url)
    for host in API_HOSTS:
        session.mount(host + "/", adapter)


class _Redirect(HTTPAdapter):
    """Sends requests for X's API hosts to the stand-in, over real HTTP."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = request.url or ""
        for host in API_HOSTS:
            if url.startswith(host):
                request.url = self.base + url[len(host) :]
        return super().send(request, *args, **kwargs)


def _id(tweet: dict[str, Any]) -> int:
    try:
        return int(tweet.get("id", 0))
    except (TypeError, ValueError):
        return 0


def _fields(
    item: dict[str, Any], requested: str | None, default: tuple[str, ...]
) -> dict[str, Any]:
    wanted = set(default) | set(filter(None, (requested or "").split(",")))
    return {k: v for k, v in item.items() if k in wanted or k not in _KNOWN_FIELDS}


# Fields X returns only when asked; anything else in a fixture (a malformed post's oddities)
# is served as it is.
_KNOWN_FIELDS = frozenset(
    {
        "author_id",
        "conversation_id",
        "created_at",
        "entities",
        "in_reply_to_user_id",
        "lang",
        "note_tweet",
        "public_metrics",
        "referenced_tweets",
        "description",
        "verified",
        "verified_type",
        "protected",
    }
)


def _mentions(tweet: dict[str, Any], user: dict[str, Any] | None) -> bool:
    if user is None:
        return False
    entities = tweet.get("entities")
    mentioned = entities.get("mentions", []) if isinstance(entities, dict) else []
    return any(m.get("username", "").lower() == user["username"].lower() for m in mentioned)


def _matches(tweet: dict[str, Any], query: str) -> bool:
    terms = [t.strip('"').lower() for t in query.split() if ":" not in t and not t.startswith("-")]
    text = str(tweet.get("text", "")).lower()
    return bool(terms) and all(term in text for term in terms)
