"""Train the intent head on the hand-written examples, over the shipped encoder's outputs.

    python -m classifiers.train_intent

Examples: ``classifiers/data/intent_examples.jsonl`` (first messages) and
``intent_replies.jsonl`` (replies inside a support thread, ``"reply": true``).

Logistic regression (multinomial, class-balanced); C is chosen by 5-fold cross-validation on
the examples themselves. The evaluation set (tests/fixtures/intent) is never used here.
Re-run after retraining the sentiment model, since the embedding changes with it.

With ``--adapt-to twcs_conversations.csv`` the head also learns how often each intent occurs
in real customer traffic, without labels: EM over the customer tweets of that file
(Saerens et al., 2002), leaving out every tweet of the evaluation set; each prior is floored
at 1 % so no intent is ruled out, and a churn threat is never made less likely than the
examples make it: missing one costs a customer, a false alarm costs a glance. The shift is
stored beside the weights.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from classifiers.intent import BUNDLED_HEAD, INTENTS, intent_features
from classifiers.text import normalise
from classifiers.text_model import MiniLMModel

DATA = Path(__file__).with_name("data")
NEVER_DISCOUNTED = ("churn_threat",)
EVAL_LABELS = Path(__file__).parents[1] / "tests" / "fixtures" / "intent" / "twcs_intent_labels.csv"
EXAMPLES = (DATA / "intent_examples.jsonl", DATA / "intent_replies.jsonl")


def main() -> None:
    """Fit, report cross-validated macro-F1 per C, save the best head."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, nargs="+", default=list(EXAMPLES))
    parser.add_argument("--out", type=Path, default=BUNDLED_HEAD)
    parser.add_argument(
        "--adapt-to", type=Path, default=None, help="unlabelled customer tweets (twcs CSV)"
    )
    args = parser.parse_args()
    rows = [
        json.loads(line)
        for path in args.examples
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    texts = [normalise(r["text"]) for r in rows]
    labels = np.array([INTENTS.index(r["intent"]) for r in rows])
    output = MiniLMModel().run(texts)
    embeddings = intent_features(
        output.embeddings, output.sentiment, texts, [bool(r.get("reply")) for r in rows]
    )
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=7)
    best_c, best_f1 = 1.0, -1.0
    for c in (0.3, 1.0, 3.0, 10.0, 30.0):
        model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
        f1 = float(cross_val_score(model, embeddings, labels, cv=folds, scoring="f1_macro").mean())
        print(f"C={c:<5} cross-validated macro-F1 {f1:.3f}")
        if f1 > best_f1:
            best_c, best_f1 = c, f1
    model = LogisticRegression(C=best_c, max_iter=5000, class_weight="balanced").fit(
        embeddings, labels
    )
    coef, intercept = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
    shift = np.zeros(len(INTENTS), dtype=np.float32)
    if args.adapt_to:
        shift = prior_shift(args.adapt_to, coef, intercept)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        coef=coef,
        intercept=intercept,
        prior_shift=shift,
        labels=np.array(json.dumps(list(INTENTS))),
    )
    print(
        f"saved {args.out}: {len(rows)} examples, C={best_c}, cross-validated macro-F1 {best_f1:.3f}"
    )


def prior_shift(twcs: Path, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """log(prior / uniform) for each intent, the prior estimated by EM on unlabelled tweets."""
    with EVAL_LABELS.open(encoding="utf-8") as stream:
        held_out = {row["tweet_id"] for row in csv.DictReader(stream)}
    with twcs.open(encoding="utf-8") as stream:
        pool = [
            row
            for row in csv.DictReader(stream)
            if row["inbound"] == "True" and row["tweet_id"] not in held_out and row["text"].strip()
        ]
    texts = [normalise(row["text"]) for row in pool]
    output = MiniLMModel().run(texts)
    features = intent_features(
        output.embeddings,
        output.sentiment,
        texts,
        [bool(row["in_response_to_tweet_id"]) for row in pool],
    )
    logits = features @ coef.T + intercept
    k = len(INTENTS)
    prior = np.full(k, 1.0 / k)
    for _ in range(200):
        adjusted = logits + np.log(prior * k)
        adjusted -= adjusted.max(axis=1, keepdims=True)
        posterior = np.exp(adjusted)
        posterior /= posterior.sum(axis=1, keepdims=True)
        estimate = posterior.mean(axis=0)
        if np.abs(estimate - prior).max() < 1e-6:
            break
        prior = estimate
    prior = np.maximum(prior, 0.01)
    prior /= prior.sum()
    print(
        f"prior from {len(pool)} unlabelled tweets:",
        ", ".join(f"{i} {p:.3f}" for i, p in zip(INTENTS, prior, strict=True)),
    )
    shift = np.log(prior * k)
    for intent in NEVER_DISCOUNTED:
        shift[INTENTS.index(intent)] = max(0.0, shift[INTENTS.index(intent)])
    result: np.ndarray = shift.astype(np.float32)
    return result


if __name__ == "__main__":
    main()
