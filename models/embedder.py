"""Sentence embeddings for similar-ticket retrieval (sentence-transformers, normalised vectors)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.base_models import resolve_base_model
from producer.errors import ModelError


class Embedder:
    """One sentence-transformers model, loaded once per process; `embed` is one batched pass."""

    def __init__(self, name: str, *, device: str = "cpu", batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        path = resolve_base_model(name)
        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load embedder {name!r} from {path}: {exc}") from exc
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self.dim = int(self._model.get_embedding_dimension() or 0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
