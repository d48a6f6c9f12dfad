"""The OpenAI chat-completions wire format (also spoken by vLLM, Ollama and most gateways)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from models.frontier.base import HttpFrontierClient, ToolCall, dig, tokens
from models.frontier.prompt import FrontierPrompt
from producer.errors import FrontierRefused


class OpenAIClient(HttpFrontierClient):
    """POST ``{base_url}/chat/completions`` with a forced function call."""

    provider: ClassVar[str] = "openai"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    path: ClassVar[str] = "chat/completions"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def request_body(self, prompt: FrontierPrompt) -> dict[str, Any]:
        # No max_tokens: newer OpenAI models reject it (they want max_completion_tokens) while
        # older servers do not know the new name; a forced tool call is short anyway.
        tool = prompt.tool
        return {
            "model": self._settings.frontier_model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": tool.name}},
            "temperature": 0,
        }

    def tool_call(self, body: Any) -> ToolCall:
        message = dig(body, "choices", 0, "message")
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if not calls:
            content = message.get("content") if isinstance(message, dict) else message
            raise FrontierRefused(f"openai answered without a tool call: {str(content)[:200]!r}")
        function = dig(calls, 0, "function")
        raw_arguments = dig(function, "arguments")
        try:
            # Arguments arrive as a JSON string; some compatible servers send the object itself.
            arguments = (
                json.loads(raw_arguments) if isinstance(raw_arguments, str) else raw_arguments
            )
        except ValueError as exc:
            raise FrontierRefused(
                f"openai tool arguments are not JSON: {raw_arguments[:200]!r}"
            ) from exc
        usage = body.get("usage")
        return ToolCall(
            name=str(dig(function, "name")),
            arguments=arguments,
            input_tokens=tokens(usage, "prompt_tokens"),
            output_tokens=tokens(usage, "completion_tokens"),
            model=str(body.get("model") or ""),
        )
