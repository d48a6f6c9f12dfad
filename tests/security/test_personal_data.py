"""Personal data and secrets are masked before a frontier request, each kind in its usual forms:
what leaves is checked on the wire (a local server), in the ticket and in the examples."""

from __future__ import annotations

import json
import time

import pytest

from models.frontier import build_frontier_client, mask_personal_data
from models.settings import ModelSettings
from producer.labelset import LabelSet
from producer.schemas import MAX_BODY_CHARS, Neighbour, Ticket
from tests.wire_servers import OpenAIServer

KINDS = {
    "[EMAIL]": [
        "jane.doe@example.com",
        "JANE.DOE+bank@Example.CO.UK",
        "o'brien@example.ie",
        "first_last@mail.sub.example.org",
        "josé.müller@exämple.de",
    ],
    "[PHONE]": [
        "+1 202-555-0173",
        "+1 (202) 555-0173",
        "(202) 555-0173",
        "202.555.0173",
        "+44 7700 900123",
        "07700 900 123",
        "+49 30 901820",
        "0049 30 9018200",
        "+33 1 42 68 53 00",
        "+91 98765 43210",
    ],
    "[CARD]": [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "5500 0000 0000 0004",
        "3782 822463 10005",
        "378282246310005",
        "6011 1111 1111 1117",
        "3530111333300000",
    ],
    "[IBAN]": [
        "GB29 NWBK 6016 1331 9268 19",
        "GB29NWBK60161331926819",
        "DE89 3704 0044 0532 0130 00",
        "de89-3704-0044-0532-0130-00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "ES91 2100 0418 4502 0005 1332",
        "IT60 X054 2811 1010 0000 0123 456",
    ],
    "[SECRET]": [
        "sk-proj-Abcdefghijklmnopqrstuvwxyz012345",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
        "sk_live_51HabcdefghijklmnopqrstuvWXYZ0123",
        "rk_live_abcdefghijklmnopqrstuv1234",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "glpat-abcdefghij1234567890",
        "xoxb-123456789012-1234567890123-abcdefghijklmnop",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlF",
    ],
}
CASES = [(placeholder, value) for placeholder, values in KINDS.items() for value in values]
LABELS = LabelSet.from_dict({"task": "category", "labels": [{"name": "a"}, {"name": "b"}]})


@pytest.mark.parametrize(("placeholder", "value"), CASES, ids=[v for _, v in CASES])
def test_each_kind_is_masked(placeholder: str, value: str) -> None:
    masked = mask_personal_data(f"Hello, mine is {value}. Thanks!")
    assert masked == f"Hello, mine is {placeholder}. Thanks!"


def test_nothing_personal_leaves_in_a_frontier_request() -> None:
    every = [value for _, value in CASES]
    with OpenAIServer(label="a") as server:
        client = build_frontier_client(
            ModelSettings(frontier_provider="openai", frontier_url=server.url, frontier_api_key="k")
        )
        assert client is not None
        for n, value in enumerate(every):
            example = Neighbour(
                ticket_id=f"n{n}", source="api", label="a", score=0.9, snippet=f"as {value} said"
            )
            ticket = Ticket(id=str(n), subject=f"re: {value}", body=f"Details: {value}, thanks")
            client.classify(ticket, LABELS, [example])
        client.close()
        bodies = [json.dumps(r.json, ensure_ascii=False) for r in server.requests]
    for value, body in zip(every, bodies, strict=True):
        assert value not in body
        assert value.lower() not in body.lower()


def test_ordinary_numbers_stay_readable() -> None:
    text = "Order 123456 of 2024-01-15 for 1,250.00 EUR; ref 20240115; card ending 1111."
    assert mask_personal_data(text) == text


@pytest.mark.parametrize(
    "hostile",
    [
        "1" + "-" * MAX_BODY_CHARS,
        "a." * (MAX_BODY_CHARS // 2),
        "x@" + "a" * MAX_BODY_CHARS,
        "a" * 64 + "@" + "b." * (MAX_BODY_CHARS // 2),
        "+" + "1 " * (MAX_BODY_CHARS // 2),
        "DE89" + "1-" * (MAX_BODY_CHARS // 2),
    ],
    ids=["digit-dashes", "dotted", "at-run", "long-domain", "spaced-digits", "iban-like"],
)
def test_masking_a_ticket_at_the_size_limit_takes_linear_time(hostile: str) -> None:
    # Unbounded patterns took seconds on such text (quadratic backtracking).
    started = time.perf_counter()
    mask_personal_data(hostile)
    assert time.perf_counter() - started < 0.5
