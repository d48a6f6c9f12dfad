"""One trunk for the classifier and the embedder: the layers they share run once per ticket.

The default recipe trains LoRA on the top two of MiniLM's six layers (`TrainConfig.train_layers`)
and the embedder is the same MiniLM: once the adapter is merged, the embeddings and the four
layers under it are the embedder's, weight for weight. `Twin` runs them once and branches: the
classifier's top layers, mean pool and head; the embedder's top layers, mean pool and unit length.
Eight layer passes a ticket where two models ran twelve, in one call (one ONNX session).

`shared_layers` finds how many leading layers are the same by comparing the weights, not by
trusting the adapter's config: an adapter trained on every layer, or another base, shares none
and the two models run apart as before.

A ticket's vector from the twin is the embedder's only when both read the same tokens: the
classifier reads fewer (its trained length) than the embedder (256 on MiniLM), so the vectors of
tickets the classifier cut are dropped and the embedder runs on those alone (`models.tokens`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Config fields that must agree for two encoders' layers to compute alike (weights aside).
SHAPE = (
    "model_type",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "position_embedding_type",
)


class Twin(nn.Module):
    """Shared embeddings and bottom layers, then the classifier's and the embedder's top layers.

    Returns one row per ticket: the classifier's logits, then the embedder's unit vector.
    """

    def __init__(self, classifier: Any, head: nn.Module, embedder: Any, shared: int) -> None:
        super().__init__()
        self.config = classifier.config
        self.embeddings = classifier.embeddings
        layers = classifier.encoder.layer
        self.bottom = nn.ModuleList(layers[:shared])
        self.classifier_top = nn.ModuleList(layers[shared:])
        self.embedder_top = nn.ModuleList(embedder.encoder.layer[shared:])
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        hidden = self.embeddings(input_ids=input_ids)
        # The mask as BertModel builds it for its layers, so each branch computes what the
        # whole model does (tests/models/test_trunk.py).
        attention = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        for layer in self.bottom:
            hidden = layer(hidden, attention)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        count = weights.sum(dim=1).clamp(min=1.0)
        mine, theirs = hidden, hidden
        for layer in self.classifier_top:
            mine = layer(mine, attention)
        for layer in self.embedder_top:
            theirs = layer(theirs, attention)
        logits = self.head((mine * weights).sum(dim=1) / count)
        vector = nn.functional.normalize((theirs * weights).sum(dim=1) / count, p=2.0, dim=-1)
        return torch.cat([logits, vector], dim=-1)


def shared_layers(classifier: Any, embedder: Any) -> int:
    """How many leading encoder layers of two BERT-like encoders hold the same weights (0 when
    their embeddings, shapes or attention differ: nothing can be shared)."""
    if not (_bert_like(classifier) and _bert_like(embedder)):
        return 0
    if any(getattr(classifier.config, k, None) != getattr(embedder.config, k, None) for k in SHAPE):
        return 0
    if not _same(classifier.embeddings, embedder.embeddings):
        return 0
    count = 0
    for mine, theirs in zip(classifier.encoder.layer, embedder.encoder.layer, strict=True):
        if not _same(mine, theirs):
            break
        count += 1
    # All layers the same: the adapter changed nothing under the head; one pass would do, but
    # the twin still needs a branch of its own for each (one layer each).
    return min(count, len(classifier.encoder.layer) - 1)


def _bert_like(encoder: Any) -> bool:
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    return hasattr(encoder, "embeddings") and isinstance(layers, nn.ModuleList) and len(layers) > 1


def _same(a: nn.Module, b: nn.Module) -> bool:
    mine, theirs = a.state_dict(), b.state_dict()
    return mine.keys() == theirs.keys() and all(
        mine[k].shape == theirs[k].shape and torch.equal(mine[k], theirs[k]) for k in mine
    )
