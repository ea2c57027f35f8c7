"""Telegram through python-telegram-bot: updates in as mentions, agents' replies out.

Polling calls getUpdates itself rather than running PTB's `Application`, which confirms
updates to Telegram before its handlers have finished. Here the checkpoint is the last
update id read; the poller stores it with the mentions, and only the next getUpdates
(``offset`` = checkpoint + 1) confirms them, so a crash before storing loses nothing.
The updates are read as JSON and parsed one by one, so that one malformed update becomes a
`Rejected` instead of failing the whole batch (PTB's ``get_updates`` parses all or none).

Kept: every direct message to the bot, and group messages that mention the bot, reply to
one of its messages or contain a configured keyword. Skipped messages still move the
checkpoint. In webhook mode Telegram posts each update to `telegram_webhook_handler`, which
stores it before answering, so Telegram redelivers it if Earful dies first.

The bot token is part of every request URL: PTB's and httpx's loggers are held at WARNING,
and their records are scrubbed of the token and of PTB's arguments (which hold customers'
messages), also when someone turns them up.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from aiohttp import web
from telegram import Bot, Message, MessageEntity, ReplyParameters
from telegram.constants import ChatType
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.errors import ConfigError, DeliveryRejected, RetryLater, SourceError
from bot.models import Author, Clock, Mention, Platform, now_utc
from bot.sources import Fetched, Rejected, TelegramConfig, keyword_pattern
from storage.outbox import Effect

DEFAULT_API_URL = "https://api.telegram.org/bot"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# Channel posts are the company's own broadcasts; comments on them reach us from the
# channel's discussion group as ordinary group messages.
ALLOWED_UPDATES = ("message", "edited_message")
# Telegram's limits for a bot: about one message a second in a chat, 20 a minute in a group.
CHAT_INTERVAL = 1.0
GROUP_PER_MINUTE = 20

_LOUD_LOGGERS = ("telegram", "httpx", "httpcore")
_SCRUBBED_LOGGERS = (
    "telegram.Bot",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
    "httpx",
)


class _Scrub(logging.Filter):
    """Removes the bot token from library log records, and PTB's arguments altogether.

    PTB's arguments are request parameters and Telegram's answers, which hold customers'
    messages (and, in one debug record, the API URL with the token).
    """

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("telegram") and record.args:
            message = f"{record.msg} (arguments not logged)"
        else:
            message = record.getMessage()
        record.msg, record.args = message.replace(self.token, "<token>"), ()
        return True


def _guard_logs(token: str) -> None:
    """Keep the token and customers' messages out of the libraries' logs."""
    for name in _LOUD_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:  # NOTSET too: it would inherit the root's DEBUG
            logger.setLevel(logging.WARNING)
    for name in _SCRUBBED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Scrub) and f.token == token for f in logger.filters):
            logger.addFilter(_Scrub(token))


def _bot_id(token: str) -> str:
    bot_id, sep, secret = token.partition(":")
    if not (bot_id.isdigit() and sep and secret):
        raise ConfigError("the Telegram bot token is malformed (expected <bot id>:<secret>)")
    return bot_id


def _seconds(value: int | float | timedelta) -> float:
    # PTB 22 gives int seconds, or a timedelta when PTB_TIMEDELTA is set.
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class _Client:
    """Builds a PTB `Bot` for one event loop (httpx clients must not cross loops) and closes it."""

    def __init__(self, *, token: str, api_url: str, timeout: float) -> None:
        self.token = token
        self.api_url = api_url
        self.timeout = timeout
        # Loading the CA bundle is the costly part of a client; do it once, not per call.
        self._tls: ssl.SSLContext | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[_UpdatesBot]:
        requests = (
            self._request(connections=1),
            self._request(connections=4),
        )
        bot = _UpdatesBot(
            self.token, base_url=self.api_url, get_updates_request=requests[0], request=requests[1]
        )
        try:
            yield bot
        finally:
            for request in requests:
                await request.shutdown()

    def _request(self, *, connections: int) -> HTTPXRequest:
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        t = self.timeout
        return HTTPXRequest(
            connection_pool_size=connections,
            connect_timeout=t,
            read_timeout=t,
            write_timeout=t,
            httpx_kwargs={"verify": self._tls},
        )

    def scrub(self, text: str) -> str:
        return text.replace(self.token, "<token>")


class _UpdatesBot(Bot):
    """PTB's `Bot`, with getUpdates answered as JSON so that each update is parsed on its own."""

    async def raw_updates(
        self, *, offset: int | None, wait: int, allowed: tuple[str, ...], read_timeout: float
    ) -> Any:
        data = {"offset": offset, "timeout": wait, "allowed_updates": list(allowed)}
        return await self._post("getUpdates", data, read_timeout=read_timeout)


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, from getMe: what a group message must mention."""

    id: int
    username: str | None


class TelegramSource:
    """Direct messages to the bot and the group messages meant for it, as mentions."""

    def __init__(
        self,
        config: TelegramConfig,
        *,
        token: str,
        api_url: str = DEFAULT_API_URL,
        request_timeout: float = 10.0,
        clock: Clock = now_utc,
    ) -> None:
        self.config = config
        self._bot_id = _bot_id(token)
        self._client = _Client(token=token, api_url=api_url, timeout=request_timeout)
        self.clock = clock
        self.identity: BotIdentity | None = None
        self._keywords = keyword_pattern(config.keywords)
        _guard_logs(token)

    @property
    def name(self) -> str:
        """``telegram:<bot id>``: the bot id is the token's public part, and never changes."""
        return f"telegram:{self._bot_id}"

    @property
    def interval(self) -> float:
        """Seconds between polls (each poll also waits up to ``poll_timeout`` for updates)."""
        return self.config.interval

    @property
    def daily_read_budget(self) -> int | None:
        """Telegram does not bill reads."""
        return None

    def fetch(self, checkpoint: str | None, *, read_budget: int | None) -> Fetched:
        """Read the updates after ``checkpoint`` (an update id); blocks, from a worker thread."""
        del read_budget  # no read budget on Telegram
        if checkpoint is not None and not checkpoint.lstrip("-").isdigit():
            raise SourceError(f"stored checkpoint {checkpoint!r} is not a Telegram update id")
        return asyncio.run(self._fetch(None if checkpoint is None else int(checkpoint) + 1))

    async def _fetch(self, offset: int | None) -> Fetched:
        try:
            async with self._client.open() as bot:
                me = await self._identify(bot)
                updates = await bot.raw_updates(
                    offset=offset,
                    wait=self.config.poll_timeout,
                    allowed=ALLOWED_UPDATES,
                    read_timeout=self._client.timeout + self.config.poll_timeout,
                )
        except RetryAfter as exc:
            wait = _seconds(exc.retry_after)
            return Fetched(not_before=self.clock() + timedelta(seconds=wait))
        except TelegramError as exc:
            raise self._source_error(exc) from None
        if not isinstance(updates, list):
            raise SourceError("Telegram's getUpdates answer is not a list of updates")
        mentions: list[Mention] = []
        rejected: list[Rejected] = []
        last: int | None = None
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                rejected.append(Rejected("update without a numeric update_id", update))
                continue
            last = update_id if last is None else max(last, update_id)
            read = self.read(update, me)
            if isinstance(read, Mention):
                mentions.append(read)
            elif isinstance(read, Rejected):
                rejected.append(read)
        return Fetched(
            mentions=tuple(mentions),
            checkpoint=None if last is None else str(last),
            rejected=tuple(rejected),
            reads=len(updates),
        )

    def _source_error(self, exc: TelegramError) -> SourceError:
        if isinstance(exc, Conflict):
            reason = "a webhook is set for this bot, or another process polls with its token"
        elif isinstance(exc, InvalidToken | Forbidden):
            reason = "Telegram refused the bot token"
        else:
            reason = f"cannot read Telegram ({type(exc).__name__}: {exc.message})"
        return SourceError(self._client.scrub(reason))

    async def _identify(self, bot: Bot) -> BotIdentity:
        if self.identity is None:
            user = await bot.get_me()
            self.identity = BotIdentity(id=user.id, username=user.username)
        return self.identity

    async def identify(self) -> BotIdentity:
        """The bot's identity, asked of Telegram once (in the running event loop)."""
        if self.identity is not None:
            return self.identity
        async with self._client.open() as bot:
            return await self._identify(bot)

    async def set_webhook(self, *, url: str, secret_token: str) -> None:
        """Have Telegram post updates to ``url`` with ``secret_token``; `ConfigError` if refused."""
        try:
            async with self._client.open() as bot:
                await self._identify(bot)
                await bot.set_webhook(
                    url, allowed_updates=list(ALLOWED_UPDATES), secret_token=secret_token
                )
        except (InvalidToken, Forbidden):
            raise ConfigError("Telegram refused the bot token") from None
        except TelegramError as exc:
            reason = self._client.scrub(f"{type(exc).__name__}: {exc.message}")
            raise ConfigError(f"cannot set the Telegram webhook ({reason})") from None

    def read(self, update: Mapping[str, Any], me: BotIdentity) -> Mention | Rejected | None:
        """One update as a mention; None for a message not meant for us; Rejected if malformed."""
        update_id = update.get("update_id")
        payload = next((update[k] for k in ALLOWED_UPDATES if k in update), None)
        if payload is None:
            return Rejected(f"update {update_id} carries no message", dict(update))
        problem = _malformed(payload)
        if problem:
            return Rejected(f"update {update_id}: {problem}", dict(update))
        try:
            message = Message.de_json(dict(payload))
            return self._relevant(message, update, me)
        except Exception as exc:  # PTB raises whatever a malformed field provokes
            reason = f"update {update_id}: unparseable ({type(exc).__name__})"
            return Rejected(reason, dict(update))

    def _relevant(
        self, message: Message, update: Mapping[str, Any], me: BotIdentity
    ) -> Mention | Rejected | None:
        text = message.text or message.caption
        private = message.chat.type == ChatType.PRIVATE
        to_bot = _replies_to(message, me)
        if not text:
            if private or to_bot:
                reason = f"update {update.get('update_id')}: message has no text or caption"
                return Rejected(reason, dict(update))
            return None
        if message.from_user is not None and message.from_user.is_bot:
            return None
        if not (private or to_bot or _mentions(message, me) or self._has_keyword(text)):
            return None
        return _mention(message, text, update)

    def _has_keyword(self, text: str) -> bool:
        return self._keywords is not None and self._keywords.search(text) is not None

    def describe(self) -> list[str]:
        """What it watches and how, one line each."""
        bot = (
            f"@{self.identity.username}" if self.identity and self.identity.username else "the bot"
        )
        watched = f"direct messages to {bot}, and group messages that mention {bot}, reply to it"
        if self.config.keywords:
            watched += " or contain: " + ", ".join(self.config.keywords)
        if self.config.webhook_url is not None:
            return [watched, f"delivered by webhook to {self.config.webhook_url}"]
        return [
            watched,
            f"polled every {self.config.interval:g} s (long poll of {self.config.poll_timeout} s)",
        ]

    def check(self) -> None:
        """Ask getMe; `ConfigError` if Telegram refuses the token or cannot be reached."""
        try:
            asyncio.run(self.identify())
        except (InvalidToken, Forbidden):
            raise ConfigError("Telegram refused the bot token") from None
        except TelegramError as exc:
            reason = self._client.scrub(f"{type(exc).__name__}: {exc.message}")
            raise ConfigError(f"cannot reach Telegram ({reason})") from None


def _malformed(payload: Any) -> str | None:
    """What makes a message payload unusable, before PTB parses it."""
    if not isinstance(payload, dict):
        return "message is not an object"
    chat = payload.get("chat")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        return "message has no chat id"
    if not isinstance(payload.get("message_id"), int):
        return "message has no message_id"
    if not isinstance(payload.get("date"), int):
        return "message has no date"
    return None


def _replies_to(message: Message, me: BotIdentity) -> bool:
    parent = message.reply_to_message
    return parent is not None and parent.from_user is not None and parent.from_user.id == me.id


def _mentions(message: Message, me: BotIdentity) -> bool:
    kinds: list[str | None] = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
    found = {**message.parse_entities(kinds), **message.parse_caption_entities(kinds)}
    handle = f"@{me.username}".casefold() if me.username else None
    for entity, text in found.items():
        if entity.type == MessageEntity.TEXT_MENTION:
            if entity.user is not None and entity.user.id == me.id:
                return True
        elif handle is not None and text.casefold() == handle:
            return True
    return False


def _parent(message: Message) -> Message | None:
    """The message replied to; in a forum topic, a message that is not a reply still points at
    the topic's opening service message, which is the topic, not a message to reply to."""
    parent = message.reply_to_message
    return None if parent is None or parent.forum_topic_created else parent


def _conversation(message: Message, parent: Message | None) -> str | None:
    """A direct chat is one conversation; in a group, a reply thread; None: root unknown."""
    chat_id = message.chat.id
    if message.chat.type == ChatType.PRIVATE:
        return str(chat_id)
    if message.message_thread_id is not None and not message.is_topic_message:
        return f"{chat_id}:{message.message_thread_id}"  # a supergroup reply thread's root
    if parent is None:
        return f"{chat_id}:{message.message_id}"  # a new message starts its own conversation
    return None  # storage threads it under the message it replies to


def _link(message: Message) -> str | None:
    """A public group's message link; private chats and private groups have none to share."""
    chat = message.chat
    if chat.type == ChatType.PRIVATE or not chat.username:
        return None
    return f"https://t.me/{chat.username}/{message.message_id}"


def _mention(message: Message, text: str, update: Mapping[str, Any]) -> Mention:
    chat = message.chat
    user = message.from_user
    sender = message.sender_chat  # anonymous admins and channels write as a chat
    if user is not None:
        author = Author(
            handle=user.username, display_name=user.full_name, platform_user_id=str(user.id)
        )
    elif sender is not None:
        author = Author(
            handle=sender.username, display_name=sender.title, platform_user_id=str(sender.id)
        )
    else:
        author = Author()
    parent = _parent(message)
    return Mention(
        platform=Platform.TELEGRAM,
        external_id=f"{chat.id}:{message.message_id}",
        text=text,
        author=author,
        created_at=message.date,
        conversation_id=_conversation(message, parent),
        in_reply_to=None if parent is None else f"{chat.id}:{parent.message_id}",
        url=_link(message),
        raw=update,
    )


class TelegramReplies:
    """A sink for ``reply`` effects on Telegram: the reply goes under the customer's message.

    Paced to Telegram's limits per chat (one message a second; 20 a minute in a group): a
    reply that would break them is put off with `RetryLater` without calling Telegram. A reply
    Telegram received but did not answer in time fails instead of being retried: at most once,
    the agent is told (see `bot.effects.reply_failed`).
    """

    def __init__(
        self,
        *,
        token: str,
        api_url: str = DEFAULT_API_URL,
        request_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _bot_id(token)
        self._client = _Client(token=token, api_url=api_url, timeout=request_timeout)
        self.clock = clock
        self._sent: dict[int, deque[float]] = {}
        _guard_logs(token)

    def deliver(self, effect: Effect) -> None:
        """Send the reply; blocks, from a worker thread."""
        payload = effect.payload
        if payload.get("platform") != Platform.TELEGRAM.value:
            raise DeliveryRejected(f"not a Telegram reply: platform {payload.get('platform')!r}")
        chat_id, message_id = _message_ref(str(payload.get("in_reply_to", "")))
        text = str(payload.get("text") or "")
        if not text.strip():
            raise DeliveryRejected("the reply is empty")
        wait = self._wait(chat_id, self.clock())
        if wait > 0:
            raise RetryLater(f"Telegram's message limit for chat {chat_id}", retry_after=wait)
        try:
            asyncio.run(self._send(chat_id, message_id, text))
        except RetryAfter as exc:
            raise RetryLater("rate limited by Telegram", _seconds(exc.retry_after)) from None
        except ChatMigrated as exc:
            raise DeliveryRejected(
                f"the group became supergroup {exc.new_chat_id}; the message replied to is gone"
            ) from None
        except (BadRequest, Forbidden, InvalidToken) as exc:
            raise DeliveryRejected(self._client.scrub(f"Telegram refused: {exc.message}")) from None
        except TimedOut as exc:
            if isinstance(exc.__cause__, httpx.ReadTimeout):
                # Telegram had the whole request and may have posted it: sending it again
                # could post it twice, and the Bot API cannot tell which.
                raise DeliveryRejected(
                    f"Telegram did not answer within {self._client.timeout:g} s, so the reply "
                    "may or may not have been posted; it is not sent again"
                ) from None
            raise RetryLater("Telegram unreachable (TimedOut before the reply was sent)") from None
        except TelegramError as exc:  # NetworkError, unreadable answers
            reason = self._client.scrub(f"{type(exc).__name__}: {exc.message}")
            raise RetryLater(f"Telegram unreachable ({reason})") from None
        self._sent.setdefault(chat_id, deque(maxlen=GROUP_PER_MINUTE)).append(self.clock())

    def _wait(self, chat_id: int, now: float) -> float:
        """Seconds until Telegram's limits allow another message in the chat."""
        sent = self._sent.get(chat_id)
        if not sent:
            return 0.0
        wait = sent[-1] + CHAT_INTERVAL - now
        if chat_id < 0 and len(sent) == GROUP_PER_MINUTE:  # groups have negative ids
            wait = max(wait, sent[0] + 60.0 - now)
        return wait

    async def _send(self, chat_id: int, message_id: int, text: str) -> None:
        async with self._client.open() as bot:
            await bot.send_message(
                chat_id,
                text,
                reply_parameters=ReplyParameters(message_id, allow_sending_without_reply=False),
            )


def _message_ref(value: str) -> tuple[int, int]:
    """``"<chat id>:<message id>"`` (a Telegram mention's external id) as two integers."""
    chat, _, message = value.rpartition(":")
    try:
        return int(chat), int(message)
    except ValueError:
        raise DeliveryRejected(
            f"{value!r} is not a Telegram message (<chat id>:<message id>)"
        ) from None


WebhookHandler = Callable[[web.Request], Awaitable[web.Response]]


def telegram_webhook_handler(
    source: TelegramSource, *, secret_token: str, store: Callable[[Fetched], list[int]]
) -> WebhookHandler:
    """An aiohttp handler for Telegram's webhook posts: checks the secret, stores, then answers.

    ``store`` runs in a worker thread and must commit before it returns (e.g. `Intake.store`
    bound to ``source.name``); Telegram redelivers any update not answered with 200.
    """
    expected = secret_token.encode()

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            return web.Response(status=401, text="wrong or missing secret token\n")
        try:
            update = await request.json()
        except ValueError:
            return web.Response(status=400, text="the body is not JSON\n")
        me = await source.identify()
        fetched = _one_update(source, update, me)
        await asyncio.to_thread(store, fetched)
        return web.Response(status=200)

    return handle


def _one_update(source: TelegramSource, update: Any, me: BotIdentity) -> Fetched:
    # No checkpoint: webhook posts may arrive out of order and confirm themselves.
    if not isinstance(update, dict):
        return Fetched(rejected=(Rejected("update is not an object", update),), reads=1)
    read = source.read(update, me)
    if isinstance(read, Mention):
        return Fetched(mentions=(read,), reads=1)
    if isinstance(read, Rejected):
        return Fetched(rejected=(read,), reads=1)
    return Fetched(reads=1)
