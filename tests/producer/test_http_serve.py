"""`triage serve` runs our h11 protocol (read timeouts) with the connection cap, both from the
settings; the protocol reads its timeouts from them too."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from uvicorn.server import ServerState

from cli.main import main
from producer.http import settings as http_settings
from producer.http.server import TimedH11Protocol


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("TRIAGE_API_TOKENS", '["t"]')
    monkeypatch.setenv("TRIAGE_WEBHOOK_SOURCES", "[]")
    monkeypatch.setenv("TRIAGE_HTTP_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("TRIAGE_HTTP_HEADER_TIMEOUT_S", "3")
    monkeypatch.setenv("TRIAGE_HTTP_BODY_TIMEOUT_S", "4.5")
    http_settings.get_settings.cache_clear()
    yield
    http_settings.get_settings.cache_clear()


def test_serve_runs_the_timed_protocol_with_the_cap(monkeypatch) -> None:
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: ran.update(kwargs, app=app))
    out = CliRunner().invoke(main, ["serve", "--port", "8123"])
    assert out.exit_code == 0, out.output
    assert ran["http"] is TimedH11Protocol and ran["limit_concurrency"] == 7
    assert ran["app"] == "producer.http:create_app" and ran["factory"] is True


def test_the_protocol_takes_its_timeouts_from_the_settings() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
        raise AssertionError

    config = uvicorn.Config(app, http=TimedH11Protocol, log_config=None)
    loop = asyncio.new_event_loop()
    try:
        protocol = TimedH11Protocol(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    assert protocol.limits == {"headers": 3.0, "body": 4.5}
