"""Feeds: real feedparser and urllib against a local feed host on port 0."""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from poll_child import kill_after_fetch, poll_in_child
from sqlalchemy import select

from bot.errors import ConfigError, SourceError
from bot.models import Platform
from bot.polling import Intake, Poller
from bot.sources import FeedConfig
from handlers.feeds import FeedSource, feed_sources
from storage.database import Database
from storage.schema import InteractionRow, SourceReject

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
RSS = "application/rss+xml; charset=utf-8"


@dataclass
class Route:
    """What the feed host answers on one path."""

    body: bytes = b""
    content_type: str = RSS
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # answer only once it is set (a slow server)


def fixture(name: str) -> bytes:
    """A feed file from tests/fixtures/feeds."""
    return (FEEDS / name).read_bytes()


class FeedHost:
    """A local HTTP server serving feeds by path, honouring ETag and Last-Modified."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append((self.path, dict(self.headers.items())))
                route = host.routes.get(self.path, Route(status=404, body=b"not found"))
                if route.hold is not None:
                    route.hold.wait(5)
                fresh = (route.etag and self.headers.get("If-None-Match") == route.etag) or (
                    route.last_modified
                    and self.headers.get("If-Modified-Since") == route.last_modified
                )
                status = 304 if route.status == 200 and fresh else route.status
                self.send_response(status)
                for name, value in (
                    ("ETag", route.etag),
                    ("Last-Modified", route.last_modified),
                    *route.headers.items(),
                ):
                    if value is not None:
                        self.send_header(name, value)
                body = b"" if status == 304 else route.body
                if status != 304:
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this host."""
        return f"{self.base}{path}"

    def headers_of(self, path: str) -> list[dict[str, str]]:
        """The request headers received on ``path``, oldest first."""
        return [headers for p, headers in self.requests if p == path]


@pytest.fixture
def host() -> Iterator[FeedHost]:
    """A running feed host."""
    server = FeedHost()
    server.thread.start()
    yield server
    for route in server.routes.values():
        if route.hold is not None:
            route.hold.set()
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(5)


def source(url: str, *keywords: str, timeout: float = 5.0) -> FeedSource:
    """A feed source at ``url`` on a fixed clock."""
    return FeedSource(
        FeedConfig.model_validate({"url": url, "keywords": keywords}),
        timeout=timeout,
        clock=lambda: NOW,
    )


def stored(database: Database) -> list[str]:
    """External ids of the stored mentions, in the order they were stored."""
    with database.transaction() as session:
        return list(session.scalars(select(InteractionRow.external_id).order_by(InteractionRow.id)))


def rejects(database: Database) -> list[str]:
    """Reasons of the stored rejects, oldest first."""
    with database.transaction() as session:
        return list(session.scalars(select(SourceReject.reason).order_by(SourceReject.id)))


def rss_host(host: FeedHost) -> str:
    """Serve rss_v1.xml with validators and return its URL."""
    host.routes["/rss"] = Route(
        body=fixture("rss_v1.xml"), etag='"v1"', last_modified="Tue, 04 Mar 2025 09:20:00 GMT"
    )
    return host.url("/rss")


def crash_source(url: str) -> FeedSource:
    """The source the SIGKILL test builds in its child process."""
    return FeedSource(FeedConfig.model_validate({"url": url, "keywords": ["acme"]}))


def test_rss_entries_matching_a_keyword_arrive_as_blog_mentions(host: FeedHost) -> None:
    """Turns the RSS entry that names the keyword into a blog mention with plain text."""
    url = rss_host(host)
    fetched = source(url, "ACME").fetch(None, read_budget=None)
    assert fetched.rejected == ()
    [mention] = fetched.mentions
    link = "https://kettletalk.example/posts/acme-kettle-broke"
    assert mention.platform is Platform.BLOG
    assert mention.external_id == link
    assert mention.conversation_id == link
    assert mention.url == link
    assert mention.text == (
        "My Acme kettle stopped working after a week\n\n"
        "The ACME K2 kettle won\u2019t switch on & support hasn\u2019t answered."
    )
    assert mention.author.display_name == "Dana Whitfield"
    assert mention.author.followers is None
    assert mention.created_at == datetime(2025, 3, 4, 8, 15, tzinfo=UTC)
    assert mention.raw["feed"] == url
    assert json.loads(fetched.checkpoint or "") == {
        "etag": '"v1"',
        "last_modified": "Tue, 04 Mar 2025 09:20:00 GMT",
    }


def test_keywords_match_whole_words_only(host: FeedHost) -> None:
    """Skips an entry that only says "acmeware", and keeps every entry when no keyword is set."""
    url = rss_host(host)
    assert len(source(url, "acme").fetch(None, read_budget=None).mentions) == 1
    everything = source(url).fetch(None, read_budget=None).mentions
    assert [m.external_id for m in everything] == [
        "https://kettletalk.example/posts/acme-kettle-broke",
        f"{url}#post-17",  # a guid that is not a URL is scoped to its feed
    ]


def test_atom_entries_arrive_with_html_titles_flattened(host: FeedHost) -> None:
    """Reads an Atom feed: HTML title and XHTML content become plain text, dates become UTC."""
    host.routes["/atom"] = Route(body=fixture("atom.xml"), content_type="application/atom+xml")
    first, undated = source(host.url("/atom"), "acme").fetch(None, read_budget=None).mentions
    assert first.text == (
        "Is the Acme K2 worth it? honest answers please\n\n"
        "Thinking of buying one. Any problems with the lid?"
    )
    assert first.external_id == "tag:forum.example,2025:thread-901"
    assert first.conversation_id == "https://forum.example/t/901"
    assert first.author.display_name == "brewmaster"
    assert first.created_at == datetime(2025, 3, 6, 13, 30, tzinfo=UTC)
    assert undated.created_at == NOW
    assert undated.text == "Undated thread about the acme lid\n\nThe lid hinge snapped."


def test_second_poll_is_conditional_and_only_a_new_entry_is_stored(
    host: FeedHost, database: Database
) -> None:
    """Sends the stored ETag back, stores nothing on 304, then stores only the entry that is new."""
    url = rss_host(host)
    feed = source(url, "acme")
    intake = Intake(database=database, clock=lambda: NOW)
    poller = Poller(source=feed, intake=intake)

    assert poller.poll() == NOW + timedelta(seconds=900)
    assert stored(database) == ["https://kettletalk.example/posts/acme-kettle-broke"]

    poller.poll()
    second = host.headers_of("/rss")[1]
    assert second["If-None-Match"] == '"v1"'
    assert second["If-Modified-Since"] == "Tue, 04 Mar 2025 09:20:00 GMT"
    assert stored(database) == ["https://kettletalk.example/posts/acme-kettle-broke"]

    host.routes["/rss"] = Route(body=fixture("rss_v2.xml"), etag='"v2"')
    poller.poll()
    assert stored(database) == [
        "https://kettletalk.example/posts/acme-kettle-broke",
        f"{url}#post-18",
    ]
    assert json.loads(intake.checkpoint(feed.name) or "")["etag"] == '"v2"'
    assert rejects(database) == []


@pytest.mark.parametrize(
    ("name", "content_type", "reason"),
    [
        ("not_a_feed.html", "text/html; charset=utf-8", "not a feed (text/html"),
        ("truncated.xml", "application/xml", "not a feed (application/xml: SAXParseException"),
    ],
)
def test_malformed_feed_is_recorded_and_the_source_goes_on(
    host: FeedHost, database: Database, name: str, content_type: str, reason: str
) -> None:
    """Records a page that is not a feed as a reject, keeps the checkpoint, and reads the feed once it is back."""
    url = rss_host(host)
    feed = source(url, "acme")
    intake = Intake(database=database, clock=lambda: NOW)
    poller = Poller(source=feed, intake=intake)
    poller.poll()
    checkpoint = intake.checkpoint(feed.name)

    host.routes["/rss"] = Route(body=fixture(name), content_type=content_type, etag='"broken"')
    assert poller.poll() == NOW + timedelta(seconds=900)
    assert poller.failures == 0
    [rejected] = rejects(database)
    assert rejected.startswith(reason)
    assert intake.checkpoint(feed.name) == checkpoint

    host.routes["/rss"] = Route(body=fixture("rss_v2.xml"), etag='"v2"')
    poller.poll()
    assert len(stored(database)) == 2


def test_feed_with_errors_but_entries_is_read_and_the_error_recorded(host: FeedHost) -> None:
    """Takes the entries of a feed that is not well-formed and records why it is not."""
    host.routes["/sloppy"] = Route(body=fixture("bozo_entries.xml"))
    fetched = source(host.url("/sloppy")).fetch(None, read_budget=None)
    [mention] = fetched.mentions
    assert mention.text == "Acme & friends\n\nA look at Acme and others"
    [rejected] = fetched.rejected
    assert rejected.reason.startswith("feed is not well-formed (SAXParseException")
    assert rejected.reason.endswith("1 entries read anyway")
    assert fetched.checkpoint is not None


def test_entries_without_identity_or_text_are_rejected_one_by_one(host: FeedHost) -> None:
    """Rejects an entry with no id, link or title and one with no text; keeps a title-only entry."""
    host.routes["/odd"] = Route(body=fixture("odd_entries.xml"))
    feed = source(host.url("/odd"))
    fetched = feed.fetch(None, read_budget=None)
    assert [r.reason for r in fetched.rejected] == [
        "feed entry has no id, link or title",
        "feed entry has no title or text",
    ]
    [mention] = fetched.mentions
    assert mention.text == "Only a title, no link or guid"
    assert mention.external_id.startswith("sha256:")
    again = feed.fetch(None, read_budget=None).mentions[0]
    assert again.external_id == mention.external_id


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (404, "feed not found (HTTP 404)"),
        (410, "feed is gone (HTTP 410); remove it from the sources file"),
        (403, "feed refused the request (HTTP 403)"),
    ],
)
def test_missing_feed_is_a_reject_not_a_failure(host: FeedHost, status: int, reason: str) -> None:
    """Answers 404, 410 or 403 with a reject naming the status, and no checkpoint."""
    host.routes["/gone"] = Route(status=status, body=b"no")
    fetched = source(host.url("/gone")).fetch(None, read_budget=None)
    assert [r.reason for r in fetched.rejected] == [reason]
    assert fetched.mentions == ()
    assert fetched.checkpoint is None


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(500, {}, None), (503, {"Retry-After": "120"}, 120.0), (429, {"Retry-After": "30"}, 30.0)],
)
def test_server_errors_raise_source_error_and_the_poller_backs_off(
    host: FeedHost,
    database: Database,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    """Raises SourceError on 5xx and 429, with the server's Retry-After, and the poller waits."""
    host.routes["/rss"] = Route(status=status, body=b"busy", headers=headers)
    feed = source(host.url("/rss"))
    with pytest.raises(SourceError, match=f"HTTP {status}") as caught:
        feed.fetch(None, read_budget=None)
    assert caught.value.retry_after == retry_after

    poller = Poller(
        source=feed, intake=Intake(database=database, clock=lambda: NOW), rng=random.Random(1)
    )
    next_poll = poller.poll()
    assert poller.failures == 1
    assert next_poll - NOW <= timedelta(seconds=max(1.0, retry_after or 0))
    assert next_poll - NOW >= timedelta(seconds=retry_after or 0.5)
    assert stored(database) == []


def test_timeout_and_refused_connection_raise_source_error(host: FeedHost) -> None:
    """Raises SourceError when the server is too slow or nothing listens."""
    hold = threading.Event()
    host.routes["/slow"] = Route(body=fixture("rss_v1.xml"), hold=hold)
    with pytest.raises(SourceError, match="unreachable"):
        source(host.url("/slow"), timeout=0.2).fetch(None, read_budget=None)
    hold.set()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SourceError, match="unreachable"):
        source(f"http://127.0.0.1:{port}/feed").fetch(None, read_budget=None)


def test_check_passes_for_a_feed_and_names_what_is_wrong_otherwise(host: FeedHost) -> None:
    """Checks a feed once: fine for RSS, ConfigError for an HTML page or a missing feed."""
    source(rss_host(host)).check()
    host.routes["/page"] = Route(body=fixture("not_a_feed.html"), content_type="text/html")
    with pytest.raises(ConfigError, match=r"feed:http://127\.0\.0\.1:\d+/page: not a feed"):
        source(host.url("/page")).check()
    with pytest.raises(ConfigError, match="HTTP 404"):
        source(host.url("/nothing")).check()


def test_sources_are_named_and_described_per_feed() -> None:
    """Builds one named source per feed and describes what each watches."""
    feeds = (
        FeedConfig.model_validate({"url": "https://blog.example/feed", "keywords": ["acme", "K2"]}),
        FeedConfig.model_validate({"url": "https://forum.example/atom", "interval": 60}),
    )
    built = feed_sources(feeds)
    assert [s.name for s in built] == [
        "feed:https://blog.example/feed",
        "feed:https://forum.example/atom",
    ]
    assert [s.describe() for s in built] == [
        ["feed https://blog.example/feed every 900 s, keywords: acme, K2"],
        ["feed https://forum.example/atom every 60 s, keywords: none (every entry)"],
    ]
    assert built[1].interval == 60
    assert built[0].daily_read_budget is None


@pytest.mark.slow
def test_killed_between_fetch_and_store_loses_nothing_and_stores_nothing_twice(
    host: FeedHost, database: Database
) -> None:
    """Stores the entry once after a SIGKILL between fetching and storing and a restart."""
    url = rss_host(host)
    kill_after_fetch(database.url, "test_feeds:crash_source", url)
    assert stored(database) == []
    assert Intake(database=database).checkpoint(f"feed:{url}") is None

    poll_in_child(database.url, "test_feeds:crash_source", url)
    poll_in_child(database.url, "test_feeds:crash_source", url)
    assert stored(database) == ["https://kettletalk.example/posts/acme-kettle-broke"]
    assert host.headers_of("/rss")[2]["If-None-Match"] == '"v1"'
