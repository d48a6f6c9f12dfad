"""Sentence embeddings for retrieval: a sentence-transformers mean-pool model run on token ids.

The model's modules (Transformer, mean Pooling, Normalize, as all-MiniLM-L6-v2's) are run here
on ids from `truncation.encode`, not through ``SentenceTransformer.encode``: the embedder then
cuts an over-long ticket as the classifier does (head and tail), shares its tokenisation and
batches (`models.tokens`), and runs as `models.inference` says (fp32, int8, ONNX). On texts that
fit, the vectors equal ``SentenceTransformer.encode``'s (tests/models/test_inference.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base_models import resolve_base_model
from models.batches import PASS_OVERHEAD_TOKENS, outputs_of_token_ids
from models.inference import CpuInference, MeanPooled, build_run
from models.tokens import SharedTokens
from producer.errors import ModelError


class Embedder:
    """One sentence-transformers model, loaded once per process; `embed` is one batched pass."""

    def __init__(
        self,
        name: str,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        max_batch_tokens: int | None = None,
        inference: CpuInference = "fp32",
        cache_dir: Path | None = None,
        tokens: SharedTokens | None = None,
    ) -> None:
        path = resolve_base_model(name)
        model = load_sentence_model(name)
        encoder = _mean_pool_encoder(name, model)
        self.name = name
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.dim = int(model.get_embedding_dimension() or 0)
        #: Tokens read per text: the model's own limit (256 for all-MiniLM-L6-v2).
        self.max_length = int(model.max_seq_length or 512)
        self.tokens = tokens or SharedTokens(model.tokenizer)
        self.tokens.widen(self.max_length)
        key = model_key(path)
        self._run = build_run(
            MeanPooled(encoder.to(self.device)),
            inference=inference,
            device=self.device,
            cache_file=None if cache_dir is None else cache_dir / f"{key}.int8.onnx",
            autocast=False,  # fp32 on a GPU too, as sentence-transformers ran it
        )
        self.inference: CpuInference = inference if self.device.type == "cpu" else "fp32"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in order."""
        ids = self.tokens.encode(texts, self.max_length)
        ready = self.tokens.vectors(texts)  # from the classifier's shared trunk, if any
        todo = [i for i in range(len(ids)) if i not in ready]
        if len(todo) < len(ids):
            out = np.empty((len(ids), self.dim), dtype=np.float32)
            for i, vector in ready.items():
                out[i] = vector
            if todo:
                out[todo] = self._embed_ids([ids[i] for i in todo])
            return out
        return self._embed_ids(ids)

    def _embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        batches = self.tokens.plan(
            ids,
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            overhead_tokens=PASS_OVERHEAD_TOKENS.get(self.device.type),
        )
        return outputs_of_token_ids(
            self._run,
            ids,
            batches,
            pad_id=self.tokens.pad_id,
            width=self.dim,
            left_pad=self.tokens.left_pad,
        )


def load_sentence_model(name: str) -> Any:
    """The sentence-transformers model `name` (a stable name or a path), from disk only."""
    from sentence_transformers import SentenceTransformer

    path = resolve_base_model(name)
    try:
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load embedder {name!r} from {path}: {exc}") from exc


def load_encoder(name: str) -> Any:
    """The Hugging Face encoder inside the embedder `name` (what a shared trunk branches to)."""
    return _mean_pool_encoder(name, load_sentence_model(name))


def model_key(path: Path) -> str:
    """The embedder's name in export caches: its directory and a hash of where it lies."""
    return f"embedder-{path.name}-{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"


def _mean_pool_encoder(name: str, model: Any) -> Any:
    """The Hugging Face encoder of a Transformer -> mean Pooling -> Normalize model."""
    kinds = [type(module).__name__ for module in model]
    pooling = getattr(model[1], "pooling_mode", None) if len(kinds) > 1 else None
    if kinds != ["Transformer", "Pooling", "Normalize"] or pooling != "mean":
        raise ModelError(
            f"embedder {name!r} is {kinds} (pooling {pooling!r}); the served embedder runs "
            "Transformer -> mean Pooling -> Normalize models (all-MiniLM-L6-v2 and its kin)"
        )
    return model[0].auto_model.eval()
