"""`triage status --quality` against a seeded ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from cli.quality import window
from producer.ledger import Ledger
from tests.cli.seed import seed


def _quality(*args: str) -> dict[str, Any]:
    out = CliRunner().invoke(main, ["status", "--quality", "--json", "--task", "category", *args])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)["tasks"]["category"]  # type: ignore[no-any-return]


def test_per_adapter_version_with_the_audited_precision_and_the_desk(
    ledger: Ledger, tuned_adapter: Path
) -> None:
    v1 = seed(ledger, adapter="category@v1", audits=40, wrong=4)  # 90%: below 99% beyond doubt
    found = _quality()
    (version,) = found["versions"]
    assert version["adapter_version"] == "category@v1"
    assert (version["decisions"], version["auto"]) == (v1.decisions, v1.auto)
    assert version["coverage"] == pytest.approx(v1.auto / v1.decisions)
    assert (version["audited"], version["audit_correct"]) == (40, 36)
    precision = version["precision"]
    assert precision["value"] == pytest.approx(0.9)
    assert precision["low"] < 0.9 < precision["high"] < 0.99
    assert version["verdict"]["level"] == "below"
    # Corrected: four audits answered otherwise, and two labels changed in GitHub.
    assert (version["corrected"], version["correction_rate"]) == (6, pytest.approx(6 / v1.auto))
    assert found["queue_depth"] == v1.waiting and found["oldest_age_s"] >= 30 * 60
    assert found["confusions"][:2] == [
        {"model_label": "card_arrival", "human_label": "refund", "count": 4},
        {"model_label": "card_arrival", "human_label": "pin_blocked", "count": 2},
    ]
    assert found["target_precision"] == 0.99


def test_few_audits_under_the_target_are_not_called_below(
    ledger: Ledger, tuned_adapter: Path
) -> None:
    seed(ledger, adapter="category@v2", audits=20, wrong=1)  # 95%, interval reaches 99%
    (version,) = _quality()["versions"]
    assert version["verdict"]["level"] == "under"
    assert "more audits will tell" in version["verdict"]["text"]


def test_the_table_says_so_in_words(ledger: Ledger, tuned_adapter: Path) -> None:
    seed(ledger, adapter="category@v1", audits=40, wrong=4)
    out = CliRunner().invoke(main, ["status", "--quality", "--task", "category"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "category@v1" in text and "36/40" in text
    assert "BELOW: category@v1: precision 90.0%" in text
    assert "below the 99.0% the adapter was tuned for" in text
    assert "review desk: 3 waiting" in text
    assert "card_arrival" in text and "refund" in text  # the most corrected pair


def test_the_window_leaves_older_decisions_out(ledger: Ledger, tuned_adapter: Path) -> None:
    seed(ledger, adapter="category@v1", audits=5, wrong=0)  # decided 30 to 70 minutes ago
    assert _quality("--window", "20m")["versions"] == []
    assert len(_quality("--window", "3h")["versions"]) == 1


def test_windows_are_read_as_durations() -> None:
    assert window("90m").total_seconds() == 5400
    assert window("2w").days == 14
    out = CliRunner().invoke(main, ["status", "--quality", "--window", "soon"])
    assert out.exit_code == 2 and "90m, 24h, 7d or 2w" in out.output


def test_an_unreachable_ledger_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    from producer.ledger import settings

    monkeypatch.setenv("TRIAGE_DATABASE_URL", "postgresql://triage@127.0.0.1:9/none")
    settings.get_settings.cache_clear()
    try:
        out = CliRunner().invoke(main, ["status", "--quality", "--task", "category"])
    finally:
        settings.get_settings.cache_clear()
    assert out.exit_code == 3 and "did not answer" in out.output
