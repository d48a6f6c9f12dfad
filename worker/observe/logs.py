"""The log format: ``key=value`` pairs (`logfmt`) or one JSON object a line (`JsonFormatter`,
``TRIAGE_LOG_FORMAT=json``). A ticket event's fields travel on its record (``ticket_event``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def logfmt(fields: Mapping[str, Any]) -> str:
    """``k=v`` pairs; a value with a space, a quote or an ``=`` (or empty) is JSON-quoted."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or any(c in text for c in ' "=\\\n\t'):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a ticket event's fields at the top level, else ``msg``."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": record.processName,
        }
        fields = getattr(record, "ticket_event", None)
        if isinstance(fields, dict):
            obj.update(fields)
        else:
            obj["msg"] = record.getMessage()
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str)


def use_json_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    """Give every handler of `logger` (the root by default) the JSON format; a Celery signal
    handler (``after_setup_logger``)."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter())
