"""One rule for text longer than a model reads: keep its head and its tail.

Everything that turns a ticket into token ids calls `encode` here: training, tuning, evaluation
and the worker, for the classifier and the embedder alike, so a model never sees one cut in
training and another in service.

The rule: a text of more than ``max_length`` tokens (special tokens included) keeps its first
`HEAD_SHARE` of the room and fills the rest from its end. A support ticket states its kind in the
subject and first lines, and its latest state (the error, the question) at the end; the middle
is quoted history and logs. Sun et al. (2019, "How to Fine-Tune BERT for Text Classification")
found head+tail beat head-only and tail-only on long documents.

Before tokenising, a text is cut to `CHARS_PER_TOKEN` characters a token on each side, the same
way: a 200 KB body costs the tokenizer what a few hundred tokens cost, not 200 KB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: Share of the token room given to the text's head; the rest goes to its tail.
HEAD_SHARE = 0.5
#: Characters kept per token of room before tokenising. Generous: a wordpiece of English averages
#: about 4 characters; 12 leaves room for long words, URLs and base64 without a second pass.
CHARS_PER_TOKEN = 12
#: The marker put where a text's middle was cut out (characters only; tokens are just joined).
CUT_MARK = "\n…\n"


def head_tail(items: Sequence[Any], room: int) -> list[Any]:
    """`items` when they fit in `room`, else their head and tail (`HEAD_SHARE` of it first)."""
    if room <= 0:
        return []
    if len(items) <= room:
        return list(items)
    head = math.ceil(room * HEAD_SHARE)
    tail = room - head
    return [*items[:head], *(items[len(items) - tail :] if tail else ())]


def cut_chars(text: str, limit: int) -> str:
    """`text` within `limit` characters, its middle replaced by `CUT_MARK` when it is cut."""
    if len(text) <= limit:
        return text
    room = max(0, limit - len(CUT_MARK))
    head = math.ceil(room * HEAD_SHARE)
    return text[:head] + CUT_MARK + text[len(text) - (room - head) :]


def encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, special tokens included, at most `max_length` per text."""
    if not texts:
        return []
    prefix, suffix = _specials(tokenizer)
    room = max(1, max_length - prefix - suffix)
    pre = [cut_chars(t, room * CHARS_PER_TOKEN) for t in texts]
    # verbose=False: the text is cut below, so the "longer than the maximum" warning is noise.
    full = tokenizer(pre, verbose=False)["input_ids"]
    return [
        ids
        if len(ids) <= max_length
        else [
            *ids[:prefix],
            *head_tail(ids[prefix : len(ids) - suffix], room),
            *ids[len(ids) - suffix :],
        ]
        for ids in full
    ]


def recut(tokenizer: Any, ids: Sequence[int], max_length: int) -> list[int]:
    """`encode`'s ids of a text cut again to `max_length` (special tokens kept), head and tail.

    A head-and-tail cut of a head-and-tail cut at a longer length is the same as the one cut:
    the shorter head and tail lie inside the longer ones. So a text tokenised once for the
    longest reader serves the shorter ones too (`models.tokens`).
    """
    if len(ids) <= max_length:
        return list(ids)
    prefix, suffix = _specials(tokenizer)
    room = max(1, max_length - prefix - suffix)
    return [
        *ids[:prefix],
        *head_tail(ids[prefix : len(ids) - suffix], room),
        *ids[len(ids) - suffix :],
    ]


def token_lengths(tokenizer: Any, texts: Sequence[str], ceiling: int) -> list[int]:
    """Each text's length in tokens (special tokens included), counted up to `ceiling` + 1."""
    pre = [cut_chars(t, (ceiling + 1) * CHARS_PER_TOKEN) for t in texts]
    # verbose=False: only counted, never run, so the "longer than the maximum" warning is noise.
    full = tokenizer(pre, verbose=False)["input_ids"] if pre else []
    return [min(len(ids), ceiling + 1) for ids in full]


def _specials(tokenizer: Any) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before and after a text ([CLS] / [SEP], <s>)."""
    cached = _SPECIALS.get(id(tokenizer))
    if cached is None:
        body = tokenizer("x", add_special_tokens=False)["input_ids"]
        full = tokenizer("x")["input_ids"]
        prefix = next(
            (k for k in range(len(full) - len(body) + 1) if full[k : k + len(body)] == body), 0
        )
        cached = _SPECIALS[id(tokenizer)] = (prefix, len(full) - len(body) - prefix)
    return cached


#: Per tokenizer (by id: tokenizers live as long as their model, for the process).
_SPECIALS: dict[int, tuple[int, int]] = {}


def pick_max_length(
    lengths: Sequence[int], *, share: float = 0.95, floor: int = 32, ceiling: int = 512
) -> int:
    """The smallest multiple of 8 that holds `share` of the texts whole, within [floor, ceiling].

    Attention cost grows with the padded width of a batch, so the last few per cent of very long
    texts are cut (head and tail) rather than widening every batch they land in.
    """
    if not lengths:
        return floor
    ordered = sorted(lengths)
    need = ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]
    return max(floor, min(ceiling, 8 * math.ceil(need / 8)))


def share_cut(lengths: Sequence[int], max_length: int) -> float:
    """The share of texts longer than `max_length` tokens (cut by `encode`)."""
    return sum(n > max_length for n in lengths) / len(lengths) if lengths else 0.0
