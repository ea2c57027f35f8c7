"""The text models behind sentiment, and the sentence embedding the other classifiers reuse.

Two kinds, chosen by configuration:

- the shipped MiniLM (a directory with ``earful.json``): one pass gives sentiment and the
  embedding;
- any Hugging Face sequence-classification model (a hub id, for machines that reach the hub,
  or a local path) with a label mapping; the embedding then comes from the shipped encoder.

Models load on the first batch, never at import. Batches are sorted by length, so they
carry almost no padding.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.errors import ConfigError

log = logging.getLogger(__name__)

BUNDLED_SENTIMENT = Path(__file__).with_name("models") / "sentiment-minilm"
META_FILE = "earful.json"
ONNX_FILE = "model.int8.onnx"
SENTIMENT_LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class TextOutput:
    """Per text: sentiment probabilities in ``SENTIMENT_LABELS`` order, and its embedding."""

    sentiment: np.ndarray  # (n, 3)
    embeddings: np.ndarray  # (n, dim), L2-normalised


class TextModel(Protocol):
    """Runs a batch of normalised texts."""

    def run(self, texts: Sequence[str]) -> TextOutput:
        """Sentiment probabilities and embeddings, in input order."""
        ...


@dataclass(frozen=True, slots=True)
class _Runtime:
    """What the first batch loads: tokenizer, ONNX session, embedding size, batch runners."""

    tokenizer: Any
    session: Any
    dim: int
    pool: ThreadPoolExecutor


def _length_batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


def _padded(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded with zeros to the longest row, and the attention mask."""
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    ids = np.zeros((len(rows), int(lengths.max())), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    mask = (np.arange(ids.shape[1]) < lengths[:, None]).astype(np.int64)
    return ids, mask


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return result


class MiniLMModel:
    """The shipped fine-tuned MiniLM as int8 ONNX: sentiment and embedding in one pass.

    Texts are tokenised once, then batched by token count, so a batch pads to almost nothing.
    Each batch runs on one ONNX Runtime thread, ``threads`` batches at a time (default: one
    per core), longest first: on a shared machine that outran one batch split over the threads,
    which meet at every operator and so wait for whichever the machine slowed (see README).
    The thread count never changes a result, but the batching does: the int8 quantisation is
    dynamic, each activation scaled by the range of its whole batch (padding included), so
    2 to 3 labels in 100 move when ``batch_size`` or padding change.
    """

    def __init__(
        self,
        *,
        directory: Path = BUNDLED_SENTIMENT,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        if not (directory / META_FILE).is_file():
            raise ConfigError(f"{directory} is not an Earful model directory (no earful.json)")
        self.directory = directory
        self.batch_size = batch_size
        self.threads = threads
        self._loaded: _Runtime | None = None
        self._lock = threading.Lock()
        # Embeddings of the last batch, so the suggester reuses the classifier's encoder pass.
        self._recent: dict[str, np.ndarray] = {}

    def _model(self) -> _Runtime:
        with self._lock:
            if self._loaded is None:
                import onnxruntime
                from tokenizers import Tokenizer

                meta = json.loads((self.directory / META_FILE).read_text())
                if tuple(meta["labels"]) != SENTIMENT_LABELS:
                    raise ConfigError(
                        f"{self.directory}: labels {meta['labels']} are not {SENTIMENT_LABELS}"
                    )
                tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=int(meta["max_length"]))
                tokenizer.no_padding()
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                # Widths vary by batch, so a memory pattern (planned per shape) only adds memory.
                options.enable_mem_pattern = False
                session = onnxruntime.InferenceSession(
                    str(self.directory / ONNX_FILE),
                    options,
                    providers=["CPUExecutionProvider"],
                )
                self._loaded = _Runtime(
                    tokenizer=tokenizer,
                    session=session,
                    dim=int(session.get_outputs()[1].shape[-1]),
                    pool=ThreadPoolExecutor(
                        max_workers=self.threads or os.cpu_count() or 1,
                        thread_name_prefix="minilm",
                    ),
                )
            return self._loaded

    def run(self, texts: Sequence[str]) -> TextOutput:
        """Sentiment and embeddings for ``texts``."""
        output = self._infer(texts)
        self._recent = dict(zip(texts, output.embeddings, strict=True))
        return output

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings; texts of the last batch run are not encoded again."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._recent]
        fresh = dict(zip(missing, self._infer(missing).embeddings, strict=True)) if missing else {}
        vectors = [fresh[t] if t in fresh else self._recent[t] for t in texts]
        return np.stack(vectors) if vectors else np.zeros((0, self._model().dim), dtype=np.float32)

    def _infer(self, texts: Sequence[str]) -> TextOutput:
        runtime = self._model()
        encodings = runtime.tokenizer.encode_batch([text or "." for text in texts])
        ids = [encoding.ids for encoding in encodings]
        batches = _length_batches([len(row) for row in ids], self.batch_size)
        # Longest first, so the runs that end a call are short and no thread idles for long.
        batches.sort(key=lambda batch: len(batch) * len(ids[batch[-1]]), reverse=True)

        def run_batch(batch: list[int]) -> list[np.ndarray]:
            batch_ids, mask = _padded([ids[i] for i in batch])
            outputs: list[np.ndarray] = runtime.session.run(
                None, {"input_ids": batch_ids, "attention_mask": mask}
            )
            return outputs

        probs = np.zeros((len(texts), len(SENTIMENT_LABELS)), dtype=np.float32)
        embeddings = np.zeros((len(texts), runtime.dim), dtype=np.float32)
        for batch, (out_probs, out_embeddings) in zip(
            batches, runtime.pool.map(run_batch, batches), strict=True
        ):
            probs[batch] = out_probs
            embeddings[batch] = out_embeddings
        return TextOutput(sentiment=probs, embeddings=_normalised(embeddings))


def parse_label_map(spec: str) -> dict[str, str]:
    """``"LABEL_0=negative,LABEL_1=neutral,LABEL_2=positive"`` → model label → Earful label."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        source, sep, target = part.partition("=")
        if not sep or target not in SENTIMENT_LABELS:
            allowed = ", ".join(SENTIMENT_LABELS)
            raise ConfigError(f"sentiment label map entry {part!r} must be LABEL=one of {allowed}")
        mapping[source.strip()] = target
    if set(mapping.values()) != set(SENTIMENT_LABELS):
        raise ConfigError(f"sentiment label map must cover {', '.join(SENTIMENT_LABELS)}")
    return mapping


class HubSentimentModel:
    """Any Hugging Face sequence-classification model, with the shipped encoder for embeddings."""

    def __init__(
        self,
        *,
        model: str,
        label_map: Mapping[str, str],
        embedder: MiniLMModel,
        batch_size: int = 32,
    ) -> None:
        self.model_name = model
        self.label_map = dict(label_map)
        self.embedder = embedder
        self.batch_size = batch_size
        self._loaded: tuple[Any, Any, list[int]] | None = None
        self._lock = threading.Lock()

    def _model(self) -> tuple[Any, Any, list[int]]:
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModelForSequenceClassification, AutoTokenizer

                try:
                    tokenizer = AutoTokenizer.from_pretrained(self.model_name)
                    model = AutoModelForSequenceClassification.from_pretrained(self.model_name)
                except OSError as exc:
                    raise ConfigError(
                        f"cannot load sentiment model {self.model_name!r}: {exc}"
                    ) from None
                model.eval()
                names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
                missing = [n for n in names if n not in self.label_map]
                if missing:
                    raise ConfigError(f"label map lacks the model's labels {missing}")
                columns = [SENTIMENT_LABELS.index(self.label_map[n]) for n in names]
                self._loaded = (tokenizer, model, columns)
            return self._loaded

    def run(self, texts: Sequence[str]) -> TextOutput:
        """The hub model's sentiment, mapped to Earful's labels, plus the shipped embedding."""
        import torch

        tokenizer, model, columns = self._model()
        probs = np.zeros((len(texts), len(SENTIMENT_LABELS)), dtype=np.float32)
        with torch.inference_mode():
            for batch in _length_batches([len(t) for t in texts], self.batch_size):
                tokens = tokenizer(
                    [texts[i] or "." for i in batch],
                    padding=True,
                    truncation=True,
                    max_length=128,
                    return_tensors="pt",
                )
                scores = model(**tokens).logits.softmax(dim=-1).numpy()
                for column, target in enumerate(columns):
                    probs[batch, target] += scores[:, column]
        return TextOutput(sentiment=probs, embeddings=self.embedder.run(texts).embeddings)
