"""`triage serve` checks its settings before it binds a port."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.main import main
from producer.http import settings as http_settings


@pytest.fixture(autouse=True)
def fresh_settings():
    http_settings.get_settings.cache_clear()
    yield
    http_settings.get_settings.cache_clear()


def test_serve_refuses_a_source_without_secret(monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_API_TOKENS", '["t"]')
    monkeypatch.setenv("TRIAGE_WEBHOOK_SOURCES", '["github"]')
    out = CliRunner().invoke(main, ["serve"])
    assert out.exit_code == 2 and "webhook source 'github' has no secret" in out.output


def test_serve_refuses_an_unknown_source(monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_INSECURE_SOURCES", '["api"]')
    monkeypatch.setenv("TRIAGE_WEBHOOK_SOURCES", '["gitlab"]')
    out = CliRunner().invoke(main, ["serve"])
    assert out.exit_code == 2 and "unknown sources ['gitlab']" in out.output
