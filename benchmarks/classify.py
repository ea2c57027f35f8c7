"""Mentions per second for the whole classification step, with peak memory, beside two references.

    python benchmarks/classify.py [--count 10000] [--runs 3]

Each variant runs in its own process, so its peak resident memory is its own, ``--runs`` times
in turn; the table gives the median rate. The machine may be shared: each run also reports the
share of the CPUs that other processes used meanwhile (Linux), and a busy run is slow.

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
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

TWEETEVAL = Path("../shared/data/tweeteval/sentiment/train_text.txt")


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot, from /proc/stat; None elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle, iowait = fields[3], fields[4]
    return (sum(fields) - idle - iowait) / os.sysconf("SC_CLK_TCK")


class Stopwatch:
    """Wall time of a timed section, and the share of the CPUs other processes used during it."""

    def __init__(self) -> None:
        self.busy = machine_busy_seconds()
        self.own = time.process_time()
        self.started = time.perf_counter()

    def stop(self) -> tuple[float, float | None]:
        """(seconds, others' share of the machine or None)."""
        seconds = time.perf_counter() - self.started
        busy = machine_busy_seconds()
        if busy is None or self.busy is None:
            return seconds, None
        others = busy - self.busy - (time.process_time() - self.own)
        return seconds, max(0.0, others / (seconds * (os.cpu_count() or 1)))


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


def run_earful(texts: list[str]) -> tuple[float, float | None]:
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
    watch = Stopwatch()
    for start in range(0, len(items), 256):
        classifier.classify(items[start : start + 256])
    return watch.stop()


def run_vader(texts: list[str]) -> tuple[float, float | None]:
    """Seconds for VADER's compound score on every text."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    watch = Stopwatch()
    for text in texts:
        analyzer.polarity_scores(text)
    return watch.stop()


def run_roberta(texts: list[str]) -> tuple[float, float | None]:
    """Seconds for a randomly initialised RoBERTa-base classifier, batches of 64 sorted by length."""
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    from classifiers.text_model import BUNDLED_SENTIMENT

    torch.set_num_threads(2)
    # transformers' annotations lag its API: config kwargs and these two calls are untyped.
    config = RobertaConfig(num_labels=3)  # type: ignore[call-arg]
    model = RobertaForSequenceClassification(config).eval()  # type: ignore[no-untyped-call]
    # Any WordPiece tokenizer gives realistic sequence lengths; RoBERTa's own needs the hub.
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_file=str(BUNDLED_SENTIMENT / "tokenizer.json"), pad_token="[PAD]"
    )
    order = sorted(texts, key=len)
    watch = Stopwatch()
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
    return watch.stop()


VARIANTS = {"earful": run_earful, "vader": run_vader, "roberta": run_roberta}


def child(variant: str, count: int) -> None:
    """Run one variant and print its figures as JSON."""
    texts = load_texts(count)
    seconds, others = VARIANTS[variant](texts)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "variant": variant,
                "count": count,
                "seconds": seconds,
                "peak_mb": peak_mb,
                "others": others,
            }
        )
    )


def main() -> None:
    """Run each variant in fresh processes, in turn, and print a table of medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--roberta-count", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args.variant, args.count)
        return
    print(f"source: {'TweetEval train' if TWEETEVAL.is_file() else 'bundled demo sample'}")
    counts = {"earful": args.count, "vader": args.count, "roberta": args.roberta_count}
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in counts}
    for _ in range(args.runs):
        for variant, count in counts.items():
            out = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--count", str(count)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
    for variant, figures in runs.items():
        rates = [f["count"] / f["seconds"] for f in figures]
        others = [f"{f['others']:.0%}" if f["others"] is not None else "?" for f in figures]
        print(
            f"{variant:<8} {counts[variant]:>6,} texts  {statistics.median(rates):9,.1f} mentions/s"
            f"  peak RSS {max(f['peak_mb'] for f in figures):7,.0f} MB"
            f"  runs {', '.join(f'{r:,.1f}' for r in rates)}  others' CPU {', '.join(others)}"
        )


if __name__ == "__main__":
    main()
