"""A local stand-in of Slack's Socket Mode server: a WebSocket on port 0, Slack's envelopes.

`slack_standin`'s ``apps.connections.open`` hands out `SocketStandin.url`
(``ws://127.0.0.1:PORT/link/?ticket=…&app_id=…``); a connection with another ticket is refused
with HTTP 403, as Slack refuses a stale one. On each connection it sends Slack's
``{"type": "hello", …}``; `send` pushes an envelope (``{"envelope_id", "type", "payload",
"accepts_response_payload"}``) and every message the client sends back is recorded as an ack.
The server runs on its own event loop in a thread, so the client can be another process.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = "A0EARFUL"


@dataclass
class SocketState:
    """What the stand-in has seen: connections opened and closed by the client, and acks."""

    opened: int = 0
    closed_by_client: int = 0
    refused: int = 0
    acks: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, envelope_id: str) -> dict[str, Any] | None:
        """The client's answer to one envelope, if it came."""
        with self.lock:
            return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)


class SocketStandin:
    """The WebSocket server; use `socket_standin()` to run it."""

    def __init__(self) -> None:
        self.state = SocketState()
        self.ticket = uuid.uuid4().hex
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._stopping = False
        self.port = 0

    @property
    def url(self) -> str:
        """The URL ``apps.connections.open`` answers with."""
        return f"ws://127.0.0.1:{self.port}/link/?ticket={self.ticket}&app_id={APP_ID}"

    def start(self) -> None:
        """Listen on a free loopback port."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        """Close open sockets from the server side and stop the loop."""
        self._stopping = True
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
    ) -> str:
        """Push an envelope (``interactive``, ``slash_commands``, ``events_api``) down the
        newest connection; returns its envelope id."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }

        async def push() -> None:
            await self._sockets[-1].send_str(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(push(), self._loop).result(timeout=10)
        return envelope_id

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.port = int(listener.getsockname()[1])
        await web.SockSite(self._runner, listener).start()

    async def _link(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") != self.ticket:
            with self.state.lock:
                self.state.refused += 1
            raise web.HTTPForbidden
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        with self.state.lock:
            self.state.opened += 1
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {
                        "host": "applink-standin",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                with self.state.lock:
                    self.state.acks.append(json.loads(message.data))
        if not self._stopping:  # the client hung up, not the stand-in
            with self.state.lock:
                self.state.closed_by_client += 1
        return ws


@contextmanager
def socket_standin() -> Iterator[SocketStandin]:
    """Run the Socket Mode stand-in for the duration of the block."""
    standin = SocketStandin()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
