"""The ledger as a target of the one write-back path, against a real Redis and the ledger on
SQLite and on PostgreSQL: every decision once, people's labels resolving the desk, the gate's
verdicts kept, audits sampled at the rate, and a ledger that is away holding the batch back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
from sqlalchemy import func, select

from producer import Ticket, TriageResult, get_result
from producer.errors import PermanentError
from producer.feedback import HumanLabel
from producer.ledger import Ledger, LedgerError, LedgerUnavailable, migrate
from producer.ledger import settings as ledger_settings
from producer.ledger.tables import DecisionRow, HumanLabelRow, ReviewItemRow
from tests.factories import result_for
from tests.ledger.databases import postgres_schema
from tests.receivers import CallbackReceiver
from worker import resources
from worker import settings as worker_settings
from worker.writeback.path import Decision, write_back, write_back_one
from worker.writeback.targets.ledger import AUDITED, RECORDED, sampled

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger(
    database_url: str, worker_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ledger]:
    """The write-back's ledger at `database_url` (migrated, as `triage ledger upgrade` does
    before the workers start), and a second handle on it to look with. No audits unless a
    test asks: each would be a second item beside the one a test counts."""
    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "0")
    worker_settings.get_settings.cache_clear()
    migrate(database_url)
    with Ledger.open(database_url) as opened:
        yield opened
        resources.close_all()  # before the database goes (`database_url` drops it after)


def _vector(i: int) -> list[float]:
    v = np.zeros(4, dtype=np.float32)
    v[i % 4] = 1.0
    return [float(x) for x in v]


def _model(
    t: Ticket,
    label: str,
    *,
    status: str = "labelled",
    minutes: float = 0,
    reason: str | None = None,
) -> TriageResult:
    result = result_for(t, label, confidence=0.97 if status == "labelled" else 0.4)
    return result.model_copy(
        update={
            "status": status,
            "reason": reason,
            "decided_at": T0 + timedelta(minutes=minutes),
            "versions": {"adapter": "category@v1"},
        }
    )


def _human(t: Ticket, label: str, *, minutes: float, via: str = "review") -> Decision:
    ticket, result = HumanLabel(
        ticket=t, label=label, by="ann", via=via, at=T0 + timedelta(minutes=minutes)
    ).as_writeback()
    return ticket, result, _vector(0)


def _count(ledger: Ledger, table: type, **where: object) -> int:
    stmt = select(func.count()).select_from(table)
    for column, value in where.items():
        stmt = stmt.where(getattr(table, column) == value)
    with ledger.engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def test_every_decision_is_recorded_once_whatever_the_redeliveries(
    ledger: Ledger, rdb: redis.Redis
) -> None:
    tickets = [Ticket(id=str(i), body=f"ticket {i}", revision="r1") for i in range(4)]
    batch: list[Decision] = [
        (t, _model(t, "card_arrival", status="needs_review" if i == 3 else "labelled"), _vector(i))
        for i, t in enumerate(tickets)
    ]
    first = write_back(batch)
    write_back(batch)  # a redelivered batch: every step done already
    rdb.delete(*rdb.keys("triage:written:*"))  # even with Redis's record of it gone:
    again = write_back(batch)
    assert all(isinstance(o, dict) and o["ledger"] == RECORDED for o in [*first, *again])
    assert _count(ledger, DecisionRow) == 4
    assert _count(ledger, ReviewItemRow) == 1  # the one the cascade left to a person
    (waiting,) = ledger.queue("category")
    assert (waiting.item.ticket_id, waiting.item.why, waiting.label) == (
        "3",
        "unsure",
        "card_arrival",
    )
    view = ledger.item(waiting.item.id)
    assert view is not None and view.decision is not None and view.ticket is not None
    assert (view.decision.adapter_version, view.ticket.body) == ("category@v1", "ticket 3")


def test_a_persons_label_resolves_the_desk_and_wins_the_export(
    ledger: Ledger, rdb: redis.Redis
) -> None:
    t = Ticket(id="7", body="where is my card", revision="r1")
    write_back_one(t, _model(t, "card_arrival", status="needs_review", minutes=1), _vector(1))
    assert ledger.counts("category").open == 1
    done = write_back_one(*_human(t, "lost_or_stolen_card", minutes=5))
    assert done["ledger"] == RECORDED
    counts = ledger.counts("category")
    assert (counts.open, counts.resolved) == (0, 1)
    [row] = ledger.export("category", holdout=0.0)
    assert (row.ticket_id, row.label, row.set_by) == ("7", "lost_or_stolen_card", "human")
    stored = get_result("7")
    assert stored is not None and stored.decided_by == "human"


def test_a_result_the_gate_kept_from_applying_is_recorded_with_its_verdict(
    ledger: Ledger, rdb: redis.Redis
) -> None:
    # A person labelled ticket 1; then the model's result for a newer revision arrives.
    t = Ticket(id="1", body="x", revision="1")
    write_back_one(*_human(t, "refund", minutes=1))
    t2 = t.model_copy(update={"revision": "2"})
    kept = write_back_one(t2, _model(t2, "card_arrival", status="needs_review", minutes=2))
    assert kept["store"] == "kept-human-label"
    assert kept["ledger"] == "kept-human-label"  # recorded with that verdict (below)
    # Ticket 2's revision 3 was written; revision 2's slower result (escalated) comes later.
    u3 = Ticket(id="2", body="y", revision="3")
    write_back_one(u3, _model(u3, "exchange_rate", minutes=3), _vector(2))
    u2 = u3.model_copy(update={"revision": "2"})
    stale = write_back_one(u2, _model(u2, "pin_blocked", status="needs_review", minutes=9))
    assert stale["ledger"] == "stale-revision"

    assert _count(ledger, DecisionRow, superseded="kept-human-label") == 1
    assert _count(ledger, DecisionRow, superseded="stale-revision") == 1
    assert ledger.queue("category") == []  # neither went to the desk
    exported = {r.ticket_id: (r.label, r.set_by) for r in ledger.export("category", holdout=0.0)}
    # The newest decision in time is the stale one: the export keeps the applied label.
    assert exported == {"1": ("refund", "human"), "2": ("exchange_rate", "model")}


def test_audits_are_a_stable_sample_at_the_rate_and_the_labels_still_ship(
    ledger: Ledger, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "0.25")
    worker_settings.get_settings.cache_clear()
    tickets = [Ticket(id=f"a{i}", body=f"ticket {i}", revision="r1") for i in range(160)]
    batch: list[Decision] = [
        (t, _model(t, "card_arrival"), _vector(i)) for i, t in enumerate(tickets)
    ]
    human = Ticket(id="h", body="by a person", revision="r1")
    batch.append(_human(human, "refund", minutes=0))  # never audited: nothing to measure
    outcomes = write_back(batch)
    expected = {t.id for t, r, _ in batch if r.decided_by != "human" and sampled(r, 0.25)}
    assert 25 <= len(expected) <= 55  # 40 expected; the hash is fixed, so this never flakes
    audited = {t.id for (t, _, _), o in zip(batch, outcomes, strict=True) if o["ledger"] == AUDITED}  # type: ignore[index]
    assert audited == expected
    items = ledger.queue("category", limit=500)
    assert {e.item.ticket_id for e in items} == expected
    assert {(e.item.kind, e.item.why) for e in items} == {("audit", "audit")}
    assert all(get_result(t.id) is not None for t in tickets)  # shipped all the same
    # A redelivery, even after Redis forgot it was done, opens no second audit.
    rdb.delete(*rdb.keys("triage:written:*"))
    write_back(batch)
    assert _count(ledger, ReviewItemRow) == len(expected)


def test_a_batch_with_its_audits_is_one_commit(
    ledger: Ledger, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import event

    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "0.5")
    worker_settings.get_settings.cache_clear()
    tickets = [Ticket(id=f"c{i}", body=f"ticket {i}", revision="r1") for i in range(64)]
    batch: list[Decision] = [
        (t, _model(t, "card_arrival"), _vector(i)) for i, t in enumerate(tickets)
    ]
    commits: list[object] = []
    event.listen(resources.ledger().engine, "commit", commits.append)
    outcomes = write_back(batch)
    audited = [o for o in outcomes if isinstance(o, dict) and o["ledger"] == AUDITED]
    assert audited and len(commits) == 1
    assert _count(ledger, DecisionRow) == 64 and _count(ledger, ReviewItemRow) == len(audited)
    t = tickets[0]
    with pytest.raises(ValueError, match="never audited"):
        ledger.record([(t, batch[0][1])], superseded="stale-revision", audits=[(t, batch[0][1])])


def test_an_audit_answered_on_the_desk_measures_the_adapters_precision(
    ledger: Ledger, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_AUDIT_RATE", "1")
    worker_settings.get_settings.cache_clear()
    tickets = [Ticket(id=f"p{i}", body=f"ticket {i}", revision="r1") for i in range(3)]
    write_back(
        [(t, _model(t, "card_arrival", minutes=i), _vector(i)) for i, t in enumerate(tickets)]
    )
    for entry, answer in zip(
        ledger.queue("category"), ["card_arrival", "card_arrival", "refund"], strict=True
    ):
        assert ledger.claim(entry.item.id, "ann")
        assert ledger.resolve(entry.item.id, "ann", answer)
        t = next(t for t in tickets if t.id == entry.item.ticket_id)
        write_back_one(*_human(t, answer, minutes=10))
    (version,) = ledger.stats("category", since=T0, until=T0 + timedelta(hours=1)).versions
    assert (version.adapter_version, version.audited, version.audit_correct) == (
        "category@v1",
        3,
        2,
    )
    assert version.corrected == 1


def test_a_ledger_that_is_locked_holds_the_batch_back_and_the_retry_records_it(
    worker_env: Path, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "locked.sqlite3"
    monkeypatch.setenv("TRIAGE_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("TRIAGE_DATABASE_BUSY_TIMEOUT_S", "0.2")
    monkeypatch.setenv("TRIAGE_CALLBACK_SECRET", "s3cret")
    ledger_settings.get_settings.cache_clear()
    migrate(f"sqlite:///{path}")
    resources.ledger()  # open already: the write itself meets the lock
    holder = sqlite3.connect(path, isolation_level=None)
    with CallbackReceiver() as receiver:
        t = Ticket(id="1", body="x", revision="r1", callback=receiver.url)
        result = _model(t, "card_arrival")
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process writing, past the busy timeout
            (outcome,) = write_back([(t, result, _vector(0))])
            assert isinstance(outcome, LedgerUnavailable)
            assert receiver.calls == []  # nothing ships unrecorded
            assert get_result("1") is not None  # the steps before it stand
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        done = write_back_one(t, result, _vector(0))
        calls = len(receiver.calls)
    assert (done["ledger"], done["callback"], calls) == (RECORDED, "http 200", 1)
    with Ledger.open(f"sqlite:///{path}") as look:
        assert _count(look, DecisionRow) == 1


def test_a_ledger_server_that_is_away_is_retryable(
    worker_env: Path, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", "postgresql://triage@127.0.0.1:9/none")
    ledger_settings.get_settings.cache_clear()
    t = Ticket(id="1", body="x")
    (outcome,) = write_back([(t, _model(t, "card_arrival"), _vector(0))])
    assert isinstance(outcome, LedgerUnavailable)


def test_an_unmigrated_server_ledger_is_permanent_and_says_how_to_migrate(
    worker_env: Path, rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    with postgres_schema() as url:
        monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
        ledger_settings.get_settings.cache_clear()
        t = Ticket(id="1", body="x")
        (outcome,) = write_back([(t, _model(t, "card_arrival"), _vector(0))])
        resources.close_all()
    assert isinstance(outcome, LedgerError) and "migrate" in str(outcome)


def test_a_decision_the_ledger_refuses_fails_alone(ledger: Ledger, rdb: redis.Redis) -> None:
    good = [Ticket(id=str(i), body="x", revision="r1") for i in range(3)]
    batch: list[Decision] = [(t, _model(t, "card_arrival"), _vector(i)) for i, t in enumerate(good)]
    # A result paired with another ticket: the ledger will not file it under either.
    stray = Ticket(id="9", body="x", revision="r1")
    batch.insert(1, (stray, _model(good[0], "refund"), _vector(9)))
    outcomes = write_back(batch)
    assert isinstance(outcomes[1], PermanentError)
    assert [o["ledger"] for i, o in enumerate(outcomes) if i != 1] == [RECORDED] * 3  # type: ignore[index]
    assert _count(ledger, DecisionRow) == 3


def test_human_labels_are_recorded_with_who_and_through_what(
    ledger: Ledger, rdb: redis.Redis
) -> None:
    t = Ticket(id="5", body="x", revision="r1")
    write_back_one(t, _model(t, "card_arrival", minutes=0), _vector(0))
    write_back_one(*_human(t, "refund", minutes=3, via="github"))
    with ledger.engine.connect() as conn:
        row = conn.execute(select(HumanLabelRow.__table__)).one()
    assert (row.label, row.labelled_by, row.via, row.model_label) == (
        "refund",
        "ann",
        "github",
        "card_arrival",
    )
