"""The "open a ticket" escalation step: POST the breach as JSON to the playbook's webhook URL.

Any helpdesk or automation tool that accepts a JSON webhook can open the ticket. The request
carries an ``Idempotency-Key`` header (the outbox key), so a retried delivery can be
recognised by the receiver. Only the URL's host is ever logged: webhook URLs often carry a
token in their path or query.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from bot.errors import DeliveryRejected, RetryLater
from bot.models import now_utc
from storage.outbox import Effect

log = logging.getLogger(__name__)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - now_utc()).total_seconds())
    except (TypeError, ValueError):
        return None


class TicketWebhook:
    """A sink for ``ticket`` effects; 2xx is done, 408/429/5xx retry later, other 4xx fail."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def deliver(self, effect: Effect) -> None:
        """POST the escalation payload to the step's URL."""
        url = str(effect.payload["target"])
        host = urlsplit(url).hostname or "?"
        body = json.dumps({"event": "sla.escalation", **effect.payload}).encode()
        request = urllib.request.Request(  # noqa: S310 - the playbook schema admits http(s) only
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": effect.idempotency_key,
                "User-Agent": "earful",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                log.info("ticket opened at %s (HTTP %d)", host, response.status)
        except urllib.error.HTTPError as exc:
            exc.close()  # the error carries the open response
            reason = f"ticket webhook at {host} answered HTTP {exc.code}"
            if exc.code in (408, 429) or exc.code >= 500:
                raise RetryLater(
                    reason, parse_retry_after(exc.headers.get("Retry-After"))
                ) from None
            raise DeliveryRejected(reason) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise RetryLater(f"ticket webhook at {host} unreachable: {cause}") from None
