"""Intent: a linear head over the shared sentence embedding, a few context features and words.

Features: the embedding, the sentiment probabilities (a complaint is rarely positive),
whether the mention replies in a thread (most neutral "done, DM sent" messages do), whether
it asks something, whether it is very short, a few keyword cues for the rare intents
(cancel/switch, buy/price, suggest/feature, promotion, thanks, a link, question openers and
phrases, not addressed to anyone) and the text's words as TF-IDF over a vocabulary of about
3,500 words and ``?``/``!`` (the embedding is a sentiment fine-tune and blurs what a text is
about). Rules catch obvious spam.

The head is trained by ``python -m classifiers.train_intent`` on hand-written examples
(``classifiers/data/intent_*.jsonl``) and 4,246 hand-labelled real customer tweets, and shipped
as a small ``.npz`` (weights, vocabulary and idf); at run time it is a word count and one
matrix product, no extra model pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
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
# Cues the embedding alone separates poorly; each adds one 0/1 feature (cross-validated
# macro-F1 on the real training tweets 0.525 -> 0.543, see train_intent).
_CUES = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\b(cancel\w*|unsubscrib\w*|switch\w* (to|over|back)|leav(e|ing)|moving to|"
        r"go(ing)? back to|never (again|use|fly|buy|shop|order)|done with|delete (my )?account|"
        r"close (my )?account|won'?t be (back|renew\w*|using)|taking my (business|money)|"
        r"lost a customer|last time i|goodbye|bye|apple music|tidal|deezer|pandora|"
        r"google (play )?music|competitor)\b",
        r"\b(buy|purchas\w*|pre-?order\w*|upgrad\w*|price|pricing|how much|cost|in stock|"
        r"available in|sign(ing)? up|subscribe|deal|discount|promo|student|family plan|"
        r"launch\w*)\b",
        r"\b(suggest\w*|would be (nice|great|cool|awesome|good)|please add|"
        r"add (a|an|the)? ?\w* ?(feature|option|button)|feature|wish|"
        r"should (add|make|have|let|be able)|idea|option to|bring (it )?back|why not|improv\w*|"
        r"it'?d be|would love|consider|allow us|let us|vote\w*)\b",
        r"(giveaway|contest|#\w+.*#\w+|win a|chance to win|check out|sweepstakes|"
        r"follow (me|us)|listen now|my (new )?(song|single|mixtape|playlist|video|channel))",
        r"\b(thank\w*|thx|ty|cheers|appreciate\w*|love|great|awesome|amazing|best)\b",
        r"http",
        # Questions read as complaints to the embedding (cross-validated 0.543 -> 0.556).
        r"^(\s*@user)*\s*(how|what|why|when|where|who|which|is|are|can|could|do|does|did|"
        r"will|would|should|any|anyone|has|have)\b",
        r"\b(how (do|can|to|long|much|come)|can (i|you|we|someone)|is there|is it possible|"
        r"do you (guys )?(have|know|offer|sell|ship)|does anyone|any (idea|update|news|eta|word|"
        r"way)|wondering|anyone know)\b",
    )
)
# Words for the TF-IDF features: lower-cased word tokens (apostrophes kept) and ? and !.
_TOKEN = re.compile(r"\b\w[\w']*\b|[?!]")


def spam_rule(text: str) -> str | None:
    """The phrase that marks ``text`` as spam by rule, or None."""
    match = _SPAM.search(text)
    if match:
        return match.group(0)
    if len(_LINK.findall(text)) >= 3:
        return "three or more links"
    return None


def words(text: str) -> list[str]:
    """The lower-cased tokens the word features count."""
    return _TOKEN.findall(text.lower())


def _word_row(
    text: str, vocabulary: dict[str, int], idf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One text's TF-IDF row as vocabulary indices and values (as ``word_features``)."""
    counts: dict[int, int] = {}
    for word in words(text):
        index = vocabulary.get(word)
        if index is not None:
            counts[index] = counts.get(index, 0) + 1
    indices = np.fromiter(counts, dtype=np.intp, count=len(counts))
    values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32))) * idf[indices]
    norm = float(np.linalg.norm(values))
    return indices, values / norm if norm else values


def word_features(texts: Sequence[str], vocabulary: dict[str, int], idf: np.ndarray) -> np.ndarray:
    """TF-IDF rows (sublinear counts times idf, unit length) over ``vocabulary``."""
    rows = np.zeros((len(texts), len(vocabulary)), dtype=np.float32)
    for row, text in zip(rows, texts, strict=True):
        indices, values = _word_row(text, vocabulary, idf)
        row[indices] = values
    return rows


def intent_features(
    embeddings: np.ndarray, sentiment: np.ndarray, texts: Sequence[str], replies: Sequence[bool]
) -> np.ndarray:
    """The head's input: embedding, sentiment probabilities and context and cue bits per text."""
    width = 4 + len(_CUES)
    context = np.array(
        [
            [float(reply), float("?" in text), float(len(text.split()) < 6)]
            + [float(cue.search(text) is not None) for cue in _CUES]
            + [float(not text.lstrip().startswith("@"))]
            for text, reply in zip(texts, replies, strict=True)
        ],
        dtype=np.float32,
    ).reshape(len(texts), width)
    return np.hstack([embeddings, sentiment, context]).astype(np.float32)


@dataclass(frozen=True)
class _Weights:
    """A loaded head: the linear layer, its labels and the word features' vocabulary."""

    coef: np.ndarray
    intercept: np.ndarray
    labels: tuple[str, ...]
    vocabulary: dict[str, int]
    idf: np.ndarray
    word_weight: float


class IntentHead:
    """Softmax over the labels of a linear head; loads its weights on first use."""

    def __init__(self, *, path: Path = BUNDLED_HEAD) -> None:
        self.path = path
        self._weights: _Weights | None = None

    def _load(self) -> _Weights:
        """Weights, intercept, labels and vocabulary, checked against Earful's intents."""
        if self._weights is None:
            if not self.path.is_file():
                raise ConfigError(
                    f"intent head {self.path} is missing: run python -m classifiers.train_intent"
                )
            data = np.load(self.path)
            labels = tuple(json.loads(str(data["labels"])))
            if set(labels) != set(INTENTS):
                raise ConfigError(f"{self.path}: labels {labels} are not {INTENTS}")
            vocabulary = json.loads(str(data["vocabulary"])) if "vocabulary" in data else []
            self._weights = _Weights(
                coef=data["coef"],
                intercept=data["intercept"],
                labels=labels,
                vocabulary={word: index for index, word in enumerate(vocabulary)},
                idf=data["idf"] if "idf" in data else np.zeros(0, dtype=np.float32),
                word_weight=float(data["word_weight"]) if "word_weight" in data else 0.0,
            )
        return self._weights

    def predict(
        self,
        embeddings: np.ndarray,
        sentiment: np.ndarray,
        texts: Sequence[str],
        replies: Sequence[bool],
    ) -> list[Score]:
        """The most likely intent of each text with its probability; spam rules override."""
        weights = self._load()
        features = intent_features(embeddings, sentiment, texts, replies)
        width = features.shape[1] + len(weights.vocabulary)
        if width != weights.coef.shape[1]:
            raise ConfigError(f"{self.path} expects {weights.coef.shape[1]} features, got {width}")
        dense, per_word = np.split(weights.coef, [features.shape[1]], axis=1)
        logits = features @ dense.T + weights.intercept
        # The word features are sparse: add each text's few words instead of a texts x
        # vocabulary matrix (10,000 texts would take over 100 MB).
        for row, text in zip(logits, texts, strict=True):
            indices, values = _word_row(text, weights.vocabulary, weights.idf)
            row += weights.word_weight * (per_word[:, indices] @ values)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        results = []
        for text, row in zip(texts, probs, strict=True):
            if spam_rule(text):
                results.append(Score("spam", 1.0))
                continue
            best = int(row.argmax())
            results.append(Score(weights.labels[best], float(row[best])))
        return results
