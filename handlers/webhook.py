"""The signed webhook: any tool can POST mentions to ``earful run``, signed with a shared secret.

``POST /webhook/mentions`` with two headers:

* ``X-Earful-Timestamp``: the time of sending, in unix seconds;
* ``X-Earful-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed with the secret, of
  ``v1:{timestamp}:{raw body}`` (see `sign`).

The body is one mention as a JSON object in the input contract of ``earful classify``
(``{"id", "text", "platform"?, "author"?, ...}``; the platform defaults to ``webhook``), or a
batch: a JSON array of them, or ``{"mentions": [...]}``. A batch is all or nothing: when any
record is invalid, nothing is stored and the answer lists every invalid record, so the sender
fixes and resends the whole batch.

Answers, each JSON: ``202 {"stored": n, "duplicates": m}`` once the mentions are stored (a
mention sent again is a duplicate, stored once); 401 for a missing or wrong signature or a
stale timestamp; 413 for a body over ``max_body_bytes``; 400 for a body that is not JSON or a
record that is not valid, naming the field; 503 when the database cannot store now (retry).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.errors import ConfigError, InputError
from bot.models import Clock, Mention, Platform, now_utc
from bot.sources import Fetched, WebhookConfig
from handlers.file_import import parse_record

log = logging.getLogger(__name__)

PATH = "/webhook/mentions"
TIMESTAMP_HEADER = "X-Earful-Timestamp"
SIGNATURE_HEADER = "X-Earful-Signature"
MIN_SECRET_CHARS = 16
MAX_ERRORS_LISTED = 50


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Earful-Signature`` value for ``body`` sent at ``timestamp``."""
    message = b"v1:" + str(timestamp).encode("ascii") + b":" + body
    return "v1=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


class _Refused(Exception):
    """A request answered with an error status; internal to this module."""

    def __init__(self, status: int, error: str, errors: list[str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.errors = errors


class WebhookReceiver:
    """Checks, parses and stores the mentions POSTed to the webhook, answering when stored."""

    def __init__(
        self,
        config: WebhookConfig,
        *,
        secret: str,
        store: Callable[[Fetched], list[int]],
        max_text_chars: int,
        clock: Clock = now_utc,
    ) -> None:
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"the webhook secret must be at least {MIN_SECRET_CHARS} characters "
                "(for example the output of: openssl rand -hex 32)"
            )
        self.config = config
        self._secret = secret
        self.store = store
        self.max_text_chars = max_text_chars
        self.clock = clock

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookReceiver(path={PATH!r}, max_body_bytes={self.config.max_body_bytes})"

    def routes(self) -> list[web.RouteDef]:
        """The route to add to the service's aiohttp application; none when disabled."""
        return [web.post(PATH, self.handle)] if self.config.enabled else []

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one POST: authenticate, read, validate, store, then say what was stored."""
        try:
            timestamp = self._fresh_timestamp(request)
            body = await self._body(request)
            self._authenticate(request, timestamp, body)
            mentions = self._mentions(body)
        except _Refused as refused:
            log.warning("webhook: %s from %s: %s", refused.status, request.remote, refused.error)
            payload: dict[str, Any] = {"error": refused.error}
            if refused.errors:
                payload["errors"] = refused.errors
            return web.json_response(payload, status=refused.status)
        try:
            new = await asyncio.to_thread(self.store, Fetched(mentions=tuple(mentions)))
        except Exception as exc:
            # No traceback: a database error quotes its parameters, the customers' text.
            log.error(  # noqa: TRY400
                "webhook: storing %d mention(s) failed (%s)", len(mentions), type(exc).__name__
            )
            return web.json_response(
                {"error": "cannot store the mentions now; retry later"},
                status=503,
                headers={"Retry-After": "30"},
            )
        duplicates = len(mentions) - len(new)
        log.info("webhook: %d mention(s) stored, %d duplicate(s)", len(new), duplicates)
        return web.json_response({"stored": len(new), "duplicates": duplicates}, status=202)

    def _fresh_timestamp(self, request: web.Request) -> str:
        missing = [h for h in (TIMESTAMP_HEADER, SIGNATURE_HEADER) if not request.headers.get(h)]
        if missing:
            raise _Refused(401, f"missing {' and '.join(missing)} header; sign every request")
        timestamp = request.headers[TIMESTAMP_HEADER].strip()
        if not timestamp.isdigit():
            raise _Refused(401, f"{TIMESTAMP_HEADER} must be unix seconds, e.g. 1700000000")
        skew = abs(self.clock().timestamp() - int(timestamp))
        if skew > self.config.tolerance_seconds:
            raise _Refused(
                401,
                f"stale timestamp: {skew:.0f} s from the server's clock, more than the "
                f"{self.config.tolerance_seconds} s allowed; sign each request when sending it",
            )
        return timestamp

    async def _body(self, request: web.Request) -> bytes:
        """The raw body, read no further than one byte past the limit."""
        limit = self.config.max_body_bytes
        too_large = _Refused(413, f"body is larger than {limit:,} bytes; send smaller batches")
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        body = bytearray()
        while len(body) <= limit:
            chunk = await request.content.read(limit + 1 - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) > limit:
            raise too_large
        return bytes(body)

    def _authenticate(self, request: web.Request, timestamp: str, body: bytes) -> None:
        expected = sign(self._secret, timestamp, body).encode("ascii")
        given = request.headers[SIGNATURE_HEADER].strip().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(expected, given):
            raise _Refused(401, f"bad signature: {SIGNATURE_HEADER} does not match the body")

    def _mentions(self, body: bytes) -> list[Mention]:
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise _Refused(400, "body is not valid UTF-8") from None
        except json.JSONDecodeError as exc:
            raise _Refused(
                400, f"body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
        if isinstance(data, list):
            records, name = data, "mentions[{}]"
        elif isinstance(data, dict) and isinstance(data.get("mentions"), list):
            records, name = data["mentions"], "mentions[{}]"
        elif isinstance(data, dict):
            records, name = [data], "mention"
        else:
            raise _Refused(400, 'body must be a mention object, an array, or {"mentions": [...]}')
        if not records:
            raise _Refused(400, "the batch holds no mentions")
        received_at = self.clock()
        mentions: list[Mention] = []
        errors: list[str] = []
        for index, record in enumerate(records):
            if isinstance(record, dict):
                record = {"platform": Platform.WEBHOOK.value, **record}
            try:
                mentions.append(
                    parse_record(
                        record,
                        where=name.format(index),
                        max_text_chars=self.max_text_chars,
                        received_at=received_at,
                    )
                )
            except InputError as error:
                errors.append(str(error))
        if len(errors) == 1 and len(records) == 1:
            raise _Refused(400, errors[0])
        if errors:
            raise _Refused(
                400,
                f"{len(errors)} of {len(records)} mentions are invalid; nothing was stored",
                errors[:MAX_ERRORS_LISTED],
            )
        return mentions
