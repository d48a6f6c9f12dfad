"""Model settings refuse a frontier they could not call."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.settings import ModelSettings


def test_an_empty_api_key_counts_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker-compose passes an unset `${TRIAGE_FRONTIER_API_KEY:-}` as "".
    monkeypatch.setenv("TRIAGE_FRONTIER_PROVIDER", "openai")
    monkeypatch.setenv("TRIAGE_FRONTIER_API_KEY", "")
    with pytest.raises(ValidationError, match="needs TRIAGE_FRONTIER_API_KEY"):
        ModelSettings()
    monkeypatch.setenv("TRIAGE_FRONTIER_API_KEY", "sk-test")
    assert ModelSettings().frontier_api_key is not None
