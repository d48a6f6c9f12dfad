"""Frontier escalation: ask a large hosted model for a label when the first pass is unsure.

The ticket is masked and escaped, the answer must be a `set_label` tool call whose label is in
the label set, calls are retried, capped in concurrency and counted against a daily budget.
"""

from models.frontier.anthropic import AnthropicClient
from models.frontier.base import FrontierAnswer, FrontierClient, HttpFrontierClient
from models.frontier.budget import SpendBudget
from models.frontier.factory import build_frontier_client
from models.frontier.masking import mask_personal_data
from models.frontier.openai import OpenAIClient
from models.frontier.prompt import FrontierPrompt, build_prompt
from models.frontier.tool import TOOL_NAME, ToolSpec, label_tool, parse_arguments

__all__ = [
    "TOOL_NAME",
    "AnthropicClient",
    "FrontierAnswer",
    "FrontierClient",
    "FrontierPrompt",
    "HttpFrontierClient",
    "OpenAIClient",
    "SpendBudget",
    "ToolSpec",
    "build_frontier_client",
    "build_prompt",
    "label_tool",
    "mask_personal_data",
    "parse_arguments",
]
