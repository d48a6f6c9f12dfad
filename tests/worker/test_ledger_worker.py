"""A real `triage worker` records every decision in the ledger (SQLite and PostgreSQL): tickets
through a real Redis, auto labels audited at the rate, the unsure ones on the desk."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import func, select

from producer import enqueue_many
from producer.ledger import Ledger, migrate
from producer.ledger.tables import DecisionRow
from tests.polling import wait_for
from tests.worker.conftest import StartWorker, TinyTask
from tests.worker.test_end_to_end import make_tickets, wait_results


@pytest.mark.slow
def test_a_worker_records_its_decisions_in_the_ledger(
    start_worker: StartWorker, tiny_task: TinyTask, rdb: redis.Redis, database_url: str
) -> None:
    migrate(database_url)  # compose's `migrate` service, before the workers start
    # Thresholds that split the tickets: some labelled on their own, some left to a person.
    start_worker(
        database_url=database_url,
        audit_rate="1",
        classifier_threshold="0.7",
        retrieval_threshold="1.01",
    )
    tickets = make_tickets(tiny_task, 12)
    enqueue_many(tickets)
    results = wait_results(tickets)
    auto = {r.ticket_id for r in results if r.status == "labelled"}
    unsure = {r.ticket_id for r in results if r.status == "needs_review"}
    assert auto and unsure, [(r.status, r.confidence) for r in results]

    with Ledger.open(database_url) as ledger:

        def recorded() -> int:
            with ledger.engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(DecisionRow)).scalar_one())

        # The result store answers before the ledger's step has run: wait for that step (the
        # decisions, then the audits, each a transaction of its own).
        wait_for(lambda: recorded() == len(tickets), timeout_s=30, what="every decision recorded")
        wait_for(
            lambda: len(ledger.queue("category", limit=100)) == len(tickets),
            timeout_s=30,
            what="an item on the desk for every ticket",
        )
        items = ledger.queue("category", limit=100)
        by_kind = {
            kind: {e.item.ticket_id for e in items if e.item.kind == kind}
            for kind in ("audit", "review")
        }
        assert by_kind == {"audit": auto, "review": unsure}
        view = ledger.item(items[0].item.id)
        assert view is not None and view.decision is not None and view.ticket is not None
        assert view.decision.adapter_version and len(view.decision.suggestions) == 3
        assert view.ticket.body == next(t.body for t in tickets if t.id == view.item.ticket_id)
        assert len(view.neighbour_ids) == 10
