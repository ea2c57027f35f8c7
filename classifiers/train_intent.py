"""Train the intent head over the shipped encoder's outputs.

    python -m classifiers.train_intent --twcs ../shared/data/twcs/twcs_conversations.csv

Training data, both written or labelled by people for Earful:

* ``classifiers/data/intent_examples.jsonl`` and ``intent_replies.jsonl``: 1,088 hand-written
  messages, balanced across intents (first messages, and replies inside a support thread).
* ``classifiers/data/twcs_intent_train_labels.csv``: hand labels for 1,500 real customer tweets
  of the twcs dataset, ids only (its licence keeps the texts out of the repository; they are
  joined from ``--twcs`` at training time). None of them is in the evaluation set
  (``tests/fixtures/intent``), which is never used here. Without ``--twcs`` only the written
  examples are used.

Logistic regression (multinomial). The class weighting, the weight of a real tweet against a
written one and C are chosen by 5-fold cross-validated macro-F1 on the real tweets (each fold is
predicted by a head trained on the written examples plus the other folds). Re-run after
retraining the sentiment model, since the embedding changes with it.

Run on 2026-11-22 (shipped head): chosen class weights none, real-tweet weight 2, C=10;
cross-validated macro-F1 0.418, accuracy 0.694 on the 1,500 real tweets.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from classifiers.intent import BUNDLED_HEAD, INTENTS, intent_features
from classifiers.text import normalise
from classifiers.text_model import MiniLMModel

DATA = Path(__file__).with_name("data")
EXAMPLES = (DATA / "intent_examples.jsonl", DATA / "intent_replies.jsonl")
REAL_LABELS = DATA / "twcs_intent_train_labels.csv"
GRID = {"class_weight": ("balanced", None), "real_weight": (1.0, 2.0, 4.0), "c": (1.0, 3.0, 10.0)}


def _features(model: MiniLMModel, texts: list[str], replies: list[bool]) -> np.ndarray:
    texts = [normalise(t) for t in texts]
    output = model.run(texts)
    return intent_features(output.embeddings, output.sentiment, texts, replies)


def _real(twcs: Path) -> tuple[list[str], list[bool], np.ndarray]:
    with twcs.open(encoding="utf-8") as stream:
        tweets = {row["tweet_id"]: row for row in csv.DictReader(stream)}
    with REAL_LABELS.open(encoding="utf-8") as stream:
        labelled = list(csv.DictReader(stream))
    missing = [row["tweet_id"] for row in labelled if row["tweet_id"] not in tweets]
    if missing:
        raise SystemExit(f"{twcs} lacks {len(missing)} labelled tweets, e.g. {missing[0]}")
    texts = [tweets[row["tweet_id"]]["text"] for row in labelled]
    replies = [bool(tweets[row["tweet_id"]]["in_response_to_tweet_id"]) for row in labelled]
    return texts, replies, np.array([INTENTS.index(row["intent"]) for row in labelled])


def _fit(
    written: tuple[np.ndarray, np.ndarray],
    real: tuple[np.ndarray, np.ndarray],
    *,
    class_weight: str | None,
    real_weight: float,
    c: float,
) -> LogisticRegression:
    features = np.vstack([written[0], real[0]])
    labels = np.concatenate([written[1], real[1]])
    weights = np.concatenate([np.ones(len(written[1])), np.full(len(real[1]), real_weight)])
    model = LogisticRegression(C=c, max_iter=5000, class_weight=class_weight)
    return model.fit(features, labels, sample_weight=weights)


def main() -> None:
    """Choose the settings by cross-validation, fit on everything, save the head."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twcs", type=Path, default=None, help="twcs_conversations.csv")
    parser.add_argument("--out", type=Path, default=BUNDLED_HEAD)
    args = parser.parse_args()
    rows = [
        json.loads(line)
        for path in EXAMPLES
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    model = MiniLMModel()
    written = (
        _features(model, [r["text"] for r in rows], [bool(r.get("reply")) for r in rows]),
        np.array([INTENTS.index(r["intent"]) for r in rows]),
    )
    empty = (np.zeros((0, written[0].shape[1]), dtype=np.float32), np.zeros(0, dtype=int))
    real = empty
    best: dict[str, Any] = {"class_weight": "balanced", "real_weight": 1.0, "c": 3.0}
    if args.twcs:
        texts, replies, labels = _real(args.twcs)
        real = (_features(model, texts, replies), labels)
        folds = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=7).split(*real))
        best_f1 = -1.0
        for values in itertools.product(*GRID.values()):
            settings = dict(zip(GRID, values, strict=True))
            predicted = np.zeros_like(labels)
            for train, test in folds:
                head = _fit(written, (real[0][train], labels[train]), **settings)  # type: ignore[arg-type]
                predicted[test] = head.predict(real[0][test])
            f1 = float(f1_score(labels, predicted, average="macro"))
            accuracy = float(accuracy_score(labels, predicted))
            print(f"{settings}: cross-validated macro-F1 {f1:.3f}, accuracy {accuracy:.3f}")
            if f1 > best_f1:
                best, best_f1 = settings, f1
        print(f"chosen {best}: macro-F1 {best_f1:.3f}")
    head = _fit(written, real, **best)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        coef=head.coef_.astype(np.float32),
        intercept=head.intercept_.astype(np.float32),
        labels=np.array(json.dumps(list(INTENTS))),
    )
    print(f"saved {args.out}: {len(rows)} written examples, {len(real[1])} real tweets")


if __name__ == "__main__":
    main()
