"""Sources: what a source is to the core, and the YAML file that says what to watch.

A polling source (X, Telegram, a feed) is a `Source`: ``fetch(checkpoint)`` reads what is new
since the checkpoint and returns it as `Fetched`, without storing anything. The poller
(`bot.polling`) stores the mentions and moves the checkpoint in one transaction, so a crash
between fetching and storing loses nothing (the next fetch starts from the old checkpoint)
and stores nothing twice (mentions are unique by platform and external id).

The handler modules (`handlers/x_mentions.py`, `telegram_updates.py`, `feeds.py`) build the
sources; this module only knows their configuration, so that no platform SDK is imported
unless its source is configured.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from bot.errors import ConfigError
from bot.models import Mention

if TYPE_CHECKING:
    from aiohttp import web


@dataclass(frozen=True, slots=True)
class Rejected:
    """A payload that could not become a mention, kept with the reason (the source goes on)."""

    reason: str
    raw: Any = None  # the payload as received, JSON-able; stored, never logged


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch read.

    ``checkpoint``: the source's new position, stored in the transaction that stores the
    mentions (None leaves it where it is). ``not_before``: do not fetch again before this
    (a rate limit's reset time). ``reads``: posts read, for platforms that bill per read.
    """

    mentions: tuple[Mention, ...] = ()
    checkpoint: str | None = None
    rejected: tuple[Rejected, ...] = ()
    not_before: datetime | None = None
    reads: int = 0


class Source(Protocol):
    """A polled source. ``fetch`` blocks (network I/O) and runs in a worker thread."""

    @property
    def name(self) -> str:
        """The stable checkpoint key, e.g. ``x:mentions:acme`` or ``feed:https://…``."""
        ...

    @property
    def interval(self) -> float:
        """Seconds between polls when nothing slows it down."""
        ...

    @property
    def daily_read_budget(self) -> int | None:
        """Posts it may read per UTC day (X bills per read); None: no limit."""
        ...

    def fetch(self, checkpoint: str | None, *, read_budget: int | None) -> Fetched:
        """Read what is new since ``checkpoint``, at most ``read_budget`` posts if given.

        Raises `bot.errors.SourceError` when the platform cannot be read now.
        """
        ...

    def describe(self) -> list[str]:
        """What it watches, one line each, for `earful sources check`."""
        ...

    def check(self) -> None:
        """One cheap authenticated call; raises `ConfigError` with a clear reason on failure."""
        ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A pushed source: routes on `earful run`'s HTTP server, what to do once it listens
    (tell the platform where to push, open a stream) and on shutdown (close the stream)."""

    label: str
    routes: Sequence[web.RouteDef]
    on_start: Callable[[], Awaitable[None]] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None


def keyword_pattern(keywords: Sequence[str]) -> re.Pattern[str] | None:
    """Any of ``keywords`` as a whole word, case-insensitive; None when there are none.

    Lookarounds rather than ``\\b``, so that keywords such as "c++" or "@acme" match whole.
    """
    words = "|".join(re.escape(k.strip()) for k in keywords if k.strip())
    return re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE) if words else None


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class XConfig(_Strict):
    """X: the brand account's mentions and recent-search queries."""

    account: str | None = Field(default=None, description="brand handle, without @")
    searches: tuple[str, ...] = ()
    interval: float = Field(default=60.0, ge=5.0)
    # X bills per post read: polling pauses for the rest of the UTC day once it is spent.
    daily_read_budget: int | None = Field(default=None, ge=1)
    # The filtered stream, for accounts whose access level has it.
    stream: bool = False


class TelegramConfig(_Strict):
    """Telegram: groups the bot is a member of, and direct messages to the bot."""

    # A group message is kept when it mentions the bot or a keyword, or replies to the bot.
    keywords: tuple[str, ...] = ()
    interval: float = Field(default=1.0, ge=0.0)
    # Long-poll wait of getUpdates, in seconds.
    poll_timeout: int = Field(default=20, ge=0, le=50)
    # Webhook mode instead of polling: Telegram posts updates to `earful run`'s endpoint.
    webhook_url: HttpUrl | None = None


class FeedConfig(_Strict):
    """One RSS or Atom feed."""

    url: HttpUrl
    keywords: tuple[str, ...] = ()
    interval: float = Field(default=900.0, ge=30.0)


class WebhookConfig(_Strict):
    """The signed webhook endpoint of `earful run`."""

    enabled: bool = True
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    tolerance_seconds: int = Field(default=300, ge=1)


class SourcesConfig(_Strict):
    """The sources file: every key optional; an empty file watches nothing."""

    x: XConfig | None = None
    telegram: TelegramConfig | None = None
    feeds: tuple[FeedConfig, ...] = ()
    webhook: WebhookConfig | None = None


def _where(path: Path, loc: Sequence[int | str]) -> str:
    return f"{path}: " + ".".join(str(part) for part in loc) if loc else str(path)


def parse_sources(data: Any, *, path: Path) -> SourcesConfig:
    """Validate a parsed sources file; `ConfigError` names the field and the reason."""
    if data is None:
        return SourcesConfig()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of sources (x, telegram, feeds, webhook)")
    try:
        return SourcesConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{_where(path, first['loc'])}: {first['msg']}") from None


def load_sources(path: Path | None) -> SourcesConfig:
    """Read the sources file; None (not configured) watches nothing."""
    if path is None:
        return SourcesConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the sources file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(f"{path}{line}: not valid YAML ({problem or 'unreadable'})") from None
    return parse_sources(data, path=path)
