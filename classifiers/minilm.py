"""Training-side model code: all-MiniLM-L6-v2 with mean pooling and a linear sentiment head.

Training keeps a PyTorch checkpoint; what Earful ships is that model exported to ONNX and
quantised to int8 (per channel), which runs fastest here at nearly the same accuracy (the
figures are in README). One forward pass gives the sentiment probabilities and the
mean-pooled embedding that the other classifiers reuse. Only training and export import this
module; it imports torch.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from classifiers.text_model import META_FILE, ONNX_FILE

HEAD_FILE = "head.safetensors"


class MeanPoolClassifier(nn.Module):
    """A transformer encoder, mean pooling over real tokens, dropout and a linear head."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        hidden: int = encoder.config.hidden_size  # type: ignore[union-attr,assignment]
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden states over non-padding tokens."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled: torch.Tensor = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return pooled

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, embeddings)."""
        pooled = self.embed(input_ids, attention_mask)
        return self.head(self.dropout(pooled)), pooled


class _Exported(nn.Module):
    """What the ONNX graph computes: probabilities and the embedding."""

    def __init__(self, model: MeanPoolClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, pooled = self.model(input_ids, attention_mask)
        return logits.softmax(dim=-1), pooled


def save_checkpoint(
    model: MeanPoolClassifier, tokenizer: PreTrainedTokenizerBase, directory: Path
) -> None:
    """The trainable model as PyTorch weights (half precision), for export or more training."""
    directory.mkdir(parents=True, exist_ok=True)
    encoder: Any = model.encoder
    encoder.half().save_pretrained(directory, safe_serialization=True)
    encoder.float()
    tokenizer.save_pretrained(directory)
    head = {k: v.detach().float().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, directory / HEAD_FILE)


def load_checkpoint(
    directory: Path, num_labels: int
) -> tuple[MeanPoolClassifier, PreTrainedTokenizerBase]:
    """The inverse of :func:`save_checkpoint`, in float32 and eval mode."""
    model = MeanPoolClassifier(
        AutoModel.from_pretrained(directory, dtype=torch.float32), num_labels
    )
    model.head.load_state_dict(load_file(directory / HEAD_FILE))
    return model.eval(), AutoTokenizer.from_pretrained(directory)


def export(
    model: MeanPoolClassifier,
    tokenizer: PreTrainedTokenizerBase,
    directory: Path,
    *,
    labels: list[str],
    max_length: int,
    meta: dict[str, Any],
) -> None:
    """Write the shipped model: int8 ONNX graph, tokenizer and metadata."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    directory.mkdir(parents=True, exist_ok=True)
    ids = torch.ones(2, 16, dtype=torch.long)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        torch.onnx.export(
            _Exported(model.eval()),
            (ids, torch.ones_like(ids)),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["probabilities", "embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "probabilities": {0: "batch"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        quantize_dynamic(
            str(fp32), str(directory / ONNX_FILE), weight_type=QuantType.QInt8, per_channel=True
        )
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        shutil.copy(Path(tmp) / "tokenizer.json", directory / "tokenizer.json")
    (directory / META_FILE).write_text(
        json.dumps(
            {
                "labels": labels,
                "max_length": max_length,
                "pooling": "mean",
                "runtime": "onnx-int8",
                **meta,
            },
            indent=2,
        )
        + "\n"
    )
