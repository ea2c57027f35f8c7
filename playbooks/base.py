"""The protocols of the decision step: a classified mention in, a decision with reasons out."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from bot.models import Classification, ContactSnapshot, Decision, Mention


class Traffic(Protocol):
    """Recent volume, for spike triggers."""

    def similar(self, mention: Mention, classification: Classification, within: timedelta) -> int:
        """Mentions like this one in the ``within`` before it, itself included."""
        ...


class Decider(Protocol):
    """Pure: the same inputs always give the same decision."""

    @property
    def spike_window(self) -> timedelta | None:
        """The longest window a spike trigger looks back over, or None without spike rules."""
        ...

    def decide(
        self,
        mention: Mention,
        classification: Classification,
        contact: ContactSnapshot,
        traffic: Traffic | None = None,
    ) -> Decision:
        """Respond, watch or dismiss, with priority, channel and reasons."""
        ...
