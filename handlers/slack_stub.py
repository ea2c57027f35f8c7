"""A stub of the Slack Web API: real HTTP on a local port, Slack's wire format, no workspace.

Point slack_sdk's ``WebClient(base_url=…)`` at it to see exactly what Earful would send to
Slack. It implements the methods Earful calls (chat.postMessage, chat.update,
chat.postEphemeral, chat.getPermalink, views.open, views.update, views.publish, auth.test, and
apps.connections.open for Socket Mode, which takes the app-level token and hands out
``SlackState.socket_url``), answers like Slack (``{"ok": true, "channel", "ts", …}``, errors as
``{"ok": false, "error"}`` with HTTP 200, rate limits as HTTP 429 with Retry-After), checks the
bot token, records every call with the time it arrived, and can refuse a share of posts with
429. Response URLs of interactive payloads are ``<server>/respond/<anything>``.

`earful demo --slack-stub` runs it; the tests and the latency benchmark use it as Slack.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from handlers.slack_blocks import card_heads

if TYPE_CHECKING:
    from playbooks.loader import PlaybookSet

BASE_TS = 1767225600  # the stub's message timestamps count up from here


@dataclass
class Call:
    """One API call as received; ``at`` is `time.monotonic` when it arrived."""

    method: str
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class ChannelSummary:
    """What one channel received: top-level posts (messages) and the cards they hold, thread
    replies and updates."""

    name: str
    channel_id: str
    messages: int
    cards: int
    replies: int
    updates: int
    first_at: float | None  # monotonic time of the first post
    last_at: float | None

    @property
    def posts_per_second(self) -> float | None:
        """The channel's post rate between its first and last post."""
        posts = self.messages + self.replies
        if self.first_at is None or self.last_at is None or posts < 2:
            return None
        span = self.last_at - self.first_at
        return (posts - 1) / span if span > 0 else None


@dataclass
class SlackState:
    """What the stub knows and has seen; read it under ``lock`` while the server runs."""

    token: str
    app_token: str | None = None
    channels: dict[str, str] = field(default_factory=dict)  # "#care" → "C0CARE"
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rate_limit_share: float = 0.0
    retry_after: int = 1
    rate_limited: int = 0
    # What apps.connections.open hands out: a Socket Mode server's WebSocket URL.
    socket_url: str | None = None
    # The workspace's subdomain in permalinks.
    workspace: str = "earful-stub"
    # Which posts get a 429: seeded, so a run repeats (not security).
    random: random.Random = field(default_factory=lambda: random.Random(7))  # noqa: S311
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    def next_ts(self) -> str:
        """A new message timestamp, unique in this stub."""
        self._ts += 1
        return f"{BASE_TS}.{self._ts:06d}"

    def posts(self) -> list[Call]:
        """Successful chat.postMessage calls, in order."""
        return [c for c in self.calls if c.method == "chat.postMessage"]

    def channel_name(self, channel_id: str) -> str:
        """The queue name mapped to a channel id (the id itself when none is)."""
        return next((n for n, i in self.channels.items() if i == channel_id), channel_id)

    def summary(self) -> list[ChannelSummary]:
        """Per channel, in name order: cards, thread replies, updates and post times."""
        with self.lock:
            calls = list(self.calls)
        counts: dict[str, dict[str, Any]] = {}
        for call in calls:
            if call.method not in ("chat.postMessage", "chat.update"):
                continue
            channel_id = self._resolve(str(call.body.get("channel", ""))) or "?"
            seen = counts.setdefault(
                channel_id,
                {
                    "messages": 0,
                    "cards": 0,
                    "replies": 0,
                    "updates": 0,
                    "first": None,
                    "last": None,
                },
            )
            if call.method == "chat.update":
                seen["updates"] += 1
                continue
            if call.body.get("thread_ts"):
                seen["replies"] += 1
            else:
                seen["messages"] += 1
                seen["cards"] += _cards_in(call.body.get("blocks"))
            seen["first"] = call.at if seen["first"] is None else seen["first"]
            seen["last"] = call.at
        found = [
            ChannelSummary(
                self.channel_name(channel_id),
                channel_id,
                seen["messages"],
                seen["cards"],
                seen["replies"],
                seen["updates"],
                seen["first"],
                seen["last"],
            )
            for channel_id, seen in counts.items()
        ]
        return sorted(found, key=lambda s: s.name)

    def _resolve(self, channel: str) -> str | None:
        """The channel id for a name or an id the stub knows, else None."""
        if channel in self.channels:
            return self.channels[channel]
        return channel if channel in self.channels.values() else None


def playbook_channels(playbooks: PlaybookSet, *, triage_channel: str) -> set[str]:
    """Every channel a playbook set can post to: its playbooks', its rules', its notify steps'."""
    names = {triage_channel}
    for playbook in playbooks.playbooks:
        names.add(playbook.channel)
        names.update(rule.then.channel for rule in playbook.rules if rule.then.channel)
        names.update(step.notify for step in playbook.escalation if step.notify)
    return names


def channel_ids(names: Iterable[str]) -> dict[str, str]:
    """Made-up Slack channel ids for queue names: ``#care-priority`` → ``C0CAREPRIORITY``."""
    ids: dict[str, str] = {}
    for name in sorted(set(names)):
        base = "C0" + (re.sub(r"[^A-Z0-9]", "", name.upper()) or "CHANNEL")
        candidate, number = base, 1
        while candidate in ids.values():
            number += 1
            candidate = f"{base}{number}"
        ids[name] = candidate
    return ids


def _parse(raw: str, content_type: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        body = json.loads(raw) if raw else {}
        return body if isinstance(body, dict) else {}
    return dict(parse_qsl(raw))


def _view(body: dict[str, Any]) -> dict[str, Any]:
    view = body.get("view")
    view = json.loads(view) if isinstance(view, str) else view
    return view if isinstance(view, dict) else {}


def _blocks(blocks: Any) -> list[Any]:
    """A message's blocks, sent as JSON text (form-encoded) or as a list."""
    if isinstance(blocks, str):
        return list(json.loads(blocks))
    return list(blocks or [])


def _cards_in(blocks: Any) -> int:
    """How many Earful cards a message holds."""
    return len(card_heads([b for b in _blocks(blocks) if isinstance(b, dict)]))


def _valid_blocks(blocks: Any) -> bool:
    """Slack's own checks on a message's blocks that Earful could break: at most 50, and no two
    with the same block_id."""
    blocks = _blocks(blocks)
    ids = [b["block_id"] for b in blocks if isinstance(b, dict) and "block_id" in b]
    return len(blocks) <= 50 and len(ids) == len(set(ids))


def _answer(state: SlackState, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """Slack's answer to one authorised call; the caller holds ``state.lock``."""
    if method == "auth.test":
        return {"ok": True, "team_id": "T0EARFUL", "user_id": "U0BOT", "bot_id": "B0BOT"}
    if method == "views.open":
        return {"ok": True, "view": {"id": f"V{state.next_ts()[-6:]}", **_view(body)}}
    if method == "views.update":
        if not body.get("view_id") and not body.get("external_id"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {"id": body.get("view_id"), **_view(body)}}
    if method == "views.publish":
        if not body.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {"id": f"V{state.next_ts()[-6:]}", **_view(body)}}
    channel_id = state._resolve(str(body.get("channel", "")))
    if channel_id is None:
        return {"ok": False, "error": "channel_not_found"}
    if method in ("chat.postMessage", "chat.update") and not _valid_blocks(body.get("blocks")):
        return {"ok": False, "error": "invalid_blocks"}
    if method == "chat.postMessage":
        ts = state.next_ts()
        message = {"ts": ts, "text": body.get("text"), "blocks": body.get("blocks")}
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        state.messages[(channel_id, ts)] = message
        return {"ok": True, "channel": channel_id, "ts": ts, "message": message}
    if method == "chat.update":
        key = (channel_id, str(body.get("ts")))
        if key not in state.messages:
            return {"ok": False, "error": "message_not_found"}
        state.messages[key].update(text=body.get("text"), blocks=body.get("blocks"))
        return {"ok": True, "channel": channel_id, "ts": key[1], "text": body.get("text")}
    if method == "chat.postEphemeral":
        if not body.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": state.next_ts()}
    if method == "chat.getPermalink":
        ts = str(body.get("message_ts", "")).replace(".", "")
        return {
            "ok": True,
            "channel": channel_id,
            "permalink": f"https://{state.workspace}.slack.com/archives/{channel_id}/p{ts}",
        }
    return {"ok": False, "error": "unknown_method"}


def _handler(state: SlackState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            """Quiet: request lines would show what the cards say."""

        def _send(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {state.token}"

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            arrived = time.monotonic()
            method = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if self.path.startswith("/respond/"):  # a response_url: no token, plain "ok"
                with state.lock:
                    state.calls.append(Call("response_url", json.loads(raw), arrived))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                return
            body = _parse(raw, self.headers.get("Content-Type", ""))
            if method == "apps.connections.open":  # Socket Mode: the app-level token only
                self._send(200, self._connections_open(arrived))
                return
            if not self._authorised():
                self._send(200, {"ok": False, "error": "invalid_auth"})
                return
            with state.lock:
                if method == "chat.postMessage" and state.random.random() < state.rate_limit_share:
                    state.rate_limited += 1
                    self._send(
                        429,
                        {"ok": False, "error": "ratelimited"},
                        {"Retry-After": str(state.retry_after)},
                    )
                    return
                answer = _answer(state, method, body)
                if answer.get("ok"):
                    state.calls.append(Call(method, body, arrived))
            self._send(200, answer)

        def do_GET(self) -> None:  # noqa: N802 - slack_sdk sends chat.getPermalink as a GET
            arrived = time.monotonic()
            path, _, query = self.path.partition("?")
            if not self._authorised():
                self._send(200, {"ok": False, "error": "invalid_auth"})
                return
            method, body = path.rsplit("/", 1)[-1], dict(parse_qsl(query))
            with state.lock:
                answer = _answer(state, method, body)
                if answer.get("ok"):
                    state.calls.append(Call(method, body, arrived))
            self._send(200, answer)

        def _connections_open(self, arrived: float) -> dict[str, Any]:
            authorization = self.headers.get("Authorization")
            if self._authorised():
                return {"ok": False, "error": "not_allowed_token_type"}
            if state.app_token is None or authorization != f"Bearer {state.app_token}":
                return {"ok": False, "error": "invalid_auth"}
            with state.lock:
                state.calls.append(Call("apps.connections.open", {}, arrived))
            if state.socket_url is None:
                return {"ok": False, "error": "internal_error"}
            return {"ok": True, "url": state.socket_url}

    return Handler


@contextmanager
def slack_stub(
    channels: dict[str, str],
    *,
    token: str,
    app_token: str | None = None,
    workspace: str = "earful-stub",
    host: str = "127.0.0.1",
) -> Iterator[tuple[str, SlackState]]:
    """Run the stub on a free port; yields its API base URL (for ``WebClient(base_url=…)``)
    and its state. It accepts ``token`` as the bot token and knows only ``channels``."""
    state = SlackState(
        token=token, app_token=app_token, channels=dict(channels), workspace=workspace
    )
    server = ThreadingHTTPServer((host, 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="slack-stub", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/api/", state
    finally:
        server.shutdown()
        server.server_close()
