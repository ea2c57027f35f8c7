"""Recent volume of similar mentions, for the playbooks' spike triggers.

Two mentions are similar when they carry the same risk flags, or, without flags, the same
intent. Counts use the mentions' own times, so a replay of old traffic finds the same spikes.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from bot.models import Classification, Mention


def similarity_key(classification: Classification) -> str | None:
    """What makes mentions alike for volume counting; None for an unclassified mention."""
    if not classification.classified:
        return None
    if classification.flags:
        return "flags:" + ",".join(sorted(classification.flags))
    return f"intent:{classification.intent.label}" if classification.intent else None


class RecentTraffic:
    """Times of judged mentions by similarity key; answers 'how many like this lately'."""

    def __init__(self, earlier: Iterable[tuple[datetime, str | None]] = ()) -> None:
        self._times: defaultdict[str, list[datetime]] = defaultdict(list)
        for at, key in earlier:
            if key is not None:
                self._times[key].append(at)
        for times in self._times.values():
            times.sort()

    def add(self, at: datetime, key: str | None) -> None:
        """Count one more mention at ``at``."""
        if key is not None:
            bisect.insort(self._times[key], at)

    def similar(self, mention: Mention, classification: Classification, within: timedelta) -> int:
        """Similar mentions in ``[created_at - within, created_at]``, this one included."""
        key = similarity_key(classification)
        if key is None:
            return 1
        times = self._times[key]
        end = bisect.bisect_right(times, mention.created_at)
        start = bisect.bisect_left(times, mention.created_at - within)
        return max(1, end - start)
