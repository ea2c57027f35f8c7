"""Language identification, offline, with py3langid's bundled model (97 languages).

Very short or letter-less texts ("ok", "😡😡") cannot be identified reliably; they get ``und``
(undetermined) rather than a guess.
"""

from __future__ import annotations

from typing import Any

UNDETERMINED = "und"
MIN_LETTERS = 8
MIN_CONFIDENCE = 0.5


class LanguageDetector:
    """Loads its model on first use, never at import."""

    def __init__(self) -> None:
        self._identifier: Any = None

    def _model(self) -> Any:
        if self._identifier is None:
            from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

            self._identifier = LanguageIdentifier.from_modelpath(
                MODEL_DIR / MODEL_FILE, norm_probs=True
            )
        return self._identifier

    def detect(self, text: str) -> tuple[str, float]:
        """(ISO 639-1 code or ``und``, confidence)."""
        letters = sum(ch.isalpha() for ch in text)
        if letters < MIN_LETTERS:
            return UNDETERMINED, 0.0
        code, confidence = self._model().classify(text)
        if confidence < MIN_CONFIDENCE:
            return UNDETERMINED, float(confidence)
        return str(code), float(confidence)
