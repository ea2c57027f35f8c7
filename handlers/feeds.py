"""RSS and Atom feeds: conditional GET, feedparser, and each matching entry as a blog `Mention`.

One `FeedSource` per configured feed, named ``feed:<url>``. Its checkpoint is the JSON
``{"etag": ..., "last_modified": ...}`` of the last response stored: the next fetch sends
them back as ``If-None-Match`` / ``If-Modified-Since``, and a ``304 Not Modified`` reads
nothing. Entries are not remembered here: a feed repeats its recent entries on every change,
and the unique (platform, external id) key stores each one once.

What a feed answers, and what the poller does with it:

* 200 with a feed: its entries that match the keywords (all of them without keywords)
  become mentions and the checkpoint moves. A feed that is not well-formed but still yields
  entries is read, and the parser's complaint is recorded as a reject beside them.
* 200 with something that is not a feed (HTML, broken XML with no entries), 404, 410 or
  another 4xx: a reject with the reason, the checkpoint stays, and polling goes on at the
  normal interval: a feed that is gone or broken often comes back, and the rejects show
  in ``earful status`` meanwhile.
* 5xx, 408, 429, a timeout or a refused connection: `SourceError` (with ``Retry-After``
  when the server sent one), so the poller backs off.

Entry ids: an absolute guid or Atom id (``https://…``, ``urn:…``, ``tag:…``) is the
external id as it is; a relative one (``42``) is scoped to its feed (``<feed url>#42``), so
two feeds numbering their posts alike do not collide. Without an id the link stands in,
and without a link a hash of the feed, title and date.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

from bot.errors import ConfigError, SourceError
from bot.models import Author, Clock, Mention, Platform, now_utc
from bot.sources import FeedConfig, Fetched, Rejected, Source, keyword_pattern
from handlers.ticket_webhook import parse_retry_after

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000  # title and summary; a card needs the gist, the link has the rest
MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_ID_CHARS = 200  # the external id and conversation id columns
USER_AGENT = "earful-feed-reader"
_TRANSIENT = frozenset({408, 425, 429})


def feed_sources(
    feeds: Sequence[FeedConfig],
    *,
    timeout: float = 20.0,
    max_text_chars: int = MAX_TEXT_CHARS,
    clock: Clock = now_utc,
) -> list[Source]:
    """One `FeedSource` per configured feed."""
    return [
        FeedSource(feed, timeout=timeout, max_text_chars=max_text_chars, clock=clock)
        for feed in feeds
    ]


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    headers: Mapping[str, str]  # lower-case names, as feedparser reads them


class _TextOnly(HTMLParser):
    """Collects the text of an HTML fragment, with a space where a tag breaks words."""

    _SKIP = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self.skipping:
            self.skipping -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def plain_text(fragment: str, *, html: bool = True) -> str:
    """The text of an HTML fragment (tags dropped, entities unescaped), whitespace collapsed."""
    if html:
        parser = _TextOnly()
        parser.feed(fragment)
        parser.close()
        fragment = "".join(parser.parts)
    return " ".join(fragment.split())


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _hash_id(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def _field(entry: dict[str, Any], key: str) -> Any:
    # dict.get: FeedParserDict's own get() maps legacy names and warns on some of them.
    return dict.get(entry, key)


def _text_field(entry: dict[str, Any], key: str) -> str:
    value = _field(entry, key)
    if not isinstance(value, str):
        return ""
    detail = _field(entry, f"{key}_detail")
    kind = detail.get("type", "text/html") if isinstance(detail, Mapping) else "text/html"
    return plain_text(value, html="html" in str(kind))


def _body_text(entry: dict[str, Any]) -> str:
    summary = _text_field(entry, "summary")
    if summary:
        return summary
    for content in _field(entry, "content") or ():
        if isinstance(content, Mapping) and isinstance(content.get("value"), str):
            kind = str(content.get("type", "text/html"))
            text = plain_text(content["value"], html="html" in kind)
            if text:
                return text
    return ""


def _when(entry: dict[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        parsed = _field(entry, key)
        if isinstance(parsed, time.struct_time):
            # feedparser normalises every date it understands to UTC.
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    return None


def _author(entry: dict[str, Any]) -> Author:
    detail = _field(entry, "author_detail")
    name = detail.get("name") if isinstance(detail, Mapping) else None
    if not name:
        name = _field(entry, "author")
    name = plain_text(name, html=False)[:200] if isinstance(name, str) else ""
    return Author(display_name=name or None)


_RAW_KEYS = ("id", "link", "title", "summary", "author", "published", "updated")


def _raw(entry: dict[str, Any], feed_url: str) -> dict[str, Any]:
    """The entry's own fields, JSON-able (feedparser's parsed dates are not)."""
    raw: dict[str, Any] = {"feed": feed_url}
    for key in _RAW_KEYS:
        value = _field(entry, key)
        if isinstance(value, str):
            raw[key] = value
    tags = [t.get("term") for t in _field(entry, "tags") or () if isinstance(t, Mapping)]
    if any(tags):
        raw["tags"] = [t for t in tags if isinstance(t, str)]
    return raw


def _lower_headers(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


class FeedSource:
    """One RSS or Atom feed, read with conditional GET."""

    def __init__(
        self,
        config: FeedConfig,
        *,
        timeout: float = 20.0,
        max_text_chars: int = MAX_TEXT_CHARS,
        max_bytes: int = MAX_FEED_BYTES,
        clock: Clock = now_utc,
    ) -> None:
        self.config = config
        self.url = str(config.url)
        self.timeout = timeout
        self.max_text_chars = max_text_chars
        self.max_bytes = max_bytes
        self.clock = clock
        self._keywords = keyword_pattern(config.keywords)

    @property
    def name(self) -> str:
        """``feed:<url>``."""
        return f"feed:{self.url}"

    @property
    def interval(self) -> float:
        """Seconds between polls."""
        return self.config.interval

    @property
    def daily_read_budget(self) -> int | None:
        """Feeds cost nothing per read."""
        return None

    def describe(self) -> list[str]:
        """``feed https://… every 900 s, keywords: acme``."""
        keywords = ", ".join(self.config.keywords) or "none (every entry)"
        return [f"feed {self.url} every {self.interval:g} s, keywords: {keywords}"]

    def check(self) -> None:
        """Fetch the feed once; `ConfigError` if it cannot be reached or is not a feed."""
        try:
            response = self._get({})
        except SourceError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None
        if isinstance(response, Rejected):
            raise ConfigError(f"{self.name}: {response.reason}")
        if response is None:  # 304 although nothing was cached: the feed exists
            return
        parsed = self._parse(response)
        if isinstance(parsed, Rejected):
            raise ConfigError(f"{self.name}: {parsed.reason}")

    def fetch(self, checkpoint: str | None, *, read_budget: int | None) -> Fetched:
        """The entries of the feed if it changed since ``checkpoint``; see the module doc."""
        validators = self._validators(checkpoint)
        received_at = self.clock()
        response = self._get(validators)
        if response is None:
            return Fetched()
        if isinstance(response, Rejected):
            return Fetched(rejected=(response,))
        parsed = self._parse(response)
        if isinstance(parsed, Rejected):
            return Fetched(rejected=(parsed,))
        mentions: list[Mention] = []
        rejected: list[Rejected] = []
        if parsed.get("bozo"):
            rejected.append(
                Rejected(
                    f"feed is not well-formed ({_bozo_reason(parsed)}); "
                    f"{len(parsed.entries)} entries read anyway",
                    raw={"url": self.url},
                )
            )
        for entry in parsed.entries:
            result = self._mention(entry, received_at)
            if isinstance(result, Rejected):
                rejected.append(result)
            elif result is not None:
                mentions.append(result)
        state = {
            "etag": response.headers.get("etag"),
            "last_modified": response.headers.get("last-modified"),
        }
        return Fetched(
            mentions=tuple(mentions),
            checkpoint=json.dumps(state, sort_keys=True),
            rejected=tuple(rejected),
        )

    def _validators(self, checkpoint: str | None) -> dict[str, str]:
        if not checkpoint:
            return {}
        try:
            state = json.loads(checkpoint)
        except json.JSONDecodeError:
            log.warning("%s: unreadable checkpoint; fetching the whole feed", self.name)
            return {}
        headers: dict[str, str] = {}
        if isinstance(state, dict):
            if isinstance(state.get("etag"), str):
                headers["If-None-Match"] = state["etag"]
            if isinstance(state.get("last_modified"), str):
                headers["If-Modified-Since"] = state["last_modified"]
        return headers

    def _get(self, validators: Mapping[str, str]) -> _Response | Rejected | None:
        """The response; None for 304; a `Rejected` for a permanent failure."""
        request = urllib.request.Request(  # noqa: S310 - FeedConfig admits http(s) URLs only
            self.url,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9, "
                "text/xml;q=0.9, */*;q=0.1",
                **validators,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read(self.max_bytes + 1)
                status = response.status
                headers = _lower_headers(response.headers)
        except urllib.error.HTTPError as exc:
            exc.close()  # the error carries the open response
            return self._http_error(exc.code, exc.headers)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise SourceError(f"feed unreachable: {cause}") from None
        if len(body) > self.max_bytes:
            return Rejected(
                f"feed is larger than {self.max_bytes:,} bytes; not read",
                raw={"url": self.url, "status": status},
            )
        return _Response(status=status, body=body, headers=headers)

    def _http_error(self, code: int, headers: Any) -> Rejected | None:
        if code == 304:
            return None
        if code >= 500 or code in _TRANSIENT:
            retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
            raise SourceError(f"feed answered HTTP {code}", retry_after)
        reason = {
            404: "feed not found (HTTP 404)",
            410: "feed is gone (HTTP 410); remove it from the sources file",
        }.get(code, f"feed refused the request (HTTP {code})")
        return Rejected(reason, raw={"url": self.url, "status": code})

    def _parse(self, response: _Response) -> Any | Rejected:
        headers = {"content-location": self.url, **response.headers}
        parsed = feedparser.parse(io.BytesIO(response.body), response_headers=headers)
        if parsed.entries or (parsed.get("version") and not parsed.get("bozo")):
            return parsed
        kind = response.headers.get("content-type", "no content type")
        reason = (
            f"not a feed ({kind}: {_bozo_reason(parsed)})"
            if parsed.get("bozo")
            else f"not a feed ({kind})"
        )
        snippet = response.body[:1000].decode("utf-8", "replace")
        return Rejected(reason, raw={"url": self.url, "status": response.status, "body": snippet})

    def _mention(self, entry: dict[str, Any], received_at: datetime) -> Mention | Rejected | None:
        """The entry as a mention; None when it misses the keywords."""
        entry_id = _field(entry, "id")
        link = _field(entry, "link")
        title = _text_field(entry, "title")
        entry_id = entry_id.strip() if isinstance(entry_id, str) else ""
        link = link.strip() if isinstance(link, str) else ""
        raw = _raw(entry, self.url)
        if not (entry_id or link or title):
            return Rejected("feed entry has no id, link or title", raw=raw)
        body = _body_text(entry)
        if not (title or body):
            return Rejected("feed entry has no title or text", raw=raw)
        if self._keywords is not None and not self._keywords.search(f"{title}\n{body}"):
            return None
        external_id = self._external_id(entry_id or link, title, _field(entry, "published"))
        text = _cap(f"{title}\n\n{body}" if title and body else title or body, self.max_text_chars)
        url = link if link and len(link) <= 2048 else None
        conversation = link if link and len(link) <= MAX_ID_CHARS else external_id
        return Mention(
            platform=Platform.BLOG,
            external_id=external_id,
            text=text,
            author=_author(entry),
            created_at=_when(entry) or received_at,
            conversation_id=conversation,
            url=url,
            raw=raw,
        )

    def _external_id(self, key: str, title: str, published: Any) -> str:
        if not key:
            return _hash_id(self.url, title, published if isinstance(published, str) else "")
        scoped = key if re.match(r"^[a-zA-Z][\w+.-]*:", key) else f"{self.url}#{key}"
        return scoped if len(scoped) <= MAX_ID_CHARS else _hash_id(scoped)


def _bozo_reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "unknown parse error"
    message = getattr(exc, "getMessage", None)
    text = message() if callable(message) else str(exc)
    return f"{type(exc).__name__}: {text}"[:300]
