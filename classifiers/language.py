"""Language identification, offline, with py3langid's bundled model.

Only the words count: @handles, links (and the ``@user``/``http`` stand-ins `normalise` leaves),
hashtag marks, emoji, digits and other symbols are removed first, so a reply that opens with
three handles gets the same answer as its words alone. Answers are ISO 639-1 codes: the model's
dialect labels fold into their macrolanguage (Egyptian Arabic counts as ``ar``, Cantonese as
``zh``); its labels without an ISO 639-1 code (Nigerian Pidgin …) keep their share of the
probability, which keeps doubtful texts doubtful, but are answered ``und``. Very short texts
("ok", "thx 👍") and texts the model is unsure of get ``und`` (undetermined) rather than a guess.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from bot.errors import ConfigError

UNDETERMINED = "und"
MIN_LETTERS = 8
MIN_CONFIDENCE = 0.5

# Model labels that are not ISO 639-1 codes but belong to a macrolanguage that has one.
_MACROLANGUAGE = {
    "ary": "ar",  # Moroccan Arabic
    "arz": "ar",  # Egyptian Arabic
    "gug": "gn",  # Paraguayan Guaraní
    "sdh": "ku",  # Southern Kurdish
    "uzs": "uz",  # Southern Uzbek
    "wuu": "zh",  # Wu Chinese
    "yue": "zh",  # Cantonese
}
_NO_LANGUAGE = "zxx"  # the model's "no linguistic content": a candidate even among few languages
_CODE = re.compile(r"[a-z]{2}")

_URL = re.compile(r"https?://\S+|www\.\S+|(?<!\w)http(?!\w)")
_HANDLE = re.compile(r"(?<!\w)@\w+")
_SPACE = re.compile(r"\s+")
_VARIATION_SELECTORS = range(0xFE00, 0xFE10)  # emoji presentation marks, though category Mn


def _is_wordlike(ch: str) -> bool:
    """Letters, their marks, spaces and punctuation; not digits, symbols (emoji) or ``#@_``."""
    kind = unicodedata.category(ch)[0]
    if kind == "P":
        return ch not in "#@_"
    return kind in "LZ" or (kind == "M" and ord(ch) not in _VARIATION_SELECTORS)


def words_only(text: str) -> str:
    """``text`` without handles, links, hashtag marks, emoji, digits and other symbols."""
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = "".join(ch if _is_wordlike(ch) else " " for ch in text)
    return _SPACE.sub(" ", text).strip()


class LanguageDetector:
    """Loads its model on first use, never at import.

    ``languages``: the ISO 639-1 codes to choose among (say, a brand's markets); by default every
    language the model knows. Naming them removes look-alikes (Malay for Indonesian, Afrikaans
    for Dutch); a text in another script is then ``und``, but one in an unnamed language of the
    same script is given the nearest named one.
    """

    def __init__(
        self,
        *,
        languages: Iterable[str] | None = None,
        min_confidence: float = MIN_CONFIDENCE,
        min_letters: int = MIN_LETTERS,
    ) -> None:
        self.languages = None if languages is None else frozenset(languages)
        if self.languages is not None:
            malformed = sorted(code for code in self.languages if not _CODE.fullmatch(code))
            if malformed or not self.languages:
                raise ConfigError(
                    f"languages must be ISO 639-1 codes such as en, es, pt; got {malformed or '[]'}"
                )
        self.min_confidence = min_confidence
        self.min_letters = min_letters
        self._identifier: Any = None

    def _model(self) -> Any:
        if self._identifier is None:
            from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
            if self.languages is not None:
                labels: list[str] = identifier.labels
                unknown = self.languages - {_MACROLANGUAGE.get(label, label) for label in labels}
                if unknown:
                    raise ConfigError(f"no language model for {', '.join(sorted(unknown))}")
                identifier.set_languages(
                    [
                        label
                        for label in labels
                        if _MACROLANGUAGE.get(label, label) in self.languages
                        or label == _NO_LANGUAGE
                    ]
                )
            self._identifier = identifier
        return self._identifier

    def detect(self, text: str) -> tuple[str, float]:
        """(ISO 639-1 code or ``und``, confidence)."""
        words = words_only(text)
        if sum(ch.isalpha() for ch in words) < self.min_letters:
            return UNDETERMINED, 0.0
        totals: dict[str, float] = {}
        for label, probability in self._model().rank(words):
            code = _MACROLANGUAGE.get(label, label)
            totals[code] = totals.get(code, 0.0) + float(probability)
        code, confidence = max(totals.items(), key=lambda item: item[1])
        if not _CODE.fullmatch(code) or confidence < self.min_confidence:
            return UNDETERMINED, confidence
        return code, confidence
