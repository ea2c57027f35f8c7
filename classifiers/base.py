"""The classifier protocol: a batch of (mention, contact) in, classifications out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.models import Classification, ContactSnapshot, Mention


class Classifier(Protocol):
    """A pure, batched step; models load lazily on the first batch, never at import."""

    name: str

    def classify(self, batch: Sequence[tuple[Mention, ContactSnapshot]]) -> list[Classification]:
        """One classification per input, in input order."""
        ...
