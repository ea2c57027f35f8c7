"""Where replies go until the sources can post them: the log, without the customer's words.

The sources issue replaces this sink with X and Telegram clients that post the reply under the
customer's message; until then a reply is recorded as sent here (and in the contact history).
"""

from __future__ import annotations

import logging

from storage.outbox import Effect

log = logging.getLogger(__name__)


class LoggedReplies:
    """A sink for ``reply`` effects that logs what would be posted, and keeps it for a test."""

    def __init__(self) -> None:
        self.sent: list[Effect] = []

    def deliver(self, effect: Effect) -> None:
        """Log the reply's destination and length (never its text)."""
        payload = effect.payload
        log.info(
            "reply %s for %s message %s: %d characters (no %s client yet: logged only)",
            payload["interaction_id"],
            payload["platform"],
            payload["in_reply_to"],
            len(payload["text"]),
            payload["platform"],
        )
        self.sent.append(effect)
