"""A local stand-in of the Telegram Bot API for tests: real HTTP on port 0, Telegram's wire format.

It serves ``/bot<TOKEN>/<method>`` for getMe, getUpdates, sendMessage, setWebhook and
deleteWebhook, answering ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code",
"description", "parameters"?}`` like Telegram. getUpdates has Telegram's offset semantics:
updates below the offset are confirmed and dropped for good; with none pending it waits up
to ``timeout`` (cut to ``max_wait``) for one. Every call is recorded; failures (429 with
``retry_after``, 5xx, bodies that are not JSON, slow answers) can be queued per method.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

TOKEN = "7001:AAE-earful-test-token-0000"  # noqa: S105 - a test token, searched for in logs
BOT_USER = {"id": 7001, "is_bot": True, "first_name": "Acme Care", "username": "acme_care_bot"}


@dataclass
class Call:
    """One API call as received: the method and its parameters (JSON values decoded)."""

    method: str
    params: dict[str, Any]


@dataclass
class Failure:
    """A queued answer for the next call of a method, instead of the real one."""

    status: int
    description: str = ""
    retry_after: int | None = None
    body: bytes | None = None  # sent as is (e.g. not JSON)
    delay: float = 0.0  # seconds to wait before answering (a slow server)


@dataclass
class TelegramState:
    """What the stand-in knows and has seen."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    webhook_url: str | None = None
    max_wait: float = 0.3
    confirmed: int = 0  # the offset Telegram last saw: updates below it are gone
    lock: threading.Condition = field(default_factory=threading.Condition)
    _message_id: int = 1000

    def add(self, *updates: dict[str, Any]) -> None:
        """Queue updates for the bot (each with its ``update_id``)."""
        with self.lock:
            self.updates.extend(updates)
            self.lock.notify_all()

    def fail(self, method: str, failure: Failure, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``failure``."""
        with self.lock:
            self.failures.setdefault(method.lower(), []).extend([failure] * times)

    def called(self, method: str) -> list[Call]:
        """Calls of ``method`` that reached the stand-in, in order."""
        with self.lock:
            return [c for c in self.calls if c.method == method.lower()]


def _decode(raw: bytes, content_type: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        return json.loads(raw) if raw else {}
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode()):
        # PTB sends form fields; objects, lists and numbers arrive JSON-encoded, text as is.
        try:
            params[key] = value if key == "text" else json.loads(value)
        except ValueError:
            params[key] = value
    return params


def _handler(state: TelegramState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            """Quiet."""

        def _send(self, status: int, body: dict[str, Any] | bytes) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            # The client may have given up waiting (a timeout test).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def _error(self, status: int, description: str, **parameters: Any) -> None:
            body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
            if parameters:
                body["parameters"] = parameters
            self._send(status, body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.do_POST()

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            prefix, _, method = self.path.split("?", 1)[0].rpartition("/")
            if prefix != f"/bot{TOKEN}":
                self._error(401, "Unauthorized")
                return
            params = _decode(raw, self.headers.get("Content-Type", ""))
            method = method.lower()  # Bot API method names are case-insensitive
            with state.lock:
                state.calls.append(Call(method, params))
                queued = state.failures.get(method)
                failure = queued.pop(0) if queued else None
            if failure is not None:
                time.sleep(failure.delay)
                if failure.body is not None:
                    self._send(failure.status, failure.body)
                    return
                if failure.status != 200:
                    extra = (
                        {} if failure.retry_after is None else {"retry_after": failure.retry_after}
                    )
                    self._error(failure.status, failure.description, **extra)
                    return
                # a 200 with a delay: a slow but good answer, given below
            status, answer = self._answer(method, params)
            if status == 200:
                self._send(200, {"ok": True, "result": answer})
            else:
                self._error(status, str(answer))

        def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, Any]:
            if method == "getme":
                return 200, BOT_USER
            if method == "getupdates":
                return self._updates(params)
            if method == "sendmessage":
                return self._send_message(params)
            if method == "setwebhook":
                with state.lock:
                    state.webhook_url = params.get("url") or None
                return 200, True
            if method == "deletewebhook":
                with state.lock:
                    state.webhook_url = None
                return 200, True
            return 404, "Not Found: method not found"

        def _updates(self, params: dict[str, Any]) -> tuple[int, Any]:
            offset = int(params.get("offset") or 0)
            limit = int(params.get("limit") or 100)
            wait = min(float(params.get("timeout") or 0), state.max_wait)
            deadline = time.monotonic() + wait
            with state.lock:
                if state.webhook_url is not None:
                    return 409, (
                        "Conflict: can't use getUpdates method while webhook is active; "
                        "use deleteWebhook to delete the webhook first"
                    )
                if offset:
                    state.confirmed = max(state.confirmed, offset)
                    state.updates = [
                        u
                        for u in state.updates
                        if not isinstance(u.get("update_id"), int) or u["update_id"] >= offset
                    ]
                while not state.updates and time.monotonic() < deadline:
                    state.lock.wait(deadline - time.monotonic())
                return 200, state.updates[:limit]

        def _send_message(self, params: dict[str, Any]) -> tuple[int, Any]:
            if not params.get("text"):
                return 400, "Bad Request: message text is empty"
            with state.lock:
                state._message_id += 1
                message_id = state._message_id
            chat_id = int(params["chat_id"])
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
            message = {
                "message_id": message_id,
                "from": BOT_USER,
                "chat": chat,
                "date": int(time.time()),
                "text": params["text"],
            }
            reply = params.get("reply_parameters")
            if isinstance(reply, dict):
                message["reply_to_message"] = {
                    "message_id": reply["message_id"],
                    "chat": chat,
                    "date": int(time.time()),
                }
            return 200, message

    return Handler


@contextmanager
def telegram_standin() -> Iterator[tuple[str, TelegramState]]:
    """Run the stand-in; yields its base URL (for ``Bot(base_url=…)``) and its state."""
    state = TelegramState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/bot", state
    finally:
        server.shutdown()
        server.server_close()
