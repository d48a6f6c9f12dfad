"""No malformed input gets a 5xx, and no refusal enqueues anything (docs/security.md, "The HTTP
edge"). A hypothesis property over every route and every webhook source, with bodies signed
correctly so the payload adapters behind the signature check are exercised; and the attacks
of issue 17 spelled out: a 5000-digit integer, wrong JSON types deep in each system's payload,
bad UTF-8."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from producer.http import create_app
from producer.http.settings import SOURCES
from producer.names import CLASSIFY_QUEUE, WRITEBACK_QUEUE, ticket_key
from producer.schemas import GitHubIssue, Ticket
from producer.settings import ProducerSettings
from tests.conftest import TEST_REDIS_URL
from tests.producer.http_support import AUTH, BOTS, PAYLOADS, RELABELS, http_settings, sign

GRANTED = {"Authorization": "Bearer gh-import"}
STORED = Ticket(
    id="acme/app#7",
    source="github",
    body="two weeks",
    origin=GitHubIssue(repo="acme/app", number=7),
)
HUGE = "1" * 5000

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
ids = (
    st.text(min_size=1, max_size=12)
    .filter(lambda s: s not in {".", ".."})
    .map(lambda s: quote(s, safe=""))
)


def mutate(payload: dict[str, Any], data: st.DataObject) -> Any:
    """A known-good payload with one key, at any depth, replaced by an arbitrary JSON value."""
    out = json.loads(json.dumps(payload))
    node = out
    while True:
        key = data.draw(st.sampled_from(sorted(node)))
        if isinstance(node[key], dict) and node[key] and data.draw(st.booleans()):
            node = node[key]
            continue
        node[key] = data.draw(json_values)
        return out


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    r = redis.Redis.from_url(TEST_REDIS_URL)
    r.flushdb()
    r.set(ticket_key("category", "github", STORED.id), STORED.model_dump_json())
    hs = http_settings(
        tmp_path_factory.mktemp("labels"),
        api_tokens=[
            "api-token",
            {"token": "gh-import", "enqueue": ["github"], "feedback": ["github"], "read": ["*"]},
        ],
    )
    app = create_app(hs, ProducerSettings(redis_url=TEST_REDIS_URL, **BOTS))
    with TestClient(app) as c:
        yield c
    r.flushdb()
    r.close()


@pytest.fixture(scope="module")
def depths():
    r = redis.Redis.from_url(TEST_REDIS_URL)
    yield lambda: (r.llen(CLASSIFY_QUEUE), r.llen(WRITEBACK_QUEUE))
    r.close()


def signed_post(client: TestClient, source: str, raw: bytes, good: bool = True) -> Any:
    scheme = source if source in SOURCES else "generic"
    headers = sign(scheme, raw, delivery=uuid.uuid4().hex, key=None if good else "forged")
    return client.post(
        f"/v1/webhooks/{source}",
        content=raw,
        headers={"Content-Type": "application/json", **headers},
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_route_answers_5xx_and_refusals_enqueue_nothing(client, depths, data) -> None:
    before = depths()
    route = data.draw(st.sampled_from(["webhook", "webhook", "tickets", "feedback", "result"]))
    if route == "webhook":
        source = data.draw(st.sampled_from([*SOURCES, "nope"]))
        known = [p[source] for p in (PAYLOADS, RELABELS) if source in p] or [{"x": 1}]
        body = data.draw(
            st.one_of(
                st.builds(mutate, st.sampled_from(known), st.data()), json_values, st.just(known[0])
            )
        )
        raw = data.draw(st.one_of(st.just(json.dumps(body).encode()), st.binary(max_size=64)))
        response = signed_post(client, source, raw, good=data.draw(st.booleans() | st.just(True)))
    elif route == "tickets":
        good = {**PAYLOADS["generic"], "source": "github", "id": "acme/app#7"}
        body = data.draw(
            st.one_of(
                json_values,
                st.builds(mutate, st.just(PAYLOADS["generic"]), st.data()),
                st.builds(
                    mutate, st.just({**good, "origin": dict(STORED.origin or {})}), st.data()
                ),
            )
        )
        headers = data.draw(st.sampled_from([AUTH, GRANTED, {}]))
        response = client.post("/v1/tickets", content=json.dumps(body).encode(), headers=headers)
    elif route == "feedback":
        body = data.draw(
            st.one_of(
                json_values,
                st.fixed_dictionaries({"label": json_values, "task": json_values}),
                st.just({"label": "lost_card"}),
            )
        )
        tid = data.draw(st.one_of(ids, st.just(quote(STORED.id, safe=""))))
        source = data.draw(st.sampled_from(["api", "github"]))
        headers = data.draw(st.sampled_from([AUTH, GRANTED]))
        response = client.post(f"/v1/tickets/{source}/{tid}/feedback", json=body, headers=headers)
    else:
        tid = data.draw(ids)
        source = data.draw(st.sampled_from(["api", "github", "x"]))
        response = client.get(f"/v1/tickets/{source}/{tid}", headers=AUTH)
    assert response.status_code < 500, (route, response.status_code, response.text)
    if response.status_code != 202:
        assert depths() == before, (route, response.status_code, response.text)


def _with(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(payload))
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[part]
    node[last] = value
    return out


#: Wrong JSON types deep in each system's payload (attack: a wrong type deep in a GitHub or
#: Jira payload gave 500).
MALFORMED = {
    "github": [
        _with(PAYLOADS["github"], "issue.labels", "bug"),
        _with(PAYLOADS["github"], "issue.labels", [1, None]),
        _with(PAYLOADS["github"], "issue.labels", [{"name": ["x"]}]),
        _with(PAYLOADS["github"], "issue.body", {"text": "x"}),
        _with(PAYLOADS["github"], "issue.updated_at", 5),
        _with(PAYLOADS["github"], "issue.number", -3),
        _with(PAYLOADS["github"], "repository", "acme/app"),
        _with(PAYLOADS["github"], "repository.full_name", "../../orgs/x"),
        _with(PAYLOADS["github"], "issue", []),
        _with(RELABELS["github"], "sender", "alice"),
        _with(RELABELS["github"], "label", ["triage:category:lost_card"]),
        _with(RELABELS["github"], "issue.labels", {"name": "x"}),
        [],
        "issues",
        None,
    ],
    "jira": [
        _with(RELABELS["jira"], "changelog.items", {"field": "labels"}),
        _with(RELABELS["jira"], "changelog.items", "labels"),
        _with(RELABELS["jira"], "changelog.items", [1]),
        _with(RELABELS["jira"], "changelog.items", [{"field": "labels", "toString": 5}]),
        _with(RELABELS["jira"], "user", "someone"),
        _with(PAYLOADS["jira"], "issue.fields", []),
        _with(PAYLOADS["jira"], "issue.fields.labels", "x"),
        _with(PAYLOADS["jira"], "issue.fields.labels", [{"a": 1}]),
        _with(PAYLOADS["jira"], "issue.fields.updated", 20260101),
        _with(PAYLOADS["jira"], "issue.fields.summary", ["x"]),
        _with(PAYLOADS["jira"], "issue.key", "ops-1/../x"),
        _with(PAYLOADS["jira"], "issue", "OPS-1"),
    ],
    "zendesk": [
        _with(PAYLOADS["zendesk"], "ticket", []),
        _with(PAYLOADS["zendesk"], "ticket.id", 1.5),
        _with(PAYLOADS["zendesk"], "ticket.id", "1/../../users/me"),
        _with(PAYLOADS["zendesk"], "ticket.id", -5),
        _with(PAYLOADS["zendesk"], "ticket.tags", 5),
        _with(PAYLOADS["zendesk"], "ticket.tags", [1]),
        _with(PAYLOADS["zendesk"], "ticket.subject", {"x": 1}),
        _with(RELABELS["zendesk"], "updater", "agent"),
        _with(RELABELS["zendesk"], "updater.id", 10**30),
        _with(RELABELS["zendesk"], "task", 5),
        _with(RELABELS["zendesk"], "event", ["tags_changed"]),
    ],
    "generic": [
        _with(PAYLOADS["generic"], "id", 5),
        _with(PAYLOADS["generic"], "id", "a\nb"),
        _with(PAYLOADS["generic"], "metadata", "x"),
        _with(PAYLOADS["generic"], "revision", ["1"]),
        [],
    ],
}


@pytest.mark.parametrize(
    ("source", "n"), [(s, n) for s, cases in MALFORMED.items() for n in range(len(cases))]
)
def test_wrong_types_deep_in_a_signed_payload_are_4xx(client, depths, source, n) -> None:
    before = depths()
    response = signed_post(client, source, json.dumps(MALFORMED[source][n]).encode())
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    assert depths() == before


@pytest.mark.parametrize("source", list(SOURCES))
def test_a_5000_digit_integer_and_bad_utf8_are_4xx_on_every_route(client, depths, source) -> None:
    """Attack: a 5000-digit integer gave 500."""
    before = depths()
    text = json.dumps(_first_int_replaced(copy.deepcopy(PAYLOADS[source])))
    raw = text.replace('"__HUGE__"', HUGE).encode()
    assert signed_post(client, source, raw).status_code == 422
    bad_utf8 = json.dumps(PAYLOADS[source]).replace("Card", "Caf\udcff", 1)
    raw = bad_utf8.encode("utf-8", "surrogateescape")
    assert signed_post(client, source, raw).status_code == 422
    for path, headers in [
        ("/v1/tickets", AUTH),
        ("/v1/tickets/api/1/feedback", AUTH),
        (f"/v1/tickets/github/{quote(STORED.id, safe='')}/feedback", GRANTED),
    ]:
        body = f'{{"id": {HUGE}, "label": {HUGE}, "body": "x"}}'.encode()
        assert client.post(path, content=body, headers=headers).status_code == 422
        assert client.post(path, content=b'{"label": "\xff"}', headers=headers).status_code == 422
        assert client.post(path, content=b'{"label": NaN}', headers=headers).status_code == 422
    assert depths() == before


def _first_int_replaced(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` with its first integer (an issue or ticket number), or a new field, huge."""
    for node in [payload, *[v for v in payload.values() if isinstance(v, dict)]]:
        for key, value in node.items():
            if isinstance(value, int) and not isinstance(value, bool):
                node[key] = "__HUGE__"
                return payload
    return {**payload, "n": "__HUGE__"}
