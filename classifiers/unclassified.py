"""The visible pass-through used until real classifiers are configured: no labels, ever."""

from __future__ import annotations

from collections.abc import Sequence

from bot.models import Classification, ContactSnapshot, Mention


class Unclassified:
    """Marks every mention ``unclassified`` rather than inventing labels for it."""

    name = "unclassified"

    def classify(self, batch: Sequence[tuple[Mention, ContactSnapshot]]) -> list[Classification]:
        """One honest 'not classified' result per mention."""
        return [Classification.unclassified() for _ in batch]
