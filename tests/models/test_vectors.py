"""Vectors on the wire: packed float32s, lists still accepted, malformed ones refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.cascade import FirstPass
from models.vectors import pack, unpack
from producer.schemas import Ticket


def test_a_packed_vector_comes_back_exactly_and_smaller_than_json() -> None:
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    packed = pack(vector)
    assert np.array_equal(unpack(packed), vector) and unpack(packed).dtype == np.float32
    assert len(packed) < len(json.dumps([round(float(x), 6) for x in vector])) / 1.5


def test_lists_and_nothing_are_accepted() -> None:
    assert np.array_equal(unpack([0.5, -1.0]), np.array([0.5, -1.0], dtype=np.float32))
    assert unpack(None).size == 0 and unpack([]).size == 0 and unpack("").size == 0
    assert pack([]) == ""


@pytest.mark.parametrize(
    "bad",
    ["not base64!", "AAAAAAA=", [[1.0, 2.0]], ["a", "b"], 3.0],
    ids=["not-base64", "not-whole-float32s", "two-dimensional", "not-numbers", "a-scalar"],
)
def test_a_malformed_vector_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        unpack(bad)  # type: ignore[arg-type]


def test_a_first_pass_from_an_older_message_packs_its_list() -> None:
    ticket = Ticket(id="1", source="s", body="my card")
    old = {"ticket": ticket.model_dump(mode="json"), "label": "a", "confidence": 0.5}
    fp = FirstPass.model_validate({**old, "decided_by": None, "vector": [0.25, 0.5]})
    assert isinstance(fp.vector, str) and unpack(fp.vector).tolist() == [0.25, 0.5]
    again = FirstPass.model_validate(json.loads(fp.model_dump_json()))
    assert again.vector == fp.vector
    with pytest.raises(ValueError):
        FirstPass.model_validate({**old, "decided_by": None, "vector": "%%%"})
