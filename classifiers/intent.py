"""Intent: a linear head over the shared sentence embedding and a few context features.

Features: the embedding, the sentiment probabilities (a complaint is rarely positive),
whether the mention replies in a thread (most neutral "done, DM sent" messages do), whether
it asks something, and whether it is very short. Rules catch obvious spam.

The head is trained by ``python -m classifiers.train_intent`` on hand-written examples
(``classifiers/data/intent_*.jsonl``) and 1,500 hand-labelled real customer tweets, and shipped
as a small ``.npz``; at run time it is one matrix product, no extra model pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.errors import ConfigError
from bot.models import Score

INTENTS = (
    "complaint",
    "question",
    "praise",
    "purchase_intent",
    "churn_threat",
    "feedback",
    "spam",
    "other",
)
BUNDLED_HEAD = Path(__file__).with_name("models") / "intent-head.npz"

_SPAM = re.compile(
    r"(?<!\w)(giveaway|airdrop|free (followers|crypto|bitcoin|btc|eth|nft)s?|follow ?back|f4f|"
    r"dm (me )?for (promo|collab)|100x|pump|whitelist spots?|claim (your|now)|"
    r"earn \$?\d+ (a|per) (day|week)|onlyfans|promo code:? \w+ for free)(?!\w)",
    re.IGNORECASE,
)
_LINK = re.compile(r"(?<!\w)http")


def spam_rule(text: str) -> str | None:
    """The phrase that marks ``text`` as spam by rule, or None."""
    match = _SPAM.search(text)
    if match:
        return match.group(0)
    if len(_LINK.findall(text)) >= 3:
        return "three or more links"
    return None


def intent_features(
    embeddings: np.ndarray, sentiment: np.ndarray, texts: Sequence[str], replies: Sequence[bool]
) -> np.ndarray:
    """The head's input: embedding, sentiment probabilities and three context bits per text."""
    context = np.array(
        [
            [float(reply), float("?" in text), float(len(text.split()) < 6)]
            for text, reply in zip(texts, replies, strict=True)
        ],
        dtype=np.float32,
    ).reshape(len(texts), 3)
    return np.hstack([embeddings, sentiment, context]).astype(np.float32)


class IntentHead:
    """Softmax over the labels of a linear head; loads its weights on first use."""

    def __init__(self, *, path: Path = BUNDLED_HEAD) -> None:
        self.path = path
        self._weights: tuple[np.ndarray, np.ndarray, tuple[str, ...]] | None = None

    def _load(self) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Weights, intercept and labels, checked against Earful's intents."""
        if self._weights is None:
            if not self.path.is_file():
                raise ConfigError(
                    f"intent head {self.path} is missing: run python -m classifiers.train_intent"
                )
            data = np.load(self.path)
            labels = tuple(json.loads(str(data["labels"])))
            if set(labels) != set(INTENTS):
                raise ConfigError(f"{self.path}: labels {labels} are not {INTENTS}")
            self._weights = (data["coef"], data["intercept"], labels)
        return self._weights

    def predict(
        self,
        embeddings: np.ndarray,
        sentiment: np.ndarray,
        texts: Sequence[str],
        replies: Sequence[bool],
    ) -> list[Score]:
        """The most likely intent of each text with its probability; spam rules override."""
        coef, intercept, labels = self._load()
        features = intent_features(embeddings, sentiment, texts, replies)
        if features.shape[1] != coef.shape[1]:
            raise ConfigError(
                f"{self.path} expects {coef.shape[1]} features, got {features.shape[1]}"
            )
        logits = features @ coef.T + intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        results = []
        for text, row in zip(texts, probs, strict=True):
            if spam_rule(text):
                results.append(Score("spam", 1.0))
                continue
            best = int(row.argmax())
            results.append(Score(labels[best], float(row[best])))
        return results
