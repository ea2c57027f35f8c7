"""Suggested replies: the deciding playbook's templates, filled, and replies that worked before.

Candidates for a mention the playbooks decided to answer:

* the templates of the playbook that decided, with their slots filled from the mention, the
  contact and the set's slot values (a template whose slot has no value is left out: a reply
  with a hole in it must not be offered);
* past replies: for the past customer messages most similar to this one (cosine of sentence
  embeddings), the reply an agent sent. The index holds the bundled set of good replies
  (``playbooks/replies/replies.jsonl``, written for Earful) and the replies agents sent that the
  contact history logged.

Every candidate is scored by the cosine between the mention and the customer message it
answers (for a template: the template's own text), checked for the platform and its length
limit, and the best three distinct ones are kept.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bot.models import (
    Action,
    Classification,
    ContactSnapshot,
    Decision,
    Mention,
    Platform,
    Suggestion,
)
from classifiers.text import normalise
from playbooks.schema import Template

Embed = Callable[[Sequence[str]], np.ndarray]
MAX_SUGGESTIONS = 3
# Longest public reply per platform; None where Earful does not reply on the platform itself.
PLATFORM_LIMITS: Mapping[Platform, int | None] = {
    Platform.X: 280,
    Platform.TELEGRAM: 4096,
    Platform.WEBHOOK: 4096,
    Platform.OTHER: 4096,
    Platform.BLOG: None,
}
_LEADING_HANDLES = re.compile(r"^(?:@\w+\s+)+")


def bundled_replies() -> Path:
    """The cold-start set of good replies that ships with Earful."""
    return Path(str(resources.files("playbooks") / "replies" / "replies.jsonl"))


@dataclass(frozen=True, slots=True)
class PastReply:
    """A customer message and the reply an agent sent to it."""

    customer: str
    reply: str
    source: str  # "bundled" or "history"
    intent: str | None = None  # of the customer message, where known


def load_bundled(path: Path | None = None) -> list[PastReply]:
    """The bundled replies."""
    lines = (path or bundled_replies()).read_text(encoding="utf-8").splitlines()
    return [
        PastReply(row["customer"], row["reply"], "bundled", row.get("intent"))
        for row in (json.loads(line) for line in lines if line.strip())
    ]


def _first_name(mention: Mention, contact: ContactSnapshot) -> str | None:
    for name in (contact.name, mention.author.display_name):
        if name and name.split():
            return name.split()[0]
    return None


def fill(template: str, values: Mapping[str, str | None]) -> str | None:
    """The template with its slots filled; None when a slot has no value or a brace is stray."""
    try:
        names = [slot for _, slot, _, _ in string.Formatter().parse(template) if slot]
    except ValueError:  # a past reply with a lone brace is no template
        return None
    if any(not values.get(name) for name in names):
        return None
    return template.format_map({name: values[name] for name in names})


def fits(text: str, platform: Platform, max_chars: int | None = None) -> bool:
    """The check every suggestion passes before it is shown: not empty, within the limits.

    The guardrail policy (personal data, promises, tone, links) replaces this when it lands.
    """
    limit = PLATFORM_LIMITS.get(platform)
    if max_chars is not None:
        limit = min(limit, max_chars) if limit else max_chars
    stripped = text.strip()
    return bool(stripped) and "{" not in stripped and (limit is None or len(stripped) <= limit)


class Suggester:
    """Up to three replies per mention the playbooks decided to answer."""

    def __init__(
        self,
        *,
        embed: Embed,
        slots: Mapping[str, str],
        templates: Callable[[Decision], Sequence[Template]],
        past: Sequence[PastReply] = (),
        per_query: int = 20,
        min_score: float = 0.3,
    ) -> None:
        self.embed = embed
        self.slots = dict(slots)
        self.templates = templates
        self.per_query = per_query
        self.min_score = min_score
        self._past: list[PastReply] = []
        self._pending: list[PastReply] = []
        self._index: np.ndarray | None = None
        self.add_past(past)

    def add_past(self, replies: Sequence[PastReply]) -> None:
        """Add past replies to the index (the history, or replies sent since); embedded lazily."""
        self._pending += [r for r in replies if r.customer.strip() and r.reply.strip()]

    def _indexed(self) -> np.ndarray | None:
        if self._pending:
            vectors = self.embed([normalise(r.customer) for r in self._pending])
            self._past += self._pending
            self._pending = []
            self._index = vectors if self._index is None else np.vstack([self._index, vectors])
        return self._index

    def suggest(
        self, batch: Sequence[tuple[Mention, ContactSnapshot, Classification, Decision]]
    ) -> list[tuple[Suggestion, ...]]:
        """Suggestions for each mention, best first; none unless the decision is to respond.

        A past reply is only offered for a message of the same intent as the one it answered.
        """
        wanted = [i for i, (_, _, _, d) in enumerate(batch) if d.action == Action.RESPOND]
        results: list[tuple[Suggestion, ...]] = [()] * len(batch)
        if not wanted:
            return results
        queries = self.embed([normalise(batch[i][0].text) for i in wanted])
        neighbours = self._neighbours(queries)
        slot_values = [self._values(batch[i][0], batch[i][1]) for i in wanted]
        filled = [
            [
                (text, f"template:{batch[i][3].playbook}/{template.id}", template.max_chars)
                for template in self.templates(batch[i][3])
                if not template.platforms or batch[i][0].platform in template.platforms
                if (text := fill(template.text, values)) is not None
            ]
            for i, values in zip(wanted, slot_values, strict=True)
        ]
        # Every filled template of the batch in one model pass.
        texts = [normalise(text) for row in filled for text, _, _ in row]
        template_vectors = iter(self.embed(texts)) if texts else iter(())
        for row, i in enumerate(wanted):
            mention, _, classification, _ = batch[i]
            intent = classification.intent.label if classification.intent else None
            values = slot_values[row]
            candidates: list[tuple[str, str, float, int | None]] = [
                (text, source, float(next(template_vectors) @ queries[row]), max_chars)
                for text, source, max_chars in filled[row]
            ]
            for index, score in neighbours[row]:
                past = self._past[index]
                if past.intent is not None and past.intent != intent:
                    continue
                text = fill(past.reply, values)
                if text is not None:
                    text = _LEADING_HANDLES.sub("", text)
                    if score >= self.min_score:
                        candidates.append((text, f"{past.source} reply", score, None))
            results[i] = self._best(candidates, mention.platform)
        return results

    def _values(self, mention: Mention, contact: ContactSnapshot) -> dict[str, str | None]:
        return {
            **self.slots,
            "first_name": _first_name(mention, contact),
            "name": contact.name or mention.author.display_name,
            "handle": mention.author.label if mention.author.handle else None,
        }

    def _neighbours(self, queries: np.ndarray) -> list[list[tuple[int, float]]]:
        index = self._indexed()
        if index is None:
            return [[] for _ in range(len(queries))]
        similarity = queries @ index.T
        k = min(self.per_query, similarity.shape[1])
        top = np.argsort(-similarity, axis=1)[:, :k]
        return [[(int(j), float(similarity[r, j])) for j in row] for r, row in enumerate(top)]

    @staticmethod
    def _best(
        candidates: list[tuple[str, str, float, int | None]], platform: Platform
    ) -> tuple[Suggestion, ...]:
        usable = [c for c in sorted(candidates, key=lambda c: -c[2]) if fits(c[0], platform, c[3])]
        # The playbook's own words come first among equals: keep its best template in any case.
        template = next((c for c in usable if c[1].startswith("template:")), None)
        chosen: list[Suggestion] = []
        seen: set[str] = set()
        for text, source, score, _ in ([template] if template else []) + usable:
            key = text.strip().lower()
            if key in seen:
                continue
            seen.add(key)
            chosen.append(Suggestion(text=text.strip(), source=source, score=round(score, 3)))
            if len(chosen) == MAX_SUGGESTIONS:
                break
        return tuple(sorted(chosen, key=lambda s: -s.score))
