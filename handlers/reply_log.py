"""Replies Earful cannot post: the log, without the customer's words.

X and Telegram replies go back to the platform when their credentials are set
(`bot.app.build_reply_sink`). A reply to a mention from anywhere else (a feed, the webhook, an
import) or to a platform without credentials is recorded here and in the contact history,
for the agent to post by hand.
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
            "reply %s for %s message %s: %d characters (no %s client: logged only)",
            payload["interaction_id"],
            payload["platform"],
            payload["in_reply_to"],
            len(payload["text"]),
            payload["platform"],
        )
        self.sent.append(effect)
