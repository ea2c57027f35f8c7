"""Suggested replies: the deciding playbook's templates, filled, and replies that worked before.

Candidates for a mention the playbooks decided to answer:

* the templates of the playbook that decided, with their slots filled from the mention, the
  contact and the set's slot values (a template whose slot has no value is left out: a reply
  with a hole in it must not be offered);
* past replies: the replies agents sent to the past customer messages most similar to this one
  (cosine of sentence embeddings). The index holds the replies that the contact history logged
  and a bundled set of brand-neutral replies (``playbooks/replies/replies.jsonl``, written for
  Earful). The bundled set is a cold start: its replies are offered only when no history reply
  qualifies, and only for a closer match (``bundled_min_score``).

Every candidate is scored on one scale, how well it answers *this* mention: its cosine to the
reply the mention can be expected to get, estimated as the similarity-weighted mean embedding
of the replies sent to the most similar past messages (the history's; the bundled set's while
the history is empty). Without any past message, templates are scored by their cosine to the
mention. ``benchmarks/suggest_eval.py`` measures the ranking against the replies agents
actually sent.

What is shown: candidates that `fits` the platform, past replies without another case's
specifics (see `specifics`), near-identical ones once, at most three. The playbook's best
template is always among them, and neither a bundled reply (another brand's words) nor a reply
to a clearly different message (``on_topic``) ranks above the playbook's templates.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
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
_LINK = re.compile(r"https?://\S+|www\.\S+")
_TAG = re.compile(r"[@#](\w+)")
# A sentence ends at a stop, a dash, a line break or an emoji ("Great news 👍 Thanks").
_SENTENCE_END = re.compile(
    r"(?<=[.!?…:;)])\s+|\n+|\s[—–-]\s|[\u2600-\u27bf\U0001f000-\U0001faff\ufe0f\u200d]+\s*"
)
_WORD = re.compile(r"[^\W_](?:[\w'’.:/-]*[^\W_])?")
# Capitalised words that say nothing about one customer's case.
_PLAIN_CAPITALS = frozenset(
    {"i", "i'm", "i'll", "i've", "i'd", "i’m", "i’ll", "i’ve", "i’d"}
    | {"dm", "dms", "ok", "faq", "id", "pin", "pins", "eta"}
)
# Words that say nothing about what a message is about (with those under four letters).
_FUNCTION_WORDS_TEXT = """
    about actually after again also anyone anything around away back been before being best
    better come could does doing done dont even ever every from getting going gonna good have
    having here into just know last like literally look make many more most much need never
    next nothing only other over please really same should since some still such sure than
    thank thanks that their them then there these they thing things think this those through
    time today tomorrow very want wanted week well were what when where which while will with
    would yeah year years your yours yesterday
"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
# Whom a reply addresses by name: "Hi Sam and everyone", "Daniel, please call".
_ADDRESSED = re.compile(
    r"\b(?:[Hh]i|[Hh]ey|[Hh]ello|[Dd]ear|[Tt]hanks)\s+([A-Z][a-z'’-]+)|^([A-Z][a-z'’-]+),"
)
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "mx", "prof", "sir"})
_NUMBER_WORDS = frozenset(
    {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"}
    | {"fifteen", "twenty", "thirty", "forty", "fifty", "sixty", "hundred", "thousand"}
)


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
        if not name:
            continue
        # CRM exports write "Hsu, Wen (Dr.)": the given name follows the comma.
        family, comma, given = name.partition(",")
        part = given if comma and given.strip() else family
        words: list[str] = re.findall(r"[^\W\d_][\w'’-]*", part)
        words = [w for w in words if w.lower() not in _TITLES]
        if words:
            return words[0]
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


def _words(text: str) -> list[list[str]]:
    """The words of each sentence; links and handles left out."""
    text = _TAG.sub(" ", _LINK.sub(" ", text))
    return [_WORD.findall(sentence) for sentence in _SENTENCE_END.split(text)]


def vocabulary(text: str) -> set[str]:
    """Every word of ``text``, lower-cased, and the words joined into its handles and hashtags."""
    words = {word.lower() for sentence in _words(text) for word in sentence}
    return words | {tag.lower() for tag in _TAG.findall(_LINK.sub(" ", text))}


@functools.lru_cache(maxsize=16384)
def specifics(text: str) -> frozenset[str]:
    """The words of a reply that tie it to one case, lower-cased.

    A word with a digit (flight, order and phone numbers, times, amounts), a number word
    ("four hours"), or a capitalised word that does not open a sentence (names, places,
    products, menu items). Links and @handles are not looked at.
    """
    found: set[str] = set()
    for sentence in _words(text):
        for position, word in enumerate(sentence):
            lower = word.lower()
            if (
                any(c.isdigit() for c in word)
                or any(part in _NUMBER_WORDS for part in lower.split("-"))
                or (position and word[0].isupper() and lower not in _PLAIN_CAPITALS)
            ):
                found.add(lower)
    return frozenset(found)


@functools.lru_cache(maxsize=16384)
def topics(text: str) -> frozenset[str]:
    """What a message is about, roughly: its content words, cut to five letters ("ordered"
    meets "order"). Cached, like `specifics`: the same past replies are looked at for many
    mentions."""
    return frozenset(
        word[:5]
        for word in vocabulary(_TAG.sub(" ", text))
        if len(word) >= 4 and word.isalpha() and word not in _FUNCTION_WORDS
    )


def _addressed(text: str) -> set[str]:
    """The names a reply greets or opens with, lower-cased."""
    return {(greeted or opening).lower() for greeted, opening in _ADDRESSED.findall(text)}


def _known(word: str, words: set[str], tags: Iterable[str]) -> bool:
    # "Northwind" is known from a mention of @NorthwindMobile or #NorthwindDown.
    return word in words or (len(word) >= 4 and any(word in tag for tag in tags))


@dataclass(frozen=True, slots=True)
class _Neighbours:
    """The past messages most similar to a mention, best first: (index, cosine)."""

    history: list[tuple[int, float]]
    bundled: list[tuple[int, float]]

    @property
    def examples(self) -> list[tuple[int, float]]:
        """Whose replies estimate the expected reply: the history, else the bundled set."""
        return self.history or self.bundled


@dataclass(slots=True, eq=False)  # compared by identity
class _Candidate:
    text: str
    source: str
    vector: np.ndarray
    max_chars: int | None = None
    past: PastReply | None = None  # None for a template
    similarity: float = 1.0  # of the customer message the past reply answered
    score: float = 0.0


class Suggester:
    """Up to three replies per mention the playbooks decided to answer.

    ``min_score``: the least similarity between the mention and a past customer message for its
    reply to be offered; ``bundled_min_score`` the same for a bundled reply. ``expect_from``:
    how many of the most similar past messages estimate the expected reply. ``on_topic``: the
    similarity a past reply's customer message needs to rank above the playbook's templates
    (and to be offered when the classifier gave it another intent). ``common``: in how many
    history replies a word must appear to count as the brand's own vocabulary (its product
    names, its agents' sign-offs) rather than a specific. ``duplicate``: the cosine from which
    two candidates count as one. The defaults were chosen on the validation split of
    ``benchmarks/suggest_eval.py`` (``--split val``), never on its test split.
    """

    def __init__(
        self,
        *,
        embed: Embed,
        slots: Mapping[str, str],
        templates: Callable[[Decision], Sequence[Template]],
        past: Sequence[PastReply] = (),
        per_query: int = 20,
        min_score: float = 0.3,
        bundled_min_score: float = 0.6,
        expect_from: int = 20,
        on_topic: float = 0.5,
        common: int = 3,
        duplicate: float = 0.95,
    ) -> None:
        self.embed = embed
        self.slots = dict(slots)
        self.templates = templates
        self.per_query = per_query
        self.min_score = min_score
        self.bundled_min_score = bundled_min_score
        self.expect_from = expect_from
        self.on_topic = on_topic
        self.common = common
        self.duplicate = duplicate
        self._past: list[PastReply] = []
        self._pending: list[PastReply] = []
        self._index: np.ndarray | None = None
        self._replies: dict[int, np.ndarray] = {}  # reply embeddings, made when first needed
        self._brand_words: Counter[str] = Counter()  # history replies each word appears in
        self.add_past(past)

    def add_past(self, replies: Sequence[PastReply]) -> None:
        """Add past replies to the index (the history, or replies sent since); embedded lazily."""
        for reply in replies:
            if reply.customer.strip() and reply.reply.strip():
                self._pending.append(reply)
                if reply.source != "bundled":
                    self._brand_words.update(specifics(reply.reply))

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

        A past reply answered a message of the mention's intent, or one close enough
        (``on_topic``) that a different label is more likely the classifier's slip.
        """
        wanted = [i for i, (_, _, _, d) in enumerate(batch) if d.action == Action.RESPOND]
        results: list[tuple[Suggestion, ...]] = [()] * len(batch)
        if not wanted:
            return results
        queries = self.embed([normalise(batch[i][0].text) for i in wanted])
        neighbours = self._neighbours(queries)
        self._embed_replies(
            {j for n in neighbours for j, _ in n.examples[: self.expect_from]}
            | {j for n in neighbours for j, _ in n.history[: self.per_query]}
            | {j for n in neighbours for j, _ in n.bundled[: self.per_query]}
        )
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
            candidates = [
                _Candidate(text, source, next(template_vectors), max_chars)
                for text, source, max_chars in filled[row]
            ]
            candidates += self._past_candidates(mention, intent, neighbours[row], slot_values[row])
            self._score(candidates, queries[row], neighbours[row].examples)
            results[i] = self._best(candidates, mention.platform)
        return results

    def _values(self, mention: Mention, contact: ContactSnapshot) -> dict[str, str | None]:
        return {
            **self.slots,
            "first_name": _first_name(mention, contact),
            "name": contact.name or mention.author.display_name,
            "handle": mention.author.label if mention.author.handle else None,
        }

    def _neighbours(self, queries: np.ndarray) -> list[_Neighbours]:
        """Per query, the most similar past messages: history ones, and bundled ones."""
        index = self._indexed()
        if index is None:
            return [_Neighbours([], []) for _ in range(len(queries))]
        similarity = queries @ index.T
        bundled = np.array([p.source == "bundled" for p in self._past])
        k = max(self.per_query, self.expect_from)
        found = []
        for row in similarity:
            nearest = []
            for columns in (np.flatnonzero(~bundled), np.flatnonzero(bundled)):
                top = columns[np.argsort(-row[columns])[:k]]
                nearest.append([(int(j), float(row[j])) for j in top])
            found.append(_Neighbours(*nearest))
        return found

    def _embed_replies(self, wanted: set[int]) -> None:
        missing = sorted(j for j in wanted if j not in self._replies)
        if missing:
            texts = [normalise(_LEADING_HANDLES.sub("", self._past[j].reply)) for j in missing]
            self._replies.update(zip(missing, self.embed(texts), strict=True))

    def _past_candidates(
        self,
        mention: Mention,
        intent: str | None,
        neighbours: _Neighbours,
        values: Mapping[str, str | None],
    ) -> list[_Candidate]:
        """The neighbours' replies that may be offered: history ones, else bundled ones.

        Each answered a message close enough to the mention (``min_score``, or the higher
        ``bundled_min_score``) and of its intent, and carries no specifics the mention does not.
        A bundled reply must also share a content word with the mention (see `topics`): the
        sentiment-tuned embedding puts a network outage next to a delayed flight.
        """
        known = vocabulary(mention.text)
        for value in values.values():
            known |= vocabulary(value or "")
        tags = [tag.lower() for tag in _TAG.findall(mention.text)]
        # Names the mention itself uses (a place, a product), not the brand's everyday words.
        named = {
            word
            for word in vocabulary(_TAG.sub(" ", mention.text))
            if word.isalpha()
            and word not in _NUMBER_WORDS
            and self._brand_words[word] < self.common
        }
        about = topics(mention.text)
        for nearest, bar in (
            (neighbours.history, self.min_score),
            (neighbours.bundled, self.bundled_min_score),
        ):
            found = []
            for j, similarity in nearest[: self.per_query]:
                past = self._past[j]
                bundled = past.source == "bundled"
                text = fill(past.reply, values)
                if text is None or similarity < bar:
                    continue
                # History intents are the classifier's guesses; the bundled ones are hand-made.
                if past.intent not in (None, intent) and (bundled or similarity < self.on_topic):
                    continue
                text = _LEADING_HANDLES.sub("", text)
                if bundled and not about & topics(f"{past.customer} {text}"):
                    continue  # another brand's reply on another subject
                own = specifics(text)
                foreign = {
                    word
                    for word in own
                    if self._brand_words[word] < self.common and not _known(word, known, tags)
                }
                # A history reply that names what the mention names ("Columbus") is about the
                # same case or incident: its other specifics (when it started) come with it,
                # unless it greets another customer by name.
                same_case = own & named and not foreign & _addressed(text)
                if foreign and (bundled or not same_case):
                    continue
                found.append(
                    _Candidate(
                        text, f"{past.source} reply", self._replies[j], None, past, similarity
                    )
                )
            if found:
                return found
        return []

    def _score(
        self,
        candidates: Sequence[_Candidate],
        query: np.ndarray,
        neighbours: Sequence[tuple[int, float]],
    ) -> None:
        """Cosine to the expected reply: the similarity-weighted mean of the neighbours' replies."""
        nearest = neighbours[: self.expect_from]
        weights = np.array([max(similarity, 0.0) for _, similarity in nearest])
        if not nearest or weights.sum() <= 0:
            for candidate in candidates:  # nothing to learn from: closeness to the mention
                candidate.score = float(candidate.vector @ query)
            return
        expected = weights @ np.stack([self._replies[j] for j, _ in nearest])
        expected /= max(float(np.linalg.norm(expected)), 1e-9)
        for candidate in candidates:
            candidate.score = float(candidate.vector @ expected)

    def _held_back(self, candidate: _Candidate) -> bool:
        """True for a past reply that must not outrank the playbook's own words."""
        past = candidate.past
        return past is not None and (
            past.source == "bundled" or candidate.similarity < self.on_topic
        )

    def _same(self, one: _Candidate, other: _Candidate) -> bool:
        return (
            one.text.strip().lower() == other.text.strip().lower()
            or float(one.vector @ other.vector) >= self.duplicate
        )

    def _best(self, candidates: list[_Candidate], platform: Platform) -> tuple[Suggestion, ...]:
        usable = sorted(
            (c for c in candidates if fits(c.text, platform, c.max_chars)), key=lambda c: -c.score
        )
        template = next((c for c in usable if c.past is None), None)
        if template is not None:
            # The playbook's own words come before another brand's (a bundled reply) and before
            # a reply to a clearly different message.
            held = [c for c in usable if self._held_back(c)]
            usable = [c for c in usable if c not in held]
            after = max(i for i, c in enumerate(usable) if c.past is None) + 1
            usable[after:after] = held
        chosen: list[_Candidate] = []
        for candidate in usable:
            if not any(self._same(candidate, other) for other in chosen):
                chosen.append(candidate)
        if template is not None and template not in chosen[:MAX_SUGGESTIONS]:
            chosen.insert(MAX_SUGGESTIONS - 1, template)  # the playbook's words stay in view
        chosen = chosen[:MAX_SUGGESTIONS]
        return tuple(
            Suggestion(text=c.text.strip(), source=c.source, score=round(max(c.score, 0.0), 3))
            for c in chosen
        )
