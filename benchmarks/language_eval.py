"""Language detection on hand-written social-media messages to brands, as the pipeline sees them.

    python benchmarks/language_eval.py [--fixture FILE] [--languages en,es,...] [--raw] [--misses]

The fixture (tests/fixtures/language/social_language.jsonl, ``{"text", "language"}`` per line)
was written for this evaluation: complaints, questions and praise with handles, links, emoji,
hashtags, slang and typos, some only a word or two long, a few code-mixed and labelled with the
language that carries the sentence. Texts go through `classifiers.text.normalise` first, as in
`ClassifierSuite` (``--raw`` skips it). A second line repeats the run with every text opened by
two @handles, as replies to a brand on X are, to show that the handles do not sway the answer.
``--languages`` restricts the detector to a deployment's languages; naming exactly the fixture's
twelve gives an optimistic figure.

``und`` (undetermined) is an abstention: it counts against accuracy but is not a wrong language.
"Precision" is the accuracy over the texts that got a language, which matters most downstream:
a wrong language sends a mention to the wrong team, ``und`` only leaves it unlabelled.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

from classifiers.language import UNDETERMINED, LanguageDetector
from classifiers.text import normalise

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "language" / "social_language.jsonl"


def summary(truth: list[str], predicted: list[str]) -> str:
    """Accuracy, coverage and precision in one line."""
    correct = sum(t == p for t, p in zip(truth, predicted, strict=True))
    decided = sum(p != UNDETERMINED for p in predicted)
    return (
        f"accuracy {correct / len(truth):.3f}; coverage {decided / len(truth):.3f} "
        f"(und {len(truth) - decided}); precision {correct / max(1, decided):.3f} "
        f"({decided - correct} wrong languages)"
    )


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    parser.add_argument("--languages", help="comma-separated ISO 639-1 codes to choose among")
    parser.add_argument("--raw", action="store_true", help="skip the pipeline's normalisation")
    parser.add_argument("--misses", action="store_true", help="list every text not labelled right")
    args = parser.parse_args()
    with args.fixture.open(encoding="utf-8") as stream:
        rows = [json.loads(line) for line in stream if line.strip()]
    detector = (
        LanguageDetector(languages=args.languages.split(","))
        if args.languages
        else LanguageDetector()
    )
    prepare = (lambda text: text) if args.raw else normalise
    texts = [prepare(row["text"]) for row in rows]
    truth = [row["language"] for row in rows]
    detector.detect("warm up the model before timing")
    started = time.perf_counter()
    predicted = [detector.detect(text)[0] for text in texts]
    elapsed = time.perf_counter() - started
    print(
        f"{len(rows)} texts, {len(set(truth))} languages, {1000 * elapsed / len(rows):.2f} ms a text"
    )
    print(f"  as written: {summary(truth, predicted)}")
    replies = [detector.detect(prepare(f"@AcmeCare @acme_help {row['text']}"))[0] for row in rows]
    print(f"  as replies: {summary(truth, replies)}")

    pairs = list(zip(truth, predicted, strict=True))
    by_language: dict[str, list[str]] = defaultdict(list)
    for t, p in pairs:
        by_language[t].append(p)
    for code in sorted(by_language):
        got = by_language[code]
        right = sum(p == code for p in got)
        und = sum(p == UNDETERMINED for p in got)
        print(
            f"  {code}  n={len(got):<3} accuracy {right / len(got):.3f}  und {und:<2} "
            f"wrong {len(got) - right - und}"
        )
    confusion = Counter((t, p) for t, p in pairs if t != p)
    print(
        "confusions (gold → predicted):",
        ", ".join(f"{t}→{p} {n}" for (t, p), n in confusion.most_common()) or "none",
    )
    if args.misses:
        for row, text, p in zip(rows, texts, predicted, strict=True):
            if p != row["language"]:
                print(f"  {row['language']}→{p}  {text}")


if __name__ == "__main__":
    main()
