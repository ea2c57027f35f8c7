"""Text normalisation shared by training and inference, so the model sees the same kind of text."""

from __future__ import annotations

import re

_ESCAPED = re.compile(r"\\u([0-9a-fA-F]{4})")
_HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")
_URL = re.compile(r"https?://\S+|www\.\S+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """TweetEval's conventions: handles become ``@user``, links ``http``; stray ``\\uXXXX`` decoded.

    Control characters are dropped and whitespace collapsed.
    """
    text = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = _CONTROL.sub(" ", text)
    text = _URL.sub("http", text)
    text = _HANDLE.sub("@user", text)
    return _SPACE.sub(" ", text).strip()
