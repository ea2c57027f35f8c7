"""A local stand-in of the Slack Web API for tests: real HTTP on port 0, Slack's wire format.

It implements the methods Earful calls (chat.postMessage, chat.update, chat.getPermalink),
answers like Slack (``{"ok": true, "channel", "ts", …}``, errors as ``{"ok": false, "error"}``
with HTTP 200, rate limits as HTTP 429 with Retry-After), checks the bot token, records every
call, and can refuse a share of posts with 429 to exercise the outbox.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

from slack_sdk.signature import SignatureVerifier

TOKEN = "xoxb-test-0000-earful"  # noqa: S105 - a test token, searched for in logs


@dataclass
class Call:
    """One API call as received."""

    method: str
    body: dict[str, Any]


@dataclass
class SlackState:
    """What the stand-in knows and has seen."""

    channels: dict[str, str] = field(default_factory=dict)  # "#care" → "C0CARE"
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rate_limit_share: float = 0.0
    retry_after: int = 1
    rate_limited: int = 0
    random: random.Random = field(default_factory=lambda: random.Random(7))
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: int = 0

    def next_ts(self) -> str:
        self._ts += 1
        return f"1767225600.{self._ts:06d}"

    def posts(self) -> list[Call]:
        """Successful chat.postMessage calls, in order."""
        return [c for c in self.calls if c.method == "chat.postMessage"]


def _handler(state: SlackState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            """Quiet."""

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

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            method = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if self.path.startswith("/respond/"):  # a response_url: no token, plain "ok"
                with state.lock:
                    state.calls.append(Call("response_url", json.loads(raw)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                return
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw) if raw else {}
            else:
                body = dict(parse_qsl(raw))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
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
                answer = self._answer(method, body)
                if answer.get("ok"):
                    state.calls.append(Call(method, body))
            self._send(200, answer)

        def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
            if method == "auth.test":
                return {"ok": True, "team_id": "T0EARFUL", "user_id": "U0BOT", "bot_id": "B0BOT"}
            if method == "views.open":
                view = body.get("view")
                view = json.loads(view) if isinstance(view, str) else view
                return {"ok": True, "view": {"id": f"V{state.next_ts()[-6:]}", **(view or {})}}
            channel = str(body.get("channel", ""))
            channel_id = state.channels.get(
                channel, channel if channel in state.channels.values() else None
            )
            if channel_id is None:
                return {"ok": False, "error": "channel_not_found"}
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
            if method == "chat.getPermalink":
                ts = str(body.get("message_ts", "")).replace(".", "")
                return {
                    "ok": True,
                    "channel": channel_id,
                    "permalink": f"https://earful-test.slack.com/archives/{channel_id}/p{ts}",
                }
            return {"ok": False, "error": "unknown_method"}

    return Handler


@contextmanager
def slack_standin(channels: dict[str, str]) -> Iterator[tuple[str, SlackState]]:
    """Run the stand-in; yields its API base URL (for ``WebClient(base_url=…)``) and its state.

    Response URLs for interactive payloads are ``<server>/respond/<anything>``.
    """
    state = SlackState(channels=dict(channels))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/", state
    finally:
        server.shutdown()
        server.server_close()


def signed(
    payload: dict[str, Any], *, secret: str | None, age: float = 0
) -> tuple[str, dict[str, str]]:
    """An interactive payload as Slack sends it: form-encoded body and signed headers.

    ``secret`` None leaves the request unsigned; ``age`` dates it that many seconds back.
    """
    body = urlencode({"payload": json.dumps(payload)})
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if secret is not None:
        timestamp = str(int(time.time() - age))
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        headers |= {"x-slack-request-timestamp": timestamp, "x-slack-signature": str(signature)}
    return body, headers


def signed_action(
    *,
    action: str,
    value: int,
    channel: str,
    ts: str,
    user: str,
    response_url: str,
    secret: str | None,
    age: float = 0,
) -> tuple[str, dict[str, str]]:
    """A click on a card button (``block_actions``), signed."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": "T0EARFUL"},
        "api_app_id": "A0EARFUL",
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "channel": {"id": channel},
        "message": {"ts": ts, "type": "message"},
        "trigger_id": "1.2.3",
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": f"earful.{action}",
                "block_id": f"earful.card.{value}",
                "value": str(value),
                "action_ts": str(time.time()),
            }
        ],
    }
    return signed(payload, secret=secret, age=age)


def signed_submission(
    view: dict[str, Any], values: dict[str, dict[str, str]], *, user: str, secret: str | None
) -> tuple[str, dict[str, str]]:
    """The submission of a modal Earful opened (``view_submission``), with the user's input:
    ``values`` maps block id → action id → the text typed."""
    state = {
        block: {
            action: {"type": "plain_text_input", "value": text} for action, text in inputs.items()
        }
        for block, inputs in values.items()
    }
    payload = {
        "type": "view_submission",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": "T0EARFUL"},
        "api_app_id": "A0EARFUL",
        "trigger_id": "4.5.6",
        "view": {**view, "id": "V0REPLY", "state": {"values": state}},
    }
    return signed(payload, secret=secret)
