"""Progress of a long step (training, tuning, evaluation, index seeding) that never goes silent.

On a terminal: a rich progress bar (description, bar, done/total, elapsed, time left). Elsewhere
(a log file, CI, a pipe): one log line every `every_s` seconds and one at the end, so a
16-minute training run in a log file is never 16 minutes of nothing.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("triage.progress")

#: Seconds between two progress lines when not on a terminal.
EVERY_S = 5.0


class Step:
    """One step's counter; `advance` moves it (and its note: loss, accuracy...)."""

    def __init__(self, description: str, total: int | None, every_s: float, bar: Any) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.note = ""
        self.started = time.monotonic()
        self._every_s = every_s
        self._last_line = self.started
        self._bar = bar
        self._task = bar.add_task(description, total=total) if bar is not None else None

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        if self._bar is not None:
            self._bar.update(self._task, advance=n, description=self._label())
            return
        now = time.monotonic()
        if now - self._last_line >= self._every_s:
            self._last_line = now
            logger.info("%s", self.line())

    def set_note(self, note: str) -> None:
        self.advance(0, note)

    def line(self) -> str:
        """``description: done/total (share), elapsed, about T left; note``."""
        elapsed = time.monotonic() - self.started
        parts = [f"{self.done:,}"]
        if self.total:
            parts[0] += f"/{self.total:,} ({self.done / self.total:.0%})"
        parts.append(_duration(elapsed))
        if self.total and 0 < self.done < self.total:
            parts.append(f"about {_duration(elapsed * (self.total - self.done) / self.done)} left")
        text = f"{self.description}: {', '.join(parts)}"
        return f"{text}; {self.note}" if self.note else text

    def _label(self) -> str:
        return f"{self.description} {self.note}".strip()


@contextmanager
def progress(
    description: str,
    total: int | None,
    *,
    enabled: bool = True,
    every_s: float = EVERY_S,
    terminal: bool | None = None,
) -> Iterator[Step]:
    """A `Step` for `total` units of work; a bar on a terminal, else timed log lines.

    `enabled=False` keeps the counter and logs only the closing line (library callers, tests).
    """
    on_terminal = sys.stderr.isatty() if terminal is None else terminal
    if not (enabled and on_terminal):
        step = Step(description, total, every_s if enabled else float("inf"), None)
        yield step
        logger.info(
            "%s: done, %s in %s",
            description,
            f"{step.done:,}",
            _duration(time.monotonic() - step.started),
        )
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    with bar:
        yield Step(description, total, every_s, bar)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
