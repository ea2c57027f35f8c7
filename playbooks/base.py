"""The protocol of the decision step: a classified mention in, a decision with reasons out."""

from __future__ import annotations

from typing import Protocol

from bot.models import Classification, ContactSnapshot, Decision, Mention


class Decider(Protocol):
    """Pure: the same inputs always give the same decision."""

    def decide(
        self, mention: Mention, classification: Classification, contact: ContactSnapshot
    ) -> Decision:
        """Respond, watch or dismiss, with priority, channel and reasons."""
        ...
