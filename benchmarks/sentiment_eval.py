"""Sentiment quality on TweetEval val: macro-averaged recall (the official metric) and accuracy.

    python benchmarks/sentiment_eval.py [--data ../shared/data/tweeteval/sentiment] [--split val]

Compares the shipped model (int8 ONNX) with the float32 PyTorch checkpoint it was exported
from (when ``build/sentiment-checkpoint`` is there, i.e. after training) and with VADER
(compound ±0.05), the classic lexicon baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from classifiers.text import normalise
from classifiers.text_model import BUNDLED_SENTIMENT, SENTIMENT_LABELS, MiniLMModel


def scores(predicted: list[int], gold: list[int]) -> tuple[float, float]:
    """(macro-averaged recall, accuracy)."""
    recalls = []
    for label in range(3):
        relevant = [p for p, g in zip(predicted, gold, strict=True) if g == label]
        recalls.append(sum(p == label for p in relevant) / max(1, len(relevant)))
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)
    return float(np.mean(recalls)), accuracy


def torch_fp32(checkpoint: Path, texts: list[str], gold: list[int]) -> tuple[float, float, float]:
    """The PyTorch checkpoint in float32, batches of 32 sorted by length: (recall, accuracy, rate)."""
    import torch

    from classifiers import minilm

    torch.set_num_threads(2)
    model, tokenizer = minilm.load_checkpoint(checkpoint, num_labels=3)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predicted = [0] * len(texts)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            tokens = tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=64,
                return_tensors="pt",
            )
            logits, _ = model(tokens["input_ids"], tokens["attention_mask"])
            for i, p in zip(batch, logits.argmax(dim=-1).tolist(), strict=True):
                predicted[i] = p
    rate = len(texts) / (time.perf_counter() - started)
    recall, accuracy = scores(predicted, gold)
    return recall, accuracy, rate


def vader(texts: list[str]) -> list[int]:
    """VADER's compound score: ≤ -0.05 negative, ≥ 0.05 positive, else neutral."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    out = []
    for text in texts:
        compound = analyzer.polarity_scores(text)["compound"]
        out.append(0 if compound <= -0.05 else 2 if compound >= 0.05 else 1)
    return out


def main() -> None:
    """Print one line per approach."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tweeteval/sentiment"))
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", type=Path, default=BUNDLED_SENTIMENT)
    parser.add_argument("--checkpoint", type=Path, default=Path("build/sentiment-checkpoint"))
    args = parser.parse_args()
    text_file = args.data / f"{args.split}_text.txt"
    if not text_file.is_file():
        sys.exit(f"{text_file} not found: this benchmark needs the TweetEval data")
    raw = text_file.read_text(encoding="utf-8").splitlines()
    gold = [int(x) for x in (args.data / f"{args.split}_labels.txt").read_text().split()]
    texts = [normalise(t) for t in raw]
    print(f"TweetEval sentiment {args.split}: {len(texts)} tweets ({SENTIMENT_LABELS})")
    model = MiniLMModel(directory=args.model)
    model.run(texts[:8])  # load outside the timing
    started = time.perf_counter()
    probs = model.run(texts).sentiment
    elapsed = time.perf_counter() - started
    recall, accuracy = scores(probs.argmax(axis=1).tolist(), gold)
    print(
        f"earful int8 ONNX    macro-recall {recall:.4f}  accuracy {accuracy:.4f}  {len(texts) / elapsed:7.1f} tweets/s"
    )
    if args.checkpoint.is_dir():
        recall, accuracy, rate = torch_fp32(args.checkpoint, texts, gold)
        print(
            f"checkpoint fp32     macro-recall {recall:.4f}  accuracy {accuracy:.4f}  {rate:7.1f} tweets/s"
        )
    started = time.perf_counter()
    predicted = vader(raw)
    elapsed = time.perf_counter() - started
    recall, accuracy = scores(predicted, gold)
    print(
        f"VADER (±0.05)       macro-recall {recall:.4f}  accuracy {accuracy:.4f}  {len(texts) / elapsed:7.1f} tweets/s"
    )


if __name__ == "__main__":
    main()
