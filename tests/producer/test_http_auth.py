"""The API token is one dependency: it names the caller, and every route of our API takes it."""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from producer.http import create_app
from producer.http.auth import Caller, authenticate
from producer.http.routes import ROUTERS
from producer.http.settings import SOURCES, HttpSettings
from producer.settings import ProducerSettings


def app_with_whoami(hs: HttpSettings, redis_url: str):
    app = create_app(hs, ProducerSettings(redis_url=redis_url))

    @app.get("/whoami")
    def whoami(caller: Caller) -> str:
        return caller.id

    return app


def test_the_caller_is_named_by_its_token_never_by_its_value(redis_url, tmp_path) -> None:
    hs = HttpSettings(
        api_tokens=["first", "second"],
        webhook_sources=[],
        feedback_path=tmp_path / "feedback.jsonl",
    )
    with TestClient(app_with_whoami(hs, redis_url)) as c:
        assert c.get("/whoami", headers={"Authorization": "Bearer first"}).json() == "token-1"
        assert c.get("/whoami", headers={"Authorization": "Bearer second"}).json() == "token-2"
        assert c.get("/whoami", headers={"Authorization": "Bearer third"}).status_code == 401
        assert c.get("/whoami").status_code == 401


def test_an_insecure_api_has_an_insecure_caller(redis_url, tmp_path) -> None:
    hs = HttpSettings(insecure_sources=["api", *SOURCES], feedback_path=tmp_path / "f.jsonl")
    with TestClient(app_with_whoami(hs, redis_url)) as c:
        assert c.get("/whoami").json() == "insecure"


def test_every_route_of_our_api_takes_the_caller() -> None:
    guarded = {
        route.path
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        and any(d.call is authenticate for d in route.dependant.dependencies)
    }
    assert guarded == {
        "/v1/tickets",
        "/v1/tickets/{source}/{ticket_id:path}",
        "/v1/tickets/{source}/{ticket_id:path}/feedback",
    }
