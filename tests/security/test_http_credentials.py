"""Who may cause what through the HTTP app (docs/security.md, "Channels", "Credentials and
scopes"): tokens and generic keys by scope, the ticket systems' sources reserved, write-back
coordinates only for a credential granted them, dedupe per channel, rate limits counted after
verification, and the operational pages closed. Every refusal leaves nothing queued."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from starlette.testclient import TestClient

from cli.main import main
from producer.http import create_app
from producer.http import settings as http_settings_module
from producer.http.settings import HttpSettings
from producer.settings import ProducerSettings
from tests.producer.http_support import (
    AUTH,
    PAYLOADS,
    SECRETS,
    http_settings,
    kwargs_of,
    post,
    queued,
    sign,
)

GH_ORIGIN = {"system": "github", "repo": "acme/app", "number": 7}
TOKENS = [
    "api-token",
    {"token": "gh-import", "name": "gh-import", "enqueue": ["github"], "read": ["github"]},
    {"token": "reader", "name": "reader", "read": ["helpdesk"]},
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(redis_url: str, tmp_path):
    hs = http_settings(
        tmp_path,
        api_tokens=TOKENS,
        webhook_secrets={
            **{s: [k] for s, k in SECRETS.items() if s != "generic"},
            "generic": [SECRETS["generic"], {"secret": "desk-key", "sources": ["helpdesk"]}],
        },
    )
    with TestClient(create_app(hs, ProducerSettings(redis_url=redis_url))) as c:
        yield c


# -- start-up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRIAGE_API_TOKENS", '[""]'),
        ("TRIAGE_API_TOKENS", '["   "]'),
        ("TRIAGE_API_TOKENS", '["kept-secret", "\\t"]'),
        ("TRIAGE_API_TOKENS", '[{"token": " ", "name": "desk"}]'),
        ("TRIAGE_WEBHOOK_SECRETS", '{"generic": [""]}'),
        ("TRIAGE_WEBHOOK_SECRETS", '{"generic": ["kept-secret", {"secret": "  "}]}'),
    ],
)
def test_blank_tokens_and_secrets_stop_the_start_naming_the_variable(
    monkeypatch, variable, value
) -> None:
    """Attack: ``TRIAGE_API_TOKENS='[""]'`` let requests with no token in."""
    monkeypatch.setenv("TRIAGE_API_TOKENS", '["t"]')
    monkeypatch.setenv("TRIAGE_WEBHOOK_SOURCES", '["generic"]')
    monkeypatch.setenv("TRIAGE_WEBHOOK_SECRETS", '{"generic": ["s"]}')
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=f"{variable}: a .* is empty or whitespace") as exc:
        HttpSettings()
    assert "kept-secret" not in str(exc.value)
    http_settings_module.get_settings.cache_clear()
    try:
        out = CliRunner().invoke(main, ["serve"])
    finally:
        http_settings_module.get_settings.cache_clear()
    assert out.exit_code == 2 and variable in out.output and "kept-secret" not in out.output


def test_scopes_name_sources_and_generic_keys_only_bind_generic() -> None:
    with pytest.raises(ValidationError, match="only generic keys are bound"):
        HttpSettings(
            api_tokens=["t"],
            webhook_sources=["github"],
            webhook_secrets={"github": [{"secret": "s", "sources": ["x"]}]},
        )
    with pytest.raises(ValidationError, match="token names repeat"):
        HttpSettings(
            api_tokens=[{"token": "a", "name": "n"}, {"token": "b", "name": "n"}],
            webhook_sources=[],
        )
    with pytest.raises(ValidationError, match="api_tokens"):
        HttpSettings(api_tokens=[{"token": "a", "enqueue": ["bad source!"]}], webhook_sources=[])


# -- /v1/tickets: sources and coordinates -----------------------------------------------------


@pytest.mark.parametrize("system", ["github", "zendesk", "jira"])
def test_a_plain_token_cannot_claim_a_ticket_system(client, rdb, system) -> None:
    """Attack: ``"source": "github"`` with ``metadata.repo``/``number`` aimed the bot at any
    repository."""
    spoof = {
        "id": "acme/app#7",
        "source": system,
        "body": "x",
        "metadata": {"repo": "victim/repo", "number": 1},
    }
    response = client.post("/v1/tickets", json=spoof, headers=AUTH)
    assert response.status_code == 403 and system in response.json()["detail"]
    # Nor as the second of a list: all or nothing.
    both = [{"id": "fine", "body": "x"}, spoof]
    assert client.post("/v1/tickets", json=both, headers=AUTH).status_code == 403
    assert queued(rdb) == []


def test_origin_needs_a_token_granted_that_system(client, rdb) -> None:
    """Coordinates come only from a credential granted the ticket system by name."""
    api_with_origin = {"id": "1", "body": "x", "origin": GH_ORIGIN}
    assert client.post("/v1/tickets", json=api_with_origin, headers=AUTH).status_code == 403
    as_github = {"id": "acme/app#7", "source": "github", "body": "x", "origin": GH_ORIGIN}
    granted = bearer("gh-import")
    # The granted token: its own system's origin is taken, validated; another system's is not.
    zendesk = {**as_github, "source": "zendesk", "origin": {"system": "zendesk", "id": 5}}
    assert client.post("/v1/tickets", json=zendesk, headers=granted).status_code == 403
    escape = {**as_github, "origin": {**GH_ORIGIN, "repo": "../../orgs/x"}}
    assert client.post("/v1/tickets", json=escape, headers=granted).status_code == 422
    mismatch = {"id": "9", "source": "api", "body": "x", "origin": GH_ORIGIN}
    assert client.post("/v1/tickets", json=mismatch, headers=granted).status_code == 403
    assert queued(rdb) == []
    ok = client.post("/v1/tickets", json=as_github, headers=granted)
    assert ok.status_code == 202, ok.text
    [message] = queued(rdb)
    assert kwargs_of(message)["ticket"]["origin"] == GH_ORIGIN
    # It may enqueue github and nothing else (its scope names no other source).
    assert (
        client.post("/v1/tickets", json={"id": "2", "body": "x"}, headers=granted).status_code
        == 403
    )


def test_each_route_checks_its_own_scope(client, rdb) -> None:
    reader = bearer("reader")
    assert (
        client.post("/v1/tickets", json={"id": "1", "body": "x"}, headers=reader).status_code == 403
    )
    assert client.get("/v1/tickets/api/1", headers=reader).status_code == 403
    assert (
        client.get("/v1/tickets/helpdesk/1", headers=reader).status_code == 404
    )  # allowed; none yet
    fb = client.post("/v1/tickets/helpdesk/1/feedback", json={"label": "lost_card"}, headers=reader)
    assert fb.status_code == 403
    assert (
        client.get("/v1/tickets/github/acme/app%237", headers=bearer("gh-import")).status_code
        == 404
    )
    assert queued(rdb) == []


def test_a_spoofed_source_cannot_pre_claim_the_real_webhook(client, rdb) -> None:
    """Attack: a spoofed zendesk ticket claimed the dedupe key, and the genuine signed webhook
    was answered ``duplicate``. Even a credential granted zendesk claims only its channel's key."""
    body = json.dumps(PAYLOADS["zendesk"]).encode()
    spoof = {"id": "123", "source": "zendesk", "body": "x", "revision": "2026-01-01"}
    assert client.post("/v1/tickets", json=spoof, headers=AUTH).status_code == 403
    genuine = post(client, "zendesk", body, sign("zendesk", body))
    assert genuine.status_code == 202 and genuine.json()["duplicate"] is False


def test_a_granted_channel_and_the_webhook_keep_separate_dedupe_keys(
    redis_url, rdb, tmp_path
) -> None:
    hs = http_settings(
        tmp_path, api_tokens=[{"token": "zd-import", "name": "zd", "enqueue": ["zendesk"]}]
    )
    with TestClient(create_app(hs, ProducerSettings(redis_url=redis_url))) as c:
        early = {"id": "123", "source": "zendesk", "body": "x", "revision": "2026-01-01"}
        assert c.post("/v1/tickets", json=early, headers=bearer("zd-import")).status_code == 202
        body = json.dumps(PAYLOADS["zendesk"]).encode()
        genuine = post(c, "zendesk", body, sign("zendesk", body))
    assert genuine.status_code == 202 and genuine.json()["duplicate"] is False
    assert len(queued(rdb)) == 2


# -- the generic webhook ----------------------------------------------------------------------


def generic(client, ticket: dict, key: str, delivery: str):
    body = json.dumps(ticket).encode()
    return post(client, "generic", body, sign("generic", body, key=key, delivery=delivery))


def test_a_generic_key_creates_only_its_bound_sources(client, rdb) -> None:
    """Attack: the generic webhook took ``"source": "github"`` (or zendesk, jira)."""
    plain, desk = SECRETS["generic"], "desk-key"
    ticket = {"id": "g-1", "body": "x"}
    for n, (key, source) in enumerate(
        [
            (plain, "helpdesk"),
            (plain, "api"),
            (desk, "generic"),
            (plain, "github"),
            (desk, "zendesk"),
            (plain, "jira"),
        ]
    ):
        response = generic(client, {**ticket, "source": source}, key, f"r{n}")
        assert response.status_code == 403, (key, source, response.text)
    with_origin = {**ticket, "source": "github", "origin": GH_ORIGIN}
    assert generic(client, with_origin, plain, "o1").status_code in (403, 422)
    assert generic(client, {**with_origin, "source": "generic"}, plain, "o2").status_code in (
        403,
        422,
    )
    assert queued(rdb) == []
    assert generic(client, ticket, plain, "a1").status_code == 202  # source: generic
    assert generic(client, {**ticket, "source": "helpdesk"}, desk, "a2").status_code == 202
    assert [kwargs_of(m)["ticket"]["source"] for m in queued(rdb)] == ["helpdesk", "generic"]


def test_generic_deliveries_are_per_key(client, rdb) -> None:
    """One generic sender cannot pre-claim another's delivery ids."""
    first = generic(client, {"id": "a", "body": "x"}, SECRETS["generic"], "same-id")
    second = generic(client, {"id": "b", "body": "x", "source": "helpdesk"}, "desk-key", "same-id")
    assert first.status_code == 202 and second.status_code == 202, second.text
    assert len(queued(rdb)) == 2


# -- rate limits ------------------------------------------------------------------------------


def test_webhook_rate_counts_verified_requests_per_key(redis_url, rdb, tmp_path) -> None:
    """Attack: the limit counted unsigned requests, so forgeries made the real sender get 429."""
    hs = http_settings(tmp_path, webhook_rate_per_s=2)
    with TestClient(create_app(hs, ProducerSettings(redis_url=redis_url))) as c:
        forged = [post(c, "generic", b"{}", {"X-Triage-Signature": "t=1,v1=00"}) for _ in range(30)]
        assert {r.status_code for r in forged} == {401}
        real = []
        for n in range(5):
            body = json.dumps({**PAYLOADS["generic"], "id": f"r{n}"}).encode()
            real.append(
                post(c, "generic", body, sign("generic", body, delivery=f"r{n}")).status_code
            )
        assert real[0] == 202 and 429 in real
        # The other key (the sender mid-rotation) and the other sources have their own allowance.
        body = json.dumps({**PAYLOADS["generic"], "id": "o"}).encode()
        assert (
            post(c, "generic", body, sign("generic", body, key="old-key", delivery="o")).status_code
            == 202
        )
        body = json.dumps(PAYLOADS["github"]).encode()
        assert post(c, "github", body, sign("github", body)).status_code == 202


def test_api_rate_is_per_credential_and_unknown_tokens_use_none(redis_url, rdb, tmp_path) -> None:
    hs = http_settings(tmp_path, api_tokens=["a", "b"], api_rate_per_s=2)
    with TestClient(create_app(hs, ProducerSettings(redis_url=redis_url))) as c:
        unknown = [c.get("/v1/tickets/api/1", headers=bearer("nope")) for _ in range(20)]
        assert {r.status_code for r in unknown} == {401}
        assert c.get("/v1/tickets/api/1", headers=bearer("b")).status_code == 404
        flood = [c.get("/v1/tickets/api/1", headers=bearer("a")).status_code for _ in range(6)]
        assert 429 in flood
        assert c.get("/v1/tickets/api/1", headers=bearer("b")).status_code in (404, 429)
        assert rdb.keys("triage:rate:api:token-2:*")  # counted under its name, never the token


# -- the operational pages ----------------------------------------------------------------------


def test_metrics_need_a_token_and_the_docs_are_off(redis_url, tmp_path) -> None:
    """Attack: /metrics, /docs and /openapi.json answered anyone."""
    with TestClient(
        create_app(http_settings(tmp_path), ProducerSettings(redis_url=redis_url))
    ) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=bearer("nope")).status_code == 401
        assert c.get("/metrics", headers=AUTH).status_code == 200
        for page in ("/docs", "/redoc", "/openapi.json"):
            assert c.get(page).status_code == 404
        assert c.get("/healthz").status_code == 200
    opened = http_settings(tmp_path, metrics_public=True, http_docs=True)
    with TestClient(create_app(opened, ProducerSettings(redis_url=redis_url))) as c:
        assert c.get("/metrics").status_code == 200
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200


def test_made_up_sources_fold_into_one_series(client, rdb) -> None:
    """Attack: 50 tickets with made-up sources added 100 series to /metrics."""
    tickets = [{"id": str(n), "source": f"made-up-{n}", "body": "x"} for n in range(50)]
    assert client.post("/v1/tickets", json=tickets, headers=AUTH).status_code == 202
    text = client.get("/metrics", headers=AUTH).text
    series = [line for line in text.splitlines() if line.startswith("triage_tickets_total{")]
    assert series == ['triage_tickets_total{outcome="enqueued",source="other"} 50.0']
    assert "made-up" not in text
