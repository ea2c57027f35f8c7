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
import threading
from collections.abc import Mapping, Sequence
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


def _length_batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return result


class MiniLMModel:
    """The shipped fine-tuned MiniLM as int8 ONNX: sentiment and embedding in one pass.

    Texts are tokenised once, then batched by token count, so a batch pads to almost nothing.
    Small batches (32) ran fastest here; see README for the measurement.
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
        self._loaded: tuple[Any, Any, int] | None = None
        self._lock = threading.Lock()
        # Embeddings of the last batch, so the suggester reuses the classifier's encoder pass.
        self._recent: dict[str, np.ndarray] = {}

    def _model(self) -> tuple[Any, Any, int]:
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
                if self.threads:
                    options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                session = onnxruntime.InferenceSession(
                    str(self.directory / ONNX_FILE),
                    options,
                    providers=["CPUExecutionProvider"],
                )
                dim = int(session.get_outputs()[1].shape[-1])
                self._loaded = (tokenizer, session, dim)
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
        _, _, dim = self._model()
        vectors = [fresh[t] if t in fresh else self._recent[t] for t in texts]
        return np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)

    def _infer(self, texts: Sequence[str]) -> TextOutput:
        tokenizer, session, dim = self._model()
        encodings = tokenizer.encode_batch([text or "." for text in texts])
        probs = np.zeros((len(texts), len(SENTIMENT_LABELS)), dtype=np.float32)
        embeddings = np.zeros((len(texts), dim), dtype=np.float32)
        for batch in _length_batches([len(e.ids) for e in encodings], self.batch_size):
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            out_probs, out_embeddings = session.run(
                None, {"input_ids": ids, "attention_mask": mask}
            )
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
