"""Long steps report progress: a line every few seconds off a terminal, and a closing line."""

from __future__ import annotations

import logging

import pytest

from models.progress import progress


def test_off_a_terminal_it_logs_lines_and_a_closing_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="triage.progress")
    with progress("training", 4, every_s=0.0, terminal=False) as step:
        for _ in range(4):
            step.advance(note="loss 0.5")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("training: 1/4 (25%)") and "about" in lines[0]
    assert lines[0].endswith("loss 0.5")
    assert lines[-1].startswith("training: done, 4 in ")


def test_disabled_it_only_closes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="triage.progress")
    with progress("tuning", 3, enabled=False, every_s=0.0, terminal=False) as step:
        step.advance(3)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["tuning: done"]


def test_on_a_terminal_it_draws_a_bar() -> None:
    with progress("eval", 2, terminal=True) as step:
        step.advance(2, note="acc 0.9")
    assert step.done == 2 and step.note == "acc 0.9"
