"""Decisions per second for 10,000 classified mentions, beside the cost of classifying them.

    python benchmarks/decide.py [--count 10000] [--runs 5]

The mentions are classified once (tweets from TweetEval in ../shared/data when present, else
the bundled demo sample, repeated), then the default playbooks decide all of them ``--runs``
times; the median is printed with its share of the classification time. Spike rules count
similar mentions in a 15-minute window, so the mentions are spread over a day.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

from benchmarks.classify import load_texts
from bot.app import build_classifier, build_decider
from bot.config import load_settings
from bot.models import Author, ContactSnapshot, Mention, Platform
from bot.traffic import RecentTraffic, similarity_key


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    step = timedelta(days=1) / args.count
    batch = [
        (
            Mention(
                platform=Platform.X,
                external_id=str(i),
                text=text,
                author=Author(handle=f"user{i % 997}", followers=(i * 7919) % 200_000),
                created_at=start + i * step,
            ),
            ContactSnapshot(contact_id=None),
        )
        for i, text in enumerate(load_texts(args.count))
    ]
    settings = load_settings()
    classifier, decider = build_classifier(settings), build_decider(settings)
    began = time.perf_counter()
    results = classifier.classify(batch)
    classify_seconds = time.perf_counter() - began
    traffic = RecentTraffic(
        (mention.created_at, similarity_key(result))
        for (mention, _), result in zip(batch, results, strict=True)
    )
    timings = []
    for _ in range(args.runs):
        began = time.perf_counter()
        for (mention, contact), result in zip(batch, results, strict=True):
            decider.decide(mention, result, contact, traffic)
        timings.append(time.perf_counter() - began)
    median = statistics.median(timings)
    print(
        f"classify: {args.count:,} mentions in {classify_seconds:.1f} s "
        f"({args.count / classify_seconds:,.0f}/s)"
    )
    print(
        f"decide (default playbooks, {len(decider.rules)} rules): median of {args.runs} runs "
        f"{median:.3f} s, {args.count / median:,.0f} decisions/s "
        f"(runs: {', '.join(f'{t:.3f}' for t in timings)})"
    )
    print(f"decide / classify time: {median / classify_seconds:.2%}")


if __name__ == "__main__":
    main()
