"""The one cut for over-long text: head and tail, special tokens kept, the same everywhere."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import truncation
from models.base_models import resolve_base_model
from models.settings import PACKAGED_MINILM


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(PACKAGED_MINILM))


@given(st.lists(st.integers(), max_size=60), st.integers(min_value=0, max_value=70))
def test_head_tail_keeps_the_ends_in_order(items: list[int], room: int) -> None:
    cut = truncation.head_tail(items, room)
    assert len(cut) == min(len(items), room)
    if len(items) > room:
        head = -(-room // 2)
        assert cut[:head] == items[:head]
        assert cut[head:] == items[len(items) - (room - head) :]
    else:
        assert cut == items


@given(st.text(max_size=300), st.integers(min_value=len(truncation.CUT_MARK), max_value=200))
def test_cut_chars_stays_within_the_limit(text: str, limit: int) -> None:
    cut = truncation.cut_chars(text, limit)
    assert len(cut) <= max(limit, 0) or cut == text
    if len(text) <= limit:
        assert cut == text
    else:
        assert truncation.CUT_MARK in cut
        assert text.startswith(cut[: cut.index(truncation.CUT_MARK)])


def test_a_long_text_keeps_its_first_and_last_words(tokenizer: Any) -> None:
    text = "printer jammed " + "filler " * 5000 + "error code 42"
    (ids,) = truncation.encode(tokenizer, [text], 32)
    assert len(ids) == 32
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    words = tokenizer.decode(ids, skip_special_tokens=True)
    assert words.startswith("printer jammed") and words.endswith("error code 42")


def test_short_texts_are_what_the_tokenizer_gives(tokenizer: Any) -> None:
    texts = ["my card was declined", "", "refund please " * 3]
    assert truncation.encode(tokenizer, texts, 64) == tokenizer(texts)["input_ids"]


def test_pick_max_length_holds_the_share_asked_for() -> None:
    lengths = list(range(1, 201))
    picked = truncation.pick_max_length(lengths, share=0.9)
    assert picked % 8 == 0 and truncation.share_cut(lengths, picked) <= 0.1
    assert truncation.pick_max_length([3, 4], floor=32) == 32
    assert truncation.pick_max_length([5000], ceiling=256) == 256
