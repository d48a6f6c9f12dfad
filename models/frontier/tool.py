"""The `set_label` tool: its JSON schema, built from a label set, and the check of its arguments.

The schema tells the model what it may answer; `parse_arguments` checks the answer again on our
side, because providers (and local servers) do not all enforce schemas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from producer.errors import FrontierRefused
from producer.labelset import LabelSet

TOOL_NAME = "set_label"
_ALLOWED_KEYS = frozenset({"label", "confidence"})


@dataclass(frozen=True)
class ToolSpec:
    """A function tool in the neutral form each wire format wraps its own way."""

    name: str
    description: str
    parameters: dict[str, Any]


def label_tool(labels: LabelSet) -> ToolSpec:
    """The `set_label` tool whose `label` is an enum of the label set's names."""
    return ToolSpec(
        name=TOOL_NAME,
        description=f"Set the {labels.task} label of the support ticket.",
        parameters={
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": list(labels.names)},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["label"],
            "additionalProperties": False,
        },
    )


def parse_arguments(arguments: object, labels: LabelSet) -> tuple[str, float | None]:
    """The label and confidence of a `set_label` call; `FrontierRefused` if off the schema."""
    if not isinstance(arguments, dict):
        raise FrontierRefused(f"set_label arguments are not an object: {_excerpt(arguments)}")
    extra = sorted(str(key) for key in arguments if key not in _ALLOWED_KEYS)
    if extra:
        raise FrontierRefused(f"set_label arguments have unexpected keys {extra}")
    label = arguments.get("label")
    if not isinstance(label, str) or label not in labels:
        raise FrontierRefused(f"label {_excerpt(label)} is not in the {labels.task!r} label set")
    confidence = arguments.get("confidence")
    if confidence is None:
        return label, None
    # bool is an int subclass: `true` is not a confidence.
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise FrontierRefused(f"confidence {_excerpt(confidence)} is not a number")
    if not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
        raise FrontierRefused(f"confidence {confidence} is outside [0, 1]")
    return label, float(confidence)


def _excerpt(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
