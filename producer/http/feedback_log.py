"""Human labels sent as feedback, appended as JSON lines (`TRIAGE_FEEDBACK_PATH`) for training."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


class FeedbackLog:
    """Appends records as JSON lines; one lock per app, so concurrent lines never interleave."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
