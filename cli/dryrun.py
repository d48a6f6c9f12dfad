"""`triage backfill --dry-run`: classify a sample in this process and compare with the input.

Runs the cascade's first pass with this process's models (the same code the classify worker
runs) and writes nothing: no queue, no result store, no index. Escalations are not called; an
unsure ticket shows as "would escalate".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from producer.backfill.reader import Row, row_to_ticket
from producer.backfill.run import BackfillConfig
from producer.errors import InvalidTicket
from producer.schemas import Ticket


@dataclass(frozen=True)
class DryRunRow:
    ticket: Ticket
    given: str | None  # the label already in the input, if any
    label: str
    confidence: float
    decided_by: str  # or "would escalate"

    @property
    def differs(self) -> bool:
        return self.given is not None and self.given != self.label


def dry_run(
    rows: Iterable[Row], config: BackfillConfig, *, sample: int, label_column: str
) -> list[DryRunRow]:
    """First pass over the first `sample` valid rows, grouped by label task."""
    from worker.batches.first_pass import run_first_pass

    picked: list[tuple[Ticket, str | None]] = []
    for row in rows:
        if row.data is None:
            continue
        try:
            ticket = row_to_ticket(row.data, mapping=config.mapping, source=config.source)
        except InvalidTicket:
            continue
        given = row.data.get(label_column)
        picked.append((ticket, str(given) if given not in (None, "") else None))
        if len(picked) >= sample:
            break
    out: list[DryRunRow] = []
    for task in dict.fromkeys(t.task for t, _ in picked):
        items = [(t, g) for t, g in picked if t.task == task]
        firsts = run_first_pass(task, [t for t, _ in items])
        out += [
            DryRunRow(t, g, fp.label, fp.confidence, fp.decided_by or "would escalate")
            for (t, g), fp in zip(items, firsts, strict=True)
        ]
    return out
