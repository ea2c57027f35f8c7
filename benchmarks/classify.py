"""Mentions per second for the whole classification step, with peak memory, beside two references.

    python benchmarks/classify.py [--count 10000]

Each variant runs in its own process, so its peak resident memory is its own:

- ``earful``: every classifier (sentiment + embedding pass, intent, flags, language,
  influence, value), batched as the pipeline batches it;
- ``vader``: VADER alone, the cheapest sentiment there is;
- ``roberta``: a RoBERTa-base sized sequence classifier with random weights built from its
  config (the compute cost of the published state of the art), on a 1,000-tweet slice.

Tweets come from TweetEval (../shared/data) when present, else from the bundled demo sample.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

TWEETEVAL = Path("../shared/data/tweeteval/sentiment/train_text.txt")


def load_texts(count: int) -> list[str]:
    """``count`` tweets, repeated if the source is shorter."""
    if TWEETEVAL.is_file():
        lines = TWEETEVAL.read_text(encoding="utf-8").splitlines()
    else:
        sample = resources.files("bot") / "samples" / "demo_mentions.jsonl"
        lines = [
            json.loads(line)["text"] for line in sample.read_text(encoding="utf-8").splitlines()
        ]
    return [lines[i % len(lines)] for i in range(count)]


def run_earful(texts: list[str]) -> float:
    """Seconds for the full step, in batches of 256 as `earful classify` sends them."""
    from bot.app import build_classifier
    from bot.config import load_settings
    from bot.models import Author, ContactSnapshot, Mention, Platform

    classifier = build_classifier(load_settings())
    now = datetime.now(UTC)
    items = [
        (
            Mention(
                platform=Platform.X,
                external_id=str(i),
                text=t,
                created_at=now,
                author=Author(handle=f"u{i}", followers=i * 7 % 50_000, listed=i % 30),
            ),
            ContactSnapshot(contact_id=None),
        )
        for i, t in enumerate(texts)
    ]
    classifier.classify(items[:16])  # load the models outside the timing
    started = time.perf_counter()
    for start in range(0, len(items), 256):
        classifier.classify(items[start : start + 256])
    return time.perf_counter() - started


def run_vader(texts: list[str]) -> float:
    """Seconds for VADER's compound score on every text."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    started = time.perf_counter()
    for text in texts:
        analyzer.polarity_scores(text)
    return time.perf_counter() - started


def run_roberta(texts: list[str]) -> float:
    """Seconds for a randomly initialised RoBERTa-base classifier, batches of 64 sorted by length."""
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    from classifiers.text_model import BUNDLED_SENTIMENT

    torch.set_num_threads(2)
    model = RobertaForSequenceClassification(RobertaConfig(num_labels=3)).eval()
    # Any WordPiece tokenizer gives realistic sequence lengths; RoBERTa's own needs the hub.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(BUNDLED_SENTIMENT / "tokenizer.json"), pad_token="[PAD]"
    )
    order = sorted(texts, key=len)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            tokens = tokenizer(
                order[start : start + 64],
                padding=True,
                truncation=True,
                max_length=64,
                return_tensors="pt",
            )
            ids = tokens["input_ids"].clamp(max=model.config.vocab_size - 1)
            model(input_ids=ids, attention_mask=tokens["attention_mask"])
    return time.perf_counter() - started


VARIANTS = {"earful": run_earful, "vader": run_vader, "roberta": run_roberta}


def child(variant: str, count: int) -> None:
    """Run one variant and print its figures as JSON."""
    texts = load_texts(count)
    seconds = VARIANTS[variant](texts)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": variant, "count": count, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    """Run each variant in a fresh process and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--roberta-count", type=int, default=1_000)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args.variant, args.count)
        return
    print(f"source: {'TweetEval train' if TWEETEVAL.is_file() else 'bundled demo sample'}")
    for variant, count in (
        ("earful", args.count),
        ("vader", args.count),
        ("roberta", args.roberta_count),
    ):
        out = (
            subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--count", str(count)],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        figures = json.loads(out)
        rate = figures["count"] / figures["seconds"]
        print(
            f"{variant:<8} {figures['count']:>6,} texts  {rate:9,.1f} mentions/s  peak RSS {figures['peak_mb']:7,.0f} MB"
        )


if __name__ == "__main__":
    main()
