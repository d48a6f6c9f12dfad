"""Sign-in: a `review`-scoped token is exchanged at /review/login for a session cookie (HttpOnly,
SameSite=Strict, Secure over https, with an expiry), kept in Redis; no desk page answers without
it; every POST carries the session's CSRF token; signing out ends the session everywhere."""

from __future__ import annotations

import hashlib

import pytest

from producer.ledger import Ledger
from tests.review.support import ANN, NARROW, PLAIN, csrf_of, sign_in, ticket, unsure

PAGES = ["/review", "/review/queue/category", "/review/items/1", "/review/stats/category"]


@pytest.mark.parametrize("path", [*PAGES, "/review/queue/category/next"])
def test_no_desk_page_answers_without_a_session(make_client, path) -> None:
    client = make_client()
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/review/login?next=/review")
    assert "card" not in response.text


def test_posts_without_a_session_change_nothing(make_client, ledger: Ledger, rdb) -> None:
    t = ticket("t1")
    ledger.record([(t, unsure(t, [("card_arrival", 0.5)]))])
    [entry] = ledger.queue("category")
    client = make_client()
    for action in ("answer", "skip"):
        response = client.post(
            f"/review/items/{entry.item.id}/{action}",
            data={"label": "card_arrival", "csrf": "x"},
            follow_redirects=False,
        )
        assert response.status_code == 303 and "/review/login" in response.headers["location"]
    assert ledger.counts("category").open == 1 and rdb.llen("triage.writeback") == 0


def test_a_review_token_signs_in_with_a_strict_httponly_cookie(make_client, rdb) -> None:
    client = make_client()
    response = sign_in(client, ANN, "/review/stats/category")
    assert response.status_code == 303
    assert response.headers["location"] == "/review/stats/category"
    assert ANN not in response.headers["location"]
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("triage_review=")
    )
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "max-age", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/review" in cookie.lower()
    assert "secure" not in attributes  # served over plain http here
    sid = cookie.split(";")[0].split("=", 1)[1]
    key = f"triage:review:session:{hashlib.sha256(sid.encode()).hexdigest()}"
    assert 0 < rdb.ttl(key) <= 8 * 3600
    assert ANN not in rdb.get(key) and sid not in str(rdb.keys("*"))
    page = client.get("/review/stats/category")
    assert page.status_code == 200 and "Signed in as" in page.text and "ann" in page.text


def test_the_cookie_is_secure_over_https(make_client) -> None:
    client = make_client(base_url="https://testserver")
    response = sign_in(client, ANN)
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("triage_review=")
    )
    assert "secure" in {a.strip().lower() for a in cookie.split(";")}


@pytest.mark.parametrize("token", ["wrong", PLAIN, ""])
def test_a_token_without_the_review_scope_does_not_sign_in(make_client, token) -> None:
    client = make_client()
    response = sign_in(client, token)
    assert response.status_code == 401
    assert "does not open the review desk" in response.text
    assert "triage_review=" not in response.headers.get("set-cookie", "")
    assert client.get("/review/queue/category", follow_redirects=False).status_code == 303


def test_the_sign_in_form_needs_its_own_csrf_token(make_client) -> None:
    client = make_client()
    client.get("/review/login")
    response = client.post("/review/login", data={"csrf": "forged", "token": ANN})
    assert response.status_code == 403
    assert client.get("/review/queue/category", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_desk(make_client) -> None:
    for target in ("https://evil.example/", "//evil.example/review", "/v1/tickets"):
        response = sign_in(make_client(), ANN, target)
        assert response.headers["location"] == "/review"


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(make_client) -> None:
    client = make_client(ANN)
    sid = client.cookies.get("triage_review")
    page = client.get("/review/queue/category")
    assert client.post("/review/logout", data={"csrf": "wrong"}).status_code == 403
    response = client.post(
        "/review/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/review/login"
    other = make_client()
    other.cookies.set("triage_review", sid, path="/review")
    assert other.get("/review/queue/category", follow_redirects=False).status_code == 303


def test_a_token_taken_out_of_the_configuration_signs_nobody_in(make_client) -> None:
    client = make_client(NARROW)
    sid = client.cookies.get("triage_review")
    assert client.get("/review/queue/category").status_code == 200
    # The same Redis, an app whose configuration no longer has the token named "nora".
    later = make_client(api_tokens=[{"token": ANN, "name": "ann", "review": ["*"]}])
    later.cookies.set("triage_review", sid, path="/review")
    assert later.get("/review/queue/category", follow_redirects=False).status_code == 303


def test_pages_carry_a_strict_content_security_policy(ann) -> None:
    page = ann.get("/review/queue/category")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert ann.get("/review/static/desk.js").headers["content-type"].startswith("text/javascript")
    assert ann.get("/review/static/../settings.py").status_code == 404
