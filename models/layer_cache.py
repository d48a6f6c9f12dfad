"""Train an encoder's top layers only: the frozen layers below run once per text, not per epoch.

With LoRA on the top `k` of an encoder's `n` layers, the embeddings and the `n - k` layers under
them are frozen, so their output for a text is the same in every epoch. `TopLayers` computes it
once per text (eval mode: no dropout), keeps it in float16 while the lot fits `CACHE_BYTES`, and
an epoch runs only the top layers, the mean pool and the head (forward and backward). When the
cache would not fit (many long texts), the frozen layers run per batch under ``no_grad``: still
no backward through them.

Only for `models.classifier.MeanPoolClassifier` over a BERT-like encoder (``embeddings`` then
``encoder.layer``); `TopLayers.of` answers None for anything else, and training falls back to
the whole model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

#: Most bytes the cached hidden states may take (float16: 2 bytes per value).
CACHE_BYTES = 2 * 1024**3
#: Texts per forward pass of the frozen layers and of evaluation.
PASS_SIZE = 64


class TopLayers:
    """The frozen bottom and the trained top of a (peft-wrapped) mean-pool encoder classifier."""

    def __init__(self, inner: Any, n_bottom: int, pad_id: int, device: torch.device) -> None:
        self.inner = inner
        self.encoder = inner.encoder
        self.n_bottom = n_bottom
        self.pad_id = pad_id
        self.device = device

    @classmethod
    def of(cls, model: Any, train_layers: int | None, pad_id: int) -> TopLayers | None:
        """The split for `model` (peft-wrapped or not), or None when it has no layers to split."""
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        layers = _layers(inner)
        if train_layers is None or layers is None or train_layers >= len(layers):
            return None
        device = next(inner.parameters()).device
        return cls(inner, len(layers) - train_layers, pad_id, device)

    def features(self, ids: Sequence[list[int]], step: Any = None) -> Features:
        """The frozen layers' output for each text: cached when it fits, else computed per batch."""
        hidden = self.encoder.config.hidden_size
        cached = sum(len(x) for x in ids) * hidden * 2 <= CACHE_BYTES
        feats = Features(self, list(ids), cached)
        if cached:
            feats.fill(step)
        return feats

    @torch.no_grad()
    def bottom(self, ids: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded hidden states after the frozen layers, and the attention mask."""
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            hidden = self.encoder.embeddings(input_ids=input_ids)
            hidden = self._run(self.encoder.encoder.layer[: self.n_bottom], hidden, mask)
        finally:
            self.encoder.train(was_training)
        return hidden, mask

    def logits(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The top layers, the mean pool and the head on the frozen layers' output."""
        hidden = self._run(self.encoder.encoder.layer[self.n_bottom :], hidden, mask).float()
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        out: torch.Tensor = self.inner.classifier(self.inner.dropout(pooled))
        return out

    def _run(self, layers: Any, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        # The mask in the form the encoder's attention implementation expects (as BertModel
        # builds it), so the split model computes exactly what the whole one does.
        attention = create_bidirectional_mask(
            config=self.encoder.config, inputs_embeds=hidden, attention_mask=mask
        )
        for layer in layers:
            hidden = layer(hidden, attention)
        return hidden


class Features:
    """Per-text inputs of the top layers: float16 copies of the frozen output, or the token ids."""

    def __init__(self, split: TopLayers, ids: list[list[int]], cached: bool) -> None:
        self.split = split
        self.ids = ids
        self.cached = cached
        self.states: list[torch.Tensor] = []

    def fill(self, step: Any = None) -> None:
        """Run the frozen layers once over every text (like lengths together: little padding)."""
        self.states = [torch.empty(0)] * len(self.ids)
        order = sorted(range(len(self.ids)), key=lambda i: len(self.ids[i]))
        chunks = [order[start : start + PASS_SIZE] for start in range(0, len(order), PASS_SIZE)]
        # Short and long chunks mixed: the progress line's time left holds from the start.
        for k in np.random.default_rng(0).permutation(len(chunks)):
            chunk = chunks[k]
            hidden, _ = self.split.bottom([self.ids[i] for i in chunk])
            for row, i in enumerate(chunk):
                self.states[i] = hidden[row, : len(self.ids[i])].to("cpu", torch.float16)
            if step is not None:
                step.advance(len(chunk))

    def batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The top layers' input for `rows`: hidden states (float32) and the attention mask."""
        if not self.cached:
            return self.split.bottom([self.ids[i] for i in rows])
        width = max(len(self.ids[i]) for i in rows)
        first = self.states[rows[0]]
        hidden = torch.zeros((len(rows), width, first.shape[-1]), dtype=torch.float32)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, i in enumerate(rows):
            n = len(self.ids[i])
            hidden[row, :n] = self.states[i]
            mask[row, :n] = 1
        return hidden.to(self.split.device), mask.to(self.split.device)

    @torch.no_grad()
    def logits(self) -> npt.NDArray[np.float32]:
        """Eval-mode logits of every text, in order."""
        model = self.split.inner
        was_training = model.training
        model.eval()
        out: list[npt.NDArray[np.float32]] = [np.empty(0, np.float32)] * len(self.ids)
        try:
            order = sorted(range(len(self.ids)), key=lambda i: len(self.ids[i]))
            for start in range(0, len(order), PASS_SIZE):
                chunk = order[start : start + PASS_SIZE]
                logits = self.split.logits(*self.batch(chunk)).float().cpu().numpy()
                for row, i in enumerate(chunk):
                    out[i] = logits[row]
        finally:
            model.train(was_training)
        return np.stack(out).astype(np.float32)


def layer_count(model: Any) -> int | None:
    """How many encoder layers `model` has, when `TopLayers` can split it; else None."""
    layers = _layers(model)
    return None if layers is None else len(layers)


def _layers(inner: Any) -> Any:
    encoder = getattr(inner, "encoder", None)
    if encoder is None or not hasattr(inner, "classifier") or not hasattr(encoder, "embeddings"):
        return None
    return getattr(getattr(encoder, "encoder", None), "layer", None)
