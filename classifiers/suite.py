"""Every classifier as one batched step: one model pass, then the cheap per-mention steps.

Order: normalise → text model (sentiment + embedding, one pass) → intent (head over the
embedding, spam rules) → risk flags (rules) → language → influence → customer value (needs
sentiment for its deviation signal).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bot.models import Classification, ContactSnapshot, Mention, Score, now_utc
from classifiers.flags import risk_flags
from classifiers.influence import influence
from classifiers.intent import IntentHead
from classifiers.language import LanguageDetector
from classifiers.text import normalise
from classifiers.text_model import SENTIMENT_LABELS, TextModel
from classifiers.value import customer_value


class ClassifierSuite:
    """The default classifier: implements the `classifiers.base.Classifier` protocol."""

    name = "earful"

    def __init__(
        self,
        *,
        text_model: TextModel,
        intent: IntentHead,
        language: LanguageDetector,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.text_model = text_model
        self.intent = intent
        self.language = language
        self.clock = clock

    def classify(self, batch: Sequence[tuple[Mention, ContactSnapshot]]) -> list[Classification]:
        """One classification per mention, in order."""
        if not batch:
            return []
        now = self.clock()
        texts = [normalise(mention.text) for mention, _ in batch]
        output = self.text_model.run(texts)
        replies = [mention.in_reply_to is not None for mention, _ in batch]
        intents = self.intent.predict(output.embeddings, output.sentiment, texts, replies)
        results = []
        for (mention, contact), text, probs, intent in zip(
            batch, texts, output.sentiment, intents, strict=True
        ):
            best = int(probs.argmax())
            sentiment = Score(SENTIMENT_LABELS[best], round(float(probs[best]), 4))
            language, _confidence = self.language.detect(text)
            results.append(
                Classification(
                    classified=True,
                    sentiment=sentiment,
                    intent=Score(intent.label, round(intent.score, 4)),
                    flags=tuple(sorted(risk_flags(mention.text))),
                    language=language,
                    influence=influence(mention, now=now),
                    value=customer_value(contact, sentiment, today=now.date()),
                )
            )
        return results
