"""The API token is one dependency: it names the caller, and every route of our API takes it."""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from producer.http import create_app
from producer.http.auth import Caller, authenticate, scraper
from producer.http.routes import ROUTERS
from producer.http.settings import SOURCES, HttpSettings
from producer.settings import ProducerSettings


def app_with_whoami(hs: HttpSettings, redis_url: str):
    app = create_app(hs, ProducerSettings(redis_url=redis_url))

    @app.get("/whoami")
    def whoami(caller: Caller) -> dict:
        return {"name": caller.name, "enqueue": sorted(caller.enqueue), "review": caller.review}

    return app


def test_the_caller_is_named_by_its_token_never_by_its_value(redis_url) -> None:
    hs = HttpSettings(
        api_tokens=["first", {"token": "second", "name": "desk", "review": ["*"]}],
        webhook_sources=[],
    )
    with TestClient(app_with_whoami(hs, redis_url)) as c:
        first = c.get("/whoami", headers={"Authorization": "Bearer first"}).json()
        assert first == {"name": "token-1", "enqueue": ["*"], "review": []}
        second = c.get("/whoami", headers={"Authorization": "Bearer second"}).json()
        assert second == {"name": "desk", "enqueue": [], "review": ["*"]}
        assert c.get("/whoami", headers={"Authorization": "Bearer third"}).status_code == 401
        assert c.get("/whoami").status_code == 401


def test_an_insecure_api_has_an_insecure_caller_with_the_default_scopes(redis_url) -> None:
    hs = HttpSettings(insecure_sources=["api", *SOURCES])
    with TestClient(app_with_whoami(hs, redis_url)) as c:
        assert c.get("/whoami").json() == {"name": "insecure", "enqueue": ["*"], "review": []}


def test_every_route_of_our_api_takes_the_caller() -> None:
    guarded = {
        route.path
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        and any(d.call in (authenticate, scraper) for d in route.dependant.dependencies)
    }
    assert guarded == {
        "/v1/tickets",
        "/v1/tickets/{source}/{ticket_id:path}",
        "/v1/tickets/{source}/{ticket_id:path}/feedback",
        "/metrics",
    }
