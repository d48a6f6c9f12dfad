"""The ticket event lines: key=value by default, one JSON object with `TRIAGE_LOG_FORMAT=json`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime

import pytest

from producer import Ticket
from worker.observe import events as events_log
from worker.observe.events import EVENTS_LOGGER, ticket_event
from worker.observe.logs import JsonFormatter, logfmt
from worker.observe.metrics import get_metrics


def test_an_event_is_one_line_of_key_value_pairs(caplog: pytest.LogCaptureFixture) -> None:
    ticket = Ticket(id="42", source="helpdesk", body="card not here")
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        ticket_event(
            "written_back",
            "writeback",
            ticket,
            12.345,
            decided_by="classifier",
            status="labelled",
            label="card arrival",
            reason=None,
        )
    [record] = caplog.records
    assert record.getMessage() == (
        "event=written_back ticket_id=42 source=helpdesk task=category stage=writeback "
        'latency_ms=12.3 decided_by=classifier status=labelled label="card arrival"'
    )


def test_logfmt_quotes_what_would_break_a_pair() -> None:
    line = logfmt({"a": 'say "hi"', "b": "x=y", "c": "", "d": "plain", "e": 0.5})
    assert line == 'a="say \\"hi\\"" b="x=y" c="" d=plain e=0.5'


def test_json_format_puts_the_event_fields_at_the_top(caplog: pytest.LogCaptureFixture) -> None:
    ticket = Ticket(id="7", source="zendesk", body="pin blocked")
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        ticket_event("classified", "classify", ticket, 3.0, decided_by="escalate")
    line = JsonFormatter().format(caplog.records[0])
    obj = json.loads(line)
    assert "\n" not in line
    assert obj["event"] == "classified" and obj["ticket_id"] == "7"
    assert obj["source"] == "zendesk" and obj["stage"] == "classify"
    assert obj["latency_ms"] == 3.0 and obj["decided_by"] == "escalate"
    assert obj["level"] == "info" and obj["logger"] == EVENTS_LOGGER
    assert datetime.fromisoformat(obj["ts"]).tzinfo is not None
    assert "msg" not in obj


def test_json_format_of_any_other_line_keeps_its_message_and_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    obj = json.loads(JsonFormatter().format(record))
    assert obj["msg"] == "failed here" and obj["level"] == "error"
    assert "ValueError: boom" in obj["exc"]


def test_dead_lettered_takes_any_payload_and_counts_it(caplog: pytest.LogCaptureFixture) -> None:
    def count() -> float:
        found = get_metrics().registry.get_sample_value(
            "triage_dead_lettered_total", {"stage": "writeback"}
        )
        return found or 0.0

    before = count()
    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        events_log.dead_lettered("triage.writeback", "not even a dict", "bad payload")
        events_log.dead_lettered(
            "triage.writeback", {"ticket": {"id": "9", "source": "jira"}}, "gave up"
        )
    assert count() == before + 2
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith('event=dead_lettered ticket_id="" source=""')
    assert 'ticket_id=9 source=jira task="" stage=writeback' in second
    assert second.endswith('reason="gave up"')
    assert all(r.levelno == logging.ERROR for r in caplog.records)
