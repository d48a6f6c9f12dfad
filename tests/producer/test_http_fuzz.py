"""A hypothesis fuzz of every route of the HTTP app: whatever comes in, no 5xx comes out.

The app runs with verification off (insecure sources) so the fuzz reaches the payload parsing
behind the signature check; Redis is real, so 503 (broker down) cannot be the excuse either.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from producer.http import create_app
from producer.http.settings import SOURCES, HttpSettings
from producer.settings import ProducerSettings
from tests.producer.test_http import PAYLOADS

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
    st.text(min_size=1, max_size=10)
    .filter(lambda s: s not in {".", ".."})
    .map(lambda s: quote(s, safe=""))
)


def mutate(payload: dict, data: st.DataObject) -> object:
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
    import redis

    from tests.conftest import TEST_REDIS_URL

    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    hs = HttpSettings(
        insecure_sources=["api", *SOURCES],
        feedback_path=tmp_path_factory.mktemp("fb") / "feedback.jsonl",
    )
    with TestClient(create_app(hs, ProducerSettings(redis_url=TEST_REDIS_URL))) as c:
        yield c
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_route_answers_5xx(client, data) -> None:
    route = data.draw(st.sampled_from(["tickets", "webhook", "feedback", "result"]))
    if route == "webhook":
        source = data.draw(st.sampled_from([*SOURCES, "nope"]))
        body = data.draw(
            st.one_of(
                st.builds(mutate, st.just(PAYLOADS.get(source, {"x": 1})), st.data()),
                json_values,
            )
        )
        headers = {"X-GitHub-Event": data.draw(st.sampled_from(["issues", "ping"]))}
        raw = data.draw(st.one_of(st.just(json.dumps(body).encode()), st.binary(max_size=64)))
        response = client.post(f"/v1/webhooks/{source}", content=raw, headers=headers)
    elif route == "tickets":
        body = data.draw(
            st.one_of(json_values, st.builds(mutate, st.just(PAYLOADS["generic"]), st.data()))
        )
        response = client.post("/v1/tickets", content=json.dumps(body).encode())
    elif route == "feedback":
        body = data.draw(
            st.one_of(
                json_values, st.fixed_dictionaries({"label": json_values, "body": json_values})
            )
        )
        tid = data.draw(ids)
        response = client.post(f"/v1/tickets/api/{tid}/feedback", json=body)
    else:
        tid = data.draw(ids)
        response = client.get(f"/v1/tickets/{data.draw(st.sampled_from(['api', 'x']))}/{tid}")
    assert response.status_code < 500, (route, response.status_code, response.text)
