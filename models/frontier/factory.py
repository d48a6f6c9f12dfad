"""Pick the frontier client the settings ask for."""

from __future__ import annotations

from models.frontier.anthropic import AnthropicClient
from models.frontier.base import FrontierClient
from models.frontier.openai import OpenAIClient
from models.settings import ModelSettings


def build_frontier_client(settings: ModelSettings) -> FrontierClient | None:
    """The client for ``frontier_provider``; None when it is ``none`` (escalations go to review)."""
    if settings.frontier_provider == "openai":
        return OpenAIClient(settings)
    if settings.frontier_provider == "anthropic":
        return AnthropicClient(settings)
    return None
