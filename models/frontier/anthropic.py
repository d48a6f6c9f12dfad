"""The Anthropic messages wire format."""

from __future__ import annotations

from typing import Any, ClassVar

from models.frontier.base import MAX_OUTPUT_TOKENS, HttpFrontierClient, ToolCall, dig, tokens
from models.frontier.prompt import FrontierPrompt
from producer.errors import FrontierRefused

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicClient(HttpFrontierClient):
    """POST ``{base_url}/v1/messages`` with a forced tool use.

    The base URL is the root (``https://api.anthropic.com``), without ``/v1``, unlike OpenAI's.
    """

    provider: ClassVar[str] = "anthropic"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    path: ClassVar[str] = "v1/messages"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def request_body(self, prompt: FrontierPrompt) -> dict[str, Any]:
        tool = prompt.tool
        return {
            "model": self._settings.frontier_model,
            "max_tokens": MAX_OUTPUT_TOKENS,
            "temperature": 0,
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
            "tools": [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                }
            ],
            "tool_choice": {"type": "tool", "name": tool.name},
        }

    def tool_call(self, body: Any) -> ToolCall:
        content = dig(body, "content")
        blocks = content if isinstance(content, list) else []
        use = next((b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"), None)
        if use is None:
            text = " ".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
            raise FrontierRefused(f"anthropic answered without a tool use: {text[:200]!r}")
        usage = body.get("usage")
        return ToolCall(
            name=str(dig(use, "name")),
            arguments=dig(use, "input"),
            input_tokens=tokens(usage, "input_tokens"),
            output_tokens=tokens(usage, "output_tokens"),
            model=str(body.get("model") or ""),
        )
