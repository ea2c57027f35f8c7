"""Intent, risk flags and the default playbooks' respond decisions on the hand-labelled tweets.

    python benchmarks/intent_eval.py [--twcs ../shared/data/twcs/twcs_conversations.csv]

Labels: tests/fixtures/intent/twcs_intent_labels.csv (ids and labels only; the texts are
joined from the shared twcs file, whose licence keeps them out of the repo). The classifier
never trains on this set, and the default playbooks were not tuned on it. A tweet that
replies to another is classified as a reply.

needs_response: recall is the share of tweets labelled ``true`` that the default playbooks
decide to ``respond`` to; "false respond" is the share of ``respond`` decisions on tweets
labelled ``false`` (and, beside it, the share of ``false`` tweets that got ``respond``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bot.app import build_classifier, build_decider
from bot.config import load_settings
from bot.models import Author, ContactSnapshot, Mention, Platform
from classifiers.flags import FLAGS
from classifiers.intent import INTENTS

LABELS = Path(__file__).parents[1] / "tests" / "fixtures" / "intent" / "twcs_intent_labels.csv"


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--twcs", type=Path, default=Path("../shared/data/twcs/twcs_conversations.csv")
    )
    args = parser.parse_args()
    if not args.twcs.is_file():
        sys.exit(f"{args.twcs} not found: the texts of the evaluation set live there")
    with args.twcs.open(encoding="utf-8") as stream:
        tweets = {row["tweet_id"]: row for row in csv.DictReader(stream)}
    with LABELS.open(encoding="utf-8") as stream:
        gold = list(csv.DictReader(stream))
    now = datetime.now(UTC)
    batch = [
        (
            Mention(
                platform=Platform.X,
                external_id=row["tweet_id"],
                text=tweets[row["tweet_id"]]["text"],
                author=Author(handle=f"customer{tweets[row['tweet_id']]['author_id']}"),
                created_at=now,
                in_reply_to=tweets[row["tweet_id"]]["in_response_to_tweet_id"] or None,
            ),
            ContactSnapshot(contact_id=None),
        )
        for row in gold
    ]
    settings = load_settings()
    results = build_classifier(settings).classify(batch)
    decider = build_decider(settings)
    decisions = [
        decider.decide(mention, result, contact)
        for (mention, contact), result in zip(batch, results, strict=True)
    ]
    predicted = [r.intent.label if r.intent else "other" for r in results]
    truth = [row["intent"] for row in gold]
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    print(f"intent: {len(truth)} tweets, accuracy {accuracy:.3f}")
    f1s = []
    for label in INTENTS:
        tp = sum(p == t == label for p, t in zip(predicted, truth, strict=True))
        fp = sum(p == label != t for p, t in zip(predicted, truth, strict=True))
        fn = sum(t == label != p for p, t in zip(predicted, truth, strict=True))
        precision, recall, f1 = prf(tp, fp, fn)
        f1s.append(f1)
        print(
            f"  {label:<16} n={tp + fn:<4} precision {precision:.3f}  recall {recall:.3f}  F1 {f1:.3f}"
        )
    print(f"intent macro-F1 {sum(f1s) / len(f1s):.3f}")
    confusion = Counter((t, p) for p, t in zip(predicted, truth, strict=True) if p != t)
    print(
        "most common confusions (gold → predicted):",
        ", ".join(f"{t}→{p} {n}" for (t, p), n in confusion.most_common(6)),
    )
    print("risk flags:")
    for flag in FLAGS:
        has = [flag in row["flags"].split(";") for row in gold]
        got = [flag in r.flags for r in results]
        tp = sum(a and b for a, b in zip(has, got, strict=True))
        fp = sum(b and not a for a, b in zip(has, got, strict=True))
        fn = sum(a and not b for a, b in zip(has, got, strict=True))
        precision, recall, f1 = prf(tp, fp, fn)
        print(
            f"  {flag:<9} n={tp + fn:<3} raised {tp + fp:<3} precision {precision:.3f}  recall {recall:.3f}"
        )
    needs = [row["needs_response"] == "true" for row in gold]
    respond = [d.action is not None and d.action.value == "respond" for d in decisions]
    hits = sum(n and r for n, r in zip(needs, respond, strict=True))
    false_respond = sum(r and not n for n, r in zip(needs, respond, strict=True))
    print(
        f"needs_response (default playbooks): {sum(needs)} true, {len(needs) - sum(needs)} false; "
        f"recall as respond {hits / sum(needs):.3f}; "
        f"false respond {false_respond / max(1, sum(respond)):.3f} of {sum(respond)} respond "
        f"decisions ({false_respond} of {len(needs) - sum(needs)} false tweets)"
    )
    missed = Counter(
        f"{d.playbook}/{d.rule}"
        for n, r, d in zip(needs, respond, decisions, strict=True)
        if n and not r
    )
    print("  missed by rule:", ", ".join(f"{k} {v}" for k, v in missed.most_common(6)))


if __name__ == "__main__":
    main()
