"""Forward passes in batches cut by token length, so little compute goes on padding.

`plan_batches` groups tickets of neighbouring lengths, within a ticket count and a padded-token
budget (the GPU's memory), trading padding against the fixed cost of one more pass;
`outputs_of_token_ids` runs them through any `models.inference.Run` (the served classifier and
embedder), `logits_of_token_ids` through a torch SEQ_CLS model (training, the adapter set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

#: The fixed cost of one forward pass, in padded tokens' worth of compute, by device type: what
#: `plan_batches` weighs against padding. CPU, MiniLM on 2 cores: a batch of one 16-token ticket
#: cost as much as ~45 tokens in a wide batch (measured); CUDA: an 8B model at small batches is
#: bound by reading its weights, ~5 ms or some hundreds of tokens (estimated).
PASS_OVERHEAD_TOKENS = {"cpu": 32, "cuda": 512}


def logits_of_token_ids(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    device: torch.device,
    batch_size: int,
    max_batch_tokens: int | None = None,
    overhead_tokens: int | None = None,
    left_pad: bool = False,
) -> npt.NDArray[np.float32]:
    """Logits of tickets already tokenised, in the order given, from `plan_batches`' batches.

    bf16 autocast on CUDA, `inference_mode`; each batch is padded to its own longest ticket only.
    """
    batches = plan_batches(
        [len(ids) for ids in token_ids],
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        overhead_tokens=overhead_tokens,
    )

    def run(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, enabled=device.type == "cuda", dtype=torch.bfloat16):
            logits: torch.Tensor = model(
                input_ids=ids.to(device), attention_mask=mask.to(device)
            ).logits
        return logits.float().cpu()

    was_training = model.training
    model.eval()
    try:
        return outputs_of_token_ids(
            run,
            token_ids,
            batches,
            pad_id=pad_id,
            width=model.config.num_labels,
            left_pad=left_pad,
        )
    finally:
        model.train(was_training)


def outputs_of_token_ids(
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    token_ids: Sequence[Sequence[int]],
    batches: Sequence[Sequence[int]],
    *,
    pad_id: int,
    width: int,
    left_pad: bool = False,
) -> npt.NDArray[np.float32]:
    """`run` over `batches` (indices of `token_ids`, from `plan_batches`), each padded to its own
    longest ticket; the rows (`width` wide) come back in the order of `token_ids`."""
    out: list[torch.Tensor] = []
    with torch.inference_mode():
        for batch in batches:
            ids, mask = pad_batch([token_ids[i] for i in batch], pad_id, left_pad=left_pad)
            out.append(run(ids, mask).float())
    if not out:
        return np.zeros((0, width), dtype=np.float32)
    rows = torch.cat(out)
    order = [i for batch in batches for i in batch]
    restored = torch.empty_like(rows)
    restored[torch.tensor(order, dtype=torch.long)] = rows
    result: npt.NDArray[np.float32] = restored.numpy()
    return result


def plan_batches(
    lengths: Sequence[int],
    *,
    batch_size: int,
    max_batch_tokens: int | None = None,
    overhead_tokens: int | None = None,
) -> list[list[int]]:
    """Indices of `lengths` grouped into batches of neighbouring lengths, shortest first.

    A batch holds at most `batch_size` items and, if `max_batch_tokens` is set, its padded size
    (items x longest) stays within it; an item longer than the budget goes alone. Without
    `overhead_tokens` batches are filled in turn (fewest batches); with it, the cuts minimise the
    padded tokens plus `overhead_tokens` per batch (exact, by dynamic programming over the sorted
    lengths): a long ticket does not pad a batch of short ones when another pass costs less.
    """
    if batch_size < 1 or (max_batch_tokens is not None and max_batch_tokens < 1):
        raise ValueError(
            f"batch_size={batch_size} and max_batch_tokens={max_batch_tokens} must be >= 1"
        )
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    if not order:
        return []
    sizes = [max(lengths[i], 1) for i in order]
    if overhead_tokens is None:
        starts = _greedy_starts(sizes, batch_size, max_batch_tokens)
    else:
        starts = _cheapest_starts(sizes, batch_size, max_batch_tokens, overhead_tokens)
    ends = [*starts[1:], len(order)]
    return [order[a:b] for a, b in zip(starts, ends, strict=True)]


def _greedy_starts(sizes: list[int], batch_size: int, budget: int | None) -> list[int]:
    starts: list[int] = []
    for i, size in enumerate(sizes):  # sorted: item i is the longest of its batch so far
        n = i - starts[-1] + 1 if starts else 0
        if not starts or n > batch_size or (budget is not None and size * n > budget):
            starts.append(i)
    return starts


def _cheapest_starts(
    sizes: list[int], batch_size: int, budget: int | None, overhead: int
) -> list[int]:
    # cost[end]: least cost of the first `end` items; cut[end]: where their last batch starts.
    cost = [0.0] + [float("inf")] * len(sizes)
    cut = [0] * (len(sizes) + 1)
    for end in range(1, len(sizes) + 1):
        longest = sizes[end - 1]
        for start in range(end - 1, max(0, end - batch_size) - 1, -1):
            n = end - start
            if budget is not None and n > 1 and n * longest > budget:
                break
            total = cost[start] + overhead + n * longest
            if total < cost[end]:
                cost[end], cut[end] = total, start
    starts: list[int] = []
    end = len(sizes)
    while end > 0:
        starts.append(cut[end])
        end = cut[end]
    return starts[::-1]


def pad_batch(
    token_ids: Sequence[Sequence[int]], pad_id: int, *, left_pad: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """`input_ids` and `attention_mask` of one batch, padded to its longest item."""
    width = max((len(ids) for ids in token_ids), default=0)
    ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, seq in enumerate(token_ids):
        if not seq:
            continue
        cols = slice(width - len(seq), width) if left_pad else slice(0, len(seq))
        ids[row, cols] = torch.tensor(seq, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask
